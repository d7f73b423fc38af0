"""Events: the only truth about a batch, each chained to the one before it by SHA-256.

An event says who did what, when (the system's UTC clock), when it was physically done
(``performed_at``, for late entries) and why. Its hash covers all of that and the previous
event's hash, so changing, removing or reordering any event breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64

# event types
BATCH_STARTED = "batch_started"
STEP_RECORDED = "step_recorded"
STEP_SKIPPED = "step_skipped"
VALUE_CORRECTED = "value_corrected"
DEVIATION_OPENED = "deviation_opened"
BATCH_HELD = "batch_held"
BATCH_RESUMED = "batch_resumed"
STEP_VERIFIED = "step_verified"
DEVIATION_INVESTIGATED = "deviation_investigated"
DEVIATION_CLOSED = "deviation_closed"
BATCH_REVIEWED = "batch_reviewed"
BATCH_RELEASED = "batch_released"
BATCH_REJECTED = "batch_rejected"

TYPES = (
    BATCH_STARTED,
    STEP_RECORDED,
    STEP_SKIPPED,
    VALUE_CORRECTED,
    DEVIATION_OPENED,
    BATCH_HELD,
    BATCH_RESUMED,
    STEP_VERIFIED,
    DEVIATION_INVESTIGATED,
    DEVIATION_CLOSED,
    BATCH_REVIEWED,
    BATCH_RELEASED,
    BATCH_REJECTED,
)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class NewEvent:
    """An event the service has decided to write; the store gives it its place and hash."""

    type: str
    actor: str
    payload: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    performed_at: str | None = None  # ISO UTC, when it was physically done, if not now


@dataclass(frozen=True)
class Event:
    batch_id: str
    seq: int
    type: str
    actor: str
    recorded_at: str  # ISO 8601 UTC, from the system clock
    performed_at: str | None
    reason: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return event_body(
            self.batch_id,
            self.seq,
            self.type,
            self.actor,
            self.recorded_at,
            self.performed_at,
            self.reason,
            self.payload,
            self.prev_hash,
        )

    def computed_hash(self) -> str:
        return hash_body(self.body())


def event_body(
    batch_id: str,
    seq: int,
    type: str,
    actor: str,
    recorded_at: str,
    performed_at: str | None,
    reason: str | None,
    payload: dict[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "seq": seq,
        "type": type,
        "actor": actor,
        "recorded_at": recorded_at,
        "performed_at": performed_at,
        "reason": reason,
        "payload": payload,
        "prev_hash": prev_hash,
    }


def hash_body(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def ledger_hash(pos: int, batch_id: str, seq: int, event_hash: str, prev: str) -> str:
    """The hash of one entry of the global ledger: one chain over every event of every
    stream, so removing a stream's newest events also cuts this chain."""
    text = f"{pos}|{batch_id}|{seq}|{event_hash}|{prev}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LedgerEntry:
    """One position of the global ledger, as every backend returns it.

    The ledger lists every event of every stream in the order they were written, each entry
    chained to the one before (``prev``). A stream's own chain cannot show that its newest
    events were cut off together with its head; this one can, because the cut events are
    still named here. Typed, not a database row, so verification reads the same fields
    whichever backend stored them.
    """

    pos: int  # 1, 2, 3 ... without gaps, in the order the events were committed
    stream: str  # the batch id or system stream ("@users") of the event
    seq: int  # the event's place in its stream
    event_hash: str  # the event's own hash, as it was when written
    prev: str  # the hash of the entry before (GENESIS for position 1)
    hash: str  # ledger_hash(pos, stream, seq, event_hash, prev)

    def computed_hash(self) -> str:
        """What ``hash`` must be if nobody changed this entry."""
        return ledger_hash(self.pos, self.stream, self.seq, self.event_hash, self.prev)


def next_ledger_entry(last: LedgerEntry | None, event: Event) -> LedgerEntry:
    """The ledger entry that records EVENT after LAST (None: the ledger is empty)."""
    pos, prev = (last.pos + 1, last.hash) if last else (1, GENESIS)
    return LedgerEntry(
        pos=pos,
        stream=event.batch_id,
        seq=event.seq,
        event_hash=event.hash,
        prev=prev,
        hash=ledger_hash(pos, event.batch_id, event.seq, event.hash, prev),
    )


def seal(batch_id: str, seq: int, prev_hash: str, recorded_at: str, new: NewEvent) -> Event:
    body = event_body(
        batch_id,
        seq,
        new.type,
        new.actor,
        recorded_at,
        new.performed_at,
        new.reason,
        new.payload,
        prev_hash,
    )
    return Event(**body, hash=hash_body(body))


@dataclass(frozen=True)
class ChainBreak:
    batch_id: str
    seq: int
    problem: str


def verify_chain(
    batch_id: str, events: list[Event], head_hash: str | None = None
) -> ChainBreak | None:
    """The first broken link of a batch's chain, or None when it is whole."""
    prev = GENESIS
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            return ChainBreak(batch_id, ev.seq, f"event {expected_seq} is missing (found {ev.seq})")
        if ev.prev_hash != prev:
            return ChainBreak(batch_id, ev.seq, "does not link to the event before it")
        if ev.computed_hash() != ev.hash:
            return ChainBreak(
                batch_id, ev.seq, "content does not match its hash (changed after writing)"
            )
        prev = ev.hash
    if head_hash is not None and head_hash != prev:
        last = events[-1].seq if events else 0
        return ChainBreak(
            batch_id, last, "the chain ends before the recorded head: events were removed"
        )
    return None
