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
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from cmprep.errors import ConcurrencyError, Hint, StoreError
from cmprep.events import Event, LedgerEntry, NewEvent
from cmprep.store.base import SessionRow
from cmprep.store.chain import (
    Appender,
    Head,
    KeyUse,
    StreamTip,
    is_system,
    key_taken,
    ledger_entries,
    stream_name,
)
from cmprep.store.query import (
    BATCH_COLUMNS,
    DEVIATION_COLUMNS,
    BatchFilter,
    DeviationFilter,
    query_values,
)

SCHEMA_VERSION = 2  # 2: sessions, login_failures, a database id

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


def _row_to_event(row: sqlite3.Row) -> Event:
    return Event(
        batch_id=row["batch_id"],
        seq=row["seq"],
        type=row["type"],
        actor=row["actor"],
        recorded_at=row["recorded_at"],
        performed_at=row["performed_at"],
        reason=row["reason"],
        payload=json.loads(row["payload"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
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


def _marked_read_only(path: Path) -> bool:
    """An existing file this user may not write, or whose mode gives no one write access:
    such a file (an archived database) is opened read-only, even by an administrator, for
    whom the system would not enforce the mode."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not mode & 0o222 or not os.access(path, os.W_OK)


class _SQLiteUnit:
    """One BEGIN IMMEDIATE transaction: the neutral ``Appender`` says what, this writes it."""

    def __init__(self, conn: sqlite3.Connection, chain: Appender) -> None:
        self.conn = conn
        self.chain = chain

    def append(self, events: list[NewEvent], recorded_at: str) -> list[Event]:
        sealed = self.chain.seal(events, recorded_at)
        if not sealed:
            return []
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
                    json.dumps(e.payload, ensure_ascii=False, sort_keys=True),
                    e.prev_hash,
                    e.hash,
                )
                for e in sealed
            ],
        )
        tail = self.conn.execute("SELECT * FROM ledger ORDER BY pos DESC LIMIT 1").fetchone()
        self.conn.executemany(
            "INSERT INTO ledger (pos, batch_id, seq, event_hash, prev, hash) VALUES (?,?,?,?,?,?)",
            [
                (x.pos, x.stream, x.seq, x.event_hash, x.prev, x.hash)
                for x in ledger_entries(_row_to_entry(tail) if tail else None, sealed)
            ],
        )
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

    def put_batch(self, row: dict[str, Any]) -> None:
        _put_batch(self.conn, row)

    def put_deviation(self, row: dict[str, Any]) -> None:
        _put_deviation(self.conn, row)

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


class SQLiteStore:
    """The ``EventStore`` on one SQLite file, created (with its folder's permission) on
    first use. One connection per store; open one store per process or thread."""

    def __init__(self, path: Path | str, *, timeout: float = 10.0, create: bool = False):
        self.path = Path(path)
        self.create = create
        if not create and not self.path.exists():
            raise StoreError(
                f"no database at {self.path}; nothing was created",
                hint=Hint("init_database", path=str(self.path)),
            )
        if self.path.is_dir():
            raise StoreError(
                f"database path {self.path} is a folder; "
                f"give a file name, e.g. {self.path}/cmprep.db"
            )
        if not self.path.parent.exists():
            raise StoreError(
                f"cannot create database {self.path}: folder {self.path.parent} does not exist"
            )
        self.read_only = _marked_read_only(self.path)
        target = self.path.resolve().as_uri() + "?mode=ro" if self.read_only else str(self.path)
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

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} was written by a newer cmprep (schema {version})",
                hint=Hint("upgrade"),
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(_SCHEMA):
                self.conn.execute(statement)
            self.conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('database_id', ?)",
                (secrets.token_hex(16),),
            )
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

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
            "SELECT * FROM events WHERE batch_id = ? ORDER BY seq", (stream,)
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
    def batch_rows(self, where: BatchFilter | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT data FROM batches", []
        conditions = []
        for column, value in (where or BatchFilter()).equals().items():
            conditions.append(f"{column} = ?")
            args.append(value)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY started_at, batch_id"
        return [json.loads(r[0]) for r in self.conn.execute(sql, args)]

    @_says("read")
    def deviation_rows(self, where: DeviationFilter | None = None) -> list[dict[str, Any]]:
        where = where or DeviationFilter()
        sql, args = "SELECT data FROM deviations", []
        conditions = []
        for column, value in where.equals().items():
            conditions.append(f"{column} = ?")
            args.append(value)
        if where.since:
            conditions.append("opened_at >= ?")
            args.append(where.since)
        if where.until:
            conditions.append("opened_at < ?")
            args.append(where.until)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY deviation_id"
        return [json.loads(r[0]) for r in self.conn.execute(sql, args)]

    @_says("read")
    def ledger(self) -> list[LedgerEntry]:
        return [_row_to_entry(r) for r in self.conn.execute("SELECT * FROM ledger ORDER BY pos")]

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

    def replace_projections(
        self, batches: list[dict[str, Any]], deviations: list[dict[str, Any]]
    ) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM batches")
            self.conn.execute("DELETE FROM deviations")
            for row in batches:
                _put_batch(self.conn, row)
            for row in deviations:
                _put_deviation(self.conn, row)
            self.conn.execute("COMMIT")
        except BaseException as err:
            self._roll_back()
            if isinstance(err, sqlite3.OperationalError):
                raise _store_error(self.path, err, "write") from None
            raise

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
