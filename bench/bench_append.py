"""Ratio: recording a step through cmprep vs a raw sqlite3 insert with the same durability.

Both sides commit one transaction per write on a WAL database with synchronous=FULL, so
the ratio shows what cmprep's fold, validation, hashing and projections cost on top of
the fsync that any durable write pays. Prints ratios, never pass/fail.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import GOOD, STANDARD, approve_bundled, seed_people

from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

ROUNDS = 30


def raw_inserts(db: Path, n: int) -> list[float]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (batch TEXT, seq INTEGER, payload TEXT, PRIMARY KEY (batch, seq))")
    payload = json.dumps(GOOD["spin"])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", ("B", i, payload))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    return times


def cmprep_records(db: Path, n: int) -> list[float]:
    now = [datetime(2026, 11, 2, 8, tzinfo=timezone.utc)]
    svc = Services(SQLiteStore(db, create=True), clock=lambda: now[0])
    approve_bundled(seed_people(svc))  # people proven, protocols approved, as in the tests
    times = []
    for i in range(n):
        batch_id = f"B{i}"
        svc.batches.start(STANDARD, "alice", batch_id)
        for step in ("isolation", "expansion", "pbs_wash", "conditioning", "collection"):
            now[0] += timedelta(hours=48 if step == "collection" else 0.5)
            svc.batches.record(batch_id, step, GOOD[step], "alice")
        now[0] += timedelta(minutes=30)
        t0 = time.perf_counter()
        svc.batches.record(batch_id, "spin", GOOD["spin"], "alice")  # the 7th event of a batch
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = statistics.median(raw_inserts(Path(tmp) / "raw.db", ROUNDS * 3))
        ours = statistics.median(cmprep_records(Path(tmp) / "cmprep.db", ROUNDS))
    print(f"raw sqlite3 insert (WAL, synchronous=FULL): median {raw * 1000:.2f} ms")
    print(f"cmprep record_step (spin, 7th event):       median {ours * 1000:.2f} ms")
    print(f"ratio cmprep / raw insert: {ours / raw:.1f}x")


if __name__ == "__main__":
    main()
