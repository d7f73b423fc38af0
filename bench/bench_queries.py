"""`make bench SIZE=N`, part two: each set command beside its floor, as a person runs it.

    python bench/bench_queries.py --db bench-output/bench-10000.db [--runs 15]

Every command runs as a subprocess (a new interpreter, the way it is typed at the bench),
next to its peer: the same rows from hand-written SQL (bench/hand_sql.py), or the floor of
start-up (`python -c "import click"`, `python -c pass`). The pairs are interleaved run by
run, so a slow moment of the machine falls on both; the table gives the min and median of
each and their ratio (cmprep / peer) against the target. Before timing, each list is
checked to print the very bytes its peer prints.

Start-up is also measured without compiled bytecode for cmprep: a copy of the package with
no __pycache__, imported with PYTHONDONTWRITEBYTECODE=1, as an install that never compiled
would run. The batch record PDF has no peer; its time is reported against its 3 s target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
CMPREP = str(Path(PYTHON).with_name("cmprep"))
HAND = [PYTHON, str(BENCH / "hand_sql.py")]


@dataclass
class Pair:
    name: str
    ours: list[str]
    peer: list[str] | None
    target: float  # the ratio to stay within (for no peer: seconds)
    env: dict[str, str] | None = None
    times: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds COMMAND took; with ENV (the copy without bytecode) it runs in that copy's
    folder, so the working folder's own cmprep is not imported instead."""
    began = time.perf_counter()
    done = subprocess.run(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=env["CMPREP_BENCH_COPY"] if env else None,
    )
    spent = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()}")
    return spent


def output(command: list[str]) -> bytes:
    return subprocess.run(command, capture_output=True, check=True).stdout


def small_db(into: Path) -> str:
    """A 100-batch database of the same mix and seed (bench/generate.py): its service-made
    batches (TPL-...) are the big one's, so a record can be timed on both."""
    small = into / "bench-100.db"
    subprocess.run(
        [PYTHON, str(BENCH / "generate.py"), "--size", "100", "--out", str(small)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return str(small)


def pairs(db: str, nocache: dict[str, str], pdf: str, small: str) -> list[Pair]:
    con = sqlite3.connect(db)
    status_of = con.execute(
        "SELECT batch_id FROM batches WHERE state = 'released' ORDER BY started_at DESC LIMIT 1"
    ).fetchone()[0]
    record_of = con.execute(
        "SELECT batch_id FROM batches WHERE state = 'released' AND batch_id LIKE 'TPL-%' "
        "ORDER BY batch_id LIMIT 1"
    ).fetchone()[0]
    middle = con.execute(
        "SELECT opened_at FROM deviations ORDER BY opened_at LIMIT 1 OFFSET "
        "(SELECT count(*) / 2 FROM deviations)"
    ).fetchone()[0]
    con.close()
    cm = [CMPREP]
    dbo = ["--db", db]
    record_html = [*cm, "batch", "record-doc", record_of, "--format", "html", "-o"]
    return [
        Pair(
            "deviation list --format csv",
            [*cm, "deviation", "list", "--format", "csv", *dbo],
            [*HAND, db, "deviations"],
            2.0,
        ),
        Pair(
            "deviation list --status open --format csv",
            [*cm, "deviation", "list", "--status", "open", "--format", "csv", *dbo],
            [*HAND, db, "deviations", "--status", "open"],
            2.0,
        ),
        Pair(
            "deviation list --format json",
            [*cm, "deviation", "list", "--format", "json", *dbo],
            [*HAND, db, "deviations-json"],
            2.0,
        ),
        Pair(
            "batch list --format csv",
            [*cm, "batch", "list", "--format", "csv", *dbo],
            [*HAND, db, "batches"],
            2.0,
        ),
        Pair(
            "batch list --state released --format csv",
            [*cm, "batch", "list", "--state", "released", "--format", "csv", *dbo],
            [*HAND, db, "batches", "--state", "released"],
            2.0,
        ),
        Pair(
            "audit report --format md",
            [*cm, "audit", "report", "--format", "md", *dbo],
            [*HAND, db, "report"],
            2.0,
        ),
        Pair(
            f"audit report --since {middle[:10]} --format md",
            [*cm, "audit", "report", "--since", middle, "--format", "md", *dbo],
            [*HAND, db, "report", "--since", middle],
            2.0,
        ),
        Pair(
            "cmprep --help  vs  python -c 'import click'",
            [*cm, "--help"],
            [PYTHON, "-c", "import click"],
            1.3,
        ),
        Pair(
            "  (cmprep without bytecode)",
            [PYTHON, "-m", "cmprep", "--help"],
            [PYTHON, "-c", "import click"],
            1.3,
            env=nocache,
        ),
        Pair(
            f"batch status {status_of}  vs  python -c pass",
            [*cm, "batch", "status", status_of, *dbo],
            [PYTHON, "-c", "pass"],
            6.0,
        ),
        Pair(
            "  (cmprep without bytecode)",
            [PYTHON, "-m", "cmprep", "batch", "status", status_of, *dbo],
            [PYTHON, "-c", "pass"],
            6.0,
            env=nocache,
        ),
        Pair(
            f"record-doc {record_of} html  vs  on 100 batches",
            [*record_html, pdf + ".html", *dbo],
            [*record_html, pdf + ".small.html", "--db", small],
            1.5,
        ),
        Pair(
            f"batch record-doc {record_of} --format pdf (s)",
            [*cm, "batch", "record-doc", record_of, "--format", "pdf", "-o", pdf, *dbo],
            None,
            3.0,
        ),
    ]


def same_rows(db: str) -> None:
    """Each list prints exactly what its hand-written SQL prints."""
    cm = [CMPREP]
    for ours, peer in (
        ([*cm, "deviation", "list", "--format", "csv"], [*HAND, db, "deviations"]),
        ([*cm, "deviation", "list", "--format", "json"], [*HAND, db, "deviations-json"]),
        ([*cm, "batch", "list", "--format", "csv"], [*HAND, db, "batches"]),
        (
            [*cm, "batch", "list", "--state", "released", "--format", "csv"],
            [*HAND, db, "batches", "--state", "released"],
        ),
    ):
        if output([*ours, "--db", db]) != output(peer):
            raise SystemExit(f"{' '.join(ours[1:])} and its hand-written SQL print different rows")


def without_bytecode(into: Path) -> dict[str, str]:
    """An environment importing a copy of cmprep that has no compiled bytecode."""
    import cmprep

    source = Path(cmprep.__file__).parent
    shutil.copytree(source, into / "cmprep", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", CMPREP_BENCH_COPY=str(into))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(into), env.get("PYTHONPATH")]))
    where = subprocess.run(
        [PYTHON, "-c", "import cmprep; print(cmprep.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=into,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(into)) or list(into.rglob("__pycache__")):
        raise SystemExit(f"the copy without bytecode is not what runs: {where}")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    db = str(Path(args.db).resolve())
    batches, devs, events = (
        sqlite3.connect(db).execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("batches", "deviations", "events")
    )
    same_rows(db)
    with tempfile.TemporaryDirectory() as tmp:
        nocache = without_bytecode(Path(tmp))
        todo = pairs(db, nocache, str(Path(tmp) / "record.pdf"), small_db(Path(tmp)))
        for p in todo:  # once each, untimed: caches warm, as at a bench used all day
            timed(p.ours, p.env)
        for run in range(args.runs):
            for p in todo:
                order = [(0, p.ours, p.env), (1, p.peer, None)] if p.peer else [(0, p.ours, p.env)]
                for side, command, env in order if run % 2 else reversed(order):
                    p.times[side].append(timed(command, env))
    print(
        f"\n{Path(db).name}: {batches} batches, {devs} deviations, {events} events; "
        f"{args.runs} interleaved runs each\n"
    )
    head = f"{'command':52} {'min ms':>8} {'med ms':>8} {'peer min':>9} {'peer med':>9}"
    head += f" {'ratio':>6} {'target':>7}"
    print(head)
    print("-" * len(head))
    for p in todo:
        ours = p.times[0]
        if p.peer is None:
            print(
                f"{p.name:52} {min(ours) * 1000:8.0f} {statistics.median(ours) * 1000:8.0f} "
                f"{'':>9} {'':>9} {'':>6} {p.target:6.1f}s "
                f"{'ok' if min(ours) <= p.target else 'OVER'}"
            )
            continue
        peer = p.times[1]
        ratio = min(ours) / min(peer)
        print(
            f"{p.name:52} {min(ours) * 1000:8.1f} {statistics.median(ours) * 1000:8.1f} "
            f"{min(peer) * 1000:9.1f} {statistics.median(peer) * 1000:9.1f} {ratio:6.2f} "
            f"{p.target:6.1f}x {'ok' if ratio <= p.target else 'OVER'}"
        )
    print(
        "\nratio: min / peer's min (the medians are beside them); each list printed the "
        "same bytes as its hand-written SQL."
    )


if __name__ == "__main__":
    main()
