"""Ratio: recording a step through cmprep vs a raw sqlite3 INSERT + COMMIT, same durability.

Both sides commit one transaction per write on a WAL database with synchronous=FULL, in
the same folder, taking turns (a raw insert, then a cmprep record, round after round), so
a disk that is slower for a while slows both. The ratio shows what cmprep's fold,
validation, hashing and projections cost on top of the fsync that any durable write pays.
The same two loops are then run with synchronous=OFF: what is left is the processor time
of each side, which no disk hides. Prints min and median, never pass/fail.

The step timed is "spin", the 7th event of a batch of the standard protocol: a batch is
started and its first five steps recorded untimed before each round.

Two raw peers take turns with cmprep: one INSERT of the step's values alone (the floor of
any durable write), and the same rows cmprep writes (its event row with the payload as
stored, its ledger entry, the stream's head and the batch's query row, and the clearing
of its QC points), copied from cmprep's own first write into a database of the same
schema, statement by statement as hand-written code would: what the issue's "a raw
INSERT+COMMIT of the same rows" measures.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import GOOD, STANDARD, approve_bundled, seed_people

from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

ROUNDS = 60
BEFORE_SPIN = ("isolation", "expansion", "pbs_wash", "conditioning", "collection")


def raw_writer(db: Path, synchronous: str) -> Callable[[int], float]:
    """One INSERT of a step's values and its COMMIT, as hand-written code would do it."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE t (batch TEXT, seq INTEGER, payload TEXT, PRIMARY KEY (batch, seq))")
    payload = json.dumps(GOOD["spin"])

    def write(i: int) -> float:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", (f"B{i}", 7, payload))
        conn.execute("COMMIT")
        return time.perf_counter() - t0

    return write


def same_rows_writer(db: Path, synchronous: str, sample: Path) -> Callable[[int], float]:
    """The rows cmprep wrote for its first timed step (in SAMPLE), written again under a
    new batch id each round into a database of the same schema, with plain statements."""
    SQLiteStore(db, create=True).close()  # the same tables, indexes and triggers
    source = sqlite3.connect(sample)
    event = source.execute("SELECT * FROM events WHERE batch_id = 'B0' AND seq = 7").fetchone()
    entry = source.execute("SELECT * FROM ledger WHERE batch_id = 'B0' AND seq = 7").fetchone()
    batch = source.execute("SELECT * FROM batches WHERE batch_id = 'B0'").fetchone()
    source.close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    marks = {n: ", ".join("?" * n) for n in (len(event), len(entry), len(batch))}

    def write(i: int) -> float:
        batch_id = f"B{i}"
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT INTO events VALUES ({marks[len(event)]})", (batch_id, *event[1:]))
        conn.execute(f"INSERT INTO ledger VALUES ({marks[len(entry)]})", (i, batch_id, *entry[2:]))
        conn.execute(
            "INSERT INTO heads (batch_id, seq, hash) VALUES (?, ?, ?) ON CONFLICT(batch_id) "
            "DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (batch_id, event[1], event[-1]),
        )
        conn.execute(
            f"INSERT OR REPLACE INTO batches VALUES ({marks[len(batch)]})", (batch_id, *batch[1:])
        )
        conn.execute("DELETE FROM qc_points WHERE batch_id = ?", (batch_id,))
        conn.execute("COMMIT")
        return time.perf_counter() - t0

    return write


def cmprep_writer(db: Path, synchronous: str) -> Callable[[int], float]:
    """``batches.record`` of the spin step, everything before it done untimed."""
    now = [datetime(2026, 11, 2, 8, tzinfo=timezone.utc)]
    store = SQLiteStore(db, create=True)
    store.conn.execute(f"PRAGMA synchronous={synchronous}")  # FULL is the store's own
    svc = Services(store, clock=lambda: now[0])
    approve_bundled(seed_people(svc))  # people proven, protocols approved, as in the tests

    def write(i: int) -> float:
        batch_id = f"B{i}"
        svc.batches.start(STANDARD, "alice", batch_id)
        for step in BEFORE_SPIN:
            now[0] += timedelta(hours=48 if step == "collection" else 0.5)
            svc.batches.record(batch_id, step, GOOD[step], "alice")
        now[0] += timedelta(minutes=30)
        t0 = time.perf_counter()
        svc.batches.record(batch_id, "spin", GOOD["spin"], "alice")
        return time.perf_counter() - t0

    return write


def run(folder: Path, synchronous: str) -> tuple[list[float], list[float], list[float]]:
    raw = raw_writer(folder / f"raw-{synchronous}.db", synchronous)
    ours_db = folder / f"cmprep-{synchronous}.db"
    ours = cmprep_writer(ours_db, synchronous)
    ours(0)  # untimed: its rows are what the same-rows peer writes
    same = same_rows_writer(folder / f"same-{synchronous}.db", synchronous, ours_db)
    raw_times, same_times, our_times = [], [], []
    for i in range(1, ROUNDS + 1):
        raw_times.append(raw(i))
        same_times.append(same(i))
        our_times.append(ours(i))
    return raw_times, same_times, our_times


def say(label: str, times: list[float]) -> None:
    low, mid = min(times) * 1e3, statistics.median(times) * 1e3
    print(f"  {label:44s} min {low:6.2f} ms   median {mid:6.2f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for synchronous, what in (("FULL", "durable"), ("OFF", "processor time only")):
            raw, same, ours = run(Path(tmp), synchronous)
            print(f"WAL, synchronous={synchronous} ({what}), {ROUNDS} rounds, interleaved:")
            say("raw sqlite3 INSERT + COMMIT", raw)
            say("raw, the same rows cmprep writes", same)
            say("cmprep record_step (spin, 7th event)", ours)
            for peer, times in (("raw", raw), ("the same rows", same)):
                ratio_min = min(ours) / min(times)
                ratio_median = statistics.median(ours) / statistics.median(times)
                print(f"  ratio cmprep / {peer}: min {ratio_min:.1f}x   median {ratio_median:.1f}x")


if __name__ == "__main__":
    main()
