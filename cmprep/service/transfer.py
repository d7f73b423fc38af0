"""Moving a whole database: copy (SQLite to PostgreSQL and back), backup and restore.

A copy is not a dump of rows. Every event is appended again to the empty target through
the target's own write path, in the order of the source's ledger, with its original time,
person and content; the target seals it with the same rules, so each event must come out
with the very hash it had. The first one that does not stops the copy: a target whose log
differs from its source is worse than no copy. Counters and idempotency keys follow, then
the query tables are rebuilt from the copied log, and the caller verifies the target.

Sign-in state (sessions, wrong-password counts) is not copied: it belongs to the server a
person logged in to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from cmprep.errors import CorruptLog, Hint, Refused
from cmprep.events import Event, NewEvent, StoredEvent
from cmprep.store.base import EventStore

COUNTER_STREAM = "__counter__"  # the pseudo-stream counters are raised under (no events)


@dataclass(frozen=True)
class Copied:
    """What a copy moved: the events, the streams, and the ledger head both now share."""

    events: int
    streams: int
    ledger_head: str


def _runs(logged: Iterable[StoredEvent]) -> Iterator[tuple[str, list[Event]]]:
    """The log in ledger order, in runs that were one write: consecutive events of one
    stream with one time (a write appends its events at one recorded time). Read as the
    store gives it: one run in memory at a time."""
    for (stream, _at), run in groupby(logged, key=lambda e: (e.batch_id, e.recorded_at)):
        yield stream, [e.event() for e in run]


def copy_log(source: EventStore, target: EventStore) -> Copied:
    """Append every event of SOURCE to the empty TARGET, hash for hash, in ledger order.

    The source is read as a stream (``iter_logged``): the memory is one write's events
    and the names of the streams seen, whatever the size of the log."""
    if target.stream_ids():
        raise Refused(
            "the target database is not empty; a copy goes only into a new, empty database "
            "(nothing was written)"
        )
    keys_by_end: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for key, use in source.keys().items():
        keys_by_end.setdefault((use.stream, use.last_seq), []).append((key, use.first_seq))
    streams: set[str] = set()
    count, head = 0, ""
    for stream, run in _runs(source.iter_logged()):
        streams.add(stream)
        with target.writing(stream, run[0].seq - 1) as unit:
            new = [NewEvent(e.type, e.actor, e.payload, e.reason, e.performed_at) for e in run]
            sealed = unit.append(new, run[0].recorded_at)
            for original, copy in zip(run, sealed, strict=True):
                if copy.hash != original.hash:
                    raise CorruptLog(
                        f"event {original.seq} of {stream} does not copy to the same hash; "
                        "the source log is damaged or was changed. Nothing more was copied"
                    )
            for e in run:
                for key, first in keys_by_end.get((stream, e.seq), []):
                    unit.remember_key(key, first, e.seq)
        count += len(run)
    with target.writing(COUNTER_STREAM, 0) as unit:
        for name, value in source.counters().items():
            unit.raise_counter(name, value)
    tail = source.ledger_tail()
    if tail is not None and tail.pos != count:
        raise CorruptLog(
            f"the source's ledger names {tail.pos} events but {count} could be read in its "
            "order; the source log is damaged (verify it before copying)",
            hint=Hint("verify_log"),
        )
    head = tail.hash if tail else ""
    return Copied(events=count, streams=len(streams), ledger_head=head)


def copy_database(
    source: EventStore,
    target: EventStore,
    rebuild: Callable[[EventStore], object],
) -> Copied:
    """Copy the log, then rebuild the target's query tables from it (REBUILD)."""
    copied = copy_log(source, target)
    rebuild(target)
    tail = target.ledger_tail()
    if (tail.hash if tail else "") != copied.ledger_head:
        raise CorruptLog("the copy's ledger does not end where the source's does")
    return copied


@dataclass(frozen=True)
class Checked:
    """A copy, backup or restore and the verification of what it wrote."""

    copied: Copied
    problems: list[str]  # every break `audit verify` found in the target (none: it is whole)
    where: str


def _checked(copied: Copied, target: EventStore, where: str) -> Checked:
    from cmprep.service import Services  # the target's own services, for its verification

    report = Services(target).audit.verify()
    return Checked(copied, [str(p) for p in report.problems], where)


def _rebuild(target: EventStore) -> object:
    from cmprep.service import Services

    return Services(target).audit.rebuild_projections()


def copy(source_url: str, target_url: str) -> Checked:
    """`db copy SRC DST`: SRC's whole log into the new or empty DST, then verify DST."""
    from cmprep.store import open_store

    source = open_store(source_url)
    new_file = _new_sqlite_file(target_url)
    try:
        target = open_store(target_url, create=True)
        try:
            return _checked(copy_database(source, target, _rebuild), target, target_url)
        finally:
            target.close()
    except BaseException:
        if new_file is not None:  # a copy that failed leaves no half-written file behind
            for leftover in (
                new_file,
                *(new_file.with_name(new_file.name + x) for x in ("-wal", "-shm")),
            ):
                leftover.unlink(missing_ok=True)
        raise
    finally:
        source.close()


def _new_sqlite_file(url: str) -> Path | None:
    """The SQLite file URL names, if it does not exist yet (so a failed copy removes it)."""
    if "://" in url and not url.startswith("sqlite:///"):
        return None
    path = Path(url[len("sqlite:///") :] if url.startswith("sqlite:///") else url)
    return None if path.exists() else path


def backup(store: EventStore, dest: str) -> Checked:
    """`db backup DEST`: the database as a new SQLite file DEST (never over an existing
    file), then verify the file. An SQLite database is copied page by page with SQLite's
    online backup (safe while others write); any other is copied event by event."""
    from cmprep.store.sqlite import SQLiteStore

    path = Path(dest)
    if path.exists():
        raise Refused(f"{dest} already exists; a backup never overwrites a file (nothing written)")
    online = getattr(store, "backup_to", None)
    if online is not None:
        online(path)
        target = SQLiteStore(path)
        tail = target.ledger_tail()  # one row: the copy's size and head, not its whole ledger
        copied = Copied(
            events=tail.pos if tail else 0,
            streams=len(target.stream_ids()),
            ledger_head=tail.hash if tail else "",
        )
    else:
        target = SQLiteStore(path, create=True)
        copied = copy_database(store, target, _rebuild)
    try:
        return _checked(copied, target, dest)
    finally:
        target.close()


def restore(source_url: str, target_url: str) -> Checked:
    """`db restore SRC`: a backup into the database named by TARGET, which must be new or
    empty: restoring never overwrites a live database."""
    return copy(source_url, target_url)
