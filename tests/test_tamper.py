"""Someone edits the SQLite file behind cmprep's back: `audit verify` names the event, the
query-table row that no longer matches the log, and the protection that was removed.

(Forgeries that leave the database consistent in itself, caught only by a checkpoint kept
outside it, are in test_anchor.py.)"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, STANDARD, forger_connect, run_to

from cmprep.cli import main
from cmprep.store.packing import unpack
from cmprep.store.query import BatchFilter, DeviationFilter


@pytest.fixture
def batch_db(svc, clock, db_path):
    """A finished, verified batch: 13 events in B1, plus the user stream."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    svc.batches.start(STANDARD, "bob", "B2")
    assert svc.audit.verify().problems == []
    return db_path


def _sql(db_path, *statements: str) -> None:
    conn = forger_connect(db_path)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


COLUMNS = [
    "batch_id",
    "seq",
    "type",
    "actor",
    "recorded_at",
    "performed_at",
    "reason",
    "payload",
    "prev_hash",
    "hash",
]


def _row_data(row: tuple) -> dict:
    """An events-table row as Event fields, as a forger reading the file would get them."""
    data = dict(zip(COLUMNS, row, strict=True))
    data["payload"] = json.loads(unpack(data["payload"]))
    return data


def _first_break(svc, batch_id=None):
    breaks = svc.audit.verify(batch_id).problems
    assert breaks, "tampering went unnoticed"
    return breaks[0]


def test_an_untouched_database_verifies(svc, batch_db):
    result = svc.audit.verify()
    assert result.problems == [] and result.checked > 15
    assert (result.checkpoints, result.anchors) == (0, None)


def test_a_changed_value_names_its_event(svc, batch_db):
    _sql(
        batch_db,
        "UPDATE events SET payload = packed(replace(unpacked(payload), '\"75\"', '\"79\"')) WHERE batch_id='B1' AND seq=3",
    )
    b = _first_break(svc)
    assert (b.stream, b.seq) == ("B1", 3) and "changed after writing" in b.problem


def test_a_changed_timestamp_names_its_event(svc, batch_db):
    _sql(
        batch_db,
        "UPDATE events SET recorded_at = '2026-01-01T00:00:00Z' WHERE batch_id='B1' AND seq=5",
    )
    assert (_first_break(svc).stream, _first_break(svc).seq) == ("B1", 5)


def test_a_changed_user_names_its_event(svc, batch_db):
    _sql(batch_db, "UPDATE events SET actor = 'bob' WHERE batch_id='B1' AND seq=2")
    assert _first_break(svc).seq == 2


def test_a_rehashed_event_still_breaks_the_link_and_the_ledger(svc, batch_db):
    """A forger who recomputes the event's own hash still breaks the next link and the ledger."""
    from cmprep.events import Event, hash_body

    conn = forger_connect(batch_db)
    row = conn.execute("SELECT * FROM events WHERE batch_id='B1' AND seq=4").fetchone()
    conn.close()
    data = _row_data(row)
    data["actor"] = "bob"
    forged = Event(**data)
    new_hash = hash_body(forged.body())
    _sql(
        batch_db, f"UPDATE events SET actor='bob', hash='{new_hash}' WHERE batch_id='B1' AND seq=4"
    )
    b = _first_break(svc, "B1")
    assert (b.stream, b.seq) == ("B1", 5) and "does not link" in b.problem


def test_swapped_events_are_caught(svc, batch_db):
    _sql(
        batch_db,
        "UPDATE events SET seq = 100 WHERE batch_id='B1' AND seq=3",
        "UPDATE events SET seq = 3 WHERE batch_id='B1' AND seq=4",
        "UPDATE events SET seq = 4 WHERE batch_id='B1' AND seq=100",
    )
    assert _first_break(svc).seq == 3


def test_a_deleted_middle_event_is_caught(svc, batch_db):
    _sql(batch_db, "DELETE FROM events WHERE batch_id='B1' AND seq=6")
    b = _first_break(svc)
    assert b.stream == "B1" and "missing" in b.problem


def test_a_deleted_last_event_is_caught_by_the_head(svc, batch_db):
    _sql(
        batch_db,
        "DELETE FROM events WHERE batch_id='B1' AND seq=(SELECT max(seq) FROM events WHERE batch_id='B1')",
    )
    b = _first_break(svc, "B1")
    assert "events were removed" in b.problem


def test_a_deleted_last_event_with_the_head_fixed_up_is_caught_by_the_ledger(svc, batch_db):
    conn = forger_connect(batch_db)
    last, prev = conn.execute(
        "SELECT seq, prev_hash FROM events WHERE batch_id='B1' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    conn.close()
    _sql(
        batch_db,
        f"DELETE FROM events WHERE batch_id='B1' AND seq={last}",
        f"UPDATE heads SET seq={last - 1}, hash='{prev}' WHERE batch_id='B1'",
    )
    b = _first_break(svc, "B1")
    assert b.seq == last and "ledger lists this event but it is missing" in b.problem


def test_a_signature_moved_to_other_content_is_caught(svc, batch_db):
    """Copying bob's verification of filtration onto qc: the content hash gives it away."""
    from cmprep.events import hash_body

    conn = forger_connect(batch_db)
    row = conn.execute(
        "SELECT seq, unpacked(payload) FROM events WHERE batch_id='B1' AND type='step_verified'"
    ).fetchone()
    conn.close()
    seq, payload = row
    data = json.loads(payload)
    data["step"] = "qc"
    data["signature"]["subject"]["id"] = "qc"
    _sql(
        batch_db,
        f"UPDATE events SET payload='{json.dumps(data)}' WHERE batch_id='B1' AND seq={seq}",
    )
    b = _first_break(svc, "B1")
    assert b.seq == seq
    assert hash_body  # the chain breaks first; with a rehash the signature check names it too


def test_an_inserted_user_is_caught(svc, batch_db):
    _sql(
        batch_db,
        "DELETE FROM events WHERE batch_id='@users' AND seq=(SELECT max(seq) FROM events WHERE batch_id='@users')",
    )
    b = _first_break(svc, "@users")
    assert b.stream == "@users"


def test_the_command_names_the_event_and_exits_1(batch_db, monkeypatch):
    monkeypatch.setenv("CMPREP_DB", str(batch_db))
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "OK:" in ok.output
    _sql(
        batch_db,
        "UPDATE events SET payload = packed(replace(unpacked(payload), '400', '450')) WHERE batch_id='B1' AND type='step_recorded'",
    )
    bad = CliRunner().invoke(main, ["audit", "verify", "B1"])
    assert bad.exit_code == 1
    assert "BROKEN B1: event" in bad.output and "changed after writing" in bad.output


def _rehash_everything(db_path) -> None:
    """A forger who recomputes every chain hash, head and the ledger after an edit."""
    from cmprep.events import GENESIS, Event, hash_body, ledger_hash

    conn = forger_connect(db_path)
    for t in ("events_no_update", "events_no_delete", "ledger_no_update", "ledger_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {t}")
    new_hashes = {}
    for stream in [r[0] for r in conn.execute("SELECT DISTINCT batch_id FROM events")]:
        prev = GENESIS
        for row in conn.execute(
            "SELECT * FROM events WHERE batch_id=? ORDER BY seq", (stream,)
        ).fetchall():
            data = _row_data(row)
            data["prev_hash"] = prev
            h = hash_body(Event(**data).body())
            conn.execute(
                "UPDATE events SET prev_hash=?, hash=? WHERE batch_id=? AND seq=?",
                (prev, h, stream, data["seq"]),
            )
            new_hashes[(stream, data["seq"])] = h
            prev = h
        conn.execute("UPDATE heads SET hash=? WHERE batch_id=?", (prev, stream))
    prev = GENESIS
    for pos, stream, seq in conn.execute(
        "SELECT pos, batch_id, seq FROM ledger ORDER BY pos"
    ).fetchall():
        eh = new_hashes[(stream, seq)]
        h = ledger_hash(pos, stream, seq, eh, prev)
        conn.execute(
            "UPDATE ledger SET event_hash=?, prev=?, hash=? WHERE pos=?", (eh, prev, h, pos)
        )
        prev = h
    conn.commit()
    conn.close()


def test_a_signature_moved_to_other_content_is_caught_even_if_every_hash_is_recomputed(
    svc, batch_db
):
    conn = forger_connect(batch_db)
    seq, payload = conn.execute(
        "SELECT seq, unpacked(payload) FROM events WHERE batch_id='B1' AND type='step_verified'"
    ).fetchone()
    conn.close()
    data = json.loads(payload)
    data["step"] = "qc"
    data["signature"]["subject"]["id"] = "qc"
    _sql(
        batch_db,
        f"UPDATE events SET payload='{json.dumps(data)}' WHERE batch_id='B1' AND seq={seq}",
    )
    _rehash_everything(batch_db)
    b = _first_break(svc, "B1")
    assert b.seq == seq and "does not match the content it signs" in b.problem


def test_a_full_rehash_breaks_every_later_signature(svc, batch_db):
    _sql(batch_db, "UPDATE events SET actor='bob' WHERE batch_id='B1' AND seq=2")
    _rehash_everything(batch_db)
    b = _first_break(svc, "B1")
    assert "verified signature does not match" in b.problem


def test_a_full_rehash_changes_the_ledger_head_printed_on_records(svc, batch_db):
    """The log's own checks pass a full rehash of unsigned events. What the forger left
    behind inside the database (the dropped triggers, a query row still saying bob) is
    reported, and the ledger head kept outside changes; test_anchor.py shows a signed
    checkpoint catching it even when those traces are covered up too."""
    before = svc.audit.ledger_head()
    # B2 has no signature to anchor it (in B1, bob's signature would give the edit away)
    _sql(batch_db, "UPDATE events SET actor='alice' WHERE batch_id='B2' AND seq=1")
    _rehash_everything(batch_db)
    problems = svc.audit.verify().problems
    assert [p for p in problems if p.label == "BROKEN"] == []  # the log itself passes...
    assert {p.label for p in problems} == {"UNPROTECTED", "DIFFERS"}  # ...its traces do not
    assert "batches table, B2: started_by is 'bob' in the table, 'alice' in the log" in [
        str(p) for p in problems
    ]
    assert svc.audit.ledger_head() != before  # ...nor a comparison with the head kept outside


# --- the query tables: what lists, reports and QC history read -------------------------------
def _raw(db_path, *statements: str) -> None:
    """Edit the file with its triggers left in place (the query tables have none)."""
    conn = forger_connect(db_path)
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


def _said(svc, label: str, batch_id: str | None = None) -> list[str]:
    return [str(p) for p in svc.audit.verify(batch_id).problems if p.label == label]


@pytest.fixture
def deviation_db(svc, batch_db):
    """batch_db with DEV-0001 opened by hand on B2 (open, minor, at isolation)."""
    svc.quality.open_deviation("B2", "isolation", "minor", "alice", "a flask was dropped")
    (row,) = svc.quality.deviations()
    assert (row["deviation_id"], row["status"]) == ("DEV-0001", "open")
    assert svc.audit.verify().problems == []
    return batch_db


def test_a_batch_marked_released_in_its_state_column_alone_is_reported(svc, batch_db):
    """The row reads back unchanged, but a list by state (and the QC history, which takes
    released batches) now finds B1 among the released."""
    state = svc.batches.batch("B1").state
    _raw(batch_db, "UPDATE batches SET state = 'released' WHERE batch_id = 'B1'")
    assert [r["batch_id"] for r in svc.batches.batches(BatchFilter(state="released"))] == ["B1"]
    assert _said(svc, "DIFFERS") == [
        f"batches table, B1: a search by state = {state!r} misses it, though the log says it "
        "matches"
    ]


def test_a_batch_row_rewritten_as_released_is_reported_column_by_column(svc, batch_db):
    state = svc.batches.batch("B1").state
    _raw(
        batch_db,
        "UPDATE batches SET state = 'released', data = json_set(data, '$.state', 'released') "
        "WHERE batch_id = 'B1'",
    )
    assert next(iter(svc.audit.report()["released"]))["batch_id"] == "B1"  # the report believes it
    assert _said(svc, "DIFFERS") == [
        f"batches table, B1: state is 'released' in the table, {state!r} in the log",
        f"batches table, B1: a search by state = {state!r} misses it, though the log says it "
        "matches",
    ]
    assert _said(svc, "DIFFERS", "B2") == []  # verifying one batch reports its rows only
    svc.audit.rebuild_projections()
    assert svc.audit.verify().problems == []


def test_a_deviation_closed_in_the_table_only_is_reported(svc, deviation_db):
    _raw(
        deviation_db,
        "UPDATE deviations SET status = 'closed', data = json_set(data, '$.status', 'closed', "
        "'$.decision', 'accepted', '$.closed_by', 'quinn') WHERE deviation_id = 'DEV-0001'",
    )
    assert svc.quality.deviations(DeviationFilter(status="closed"))[0]["decision"] == "accepted"
    assert _said(svc, "DIFFERS") == [
        "deviations table, DEV-0001: closed_by is 'quinn' in the table, (none) in the log; "
        "decision is 'accepted' in the table, (none) in the log; status is 'closed' in the "
        "table, 'open' in the log",
        "deviations table, DEV-0001: a search by status = 'open' misses it, though the log "
        "says it matches",
    ]
    assert _said(svc, "DIFFERS", "B1") == [] and len(_said(svc, "DIFFERS", "B2")) == 2


def test_a_deleted_deviation_row_is_reported(svc, deviation_db):
    _raw(deviation_db, "DELETE FROM deviations WHERE deviation_id = 'DEV-0001'")
    assert svc.quality.deviations() == [] and svc.audit.report()["total"] == 0
    said = _said(svc, "DIFFERS")
    assert said[0] == "deviations table, DEV-0001: missing from the table; the log has it"
    missed = "a search by status = 'open' misses it, though the log says it matches"
    assert f"deviations table, DEV-0001: {missed}" in said
    assert all(s.startswith("deviations table, DEV-0001: ") for s in said)


def test_a_deviation_moved_to_another_day_in_its_time_column_is_reported(svc, deviation_db):
    """The audit report counts deviations by period from this column."""
    _raw(
        deviation_db,
        "UPDATE deviations SET opened_at = '2020-01-01T00:00:00Z' WHERE deviation_id = 'DEV-0001'",
    )
    (said,) = _said(svc, "DIFFERS")
    assert said.startswith("deviations table, DEV-0001: a search by deviation_id = 'DEV-0001', ")
    assert said.endswith("misses it, though the log says it matches")


def test_an_invented_batch_row_is_reported(svc, batch_db):
    _raw(
        batch_db,
        "INSERT INTO batches SELECT 'B9', protocol_id, protocol_version, protocol_hash, state, "
        "started_at, started_by, updated_at, head_seq, open_deviations, "
        "json_set(data, '$.batch_id', 'B9') FROM batches WHERE batch_id = 'B2'",
    )
    assert "batches table, B9: in the table, but not in the log" in _said(svc, "DIFFERS")


# --- the protections of the log ---------------------------------------------------------------
def test_a_dropped_trigger_is_reported_by_name(svc, batch_db):
    _raw(batch_db, "DROP TRIGGER ledger_no_delete")
    assert [str(p) for p in svc.audit.verify().problems] == [
        "database: the trigger ledger_no_delete is missing: DELETE of the ledger table is no "
        "longer refused"
    ]


def test_a_trigger_replaced_by_one_that_refuses_nothing_is_reported(svc, batch_db):
    _raw(
        batch_db,
        "DROP TRIGGER events_no_update",
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT 1; END",
    )
    assert _said(svc, "UNPROTECTED") == [
        "database: the trigger events_no_update was replaced by another: UPDATE of the events "
        "table may no longer be refused"
    ]


def test_the_command_names_table_rows_and_protections_and_says_what_to_do(batch_db, monkeypatch):
    monkeypatch.setenv("CMPREP_DB", str(batch_db))
    _raw(
        batch_db,
        "UPDATE batches SET state = 'released', data = json_set(data, '$.state', 'released') "
        "WHERE batch_id = 'B1'",
        "DROP TRIGGER events_no_delete",
    )
    bad = CliRunner().invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert (
        "UNPROTECTED database: the trigger events_no_delete is missing: DELETE of the events "
        "table is no longer refused"
    ) in bad.output
    assert "DIFFERS batches table, B1: state is 'released' in the table, " in bad.output
    assert "3 problem(s) in" in bad.output
    assert "then recompute them with `cmprep db rebuild`" in bad.output
    assert "restore the database from a verified backup" in bad.output
