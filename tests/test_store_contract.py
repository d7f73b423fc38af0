"""The store contract, tested through ``EventStore`` and ``UnitOfWork`` only.

Every backend must pass this file unchanged. Adding one (PostgreSQL) is one more entry in
``BACKENDS``: a factory giving a ``Backend`` that opens stores on one fresh database and
can run one raw statement behind the store's back (to show the event log refuses UPDATE and
DELETE). Nothing else here may name a backend.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby, pairwise
from pathlib import Path
from typing import Any

import pytest

from cmprep.domain.audit import verify
from cmprep.errors import ClockBehind, ConcurrencyError, CorruptLog, StoreError
from cmprep.events import GENESIS, LedgerEntry, NewEvent, canonical_json, ledger_hash
from cmprep.store import EventStore, UnitOfWork
from cmprep.store.query import (
    LOT_USE_COLUMNS,
    QC_POINT_COLUMNS,
    ROW,
    BatchFilter,
    DeviationFilter,
    Projected,
    QCPointFilter,
)


# --- backends -------------------------------------------------------------------------------
@dataclass
class Backend:
    """How the suite reaches one backend: nothing but opening, and one raw edit."""

    open: Callable[[], EventStore]  # a new store (its own connection) on the test database
    # edits the stored log directly, as someone with database access would; the action is
    # one of FORGERIES, the backend phrases it in its own SQL
    forge: Callable[[str, str, int], None]
    refused: tuple[type[BaseException], ...]  # what ``forge`` raises when the database says no
    # removes the rule that refuses "update_event" (SQLite: a trigger), as someone with
    # database access could; ``missing_protections`` must then name it
    unprotect: Callable[[], None]
    # removes every rule that refuses FORGERIES, so each can be made and verification's
    # reads shown to see it
    unprotect_all: Callable[[], None]


FORGERIES = ("update_event", "delete_event", "update_ledger", "delete_ledger")
# the rules refusing them (SQLite and PostgreSQL name them alike)
TRIGGERS = ("events_no_update", "events_no_delete", "ledger_no_update", "ledger_no_delete")


def _sqlite(tmp_path: Path) -> Backend:
    from cmprep.store.sqlite import SQLiteStore

    path = tmp_path / "contract.db"
    sql = {
        "update_event": "UPDATE events SET actor = 'mallory' WHERE batch_id = ? AND seq = ?",
        "delete_event": "DELETE FROM events WHERE batch_id = ? AND seq = ?",
        "update_ledger": "UPDATE ledger SET hash = 'x' WHERE batch_id = ? AND seq = ?",
        "delete_ledger": "DELETE FROM ledger WHERE batch_id = ? AND seq = ?",
    }

    def forge(action: str, stream: str, seq: int) -> None:
        conn = sqlite3.connect(path)
        try:
            conn.execute(sql[action], (stream, seq))
            conn.commit()
        finally:
            conn.close()

    def unprotect(*triggers: str) -> None:
        conn = sqlite3.connect(path)
        try:
            for trigger in triggers or ("events_no_update",):
                conn.execute(f"DROP TRIGGER {trigger}")
            conn.commit()
        finally:
            conn.close()

    return Backend(
        open=lambda: SQLiteStore(path, create=True),
        forge=forge,
        refused=(sqlite3.DatabaseError,),
        unprotect=unprotect,
        unprotect_all=lambda: unprotect(*TRIGGERS),
    )


def _postgresql(tmp_path: Path) -> Backend:
    """A fresh database on the session's throwaway PostgreSQL cluster (tests/pgserver.py)."""
    from pgserver import cluster, psycopg_or_skip

    psycopg_or_skip()
    import psycopg

    from cmprep.store.postgres import PostgresStore

    url = cluster().new_database()
    sql = {
        "update_event": "UPDATE events SET actor = 'mallory' WHERE batch_id = %s AND seq = %s",
        "delete_event": "DELETE FROM events WHERE batch_id = %s AND seq = %s",
        "update_ledger": "UPDATE ledger SET hash = 'x' WHERE batch_id = %s AND seq = %s",
        "delete_ledger": "DELETE FROM ledger WHERE batch_id = %s AND seq = %s",
    }

    def forge(action: str, stream: str, seq: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql[action], (stream, seq))  # type: ignore[call-overload]

    def unprotect(*triggers: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for trigger in triggers or ("events_no_update",):
                table = trigger.split("_")[0]
                conn.execute(f"DROP TRIGGER {trigger} ON {table}")  # type: ignore[call-overload]

    return Backend(
        open=lambda: PostgresStore(url, create=True),
        forge=forge,
        refused=(psycopg.Error,),
        unprotect=unprotect,
        unprotect_all=lambda: unprotect(*TRIGGERS),
    )


# name -> factory: every backend passes this whole file
BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": _sqlite, "postgresql": _postgresql}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[EventStore]:
    s = backend.open()
    yield s
    s.close()


# --- helpers --------------------------------------------------------------------------------
T0 = "2026-11-02T08:00:00Z"
T1 = "2026-11-02T09:00:00Z"
T2 = "2026-11-02T10:00:00Z"


def new(n: int = 1, actor: str = "alice", **payload: Any) -> list[NewEvent]:
    return [NewEvent("step_recorded", actor, {"i": i, **payload}) for i in range(n)]


def append(store: EventStore, stream: str, n: int = 1, at: str = T0, expected: int | None = None):
    if expected is None:
        head = store.head(stream)
        expected = head.seq if head else 0
    with store.writing(stream, expected) as unit:
        return unit.append(new(n), at)


def snapshot(store: EventStore) -> tuple:
    """Everything the store holds that a rolled-back unit must not have changed."""
    return (
        {s: store.events(s) for s in store.stream_ids()},
        store.recorded_heads(),
        store.ledger(),
        store.batch_rows(),
        store.deviation_rows(),
        store.qc_points(QCPointFilter()),
    )


def batch_row(batch_id: str, **over: Any) -> dict[str, Any]:
    row = {
        "batch_id": batch_id,
        "protocol_id": "cm-standard",
        "protocol_version": "1.0",
        "protocol_hash": "ab" * 32,
        "state": "in_progress",
        "started_at": T0,
        "started_by": "alice",
        "updated_at": T0,
        "head_seq": 1,
        "open_deviations": 0,
        "extra": {"nested": ["kept", "as", "given"]},
    }
    return {**row, **over}


def deviation_row(deviation_id: str, **over: Any) -> dict[str, Any]:
    row = {
        "deviation_id": deviation_id,
        "batch_id": "B1",
        "protocol_id": "cm-standard",
        "step": "expansion",
        "parameter": "viability",
        "severity": "major",
        "status": "open",
        "opened_by": "alice",
        "opened_at": T0,
        "message": "viability 80 % below 90 %",
    }
    return {**row, **over}


# --- the protocols ----------------------------------------------------------------------
def test_the_backend_and_its_unit_satisfy_the_protocols(store: EventStore):
    assert isinstance(store, EventStore)
    with store.writing("B1", 0) as unit:
        assert isinstance(unit, UnitOfWork)


# --- appending and reading --------------------------------------------------------------
def test_appended_events_read_back_in_order_with_every_field(store: EventStore):
    events = [
        NewEvent("batch_started", "alice", {"protocol_id": "p", "µ": "Ü", "n": [1, {"a": None}]}),
        NewEvent("step_recorded", "bob", {"step": "s1"}, reason="late", performed_at=T0),
        NewEvent("step_recorded", "alice", {}),
    ]
    with store.writing("B1", 0) as unit:
        written = unit.append(events, T1)
    assert store.events("B1") == written
    assert [e.seq for e in written] == [1, 2, 3]
    assert [(e.type, e.actor, e.payload) for e in written] == [
        (n.type, n.actor, n.payload) for n in events
    ]
    assert written[1].reason == "late" and written[1].performed_at == T0
    assert all(e.recorded_at == T1 for e in written)


def test_seqs_are_gapless_and_each_event_is_chained_to_the_one_before(store: EventStore):
    append(store, "B1", 2)
    append(store, "B1", 3, at=T1)
    events = store.events("B1")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    prev = GENESIS
    for e in events:
        assert e.prev_hash == prev and e.hash == e.computed_hash()
        prev = e.hash


def test_appends_within_one_unit_continue_after_each_other(store: EventStore):
    with store.writing("B1", 0) as unit:
        first = unit.append(new(2), T0)
        second = unit.append(new(1), T0)
        assert unit.append([], T0) == []
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert second[0].prev_hash == first[-1].hash
    assert store.events("B1") == first + second


def test_an_unknown_stream_has_no_events_and_no_head(store: EventStore):
    assert store.events("nope") == []
    assert store.head("nope") is None


def test_the_head_is_the_last_event_and_is_also_recorded_apart(store: EventStore):
    written = append(store, "B1", 3)
    append(store, "B2", 1)
    assert tuple(store.head("B1")) == (3, written[-1].hash)
    assert store.head("B1").seq == 3 and store.head("B1").hash == written[-1].hash
    heads = store.recorded_heads()
    assert set(heads) == {"B1", "B2"}
    assert tuple(heads["B1"]) == (3, written[-1].hash)


def test_what_was_written_is_there_for_another_connection_and_after_reopening(
    backend: Backend, store: EventStore
):
    written = append(store, "B1", 2)
    other = backend.open()
    try:
        assert other.events("B1") == written
        assert other.ledger() == store.ledger()
    finally:
        other.close()
    store.close()
    again = backend.open()
    try:
        assert again.events("B1") == written
    finally:
        again.close()


# --- refusals: a stale writer, a taken id, a clock behind ---------------------------------
def test_a_stale_expected_seq_is_refused_with_try_again_and_nothing_is_written(
    store: EventStore,
):
    append(store, "B1", 2)
    before = snapshot(store)
    ran = False
    with (
        pytest.raises(ConcurrencyError, match="changed while you were entering") as err,
        store.writing("B1", 1) as unit,
    ):
        ran = True
        unit.append(new(1), T1)
    assert not ran, "the block must not run when the head moved"
    assert err.value.hint is not None and err.value.hint.kind == "try_again"
    assert err.value.hint.data == {"batch": "B1"}
    assert snapshot(store) == before


def test_a_writer_on_a_second_connection_that_decided_from_an_old_head_is_refused(
    backend: Backend, store: EventStore
):
    append(store, "B1", 1)
    other = backend.open()
    try:
        seen = other.head("B1").seq  # both decide from entry 1
        append(store, "B1", 1, at=T1, expected=1)  # the first one saves
        with (
            pytest.raises(ConcurrencyError, match="someone saved entry 2 first"),
            other.writing("B1", seen) as unit,
        ):
            unit.append(new(1), T2)
    finally:
        other.close()
    assert [e.seq for e in store.events("B1")] == [1, 2]


def test_expecting_a_new_batch_where_one_exists_says_choose_another_id(store: EventStore):
    append(store, "B1", 1)
    before = snapshot(store)
    with (
        pytest.raises(ConcurrencyError, match="batch B1 already exists; choose another id"),
        store.writing("B1", 0) as unit,
    ):
        unit.append(new(1), T1)
    assert snapshot(store) == before


def test_a_system_stream_is_never_told_to_choose_another_id(store: EventStore):
    """Nobody chooses the id "@users": two first admins at once is a race, not a taken id."""
    append(store, "@users", 1)
    with (
        pytest.raises(ConcurrencyError, match="changed while you were entering") as err,
        store.writing("@users", 0),
    ):
        pass
    assert err.value.hint is not None and err.value.hint.kind == "try_again"
    assert "choose another id" not in str(err.value)


def test_a_clock_behind_the_stream_is_refused_and_nothing_is_written(store: EventStore):
    append(store, "B1", 1, at=T1)
    before = snapshot(store)
    with (
        pytest.raises(ClockBehind, match="earlier than the last entry") as err,
        store.writing("B1", 1) as unit,
    ):
        unit.next_number("deviation")
        unit.append(new(1), T0)
    assert err.value.hint is not None and err.value.hint.kind == "check_clock"
    assert snapshot(store) == before
    with store.writing("B1", 1) as unit:
        assert unit.next_number("deviation") == 1  # the refused unit's number was not kept


def test_the_same_time_as_the_last_entry_is_not_behind(store: EventStore):
    append(store, "B1", 1, at=T1)
    append(store, "B1", 1, at=T1)
    assert len(store.events("B1")) == 2


def test_the_clock_is_checked_per_stream(store: EventStore):
    append(store, "B1", 1, at=T2)
    append(store, "B2", 1, at=T0)  # another stream's later time does not matter
    assert store.events("B2")[0].recorded_at == T0


# --- one unit: everything or nothing -------------------------------------------------------
def test_a_failing_unit_rolls_back_events_ledger_head_projections_counters_and_keys(
    store: EventStore,
):
    append(store, "B1", 1)
    with store.writing("B1", 1) as unit:
        unit.put_batch(batch_row("B1"))
        assert unit.next_number("deviation") == 1
    before = snapshot(store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.writing("B1", 1) as unit:
        written = unit.append(new(2), T1)
        unit.put_batch(batch_row("B1", state="on_hold", head_seq=3))
        unit.put_batch(batch_row("B9"))
        unit.put_deviation(deviation_row("DEV-0002"))
        unit.put_qc_points("B1", [point_row("B1", "qc", "vegf")])
        assert unit.next_number("deviation") == 2
        unit.next_number("other")
        unit.remember_key("k-1", written[0].seq, written[-1].seq)
        append_elsewhere = unit.append(new(1), T1)
        assert append_elsewhere[0].seq == 4
        raise Boom
    assert snapshot(store) == before
    assert store.key_used("k-1") is None
    with store.writing("B1", 1) as unit:
        assert unit.next_number("deviation") == 2
        assert unit.next_number("other") == 1


def test_a_unit_that_appends_nothing_creates_no_stream(store: EventStore):
    """Counters are taken in a unit on a stream that never gets events."""
    with store.writing("__counter__", 0) as unit:
        assert unit.next_number("batch-20261102") == 1
    with store.writing("__counter__", 0) as unit:
        assert unit.next_number("batch-20261102") == 2
    assert store.stream_ids() == [] and store.head("__counter__") is None
    assert store.ledger() == []


# --- counters -------------------------------------------------------------------------------
def test_counters_are_gapless_per_name_and_survive_reopening(backend: Backend, store: EventStore):
    got: dict[str, list[int]] = {"deviation": [], "batch-20261102": []}
    for i in range(5):
        name = "deviation" if i % 2 else "batch-20261102"
        with store.writing("__counter__", 0) as unit:
            got[name].append(unit.next_number(name))
    with store.writing("__counter__", 0) as unit:
        got["deviation"].extend(unit.next_number("deviation") for _ in range(2))
    assert got == {"deviation": [1, 2, 3, 4], "batch-20261102": [1, 2, 3]}
    other = backend.open()
    try:
        with other.writing("__counter__", 0) as unit:
            assert unit.next_number("deviation") == 5
    finally:
        other.close()


# --- idempotency keys -------------------------------------------------------------------------
def test_a_remembered_key_is_found_inside_and_outside_a_unit(store: EventStore):
    append(store, "B1", 1)
    assert store.key_used("k-1") is None
    with store.writing("B1", 1) as unit:
        assert unit.seen_key("k-1") is None
        written = unit.append(new(3), T1)
        unit.remember_key("k-1", written[0].seq, written[-1].seq)
    used = store.key_used("k-1")
    assert used == ("B1", 2, 4)
    assert (used.stream, used.first_seq, used.last_seq) == ("B1", 2, 4)
    with store.writing("B1", 4) as unit:
        assert unit.seen_key("k-1") == ("B1", 2, 4)
        assert unit.seen_key("k-2") is None


def test_a_key_is_remembered_once(store: EventStore):
    with store.writing("B1", 0) as unit:
        w = unit.append(new(1), T0)
        unit.remember_key("k-1", w[0].seq, w[0].seq)
    before = snapshot(store)
    with (
        pytest.raises(ConcurrencyError, match="saved meanwhile"),
        store.writing("B1", 1) as unit,
    ):
        w = unit.append(new(1), T1)
        unit.remember_key("k-1", w[0].seq, w[0].seq)
    assert snapshot(store) == before
    assert store.key_used("k-1") == ("B1", 1, 1)


def test_a_key_can_only_name_events_of_its_own_unit(store: EventStore):
    append(store, "B1", 2)
    with pytest.raises(StoreError, match="same transaction"), store.writing("B1", 2) as unit:
        unit.append(new(1), T1)
        unit.remember_key("k-1", 1, 3)  # 1 and 2 were written by someone else
    with pytest.raises(StoreError, match="same transaction"), store.writing("B1", 2) as unit:
        unit.remember_key("k-1", 1, 1)  # nothing written in this unit
    assert store.key_used("k-1") is None and len(store.events("B1")) == 2


# --- query tables -------------------------------------------------------------------------
@pytest.fixture
def projections(store: EventStore) -> EventStore:
    with store.writing("__projections__", 0) as unit:
        unit.put_batch(batch_row("B2", started_at=T1, state="released", protocol_id="cm-b"))
        unit.put_batch(batch_row("B3", started_at=T0))
        unit.put_batch(batch_row("B1", started_at=T0, state="released"))
        unit.put_deviation(deviation_row("DEV-0003", opened_at=T2, status="closed"))
        unit.put_deviation(deviation_row("DEV-0001"))
        unit.put_deviation(
            deviation_row(
                "DEV-0002",
                batch_id="B2",
                protocol_id="cm-b",
                step="spin",
                severity="minor",
                opened_by="bob",
                opened_at=T1,
            )
        )
        row = deviation_row("DEV-0004", opened_at=T2)
        del row["parameter"]  # a manual deviation names no parameter
        unit.put_deviation(row)
    return store


def test_ids_near_finds_an_id_in_any_case_and_its_neighbours_from_the_index(store: EventStore):
    with store.writing("__ids__", 0) as unit:
        for batch_id in ("CM-001", "CM-002", "DEMO-001", "DEMO-002", "ZZ-9"):
            unit.put_batch(batch_row(batch_id))
        unit.put_deviation(deviation_row("DEV-0001"))
    # the id itself first, in its stored case; then after it, then before it, nearest first
    assert store.ids_near("batch", "demo-001", 2) == ["DEMO-001", "DEMO-002", "CM-002", "CM-001"]
    assert store.ids_near("batch", "d", 1) == ["DEMO-001", "CM-002"]
    assert store.ids_near("deviation", "dev-0001", 5) == ["DEV-0001"]
    assert store.ids_near("batch", "zzz", 1) == ["ZZ-9"]  # nothing after: the one before
    with pytest.raises(StoreError, match="no id kind"):
        store.ids_near("recipe", "x", 1)


def test_batch_rows_come_back_as_given_ordered_by_start_then_id(projections: EventStore):
    rows = projections.batch_rows()
    assert [r["batch_id"] for r in rows] == ["B1", "B3", "B2"]
    assert rows[0] == batch_row("B1", started_at=T0, state="released")
    assert projections.batch_rows(None) == rows == projections.batch_rows(BatchFilter())


@pytest.mark.parametrize(
    "where,expected",
    [
        (BatchFilter(state="released"), ["B1", "B2"]),
        (BatchFilter(protocol_id="cm-standard"), ["B1", "B3"]),
        (BatchFilter(protocol_id="cm-standard", state="released"), ["B1"]),
        (BatchFilter(state="rejected"), []),
    ],
)
def test_batch_rows_match_every_set_filter_field(projections: EventStore, where, expected):
    assert [r["batch_id"] for r in projections.batch_rows(where)] == expected


def test_deviation_rows_come_back_as_given_ordered_by_id(projections: EventStore):
    rows = projections.deviation_rows()
    assert [r["deviation_id"] for r in rows] == ["DEV-0001", "DEV-0002", "DEV-0003", "DEV-0004"]
    assert rows[0] == deviation_row("DEV-0001")
    assert "parameter" not in rows[3]


@pytest.mark.parametrize(
    "where,expected",
    [
        (DeviationFilter(deviation_id="DEV-0002"), ["DEV-0002"]),
        (DeviationFilter(batch_id="B2"), ["DEV-0002"]),
        (DeviationFilter(protocol_id="cm-standard"), ["DEV-0001", "DEV-0003", "DEV-0004"]),
        (DeviationFilter(step="spin"), ["DEV-0002"]),
        (DeviationFilter(severity="minor"), ["DEV-0002"]),
        (DeviationFilter(status="closed"), ["DEV-0003"]),
        (DeviationFilter(opened_by="bob"), ["DEV-0002"]),
        (DeviationFilter(since=T1), ["DEV-0002", "DEV-0003", "DEV-0004"]),  # at or after
        (DeviationFilter(until=T1), ["DEV-0001"]),  # strictly before
        (DeviationFilter(since=T1, until=T2), ["DEV-0002"]),
        (DeviationFilter(status="open", since=T2), ["DEV-0004"]),
        (DeviationFilter(batch_id="B1", severity="minor"), []),
    ],
)
def test_deviation_rows_match_every_set_filter_field(projections: EventStore, where, expected):
    assert [r["deviation_id"] for r in projections.deviation_rows(where)] == expected


# --- lists and counts: only the columns asked for, streamed ---------------------------------
def test_a_batch_table_gives_only_the_columns_asked_in_the_order_of_the_rows(
    projections: EventStore,
):
    rows = projections.batch_table(None, ("batch_id", "state"))
    assert iter(rows) is rows  # an iterator: read as the caller goes, never a whole list
    assert list(rows) == [("B1", "released"), ("B3", "in_progress"), ("B2", "released")]
    assert list(projections.batch_table(BatchFilter(state="released"), ("batch_id",))) == [
        ("B1",),
        ("B2",),
    ]


def test_the_row_column_is_the_whole_stored_row_as_json(projections: EventStore):
    (text,) = next(projections.batch_table(BatchFilter(protocol_id="cm-b"), (ROW,)))
    assert json.loads(text) == batch_row("B2", started_at=T1, state="released", protocol_id="cm-b")
    texts = [t for (t,) in projections.deviation_table(None, (ROW,))]
    assert [json.loads(t) for t in texts] == projections.deviation_rows()


def test_a_deviation_table_reads_fields_kept_only_in_the_row(projections: EventStore):
    rows = list(projections.deviation_table(None, ("deviation_id", "message", "value", "step")))
    assert rows[0] == ("DEV-0001", "viability 80 % below 90 %", None, "expansion")
    assert [r[0] for r in rows] == ["DEV-0001", "DEV-0002", "DEV-0003", "DEV-0004"]
    (parameter,) = next(
        projections.deviation_table(DeviationFilter(deviation_id="DEV-0004"), ("parameter",))
    )
    assert parameter is None  # absent from the row: a manual deviation names no parameter


@pytest.mark.parametrize(
    "where,expected",
    [
        (BatchFilter(state="released"), ["B1", "B2"]),
        (BatchFilter(protocol_id="cm-standard", state="released"), ["B1"]),
        (BatchFilter(started_since=T1), ["B2"]),  # at or after
        (BatchFilter(updated_since=T1), []),
        (BatchFilter(updated_since=T0, state="released"), ["B1", "B2"]),
        (BatchFilter(batch_id="B3"), ["B3"]),
    ],
)
def test_a_batch_table_and_count_match_every_set_filter_field(
    projections: EventStore, where: BatchFilter, expected: list[str]
):
    assert [r[0] for r in projections.batch_table(where, ("batch_id",))] == expected
    assert [r["batch_id"] for r in projections.batch_rows(where)] == expected
    assert projections.batch_count(where) == len(expected)


@pytest.mark.parametrize(
    "where,expected",
    [
        (DeviationFilter(batch_id="B2"), ["DEV-0002"]),
        (DeviationFilter(step="spin", severity="minor"), ["DEV-0002"]),
        (DeviationFilter(since=T1, until=T2), ["DEV-0002"]),
        (DeviationFilter(not_status="closed"), ["DEV-0001", "DEV-0002", "DEV-0004"]),
        (DeviationFilter(not_status="closed", since=T2), ["DEV-0004"]),
        (DeviationFilter(batch_id="B1", severity="minor"), []),
    ],
)
def test_a_deviation_table_matches_every_set_filter_field_as_the_rows_do(
    projections: EventStore, where: DeviationFilter, expected: list[str]
):
    assert [r[0] for r in projections.deviation_table(where, ("deviation_id",))] == expected
    assert [r["deviation_id"] for r in projections.deviation_rows(where)] == expected


@pytest.mark.parametrize("column", ["data", "batch_id; DROP TABLE batches", "", "due"])
def test_a_column_the_table_does_not_have_is_refused_by_name(projections: EventStore, column):
    with pytest.raises(StoreError, match="has no column") as err:
        projections.batch_table(None, ("batch_id", column))
    assert repr(column) in str(err.value)
    with pytest.raises(StoreError, match="has no column"):
        projections.deviation_table(None, (column,))
    with pytest.raises(StoreError, match="has no column"):
        projections.deviation_counts((column,))
    assert len(projections.batch_rows()) == 3  # nothing was changed


def test_no_column_at_all_and_counting_whole_rows_are_refused(projections: EventStore):
    with pytest.raises(StoreError, match="at least one column"):
        projections.batch_table(None, ())
    with pytest.raises(StoreError, match="whole row"):
        projections.deviation_counts((ROW,))


def test_deviations_are_counted_by_the_columns_asked_with_the_first_id_of_each_group(
    projections: EventStore,
):
    assert projections.deviation_counts(("severity",)) == [
        (("major",), 3, "DEV-0001"),
        (("minor",), 1, "DEV-0002"),
    ]
    assert projections.deviation_counts(("step", "kind", "opened_by")) == [
        (("expansion", None, "alice"), 3, "DEV-0001"),
        (("spin", None, "bob"), 1, "DEV-0002"),
    ]
    assert projections.deviation_counts(("protocol_id",), DeviationFilter(since=T2)) == [
        (("cm-standard",), 2, "DEV-0003")
    ]
    assert projections.deviation_counts(("status",), DeviationFilter(batch_id="none")) == []


def test_putting_a_row_again_replaces_it(projections: EventStore):
    with projections.writing("__projections__", 0) as unit:
        unit.put_batch(batch_row("B3", started_at=T0, state="rejected"))
        unit.put_deviation(deviation_row("DEV-0001", status="closed"))
    assert [r["state"] for r in projections.batch_rows(BatchFilter())] == [
        "released",
        "rejected",
        "released",
    ]
    assert projections.deviation_rows(DeviationFilter(deviation_id="DEV-0001"))[0]["status"] == (
        "closed"
    )


def test_a_row_missing_an_indexed_field_is_refused(store: EventStore):
    row = batch_row("B1")
    del row["state"]
    with pytest.raises(StoreError, match="state"), store.writing("B1", 0) as unit:
        unit.put_batch(row)
    assert store.batch_rows() == []


def test_replace_projections_replaces_every_row_and_touches_nothing_else(
    projections: EventStore,
):
    append(projections, "B1", 2)
    with projections.writing("__counter__", 0) as unit:
        unit.next_number("deviation")
    events, heads, ledger = (
        projections.events("B1"),
        projections.recorded_heads(),
        projections.ledger(),
    )
    written = projections.replace_projections(
        [Projected(batch_row("B7"), [deviation_row("DEV-0009")], [])]
    )
    assert written == 1
    assert [r["batch_id"] for r in projections.batch_rows()] == ["B7"]
    assert [r["deviation_id"] for r in projections.deviation_rows()] == ["DEV-0009"]
    assert projections.events("B1") == events
    assert projections.recorded_heads() == heads and projections.ledger() == ledger
    with projections.writing("__counter__", 0) as unit:
        assert unit.next_number("deviation") == 2
    assert projections.replace_projections([]) == 0
    assert projections.batch_rows() == [] and projections.deviation_rows() == []


def test_replace_projections_is_all_or_nothing(projections: EventStore):
    before = (projections.batch_rows(), projections.deviation_rows())
    bad = batch_row("B8")
    del bad["protocol_id"]
    with pytest.raises(StoreError):
        projections.replace_projections(
            [Projected(batch_row("B7"), [], []), Projected(bad, [], [])]
        )
    assert (projections.batch_rows(), projections.deviation_rows()) == before

    def folding_fails() -> Iterator[Projected]:
        yield Projected(batch_row("B7"), [deviation_row("DEV-0009")], [])
        raise CorruptLog("batch B8, event 2 (step_recorded) does not replay")

    with pytest.raises(CorruptLog, match="B8"):
        projections.replace_projections(folding_fails())
    assert (projections.batch_rows(), projections.deviation_rows()) == before


def test_replace_projections_writes_each_batch_as_it_is_given(projections: EventStore):
    """What a rebuild of years of batches needs: the rows are written while they are
    read, one batch at a time, not gathered first (the store's own reads inside the
    rebuild see each batch already written)."""
    seen = []

    def given() -> Iterator[Projected]:
        for n in range(3):
            seen.append(len(projections.batch_rows()))
            yield Projected(batch_row(f"B{n}"), [], [])

    assert projections.replace_projections(given()) == 3
    assert seen == [0, 1, 2]


# --- QC points: the lab's QC history ---------------------------------------------------------
def point_row(batch_id: str, step: str, name: str, **over: Any) -> dict[str, Any]:
    row = {
        "batch_id": batch_id,
        "step": step,
        "name": name,
        "protocol_id": "cm-standard",
        "started_at": T0,
        "position": 1,
        "analyte": name,
        "label": name.upper(),
        "method": "ELISA",
        "value": 300.5,
        "unit": "pg/mL",
        "recorded_at": T1,
        "state": "released",
        "source": "UC",
        "preconditioning": "none",
        "name_key": name,
        "reference_key": name,
        "label_key": name,
        "route": "concentrate",
    }
    return {**row, **over}


@pytest.fixture
def points(store: EventStore) -> EventStore:
    """Four batches' points, put out of order: B3 and B1 start at T0, B2 at T1, B4 at T2."""
    with store.writing("__projections__", 0) as unit:
        unit.put_qc_points(
            "B2",
            [
                point_row("B2", "qc", "vegf", started_at=T1, position=2, value=310.0),
                point_row(
                    "B2",
                    "qc",
                    "il6",
                    started_at=T1,
                    position=3,
                    analyte="il6_ref",
                    label="IL-6 (ELISA)",
                    name_key="il6",
                    reference_key="il6ref",
                    label_key="il6",
                    state="rejected",
                ),
            ],
        )
        unit.put_qc_points(
            "B3",
            [
                point_row(
                    "B3",
                    "qc",
                    "vegf",
                    value=290.0,
                    protocol_id="cm-b",
                    source="BM",
                    preconditioning="hypoxia",
                    method=None,
                )
            ],
        )
        unit.put_qc_points("B1", [point_row("B1", "qc", "vegf", value=300.0)])
        unit.put_qc_points("B4", [point_row("B4", "qc", "vegf", started_at=T2, value=320.0)])
    return store


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['batch_id']}.{r['name']}" for r in rows]


def test_qc_points_come_back_as_given_ordered_by_start_batch_and_position(points: EventStore):
    rows = points.qc_points(QCPointFilter())
    assert _ids(rows) == ["B1.vegf", "B3.vegf", "B2.vegf", "B2.il6", "B4.vegf"]
    assert rows[0] == point_row("B1", "qc", "vegf", value=300.0)
    assert set(rows[1]) == set(QC_POINT_COLUMNS) and rows[1]["method"] is None
    assert isinstance(rows[0]["value"], float) and isinstance(rows[0]["position"], int)


@pytest.mark.parametrize(
    "where,expected",
    [
        (QCPointFilter(protocol_id="cm-b"), ["B3.vegf"]),
        (QCPointFilter(name="il6"), ["B2.il6"]),
        (
            QCPointFilter(state="released", name="vegf"),
            ["B1.vegf", "B3.vegf", "B2.vegf", "B4.vegf"],
        ),
        (QCPointFilter(state="rejected"), ["B2.il6"]),
        (QCPointFilter(key="il6"), ["B2.il6"]),  # by its name key
        (QCPointFilter(key="il6ref"), ["B2.il6"]),  # by its reference key
        (QCPointFilter(key="nope"), []),
        (QCPointFilter(analytes=("il6_ref",)), ["B2.il6"]),  # by its analyte
        (QCPointFilter(analytes=("il6", "tnf")), ["B2.il6"]),  # or by its name
        (QCPointFilter(exclude_batch="B2", name="vegf"), ["B1.vegf", "B3.vegf", "B4.vegf"]),
        (QCPointFilter(since=T1), ["B2.vegf", "B2.il6", "B4.vegf"]),  # started at or after
        (QCPointFilter(source="BM"), ["B3.vegf"]),  # a baseline's cell source
        (QCPointFilter(route="concentrate", name="il6"), ["B2.il6"]),  # and its route
        (QCPointFilter(route="use_fresh"), []),
        (
            QCPointFilter(protocol_id="cm-standard", name="vegf", state="released", since=T1),
            ["B2.vegf", "B4.vegf"],
        ),
    ],
)
def test_qc_points_match_every_set_filter_field(points: EventStore, where, expected):
    assert _ids(points.qc_points(where)) == expected


def test_the_newest_points_only_are_returned_still_oldest_first(points: EventStore):
    assert _ids(points.qc_points(QCPointFilter(last=2))) == ["B2.il6", "B4.vegf"]
    newest = QCPointFilter(name="vegf", state="released", exclude_batch="B4", last=2)
    assert _ids(points.qc_points(newest)) == ["B3.vegf", "B2.vegf"]
    assert len(points.qc_points(QCPointFilter(last=100))) == 5
    with pytest.raises(StoreError, match="at least 1"):
        QCPointFilter(last=0)


def test_putting_a_batchs_points_again_replaces_all_of_them_and_no_other(points: EventStore):
    with points.writing("__projections__", 0) as unit:
        unit.put_qc_points("B2", [point_row("B2", "qc", "vegf", started_at=T1, value=311.0)])
        unit.put_qc_points("B4", [])
    rows = points.qc_points(QCPointFilter())
    assert _ids(rows) == ["B1.vegf", "B3.vegf", "B2.vegf"]
    assert rows[2]["value"] == 311.0


@pytest.mark.parametrize(
    "rows,problem",
    [
        ([{k: v for k, v in point_row("B9", "qc", "vegf").items() if k != "state"}], "state"),
        ([point_row("B8", "qc", "vegf")], "B8"),  # another batch's point
        ([point_row("B9", "qc", "vegf"), point_row("B9", "qc", "vegf")], "twice"),
    ],
)
def test_a_bad_qc_point_is_refused_and_nothing_is_written(points: EventStore, rows, problem):
    before = snapshot(points)
    with pytest.raises(StoreError, match=problem), points.writing("B9", 0) as unit:
        unit.append(new(1), T0)
        unit.put_qc_points("B9", rows)
    assert snapshot(points) == before


def test_replace_projections_replaces_every_qc_point(points: EventStore):
    new_points = [point_row("B7", "qc", "vegf"), point_row("B8", "qc", "vegf", position=4)]
    points.replace_projections(
        [
            Projected(batch_row("B7"), [], new_points[:1]),
            Projected(batch_row("B8"), [], new_points[1:]),
        ]
    )
    assert points.qc_points(QCPointFilter()) == new_points
    bad = point_row("B9", "qc", "vegf")
    del bad["value"]
    with pytest.raises(StoreError, match="value"):
        points.replace_projections([Projected(batch_row("B9"), [], [bad])])
    stray = [point_row("B6", "qc", "vegf")]  # a point of another batch than the row's
    with pytest.raises(StoreError, match="QC points of batch B6 given as points of B9"):
        points.replace_projections([Projected(batch_row("B9"), [], stray)])
    assert points.qc_points(QCPointFilter()) == new_points and len(points.batch_rows()) == 2
    points.replace_projections([Projected(batch_row("B7"), [], [])])
    assert points.qc_points(QCPointFilter()) == []


# --- lineage edges: the material graph, walked by one recursive query ------------------------
def edge(parent: str, child: str, seq: int, drawn: str | None = "1") -> dict[str, Any]:
    return {"parent": parent, "child": child, "seq": seq, "drawn": drawn, "unit": "mL"}


# donor D1 -> vial V1 -> cultures C1, C2 -> pooled harvest H (a diamond) -> aliquots A1, A2
GRAPH = [
    edge("D1", "V1", 1, None),
    edge("V1", "C1", 2),
    edge("V1", "C2", 2),
    edge("C1", "H", 3, "5"),
    edge("C2", "H", 3, "5"),
    edge("H", "A1", 4),
    edge("H", "A2", 4),
]


def test_lineage_edges_walk_down_and_up_from_any_lot(store: EventStore):
    with store.writing("@materials", 0) as unit:
        unit.append(new(1), T0)
        unit.put_lineage_edges(GRAPH[:3])
    with store.writing("@materials", 1) as unit:
        unit.append(new(1), T1)
        unit.put_lineage_edges(GRAPH[3:])
    assert store.lineage_edges("D1", "down") == GRAPH  # the diamond walked once
    assert store.lineage_edges("C2", "down") == [GRAPH[4], GRAPH[5], GRAPH[6]]
    assert store.lineage_edges("A1", "up") == GRAPH[:6]
    assert store.lineage_edges("A2", "down") == [] and store.lineage_edges("nobody", "up") == []
    with pytest.raises(StoreError, match="up or down"):
        store.lineage_edges("D1", "sideways")


def test_lineage_edges_roll_back_with_their_unit(store: EventStore):
    with pytest.raises(RuntimeError), store.writing("@materials", 0) as unit:
        unit.append(new(1), T0)
        unit.put_lineage_edges(GRAPH)
        raise RuntimeError("the derivation failed")
    assert store.lineage_edges("D1", "down") == [] and store.events("@materials") == []


@pytest.mark.parametrize(
    ("kind", "key", "stream"),
    [("lot", "lot", "@materials"), ("instrument", "id", "@equipment"),
     ("material", "lot", "@materials")],
)  # fmt: skip
def test_registered_rows_are_kept_by_id_found_in_any_case_and_roll_back_with_their_unit(
    store: EventStore, kind: str, key: str, stream: str
):
    assert store.register_whole(kind) and store.registered_rows(kind) == []  # new: none
    row = {key: "PBS-26-118", "material": "PBS", "expiry": "2027-12-31", "by": "alice"}
    with store.writing(stream, 0) as unit:
        unit.append(new(1), T0)
        unit.put_registered(kind, row)
    assert store.registered(kind, "PBS-26-118") == row
    assert store.registered(kind, "pbs-26-118") is None  # exactly as stored
    assert store.ids_near(kind, "pbs-26-118", 3)[0] == "PBS-26-118"  # any case, by index
    with pytest.raises(RuntimeError), store.writing(stream, 1) as unit:
        unit.append(new(1), T1)
        unit.put_registered(kind, {**row, key: "FBS-1"})
        raise RuntimeError("the registration failed")
    assert store.registered(kind, "FBS-1") is None
    newer = {**row, "expiry": "2028-01-31"}
    with store.writing(stream, 1) as unit:  # written again: its row as it now is
        unit.append(new(1), T1)
        unit.put_registered(kind, newer)
    assert store.registered_rows(kind) == [newer]
    with pytest.raises(StoreError, match=f"needs its {key}"), store.writing(stream, 2) as unit:
        unit.append(new(1), T1)
        unit.put_registered(kind, {"material": "PBS"})
    store.replace_registered(kind, [{**row, key: "A-1"}, row])
    assert [r[key] for r in store.registered_rows(kind)] == ["A-1", "PBS-26-118"]
    assert store.register_whole(kind)
    with pytest.raises(StoreError, match="no register 'recipe'"):
        store.registered("recipe", "x")


def test_materials_are_found_by_the_batch_that_made_them(store: EventStore):
    """A batch's export and a reagent's recall list what a batch made through the
    register's batch index, not every material; a register without that index refuses."""
    rows = [
        {"lot": "H1", "batch_id": "B1", "kind": "CM harvest"},
        {"lot": "D-1", "batch_id": None, "kind": "donor"},
        {"lot": "F1", "batch_id": "B1", "kind": "filtrate"},
        {"lot": "H2", "batch_id": "B2", "kind": "CM harvest"},
    ]
    with store.writing("@materials", 0) as unit:
        unit.append(new(1), T0)
        for row in rows:
            unit.put_registered("material", row)
    assert [r["lot"] for r in store.registered_rows("material", batch_id="B1")] == ["F1", "H1"]
    assert store.registered_rows("material", batch_id="B3") == []
    moved = {**rows[0], "batch_id": "B2"}  # a row written again moves with its batch
    with store.writing("@materials", 1) as unit:
        unit.append(new(1), T1)
        unit.put_registered("material", moved)
    assert [r["lot"] for r in store.registered_rows("material", batch_id="B2")] == ["H1", "H2"]
    with pytest.raises(StoreError, match="the lot register is not searched by 'batch_id'"):
        store.registered_rows("lot", batch_id="B1")


def use_row(batch_id: str, step: str, lot: str, at: str = T0) -> dict[str, Any]:
    return {"batch_id": batch_id, "step": step, "lot": lot, "material": "FBS", "used_at": at,
            "used_by": "alice"}  # fmt: skip


def test_lot_uses_are_kept_per_batch_and_read_by_lot_in_any_case(store: EventStore):
    assert store.uses_indexed() and store.lot_uses() == []  # new: no batch, all kept
    b1 = [use_row("B1", "expansion", "FBS-1", T1), use_row("B1", "pbs_wash", "PBS-1", T1)]
    with store.writing("B1", 0) as unit:
        unit.append(new(1), T0)
        unit.put_lot_uses("B1", b1)
    with store.writing("B2", 0) as unit:
        unit.append(new(1), T0)
        unit.put_lot_uses("B2", [use_row("B2", "expansion", "FBS-1", T0)])
    assert [(u["batch_id"], u["used_at"]) for u in store.lot_uses(lot="fbs-1")] == [
        ("B2", T0),  # the oldest use first
        ("B1", T1),
    ]
    assert store.lot_uses(batch_id="B1") == b1 and store.lot_uses(lot="nothing") == []
    with pytest.raises(RuntimeError), store.writing("B1", 1) as unit:
        unit.append(new(1), T1)
        unit.put_lot_uses("B1", [])
        raise RuntimeError("the step failed")
    assert store.lot_uses(batch_id="B1") == b1  # rolled back with its unit
    with store.writing("B1", 1) as unit:  # a batch's uses are replaced whole
        unit.append(new(1), T1)
        unit.put_lot_uses("B1", b1[:1])
    assert store.lot_uses(batch_id="B1") == b1[:1]
    stray = "lot uses of batch B9 given as uses of B1"
    with pytest.raises(StoreError, match=stray), store.writing("B1", 2) as unit:
        unit.append(new(1), T1)
        unit.put_lot_uses("B1", [use_row("B9", "expansion", "FBS-1")])
    with pytest.raises(StoreError, match="given twice"), store.writing("B1", 2) as unit:
        unit.append(new(1), T1)
        unit.put_lot_uses("B1", b1[:1] * 2)
    store.replace_projections([Projected(batch_row("B7"), [], [], [use_row("B7", "s", "L")])])
    assert store.lot_uses() == [use_row("B7", "s", "L")] and store.uses_indexed()


def test_replace_lineage_edges_replaces_all_or_nothing(store: EventStore):
    assert list(store.iter_lineage_edges()) == []
    store.replace_lineage_edges(list(reversed(GRAPH)))
    assert store.lineage_edges("V1", "down") == GRAPH[1:]
    rows = store.iter_lineage_edges()  # every edge, by seq, as verification reads them
    assert iter(rows) is rows and list(rows) == GRAPH
    bad = edge("X", "Y", 9)
    del bad["seq"]
    with pytest.raises(StoreError, match="seq"):
        store.replace_lineage_edges([edge("P", "Q", 8), bad])
    assert store.lineage_edges("D1", "down") == GRAPH
    store.replace_lineage_edges([])
    assert store.lineage_edges("D1", "down") == []


# --- streams ------------------------------------------------------------------------------------
def test_stream_ids_list_every_stream_and_batch_ids_leave_out_system_ones(store: EventStore):
    for stream in ("CM-2", "@users", "CM-1", "@security", "B-0"):
        append(store, stream, 1)
    assert store.stream_ids() == sorted(["CM-2", "@users", "CM-1", "@security", "B-0"])
    assert store.batch_ids() == ["B-0", "CM-1", "CM-2"]


# --- the global ledger --------------------------------------------------------------------------
def test_the_ledger_lists_every_event_in_commit_order_gapless_and_chained(store: EventStore):
    a = append(store, "B1", 2)
    b = append(store, "@users", 1)
    c = append(store, "B1", 1, at=T1)
    d = append(store, "B2", 2, at=T1)
    written = a + b + c + d
    ledger = store.ledger()
    assert all(isinstance(x, LedgerEntry) for x in ledger)
    assert [x.pos for x in ledger] == list(range(1, len(written) + 1))
    assert [(x.stream, x.seq, x.event_hash) for x in ledger] == [
        (e.batch_id, e.seq, e.hash) for e in written
    ]
    prev = GENESIS
    for x in ledger:
        assert x.prev == prev
        assert x.hash == ledger_hash(x.pos, x.stream, x.seq, x.event_hash, x.prev)
        assert x.hash == x.computed_hash()
        prev = x.hash


def test_the_ledger_entry_is_immutable(store: EventStore):
    append(store, "B1", 1)
    entry = store.ledger()[0]
    with pytest.raises(AttributeError):
        entry.hash = "0" * 64  # type: ignore[misc]


def test_what_the_store_returns_verifies(store: EventStore):
    for stream, n in (("B1", 3), ("@users", 2), ("B2", 1), ("B1", 1)):
        append(store, stream, n, at=T1)
    streams = {s: store.events(s) for s in store.stream_ids()}
    assert verify(streams, store.recorded_heads(), store.ledger()) == []


# --- verification's reads: the log as a stream ------------------------------------------------
def test_every_event_streams_as_stored_by_stream_then_seq_with_its_recorded_head(
    store: EventStore,
):
    for stream, n, at in (("B2", 2, T0), ("@users", 1, T0), ("B1", 2, T0), ("B2", 1, T1)):
        append(store, stream, n, at=at)
    rows = store.iter_events()
    assert iter(rows) is rows  # read as iterated, not gathered first
    got = list(rows)
    heads = store.recorded_heads()
    expected = [(s, e) for s in ("@users", "B1", "B2") for e in store.events(s)]
    assert [(r.batch_id, r.seq) for r, _ in got] == [(s, e.seq) for s, e in expected]
    assert [r.event() for r, _ in got] == [e for _, e in expected]
    assert [h for _, h in got] == [heads[s] for s, _ in expected]
    assert [r.event() for r, _ in store.iter_events("B2")] == store.events("B2")
    assert list(store.iter_events("nope")) == []


def test_a_stored_payload_is_the_canonical_json_the_hash_covers(store: EventStore):
    """Verification hashes the bytes as stored: every backend keeps the payload's text
    as ``canonical_json`` wrote it."""
    payload = {"z": [1, 2.5, None, True], "a": {"µ": 'Ü "q" \\ \n', "e": {}}, "n": -0.0}
    with store.writing("B1", 0) as unit:
        unit.append([NewEvent("step_recorded", "ålice", payload, "why", T0)], T1)
    ((row, _),) = store.iter_events("B1")
    event = row.event()
    assert row.payload == canonical_json(payload) and event.payload == payload
    assert row.body() == canonical_json(event.body()).encode()
    assert hashlib.sha256(row.body()).hexdigest() == event.hash and row.hash_holds()


def test_the_log_streams_in_ledger_order_as_stored(store: EventStore):
    """What a copy replays: every event in commit order, across streams, as stored."""
    assert list(store.iter_logged()) == []
    written = append(store, "B1", 2) + append(store, "@users", 1) + append(store, "B2", 1, at=T1)
    written += append(store, "B1", 1, at=T1)
    rows = store.iter_logged()
    assert iter(rows) is rows
    got = list(rows)
    assert [r.event() for r in got] == written
    assert all(r.hash_holds() for r in got)


def test_the_ledger_streams_by_position_each_entry_with_its_events_hash(store: EventStore):
    assert (list(store.iter_ledger()), store.ledger_tail(), store.ledger_at(1)) == ([], None, None)
    for stream, n in (("B1", 2), ("B2", 1), ("B1", 1)):
        append(store, stream, n)
    ledger = store.ledger()
    rows = store.iter_ledger()
    assert iter(rows) is rows
    assert list(rows) == [(x, x.event_hash) for x in ledger]
    assert list(store.iter_ledger("B1")) == [(x, x.event_hash) for x in ledger if x.stream == "B1"]
    assert store.ledger_tail() == ledger[-1]
    assert [store.ledger_at(p) for p in (1, 3, 4)] == [ledger[0], ledger[2], ledger[3]]
    assert store.ledger_at(0) is None and store.ledger_at(5) is None
    # how much of each stream a checkpoint at a position vouches for
    assert [store.ledgered_through("B1", p) for p in (0, 1, 2, 3, 4)] == [0, 1, 2, 2, 3]
    assert [store.ledgered_through("B2", p) for p in (2, 3)] == [0, 1]
    assert store.ledgered_through("B9", 4) == 0
    assert list(store.unledgered()) == [] and store.emptied_streams() == []


def test_how_far_each_stream_is_ledgered_is_read_at_once_in_the_logs_order(store: EventStore):
    """``ledgered_through`` of every stream in one read, as verification with a checkpoint
    takes it stream by stream beside the log (ids a collation may order otherwise too)."""
    for stream, n in (("B2", 2), ("b-1", 1), ("B1", 3), ("B_1", 1), ("B2", 1)):
        append(store, stream, n)
    streams = [s for s, _ in groupby(store.iter_events(), key=lambda r: r[0].batch_id)]
    tail = store.ledger_tail()
    assert tail is not None
    for pos in range(tail.pos + 1):
        got = list(store.iter_ledgered_through(pos))
        assert [s for s, _ in got] == [s for s in streams if store.ledgered_through(s, pos)]
        assert got == [(s, store.ledgered_through(s, pos)) for s, _ in got]
    assert list(store.iter_ledgered_through(tail.pos)) == [
        (s, store.head(s).seq)
        for s in streams  # type: ignore[union-attr]
    ]


def test_verifications_reads_see_each_forgery_for_what_it_is(backend: Backend, store: EventStore):
    for stream, n in (("B1", 2), ("B2", 2), ("B3", 1)):
        append(store, stream, n)
    b3 = store.recorded_heads()["B3"]
    backend.unprotect_all()
    backend.forge("update_event", "B1", 1)  # the actor changed behind the log's back
    backend.forge("delete_event", "B1", 2)
    backend.forge("delete_ledger", "B2", 2)
    backend.forge("delete_event", "B3", 1)
    changed = {(r.batch_id, r.seq): r for r, _ in store.iter_events()}
    assert changed["B1", 1].actor == "mallory" and not changed["B1", 1].hash_holds()
    assert changed["B2", 1].hash_holds() and ("B1", 2) not in changed
    now = {(x.stream, x.seq): hash_now for x, hash_now in store.iter_ledger()}
    assert now["B1", 2] is None and now["B3", 1] is None  # named by the ledger, gone
    assert now["B1", 1] == changed["B1", 1].hash  # the row's own hash column is untouched
    assert list(store.unledgered()) == [("B2", 2)] and list(store.unledgered("B1")) == []
    assert store.emptied_streams() == [("B3", b3)] == store.emptied_streams("B3")
    assert store.emptied_streams("B1") == []


def test_rows_of_batches_the_log_does_not_have_are_listed_by_batch(projections: EventStore):
    with projections.writing("__projections__", 0) as unit:
        unit.put_qc_points("B9", [point_row("B9", "qc", "vegf")])
    assert projections.unlogged_batches() == ["B1", "B2", "B3", "B9"]
    append(projections, "B1", 1)
    append(projections, "B9", 1)
    assert projections.unlogged_batches() == ["B2", "B3"]


def test_rows_of_logged_batches_stream_grouped_in_the_logs_order_of_streams(
    projections: EventStore,
):
    """What verification takes each batch's rows from as it reads the log: each table's
    rows of batches with events, each batch's together, in the order ``iter_events``
    gives the streams, each row as the read by the batch's key gives it. Ids a collation
    may order otherwise than by code point are among them."""
    odd = ["b-2", "B_10", "B-10", "B10", "a1", "Ä1"]
    with projections.writing("__more__", 0) as unit:
        for b in odd:
            unit.put_batch(batch_row(b))
            unit.put_qc_points(b, [point_row(b, "qc", "vegf"), point_row(b, "qc", "il6")])
            unit.put_lot_uses(b, [use_row(b, "expansion", "FBS-1"), use_row(b, "spin", "T-1")])
            unit.put_deviation(deviation_row(f"DEV-{b}", batch_id=b))
    for b in ("B2", "B1", *reversed(odd)):
        append(projections, b, 2)
    streams = [s for s, _ in groupby(projections.iter_events(), key=lambda r: r[0].batch_id)]
    searched = ("batch_id", "state", ROW)
    dev_searched = ("deviation_id", "status", "message", ROW)
    tables: list[tuple[str, tuple[str, ...], Callable[[str], list[tuple[Any, ...]]]]] = [
        ("batches", searched,
         lambda b: list(projections.batch_table(BatchFilter(batch_id=b), searched))),
        ("deviations", dev_searched,
         lambda b: list(projections.deviation_table(DeviationFilter(batch_id=b), dev_searched))),
        ("qc_points", QC_POINT_COLUMNS,
         lambda b: [tuple(p.values()) for p in projections.qc_points(QCPointFilter(batch_id=b))]),
        ("lot_uses", LOT_USE_COLUMNS,
         lambda b: [tuple(u.values()) for u in projections.lot_uses(batch_id=b)]),
    ]  # fmt: skip
    for table, columns, by_key in tables:
        rows = list(projections.iter_logged_rows(table, columns))
        ids = [k for k, _ in groupby(r[0] for r in rows)]
        assert ids == [s for s in streams if s in ids], table  # together, in the log's order
        assert "B3" not in ids  # no events: ``unlogged_batches`` names its rows
        for b in ids:
            mine = [r[1:] for r in rows if r[0] == b]
            assert sorted(map(repr, mine)) == sorted(map(repr, by_key(b))), (table, b)
        expected = {"batches": 8, "deviations": 8, "qc_points": 6, "lot_uses": 6}[table]
        assert len(ids) == expected, table


def test_a_log_cut_into_spans_gives_each_stream_in_exactly_one(projections: EventStore):
    """What a verification in parts reads (``service.log_parts``): the streams at given
    places of the log, and each read kept within a span between them. Every span's reads
    put one after another are the whole log's reads, in order, whatever the collation
    makes of the ids; a cut never falls inside a stream."""
    odd = ["b-2", "B_10", "B-10", "B10", "a1", "Ä1"]
    with projections.writing("__more__", 0) as unit:
        for b in odd:
            unit.put_batch(batch_row(b))
            unit.put_qc_points(b, [point_row(b, "qc", "vegf")])
    for b in ("B2", "B1", "@users", *reversed(odd)):
        append(projections, b, 3)
    whole = list(projections.iter_events())
    streams = [s for s, _ in groupby(r.batch_id for r, _ in whole)]
    places = list(range(-1, len(whole) + 2))
    at = projections.streams_at(places)
    assert at == [whole[max(p, 0)][0].batch_id if p < len(whole) else None for p in places]
    tail = projections.ledger_tail()
    assert tail is not None
    for marks in ([], ["B1"], [streams[2], streams[5]], streams[1:], [streams[-1]]):
        bounds = [None, *marks, None]
        spans = list(pairwise(bounds))
        parts = [list(projections.iter_events(span=span)) for span in spans]
        assert [r for part in parts for r in part] == whole, marks
        for table, columns in (("batches", ("state",)), ("qc_points", QC_POINT_COLUMNS)):
            rows = [list(projections.iter_logged_rows(table, columns, span)) for span in spans]
            assert [r for part in rows for r in part] == list(
                projections.iter_logged_rows(table, columns)
            ), (table, marks)
        for pos in (1, tail.pos // 2, tail.pos):
            through = [list(projections.iter_ledgered_through(pos, span)) for span in spans]
            assert [r for part in through for r in part] == list(
                projections.iter_ledgered_through(pos)
            )
    # one stream, within a span or not
    assert list(projections.iter_events("B1", ("B1", None))) == list(projections.iter_events("B1"))
    assert list(projections.iter_events("B1", ("B2", None))) == []


def test_a_store_reopened_reads_the_same_database_on_connections_of_its_own(store: EventStore):
    """What a process checking a part of the log reads with: the same events, and closing
    it leaves the store it came from working."""
    append(store, "B1", 2)
    other = store.reopened()
    try:
        assert list(other.iter_events()) == list(store.iter_events())
        append(store, "B1", 1)
        assert [r.seq for r, _ in other.iter_events("B1")] == [1, 2, 3]
    finally:
        other.close()
    assert [e.seq for e in store.events("B1")] == [1, 2, 3]


@pytest.mark.parametrize(
    ("table", "columns", "said"),
    [
        ("events", ("batch_id",), "no query table 'events' kept by batch; tables: batches, "),
        ("qc_points", ("nonsense",), "the qc_points table has no column 'nonsense'; it has "),
        ("lot_uses", (), "the lot_uses table has no column (none asked)"),
        ("batches", ("nonsense",), "the batches table has no column 'nonsense'"),
    ],
)
def test_streaming_rows_of_a_table_or_column_not_kept_by_batch_is_refused(
    store: EventStore, table: str, columns: tuple[str, ...], said: str
):
    with pytest.raises(StoreError, match=re.escape(said)):
        store.iter_logged_rows(table, columns)


# --- the log cannot be edited ------------------------------------------------------------------
@pytest.mark.parametrize("action", FORGERIES)
@pytest.mark.parametrize("seq", [1, 2])
def test_the_event_log_and_ledger_refuse_update_and_delete(
    backend: Backend, store: EventStore, action: str, seq: int
):
    append(store, "B1", 2)
    before = snapshot(store)
    with pytest.raises(backend.refused, match="append-only"):
        backend.forge(action, "B1", seq)
    assert snapshot(store) == before


def test_a_new_store_has_every_protection_of_the_log(store: EventStore):
    assert store.missing_protections() == []


def test_a_protection_removed_behind_the_stores_back_is_named_and_stays_named(
    backend: Backend, store: EventStore
):
    append(store, "B1", 1)
    backend.unprotect()
    missing = store.missing_protections()
    assert len(missing) == 1 and isinstance(missing[0], str) and missing[0]
    reopened = backend.open()  # opening must not quietly put it back: verification must see it
    try:
        assert reopened.missing_protections() == missing
    finally:
        reopened.close()
    backend.forge("update_event", "B1", 1)  # now goes through: that rule was what refused it


# --- choosing the backend -----------------------------------------------------------------------
def _opened_file(store: EventStore) -> Path:
    path = Path(store.path)  # type: ignore[attr-defined]
    store.close()
    return path.resolve()


def test_counters_and_keys_are_listed_and_a_counter_is_only_ever_raised(store: EventStore):
    with store.writing("B1", 0) as unit:
        assert unit.next_number("deviation") == 1
        written = unit.append([NewEvent("t", "alice", {})], "2026-11-02T08:00:00Z")
        unit.remember_key("k1", written[0].seq, written[0].seq)
    with store.writing("__counter__", 0) as unit:
        unit.raise_counter("deviation", 7)
        unit.raise_counter("deviation", 3)  # lower: ignored
        unit.raise_counter("batch-20261102", 2)
    assert store.counters() == {"deviation": 7, "batch-20261102": 2}
    assert store.keys() == {"k1": ("B1", 1, 1)}
    with store.writing("__counter__", 0) as unit:
        assert unit.next_number("deviation") == 8


# --- sign-in state ---------------------------------------------------------------------------
def test_each_database_has_its_own_lasting_id(backend: Backend, store: EventStore):
    first = store.database_id()
    assert len(first) >= 16
    again = backend.open()
    assert again.database_id() == first
    again.close()


def test_sessions_are_kept_touched_and_closed_by_token_or_person(backend: Backend, store):
    from cmprep.store.base import SessionRow

    row = SessionRow("h1", "alice", "2026-11-02T08:00:00Z", "2026-11-02T08:00:00Z", "k")
    store.open_session(row)
    store.open_session(SessionRow("h2", "alice", row.opened_at, row.last_seen, "k"))
    store.open_session(SessionRow("h3", "bob", row.opened_at, row.last_seen, "k"))
    assert store.session("h1") == row and store.session("nope") is None
    store.touch_session("h1", "2026-11-02T08:10:00Z")
    other = backend.open()
    assert other.session("h1").last_seen == "2026-11-02T08:10:00Z"
    assert other.close_sessions(token_hash="h1") == 1
    assert store.session("h1") is None
    assert store.close_sessions(user="alice") == 1 and store.session("h3") is not None
    other.close()


def test_wrong_passwords_are_counted_per_person_in_any_case_until_cleared(store: EventStore):
    assert store.count_failure("alice") == 1
    assert store.count_failure("ALICE") == 2
    assert store.count_failure("bob") == 1
    store.clear_failures("Alice")
    assert store.count_failure("alice") == 1


def test_a_plain_path_or_a_sqlite_url_opens_an_sqlite_file(tmp_path: Path, monkeypatch):
    from cmprep.store import open_store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert _opened_file(open_store(str(tmp_path / "a.db"), create=True)) == tmp_path / "a.db"
    assert _opened_file(open_store(tmp_path / "b.db", create=True)) == tmp_path / "b.db"
    assert _opened_file(open_store("sqlite:///sub/c.db", create=True)) == tmp_path / "sub" / "c.db"
    assert _opened_file(open_store(f"sqlite:///{tmp_path}/d.db", create=True)) == tmp_path / "d.db"
    assert (tmp_path / "d.db").exists()


def test_without_a_url_the_environment_then_the_default_file_is_used(tmp_path: Path, monkeypatch):
    from cmprep.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CMPREP_DB", str(tmp_path / "env.db"))
    assert _opened_file(open_store(create=True)) == tmp_path / "env.db"
    monkeypatch.delenv("CMPREP_DB")
    assert _opened_file(open_store(None, create=True)) == tmp_path / "cmprep.db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://lab@127.0.0.1:1/cmprep",
        "postgres://127.0.0.1:1/x",
        "postgresql+psycopg://127.0.0.1:1",
    ],
)
def test_a_postgresql_server_that_cannot_be_reached_is_named_not_a_file(
    tmp_path: Path, monkeypatch, url
):
    from cmprep.store import open_store

    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="cannot connect to the database server"):
        open_store(url)
    assert list(tmp_path.iterdir()) == []  # no file named after the URL


def test_postgresql_without_its_extra_says_what_to_install(monkeypatch):
    import sys

    from cmprep.errors import MissingExtra
    from cmprep.store import open_store

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "cmprep.store.postgres", raising=False)
    with pytest.raises(MissingExtra, match="needs the psycopg package") as err:
        open_store("postgresql://db/x")
    assert err.value.hint is not None and err.value.hint.data["extra"] == "postgres"


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite://", "sqlite:///", "http://x/y.db"])
def test_another_scheme_is_refused_naming_the_accepted_forms(tmp_path: Path, monkeypatch, url):
    from cmprep.store import open_store

    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=r"sqlite:///") as err:
        open_store(url)
    assert "--" not in str(err.value) and "cmprep " not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_importing_the_store_package_opens_no_backend():
    import subprocess
    import sys

    code = (
        "import sys, cmprep.store; "
        "print(sorted(m for m in ('cmprep.store.sqlite', 'sqlite3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
