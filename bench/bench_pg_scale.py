"""Ratio: `batch status`, `deviation list` and `audit verify` on PostgreSQL vs the same
database on SQLite.

    python bench/bench_pg_scale.py --db bench-output/bench-10000.db

The generated SQLite database (bench/generate.py) is copied whole into a throwaway
PostgreSQL cluster (`cmprep db copy`, as a lab moving to a server would), then each command
runs as a person runs it, a new process each time, alternating the two backends; min and
median. `audit verify` runs in this process on each (its time is the log's size, not a
start), without a checkpoint and then with one made on each by `audit anchor`. Needs
PostgreSQL server binaries. Prints ratios, never pass/fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgserver import Cluster


def timed(args: list[str], db: str) -> float:
    env = {**os.environ, "CMPREP_DB": db}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cmprep", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a database made by bench/generate.py")
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    from cmprep.service import transfer
    from cmprep.store import open_store

    server = Cluster()
    try:
        url = server.new_database()
        t0 = time.perf_counter()
        copied = transfer.copy(opts.db, url)
        took = time.perf_counter() - t0
        print(f"copied {copied.copied.events} events to PostgreSQL in {took:.0f} s")
        store = open_store(opts.db)
        batch = store.batch_ids()[len(store.batch_ids()) // 2]
        store.close()
        commands = {
            f"batch status {batch}": ["batch", "status", batch],
            "deviation list --format csv": ["deviation", "list", "--format", "csv"],
        }
        print("PostgreSQL vs SQLite, same records; min / median of", opts.runs)
        for name, args in commands.items():
            sqlite, pg = [], []
            for _ in range(opts.runs):
                sqlite.append(timed(args, opts.db))
                pg.append(timed(args, url))
            s, p = statistics.median(sqlite), statistics.median(pg)
            print(
                f"  {name:<32} SQLite {min(sqlite) * 1000:6.0f} / {s * 1000:6.0f} ms   "
                f"PostgreSQL {min(pg) * 1000:6.0f} / {p * 1000:6.0f} ms  ({p / s:.2f}x)"
            )
        verified(opts.db, url)
    finally:
        server.remove()


def verified(sqlite_db: str, url: str) -> None:
    """`audit verify` on each backend, then `audit anchor` on each (into a folder of its
    own; quinn signs, as in bench_verify) and `audit verify` with that checkpoint."""
    import shutil
    import tempfile

    from bench_verify import anchor_store

    from cmprep.service import Services
    from cmprep.store import open_store

    print("audit verify, in this process (s):")
    folders = {name: Path(tempfile.mkdtemp()) for name in ("SQLite", "PostgreSQL")}
    try:
        for label, anchors in (("no checkpoint", None), ("with a checkpoint", folders)):
            took = {}
            for name, db in (("SQLite", sqlite_db), ("PostgreSQL", url)):
                store = open_store(db)
                if anchors is not None:
                    began = time.perf_counter()
                    anchor_store(store, anchors[name])
                    print(f"  audit anchor on {name}: {time.perf_counter() - began:.1f} s")
                began = time.perf_counter()
                where = str(anchors[name]) if anchors is not None else None
                result = Services(store).audit.verify(anchors_dir=where)
                took[name] = time.perf_counter() - began
                store.close()
                rate = result.checked / took[name]
                print(f"  {label:<18} {name:<10} {took[name]:6.1f} s  {rate:9,.0f} events/s")
            print(f"  {label:<18} PostgreSQL / SQLite: {took['PostgreSQL'] / took['SQLite']:.2f}x")
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
