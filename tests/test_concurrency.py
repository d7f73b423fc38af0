"""Two real processes writing to one stream: one wins, the other is told to try again.

A batch and a system stream (@users) are guarded alike: each writer decides from the events
its write is checked against, so a race gives one write and one clear refusal, never two.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from conftest import GOOD, PASSWORD, STANDARD, approve_bundled, present, seed_people

from cmprep import events as ev
from cmprep.domain import lineage as ln
from cmprep.domain import people
from cmprep.errors import ConcurrencyError, Refused
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

CTX = mp.get_context("fork")


def _slow_writer(db: str, loaded, go, result) -> None:
    """Folds the batch, then waits until the other process has written, then writes."""
    store = SQLiteStore(db, create=True)
    original = store.writing

    def writing(batch_id, expected_seq):
        loaded.set()
        go.wait(10)
        return original(batch_id, expected_seq)

    store.writing = writing  # type: ignore[method-assign]
    try:
        present(Services(store)).batches.record(
            "B1", "isolation", {"source_tissue": "BM", "donor_id": "D-2"}, "bob"
        )
        result.put("written")
    except ConcurrencyError as err:
        result.put(f"conflict: {err}")


def _fast_writer(db: str, loaded, go, result) -> None:
    loaded.wait(10)
    svc = present(Services(SQLiteStore(db, create=True)))
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    result.put("written")
    go.set()


def test_the_second_of_two_writers_gets_batch_changed_and_history_does_not_fork(tmp_path: Path):
    db = str(tmp_path / "race.db")
    svc = approve_bundled(seed_people(Services(SQLiteStore(db, create=True))))
    svc.batches.start(STANDARD, "alice", "B1")
    loaded, go, result = CTX.Event(), CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(target=_slow_writer, args=(db, loaded, go, result)),
        CTX.Process(target=_fast_writer, args=(db, loaded, go, result)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(result.get(timeout=5) for _ in procs)
    assert outcomes[1] == "written"
    assert outcomes[0].startswith("conflict: batch B1 changed") and "try again" in outcomes[0]
    events = SQLiteStore(db, create=True).events("B1")
    assert [e.type for e in events] == [ev.BATCH_STARTED, ev.STEP_RECORDED]
    assert events[1].actor == "alice"
    assert ev.verify_chain("B1", events) is None


def _hammer(db: str, who: str, rounds: int, result) -> None:
    svc = present(Services(SQLiteStore(db, timeout=30, create=True)))
    wins = conflicts = 0
    for i in range(rounds):
        try:
            batch = svc.batches.batch("B1")
            if batch.on_hold:
                svc.batches.resume("B1", who, f"round {i}")
            else:
                svc.batches.hold("B1", who, f"round {i}")
            wins += 1
        except ConcurrencyError:
            conflicts += 1
        except Exception as err:  # a refusal because the other one moved first
            if "on hold" not in str(err):
                raise
            conflicts += 1
    result.put((wins, conflicts))


def test_two_processes_hammering_one_batch_never_duplicate_or_fork_events(tmp_path: Path):
    db = str(tmp_path / "hammer.db")
    svc = approve_bundled(seed_people(Services(SQLiteStore(db, create=True))))
    svc.batches.start(STANDARD, "alice", "B1")
    result = CTX.Queue()
    procs = [CTX.Process(target=_hammer, args=(db, who, 40, result)) for who in ("alice", "bob")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    wins = sum(result.get(timeout=5)[0] for _ in procs)
    events = SQLiteStore(db, create=True).events("B1")
    assert len(events) == 1 + wins
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert ev.verify_chain("B1", events) is None
    types = [e.type for e in events[1:]]
    # holds and resumes alternate: no event was applied twice from a stale view
    assert all(
        t == (ev.BATCH_HELD if i % 2 == 0 else ev.BATCH_RESUMED) for i, t in enumerate(types)
    )


def _race(target, args: list[tuple]) -> list[tuple[str, str]]:
    """TARGET run at once in one process per ARGS (each given the shared barrier and the
    result queue after its own), joined: their outcomes, sorted; each process ended well."""
    barrier, result = CTX.Barrier(len(args)), CTX.Queue()
    procs = [CTX.Process(target=target, args=(*a, barrier, result)) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(result.get(timeout=5) for _ in procs)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return outcomes


def _meet_before_writing(store: SQLiteStore, stream: str, barrier) -> None:
    """Make STORE's first write to STREAM wait at BARRIER: both processes have then
    decided from the same state before either writes."""
    original = store.writing
    met: list[bool] = []

    def writing(name, expected_seq):
        if name == stream and not met:  # meet once, after both decided
            met.append(True)
            barrier.wait(10)
        return original(name, expected_seq)

    store.writing = writing  # type: ignore[method-assign]


def _add_bob(db: str, full_name: str, meet_at_write: bool, barrier, result) -> None:
    """One admin adding bob. With MEET_AT_WRITE, wait until the other process has also
    decided (both read @users without bob) before writing: the race at its worst."""
    people.SCRYPT_N = 2**8  # a subprocess does not get the test's monkeypatch
    store = SQLiteStore(db, timeout=30, create=True)
    if meet_at_write:
        _meet_before_writing(store, people.USERS_STREAM, barrier)
    else:
        barrier.wait(10)  # only start together
    try:
        Services(store).people.add("bob", full_name, "technician", PASSWORD, "root", PASSWORD)
        result.put(("added", full_name))
    except (ConcurrencyError, Refused) as err:
        result.put((type(err).__name__, str(err)))


@pytest.mark.parametrize(
    "meet_at_write", [True, False], ids=["decided-together", "started-together"]
)
def test_two_admins_adding_the_same_user_at_once_give_one_user_and_one_refusal(
    tmp_path: Path, meet_at_write: bool
):
    db = str(tmp_path / "users.db")
    Services(SQLiteStore(db, create=True)).people.add("root", "Ada Admin", "admin", PASSWORD, None)
    outcomes = _race(_add_bob, [(db, name, meet_at_write) for name in ("Bob Baker", "Bob Brown")])
    winners = [o for o in outcomes if o[0] == "added"]
    losers = [o for o in outcomes if o[0] != "added"]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    kind, message = losers[0]
    if meet_at_write:  # both decided from the same head: the head check catches the loser,
        # which decides again from the stream as it now is and hears that bob exists
        assert kind == "Refused" and "user name 'bob' is taken" in message
    else:  # whichever check came first, the refusal is a clear one
        assert ("changed while you were entering" in message) or ("is taken" in message)
    events = SQLiteStore(db, create=True).events(people.USERS_STREAM)
    added = [e for e in events if e.type == people.USER_ADDED and e.payload["name"] == "bob"]
    assert len(added) == 1
    assert people.fold_users(events)["bob"].full_name == winners[0][1]
    assert ev.verify_chain(people.USERS_STREAM, events) is None


def _draw(db: str, out: str, barrier, result) -> None:
    """One technician drawing 7 mL from the 10 mL lot MED-1, writing only once the other
    has decided too (both read MED-1's row with 10 mL left): the race at its worst."""
    people.SCRYPT_N = 2**8  # a subprocess does not get the test's monkeypatch
    store = SQLiteStore(db, timeout=30, create=True)
    _meet_before_writing(store, ln.MATERIALS_STREAM, barrier)
    try:
        present(Services(store)).lineage.derive(
            [("MED-1", "7")], [(out, "7")], ln.FILTRATE, "mL", "alice"
        )
        result.put(("drawn", out))
    except (ConcurrencyError, Refused) as err:
        result.put((type(err).__name__, "; ".join([str(err), *err.problems])))


def test_two_technicians_drawing_the_last_of_a_lot_at_once_give_one_draw_and_one_refusal(
    tmp_path: Path,
):
    """A write to @materials reads only the rows it names, checked against the head read
    before them: the loser is decided again from the rows as they now are, and told what
    is left, never both drawing 7 mL of 10."""
    db = str(tmp_path / "materials.db")
    svc = approve_bundled(seed_people(Services(SQLiteStore(db, create=True))))
    svc.materials.register_lot("MED-1", "medium", "2027-12-31", "alice", quantity=10, unit="mL")
    svc.close()
    outcomes = _race(_draw, [(db, out) for out in ("F1", "F2")])
    winners = [o for o in outcomes if o[0] == "drawn"]
    [(kind, message)] = [o for o in outcomes if o[0] != "drawn"]
    assert len(winners) == 1, outcomes
    assert kind == "Refused" and "7 mL of MED-1 is more than remains (3 mL)" in message
    again = Services(SQLiteStore(db, create=True))
    assert again.lineage.material("MED-1").remaining == 3
    assert again.store.registered("material", "MED-1")["remaining"] == "3"
    assert again.audit.verify().problems == []
