"""Two real processes writing to one batch: one wins, the other is told to try again."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from conftest import GOOD, STANDARD, seed_people

from cmprep import events as ev
from cmprep.errors import ConcurrencyError
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

CTX = mp.get_context("fork")


def _slow_writer(db: str, loaded, go, result) -> None:
    """Folds the batch, then waits until the other process has written, then writes."""
    store = SQLiteStore(db)
    original = store.writing

    def writing(batch_id, expected_seq):
        loaded.set()
        go.wait(10)
        return original(batch_id, expected_seq)

    store.writing = writing  # type: ignore[method-assign]
    try:
        Services(store).batches.record(
            "B1", "isolation", {"source_tissue": "BM", "donor_id": "D-2"}, "bob"
        )
        result.put("written")
    except ConcurrencyError as err:
        result.put(f"conflict: {err}")


def _fast_writer(db: str, loaded, go, result) -> None:
    loaded.wait(10)
    Services(SQLiteStore(db)).batches.record("B1", "isolation", GOOD["isolation"], "alice")
    result.put("written")
    go.set()


def test_the_second_of_two_writers_gets_batch_changed_and_history_does_not_fork(tmp_path: Path):
    db = str(tmp_path / "race.db")
    seed_people(Services(SQLiteStore(db))).batches.start(STANDARD, "alice", "B1")
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
    events = SQLiteStore(db).events("B1")
    assert [e.type for e in events] == [ev.BATCH_STARTED, ev.STEP_RECORDED]
    assert events[1].actor == "alice"
    assert ev.verify_chain("B1", events) is None


def _hammer(db: str, who: str, rounds: int, result) -> None:
    svc = Services(SQLiteStore(db, timeout=30))
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
    seed_people(Services(SQLiteStore(db))).batches.start(STANDARD, "alice", "B1")
    result = CTX.Queue()
    procs = [CTX.Process(target=_hammer, args=(db, who, 40, result)) for who in ("alice", "bob")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    wins = sum(result.get(timeout=5)[0] for _ in procs)
    events = SQLiteStore(db).events("B1")
    assert len(events) == 1 + wins
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert ev.verify_chain("B1", events) is None
    types = [e.type for e in events[1:]]
    # holds and resumes alternate: no event was applied twice from a stale view
    assert all(
        t == (ev.BATCH_HELD if i % 2 == 0 else ev.BATCH_RESUMED) for i, t in enumerate(types)
    )
