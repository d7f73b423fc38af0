"""What an auditor asks: every event in words, whether anything was changed, and where
deviations cluster. Pure functions over events and query rows; the service feeds them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from cmprep import events as ev
from cmprep.domain import keys, people, protocols, settings
from cmprep.domain.anchors import CheckpointBreak
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
            f"{p['deviation_id']} opened"
            + (" as an addendum" if p.get("addendum") else "")
            + f" ({p['severity']}, {p.get('kind', 'automatic')})"
            + (f" at {p['step']}" if p.get("step") else "")
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
    elif event.type in people.USER_EVENTS:
        what = f"{event.type.replace('_', ' ')}: {p['name']}" + (
            f" ({p['role']})" if "role" in p else ""
        )
        if p.get("key_issued"):
            new = f"new signing key {p['key_issued']}"
        elif p.get("public_key"):
            new = f"signing key {keys.fingerprint(p['public_key'])}"
    elif event.type in protocols.PROTOCOL_EVENTS:
        what = f"{event.type.replace('_', ' ')}: {p['id']}@{p['version']}"
        new = str(p.get("content_hash", ""))[:12]
    elif event.type == settings.SETTING_CHANGED:
        what, new = f"setting {p['name']} changed", str(p["value"])
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
    label: ClassVar[str] = "BROKEN"

    def __str__(self) -> str:
        return f"{self.stream}: event {self.seq}: {self.problem}"


@dataclass(frozen=True)
class TableDiff:
    """A query-table row that is not what the log says.

    Lists, the audit report and QC history read the query tables, not the log; a row
    edited behind cmprep's back (a batch marked released, a deviation closed or deleted)
    changes what people see while every hash still holds. Rebuilding the rows from the log
    and comparing shows it.
    """

    table: str  # "batches" or "deviations"
    key: str  # the batch or deviation id
    stream: str  # the batch the row belongs to (to verify one batch)
    problem: str
    label: ClassVar[str] = "DIFFERS"

    def __str__(self) -> str:
        return f"{self.table} table, {self.key}: {self.problem}"


@dataclass(frozen=True)
class Unprotected:
    """A protection of the log (an append-only rule of the database) that is not in place:
    without it, editing the log is no longer refused, only found afterwards."""

    problem: str
    label: ClassVar[str] = "UNPROTECTED"

    def __str__(self) -> str:
        return f"database: {self.problem}"


# what verification can find; each has a ``label`` (BROKEN, UNPROTECTED, DIFFERS) and says
# where and what in ``str()``
Problem = Break | Unprotected | TableDiff | CheckpointBreak


class Verification(NamedTuple):
    """What ``audit verify`` found: events checked, every problem (the log's breaks, then
    missing protections, query-table differences and checkpoint breaks), and the
    checkpoints read with their folder. ``verify()[1]`` is every problem."""

    checked: int  # events checked
    problems: list[Problem]
    checkpoints: int = 0  # checkpoints the ledger was checked against
    anchors: str | None = None  # the folder they were read from


def _plain(value: Any) -> Any:
    """VALUE as the query tables keep it (JSON): tuples become lists, dates text."""
    return json.loads(json.dumps(value, default=str))


def _shown(value: Any) -> str:
    return "(none)" if value is None else repr(value)


def compare_rows(
    table: str, key: str, rebuilt: Sequence[Mapping[str, Any]], stored: Sequence[Mapping[str, Any]]
) -> list[TableDiff]:
    """Each row of TABLE missing, extra, or with a column other than the log gives.

    REBUILT are the rows folded from the log, STORED those the table returns, both keyed
    by their KEY column; every changed column of a row is named in one finding.
    """
    want = {str(r[key]): _plain(dict(r)) for r in rebuilt}
    have = {str(r.get(key)): _plain(dict(r)) for r in stored}
    found = []
    for k in sorted(set(want) | set(have)):
        row = want.get(k) or have[k]
        stream = str(row.get("batch_id", k))
        if k not in have:
            found.append(TableDiff(table, k, stream, "missing from the table; the log has it"))
        elif k not in want:
            found.append(TableDiff(table, k, stream, "in the table, but not in the log"))
        elif changed := _changed_columns(have[k], want[k]):
            found.append(TableDiff(table, k, stream, "; ".join(changed)))
    return found


def _changed_columns(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """Each column of a stored row (HAVE) that differs from the rebuilt one (WANT)."""
    changed = []
    for c in sorted(set(want) | set(have)):
        if c not in have:
            changed.append(f"{c} is missing in the table ({_shown(want[c])} in the log)")
        elif c not in want:
            changed.append(f"{c} is in the table ({_shown(have[c])}) but not in the log")
        elif have[c] != want[c]:
            changed.append(f"{c} is {_shown(have[c])} in the table, {_shown(want[c])} in the log")
    return changed


def compare_search(
    table: str, search: str, expected: set[str], got: set[str], batch_of: Mapping[str, str]
) -> list[TableDiff]:
    """What a search of TABLE (described by SEARCH, e.g. ``state = 'released'``) should
    find by the log, EXPECTED, against what it found, GOT (keys; BATCH_OF gives each
    key's batch).

    The rows are kept whole beside the columns a search looks at; a column edited alone
    changes what a filtered list, the report's period or the QC history finds, while the
    row itself reads back unchanged.
    """
    return [
        TableDiff(table, k, batch_of.get(k, k), f"a search by {search} {how}")
        for keys, how in (
            (expected - got, "misses it, though the log says it matches"),
            (got - expected, "finds it, though the log says it does not match"),
        )
        for k in sorted(keys)
    ]


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
    ring = people.key_ring(streams.get(people.USERS_STREAM, []))
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
        for seq, problem in check_signatures(events, ring):
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
        "by_step": pareto(Counter(d["step"] or f"({d.get('kind') or 'no step'})" for d in devs)),
        "by_protocol": pareto(Counter(d["protocol_id"] for d in devs)),
        "by_severity": pareto(Counter(d["severity"] for d in devs)),
        "by_person": pareto(Counter(d["opened_by"] for d in devs)),
        "open": open_devs,
        "released": [b for b in decided if b["state"] == "released"],
        "rejected": [b for b in decided if b["state"] == "rejected"],
        "batches": len([b for b in batches if not since or b["started_at"] >= since]),
    }
