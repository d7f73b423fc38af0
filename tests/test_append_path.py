"""The write path of a batch: the protocol stored once and named by hash, parsed once per
process; a write folds once and applies only what it wrote; one transaction per command.

(Timed ratios are in bench/bench_append.py; here only what can be counted.)
"""

from __future__ import annotations

import json

import pytest
from conftest import GOOD, PASSWORD, STANDARD, forger_connect, present, run_to

from cmprep import events as ev
from cmprep.domain import batch as batch_module
from cmprep.domain import protocols as control
from cmprep.domain.batch import fold
from cmprep.domain.clock import iso
from cmprep.errors import ConcurrencyError, CorruptLog, Hint
from cmprep.events import NewEvent
from cmprep.protocol.models import Protocol
from cmprep.service import Services
from cmprep.service import context as context_module
from cmprep.service import quality as quality_module
from cmprep.store.sqlite import SQLiteStore


@pytest.fixture
def fresh(monkeypatch):
    """No protocol built yet in this process, as in a command just started."""
    monkeypatch.setattr(control, "_COMPILED", {})


def _rows(db_path, sql: str, *args) -> list[tuple]:
    conn = forger_connect(db_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _forge(db_path, sql: str, *args) -> None:
    """Someone edits an event in the SQLite file, the append-only rule removed first."""
    conn = forger_connect(db_path)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute(sql, args)
    conn.commit()
    conn.close()


# --- the protocol is stored once -----------------------------------------------------------
def test_a_started_batch_names_its_protocol_and_folds_from_the_stored_version(
    svc, db_path, clock, fresh
):
    svc.batches.start(STANDARD, "alice", "B1")
    stored = svc.protocols.stored(STANDARD)
    ((payload, size),) = _rows(
        db_path,
        "SELECT unpacked(payload), length(payload) FROM events WHERE batch_id = 'B1' AND seq = 1",
    )
    assert json.loads(payload) == {
        "protocol_hash": stored.content_hash,
        "protocol_id": STANDARD,
        "protocol_version": "2.0",
    }
    assert size < 1024  # was the whole protocol, 25-30 KB
    assert len(json.dumps(stored.content)) > 20 * size

    control._COMPILED.clear()  # another command, another process: nothing built yet
    batch = Services(SQLiteStore(db_path), clock=clock).batches.batch("B1")
    assert batch.protocol == stored.protocol() and batch.protocol_hash == stored.content_hash
    assert [s.id for s in batch.due()] == ["isolation"]
    assert svc.audit.trail("B1")[0]["what"] == (
        f"batch started from {STANDARD} v2.0 ({stored.content_hash[:12]})"
    )


def _old_style_start(svc, clock, batch_id: str, content: dict, digest: str) -> None:
    """A batch as cmprep wrote it before protocols were stored once: its first event
    carries the whole protocol."""
    payload = {
        "protocol": content,
        "protocol_hash": digest,
        "protocol_id": content["id"],
        "protocol_version": content["version"],
    }
    with svc.ctx.store.writing(batch_id, 0) as unit:
        written = unit.append([NewEvent(ev.BATCH_STARTED, "alice", payload)], iso(clock()))
        context_module.project(unit, None, written)


def test_an_older_batch_that_carries_its_protocol_copy_folds_and_takes_entries(svc, clock, fresh):
    content = {**svc.protocols.stored(STANDARD).content, "id": "cm-legacy"}  # never imported
    digest = control.content_hash(content)
    assert svc.ctx.resolve(digest) is None
    _old_style_start(svc, clock, "OLD", content, digest)

    run_to(svc, clock, "OLD", stop_before="spin")
    out = svc.batches.record("OLD", "spin", {**GOOD["spin"], "rcf": "650 x g"}, "alice")
    assert out.batch.protocol.id == "cm-legacy" and out.batch.protocol_hash == digest
    assert [d["severity"] for d in out.deviations] == ["major"]
    assert svc.batches.batch("OLD").steps["spin"].values["rcf"].verdict == "out of spec"
    assert svc.batches.batches()[0]["protocol_id"] == "cm-legacy"


def test_an_older_copy_edited_behind_the_programs_back_is_refused(svc, db_path, clock, fresh):
    stored = svc.protocols.stored(STANDARD)
    _old_style_start(svc, clock, "OLD", stored.content, stored.content_hash)
    assert svc.batches.batch("OLD").protocol.step("spin").parameter("rcf").spec.max == 500
    ((text,),) = _rows(db_path, "SELECT unpacked(payload) FROM events WHERE batch_id = 'OLD'")
    _forge(
        db_path,
        "UPDATE events SET payload = ? WHERE batch_id = 'OLD' AND seq = 1",
        text.replace('"max":500.0', '"max":800.0'),
    )
    with pytest.raises(CorruptLog) as err:
        svc.batches.batch("OLD")
    assert str(err.value).startswith(
        "the protocol copied into batch OLD does not match the content hash it was stored "
        "with; run an audit verify and restore the database from a backup"
    )


def test_a_stored_protocol_edited_behind_the_programs_back_folds_no_batch(
    svc, db_path, clock, fresh
):
    svc.batches.start(STANDARD, "alice", "B1")
    imported = _rows(
        db_path,
        "SELECT seq, unpacked(payload) FROM events WHERE batch_id = '@protocols' AND type = ?",
        control.PROTOCOL_IMPORTED,
    )
    seq, text = next((s, t) for s, t in imported if json.loads(t)["id"] == STANDARD)
    assert text.count('"max":500.0') == 1
    _forge(
        db_path,
        "UPDATE events SET payload = ? WHERE batch_id = '@protocols' AND seq = ?",
        text.replace('"max":500.0', '"max":800.0'),  # the spin spec widened
        seq,
    )
    control._COMPILED.clear()  # a new command reads the version from the database
    other = present(Services(SQLiteStore(db_path), clock=clock))
    message = (
        f"stored protocol {STANDARD}@2.0 does not match the content hash it was stored with; "
        "run an audit verify and restore the database from a backup"
    )
    with pytest.raises(CorruptLog) as err:
        other.batches.batch("B1")
    assert str(err.value).startswith(message)
    with pytest.raises(CorruptLog) as err:
        other.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    assert str(err.value).startswith(message)
    assert _rows(db_path, "SELECT count(*) FROM events WHERE batch_id = 'B1'") == [(1,)]


def test_a_batch_naming_a_protocol_the_database_does_not_hold_does_not_fold(svc, clock, fresh):
    payload = {"protocol_hash": "0" * 64, "protocol_id": "cm-gone", "protocol_version": "2.0"}
    with svc.ctx.store.writing("B9", 0) as unit:
        unit.append([NewEvent(ev.BATCH_STARTED, "alice", payload)], iso(clock()))
    with pytest.raises(CorruptLog) as err:
        svc.batches.batch("B9")
    assert str(err.value).startswith(
        "batch B9 was started from protocol cm-gone@2.0 (content hash 000000000000), which "
        "is not stored in this database; run an audit verify and restore the database "
        "from a backup"
    )


def test_each_protocol_version_is_parsed_and_its_machine_built_once(
    svc, db_path, clock, monkeypatch, fresh
):
    parsed: list[str] = []
    machines: list[str] = []
    original = control.from_content

    def counting_build(content):
        parsed.append(content["id"])
        return original(content)

    class CountingPipeline(control.Pipeline):
        def __init__(self, protocol: Protocol) -> None:
            machines.append(protocol.id)
            super().__init__(protocol)

    monkeypatch.setattr(control, "from_content", counting_build)
    monkeypatch.setattr(control, "Pipeline", CountingPipeline)
    for batch_id in ("B1", "B2"):
        svc.batches.start(STANDARD, "alice", batch_id)
        run_to(svc, clock, batch_id, stop_before="filtration")
    svc.batches.start("cm-hypoxia-uc", "bob", "H1")
    other = present(Services(SQLiteStore(db_path), clock=clock))  # another command
    for batch_id in ("B1", "B2", "H1"):
        other.batches.batch(batch_id)
        svc.batches.batch(batch_id)
    clock.advance(hours=1)
    other.batches.record("B2", "filtration", GOOD["filtration"], "alice")
    assert sorted(parsed) == sorted(machines) == ["cm-hypoxia-uc", STANDARD]


# --- a write folds once ----------------------------------------------------------------------
def _count_replays(monkeypatch) -> list[int]:
    """The seq of every event the fold applies from now on, in order."""
    replayed: list[int] = []
    real = batch_module._replay

    def counting(batch, cursor, event):
        replayed.append(event.seq)
        real(batch, cursor, event)

    monkeypatch.setattr(batch_module, "_replay", counting)
    return replayed


def test_each_write_applies_only_its_events_and_leaves_the_batch_a_fold_would_give(
    svc, clock, monkeypatch
):
    """Through a whole life (deviation, hold, correction, verification, review, release and
    a complaint), every write's batch equals the fold of the log as it then is, and each
    write replays the batch's events once plus the ones it wrote."""
    replayed = _count_replays(monkeypatch)
    checked: list[str] = []

    def compared(project):
        def project_and_compare(unit, batch, written, *rest):
            before = batch.seq if batch else 0
            replayed.clear()
            result = project(unit, batch, written, *rest)
            assert replayed == [e.seq for e in written]  # nothing replayed a second time
            again = fold(result.events, svc.ctx.resolve)
            assert result == again and result.projection() == again.projection()
            checked.append(f"{before}+{len(written)}")
            return result

        return project_and_compare

    monkeypatch.setattr(context_module, "project", compared(context_module.project))
    monkeypatch.setattr(quality_module, "project", compared(quality_module.project))

    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    out = svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650 x g"}, "alice")
    dev = out.deviations[0]["deviation_id"]
    svc.batches.hold("B1", "quinn", "spin deviation under review")
    svc.batches.resume("B1", "quinn", "reviewed")
    clock.advance(minutes=5)
    svc.batches.correct("B1", "spin", {"rcf": "450 x g"}, "alice", "typed 650, display read 450")
    run_to(svc, clock, "B1")
    for step in ("filtration", "qc"):
        clock.advance(minutes=10)
        svc.quality.verify_step("B1", step, "bob", PASSWORD)
    clock.advance(minutes=10)
    svc.quality.investigate(dev, "alice", "display misread", impact="none")
    svc.quality.close_deviation(dev, "quinn", PASSWORD, "accepted", "value was in spec")
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    clock.advance(minutes=10)
    svc.quality.release("B1", "quinn", PASSWORD, "meets specification")
    svc.quality.open_complaint("B1", "minor", "quinn", "a customer reports a cloudy vial")

    assert checked[0] == "0+1" and "6+2" in checked  # the start; the spin and its deviation
    assert len(checked) == len(svc.batches.batch("B1").events) - 1  # every write but one


def test_a_write_replays_each_event_of_the_batch_once(svc, clock, monkeypatch):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    replayed = _count_replays(monkeypatch)
    out = svc.batches.record("B1", "spin", GOOD["spin"], "alice")
    assert replayed == [1, 2, 3, 4, 5, 6, 7]  # folded once to decide, then only the new one
    assert out.batch.steps["spin"].status == "done" and out.batch.state == "filtration"


# --- one transaction, no SELECT twice -------------------------------------------------------
def test_a_step_is_written_in_one_transaction_reading_the_tip_and_the_ledger_once(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    said: list[str] = []
    svc.ctx.store.conn.set_trace_callback(said.append)
    try:
        svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650 x g"}, "alice", key="k-1")
    finally:
        svc.ctx.store.conn.set_trace_callback(None)
    inside = said[said.index("BEGIN IMMEDIATE") :]
    assert [s for s in said if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert inside[-1] == "COMMIT"
    selects = [s.split(" WHERE")[0].split(" ORDER")[0] for s in inside if s.startswith("SELECT")]
    assert selects == [
        "SELECT seq, hash, recorded_at FROM events",  # the stream's tip, inside the lock
        "SELECT * FROM ledger",  # the ledger's tail
    ]
    written = [s.split(" (")[0] for s in inside if s.startswith("INSERT INTO")]
    assert written.count("INSERT INTO events") == 2  # the spin and its deviation
    assert written.count("INSERT INTO ledger") == 2


def test_a_unit_that_appends_twice_reads_the_ledger_tail_once(svc, clock):
    said: list[str] = []
    svc.ctx.store.conn.set_trace_callback(said.append)
    try:
        with svc.ctx.store.writing("B1", 0) as unit:
            first = unit.append(
                [NewEvent(ev.BATCH_STARTED, "alice", {"protocol_hash": "0" * 64})], iso(clock())
            )
            second = unit.append([NewEvent(ev.BATCH_HELD, "alice", {}, reason="x")], iso(clock()))
    finally:
        svc.ctx.store.conn.set_trace_callback(None)
    assert sum(s.startswith("SELECT * FROM ledger") for s in said) == 1
    ledger = svc.ctx.store.ledger()
    assert [(e.stream, e.seq) for e in ledger[-2:]] == [("B1", 1), ("B1", 2)]
    assert ledger[-1].prev == ledger[-2].hash and first[0].hash == second[0].prev_hash
    assert all(e.computed_hash() == e.hash for e in ledger)


def test_a_write_from_a_batch_older_than_the_log_is_refused_and_writes_nothing(svc, clock):
    """The write path applies its events to the batch it decided from; a batch behind the
    log (someone wrote in between) is never moved on as if it were current."""
    svc.batches.start(STANDARD, "alice", "B1")
    stale = svc.batches.batch("B1")
    clock.advance(minutes=30)
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    with pytest.raises(ConcurrencyError) as err, svc.ctx.store.writing("B1", 2) as unit:
        written = unit.append([NewEvent(ev.BATCH_HELD, "quinn", {}, reason="x")], iso(clock()))
        context_module.project(unit, stale, written)
    assert str(err.value) == (
        "batch B1 changed while you were entering (entry 1 was decided from, entry 2 is the "
        "last); nothing was written"
    )
    assert err.value.hint == Hint("try_again", batch="B1")
    assert [e.type for e in svc.ctx.store.events("B1")] == [ev.BATCH_STARTED, ev.STEP_RECORDED]
