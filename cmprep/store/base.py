"""The store's contract: what any backend (SQLite here, PostgreSQL next) must give.

The service depends on these two protocols only. A new backend is one class that passes
``tests/test_store_contract.py``; what to write (seqs, hashes, ledger entries, refusals)
it takes from ``cmprep.store.chain``, so only *how* to store differs between backends.

Words used below:

* a **stream** is one ordered log of events: a batch (``CM-20261102-001``) or a system
  stream whose id starts with ``@`` (``@users``, ``@security``, ``@materials`` ...);
* its **head** is its last event's (seq, hash); heads are also kept apart from the events,
  so that cutting off a stream's newest events is seen by verification;
* the **ledger** is one more chain, over every event of every stream in commit order;
* the **projections** (batch, deviation and QC point rows) are query tables derived from the events,
  rebuilt from them at will; they are never the truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cmprep.errors import ClockBehind, ConcurrencyError, StoreError
from cmprep.events import Event, LedgerEntry, NewEvent, StoredEvent
from cmprep.store.chain import Head, KeyUse
from cmprep.store.query import BatchFilter, DeviationFilter, Group, Projected, QCPointFilter

if TYPE_CHECKING:
    from cmprep.store.query import Span  # a part of the log, for a verification in parts


@runtime_checkable
class UnitOfWork(Protocol):
    """One transaction on one stream, under the write lock: everything in it is written,
    or nothing is.

    Got from ``EventStore.writing``. If the ``with`` block raises, every effect of the unit
    is undone: events, ledger entries, the head, projection rows, counter numbers and
    remembered keys. Another writer cannot interleave: a unit sees the store as it is when
    the lock was taken, plus its own writes.
    """

    def append(self, events: list[NewEvent], recorded_at: str) -> list[Event]:
        """Seal EVENTS after the stream's last one and store them; return them sealed.

        Returns the new events in order, numbered from the head's seq + 1 and each chained
        to the one before; each also gets its global ledger entry, and the stream's recorded
        head moves to the last one. May be called more than once in a unit: later calls
        continue after the earlier ones. An empty list writes nothing.

        Raises ClockBehind, writing nothing, when RECORDED_AT (ISO UTC text) is earlier than
        the stream's last recorded time: the log stays in time order.
        """
        ...

    def next_number(self, counter: str) -> int:
        """The next number of the named counter: 1, 2, 3 ... per name, without gaps.

        Why gapless: deviation and batch numbers are printed on records, and a missing
        number makes an inspector ask what was thrown away. The number is only taken if the
        unit commits; a rolled-back unit gives its number to the next writer.
        """
        ...

    def raise_counter(self, counter: str, value: int) -> None:
        """Make the named counter at least VALUE (never lower it): how a copied database
        goes on numbering deviations and batches where the original stopped."""
        ...

    def put_batch(self, row: dict[str, Any]) -> None:
        """Insert or replace one batch's query row (by ``batch_id``).

        The row needs every key of ``query.BATCH_COLUMNS``; it is stored whole and
        ``batch_rows`` returns it as given (JSON-safe values).
        """
        ...

    def put_deviation(self, row: dict[str, Any]) -> None:
        """Insert or replace one deviation's query row (by ``deviation_id``).

        The row needs the keys of ``query.DEVIATION_COLUMNS`` (``parameter`` may be absent);
        it is stored whole and ``deviation_rows`` returns it as given.
        """
        ...

    def put_qc_points(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace every QC point of BATCH_ID by ROWS ([]: the batch has none).

        Each row needs every key of ``query.QC_POINT_COLUMNS`` (``method`` may be None),
        its ``batch_id`` must be BATCH_ID, and (step, name) is unique within the batch; only
        those keys are kept, and ``qc_points`` returns them as given.
        """
        ...

    def put_lot_uses(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace the lots BATCH_ID used by ROWS (keys of ``query.LOT_USE_COLUMNS``,
        ``material`` may be None, each of this batch): what a recall reads by lot."""
        ...

    def put_registered(self, kind: str, row: dict[str, Any]) -> None:
        """Keep a registered lot's, instrument's or material's query row
        (``query.REGISTERS``: KIND ``lot``, ``instrument`` or ``material``) as it now is, by
        its id, in this unit: what a step naming it, or a write deciding from it, reads one
        row by key, however long its stream."""
        ...

    # --- lineage (new block: the material graph) ---------------------------------------
    def put_lineage_edges(self, rows: list[dict[str, Any]]) -> None:
        """Add the lineage edges of a derivation appended in this unit.

        Each row needs the keys of ``query.LINEAGE_COLUMNS`` (``drawn`` and ``unit`` may be
        None); (parent, child) is unique: a child is made once. Rolled back with the unit.
        """
        ...

    def seen_key(self, key: str) -> KeyUse | None:
        """What KEY was used for, seen inside the lock (None: not used yet).

        Read here, not before the lock, to catch the same command saved by a second attempt
        (a double click, a retried request) between looking and writing.
        """
        ...

    def remember_key(self, key: str, first_seq: int, last_seq: int) -> None:
        """Remember that KEY wrote this unit's events FIRST_SEQ..LAST_SEQ of its stream.

        The seqs must be events appended in this unit (StoreError otherwise); a key already
        remembered raises ConcurrencyError. Rolled back with the unit, so a key never points
        at events that were not written.
        """
        ...


@dataclass(frozen=True)
class SessionRow:
    """A live sign-in: whose, since when, last used, and their signing key wrapped under
    the session's token (which only the person's session file holds)."""

    token_hash: str
    user: str
    opened_at: str
    last_seen: str
    wrapped_key: str


@runtime_checkable
class EventStore(Protocol):
    """The event log of every stream, its heads and ledger, and the query tables.

    Reading methods see committed data only and never block a writer for long. Every list
    has a fixed order (stated per method), so two backends give the same answers.
    """

    def events(self, stream: str) -> list[Event]:
        """Every event of STREAM in seq order (1, 2, 3 ...); [] for an unknown stream."""
        ...

    def head(self, stream: str) -> Head | None:
        """(seq, hash) of STREAM's last stored event, or None when it has none.

        Read from the events themselves: it is what a writer is checked against.
        """
        ...

    def recorded_heads(self) -> dict[str, Head]:
        """The head kept apart for each stream, by stream id.

        Written with every append but stored separately from the events, so deleting a
        stream's newest events leaves a head that points past the end: verification sees it.
        """
        ...

    def writing(self, stream: str, expected_seq: int) -> AbstractContextManager[UnitOfWork]:
        """Take the write lock, check STREAM still ends at EXPECTED_SEQ, and give the unit.

        EXPECTED_SEQ is the seq of the last event the caller decided from (0: the stream
        must not exist yet). If anyone wrote since, ConcurrencyError is raised before the
        block runs and nothing is written: "batch X already exists; choose another id" when
        0 was expected of an existing batch, otherwise "... changed while you were entering
        ... try again" with ``Hint("try_again")``. A lock not got in time is also a
        ConcurrencyError. The unit commits when the ``with`` block ends normally and rolls
        back entirely when it raises.
        """
        ...

    def batch_rows(self, where: BatchFilter | None = None) -> list[dict[str, Any]]:
        """Batch query rows matching every set field of WHERE (all rows without one),
        ordered by ``started_at`` then ``batch_id``."""
        ...

    def deviation_rows(self, where: DeviationFilter | None = None) -> list[dict[str, Any]]:
        """Deviation query rows matching every set field of WHERE, ordered by
        ``deviation_id``. ``since`` keeps those opened at or after it, ``until`` those
        opened strictly before it (so consecutive periods never count one twice)."""
        ...

    def batch_table(
        self, where: BatchFilter | None, columns: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        """Only COLUMNS of the batch rows matching WHERE, one tuple per row, in the order of
        ``batch_rows``, read from the database as the caller iterates: a list of a million
        batches is printed in the memory of a few hundred rows.

        Each column is one of ``query.BATCH_COLUMNS``, or ``query.ROW``: the whole row as
        JSON text (one object, as ``batch_rows`` would return it). Any other name is refused
        with StoreError before anything is read.
        """
        ...

    def deviation_table(
        self, where: DeviationFilter | None, columns: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        """As ``batch_table``, for the deviation rows in the order of ``deviation_rows``.

        Besides ``query.DEVIATION_COLUMNS`` and ``query.ROW``, a column may be one of
        ``query.DEVIATION_FIELDS``: a field kept only in the stored row (None where the
        row lacks it).
        """
        ...

    def batch_count(self, where: BatchFilter | None = None) -> int:
        """How many batch rows match WHERE."""
        ...

    def deviation_counts(
        self, columns: tuple[str, ...], where: DeviationFilter | None = None
    ) -> list[Group]:
        """The deviation rows matching WHERE, counted by the values of COLUMNS (as in
        ``deviation_table``, without ``ROW``): one (values, count, smallest deviation id)
        per distinct combination, ordered by the values (None first).

        What a report's Pareto charts need, counted by the database: the smallest id lets
        groups of equal size be listed in the order their deviations were numbered.
        """
        ...

    def qc_points(self, where: QCPointFilter) -> list[dict[str, Any]]:
        """QC points matching WHERE (see ``QCPointFilter``), ordered by ``started_at``,
        ``batch_id`` then ``position``; with ``where.last`` only the newest that many, in
        the same order. One indexed query: its cost follows the points returned, not the
        batches stored."""
        ...

    def stream_ids(self) -> list[str]:
        """Every stream with events or a recorded head, system streams included, sorted.

        Streams known only by their head are listed too: their events may have been
        deleted, and verification must still look at them.
        """
        ...

    def batch_ids(self) -> list[str]:
        """``stream_ids`` without the system streams (those starting with '@'), sorted."""
        ...

    def ids_near(self, kind: str, text: str, limit: int) -> list[str]:
        """Ids of KIND (a key of ``query.ID_COLUMNS``: 'batch' or 'deviation') next to TEXT
        in lower-cased order: up to LIMIT at or after it (the first is TEXT itself, in its
        stored case, when such an id exists), then up to LIMIT before it, nearest first.

        How an id typed in any case is found, and the closest ids are suggested for one
        that is unknown, from an index: never more than 2 x LIMIT rows, however many
        batches are stored.
        """
        ...

    def ledger(self) -> list[LedgerEntry]:
        """Every ledger entry by position: 1, 2, 3 ... in the order events were committed."""
        ...

    # --- verification, read as a stream ---------------------------------------------------
    # `audit verify` reads every event and every ledger entry once. These give them row by
    # row from one query each (the memory of a few rows, whatever the size of the log), and
    # each also takes one stream (`audit verify BATCH`), read through the (stream, seq) keys
    # without touching any other stream's rows.

    def iter_events(
        self, stream: str | None = None, span: Span | None = None
    ) -> Iterator[tuple[StoredEvent, Head | None]]:
        """Every event (or STREAM's; or, with SPAN, those of the streams within it) as
        stored, ordered by stream then seq, each with the head recorded for its stream
        (None when none is), read as the caller iterates.

        The payload is the text stored, which the write path keeps as
        ``events.canonical_json(payload)``, unchanged, so ``StoredEvent.body()`` is the
        bytes the hash covers. Giving the recorded head with each row spares verification
        a query per stream; a stream's rows all carry the same one.
        """
        ...

    def iter_logged(self) -> Iterator[StoredEvent]:
        """Every event as stored, in the order of the ledger's positions (the order the
        events were committed), read as the caller iterates: what a copy of the database
        replays, with the memory of a few rows whatever the size of the log. An event no
        ledger entry names is not given (verification names it)."""
        ...

    def emptied_streams(self, stream: str | None = None) -> list[tuple[str, Head]]:
        """Streams (or STREAM) with a recorded head but no event left, with that head,
        ordered by stream: every event of them was deleted."""
        ...

    def iter_ledger(self, stream: str | None = None) -> Iterator[tuple[LedgerEntry, str | None]]:
        """Every ledger entry (or those of STREAM's events) by position, each with the hash
        the event it names has now (None when there is no such event), read as the caller
        iterates."""
        ...

    def unledgered(self, stream: str | None = None) -> Iterator[tuple[str, int]]:
        """(stream, seq) of every event (or STREAM's) that no ledger entry names, ordered
        by stream then seq: events slipped in behind the ledger's back."""
        ...

    def iter_logged_rows(
        self, table: str, columns: tuple[str, ...], span: Span | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Every row of the query table TABLE (one of ``query.BATCH_TABLES``) whose batch
        has events in the log (and, with SPAN, is within it), as (its batch id, *COLUMNS),
        ordered by batch id exactly as
        ``iter_events`` orders its streams (by the database's own comparison of ids, the
        same column type and collation), read as the caller iterates.

        Each row's COLUMNS are those ``batch_table``, ``deviation_table`` (a field of the
        stored row, ``ROW``), ``qc_points`` or ``lot_uses`` give for it. Verification takes
        a batch's rows from these streams as it reaches the batch in the log: four reads
        in all instead of four per batch. Rows of batches without events are left to
        ``unlogged_batches``, so every id here is one of ``iter_events``' streams."""
        ...

    def unlogged_batches(self) -> list[str]:
        """Batch ids that a query-table row (a batch, a deviation or a QC point) names but
        that have no event in the log, sorted: rows an edit invented, or left behind when
        a batch's events were deleted. Verification compares every other row batch by
        batch as it reads the log."""
        ...

    def ledger_at(self, pos: int) -> LedgerEntry | None:
        """The ledger entry at position POS, or None when there is none."""
        ...

    def iter_ledgered_through(
        self, pos: int, span: Span | None = None
    ) -> Iterator[tuple[str, int]]:
        """(stream, its highest seq whose ledger entry is at position POS or before) for
        every stream with events and such an entry (within SPAN, if given), ordered by
        stream exactly as
        ``iter_events`` orders them, read as the caller iterates: ``ledgered_through`` of
        every stream in one read (verification with a checkpoint asks it of each stream
        with a signature; on a server each ask was a round trip)."""
        ...

    def streams_at(self, places: list[int]) -> list[str | None]:
        """The stream of the event at each of PLACES (how many events come before it) in
        ``iter_events``' order, None past the last: where a verification in parts cuts the
        log (``query.Span``), so that each part holds about its share of the events."""
        ...

    def one_moment(self) -> AbstractContextManager[None]:
        """Within the block, every read of this store (its streams, and those of a store
        ``reopened`` from it meanwhile) sees the database as it was when the block began,
        where the backend can give one moment to several connections: what a verification
        of a live server reads, so that a batch written while it runs is checked as it
        stood, in every part. PostgreSQL: one exported snapshot, read only. SQLite: nothing
        (each read is its own moment); a read held open would be inherited by the
        processes forked to check parts of the log."""
        ...

    def reopened(self) -> EventStore:
        """Another store on the same database, on connections of its own: what a process
        forked to check a part of the log reads with (a connection is never used on both
        sides of a fork). It is opened as this one was, read-only if this one is."""
        ...

    def ledgered_through(self, stream: str, pos: int) -> int:
        """The highest seq of STREAM whose ledger entry is at position POS or before (0
        when none is): how much of the stream a checkpoint at POS vouches for. One read
        through the (stream, seq) key, whatever the length of the log."""
        ...

    def ledger_tail(self) -> LedgerEntry | None:
        """The newest ledger entry (the highest position), or None when the ledger is
        empty: the head printed on records and signed into checkpoints, read alone."""
        ...

    def missing_protections(self) -> list[str]:
        """Each protection of the log that is not in place, in plain words ([] when all are).

        The backend refuses UPDATE and DELETE of events and ledger entries by its own means
        (SQLite: triggers). Someone with access to the database can remove such a rule and
        leave no event behind; verification asks the backend whether each rule is still
        there, and as it was created (a rule replaced by one that lets everything through
        counts as missing).
        """
        ...

    def key_used(self, key: str) -> KeyUse | None:
        """What KEY was used for (stream, first and last seq), or None if never used.

        Lets a repeated command answer "already saved" without taking the write lock.
        """
        ...

    def replace_projections(self, projected: Iterable[Projected]) -> int:
        """Replace every batch, deviation and QC point query row by those PROJECTED gives,
        batch by batch, in one transaction; the number of batches written.

        Used after a repair or an upgrade to rebuild the query tables from the log; readers
        see the old rows or the new ones, never a half-empty table. Each batch's rows are
        written as they are given, so a rebuild holds one batch's rows, whatever the number
        of batches; and it holds the write lock from the start, so what it folds is not
        changed by a write meanwhile (writers wait, then hear the database is busy). An
        error raised while PROJECTED is read rolls everything back. Events, heads, ledger,
        counters and keys are untouched.
        """
        ...

    # --- lineage (new block: the material graph) ---------------------------------------
    def lineage_edges(self, lot: str, direction: str) -> list[dict[str, Any]]:
        """Every lineage edge reachable from LOT: ``down`` (edges out of LOT and out of
        every lot below it: what a recall covers) or ``up`` (edges into LOT and into every
        lot above it: what it was made from). Rows of ``query.LINEAGE_COLUMNS`` as put,
        ordered by seq, parent, child; [] for a lot with none. One recursive query
        (``query.lineage_query``), the same SQL on every backend."""
        ...

    # --- where each lot was used (a query table) ------------------------------------------
    def lot_uses(
        self, *, lot: str | None = None, batch_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The uses of LOT (in any case) or of BATCH_ID's steps, ordered by when they were
        used, then batch and step: one indexed read, whatever the number of batches."""
        ...

    def uses_indexed(self) -> bool:
        """Whether the lot uses of every batch are kept: true for a database made by this
        version and after ``replace_projections``; false for one upgraded with batches
        already recorded, until it is rebuilt (a recall then reads the batches' logs)."""
        ...

    # --- registered lots, instruments and materials (query tables) --------------------
    def registered(self, kind: str, ident: str) -> dict[str, Any] | None:
        """The KIND row kept for IDENT (its id exactly as stored; ``ids_near(KIND, ...)``
        finds it in any case), or None."""
        ...

    def registered_rows(self, kind: str, *, batch_id: str | None = None) -> list[dict[str, Any]]:
        """Every KIND row, by id: what verification compares with the log; with BATCH_ID,
        only those it names (a register searched by it: ``query.REGISTER_FIELDS``), read
        through its index."""
        ...

    def register_whole(self, kind: str) -> bool:
        """Whether the KIND table holds everything its stream registered: true for a
        database made by this version and after ``replace_registered``; false for one
        upgraded with some already registered, until it is rebuilt (readers then fold the
        stream)."""
        ...

    def replace_registered(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Replace every KIND row by ROWS, in one transaction, and mark the table whole."""
        ...

    def iter_lineage_edges(self) -> Iterator[dict[str, Any]]:
        """Every lineage edge (rows of ``query.LINEAGE_COLUMNS``) ordered by seq, then
        parent and child, read as the caller iterates: what verification compares,
        derivation by derivation, with the edges the ``@materials`` log gives."""
        ...

    def replace_lineage_edges(self, rows: list[dict[str, Any]]) -> None:
        """Replace every lineage edge by ROWS, in one transaction: how ``db rebuild`` fills
        the table from the "@materials" events (after an upgrade or a repair)."""
        ...

    def counters(self) -> dict[str, int]:
        """Every counter's current value (what ``next_number`` last gave), by name."""
        ...

    def keys(self) -> dict[str, KeyUse]:
        """Every remembered idempotency key and what it wrote."""
        ...

    # --- sign-in state (not part of the record) ----------------------------------------
    # Sessions and the count of wrong passwords are kept beside the log, not in it: a
    # session is touched by every command, and neither is evidence of what was done. What
    # they lead to (a lock, a login) is written to @users / @security as events.

    def database_id(self) -> str:
        """A random id given to this database when it was created; names its session file."""
        ...

    def open_session(self, row: SessionRow) -> None:
        """Keep a new session (its token only as a hash)."""
        ...

    def session(self, token_hash: str) -> SessionRow | None:
        """The session with that token hash, or None."""
        ...

    def touch_session(self, token_hash: str, last_seen: str) -> None:
        """Record that the session was used now (for the idle timeout)."""
        ...

    def close_sessions(self, *, token_hash: str | None = None, user: str | None = None) -> int:
        """End one session (by token hash) or every session of USER; how many ended."""
        ...

    def count_failure(self, name: str) -> int:
        """One more wrong password in a row for NAME; the count now."""
        ...

    def clear_failures(self, name: str) -> None:
        """A right password (or an unlock): the count starts again at zero."""
        ...

    def close(self) -> None:
        """Release the connection; the store must not be used afterwards."""
        ...


__all__ = [
    "ClockBehind",
    "ConcurrencyError",
    "EventStore",
    "Head",
    "KeyUse",
    "LedgerEntry",
    "StoreError",
    "StoredEvent",
    "UnitOfWork",
]
