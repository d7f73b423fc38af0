"""`audit verify` reads the log as a stream: its memory does not grow with the log, one
batch's verification reads that batch's rows only, and the ledger head is read alone.

Also here: the stored bytes it hashes (each payload kept as its canonical JSON, old
databases upgraded to that), and the problems it names from its streamed reads.
No timings: those are in bench/bench_verify.py.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PASSWORD,
    STANDARD,
    Clock,
    approve_bundled,
    forger_connect,
    run_to,
    seed_people,
    traced_peak,
)
from hypothesis import given
from hypothesis import strategies as st

from cmprep.events import NewEvent, StoredEvent, canonical_json, event_body, seal_stored
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

T = "2026-11-02T09:00:00Z"


def lab(path: Path, clock: Clock) -> Services:
    """A lab with its people and protocols, and one batch B1 recorded, verified, signed."""
    svc = approve_bundled(seed_people(Services(SQLiteStore(path, create=True), clock=clock)))
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    return svc


def grow(svc: Services, streams: int, per_stream: int = 20, prefix: str = "S") -> None:
    """STREAMS more streams of PER_STREAM small events each, written straight through the
    store's units (what the log's own checks read; no batch is folded for them)."""
    store = svc.store
    store.conn.execute("PRAGMA synchronous=OFF")  # a test database: speed over durability
    for i in range(streams):
        with store.writing(f"{prefix}{i:05d}", 0) as unit:
            unit.append(
                [NewEvent("note", "alice", {"n": n, "text": "x" * 40}) for n in range(per_stream)],
                T,
            )


def edit(path: Path, *statements: str) -> None:
    """Change the file behind cmprep's back, its append-only rules lifted first."""
    conn = forger_connect(path)
    for trigger in ("events_no_update", "events_no_delete", "ledger_no_update", "ledger_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


def said(svc: Services, batch_id: str | None = None) -> list[str]:
    return [f"{p.label} {p}" for p in svc.audit.verify(batch_id).problems]


# --- memory does not grow with the log ------------------------------------------------------------
def _peak(svc: Services) -> int:
    """The most memory Python held at once during one `audit verify` (after one run to
    fill what any run keeps: compiled protocols, the regular expressions)."""
    assert svc.audit.verify().problems == []
    result, peak = traced_peak(svc.audit.verify)
    assert result.problems == []
    return peak


def test_verifying_ten_times_the_events_takes_no_more_memory(tmp_path: Path):
    small, large = lab(tmp_path / "small.db", Clock()), lab(tmp_path / "large.db", Clock())
    grow(small, 100)  # 2,000 events
    grow(large, 1000)  # 20,000 events
    assert large.audit.verify().checked - small.audit.verify().checked == 18_000
    assert _peak(large) <= 1.5 * _peak(small)


# --- one batch reads one batch ---------------------------------------------------------------------
class Counting:
    """The store, counting what each call reads: a row for each item of a list, dict or
    iterator (counted as it is consumed), one for anything else it returns."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rows = 0
        self.calls: Counter[str] = Counter()
        self.args: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if name.startswith("_") or not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.args.append((name, args))
            result = found(*args, **kwargs)
            if isinstance(result, Iterator):
                return self._each(result)
            if isinstance(result, (list, dict)):
                self.rows += len(result)
            elif result is not None:
                self.rows += 1
            return result

        return counted

    def _each(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self.rows += 1
            yield item


def _reads(svc: Services, clock: Clock, batch_id: str) -> Counting:
    counting = Counting(svc.store)
    result = Services(counting, clock=clock).audit.verify(batch_id)  # type: ignore[arg-type]
    assert result.problems == [] and result.checked == len(svc.store.events(batch_id))
    return counting


def test_verifying_one_batch_reads_its_rows_whatever_else_the_log_holds(tmp_path: Path):
    clock = Clock()
    svc = lab(tmp_path / "lab.db", clock)
    grow(svc, 20, prefix="A")  # before and after B1's last events: ledger entries between
    clock.advance(hours=1)
    svc.quality.open_deviation("B1", "isolation", "minor", "alice", "a flask was dropped")
    grow(svc, 20, prefix="Z")
    before = _reads(svc, clock, "B1")
    grow(svc, 300, prefix="M")
    after = _reads(svc, clock, "B1")
    assert after.rows == before.rows and after.calls == before.calls
    whole = {"ledger", "stream_ids", "batch_ids", "recorded_heads", "unlogged_batches"}
    assert whole.isdisjoint(after.calls)
    for name in ("iter_events", "iter_ledger", "unledgered", "emptied_streams"):
        assert {args for called, args in after.args if called == name} == {("B1",)}, name
    read = {args[0] for called, args in after.args if called == "events"}
    assert read <= {"B1", "@users", "@protocols", "@settings"}


def test_the_ledger_head_is_one_read_of_the_newest_entry(tmp_path: Path):
    clock = Clock()
    svc = lab(tmp_path / "lab.db", clock)
    counting = Counting(svc.store)
    mark = Services(counting, clock=clock).audit.ledger_mark()  # type: ignore[arg-type]
    last = svc.store.ledger()[-1]
    assert (mark.pos, mark.hash) == (last.pos, last.hash)
    assert counting.calls == {"ledger_tail": 1} and counting.rows == 1


# --- the bytes hashed are the bytes stored ---------------------------------------------------------
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)


@given(
    fields=st.tuples(text, st.integers(1, 10**9), text, text, text, st.none() | text),
    reason=st.none() | text,
    payload=st.dictionaries(text, json_values, max_size=4),
    prev=text,
)
def test_the_stored_bytes_are_the_canonical_body_the_hash_covers(fields, reason, payload, prev):
    batch_id, seq, kind, actor, at, performed = fields
    body = event_body(batch_id, seq, kind, actor, at, performed, reason, payload, prev)
    stored = StoredEvent(
        batch_id, seq, kind, actor, at, performed, reason, canonical_json(payload), prev, "h"
    )
    assert stored.body() == canonical_json(body).encode()
    assert stored.event().body() == body


@given(
    fields=st.tuples(text, st.integers(1, 10**9), text, text, text, st.none() | text),
    reason=st.none() | text,
    payload=st.dictionaries(text, json_values, max_size=4),
    prev=text,
)
def test_sealing_writes_the_payload_out_once_and_hashes_the_canonical_body(
    fields, reason, payload, prev
):
    """The write path's one serialisation gives the hash and the stored text that the
    whole canonical body would."""
    batch_id, seq, kind, actor, at, performed = fields
    new = NewEvent(kind, actor, payload, reason=reason, performed_at=performed)
    event, text = seal_stored(batch_id, seq, prev, at, new)
    body = event_body(batch_id, seq, kind, actor, at, performed, reason, payload, prev)
    assert event.hash == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    assert text == canonical_json(payload) and event.body() == body and event.hash_holds()


def test_a_payload_kept_in_another_spelling_is_judged_by_its_content(svc, clock, db_path):
    """A payload written by hand (or by an older cmprep) with spaces and escapes: same
    content, same hash, nothing to report; change its content and it is caught."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="pbs_wash")
    conn = forger_connect(db_path)
    ((text,),) = conn.execute("SELECT unpacked(payload) FROM events WHERE batch_id='B1' AND seq=2")
    conn.close()
    spelled = json.dumps(json.loads(text), indent=1)  # ASCII escapes, spaces, new lines
    assert spelled != text
    edit(db_path, f"UPDATE events SET payload = '{spelled}' WHERE batch_id='B1' AND seq=2")
    assert svc.store.events("B1")[1].payload == json.loads(text)
    assert [p for p in said(svc) if not p.startswith("UNPROTECTED")] == []
    edit(
        db_path,
        "UPDATE events SET payload = packed(replace(unpacked(payload), 'UC', 'AT')) WHERE seq=2 AND batch_id='B1'",
    )
    assert [p for p in said(svc, "B1") if p.startswith("BROKEN")] == [
        "BROKEN B1: event 2: content does not match its hash (changed after writing)"
    ]


def _as_schema_3(path: Path) -> None:
    """Make the database what cmprep wrote before schema 4: payloads with spaces."""
    conn = forger_connect(path)
    conn.execute("DROP TRIGGER events_no_update")
    rows = conn.execute("SELECT batch_id, seq, unpacked(payload) FROM events").fetchall()
    for stream, seq, text in rows:
        old = json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True)
        conn.execute(
            "UPDATE events SET payload = ? WHERE batch_id = ? AND seq = ?", (old, stream, seq)
        )
    conn.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events\n"
        "BEGIN SELECT RAISE(ABORT, 'events are append-only: write a correction instead'); END"
    )
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()


def test_upgrading_keeps_each_payload_as_the_canonical_bytes_its_hash_covers(tmp_path: Path):
    path = tmp_path / "old.db"
    svc = lab(path, Clock())
    hashes = [e.hash for e in svc.store.events("B1")]
    svc.store.close()
    _as_schema_3(path)
    conn = forger_connect(path)
    spaced = conn.execute("SELECT count(*) FROM events WHERE payload LIKE '%\": %'").fetchone()
    conn.close()
    assert spaced[0] > 0
    store = SQLiteStore(path)  # the upgrade runs here
    rows = [r for r, _ in store.iter_events()]
    assert all(r.payload == canonical_json(json.loads(r.payload)) for r in rows)
    assert all(hashlib.sha256(r.body()).hexdigest() == r.hash for r in rows)
    assert [e.hash for e in store.events("B1")] == hashes
    assert store.missing_protections() == []  # the rule lifted for the upgrade is back
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] >= 4
    assert Services(store, clock=Clock()).audit.verify().problems == []


# --- what the streamed reads name -------------------------------------------------------------------
def test_a_ledger_entry_rewritten_breaks_the_ledger_there_for_the_log_and_its_batch(
    svc, clock, db_path
):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="pbs_wash")
    pos = svc.store.ledger()[-2].pos  # B1's event 2
    edit(db_path, f"UPDATE ledger SET prev = '{'0' * 64}' WHERE pos = {pos}")
    expected = f"BROKEN B1: event 2: the global ledger is broken at position {pos}"
    assert [p for p in said(svc) if p.startswith("BROKEN")] == [expected]
    assert [p for p in said(svc, "B1") if p.startswith("BROKEN")] == [expected]


def test_an_event_the_ledger_does_not_name_is_said_inserted(svc, clock, db_path):
    svc.batches.start(STANDARD, "alice", "B1")
    pos = svc.store.ledger()[-1].pos
    edit(db_path, f"DELETE FROM ledger WHERE pos = {pos}")
    inserted = "BROKEN B1: event 1: the event is not in the global ledger (inserted afterwards)"
    assert inserted in said(svc) and inserted in said(svc, "B1")


def test_a_stream_emptied_with_its_rows_left_is_said_for_the_log_and_the_tables(
    svc, clock, db_path
):
    svc.batches.start(STANDARD, "alice", "B1")
    edit(db_path, "DELETE FROM events WHERE batch_id = 'B1'")
    problems = said(svc)
    assert "BROKEN B1: event 1: all events of this stream were removed" in problems
    assert "DIFFERS batches table, B1: in the table, but not in the log" in problems
    assert "BROKEN B1: event 1: all events of this stream were removed" in said(svc, "B1")


# --- the query tables, compared batch by batch ----------------------------------------------------
@pytest.fixture
def two_batches(svc, clock):
    """B1 and B2 started; DEV-0001 opened by hand on B2."""
    svc.batches.start(STANDARD, "alice", "B1")
    clock.advance(minutes=5)
    svc.batches.start(STANDARD, "bob", "B2")
    svc.quality.open_deviation("B2", "isolation", "minor", "alice", "a flask was dropped")
    assert svc.audit.verify().problems == []
    return svc


def _differs(svc: Services, batch_id: str | None = None) -> list[str]:
    return [str(p) for p in svc.audit.verify(batch_id).problems if p.label == "DIFFERS"]


def test_a_deviation_moved_to_another_batch_in_its_column_is_said_by_both(two_batches, db_path):
    edit(db_path, "UPDATE deviations SET batch_id = 'B1' WHERE deviation_id = 'DEV-0001'")
    misses = (
        "deviations table, DEV-0001: a search by batch_id = 'B2' misses it, though the log "
        "says it matches"
    )
    finds = (
        "deviations table, DEV-0001: a search by batch_id = 'B1' finds it, though the log "
        "says it does not match"
    )
    assert _differs(two_batches) == [finds, misses]
    assert _differs(two_batches, "B1") == [finds]
    assert _differs(two_batches, "B2") == [misses]


def test_a_deviation_row_invented_under_a_batch_is_said_not_in_the_log(two_batches, db_path):
    edit(
        db_path,
        "INSERT INTO deviations SELECT 'DEV-0009', 'B1', protocol_id, step, parameter, severity, "
        "status, opened_by, opened_at, json_set(data, '$.deviation_id', 'DEV-0009', "
        "'$.batch_id', 'B1') FROM deviations WHERE deviation_id = 'DEV-0001'",
    )
    assert _differs(two_batches) == ["deviations table, DEV-0009: in the table, but not in the log"]
    assert _differs(two_batches, "B2") == []
