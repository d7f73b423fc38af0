"""Events: the only truth about a batch, each chained to the one before it by SHA-256.

An event says who did what, when (the system's UTC clock), when it was physically done
(``performed_at``, for late entries) and why. Its hash covers all of that and the previous
event's hash, so changing, removing or reordering any event breaks every hash after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, NamedTuple, Protocol

from cmprep.digest import sha256_hex

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
CHECKS_CONFIRMED = "checks_confirmed"  # check items of a done step ticked, by whom
# QA lets fresh product be used before its QC results, naming the tests still pending
BATCH_CONDITIONALLY_RELEASED = "batch_conditionally_released"

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
    CHECKS_CONFIRMED,
    BATCH_CONDITIONALLY_RELEASED,
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
    """One event of a stream as stored: what happened, who did it and when, chained to the one
    before by its hash."""

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

    def hash_holds(self) -> bool:
        """Whether the content still hashes to ``hash`` (nothing changed since writing)."""
        return self.computed_hash() == self.hash


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
    return sha256_hex(canonical_json(body).encode("utf-8"))


def _text(value: str | None) -> str:
    """VALUE as canonical JSON writes it (a string, or null): the same C encoder."""
    return "null" if value is None else encode_basestring(value)


class StoredEvent(NamedTuple):
    """One event as a store keeps it: every field as stored, the payload still as text.

    Backends store the payload as ``canonical_json(payload)``, the very bytes the event's
    hash covers, so verification hashes what is stored (``body``) without parsing the
    payload and writing it out again, and only parses an event when something must read
    it (a signature, the fold). A payload kept in another JSON spelling (a database from
    before that rule, a hand-edited row) is still judged by its content, only slower.
    """

    batch_id: str
    seq: int
    type: str
    actor: str
    recorded_at: str
    performed_at: str | None
    reason: str | None
    payload: str  # the payload's JSON text as stored
    prev_hash: str
    hash: str

    def body(self) -> bytes:
        """The bytes the hash covers: ``canonical_json(event_body(...))``, assembled
        around the stored payload text in the canonical order of the keys.

        Raises TypeError when a stored field is not of its type (a forged row); the
        slow path in ``hash_holds`` then judges it.
        """
        batch_id, seq, type_, actor, recorded_at, performed_at, reason, payload, prev, _ = self
        if type(seq) is not int:
            raise TypeError(f"seq {seq!r} is not a whole number")
        return (
            f'{{"actor":{encode_basestring(actor)},"batch_id":{encode_basestring(batch_id)},'
            f'"payload":{payload},"performed_at":{_text(performed_at)},'
            f'"prev_hash":{encode_basestring(prev)},"reason":{_text(reason)},'
            f'"recorded_at":{encode_basestring(recorded_at)},"seq":{seq},'
            f'"type":{encode_basestring(type_)}}}'
        ).encode()

    def hash_holds(self) -> bool:
        """Whether the stored event still hashes to its ``hash``.

        The stored bytes are hashed as they are; only when they do not match (a payload
        not stored canonically, or a changed event) is the payload parsed and the event's
        body written out canonically, as ``Event.hash_holds`` does, so a payload's spelling
        never decides, its content does.
        """
        try:
            if sha256_hex(self.body()) == self.hash:
                return True
        except (TypeError, UnicodeEncodeError):
            pass
        try:
            return self.event().hash_holds()
        except (TypeError, ValueError):  # not JSON, or not an event's fields: changed
            return False

    def event(self) -> Event:
        """The event with its payload parsed (ValueError when it is not JSON)."""
        return Event(
            batch_id=self.batch_id,
            seq=self.seq,
            type=self.type,
            actor=self.actor,
            recorded_at=self.recorded_at,
            performed_at=self.performed_at,
            reason=self.reason,
            payload=json.loads(self.payload),
            prev_hash=self.prev_hash,
            hash=self.hash,
        )


def ledger_hash(pos: int, batch_id: str, seq: int, event_hash: str, prev: str) -> str:
    """The hash of one entry of the global ledger: one chain over every event of every
    stream, so removing a stream's newest events also cuts this chain."""
    text = f"{pos}|{batch_id}|{seq}|{event_hash}|{prev}"
    return sha256_hex(text.encode())


class LedgerEntry(NamedTuple):
    """One position of the global ledger, as every backend returns it.

    The ledger lists every event of every stream in the order they were written, each entry
    chained to the one before (``prev``). A stream's own chain cannot show that its newest
    events were cut off together with its head; this one can, because the cut events are
    still named here. Typed, not a database row, so verification reads the same fields
    whichever backend stored them. A named tuple: verification reads millions of them,
    and it is made several times faster than a frozen dataclass, as immutable.
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


def seal_stored(
    batch_id: str, seq: int, prev_hash: str, recorded_at: str, new: NewEvent
) -> tuple[Event, str]:
    """NEW sealed at SEQ after PREV_HASH, and its payload's canonical JSON: the text its
    hash covers and the store keeps. The payload is written out once, for both: the
    hashed bytes are assembled around it as ``StoredEvent.body`` does (the same bytes as
    ``canonical_json(event_body(...))``, which a property test holds)."""
    text = canonical_json(new.payload)
    row = StoredEvent(
        batch_id, seq, new.type, new.actor, recorded_at, new.performed_at, new.reason, text,
        prev_hash, "",
    )  # fmt: skip
    try:
        digest = sha256_hex(row.body())
    except TypeError:  # a field of another type than an event's: written out whole
        return _sealed_whole(batch_id, seq, prev_hash, recorded_at, new), text
    event = Event(
        batch_id=batch_id,
        seq=seq,
        type=new.type,
        actor=new.actor,
        recorded_at=recorded_at,
        performed_at=new.performed_at,
        reason=new.reason,
        payload=new.payload,
        prev_hash=prev_hash,
        hash=digest,
    )
    return event, text


def _sealed_whole(
    batch_id: str, seq: int, prev_hash: str, recorded_at: str, new: NewEvent
) -> Event:
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
    """A place where a stream's hash chain does not hold, and what is wrong there."""

    batch_id: str
    seq: int
    problem: str


class Link(Protocol):
    """What a chain check reads of an event: an ``Event``, or a ``StoredEvent`` that
    hashes its stored bytes."""

    @property
    def seq(self) -> int: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def hash(self) -> str: ...

    def hash_holds(self) -> bool: ...


def verify_chain(
    batch_id: str, events: Iterable[Link], head_hash: str | None = None
) -> ChainBreak | None:
    """The first broken link of a batch's chain, or None when it is whole.

    EVENTS may be a stream read row by row: each is looked at once, in seq order, and
    nothing is kept but the hash before it.
    """
    prev, last = GENESIS, 0
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            return ChainBreak(batch_id, ev.seq, f"event {expected_seq} is missing (found {ev.seq})")
        if ev.prev_hash != prev:
            return ChainBreak(batch_id, ev.seq, "does not link to the event before it")
        if not ev.hash_holds():
            return ChainBreak(
                batch_id, ev.seq, "content does not match its hash (changed after writing)"
            )
        prev, last = ev.hash, ev.seq
    if head_hash is not None and head_hash != prev:
        return ChainBreak(
            batch_id, last, "the chain ends before the recorded head: events were removed"
        )
    return None
