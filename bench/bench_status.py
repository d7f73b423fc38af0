"""Ratio: `cmprep batch status` as a new process vs a bare `python -c pass`.

What a technician feels at the bench is the whole command, interpreter start included.
Prints ratios, never pass/fail.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 15


def timed(cmd: list[str], env: dict[str, str]) -> float:
    runs = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {**os.environ, "CMPREP_DB": str(db), "CMPREP_USER": "alice"}
        cmprep = [sys.executable, "-m", "cmprep"]
        quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL, "text": True}
        pw = "bench-password\n"
        admin = ["user", "add", "admin", "--full-name", "A", "--role", "admin", "--password-stdin"]
        subprocess.run([*cmprep, *admin], input=pw, **quiet)
        alice = ["user", "add", "alice", "--full-name", "Alice", "--role", "technician"]
        subprocess.run([*cmprep, *alice, "--password-stdin", "--as", "admin"], input=pw, **quiet)
        subprocess.run(
            [*cmprep, "batch", "start", "cm-standard-serum-free", "--id", "B1"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [*cmprep, "batch", "record", "B1", "isolation", "source_tissue=UC", "donor_id=D1"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        bare = timed([sys.executable, "-c", "pass"], env)
        helptime = timed([*cmprep, "--help"], env)
        status = timed([*cmprep, "batch", "status", "B1"], env)
    print(f"python -c pass:        median {bare * 1000:.0f} ms")
    print(f"cmprep --help:         median {helptime * 1000:.0f} ms  ({helptime / bare:.1f}x)")
    print(f"cmprep batch status:   median {status * 1000:.0f} ms  ({status / bare:.1f}x)")


if __name__ == "__main__":
    main()
