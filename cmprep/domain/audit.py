"""What an auditor asks: every event in words, whether anything was changed, and where
deviations cluster. Pure functions over events and query rows; the service feeds them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cmprep import events as ev
from cmprep.domain import people
from cmprep.domain.signatures import check_signatures
from cmprep.events import Event, LedgerEntry, verify_chain


def describe(event: Event) -> dict[str, Any]:
    """One event as an audit-trail row: who, when, what, old and new values, why."""
    p = event.payload
    what, old, new = event.type.replace("_", " "), "", ""
    if event.type == ev.BATCH_STARTED:
        what = (
            f"batch started from {p['protocol_id']} v{p['protocol_version']} "
            f"({p['protocol_hash'][:12]})"
        )
    elif event.type == ev.STEP_RECORDED:
        what = f"recorded {p['step']}" + (" (late entry)" if p.get("late") else "")
        new = "; ".join(
            f"{k}={v.get('display') or v.get('value')}" for k, v in p.get("values", {}).items()
        )
    elif event.type == ev.STEP_SKIPPED:
        what = f"skipped {p['step']}"
    elif event.type == ev.VALUE_CORRECTED:
        what = f"corrected {p['step']}.{p['parameter']}"
        old = (p.get("old") or {}).get("display", "")
        new = p["new"].get("display", "")
    elif event.type == ev.DEVIATION_OPENED:
        what = (
            f"{p['deviation_id']} opened ({p['severity']}, {p.get('kind', 'automatic')}) "
            f"at {p['step']}"
        )
        new = p.get("message", "")
    elif event.type == ev.DEVIATION_INVESTIGATED:
        what = f"{p['deviation_id']} investigated"
        new = p.get("impact") or ""
    elif event.type == ev.DEVIATION_CLOSED:
        what = f"{p['deviation_id']} closed: {p['decision']}"
        if p.get("severity"):
            old, new = "", f"severity -> {p['severity']} ({p.get('severity_reason')})"
        if p.get("capa"):
            new = (new + "; " if new else "") + f"CAPA {p['capa']}"
    elif event.type == ev.STEP_VERIFIED:
        what = f"verified {p['step']}"
    elif event.type in (people.USER_ADDED, people.USER_DEACTIVATED):
        what = f"{event.type.replace('_', ' ')}: {p['name']}" + (
            f" ({p['role']})" if "role" in p else ""
        )
    elif event.type == people.ACCESS_REFUSED:
        what = f"refused: {p.get('action')}"
    sig = p.get("signature")
    return {
        "stream": event.batch_id,
        "seq": event.seq,
        "at": event.recorded_at,
        "performed_at": event.performed_at or "",
        "who": event.actor,
        "type": event.type,
        "what": what,
        "old": old,
        "new": new,
        "why": event.reason or "",
        "signature": f"{sig['meaning']} by {sig['full_name']} at {sig['signed_at']}" if sig else "",
        "hash": event.hash,
    }


@dataclass(frozen=True)
class Break:
    stream: str
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"{self.stream}: event {self.seq}: {self.problem}"


def verify(
    streams: dict[str, list[Event]],
    heads: Mapping[str, tuple[int, str]],
    ledger: Sequence[LedgerEntry],
    only: str | None = None,
) -> list[Break]:
    """Every break found: chains, recorded heads, signatures, and the global ledger.

    STREAMS are every stream's events, HEADS the (seq, hash) kept apart from them, LEDGER
    the global chain by position. Each check catches what the others cannot: a chain shows
    a changed or missing event, a head shows the newest events cut off, the ledger shows a
    head fixed up afterwards or an event slipped in. With ONLY, breaks of that stream alone
    are reported, but the ledger is still walked from its start (its links run through
    every stream).
    """
    breaks: list[Break] = []
    for stream, events in sorted(streams.items()):
        if only and stream != only:
            continue
        head = heads.get(stream)
        chain = verify_chain(stream, events, head[1] if head else None)
        if head is None and events:
            breaks.append(Break(stream, events[-1].seq, "the stream has no recorded head"))
        if chain:
            breaks.append(Break(stream, chain.seq, chain.problem))
            continue  # signature checks on a broken chain would only repeat it
        for seq, problem in check_signatures(events):
            breaks.append(Break(stream, seq, problem))
    for stream in heads:
        if stream not in streams and (not only or stream == only):
            breaks.append(Break(stream, heads[stream][0], "all events of this stream were removed"))
    # the global ledger: one chain over every event of every stream
    prev = ev.GENESIS
    by_key = {(e.batch_id, e.seq): e for events in streams.values() for e in events}
    seen: set[tuple[str, int]] = set()
    for n, entry in enumerate(ledger, start=1):
        key = (entry.stream, entry.seq)
        if only and entry.stream != only:
            prev = entry.hash
            seen.add(key)
            continue
        if entry.pos != n or entry.prev != prev or entry.hash != entry.computed_hash():
            breaks.append(
                Break(
                    entry.stream, entry.seq, f"the global ledger is broken at position {entry.pos}"
                )
            )
            break
        event = by_key.get(key)
        if event is None:
            breaks.append(
                Break(entry.stream, entry.seq, "the ledger lists this event but it is missing")
            )
        elif event.hash != entry.event_hash:
            breaks.append(
                Break(entry.stream, entry.seq, "the event differs from the one the ledger recorded")
            )
        seen.add(key)
        prev = entry.hash
    for key in sorted(set(by_key) - seen):
        if not only or key[0] == only:
            breaks.append(
                Break(key[0], key[1], "the event is not in the global ledger (inserted afterwards)")
            )
    return breaks


def pareto(counter: Counter[str]) -> list[dict[str, Any]]:
    """Categories by count, with the cumulative share: the few causes of most deviations."""
    total = sum(counter.values()) or 1
    rows, running = [], 0
    for name, count in counter.most_common():
        running += count
        rows.append({"name": name, "count": count, "cumulative": round(100 * running / total, 1)})
    return rows


def report_data(
    deviations: list[dict[str, Any]],
    batches: list[dict[str, Any]],
    now: datetime,
    since: str | None,
) -> dict[str, Any]:
    """What the audit report shows; rendering only formats it."""
    devs = [d for d in deviations if not since or d["opened_at"] >= since]
    open_devs = []
    for d in devs:
        if d["status"] != "closed":
            opened = datetime.fromisoformat(d["opened_at"].replace("Z", "+00:00"))
            open_devs.append({**d, "age_days": round((now - opened).total_seconds() / 86400, 1)})
    open_devs.sort(key=lambda d: -d["age_days"])
    decided = [
        b
        for b in batches
        if b["state"] in ("released", "rejected") and (not since or b["updated_at"] >= since)
    ]
    return {
        "since": since,
        "generated_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total": len(devs),
        "by_step": pareto(Counter(d["step"] for d in devs)),
        "by_protocol": pareto(Counter(d["protocol_id"] for d in devs)),
        "by_severity": pareto(Counter(d["severity"] for d in devs)),
        "by_person": pareto(Counter(d["opened_by"] for d in devs)),
        "open": open_devs,
        "released": [b for b in decided if b["state"] == "released"],
        "rejected": [b for b in decided if b["state"] == "rejected"],
        "batches": len([b for b in batches if not since or b["started_at"] >= since]),
    }
