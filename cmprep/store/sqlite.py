"""The embedded default store: one SQLite file, WAL, synchronous=FULL.

Only SQL lives here. What to write (seqs, hashes, ledger entries) and when to refuse (a
stale writer, a clock behind) comes from ``cmprep.store.chain``, shared with every other
backend; this module takes the lock, reads the stream's tip and the ledger's tail, and
stores the rows it is handed.

Writes go through ``writing()``, which takes the write lock first (BEGIN IMMEDIATE) and
only then reads the stream's tip, so the check and the write see the same log: two
processes recording on one batch never fork its history, the second one gets
ConcurrencyError. The events and ledger tables refuse UPDATE and DELETE by trigger, and
each stream's head is kept apart from the events so that deleting the newest event is
caught by verification.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from pathlib import Path

from cmprep.errors import ConcurrencyError, CorruptLog, Hint, StoreError
from cmprep.events import Event, LedgerEntry, NewEvent, StoredEvent, canonical_json
from cmprep.store.base import SessionRow
from cmprep.store.chain import (
    LOGGED_EVENTS_SQL,
    Appender,
    Head,
    KeyUse,
    StreamTip,
    is_system,
    key_taken,
    ledger_entries,
    stream_name,
)
from cmprep.store.packing import Unreadable, pack, unpack
from cmprep.store.query import (
    BATCH_COLUMNS,
    DEVIATION_COLUMNS,
    DEVIATION_FIELDS,
    LINEAGE_COLUMNS,
    LOT_USE_COLUMNS,
    QC_POINT_COLUMNS,
    ROW,
    BatchFilter,
    DeviationFilter,
    Group,
    Projected,
    QCPointFilter,
    Span,
    asked_columns,
    id_column,
    ledgered_through_sql,
    lineage_query,
    lineage_values,
    logged_columns,
    logged_rows_sql,
    lot_use_values,
    part_mark_sql,
    qc_point_values,
    query_values,
    register_columns,
    register_field,
    register_of,
    register_values,
    span_sql,
    stream_where,
)

SCHEMA_VERSION = 10  # 2: sessions, login_failures, a database id; 3: qc_points;
# 4: payloads kept as their canonical JSON (see _canonical_payloads); 5: batch and
# deviation ids indexed lower-cased (ids_near); 6: qc_points.route (a baseline per
# protocol x route x cell source; rebuilding the projections fills it for older batches)
# 7: lineage_edges (the material graph; written by each derivation, filled by a rebuild)
# 8: payloads packed (store/packing.py); older rows stay text and read as they are, and a
# program before 8 must not read a packed one as JSON (it refuses a newer schema)
# 9: lots and instruments (registered by id: a step naming one reads its row, not the
# whole stream) and lot_uses (where each lot was used: a recall reads them by lot); whole
# in a new file, filled by a rebuild in an upgraded one (meta lots_indexed,
# instruments_indexed, uses_indexed)
# 10: materials (every lineage material as its events leave it, read by lot: a write to
# "@materials" decides from the rows it names, not the whole stream; meta
# materials_indexed)
# a new file (or one with nothing registered yet) has everything in its registers: none
_REGISTERS_WHOLE_IF_EMPTY = [
    f"INSERT OR IGNORE INTO meta (key, value) SELECT '{table}_indexed', '1' "
    f"WHERE NOT EXISTS (SELECT 1 FROM events WHERE batch_id = '{stream}')"
    for table, stream in (
        ("lots", "@materials"),
        ("instruments", "@equipment"),
        ("materials", "@materials"),
    )
]
_USES_WHOLE_IF_NO_BATCH = (
    "INSERT OR IGNORE INTO meta (key, value) SELECT 'uses_indexed', '1' "
    "WHERE NOT EXISTS (SELECT 1 FROM batches)"
)
_CANONICAL_PAYLOADS = 4
_QC_ROUTE = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    performed_at TEXT,
    reason TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: write a correction instead'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: they cannot be deleted'); END;
CREATE TABLE IF NOT EXISTS heads (
    batch_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    protocol_id TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    protocol_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    started_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    open_deviations INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deviations (
    deviation_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    step TEXT NOT NULL,
    parameter TEXT,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deviations_batch ON deviations (batch_id);
CREATE INDEX IF NOT EXISTS batches_id_key ON batches (lower(batch_id));
CREATE INDEX IF NOT EXISTS deviations_id_key ON deviations (lower(deviation_id));
CREATE TABLE IF NOT EXISTS qc_points (
    batch_id TEXT NOT NULL,
    step TEXT NOT NULL,
    name TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    position INTEGER NOT NULL,
    analyte TEXT NOT NULL,
    label TEXT NOT NULL,
    method TEXT,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    preconditioning TEXT NOT NULL,
    name_key TEXT NOT NULL,
    reference_key TEXT NOT NULL,
    label_key TEXT NOT NULL,
    route TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, step, name)
);
CREATE INDEX IF NOT EXISTS qc_points_history
    ON qc_points (protocol_id, name, state, started_at, batch_id, position);
CREATE INDEX IF NOT EXISTS qc_points_name_key ON qc_points (name_key, started_at);
CREATE INDEX IF NOT EXISTS qc_points_reference_key ON qc_points (reference_key, started_at);
CREATE INDEX IF NOT EXISTS qc_points_label_key ON qc_points (label_key, started_at);
CREATE INDEX IF NOT EXISTS qc_points_state ON qc_points (state, started_at);
CREATE INDEX IF NOT EXISTS qc_points_baseline
    ON qc_points (protocol_id, name, route, source, state, started_at, batch_id, position);
CREATE TABLE IF NOT EXISTS lot_uses (
    batch_id TEXT NOT NULL,
    step TEXT NOT NULL,
    lot TEXT NOT NULL,
    material TEXT,
    used_at TEXT NOT NULL,
    used_by TEXT NOT NULL,
    PRIMARY KEY (batch_id, step, lot)
);
CREATE INDEX IF NOT EXISTS lot_uses_lot ON lot_uses (lower(lot), used_at);
CREATE TABLE IF NOT EXISTS lots (lot TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS lots_id_key ON lots (lower(lot));
CREATE TABLE IF NOT EXISTS instruments (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS instruments_id_key ON instruments (lower(id));
CREATE TABLE IF NOT EXISTS materials (lot TEXT PRIMARY KEY, batch_id TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS materials_id_key ON materials (lower(lot));
CREATE INDEX IF NOT EXISTS materials_batch ON materials (batch_id);
CREATE TABLE IF NOT EXISTS lineage_edges (
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    seq INTEGER NOT NULL,
    drawn TEXT,
    unit TEXT,
    PRIMARY KEY (parent, child)
);
CREATE INDEX IF NOT EXISTS lineage_edges_child ON lineage_edges (child);
CREATE TABLE IF NOT EXISTS ledger (
    pos INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_hash TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (batch_id, seq)
);
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    wrapped_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
"""


# A payload is read as bytes whatever it is stored as (CAST is free: the same bytes): a
# packed one is a BLOB, an older one text, and text someone mangled in place (replace() on
# a packed payload) is not UTF-8, which sqlite3 would refuse to read at all. unpack() tells
# them apart, so verification names such an event instead of failing on the whole file.
_PAYLOAD = "CAST(e.payload AS BLOB) AS payload"
_EVENT_COLUMNS = (
    "batch_id, seq, type, actor, recorded_at, performed_at, reason, "
    "CAST(payload AS BLOB) AS payload, prev_hash, hash"
)
_LOGGED_EVENTS_SQL = LOGGED_EVENTS_SQL.replace("e.payload", _PAYLOAD)


def _payload(row: sqlite3.Row) -> Any:
    """The payload of an event row, unpacked and parsed; CorruptLog naming the event when it
    is neither a packing this program knows nor JSON (a row written behind its back)."""
    try:
        return json.loads(unpack(row["payload"]))
    except ValueError as err:  # Unreadable, or JSON that does not parse
        raise CorruptLog(
            f"the payload of {row['batch_id']} event {row['seq']} cannot be read ({err}); "
            "run an audit verify and restore the database from a backup"
        ) from None


def _row_to_event(row: sqlite3.Row) -> Event:
    return Event(
        batch_id=row["batch_id"],
        seq=row["seq"],
        type=row["type"],
        actor=row["actor"],
        recorded_at=row["recorded_at"],
        performed_at=row["performed_at"],
        reason=row["reason"],
        payload=_payload(row),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _stored(row: Sequence[Any]) -> StoredEvent:
    """An event row as stored, its payload unpacked to the text its hash covers. A payload
    that does not unpack is given as text no hash can match, so verification names it."""
    try:
        text = unpack(row[7])
    except Unreadable as err:
        text = json.dumps({"unreadable payload": str(err)})
    batch_id, seq, kind, actor, recorded_at, performed_at, reason = row[:7]
    return StoredEvent(
        batch_id, seq, kind, actor, recorded_at, performed_at, reason, text, row[8], row[9]
    )


def _row_to_entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        pos=row["pos"],
        stream=row["batch_id"],
        seq=row["seq"],
        event_hash=row["event_hash"],
        prev=row["prev"],
        hash=row["hash"],
    )


def _key_use(row: sqlite3.Row | None) -> KeyUse | None:
    return KeyUse(row[0], row[1], row[2]) if row else None


# SQLite's primary result codes that a person can act on (Python 3.11+ gives the code;
# before that only the message, which says the same in SQLite's fixed English).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
_MESSAGES = {
    _BUSY: "database is locked",
    _LOCKED: "database table is locked",
    _READONLY: "readonly database",
    _IOERR: "disk I/O error",
    _CORRUPT: "database disk image is malformed",
    _FULL: "database or disk is full",
    _NOTADB: "file is not a database",
}


def _code(err: BaseException) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # an extended code's low byte is its primary code
    text = str(err)
    return next((c for c, message in _MESSAGES.items() if message in text), None)


def _store_error(path: Path, err: BaseException, doing: str) -> StoreError:
    """A database error as one sentence naming the file and what to do next.

    ``doing`` is "open", "read" or "write"; a write says nothing was written (the
    transaction was rolled back, so the log and the heads are as they were).
    """
    code = _code(err)
    after = "; nothing was written" if doing == "write" else ""
    if code in (_BUSY, _LOCKED):
        return ConcurrencyError(
            f"the database {path} is busy ({err}){after}. Try again in a moment.",
            hint=Hint("try_again"),
        )
    if code == _FULL:
        return StoreError(
            f"the disk or the database {path} is full{after or '; nothing can be written'}, "
            "and what was recorded before is unchanged. Free some space and try again."
        )
    if code == _READONLY:
        return StoreError(
            f"database {path} is read-only{after or '; nothing can be written to it'}. "
            "It can still be read; to record, use a writable database (or have this file "
            "made writable)."
        )
    # ValueError: a stored text that is not UTF-8 or not JSON; SQLite's own "Could not
    # decode to UTF-8" is an OperationalError without a code of its own
    if code in (_CORRUPT, _NOTADB) or isinstance(err, ValueError) or "decode" in str(err):
        what = str(err) if code in (_CORRUPT, _NOTADB) else "a stored text cannot be read"
        return StoreError(
            f"database file {path} is damaged ({what}){after}. Stop using it and restore "
            "from backup (the last good copy of the file)."
        )
    if code in (_IOERR, _CANTOPEN):
        return StoreError(f"cannot {doing} database {path}: {err} (a disk or file error){after}")
    return StoreError(f"cannot {doing} database {path}: {err}{after}")


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _says(doing: str) -> Callable[[_Method], _Method]:
    """A store method that meets a full disk, a read-only or damaged file or a busy
    database says so as a StoreError naming the file, never a traceback (a garbled page
    shows only when a query reaches it). ``doing``: "read" or "write"."""

    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def wrapper(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
                raise  # a closed store or a wrong call: a bug, not the file
            except (sqlite3.DatabaseError, json.JSONDecodeError, UnicodeDecodeError) as err:
                raise _store_error(self.path, err, doing) from None

        return cast(_Method, wrapper)

    return decorate


def _marked_read_only(path: str) -> bool:
    """An existing file this user may not write, or whose mode gives no one write access:
    such a file (an archived database) is opened read-only, even by an administrator, for
    whom the system would not enforce the mode."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not mode & 0o222 or not os.access(path, os.W_OK)


class _SQLiteUnit:
    """One BEGIN IMMEDIATE transaction: the neutral ``Appender`` says what, this writes it."""

    def __init__(self, conn: sqlite3.Connection, chain: Appender) -> None:
        self.conn = conn
        self.chain = chain
        self.tail: LedgerEntry | None = None  # the ledger's last entry, once read in the lock
        self.tail_read = False

    def _ledger_tail(self) -> LedgerEntry | None:
        """The ledger's last entry: read once per unit (the lock is held, so nobody else
        appends), then kept as this unit's own entries extend it."""
        if not self.tail_read:
            row = self.conn.execute("SELECT * FROM ledger ORDER BY pos DESC LIMIT 1").fetchone()
            self.tail, self.tail_read = (_row_to_entry(row) if row else None), True
        return self.tail

    def append(self, events: list[NewEvent], recorded_at: str) -> list[Event]:
        placed = self.chain.seal(events, recorded_at)
        if not placed:
            return []
        sealed = [s.event for s in placed]
        self.conn.executemany(
            "INSERT INTO events (batch_id, seq, type, actor, recorded_at, performed_at, "
            "reason, payload, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.batch_id,
                    e.seq,
                    e.type,
                    e.actor,
                    e.recorded_at,
                    e.performed_at,
                    e.reason,
                    pack(text),  # the bytes hashed, packed losslessly
                    e.prev_hash,
                    e.hash,
                )
                for e, text in placed
            ],
        )
        entries = ledger_entries(self._ledger_tail(), sealed)
        self.conn.executemany(
            "INSERT INTO ledger (pos, batch_id, seq, event_hash, prev, hash) VALUES (?,?,?,?,?,?)",
            [(x.pos, x.stream, x.seq, x.event_hash, x.prev, x.hash) for x in entries],
        )
        self.tail = entries[-1]
        head = self.chain.head
        self.conn.execute(
            "INSERT INTO heads (batch_id, seq, hash) VALUES (?,?,?) "
            "ON CONFLICT(batch_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (self.chain.stream, head.seq, head.hash),
        )
        return sealed

    def next_number(self, counter: str) -> int:
        row = self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            (counter,),
        ).fetchone()
        return int(row[0])

    def raise_counter(self, counter: str, value: int) -> None:
        self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
            (counter, value),
        )

    def put_batch(self, row: dict[str, Any]) -> None:
        _put_batch(self.conn, row)

    def put_deviation(self, row: dict[str, Any]) -> None:
        _put_deviation(self.conn, row)

    def put_qc_points(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM qc_points WHERE batch_id = ?", (batch_id,))
        _put_qc_points(self.conn, batch_id, rows)

    def put_lineage_edges(self, rows: list[dict[str, Any]]) -> None:
        _put_lineage_edges(self.conn, rows)

    def put_registered(self, kind: str, row: dict[str, Any]) -> None:
        _put_registered(self.conn, kind, row)

    def put_lot_uses(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM lot_uses WHERE batch_id = ?", (batch_id,))
        _put_lot_uses(self.conn, batch_id, rows)

    def seen_key(self, key: str) -> KeyUse | None:
        return _key_use(
            self.conn.execute(
                "SELECT batch_id, first_seq, last_seq FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
        )

    def remember_key(self, key: str, first_seq: int, last_seq: int) -> None:
        use = self.chain.key_use(key, first_seq, last_seq)
        try:
            self.conn.execute(
                "INSERT INTO idempotency (key, batch_id, first_seq, last_seq) VALUES (?,?,?,?)",
                (key, use.stream, use.first_seq, use.last_seq),
            )
        except sqlite3.IntegrityError:
            raise key_taken(key) from None


def _where(sql: str, where: BatchFilter | DeviationFilter) -> tuple[str, list[Any]]:
    """SQL with WHERE's conditions added, and their arguments."""
    conditions, args = where.conditions("?")
    return (f"{sql} WHERE {' AND '.join(conditions)}" if conditions else sql), args


def _selected(columns: tuple[str, ...]) -> str:
    """The select list of COLUMNS (checked by ``asked_columns``): a kept column by its
    name, a field of the stored row read from it, ``ROW`` the stored row itself."""
    return ", ".join(
        "json(data)"
        if c == ROW
        else c
        if c in BATCH_COLUMNS or c in DEVIATION_COLUMNS
        else f"json_extract(data, '$.{c}')"
        for c in columns
    )


def _put_batch(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    values = query_values(row, BATCH_COLUMNS, "batch")
    conn.execute(
        f"INSERT OR REPLACE INTO batches ({', '.join(BATCH_COLUMNS)}, data) "
        f"VALUES ({', '.join('?' * (len(BATCH_COLUMNS) + 1))})",
        (*values, json.dumps(row, ensure_ascii=False, sort_keys=True, default=str)),
    )


def _put_deviation(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    values = query_values(row, DEVIATION_COLUMNS, "deviation", optional=("parameter",))
    conn.execute(
        f"INSERT OR REPLACE INTO deviations ({', '.join(DEVIATION_COLUMNS)}, data) "
        f"VALUES ({', '.join('?' * (len(DEVIATION_COLUMNS) + 1))})",
        (*values, json.dumps(row, ensure_ascii=False, sort_keys=True, default=str)),
    )


def _put_lot_uses(conn: sqlite3.Connection, batch_id: str, rows: list[dict[str, Any]]) -> None:
    _insert_rows(
        conn, "lot_uses", LOT_USE_COLUMNS, lot_use_values(batch_id, rows),
        f"a lot use of batch {batch_id} (a step and lot) is given twice, or lacks a value",
    )  # fmt: skip


def _insert_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    values: list[tuple[Any, ...]],
    refused: str,
) -> None:
    """VALUES inserted into TABLE's COLUMNS (a batch's rows of a query table); a row given
    twice or lacking a value is REFUSED, said with "nothing was written"."""
    if not values:  # most writes: a batch with none of these rows yet
        return
    try:
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            values,
        )
    except sqlite3.IntegrityError:
        raise StoreError(f"{refused}; nothing was written") from None


def _put_registered(conn: sqlite3.Connection, kind: str, row: dict[str, Any]) -> None:
    table, key = register_of(kind)
    columns = register_columns(kind)
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT({key}) DO UPDATE SET {changed}",
        register_values(kind, row),
    )


def _put_lineage_edges(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(
        f"INSERT INTO lineage_edges ({', '.join(LINEAGE_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
        lineage_values(rows),
    )


def _put_qc_points(conn: sqlite3.Connection, batch_id: str, rows: list[dict[str, Any]]) -> None:
    _insert_rows(
        conn, "qc_points", QC_POINT_COLUMNS, qc_point_values(batch_id, rows),
        f"a QC point of batch {batch_id} (a step and analyte) is given twice, or a required "
        "field is empty",
    )  # fmt: skip


class SQLiteStore:
    """The ``EventStore`` on one SQLite file, created (with its folder's permission) on
    first use. One connection per store; open one store per process or thread."""

    def __init__(self, path: Path | str, *, timeout: float = 10.0, create: bool = False):
        # the file as given, checked with os.path: pathlib (with the urllib and ipaddress
        # modules it imports) is loaded only to name the file in a message
        self.file = os.fspath(path)
        self.create = create
        self.timeout = timeout
        if not create and not os.path.exists(self.file):
            raise StoreError(
                f"no database at {self.path}; nothing was created",
                hint=Hint("init_database", path=str(self.path)),
            )
        if os.path.isdir(self.file):
            raise StoreError(
                f"database path {self.path} is a folder; "
                f"give a file name, e.g. {self.path}/cmprep.db"
            )
        if not os.path.isdir(os.path.dirname(self.file) or "."):
            raise StoreError(
                f"cannot create database {self.path}: folder {self.path.parent} does not exist"
            )
        self.read_only = _marked_read_only(self.file)
        target = self.path.resolve().as_uri() + "?mode=ro" if self.read_only else self.file
        try:
            self.conn = sqlite3.connect(
                target, timeout=timeout, isolation_level=None, uri=self.read_only
            )
            self.conn.row_factory = sqlite3.Row
            if self.conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                self._refuse_foreign()  # before WAL, which would rewrite the file's header
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise _store_error(self.path, err, "open") from None

    @property
    def path(self) -> Path:
        """The database file, as a path (messages and callers that want one)."""
        from pathlib import Path

        return Path(self.file)

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} was written by a newer cmprep (schema {version})",
                hint=Hint("upgrade"),
            )
        from secrets import token_hex  # a new or upgraded file only: not at every start

        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if 0 < version < _CANONICAL_PAYLOADS:
                self._canonical_payloads()
            if 3 <= version < _QC_ROUTE and "route" not in self._columns("qc_points"):
                # qc_points exists, without its route column (checked, not assumed: a file
                # marked older than its tables must not fail on a column it already has)
                self.conn.execute("ALTER TABLE qc_points ADD COLUMN route TEXT NOT NULL DEFAULT ''")
            for statement in _split(_SCHEMA):
                self.conn.execute(statement)
            self.conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('database_id', ?)",
                (token_hex(16),),
            )
            for statement in _REGISTERS_WHOLE_IF_EMPTY:
                self.conn.execute(statement)
            self.conn.execute(_USES_WHOLE_IF_NO_BATCH)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}

    def _canonical_payloads(self) -> None:
        """Rewrite each stored payload as its canonical JSON, once, when upgrading.

        Why: verification hashes the stored payload text as it is (``StoredEvent.body``);
        before schema 4 it was kept with spaces after ':' and ',', so each event had to be
        parsed and written out again. Only the spelling changes: the parsed content is the
        same, so every hash still holds, and an event already changed stays caught. A
        payload that is not JSON is left as it is, for verification to report. Runs inside
        the migration's transaction, with the no-update rule lifted only there (the schema
        statements that follow put it back).
        """
        self.conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        after: tuple[str, int] = ("", 0)
        while rows := self.conn.execute(
            "SELECT batch_id, seq, payload FROM events WHERE batch_id > ? "
            "OR (batch_id = ? AND seq > ?) ORDER BY batch_id, seq LIMIT 1000",
            (after[0], after[0], after[1]),
        ).fetchall():
            changed = []
            for stream, seq, text in rows:
                try:
                    canonical = canonical_json(json.loads(text))
                except (TypeError, ValueError):
                    continue
                if canonical != text:
                    changed.append((canonical, stream, seq))
            self.conn.executemany(
                "UPDATE events SET payload = ? WHERE batch_id = ? AND seq = ?", changed
            )
            after = (rows[-1][0], rows[-1][1])

    def _refuse_foreign(self) -> None:
        """A file that is not (yet) a cmprep database is never altered: one with tables of
        its own belongs to something else; an empty one is made a database only by init."""
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not a cmprep one; it was not changed"
            )
        if not self.create:
            raise StoreError(
                f"{self.path} is empty, not a cmprep database; nothing was created",
                hint=Hint("init_database", path=str(self.path)),
            )

    # --- sign-in state -------------------------------------------------------------------
    @_says("read")
    def database_id(self) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()
        return str(row[0])

    @_says("write")
    def open_session(self, row: SessionRow) -> None:
        self.conn.execute(
            "INSERT INTO sessions (token_hash, user, opened_at, last_seen, wrapped_key) "
            "VALUES (?,?,?,?,?)",
            (row.token_hash, row.user, row.opened_at, row.last_seen, row.wrapped_key),
        )

    @_says("read")
    def session(self, token_hash: str) -> SessionRow | None:
        row = self.conn.execute(
            "SELECT token_hash, user, opened_at, last_seen, wrapped_key FROM sessions "
            "WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        return SessionRow(*row) if row else None

    @_says("write")
    def touch_session(self, token_hash: str, last_seen: str) -> None:
        self.conn.execute(
            "UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (last_seen, token_hash)
        )

    @_says("write")
    def close_sessions(self, *, token_hash: str | None = None, user: str | None = None) -> int:
        if token_hash is not None:
            cur = self.conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
        else:
            cur = self.conn.execute("DELETE FROM sessions WHERE user = ?", (user,))
        return cur.rowcount

    @_says("write")
    def count_failure(self, name: str) -> int:
        row = self.conn.execute(
            "INSERT INTO login_failures (name, count) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET count = count + 1 RETURNING count",
            (name.casefold(),),
        ).fetchone()
        return int(row[0])

    @_says("write")
    def clear_failures(self, name: str) -> None:
        self.conn.execute("DELETE FROM login_failures WHERE name = ?", (name.casefold(),))

    # --- reading ------------------------------------------------------------------------
    @_says("read")
    def events(self, stream: str) -> list[Event]:
        rows = self.conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE batch_id = ? ORDER BY seq", (stream,)
        ).fetchall()
        return [_row_to_event(r) for r in rows]

    @_says("read")
    def head(self, stream: str) -> Head | None:
        row = self.conn.execute(
            "SELECT seq, hash FROM events WHERE batch_id = ? ORDER BY seq DESC LIMIT 1", (stream,)
        ).fetchone()
        return Head(row[0], row[1]) if row else None

    @_says("read")
    def recorded_heads(self) -> dict[str, Head]:
        return {
            r[0]: Head(r[1], r[2])
            for r in self.conn.execute("SELECT batch_id, seq, hash FROM heads ORDER BY batch_id")
        }

    @_says("read")
    def stream_ids(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT batch_id FROM heads UNION SELECT DISTINCT batch_id FROM events ORDER BY 1"
        )
        return [r[0] for r in rows]

    def batch_ids(self) -> list[str]:
        return [s for s in self.stream_ids() if not is_system(s)]

    @_says("read")
    def ids_near(self, kind: str, text: str, limit: int) -> list[str]:
        table, column = id_column(kind)
        low, found = text.lower(), []
        for compare, order in ((">=", "ASC"), ("<", "DESC")):
            found += [
                r[0]
                for r in self.conn.execute(
                    f"SELECT {column} FROM {table} WHERE lower({column}) {compare} ? "
                    f"ORDER BY lower({column}) {order} LIMIT ?",
                    (low, limit),
                )
            ]
        return found

    @_says("read")
    def batch_rows(self, where: BatchFilter | None = None) -> list[dict[str, Any]]:
        sql, args = _where("SELECT data FROM batches", where or BatchFilter())
        sql += " ORDER BY started_at, batch_id"
        return [json.loads(r[0]) for r in self.conn.execute(sql, args)]

    @_says("read")
    def deviation_rows(self, where: DeviationFilter | None = None) -> list[dict[str, Any]]:
        sql, args = _where("SELECT data FROM deviations", where or DeviationFilter())
        sql += " ORDER BY deviation_id"
        return [json.loads(r[0]) for r in self.conn.execute(sql, args)]

    # --- lists and counts: only the columns asked for, rows read as they are printed ------
    @_says("read")
    def batch_table(
        self, where: BatchFilter | None, columns: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        asked_columns(columns, BATCH_COLUMNS, (), "batch")
        sql, args = _where(f"SELECT {_selected(columns)} FROM batches", where or BatchFilter())
        return self._stream(sql + " ORDER BY started_at, batch_id", args)

    @_says("read")
    def deviation_table(
        self, where: DeviationFilter | None, columns: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        asked_columns(columns, DEVIATION_COLUMNS, DEVIATION_FIELDS, "deviation")
        sql, args = _where(
            f"SELECT {_selected(columns)} FROM deviations", where or DeviationFilter()
        )
        return self._stream(sql + " ORDER BY deviation_id", args)

    @_says("read")
    def batch_count(self, where: BatchFilter | None = None) -> int:
        sql, args = _where("SELECT count(*) FROM batches", where or BatchFilter())
        return int(self.conn.execute(sql, args).fetchone()[0])

    @_says("read")
    def deviation_counts(
        self, columns: tuple[str, ...], where: DeviationFilter | None = None
    ) -> list[Group]:
        asked_columns(columns, DEVIATION_COLUMNS, DEVIATION_FIELDS, "deviation")
        if ROW in columns:
            raise StoreError("deviations cannot be counted by their whole row")
        keys = ", ".join(str(n) for n in range(1, len(columns) + 1))
        sql, args = _where(
            f"SELECT {_selected(columns)}, count(*), min(deviation_id) FROM deviations",
            where or DeviationFilter(),
        )
        rows = self.conn.execute(f"{sql} GROUP BY {keys} ORDER BY {keys}", args).fetchall()
        return [(tuple(r[: len(columns)]), int(r[-2]), str(r[-1])) for r in rows]

    def _stream(self, sql: str, args: list[Any]) -> Iterator[tuple[Any, ...]]:
        """The rows of SQL as plain tuples, fetched as the caller iterates; a database
        error met on the way is said as at any read."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        cursor.execute(sql, args)
        return self._rows_of(cursor)

    def _rows_of(self, cursor: sqlite3.Cursor) -> Iterator[tuple[Any, ...]]:
        try:
            for row in cursor:  # noqa: UP028 (yield from would close a dead cursor on exit)
                yield row
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as err:
            raise _store_error(self.path, err, "read") from None
        finally:
            with suppress(sqlite3.ProgrammingError):  # left unread until the store was closed
                cursor.close()

    @_says("read")
    def qc_points(self, where: QCPointFilter) -> list[dict[str, Any]]:
        sql, args = where.query("?")
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: zipped with the names, a third of the time
        rows = [dict(zip(QC_POINT_COLUMNS, r, strict=True)) for r in cursor.execute(sql, args)]
        if where.last is not None:
            rows.reverse()
        return rows

    @_says("read")
    def ledger(self) -> list[LedgerEntry]:
        return [_row_to_entry(r) for r in self.conn.execute("SELECT * FROM ledger ORDER BY pos")]

    # --- verification, read as a stream -------------------------------------------------
    # Each runs its query when called (a damaged file is said then) and fetches as the
    # caller iterates (a page damaged further on is said when reached).
    @_says("read")
    def iter_events(
        self, stream: str | None = None, span: Span | None = None
    ) -> Iterator[tuple[StoredEvent, Head | None]]:
        where, args = stream_where("e.batch_id", stream, span, "?")
        rows = self._stream(
            "SELECT e.batch_id, e.seq, e.type, e.actor, e.recorded_at, e.performed_at, "
            f"e.reason, {_PAYLOAD}, e.prev_hash, e.hash, h.seq, h.hash FROM events e "
            f"LEFT JOIN heads h ON h.batch_id = e.batch_id {where}ORDER BY e.batch_id, e.seq",
            args,
        )
        head = Head
        return ((_stored(r), None if r[10] is None else head(r[10], r[11])) for r in rows)

    @_says("read")
    def iter_logged(self) -> Iterator[StoredEvent]:
        return (_stored(r) for r in self._stream(_LOGGED_EVENTS_SQL, []))

    @_says("read")
    def emptied_streams(self, stream: str | None = None) -> list[tuple[str, Head]]:
        where, args = ("AND h.batch_id = ? ", [stream]) if stream is not None else ("", [])
        rows = self.conn.execute(
            "SELECT h.batch_id, h.seq, h.hash FROM heads h WHERE NOT EXISTS "
            f"(SELECT 1 FROM events e WHERE e.batch_id = h.batch_id) {where}ORDER BY h.batch_id",
            args,
        )
        return [(r[0], Head(r[1], r[2])) for r in rows]

    @_says("read")
    def iter_ledger(self, stream: str | None = None) -> Iterator[tuple[LedgerEntry, str | None]]:
        where, args = ("WHERE l.batch_id = ? ", [stream]) if stream is not None else ("", [])
        rows = self._stream(
            "SELECT l.pos, l.batch_id, l.seq, l.event_hash, l.prev, l.hash, e.hash "
            "FROM ledger l LEFT JOIN events e ON e.batch_id = l.batch_id AND e.seq = l.seq "
            f"{where}ORDER BY l.pos",
            args,
        )
        return ((LedgerEntry(*r[:6]), r[6]) for r in rows)

    @_says("read")
    def unledgered(self, stream: str | None = None) -> Iterator[tuple[str, int]]:
        where, args = ("AND e.batch_id = ? ", [stream]) if stream is not None else ("", [])
        rows = self._stream(
            "SELECT e.batch_id, e.seq FROM events e WHERE NOT EXISTS (SELECT 1 FROM ledger l "
            f"WHERE l.batch_id = e.batch_id AND l.seq = e.seq) {where}ORDER BY e.batch_id, e.seq",
            args,
        )
        return ((r[0], r[1]) for r in rows)

    @_says("read")
    def iter_logged_rows(
        self, table: str, columns: tuple[str, ...], span: Span | None = None
    ) -> Iterator[tuple[Any, ...]]:
        select = _selected(columns) if logged_columns(table, columns) else ", ".join(columns)
        within, args = span_sql("t.batch_id", span, "?")
        return self._stream(logged_rows_sql(table, select, within), args)

    @_says("read")
    def unlogged_batches(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT t.batch_id FROM (SELECT batch_id FROM batches UNION "
            "SELECT batch_id FROM deviations UNION SELECT batch_id FROM qc_points UNION "
            "SELECT batch_id FROM lot_uses) t "
            "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.batch_id = t.batch_id) ORDER BY 1"
        )
        return [r[0] for r in rows]

    @_says("read")
    def ledger_at(self, pos: int) -> LedgerEntry | None:
        row = self.conn.execute("SELECT * FROM ledger WHERE pos = ?", (pos,)).fetchone()
        return _row_to_entry(row) if row else None

    @_says("read")
    def iter_ledgered_through(
        self, pos: int, span: Span | None = None
    ) -> Iterator[tuple[str, int]]:
        within, args = span_sql("l.batch_id", span, "?")
        return self._stream(ledgered_through_sql("?", within), [pos, *args])

    @_says("read")
    def streams_at(self, places: list[int]) -> list[str | None]:
        found = []
        for place in places:
            row = self.conn.execute(part_mark_sql("?"), (max(place, 0),)).fetchone()
            found.append(None if row is None else str(row[0]))
        return found

    @contextmanager
    def one_moment(self) -> Iterator[None]:
        yield  # each read is its own moment (see the contract)

    def reopened(self) -> SQLiteStore:
        return SQLiteStore(self.file, timeout=self.timeout)

    @_says("read")
    def ledgered_through(self, stream: str, pos: int) -> int:
        row = self.conn.execute(
            "SELECT MAX(seq) FROM ledger WHERE batch_id = ? AND pos <= ?", (stream, pos)
        ).fetchone()
        return int(row[0] or 0)

    @_says("read")
    def ledger_tail(self) -> LedgerEntry | None:
        row = self.conn.execute("SELECT * FROM ledger ORDER BY pos DESC LIMIT 1").fetchone()
        return _row_to_entry(row) if row else None

    @_says("read")
    def missing_protections(self) -> list[str]:
        found = {
            r[0]: _normal_sql(r[1] or "")
            for r in self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        }
        missing = []
        for name, (sql, what) in _protections().items():
            if name not in found:
                missing.append(f"the trigger {name} is missing: {what} is no longer refused")
            elif found[name] != sql:
                missing.append(
                    f"the trigger {name} was replaced by another: {what} may no longer be refused"
                )
        return missing

    @_says("read")
    def counters(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.conn.execute("SELECT name, value FROM counters")}

    @_says("read")
    def keys(self) -> dict[str, KeyUse]:
        rows = self.conn.execute("SELECT key, batch_id, first_seq, last_seq FROM idempotency")
        return {r[0]: KeyUse(r[1], r[2], r[3]) for r in rows}

    @_says("read")
    def key_used(self, key: str) -> KeyUse | None:
        return _key_use(
            self.conn.execute(
                "SELECT batch_id, first_seq, last_seq FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
        )

    # --- writing ------------------------------------------------------------------------
    @contextmanager
    def writing(self, stream: str, expected_seq: int) -> Iterator[_SQLiteUnit]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if _code(err) not in (_BUSY, _LOCKED):
                raise _store_error(self.path, err, "write") from None
            raise ConcurrencyError(
                f"the database is busy ({err}); nothing was written to "
                f"{stream_name(stream)}. Try again in a moment.",
                hint=Hint("try_again") if is_system(stream) else Hint("try_again", batch=stream),
            ) from None
        try:
            row = self.conn.execute(
                "SELECT seq, hash, recorded_at FROM events WHERE batch_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (stream,),
            ).fetchone()
            tip = StreamTip(row[0], row[1], row[2]) if row else StreamTip()
            yield _SQLiteUnit(self.conn, Appender(stream, tip, expected_seq))
            self.conn.execute("COMMIT")
        except BaseException as err:
            self._roll_back()
            if isinstance(err, sqlite3.DatabaseError) and not isinstance(
                err, (sqlite3.ProgrammingError, sqlite3.InterfaceError)
            ):
                raise _store_error(self.path, err, "write") from None
            raise

    def _roll_back(self) -> None:
        """ROLLBACK if a transaction is still open: SQLite has already rolled it back
        itself after some errors (a full disk), and a second ROLLBACK would fail."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextmanager
    def _whole(self) -> Iterator[None]:
        """One write transaction that commits whole or is rolled back, a database error in
        it said as any write's: what replacing a query table needs."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException as err:
            self._roll_back()
            if isinstance(err, sqlite3.OperationalError):
                raise _store_error(self.path, err, "write") from None
            raise

    def replace_projections(self, projected: Iterable[Projected]) -> int:
        written = 0
        with self._whole():
            for table in ("batches", "deviations", "qc_points", "lot_uses"):
                self.conn.execute(f"DELETE FROM {table}")
            for batch, deviations, points, uses in projected:
                _put_batch(self.conn, batch)
                for row in deviations:
                    _put_deviation(self.conn, row)
                _put_qc_points(self.conn, str(batch.get("batch_id")), points)
                _put_lot_uses(self.conn, str(batch.get("batch_id")), list(uses))
                written += 1
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('uses_indexed', '1')"
            )
        return written

    # --- lineage (the material graph) -----------------------------------------------------
    @_says("read")
    def lineage_edges(self, lot: str, direction: str) -> list[dict[str, Any]]:
        sql = lineage_query(direction, "?")
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return [dict(zip(LINEAGE_COLUMNS, r, strict=True)) for r in cursor.execute(sql, (lot,))]

    @_says("read")
    def lot_uses(
        self, *, lot: str | None = None, batch_id: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = ("lower(lot) = lower(?)", (lot,)) if lot is not None else ("1", ())
        if batch_id is not None:
            where, args = f"{where} AND batch_id = ?", (*args, batch_id)
        cursor = self.conn.cursor()
        cursor.row_factory = None
        sql = (
            f"SELECT {', '.join(LOT_USE_COLUMNS)} FROM lot_uses WHERE {where} "
            "ORDER BY used_at, batch_id, step, lot"
        )
        return [dict(zip(LOT_USE_COLUMNS, r, strict=True)) for r in cursor.execute(sql, args)]

    @_says("read")
    def uses_indexed(self) -> bool:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'uses_indexed'").fetchone()
        return row is not None

    @_says("read")
    def registered(self, kind: str, ident: str) -> dict[str, Any] | None:
        table, key = register_of(kind)
        row = self.conn.execute(f"SELECT data FROM {table} WHERE {key} = ?", (ident,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    @_says("read")
    def registered_rows(self, kind: str, *, batch_id: str | None = None) -> list[dict[str, Any]]:
        table, key = register_of(kind)
        if batch_id is None:
            rows = self.conn.execute(f"SELECT data FROM {table} ORDER BY {key}")
        else:
            column = register_field(kind, "batch_id")
            rows = self.conn.execute(
                f"SELECT data FROM {table} WHERE {column} = ? ORDER BY {key}", (batch_id,)
            )
        return [json.loads(r[0]) for r in rows]

    @_says("read")
    def register_whole(self, kind: str) -> bool:
        table, _key = register_of(kind)
        flag = f"{table}_indexed"
        return self.conn.execute("SELECT 1 FROM meta WHERE key = ?", (flag,)).fetchone() is not None

    def replace_registered(self, kind: str, rows: list[dict[str, Any]]) -> None:
        table, _key = register_of(kind)
        with self._whole():
            self.conn.execute(f"DELETE FROM {table}")
            for row in rows:
                _put_registered(self.conn, kind, row)
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (f"{table}_indexed",)
            )

    @_says("read")
    def iter_lineage_edges(self) -> Iterator[dict[str, Any]]:
        columns = ", ".join(LINEAGE_COLUMNS)
        rows = self._stream(f"SELECT {columns} FROM lineage_edges ORDER BY seq, parent, child", [])
        return (dict(zip(LINEAGE_COLUMNS, r, strict=True)) for r in rows)

    def replace_lineage_edges(self, rows: list[dict[str, Any]]) -> None:
        values = lineage_values(rows)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM lineage_edges")
            self.conn.executemany(
                f"INSERT INTO lineage_edges ({', '.join(LINEAGE_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                values,
            )
            self.conn.execute("COMMIT")
        except BaseException as err:
            self._roll_back()
            if isinstance(err, sqlite3.OperationalError):
                raise _store_error(self.path, err, "write") from None
            if isinstance(err, sqlite3.IntegrityError):
                raise StoreError(f"lineage edges not written: {err}") from None
            raise

    def backup_to(self, path: Path) -> None:
        """A consistent copy of the whole file at PATH with SQLite's online backup API:
        page by page, safe while others write. Not part of the contract: SQLite only."""
        target = sqlite3.connect(str(path))
        try:
            self.conn.backup(target)
        except sqlite3.Error as err:
            raise StoreError(f"cannot back up {self.path} to {path}: {err}") from None
        finally:
            target.close()

    def close(self) -> None:
        self.conn.close()


def _normal_sql(sql: str) -> str:
    """A CREATE TRIGGER statement as SQLite keeps it (no IF NOT EXISTS, no final ';'),
    spaces folded, so the schema's text and sqlite_master's compare equal."""
    text = " ".join(sql.replace("IF NOT EXISTS ", "").split())
    return text.removesuffix(";")


def _protections() -> dict[str, tuple[str, str]]:
    """The schema's triggers: name -> (their SQL, normalised; what each refuses)."""
    found = {}
    for statement in _split(_SCHEMA):
        words = statement.split()
        if words[:2] == ["CREATE", "TRIGGER"]:
            name = words[5] if words[2:5] == ["IF", "NOT", "EXISTS"] else words[2]
            op, table = words[words.index("ON") - 1], words[words.index("ON") + 1]
            found[name] = (_normal_sql(statement), f"{op} of the {table} table")
    return found


def _split(script: str) -> list[str]:
    """Statements of the schema script; triggers contain ';' so split on blank lines of SQL."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    return statements
