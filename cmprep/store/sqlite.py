"""The embedded default store: one SQLite file, WAL, synchronous=FULL.

Writes go through `writing()`, which takes the write lock first (BEGIN IMMEDIATE) and
then checks that the batch's last event is still the one the caller decided from. Two
processes recording on one batch therefore never fork its history: the second one gets
ConcurrencyError and is asked to look again. The events table refuses UPDATE and DELETE
by trigger, and each batch's head (last seq and hash) is kept apart from the events so that
deleting the newest event is caught by verification.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cmprep.errors import ClockBehind, ConcurrencyError, Hint, StoreError
from cmprep.events import GENESIS, Event, NewEvent, ledger_hash, seal
from cmprep.store.query import BatchFilter, DeviationFilter

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, data TEXT NOT NULL
);
"""

_BATCH_COLS = (
    "batch_id",
    "protocol_id",
    "protocol_version",
    "protocol_hash",
    "state",
    "started_at",
    "started_by",
    "updated_at",
    "head_seq",
    "open_deviations",
)
_DEV_COLS = (
    "deviation_id",
    "batch_id",
    "protocol_id",
    "step",
    "parameter",
    "severity",
    "status",
    "opened_by",
    "opened_at",
)


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


class _SQLiteUnit:
    def __init__(
        self, conn: sqlite3.Connection, batch_id: str, seq: int, prev_hash: str, last_at: str | None
    ):
        self.conn = conn
        self.batch_id = batch_id
        self.seq = seq
        self.prev_hash = prev_hash
        self.last_at = last_at
        self.written: list[Event] = []

    def seen_key(self, key: str) -> tuple[str, int, int] | None:
        row = self.conn.execute(
            "SELECT batch_id, first_seq, last_seq FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def remember_key(self, key: str, first_seq: int, last_seq: int) -> None:
        self.conn.execute(
            "INSERT INTO idempotency (key, batch_id, first_seq, last_seq) VALUES (?,?,?,?)",
            (key, self.batch_id, first_seq, last_seq),
        )

    def put_user(self, name: str, row: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO users (name, data) VALUES (?, ?)",
            (name, json.dumps(row, ensure_ascii=False, sort_keys=True)),
        )

    def next_number(self, counter: str) -> int:
        row = self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            (counter,),
        ).fetchone()
        return int(row[0])

    def append(self, events: list[NewEvent], recorded_at: str) -> list[Event]:
        if self.last_at is not None and recorded_at < self.last_at:
            raise ClockBehind(
                f"the system clock ({recorded_at}) is earlier than the last entry of "
                f"{self.batch_id} ({self.last_at}); nothing was written. Check the computer's "
                "clock before entering anything else."
            )
        sealed: list[Event] = []
        for new in events:
            self.seq += 1
            ev = seal(self.batch_id, self.seq, self.prev_hash, recorded_at, new)
            self.conn.execute(
                "INSERT INTO events (batch_id, seq, type, actor, recorded_at, performed_at, "
                "reason, payload, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    ev.batch_id,
                    ev.seq,
                    ev.type,
                    ev.actor,
                    ev.recorded_at,
                    ev.performed_at,
                    ev.reason,
                    json.dumps(ev.payload, ensure_ascii=False, sort_keys=True),
                    ev.prev_hash,
                    ev.hash,
                ),
            )
            self.prev_hash = ev.hash
            _ledger_append(self.conn, ev)
            sealed.append(ev)
        if sealed:
            self.conn.execute(
                "INSERT INTO heads (batch_id, seq, hash) VALUES (?,?,?) "
                "ON CONFLICT(batch_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (self.batch_id, self.seq, self.prev_hash),
            )
        self.written.extend(sealed)
        return sealed

    def put_batch(self, row: dict[str, Any]) -> None:
        _put_batch(self.conn, row)

    def put_deviation(self, row: dict[str, Any]) -> None:
        _put_deviation(self.conn, row)


def _ledger_append(conn: sqlite3.Connection, ev: Event) -> None:
    """One global chain over every event of every batch: deleting a batch's newest event
    must then also cut this chain, which verification sees."""
    row = conn.execute("SELECT pos, hash FROM ledger ORDER BY pos DESC LIMIT 1").fetchone()
    pos, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    conn.execute(
        "INSERT INTO ledger (pos, batch_id, seq, event_hash, prev, hash) VALUES (?,?,?,?,?,?)",
        (
            pos,
            ev.batch_id,
            ev.seq,
            ev.hash,
            prev,
            ledger_hash(pos, ev.batch_id, ev.seq, ev.hash, prev),
        ),
    )


def _put_batch(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    values = [row[c] for c in _BATCH_COLS]
    conn.execute(
        f"INSERT OR REPLACE INTO batches ({', '.join(_BATCH_COLS)}, data) "
        f"VALUES ({', '.join('?' * (len(_BATCH_COLS) + 1))})",
        (*values, json.dumps(row, ensure_ascii=False, sort_keys=True, default=str)),
    )


def _put_deviation(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    values = [row.get(c) for c in _DEV_COLS]
    conn.execute(
        f"INSERT OR REPLACE INTO deviations ({', '.join(_DEV_COLS)}, data) "
        f"VALUES ({', '.join('?' * (len(_DEV_COLS) + 1))})",
        (*values, json.dumps(row, ensure_ascii=False, sort_keys=True, default=str)),
    )


class SQLiteStore:
    def __init__(self, path: Path | str, *, timeout: float = 10.0):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(
                f"database path {self.path} is a folder; "
                f"give a file name, e.g. {self.path}/cmprep.db"
            )
        if not self.path.parent.exists():
            raise StoreError(
                f"cannot create database {self.path}: folder {self.path.parent} does not exist"
            )
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot open database {self.path}: {err}") from None

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} was written by a newer cmprep (schema {version}); "
                "upgrade cmprep"
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(_SCHEMA):
                self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # --- reading ------------------------------------------------------------------------
    def events(self, batch_id: str) -> list[Event]:
        rows = self.conn.execute(
            "SELECT * FROM events WHERE batch_id = ? ORDER BY seq", (batch_id,)
        ).fetchall()
        return [_row_to_event(r) for r in rows]

    def iter_all_events(self) -> Iterator[Event]:
        for row in self.conn.execute("SELECT * FROM events ORDER BY batch_id, seq"):
            yield _row_to_event(row)

    def head(self, batch_id: str) -> tuple[int, str] | None:
        row = self.conn.execute(
            "SELECT seq, hash FROM events WHERE batch_id = ? ORDER BY seq DESC LIMIT 1", (batch_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def recorded_heads(self) -> dict[str, tuple[int, str]]:
        return {
            r[0]: (r[1], r[2]) for r in self.conn.execute("SELECT batch_id, seq, hash FROM heads")
        }

    def batch_ids(self) -> list[str]:
        """Batches only: system streams (users, security log) start with '@'."""
        rows = self.conn.execute(
            "SELECT batch_id FROM heads UNION SELECT DISTINCT batch_id FROM events ORDER BY 1"
        )
        return [r[0] for r in rows if not r[0].startswith("@")]

    def stream_ids(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT batch_id FROM heads UNION SELECT DISTINCT batch_id FROM events ORDER BY 1"
        )
        return [r[0] for r in rows]

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

    # --- writing ------------------------------------------------------------------------
    @contextmanager
    def writing(self, batch_id: str, expected_seq: int) -> Iterator[_SQLiteUnit]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise ConcurrencyError(
                f"the database is busy ({err}); nothing was written. Try again in a moment."
            ) from None
        try:
            row = self.conn.execute(
                "SELECT seq, hash, recorded_at FROM events WHERE batch_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (batch_id,),
            ).fetchone()
            seq, prev, last_at = (row[0], row[1], row[2]) if row else (0, GENESIS, None)
            if seq != expected_seq:
                if expected_seq == 0:
                    raise ConcurrencyError(f"batch {batch_id} already exists; choose another id")
                raise ConcurrencyError(
                    f"batch {batch_id} changed while you were entering (someone saved entry "
                    f"{seq} first); nothing was written. Look at the batch again and try again.",
                    hint=Hint("try_again", batch=batch_id),
                )
            unit = _SQLiteUnit(self.conn, batch_id, seq, prev, last_at)
            yield unit
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

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
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def key_used(self, key: str) -> tuple[str, int, int] | None:
        row = self.conn.execute(
            "SELECT batch_id, first_seq, last_seq FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def ledger(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM ledger ORDER BY pos")]

    def users(self) -> dict[str, dict[str, Any]]:
        return {r[0]: json.loads(r[1]) for r in self.conn.execute("SELECT name, data FROM users")}

    def close(self) -> None:
        self.conn.close()


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
