"""Someone edits the SQLite file behind cmprep's back: `audit verify` names the event."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, STANDARD, run_to

from cmprep.cli import main


@pytest.fixture
def batch_db(svc, clock, db_path):
    """A finished, verified batch: 13 events in B1, plus the user stream."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    svc.batches.start(STANDARD, "bob", "B2")
    assert svc.audit.verify()[1] == []
    return db_path


def _sql(db_path, *statements: str) -> None:
    conn = sqlite3.connect(db_path)
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
    data["payload"] = json.loads(data["payload"])
    return data


def _first_break(svc, batch_id=None):
    _checked, breaks = svc.audit.verify(batch_id)
    assert breaks, "tampering went unnoticed"
    return breaks[0]


def test_an_untouched_database_verifies(svc, batch_db):
    checked, breaks = svc.audit.verify()
    assert breaks == [] and checked > 15


def test_a_changed_value_names_its_event(svc, batch_db):
    _sql(
        batch_db,
        "UPDATE events SET payload = replace(payload, '\"75\"', '\"79\"') WHERE batch_id='B1' AND seq=3",
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

    conn = sqlite3.connect(batch_db)
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
    conn = sqlite3.connect(batch_db)
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

    conn = sqlite3.connect(batch_db)
    row = conn.execute(
        "SELECT seq, payload FROM events WHERE batch_id='B1' AND type='step_verified'"
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
        "UPDATE events SET payload = replace(payload, '400', '450') WHERE batch_id='B1' AND type='step_recorded'",
    )
    bad = CliRunner().invoke(main, ["audit", "verify", "B1"])
    assert bad.exit_code == 1
    assert "BROKEN B1: event" in bad.output and "changed after writing" in bad.output


def _rehash_everything(db_path) -> None:
    """A forger who recomputes every chain hash, head and the ledger after an edit."""
    from cmprep.events import GENESIS, Event, hash_body, ledger_hash

    conn = sqlite3.connect(db_path)
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
    conn = sqlite3.connect(batch_db)
    seq, payload = conn.execute(
        "SELECT seq, payload FROM events WHERE batch_id='B1' AND type='step_verified'"
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
    """What no internal check can see, the ledger head kept outside the database shows."""
    before = svc.audit.ledger_head()
    # B2 has no signature to anchor it (in B1, bob's signature would give the edit away)
    _sql(batch_db, "UPDATE events SET actor='alice' WHERE batch_id='B2' AND seq=1")
    _rehash_everything(batch_db)
    assert svc.audit.verify()[1] == []  # a perfect forgery passes the internal checks...
    assert svc.audit.ledger_head() != before  # ...but not a comparison with the head kept outside
