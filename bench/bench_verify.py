"""`audit verify` beside its floor: events per second, and peak memory at a given size.

    python bench/bench_verify.py --db bench-output/bench-1000.db   # the bench mix (generate.py)
    python bench/bench_verify.py --events 2000000                  # a synthetic log of that size

The floor is what no verification can do without: read every stored column of every event
(in stream order; its payload unpacked, as it is stored deflated: store/packing.py) and
every ledger entry (by position), hash with hashlib's SHA-256 each payload's canonical
bytes and each entry's fields, and check each Ed25519 seal (parse the
payloads that carry one, verify it with the signer's public key). The seals are most of
it: one Ed25519 verification costs about twenty SHA-256 hashes of an event, and in the
mix about one event in four carries one (every performed step, check, review and
release is signed). The hash part alone is printed too ("hash floor"). Beside them:

- log checks: every chain, recorded head, signature and the global ledger (the log's own
  proof, no query table);
- log checks anchored: the same with a checkpoint (below) vouching for the seals before
  it;
- audit verify: those, plus each batch folded and its query-table rows compared, and the
  database's protections;
- audit verify anchored: the same with a checkpoint of the ledger's head (signed by the
  QA person with `audit anchor`, in a folder beside the database): the seals it vouches
  for are not checked again, nor the batches whose tables it lists folded again;
- verify / anchored, 1 process: the two above with the log checked in one process, as a
  machine with one processor does (``service.log_parts``: a log of 40,000 events or more
  is otherwise cut into parts, one process per processor, up to four);
- audit verify BATCH: one batch (the first), whatever the size of the log.

Each runs in a process of its own, so its peak RSS (``resource.getrusage``) is its own;
the processes forked for parts of the log are given apart (the largest one's peak). The
rounds are interleaved and each line gives the median rate and the best. The floors are
one process each. The bench mix's
copied batches carry signatures made again for each copy (see generate.py), so its log
has nothing to report; the problems found are printed, not judged. A synthetic log
(``--events``) is batches of small events written straight through the store's units,
with one signed batch. Prints figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUNDS = 3
KINDS = (
    "floor",
    "hash floor",
    "log checks",
    "log checks anchored",
    "audit verify",
    "audit verify anchored",
    "verify, 1 process",
    "anchored, 1 process",
    "audit verify BATCH",
)


def _floor(db: Path, seals: bool = True) -> int:
    """Read every event and every ledger row as stored and hash what verification hashes:
    each payload's stored bytes, and each ledger entry's fields; with SEALS, verify every
    Ed25519 seal with the newest public key of its signer (the least any check of a seal
    does)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from cmprep.store.packing import unpack  # payloads are stored deflated: read means unpack

    conn = sqlite3.connect(db)
    public = {}
    for (payload,) in conn.execute(
        "SELECT payload FROM events WHERE batch_id = '@users' ORDER BY seq"
    ):
        p = json.loads(unpack(payload))
        if p.get("public_key"):
            raw = base64.b64decode(p["public_key"])
            public[p["name"]] = Ed25519PublicKey.from_public_bytes(raw)
    sealed = ("meaning", "signer", "full_name", "role", "signed_at", "subject", "content_hash")
    n = 0
    for row in conn.execute(
        "SELECT batch_id, seq, type, actor, recorded_at, performed_at, reason, payload, "
        "prev_hash, hash FROM events ORDER BY batch_id, seq"
    ):
        text = unpack(row[7])
        hashlib.sha256(text.encode()).hexdigest()
        n += 1
        if seals and '"seal"' in text:
            sig = json.loads(text)["signature"]
            text = json.dumps(
                {k: sig.get(k) for k in sealed},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            public[sig["signer"]].verify(base64.b64decode(sig["seal"]), text.encode())
    for pos, stream, seq, event_hash, prev, _ in conn.execute("SELECT * FROM ledger ORDER BY pos"):
        hashlib.sha256(f"{pos}|{stream}|{seq}|{event_hash}|{prev}".encode()).hexdigest()
    return n


def _first_batch(db: Path) -> str:
    """The batch `audit verify BATCH` is timed on: the first one written."""
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT batch_id FROM ledger WHERE batch_id NOT LIKE '@%' LIMIT 1")
    return str(row.fetchone()[0])


def child(kind: str, db: Path) -> dict[str, Any]:
    """Run one measurement in this process; what it read, how long, the peak RSS."""
    from cmprep.service import Services, log_parts
    from cmprep.store.sqlite import SQLiteStore

    PARTS_FROM, ALONE = log_parts.PARTS_FROM, 10**15
    svc = Services(SQLiteStore(db))
    batch = _first_batch(db)
    parts = 1
    if not kind.endswith("floor"):  # imports and protocols: once per process, not per event
        svc.audit.verify(batch)
    problems = 0
    began = time.perf_counter()
    if kind == "floor":
        events = _floor(db)
    elif kind == "hash floor":
        events = _floor(db, seals=False)
    elif kind == "log checks":
        found = svc.audit._check_log(None, tables=False)  # the log's own proof
        events, problems, parts = found.events, len(found.breaks), found.parts
    elif kind == "log checks anchored":
        trusted = svc.audit.check_checkpoints(_anchors(db)).trusted
        assert trusted is not None, "the bench's checkpoint does not hold"
        found = svc.audit._check_log(None, tables=False, trust=trusted.position)
        events, problems, parts = found.events, len(found.breaks), found.parts
    elif kind in ("audit verify", "verify, 1 process"):
        log_parts.PARTS_FROM = PARTS_FROM if kind == "audit verify" else ALONE
        result = svc.audit.verify()
        events, problems, parts = result.checked, len(result.problems), result.parts
    elif kind in ("audit verify anchored", "anchored, 1 process"):
        log_parts.PARTS_FROM = PARTS_FROM if kind == "audit verify anchored" else ALONE
        result = svc.audit.verify(anchors_dir=str(_anchors(db)))
        events, problems, parts = result.checked, len(result.problems), result.parts
    else:
        result = svc.audit.verify(batch)
        events, problems = result.checked, len(result.problems)
    seconds = time.perf_counter() - began
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    # the largest of the processes forked for parts of the log (each its own peak)
    part_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "events": events,
        "seconds": seconds,
        "rss_kib": rss,
        "part_rss_kib": part_rss,
        "problems": problems,
        "parts": parts,
    }


def _anchors(db: Path) -> Path:
    """The checkpoint folder beside DB."""
    return db.with_name(db.name + ".anchors")


def anchor(db: Path) -> None:
    """A checkpoint of DB's ledger head in ``_anchors(db)``, signed by quinn (QA) with
    `audit anchor` (which first checks the whole log, every seal), at a time after the
    log's newest entry."""
    from cmprep.store.sqlite import SQLiteStore

    folder = _anchors(db)
    folder.mkdir(exist_ok=True)
    for old in [*folder.glob("ledger-*.json"), *folder.glob("ledger-*.tables")]:
        old.unlink()
    store = SQLiteStore(db)
    anchor_store(store, folder)
    store.close()


def anchor_store(store: Any, folder: Path) -> None:
    """A checkpoint of STORE's ledger head in FOLDER, signed by quinn (QA)."""
    from datetime import UTC, datetime, timedelta

    from cmprep.demo import DEMO_PASSWORD
    from cmprep.domain.clock import from_iso
    from cmprep.service import Services

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import PASSWORD

    tail = store.ledger_tail()
    assert tail is not None
    newest = max(r.recorded_at for r, _ in store.iter_events(tail.stream))
    now = max(datetime.now(UTC), from_iso(newest) + timedelta(seconds=1))
    svc = Services(store, clock=lambda: now)
    password = DEMO_PASSWORD if svc.gate.user("admin") else PASSWORD  # bench mix: the demo's
    svc.gate.prove("quinn", password, "log in")
    svc.audit.anchor("quinn", password, str(folder))


def synthetic(db: Path, events: int) -> None:
    """A log of about EVENTS events: a lab with one signed batch, then batches of 20 small
    events written through the store's units."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import PASSWORD, STANDARD, Clock, approve_bundled, run_to, seed_people

    from cmprep.events import NewEvent
    from cmprep.service import Services
    from cmprep.store.sqlite import SQLiteStore

    clock = Clock()
    svc = approve_bundled(seed_people(Services(SQLiteStore(db, create=True), clock=clock)))
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    store = svc.store
    store.conn.execute("PRAGMA synchronous=OFF")  # a bench database: speed over durability
    at = "2026-11-03T09:00:00Z"
    for i in range(max(events - len(store.ledger()), 0) // 20):
        with store.writing(f"S{i:07d}", 0) as unit:
            unit.append(
                [NewEvent("note", "alice", {"n": n, "text": "x" * 200}) for n in range(20)], at
            )
    store.close()


def measure(db: Path, rounds: int = ROUNDS) -> None:
    subprocess.run([sys.executable, __file__, "--child", "anchor", "--db", str(db)], check=True)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for _ in range(rounds):
        for kind in KINDS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, "--db", str(db)],
                check=True,
                capture_output=True,
                text=True,
            )
            runs[kind].append(json.loads(out.stdout))
    floor = statistics.median(r["events"] / r["seconds"] for r in runs["floor"])
    hashed = statistics.median(r["events"] / r["seconds"] for r in runs["hash floor"])
    print(f"{db}: {runs['floor'][0]['events']} events, {db.stat().st_size / 1e6:.0f} MB")
    print(
        f"{'':21} {'events/s median (max)':>22} {'of floor':>9} {'of hash':>8} "
        f"{'peak RSS':>9} {'processes':>10}  problems"
    )
    for kind, rs in runs.items():
        times = sorted(r["seconds"] for r in rs)
        n = rs[0]["events"]
        fast, typical = n / times[0], n / statistics.median(times)
        rss = max(r["rss_kib"] for r in rs) / 1024
        part = max(r.get("part_rss_kib", 0) for r in rs) / 1024
        parts = rs[0].get("parts", 1)
        print(
            f"{kind:21} {typical:>11,.0f} ({fast:>8,.0f}) {typical / floor:>8.2f}x "
            f"{typical / hashed:>7.2f}x {rss:>6.0f} MB {parts:>10}  {rs[0]['problems']}"
            + (f"  (each part's process at most {part:.0f} MB)" if parts > 1 else "")
            + (f"  ({n} events, {times[0] * 1000:.0f} ms)" if kind.endswith("BATCH") else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="an existing database (bench/generate.py)")
    parser.add_argument("--events", type=int, default=200_000, help="size of a synthetic log")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="runs of each (interleaved)")
    parser.add_argument("--child", choices=(*KINDS, "write", "anchor"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "write":
        synthetic(args.db, args.events)
    elif args.child == "anchor":
        anchor(args.db)
    elif args.child:
        print(json.dumps(child(args.child, args.db)))
    elif args.db:
        measure(args.db, args.rounds)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "verify.db"
            began = time.perf_counter()
            # in a process of its own: a child's peak RSS starts from its parent's (Linux
            # keeps the high-water mark across fork and exec), so this one stays small
            write = ["--child", "write", "--db", str(db), "--events", str(args.events)]
            subprocess.run([sys.executable, __file__, *write], check=True)
            print(f"synthetic log written in {time.perf_counter() - began:.0f} s")
            measure(db, args.rounds)


if __name__ == "__main__":
    main()
