"""Lots and materials as the "@materials" stream grows: a step naming a lot, a lot's
registration and a derivation drawing from a lot.

Each reads the rows it names by key (the ``lots`` and ``materials`` registers), so each
should cost the same beside 100 and beside 20,000 events of the stream. The stream is
filled with registrations written straight through the store's units, with their rows
kept as the services keep them (the lots a lab registers over years); the timed writes go
through the services, interleaved, min and median. Prints times and ratios, never
pass/fail.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import GOOD, STANDARD, Clock, approve_bundled, run_to, seed_people

from cmprep.domain import lineage as ln
from cmprep.domain import people
from cmprep.domain import traceability as tr
from cmprep.events import NewEvent
from cmprep.service import Services
from cmprep.service.material_rows import keep_materials
from cmprep.store.sqlite import SQLiteStore

SIZES = (100, 20_000)  # events of @materials beside the lot the step names
ROUNDS = 15
AT = "2026-11-02T08:00:00Z"


def _lot(lot: str) -> dict[str, str]:
    return {"lot": lot, "material": "FBS", "expiry": "2027-01-01", "supplier": "Acme"}


def build(db: Path, events: int) -> tuple[Services, Clock]:
    """A lab with PBS-26-118 registered through the service, then EVENTS more lot
    registrations written through the store's units (their rows kept as the service
    keeps them), and ROUNDS batches at their PBS wash."""
    clock = Clock()
    svc = approve_bundled(seed_people(Services(SQLiteStore(db, create=True), clock=clock)))
    svc.materials.register_lot("PBS-26-118", "PBS", "2027-12-31", "alice", quantity=1000,
                               unit="mL")  # fmt: skip
    store = svc.store
    store.conn.execute("PRAGMA synchronous=OFF")  # a bench database: speed over durability
    seq = len(store.events(tr.MATERIALS_STREAM))
    for i in range(events // 50):
        new = [NewEvent(tr.LOT_REGISTERED, "alice", _lot(f"R-{i:04d}-{k:02d}")) for k in range(50)]
        with store.writing(tr.MATERIALS_STREAM, seq) as unit:
            keep_materials(unit, ln.Folded({}), unit.append(new, AT))  # new lots: none read
        seq += 50
    for i in range(ROUNDS):
        svc.batches.start(STANDARD, "alice", f"B{i:02d}")
        run_to(svc, clock, f"B{i:02d}", stop_before="pbs_wash")
    return svc, clock


def timed(runs: dict[int, Callable[[int], None]]) -> dict[int, list[float]]:
    """Each run of RUNS (by size), ROUNDS times, interleaved."""
    times: dict[int, list[float]] = {n: [] for n in runs}
    for i in range(ROUNDS):
        for n, run in runs.items():
            t0 = time.perf_counter()
            run(i)
            times[n].append(time.perf_counter() - t0)
    return times


def say(what: str, times: dict[int, list[float]]) -> None:
    small, large = (times[n] for n in SIZES)
    print(f"{what}:")
    for n in SIZES:
        ts = times[n]
        low, mid = min(ts) * 1e3, statistics.median(ts) * 1e3
        print(f"  beside {n:>6,} @materials events   min {low:7.2f} ms   median {mid:7.2f} ms")
    ratio = statistics.median(large) / statistics.median(small)
    print(f"  ratio {SIZES[1]:,} / {SIZES[0]:,}: {ratio:.2f}x (median)")


def main() -> None:
    people.SCRYPT_N = 2**8  # people are set up, not timed: cheap password hashes
    with tempfile.TemporaryDirectory() as tmp:
        built = {n: build(Path(tmp) / f"lots{n}.db", n) for n in SIZES}

        def step(n: int) -> Callable[[int], None]:
            svc, clock = built[n]

            def run(i: int) -> None:
                clock.advance(minutes=30)
                svc.batches.record(f"B{i:02d}", "pbs_wash", GOOD["pbs_wash"], "alice",
                                   lots=["pbs-26-118"])  # fmt: skip

            return run

        def register(n: int) -> Callable[[int], None]:
            svc, _clock = built[n]

            def run(i: int) -> None:
                svc.materials.register_lot(f"NEW-{i:02d}", "FBS", "2027-12-31", "alice")

            return run

        def derive(n: int) -> Callable[[int], None]:
            svc, _clock = built[n]

            def run(i: int) -> None:
                svc.lineage.derive([("PBS-26-118", "1")], [(f"F-{i:02d}", "1")], ln.FILTRATE,
                                   "mL", "alice")  # fmt: skip

            return run

        say("a step naming a lot (read by key)", timed({n: step(n) for n in SIZES}))
        say("registering a lot (read by key)", timed({n: register(n) for n in SIZES}))
        say("a derivation drawing from a lot (read by key)", timed(
            {n: derive(n) for n in SIZES}))  # fmt: skip
        for svc, _clock in built.values():
            svc.close()


if __name__ == "__main__":
    main()
