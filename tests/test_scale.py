"""Cost independent of history: what a person does to one batch reads the same rows with
50 batches in the database as with 500.

Two databases are built alike (the same people, protocol and batches under way) except for
the number of released batches before them; a wrapper on the store counts the rows each of
its methods returns (events, query rows, QC points, ledger entries ...). The batch record,
the status view, the review report, recording a step and recording the QC step (Westgard
against the lab's history) must count the same in both, and read no other batch's events.
Counting rows, not timing, keeps the test deterministic; the times are in ``make bench``.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    GOOD,
    PASSWORD,
    REPO,
    STANDARD,
    Clock,
    approve_file,
    run_to,
    seed_people,
    traced_peak,
)

from cmprep.domain import people
from cmprep.domain.qc_points import HISTORY_POINTS
from cmprep.events import NewEvent
from cmprep.service import Services
from cmprep.service.views import status
from cmprep.store.chain import is_system
from cmprep.store.sqlite import SQLiteStore

SIZES = (50, 500)
QC = {**GOOD["qc"], "il6": "150 pg/mL", "fgf2": "40 pg/mL"}


class Counting:
    """A store that counts, per method, the calls and the rows (items) each returns, and
    which batch streams had their events read."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.rows: Counter[str] = Counter()
        self.batches_read: set[str] = set()

    def reset(self) -> None:
        self.rows.clear()
        self.batches_read.clear()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name in ("writing", "close"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if name == "events" and not is_system(args[0]):
                self.batches_read.add(args[0])
            if isinstance(result, Iterator):  # a stream of rows: counted as they are read
                return self._streamed(name, result)
            self.rows[name] += len(result) if isinstance(result, (list, dict, set)) else 1
            return result

        return counted

    def _streamed(self, name: str, rows: Iterator[Any]) -> Iterator[Any]:
        self.rows[name] += 0  # asked, even if nothing comes
        for row in rows:
            self.rows[name] += 1
            yield row


def released_template(svc: Services, clock: Clock, batch_id: str) -> None:
    """A whole standard batch by alice, verified by bob, reviewed by rita, released by
    quinn: the template the history is copied from."""
    svc.batches.start(STANDARD, "alice", batch_id)
    run_to(svc, clock, batch_id, stop_before="qc")
    clock.advance(hours=1)
    svc.batches.record(batch_id, "qc", QC, "alice")
    for step in ("filtration", "qc"):
        clock.advance(minutes=10)
        svc.quality.verify_step(batch_id, step, "bob", PASSWORD)
    clock.advance(minutes=10)
    svc.quality.sign_review(batch_id, "rita", PASSWORD, "record reviewed")
    svc.quality.release(batch_id, "quinn", PASSWORD, "meets specification")


def copy_history(svc: Services, clock: Clock, template: str, n: int) -> None:
    """N released batches copied from TEMPLATE's events, each with its own VEGF, written
    as the write path writes (events, batch row, QC points) without replaying the bench:
    what is measured is reading them, not making them."""
    events = svc.store.events(template)
    for i in range(n):
        clock.advance(minutes=5)
        new = []
        for e in events:
            payload = copy.deepcopy(e.payload)
            if e.type == "step_recorded" and payload["step"] == "qc":
                vegf = 250.0 + (i * 7) % 11 - 5  # 245 to 255 pg/mL: no Westgard rule broken
                payload["values"]["vegf"].update(
                    value=vegf, display=f"{vegf:g} pg/mL", raw=f"{vegf:g} pg/mL"
                )
            new.append(NewEvent(e.type, e.actor, payload, reason=e.reason))
        svc.ctx.write(f"H-{i:04d}", 0, new, clock(), None)


def _build(path: Path, n: int) -> tuple[Services, Counting, Clock]:
    """A database with N released batches, then the batches that are measured: TEMPLATE
    (released), QC-DUE (at its QC step) and SPIN-DUE (at its spin)."""
    clock = Clock()
    counting = Counting(SQLiteStore(path, create=True))
    svc = seed_people(Services(counting, clock=clock))  # type: ignore[arg-type]
    approve_file(svc, REPO / "protocols" / f"{STANDARD}.yaml")
    released_template(svc, clock, "TEMPLATE")
    copy_history(svc, clock, "TEMPLATE", n)
    for batch_id, stop in (("QC-DUE", "qc"), ("SPIN-DUE", "spin")):
        clock.advance(hours=1)
        svc.batches.start(STANDARD, "alice", batch_id)
        run_to(svc, clock, batch_id, stop_before=stop)
    return svc, counting, clock


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(people, "SCRYPT_N", 2**8)  # as the suite's autouse fixture does
        built = {n: _build(tmp_path_factory.mktemp(f"scale{n}") / "cm.db", n) for n in SIZES}
        yield built
    for svc, _, _ in built.values():
        svc.close()


def _record(svc: Services, clock: Clock) -> None:
    svc.documents.record("TEMPLATE", "html")


def _status(svc: Services, clock: Clock) -> None:
    status(svc.batches.batch("QC-DUE"))


def _review(svc: Services, clock: Clock) -> None:
    svc.quality.review_report("TEMPLATE")


def _step(svc: Services, clock: Clock) -> None:
    clock.advance(hours=1)
    svc.batches.record("SPIN-DUE", "spin", GOOD["spin"], "alice")


def _qc_step(svc: Services, clock: Clock) -> None:
    clock.advance(hours=1)
    out = svc.batches.record("QC-DUE", "qc", QC, "alice")
    assert out.deviations == []


# operation -> (what it does, the only batch whose events it may read)
OPERATIONS: dict[str, tuple[Callable[[Services, Clock], None], str]] = {
    "the batch record": (_record, "TEMPLATE"),
    "the status view": (_status, "QC-DUE"),
    "the review report": (_review, "TEMPLATE"),
    "recording a step": (_step, "SPIN-DUE"),
    "recording the QC step": (_qc_step, "QC-DUE"),
}


def _counted(databases: dict[int, Any], operation: str) -> dict[int, dict[str, int]]:
    """Rows per store method that OPERATION reads in each database; fails if it reads
    the events of any batch but its own."""
    do, batch_id = OPERATIONS[operation]
    counted = {}
    for n, (svc, counting, clock) in databases.items():
        counting.reset()
        do(svc, clock)
        counted[n] = dict(counting.rows)
        assert counting.batches_read == {batch_id}, f"{operation} read other batches' events"
    return counted


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_operation_on_one_batch_reads_as_many_rows_with_50_or_500_batches(
    databases: dict[int, Any], operation: str
):
    counted = _counted(databases, operation)
    small, large = (counted[n] for n in SIZES)
    assert small == large, f"{operation} reads more with more batches"
    assert small.get("events", 0) > 0  # it did read its batch: the counter counts


def test_the_qc_step_and_the_record_read_the_bounded_history_of_each_trended_analyte(
    databases: dict[int, Any],
):
    """VEGF, IL-6 and FGF-2 are trended and measured: the newest HISTORY_POINTS released
    points of each, in both databases (the counter sees the history; it is not empty)."""
    svc, counting, clock = databases[SIZES[1]]
    clock.advance(hours=1)
    svc.batches.start(STANDARD, "alice", "QC-AGAIN")
    run_to(svc, clock, "QC-AGAIN", stop_before="qc")
    counting.reset()
    clock.advance(hours=1)
    svc.batches.record("QC-AGAIN", "qc", QC, "alice")
    assert counting.rows["qc_points"] == 3 * HISTORY_POINTS
    [vegf] = [r for r in svc.qc.summary(svc.batches.batch("TEMPLATE")) if r.name == "vegf"]
    assert len(vegf.history) == HISTORY_POINTS
    assert vegf.history_mean == pytest.approx(sum(vegf.history) / HISTORY_POINTS)


def _rebuild_peak(svc: Services) -> int:
    """The most memory Python held at once while `db rebuild` recomputed the query tables
    (after a first rebuild, so what any run keeps, such as compiled protocols, is there)."""
    before = svc.store.batch_rows()
    svc.audit.rebuild_projections()
    written, peak = traced_peak(svc.audit.rebuild_projections)
    assert svc.store.batch_rows() == before  # the same rows, rebuilt
    assert written == len(before)
    return peak


def test_rebuilding_the_query_tables_of_ten_times_the_batches_takes_no_more_memory(
    databases: dict[int, Any],
):
    """Each batch's rows are written as it is folded: memory is one batch's, not the
    lab's history (it held every row of every batch at once before)."""
    small, large = (_rebuild_peak(databases[n][0]) for n in SIZES)
    assert large <= 1.5 * small, (small, large)
