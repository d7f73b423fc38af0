"""The rules of writing, shared by every backend: what to write, never how.

A backend (SQLite now, PostgreSQL next) only locks, reads a stream's head and the ledger's
tail, and stores rows. Everything that decides *what* those rows are lives here, once:
where new events go in their stream (seq, previous hash), the global ledger entries that
record them, the refusal of a stale writer and of a clock running behind, and the rules of
idempotency keys. Two backends therefore cannot disagree about a hash or a refusal, and a
log written by one verifies with the other's rules.

Nothing here touches a database; every function is pure or works on the in-memory state
of one unit of work (``Appender``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from cmprep.errors import ClockBehind, ConcurrencyError, Hint, StoreError
from cmprep.events import GENESIS, Event, LedgerEntry, NewEvent, next_ledger_entry, seal_stored

SYSTEM_PREFIX = "@"  # system streams (@users, @security, @materials ...) are not batches
# every event as stored, in the order of the ledger (what a copy replays); the same SQL on
# every backend (no parameters)
LOGGED_EVENTS_SQL = (
    "SELECT e.batch_id, e.seq, e.type, e.actor, e.recorded_at, e.performed_at, "
    "e.reason, e.payload, e.prev_hash, e.hash FROM ledger l "
    "JOIN events e ON e.batch_id = l.batch_id AND e.seq = l.seq ORDER BY l.pos"
)


def is_system(stream: str) -> bool:
    """A system stream: users, refusals, materials, equipment. Not listed as a batch."""
    return stream.startswith(SYSTEM_PREFIX)


def stream_name(stream: str) -> str:
    """How a message names the stream: a person chooses a batch id, never a system stream."""
    return f"the {stream[1:]} records" if is_system(stream) else f"batch {stream}"


class Head(NamedTuple):
    """A stream's last event: its seq and hash. A tuple, so ``seq, hash = head`` works."""

    seq: int
    hash: str


class KeyUse(NamedTuple):
    """What an idempotency key was first used for: the stream and the seqs it wrote."""

    stream: str
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class StreamTip:
    """What a writer decides against: the stream's last seq, hash and recorded time.

    An empty stream has seq 0, the GENESIS hash and no time. A backend reads this from its
    events (not from its separately kept heads) inside the write lock, so the check and the
    write see the same log.
    """

    seq: int = 0
    hash: str = GENESIS
    recorded_at: str | None = None


def check_expected(stream: str, tip: StreamTip, expected_seq: int) -> None:
    """Refuse a writer who decided from an older view of the stream.

    The caller folded the stream at ``expected_seq`` and decided from that; if anyone wrote
    since, the decision may be wrong (a step recorded twice, a user added twice), so nothing
    is written and the person looks again. ``expected_seq == 0`` on an existing batch means
    a batch id already taken: choosing another id is the fix, not trying again. A system
    stream's id is never chosen by a person, so there it is always "try again".
    """
    if tip.seq == expected_seq:
        return
    if expected_seq == 0 and not is_system(stream):
        raise ConcurrencyError(f"batch {stream} already exists; choose another id")
    hint = Hint("try_again") if is_system(stream) else Hint("try_again", batch=stream)
    raise ConcurrencyError(
        f"{stream_name(stream)} changed while you were entering (someone saved entry "
        f"{tip.seq} first); nothing was written. Look at it again and try again.",
        hint=hint,
    )


def check_clock(stream: str, tip: StreamTip, recorded_at: str) -> None:
    """Refuse a time earlier than the stream's last entry.

    Times are recorded from the system clock, never typed; a clock that went back (a dead
    battery, a wrong time zone) would make the record say things happened in another order
    than they were entered. Refusing keeps the log in time order; reordering would lie.
    """
    if tip.recorded_at is not None and recorded_at < tip.recorded_at:
        raise ClockBehind(
            f"the system clock ({recorded_at}) is earlier than the last entry of "
            f"{stream_name(stream)} ({tip.recorded_at}); nothing was written.",
            hint=Hint("check_clock"),
        )


class Sealed(NamedTuple):
    """An event placed in its stream, and its payload as the store keeps it: the canonical
    JSON its hash covers, written out once."""

    event: Event
    payload: str


def seal_all(
    stream: str, tip: StreamTip, events: list[NewEvent], recorded_at: str
) -> tuple[list[Sealed], StreamTip]:
    """The events placed after TIP (seq + 1, + 2 ..., each chained to the one before), and
    the stream's tip after them. Refuses first if the clock is behind the stream."""
    check_clock(stream, tip, recorded_at)
    sealed: list[Sealed] = []
    seq, prev = tip.seq, tip.hash
    for new in events:
        seq += 1
        event, text = seal_stored(stream, seq, prev, recorded_at, new)
        sealed.append(Sealed(event, text))
        prev = event.hash
    if not sealed:
        return [], tip
    return sealed, StreamTip(seq, prev, recorded_at)


def ledger_entries(last: LedgerEntry | None, events: list[Event]) -> list[LedgerEntry]:
    """The ledger entries recording EVENTS, continuing after LAST (None: empty ledger).

    The backend must read LAST inside its write lock: positions are gapless and each entry
    names the hash of the one before, so two writers must never continue the same tail.
    """
    entries: list[LedgerEntry] = []
    for event in events:
        last = next_ledger_entry(last, event)
        entries.append(last)
    return entries


def key_taken(key: str) -> ConcurrencyError:
    """The refusal when a key is already remembered: the same command was saved by another
    attempt (a double click, a retried request) between looking and writing."""
    return ConcurrencyError(
        f"the command with key {key!r} was saved meanwhile; nothing more was written"
    )


class Appender:
    """The backend-neutral half of one unit of work on one stream.

    Made inside the backend's write lock from the stream's tip; refuses at once when the
    tip is not the one the caller decided from. It then seals what is appended and keeps
    the tip and the written events, so a backend only stores what it is handed.
    """

    def __init__(self, stream: str, tip: StreamTip, expected_seq: int) -> None:
        check_expected(stream, tip, expected_seq)
        self.stream = stream
        self.tip = tip
        self.written: list[Event] = []

    def seal(self, events: list[NewEvent], recorded_at: str) -> list[Sealed]:
        """Place EVENTS after everything written so far; the backend must store all of
        them (and their ledger entries, and the new head) or raise."""
        sealed, self.tip = seal_all(self.stream, self.tip, events, recorded_at)
        self.written.extend(s.event for s in sealed)
        return sealed

    @property
    def head(self) -> Head:
        """The head to record once this unit's events are stored."""
        return Head(self.tip.seq, self.tip.hash)

    def key_use(self, key: str, first_seq: int, last_seq: int) -> KeyUse:
        """What to remember under KEY: the seqs must be events this unit wrote, so a key
        always points at one whole command and never at someone else's entries."""
        mine = {e.seq for e in self.written}
        if not key or first_seq > last_seq or not {first_seq, last_seq} <= mine:
            raise StoreError(
                f"idempotency key {key!r} must name events written in the same "
                f"transaction (got {first_seq}..{last_seq}); nothing was written"
            )
        return KeyUse(self.stream, first_seq, last_seq)


__all__ = [
    "SYSTEM_PREFIX",
    "Appender",
    "Head",
    "KeyUse",
    "LedgerEntry",
    "Sealed",
    "StreamTip",
    "check_clock",
    "check_expected",
    "is_system",
    "key_taken",
    "ledger_entries",
    "seal_all",
    "stream_name",
]
