"""Ratio: `cmprep batch status` as a new process vs a bare `python -c pass`.

What a technician feels at the bench is the whole command, interpreter start included,
typed as the installed `cmprep` command. The commands take turns, round after round, so a
slow moment of the machine falls on all of them; min and median of each. Prints ratios,
never pass/fail.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 25


def timed_in_turns(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, list[float]]:
    """Seconds each command took, ROUNDS times, the commands taking turns."""
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(ROUNDS):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            runs[name].append(time.perf_counter() - t0)
    return runs


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
        cmprep = [str(Path(sys.executable).with_name("cmprep"))]  # as typed at the bench
        runs = timed_in_turns(
            {
                "python -c pass": [sys.executable, "-c", "pass"],
                "python -c 'import click'": [sys.executable, "-c", "import click"],
                "cmprep --help": [*cmprep, "--help"],
                "cmprep batch status": [*cmprep, "batch", "status", "B1"],
            },
            env,
        )
    bare = runs["python -c pass"]
    click = runs["python -c 'import click'"]
    for name, times in runs.items():
        low, mid = min(times), statistics.median(times)
        line = f"{name:26} min {low * 1000:5.1f} ms  median {mid * 1000:5.1f} ms"
        if times is not bare:
            line += f"  ({low / min(bare):.1f}x / {mid / statistics.median(bare):.1f}x pass"
            if times is not click:
                line += f"; {low / min(click):.2f}x / {mid / statistics.median(click):.2f}x click"
            line += ")"
        print(line)
    print("ratios: min / min and median / median, the commands taking turns")


if __name__ == "__main__":
    main()
