"""Recording the QC step with 15, 150 and 1,500 released batches in the database.

The QC step is checked with Westgard rules against the lab's released batches; the
baseline comes from the QC points projection (one indexed query per trended analyte, at
most ``HISTORY_POINTS`` released points: 15 batches give fewer, 150 and 1,500 the same), so
the time should not grow with the history. The databases are built alike (a released
template batch copied into the history, then batches at their QC step) and timed
interleaved, min and median. For scale, the old way (folding every released batch for
each trended analyte) is timed once on each. Prints times and ratios, never pass/fail.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import REPO, STANDARD, Clock, approve_file, run_to, seed_people
from test_scale import QC, Counting, copy_history, released_template

from cmprep.domain import people
from cmprep.domain.batch import fold
from cmprep.service import Services
from cmprep.store.query import BatchFilter
from cmprep.store.sqlite import SQLiteStore

SIZES = (15, 150, 1500)  # 150: the history window (30 released) is full
ROUNDS = 30
TRENDED = 3  # VEGF, IL-6 and FGF-2 are trended and measured in QC


def build(db: Path, released: int) -> tuple[Services, Clock]:
    """RELEASED batches of the standard protocol, then ROUNDS batches at their QC step."""
    clock = Clock()
    svc = seed_people(Services(SQLiteStore(db, create=True), clock=clock))
    approve_file(svc, REPO / "protocols" / f"{STANDARD}.yaml")
    released_template(svc, clock, "TEMPLATE")
    copy_history(svc, clock, "TEMPLATE", released - 1)
    for i in range(ROUNDS):
        clock.advance(hours=1)
        svc.batches.start(STANDARD, "alice", f"QC-{i:02d}")
        run_to(svc, clock, f"QC-{i:02d}", stop_before="qc")
    return svc, clock


def old_history(svc: Services) -> float:
    """Seconds the old way took to get the history: every released batch folded, once per
    trended analyte."""
    t0 = time.perf_counter()
    for _ in range(TRENDED):
        for row in svc.store.batch_rows(BatchFilter(protocol_id=STANDARD, state="released")):
            fold(svc.store.events(row["batch_id"]))
    return time.perf_counter() - t0


def main() -> None:
    people.SCRYPT_N = 2**8  # people are set up, not timed: cheap password hashes
    with tempfile.TemporaryDirectory() as tmp:
        built = {n: build(Path(tmp) / f"qc{n}.db", n) for n in SIZES}
        times: dict[int, list[float]] = {n: [] for n in SIZES}
        for i in range(ROUNDS):  # interleaved: a drift of the machine hits both alike
            for n, (svc, clock) in built.items():
                clock.advance(hours=1)
                t0 = time.perf_counter()
                out = svc.batches.record(f"QC-{i:02d}", "qc", QC, "alice")
                times[n].append(time.perf_counter() - t0)
                assert not out.deviations, out.deviations
        rows = {}
        for n, (svc, clock) in built.items():  # what one more QC step reads
            counting = Counting(svc.store)  # type: ignore[arg-type]
            svc.ctx.store = counting  # type: ignore[assignment]
            clock.advance(hours=1)
            svc.batches.start(STANDARD, "alice", "COUNTED")
            run_to(svc, clock, "COUNTED", stop_before="qc")
            counting.reset()
            svc.batches.record("COUNTED", "qc", QC, "alice")
            rows[n] = sum(counting.rows.values())
        old = {n: old_history(svc) for n, (svc, _) in built.items()}
    print(f"recording the QC step (Westgard on {TRENDED} trended analytes), {ROUNDS} rounds:")
    for n in SIZES:
        print(
            f"  {n:>5} released batches: min {min(times[n]) * 1000:6.2f} ms, "
            f"median {statistics.median(times[n]) * 1000:6.2f} ms, {rows[n]} rows read; "
            f"the old way's history alone: {old[n] * 1000:8.1f} ms"
        )
    median = {n: statistics.median(times[n]) for n in SIZES}
    for n in SIZES[:-1]:
        print(f"  ratio {SIZES[-1]} / {n}: {median[SIZES[-1]] / median[n]:.2f}x (median)")


if __name__ == "__main__":
    main()
