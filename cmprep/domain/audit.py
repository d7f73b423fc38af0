"""What an auditor asks: every event in words, whether anything was changed, and where
deviations cluster. Pure functions over events and query rows; the service feeds them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Any, ClassVar, NamedTuple

from cmprep import events as ev
from cmprep.domain import keys, lineage, people, protocols, settings
from cmprep.domain import traceability as tr
from cmprep.domain.anchors import CheckpointBreak
from cmprep.domain.keyring import KeyRing
from cmprep.domain.signatures import check_signatures
from cmprep.events import Event, LedgerEntry, Link, StoredEvent, verify_chain


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
            [f"{k}={v.get('display') or v.get('value')}" for k, v in p.get("values", {}).items()]
            + used_at_step(p)
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
    elif event.type == ev.BATCH_CONDITIONALLY_RELEASED:
        what = "conditionally released for use before QC"
        new = "pending: " + ", ".join(
            f"{t.get('step')}.{t.get('parameter')}" for t in p.get("pending", [])
        )
    elif event.type == ev.CHECKS_CONFIRMED:
        what, new = f"checks ticked at {p['step']}", "; ".join(p.get("checks", []))
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
    elif event.type == tr.LOT_REGISTERED:
        what = f"lot registered: {p['lot']} ({p['material']})"
        supplier = f"; supplier {p['supplier']}" if p.get("supplier") else ""
        new = f"expires {p['expiry']}{supplier}"
    elif event.type == tr.EQUIPMENT_REGISTERED:
        what = f"equipment registered: {p['id']} ({p['kind']})"
        radius = p.get("rotor_radius_cm")
        new = f"calibration due {p['calibration_due']}" + (
            f"; rotor radius {radius:g} cm" if radius else ""
        )
    elif event.type == tr.CALIBRATION_RECORDED:
        what = f"calibration recorded: {p['id']}"
        cert = f"; certificate {p['certificate']}" if p.get("certificate") else ""
        new = f"next due {p['calibration_due']}{cert}"
    elif event.type == settings.SETTING_CHANGED:
        what, new = f"setting {p['name']} changed", str(p["value"])
    elif event.type == people.ACCESS_REFUSED:
        what = f"refused: {p.get('action')}"
    elif (words := lineage.trail_words(event)) is not None:  # donors, derivations, labels
        what, new = words
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


def used_at_step(payload: Mapping[str, Any]) -> list[str]:
    """The lots and instruments a recorded step names, as the trail shows them, with the
    dates they were checked against: 'lot FBS-1 (FBS, expires 2027-03-31)'."""
    return [
        f"lot {u['lot']} ({u.get('material')}, expires {u.get('expiry')})"
        for u in payload.get("lots", [])
    ] + [
        f"{u.get('kind')} {u['id']} (calibration due {u.get('calibration_due')})"
        for u in payload.get("equipment", [])
    ]


@dataclass(frozen=True)
class Break:
    """A break the trail's check found in one stream: where, and what is wrong there."""

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
    vouched: int = 0  # signed events whose seals that checkpoint vouched for (not checked)
    vouched_by: str | None = None  # the file of the newest checkpoint that holds, if trusted
    tables_vouched: int = 0  # batches whose rows it vouched for (their logs not folded)
    tables_folded: int = 0  # batches whose rows were compared with their log's fold
    parts: int = 1  # the processes the log's streams were checked in (service.log_parts)


def rows_digest(*tables: Iterable[Any]) -> str:
    """32 hexadecimal digits of SHA-256 over a batch's query-table rows as kept, each
    table's rows in a stable order: what a checkpoint records of rows it found equal to
    the log, and what a later verification compares instead of folding the log again.

    Each row is written out by ``repr`` (its columns as read: text, numbers, None), which
    is exact and many times cheaper than JSON; a row read back in another form after an
    upgrade only gives another digest, and the batch is then folded and compared."""
    h = hashlib.sha256()
    for rows in tables:
        h.update("\n".join(sorted(map(repr, rows))).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


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
    have = {str(r.get(key)): dict(r) for r in stored}
    if {str(r[key]): r for r in rebuilt} == have:  # the common case: no trip through JSON
        return []  # (values equal as they are stay equal as JSON gives them back)
    want = {str(r[key]): _plain(dict(r)) for r in rebuilt}
    if want == have:
        return []
    have = {k: _plain(r) for k, r in have.items()}
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


def lineage_differences(
    rebuilt: Iterable[Mapping[str, Any]], stored: Iterable[Mapping[str, Any]]
) -> list[TableDiff]:
    """Each lineage edge missing, extra, or with a column other than the log gives.

    A recall walks the edges table, not the log: an edge deleted or rewired there hides
    an aliquot from a recall while every hash still holds. REBUILT are the edges the
    ``@materials`` log gives, STORED the table's, both in seq order (a derivation's edges
    share its event's seq); they are compared one derivation at a time, so memory holds
    one derivation's edges whatever the number of lots.
    """
    found: list[TableDiff] = []
    wants, haves = groupby(rebuilt, key=_seq_of), groupby(stored, key=_seq_of)
    want, have = next(wants, None), next(haves, None)
    while want is not None or have is not None:
        if have is None or (want is not None and want[0] < have[0]):
            assert want is not None
            found += _edges_compared(list(want[1]), [])
            want = next(wants, None)
        elif want is None or have[0] < want[0]:
            found += _edges_compared([], list(have[1]))
            have = next(haves, None)
        else:
            found += _edges_compared(list(want[1]), list(have[1]))
            want, have = next(wants, None), next(haves, None)
    return found


def _seq_of(edge: Mapping[str, Any]) -> int:
    return int(edge["seq"])


def _edges_compared(
    want: list[Mapping[str, Any]], have: list[Mapping[str, Any]]
) -> list[TableDiff]:
    """One derivation's edges compared, each named by its lots and its event."""

    def keyed(edges: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**e, "edge": f"{e['parent']} -> {e['child']} (@materials event {e['seq']})"}
            for e in edges
        ]

    diffs = compare_rows("lineage_edges", "edge", keyed(want), keyed(have))
    return [replace(d, stream=lineage.MATERIALS_STREAM) for d in diffs]


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


def missed_searches(
    table: str,
    key: str,
    stream: str,
    want: Mapping[str, Any],
    have: Mapping[str, Any] | None,
    columns: Sequence[str],
) -> list[TableDiff]:
    """Each search by a column of COLUMNS, for the value WANT (the row rebuilt from the log)
    has there, that would miss the stored row, whose columns as kept are HAVE (None: there
    is no row). A search finds a row when its column equals the value: what one batch's
    rows are checked by, without asking the store each search."""
    found = []
    for column in columns:
        value = want.get(column)
        if value and (have is None or have.get(column) != value):
            found += compare_search(table, f"{column} = {value!r}", {key}, set(), {key: stream})
    return found


# --- the log's own checks, fed as the store reads it -----------------------------------------
# `audit verify` reads the log once, a stream at a time and the ledger by position, so its
# memory is one stream's events whatever the size of the log. Each function below checks one
# part and says what it found; ``verify`` runs them all over a log held in memory.

RecordedHead = tuple[int, str]  # (seq, hash) of a stream's last event, kept apart from it


class StreamCheck(NamedTuple):
    """What one stream's own checks found."""

    breaks: list[Break]  # no recorded head, then the first broken link or a cut-off end
    events: int  # events read
    whole: bool  # the chain holds: its signatures are worth checking


def check_stream(stream: str, events: Iterable[Link], head: RecordedHead | None) -> StreamCheck:
    """STREAM's chain, and its end against HEAD, the head recorded apart from it.

    EVENTS are read once, to the end, keeping nothing: a chain shows a changed or missing
    event, the recorded head shows the newest events cut off.
    """
    read = _Read(events)
    chain = verify_chain(stream, read, head[1] if head else None)
    read.finish()
    breaks = []
    if head is None and read.count:
        breaks.append(Break(stream, read.last, "the stream has no recorded head"))
    if chain:
        breaks.append(Break(stream, chain.seq, chain.problem))
    return StreamCheck(breaks, read.count, chain is None)


class _Read:
    """EVENTS as ``verify_chain`` reads them, counting them and remembering the last seq;
    ``finish`` reads the rest after a break (so every event is counted)."""

    def __init__(self, events: Iterable[Link]) -> None:
        self.events = iter(events)
        self.count = 0
        self.last = 0

    def __iter__(self) -> Iterator[Link]:
        for e in self.events:
            self.count += 1
            self.last = e.seq
            yield e

    def finish(self) -> None:
        for _ in self:
            pass


def signature_breaks(
    stream: str, events: list[Event], ring: KeyRing, after: int = 0
) -> list[Break]:
    """Each signature in STREAM whose content or seal does not hold (RING: every key of
    every person, from @users). EVENTS are the whole stream: a signature's content is
    recomputed from the events before it. AFTER: those of events up to that seq are
    vouched for by a checkpoint and not checked."""
    found = check_signatures(events, ring, after)
    return [Break(stream, seq, problem) for seq, problem in found]


def is_signed(event: StoredEvent) -> bool:
    """Whether the stored event may carry a signature (its payload names one): only such
    a stream is parsed to check them. May say yes for a nested key of that name."""
    return '"signature":' in event.payload


def emptied_breaks(emptied: Iterable[tuple[str, RecordedHead]]) -> list[Break]:
    """Streams with a recorded head but no event left."""
    return [
        Break(stream, head[0], "all events of this stream were removed") for stream, head in emptied
    ]


def ledger_breaks(
    entries: Iterable[tuple[LedgerEntry, str | None]],
    before: Callable[[int], str | None] | None = None,
) -> list[Break]:
    """Breaks of the global ledger, given each entry by position with the hash the event
    it names has now (None: there is no such event).

    Without BEFORE, ENTRIES is the whole ledger: one chain from position 1, each entry
    linked to the one read before it. With BEFORE (the hash of the entry at a position,
    None when there is none), ENTRIES may be some of them (one stream's), each linked to
    the entry at the position before its own. The walk stops at the first broken entry:
    what follows no longer hangs on the chain. Nothing is kept but the last hash.
    """
    breaks: list[Break] = []
    prev = ev.GENESIS
    for n, (entry, event_hash) in enumerate(entries, start=1):
        if before is None:
            linked = entry.pos == n and entry.prev == prev
        else:
            expected = ev.GENESIS if entry.pos == 1 else before(entry.pos - 1)
            linked = entry.pos >= 1 and expected is not None and entry.prev == expected
        if not linked or entry.hash != entry.computed_hash():
            problem = f"the global ledger is broken at position {entry.pos}"
            breaks.append(Break(entry.stream, entry.seq, problem))
            break
        if event_hash is None:
            problem = "the ledger lists this event but it is missing"
            breaks.append(Break(entry.stream, entry.seq, problem))
        elif event_hash != entry.event_hash:
            problem = "the event differs from the one the ledger recorded"
            breaks.append(Break(entry.stream, entry.seq, problem))
        prev = entry.hash
    return breaks


def unledgered_breaks(keys: Iterable[tuple[str, int]]) -> list[Break]:
    """Events no ledger entry names: slipped in afterwards, behind the ledger's back."""
    problem = "the event is not in the global ledger (inserted afterwards)"
    return [Break(stream, seq, problem) for stream, seq in keys]


def verify(
    streams: dict[str, list[Event]],
    heads: Mapping[str, tuple[int, str]],
    ledger: Sequence[LedgerEntry],
    only: str | None = None,
) -> list[Break]:
    """Every break found in a log held in memory: chains, recorded heads, signatures, and
    the global ledger (the service streams the same checks from the store).

    STREAMS are every stream's events, HEADS the (seq, hash) kept apart from them, LEDGER
    the global chain by position. Each check catches what the others cannot: a chain shows
    a changed or missing event, a head shows the newest events cut off, the ledger shows a
    head fixed up afterwards or an event slipped in. With ONLY, that stream alone is
    checked, its ledger entries each against the entry before it.
    """
    breaks: list[Break] = []
    ring = people.key_ring(streams.get(people.USERS_STREAM, []))
    for stream, events in sorted(streams.items()):
        if only and stream != only:
            continue
        found = check_stream(stream, events, heads.get(stream))
        breaks += found.breaks
        if found.whole:  # signature checks on a broken chain would only repeat it
            breaks += signature_breaks(stream, events, ring)
    breaks += emptied_breaks(
        (s, h) for s, h in heads.items() if s not in streams and (not only or s == only)
    )
    now = {(e.batch_id, e.seq): e.hash for events in streams.values() for e in events}
    entries = [(x, now.get((x.stream, x.seq))) for x in ledger if not only or x.stream == only]
    by_pos = {x.pos: x.hash for x in ledger}
    breaks += ledger_breaks(entries, by_pos.get if only else None)
    named = {(x.stream, x.seq) for x in ledger}
    breaks += unledgered_breaks(
        sorted(k for k in now if k not in named and (not only or k[0] == only))
    )
    return breaks


# --- the deviation report -----------------------------------------------------------------
