"""Ratio: one durable append through cmprep's PostgreSQL store vs a raw psycopg
INSERT+COMMIT of a row of the same size, on the same server (fsync on), in one run.

Both sides pay one commit (one WAL flush) per write; the ratio is what cmprep's locking of
the head and ledger tail, chaining and hashing cost on top. Needs PostgreSQL server binaries
(the bench starts a throwaway cluster, as the tests do). Prints ratios, never pass/fail.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import GOOD
from pgserver import Cluster

ROUNDS = 300


def interleaved(raw_url: str, our_url: str) -> tuple[list[float], list[float]]:
    """One raw write, then one cmprep append, ROUNDS times: both meet the same disk."""
    import psycopg

    from cmprep.events import NewEvent
    from cmprep.store.postgres import PostgresStore

    payload = json.dumps({"values": GOOD["spin"]})
    store = PostgresStore(our_url, create=True)
    at = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)
    floor, ours = [], []
    with psycopg.connect(raw_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw_t (batch_id TEXT, seq INTEGER, payload TEXT, hash TEXT, "
            "PRIMARY KEY (batch_id, seq))"
        )
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            with conn.transaction():
                conn.execute(
                    "INSERT INTO raw_t VALUES (%s, %s, %s, %s)", ("B", i, payload, "0" * 64)
                )
            floor.append(time.perf_counter() - t0)
            stamp = (at + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
            t0 = time.perf_counter()
            with store.writing("B", i) as unit:
                unit.append([NewEvent("step_recorded", "alice", {"values": GOOD["spin"]})], stamp)
            ours.append(time.perf_counter() - t0)
    store.close()
    return floor, ours


def main() -> None:
    server = Cluster(durable=True)
    try:
        floor, ours = interleaved(server.new_database(), server.new_database())
    finally:
        server.remove()
    print("PostgreSQL, fsync on, interleaved; min / median")
    for name, times in (("raw psycopg INSERT+COMMIT", floor), ("cmprep append (store)", ours)):
        low, mid = min(times), statistics.median(times)
        ratio = f"  ({mid / statistics.median(floor):.2f}x median)" if times is ours else ""
        print(f"  {name:<28} {low * 1000:6.2f} / {mid * 1000:6.2f} ms{ratio}")


if __name__ == "__main__":
    main()
