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
        sessions = Path(tmp) / "sessions"
        env = {**os.environ, "CMPREP_DB": str(db), "CMPREP_SESSIONS": str(sessions)}
        env.pop("CMPREP_USER", None)
        pw = "bench-password"

        def cm(*args: str, stdin: str = "") -> None:
            subprocess.run(
                [sys.executable, "-m", "cmprep", *args],
                input=stdin,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                text=True,
            )

        # the walk-through of a new lab: a database, people, a controlled protocol, a login
        cm("init", "--admin", "root", "--full-name", "Ada Admin", "--password-stdin", stdin=pw)
        for name, role in (("alice", "technician"), ("rita", "reviewer"), ("quinn", "qa")):
            add = ["user", "add", name, "--full-name", name.title(), "--role", role]
            cm(*add, "--as", "root", "--password-stdin", stdin=f"{pw}\n{pw}\n")
        protocols = Path(__file__).resolve().parent.parent / "protocols"
        protocol = str(protocols / "cm-standard-serum-free.yaml")
        cm("protocol", "import", protocol, "--as", "rita", "--password-stdin", stdin=pw)
        version = next(
            line.split(":", 1)[1].strip().strip("'\"")
            for line in Path(protocol).read_text(encoding="utf-8").splitlines()
            if line.startswith("version:")
        )
        approve = ["protocol", "approve", "cm-standard-serum-free", "--version", version]
        cm(*approve, "--as", "quinn", "--password-stdin", stdin=pw)
        cm("login", "--as", "alice", "--password-stdin", stdin=pw)
        cm("batch", "start", "cm-standard-serum-free", "--id", "B1")
        cm("batch", "record", "B1", "isolation", "source_tissue=UC", "donor_id=D1")
        cmprep = [sys.executable, "-m", "cmprep"]
        bare = timed([sys.executable, "-c", "pass"], env)
        click = timed([sys.executable, "-c", "import click"], env)
        helptime = timed([*cmprep, "--help"], env)
        status = timed([*cmprep, "batch", "status", "B1"], env)
    print(f"python -c pass:        median {bare * 1000:.0f} ms")
    print(f"python -c 'import click': median {click * 1000:.0f} ms  ({click / bare:.1f}x)")
    print(
        f"cmprep --help:         median {helptime * 1000:.0f} ms  ({helptime / bare:.1f}x; "
        f"{helptime / click:.2f}x import click)"
    )
    print(
        f"cmprep batch status:   median {status * 1000:.0f} ms  ({status / bare:.1f}x; "
        f"{status / click:.2f}x import click)"
    )


if __name__ == "__main__":
    main()
