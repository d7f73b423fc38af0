"""The lab's server store: the event log on PostgreSQL, behind the same contract as SQLite.

Only SQL lives here; what to write and when to refuse comes from ``cmprep.store.chain``, so
a log written here verifies with SQLite's rules and ``db copy`` moves it either way.

How an append is made safe under READ COMMITTED, with row locks only (no SERIALIZABLE retry
loops, no advisory locks, so PostgreSQL-compatible engines run it too):

- the stream's row in ``heads`` is taken ``FOR UPDATE`` first (created, then locked, for a
  new stream), so two writers on one batch queue there; the second reads the tip the first
  committed and is refused as "changed ... try again";
- the single row of ``ledger_tail`` is then taken ``FOR UPDATE``: every writer continues the
  ledger from the tail the one before it committed, so positions are gapless and in commit
  order, and a reader never sees position N+1 before N;
- events, ledger entries, the tail, the head and the query tables are written in that one
  transaction; a unique violation (someone else's seq or key) becomes the same refusal as a
  moved head.

A trigger refuses UPDATE and DELETE on the events and the ledger; the application role
should be granted neither (docs/deployment.md). Each commit sends ``NOTIFY cmprep_events``
with ``stream:seq``, a wake-up hint for live pages that nothing depends on.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Literal
from psycopg_pool import ConnectionPool, PoolTimeout

from cmprep.errors import ConcurrencyError, Hint, StoreError
from cmprep.events import Event, LedgerEntry, NewEvent, StoredEvent
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

NOTIFY_CHANNEL = "cmprep_events"

# Numbered migrations: each runs once, in order, in one transaction with the version bump.
MIGRATIONS: list[str] = [
    # 1: the log, its heads and ledger, the query tables, sign-in state
    """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
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
CREATE TABLE heads (batch_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE ledger (
    pos BIGINT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_hash TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (batch_id, seq)
);
CREATE TABLE ledger_tail (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    pos BIGINT NOT NULL,
    batch_id TEXT,
    seq INTEGER,
    event_hash TEXT,
    prev TEXT,
    hash TEXT
);
INSERT INTO ledger_tail (one, pos) VALUES (1, 0);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE batches (
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
CREATE TABLE deviations (
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
CREATE INDEX deviations_batch ON deviations (batch_id);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    wrapped_key TEXT NOT NULL
);
CREATE TABLE login_failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE FUNCTION cmprep_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: write a correction instead', TG_TABLE_NAME;
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION cmprep_refuse_change();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION cmprep_refuse_change();
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    FOR EACH ROW EXECUTE FUNCTION cmprep_refuse_change();
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION cmprep_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION cmprep_refuse_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION cmprep_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON events, ledger FROM PUBLIC;
""",
    # 2: the QC-results projection (the lab's history of each analyte)
    """
CREATE TABLE qc_points (
    batch_id TEXT NOT NULL,
    step TEXT NOT NULL,
    name TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    position INTEGER NOT NULL,
    analyte TEXT NOT NULL,
    label TEXT NOT NULL,
    method TEXT,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    preconditioning TEXT NOT NULL,
    name_key TEXT NOT NULL,
    reference_key TEXT NOT NULL,
    label_key TEXT NOT NULL,
    PRIMARY KEY (batch_id, step, name)
);
CREATE INDEX qc_points_history
    ON qc_points (protocol_id, name, state, started_at, batch_id, position);
CREATE INDEX qc_points_name_key ON qc_points (name_key, started_at);
CREATE INDEX qc_points_reference_key ON qc_points (reference_key, started_at);
CREATE INDEX qc_points_label_key ON qc_points (label_key, started_at);
CREATE INDEX qc_points_state ON qc_points (state, started_at);
CREATE INDEX batches_state ON batches (state, started_at);
CREATE INDEX deviations_opened ON deviations (opened_at);
""",
    # 3: batch and deviation ids indexed lower-cased, in byte order as SQLite sorts them
    # (ids_near)
    """
CREATE INDEX batches_id_key ON batches ((lower(batch_id) COLLATE "C"));
CREATE INDEX deviations_id_key ON deviations ((lower(deviation_id) COLLATE "C"));
""",
    # 4: the downstream route of each QC point: a Westgard baseline is per protocol x route
    # x cell source (rebuilding the projections fills the route of older points)
    """
ALTER TABLE qc_points ADD COLUMN route TEXT NOT NULL DEFAULT '';
CREATE INDEX qc_points_baseline
    ON qc_points (protocol_id, name, route, source, state, started_at, batch_id, position);
""",
    # 5: the lineage edges (the material graph), walked by one recursive query
    """
CREATE TABLE lineage_edges (
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    seq INTEGER NOT NULL,
    drawn TEXT,
    unit TEXT,
    PRIMARY KEY (parent, child)
);
CREATE INDEX lineage_edges_child ON lineage_edges (child);
""",
    # 6: registered lots and instruments by id (a step naming one reads its row, not the
    # whole stream) and
    # where each lot was used (a recall reads them by lot); whole in a new database, filled
    # by a rebuild in an upgraded one (meta lots_indexed, uses_indexed)
    """
CREATE TABLE lots (lot TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE INDEX lots_id_key ON lots ((lower(lot) COLLATE "C"));
INSERT INTO meta (key, value) SELECT 'lots_indexed', '1'
    WHERE NOT EXISTS (SELECT 1 FROM events WHERE batch_id = '@materials');
CREATE TABLE instruments (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE INDEX instruments_id_key ON instruments ((lower(id) COLLATE "C"));
INSERT INTO meta (key, value) SELECT 'instruments_indexed', '1'
    WHERE NOT EXISTS (SELECT 1 FROM events WHERE batch_id = '@equipment');
CREATE TABLE lot_uses (
    batch_id TEXT NOT NULL,
    step TEXT NOT NULL,
    lot TEXT NOT NULL,
    material TEXT,
    used_at TEXT NOT NULL,
    used_by TEXT NOT NULL,
    PRIMARY KEY (batch_id, step, lot)
);
CREATE INDEX lot_uses_lot ON lot_uses (lower(lot), used_at);
INSERT INTO meta (key, value) SELECT 'uses_indexed', '1'
    WHERE NOT EXISTS (SELECT 1 FROM batches);
""",
    # 7: every lineage material as its events leave it, read by lot (a write to @materials
    # decides from the rows it names, not the whole stream); whole in a new database,
    # filled by a rebuild in an upgraded one (meta materials_indexed)
    """
CREATE TABLE materials (lot TEXT PRIMARY KEY, batch_id TEXT, data TEXT NOT NULL);
CREATE INDEX materials_id_key ON materials ((lower(lot) COLLATE "C"));
CREATE INDEX materials_batch ON materials (batch_id);
INSERT INTO meta (key, value) SELECT 'materials_indexed', '1'
    WHERE NOT EXISTS (SELECT 1 FROM events WHERE batch_id = '@materials');
""",
]
SCHEMA_VERSION = len(MIGRATIONS)

# trigger name -> what it protects (for ``missing_protections``)
PROTECTIONS = {
    "events_no_update": "changing an event",
    "events_no_delete": "deleting an event",
    "events_no_truncate": "emptying the event table",
    "ledger_no_update": "changing a ledger entry",
    "ledger_no_delete": "deleting a ledger entry",
    "ledger_no_truncate": "emptying the ledger",
}
_PROTECTED_TABLE = {name: name.split("_")[0] for name in PROTECTIONS}


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        batch_id=row[0],
        seq=row[1],
        type=row[2],
        actor=row[3],
        recorded_at=row[4],
        performed_at=row[5],
        reason=row[6],
        payload=json.loads(row[7]),
        prev_hash=row[8],
        hash=row[9],
    )


_EVENT_COLUMNS = (
    "batch_id, seq, type, actor, recorded_at, performed_at, reason, payload, prev_hash, hash"
)


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    return LedgerEntry(
        pos=row[0], stream=row[1], seq=row[2], event_hash=row[3], prev=row[4], hash=row[5]
    )


def _refusal(err: psycopg.Error, stream: str | None, where: str) -> StoreError:
    """A database error as the sentence a person reads; nothing was written."""
    if isinstance(err, pg_errors.ReadOnlySqlTransaction):
        return StoreError(
            f"this server is read-only (standby); nothing was written to {where}. "
            "Write on the primary server"
        )
    if isinstance(err, pg_errors.DiskFull):
        return StoreError(f"the database server's disk is full; nothing was written to {where}")
    return StoreError(f"the database refused the write to {where}: {err}".strip())


class _PostgresUnit:
    """One transaction on one stream, holding the stream's head row lock."""

    def __init__(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        chain: Appender,
        last: LedgerEntry | None,
    ) -> None:
        self.conn = conn
        self.chain = chain
        self.last = last  # the ledger's tail, locked when the unit began

    def append(self, events: list[NewEvent], recorded_at: str) -> list[Event]:
        placed = self.chain.seal(events, recorded_at)
        if not placed:
            return []
        sealed = [s.event for s in placed]
        entries = ledger_entries(self.last, sealed)
        self.last, head = entries[-1], self.chain.head
        # one statement: the events, their ledger entries, the tail, the head, the wake-up
        event_rows = ", ".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(sealed))
        ledger_rows = ", ".join(["(%s,%s,%s,%s,%s,%s)"] * len(entries))
        args: list[Any] = []
        for e, text in placed:
            args += [e.batch_id, e.seq, e.type, e.actor, e.recorded_at, e.performed_at]
            args += [e.reason, text, e.prev_hash, e.hash]
        for x in entries:
            args += [x.pos, x.stream, x.seq, x.event_hash, x.prev, x.hash]
        end = self.last
        args += [end.pos, end.stream, end.seq, end.event_hash, end.prev, end.hash]
        args += [head.seq, head.hash, self.chain.stream]
        args += [NOTIFY_CHANNEL, f"{self.chain.stream}:{head.seq}"]
        self.conn.execute(
            f"WITH e AS (INSERT INTO events ({_EVENT_COLUMNS}) VALUES {event_rows}), "
            f"l AS (INSERT INTO ledger (pos, batch_id, seq, event_hash, prev, hash) "
            f"VALUES {ledger_rows}), "
            "t AS (UPDATE ledger_tail SET pos = %s, batch_id = %s, seq = %s, "
            "event_hash = %s, prev = %s, hash = %s WHERE one = 1), "
            "h AS (UPDATE heads SET seq = %s, hash = %s WHERE batch_id = %s) "
            "SELECT pg_notify(%s, %s)",
            args,
        )
        return sealed

    def next_number(self, counter: str) -> int:
        row = self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (%s, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            (counter,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def raise_counter(self, counter: str, value: int) -> None:
        self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (%s, %s) ON CONFLICT (name) "
            "DO UPDATE SET value = greatest(counters.value, EXCLUDED.value)",
            (counter, value),
        )

    def put_batch(self, row: dict[str, Any]) -> None:
        _put(self.conn, "batches", BATCH_COLUMNS, query_values(row, BATCH_COLUMNS, "batch"), row)

    def put_deviation(self, row: dict[str, Any]) -> None:
        values = query_values(row, DEVIATION_COLUMNS, "deviation", optional=("parameter",))
        _put(self.conn, "deviations", DEVIATION_COLUMNS, values, row)

    def put_qc_points(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM qc_points WHERE batch_id = %s", (batch_id,))
        _put_qc_points(self.conn, batch_id, rows)

    def put_lineage_edges(self, rows: list[dict[str, Any]]) -> None:
        _put_lineage_edges(self.conn, rows)

    def put_registered(self, kind: str, row: dict[str, Any]) -> None:
        _put_registered(self.conn, kind, row)

    def put_lot_uses(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM lot_uses WHERE batch_id = %s", (batch_id,))
        _put_lot_uses(self.conn, batch_id, rows)

    def seen_key(self, key: str) -> KeyUse | None:
        return _key_use(self.conn, key)

    def remember_key(self, key: str, first_seq: int, last_seq: int) -> None:
        use = self.chain.key_use(key, first_seq, last_seq)
        try:
            with self.conn.transaction():  # a savepoint: a taken key must not end the unit
                self.conn.execute(
                    "INSERT INTO idempotency (key, batch_id, first_seq, last_seq) "
                    "VALUES (%s,%s,%s,%s)",
                    (key, use.stream, use.first_seq, use.last_seq),
                )
        except pg_errors.UniqueViolation:
            raise key_taken(key) from None


def _put(
    conn: psycopg.Connection[tuple[Any, ...]],
    table: str,
    columns: tuple[str, ...],
    values: tuple[Any, ...],
    row: dict[str, Any],
) -> None:
    names = ", ".join((*columns, "data"))
    marks = ", ".join(["%s"] * (len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns[1:], "data"))
    conn.execute(
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}",
        (*values, _dumps(row)),
    )


def _put_qc_points(
    conn: psycopg.Connection[tuple[Any, ...]], batch_id: str, rows: list[dict[str, Any]]
) -> None:
    _insert_rows(
        conn, "qc_points", QC_POINT_COLUMNS, qc_point_values(batch_id, rows),
        f"a QC point of batch {batch_id} (a step and analyte) is given twice, or a required "
        "field is empty",
    )  # fmt: skip


def _put_lot_uses(
    conn: psycopg.Connection[tuple[Any, ...]], batch_id: str, rows: list[dict[str, Any]]
) -> None:
    _insert_rows(
        conn, "lot_uses", LOT_USE_COLUMNS, lot_use_values(batch_id, rows),
        f"a lot use of batch {batch_id} (a step and lot) is given twice, or lacks a value",
    )  # fmt: skip


def _insert_rows(
    conn: psycopg.Connection[tuple[Any, ...]],
    table: str,
    columns: tuple[str, ...],
    values: list[tuple[Any, ...]],
    refused: str,
) -> None:
    """VALUES inserted into TABLE's COLUMNS (a batch's rows of a query table), in a
    savepoint so a refused row leaves the unit usable; a row given twice or lacking a
    value is REFUSED, said with "nothing was written"."""
    if not values:
        return
    marks = ", ".join(["%s"] * len(columns))
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
    except (pg_errors.IntegrityError, pg_errors.NotNullViolation):
        raise StoreError(f"{refused}; nothing was written") from None


def _put_registered(
    conn: psycopg.Connection[tuple[Any, ...]], kind: str, row: dict[str, Any]
) -> None:
    table, key = register_of(kind)
    columns = register_columns(kind)
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {changed}",
        register_values(kind, row),
    )


def _put_lineage_edges(
    conn: psycopg.Connection[tuple[Any, ...]], rows: list[dict[str, Any]]
) -> None:
    values = lineage_values(rows)
    if values:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO lineage_edges ({', '.join(LINEAGE_COLUMNS)}) "
                "VALUES (%s, %s, %s, %s, %s)",
                values,
            )


def _where(sql: str, where: BatchFilter | DeviationFilter) -> tuple[str, list[Any]]:
    conditions, args = where.conditions("%s")
    return (f"{sql} WHERE {' AND '.join(conditions)}" if conditions else sql), args


def _selected(columns: tuple[str, ...]) -> str:
    """The select list of COLUMNS (checked by ``asked_columns``): a kept column by name, a
    field of the stored row read from its JSON, ``ROW`` the stored row itself."""
    return ", ".join(
        "data"
        if c == ROW
        else c
        if c in BATCH_COLUMNS or c in DEVIATION_COLUMNS
        else f"(data::jsonb ->> '{c}')"
        for c in columns
    )


def _key_use(conn: psycopg.Connection[tuple[Any, ...]], key: str) -> KeyUse | None:
    row = conn.execute(
        "SELECT batch_id, first_seq, last_seq FROM idempotency WHERE key = %s", (key,)
    ).fetchone()
    return KeyUse(row[0], row[1], row[2]) if row else None


class PostgresStore:
    """The ``EventStore`` on a PostgreSQL database named by a libpq URL or DSN.

    One connection per store (autocommit between units; a unit is one explicit
    transaction). The schema is created only when CREATE is given (``cmprep init``).
    """

    def __init__(
        self, url: str, *, create: bool = False, pool: ConnectionPool[Any] | None = None
    ) -> None:
        self.url = url
        self._pool = pool
        self.snapshot: str | None = None  # in ``one_moment``: what every read imports
        try:
            if pool is not None:  # a server answering many requests: a connection lent
                self.conn: psycopg.Connection[tuple[Any, ...]] = pool.getconn()
            else:
                self.conn = psycopg.connect(url, autocommit=True, row_factory=tuple_row)
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"cannot connect to the database server: {_first_line(err)}") from None
        try:
            self._migrate(create)
        except BaseException:
            self.close()
            raise

    # --- schema ----------------------------------------------------------------------------
    def _version(self) -> int:
        exists = self.conn.execute("SELECT to_regclass('public.schema_version')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self, create: bool) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database was written by a newer cmprep (schema {version})",
                hint=Hint("upgrade"),
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            tables = self.conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            if tables and tables[0]:
                raise StoreError(
                    "this PostgreSQL database has tables but is not a cmprep database; "
                    "it was not changed"
                )
            if not create:
                raise StoreError(
                    "this PostgreSQL database is empty, not a cmprep database; nothing was created",
                    hint=Hint("init_database", path="postgresql://..."),
                )
        try:
            with self.conn.transaction():
                if version == 0:
                    self.conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                    self.conn.execute("INSERT INTO schema_version VALUES (0)")
                for number in range(version, SCHEMA_VERSION):
                    self.conn.execute(MIGRATIONS[number])
                self.conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('database_id', %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (secrets.token_hex(16),),
                )
        except psycopg.Error as err:
            raise _refusal(err, None, "the schema") from None

    # --- reading ---------------------------------------------------------------------------
    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except psycopg.Error as err:
            raise StoreError(f"cannot read the database: {_first_line(err)}") from None

    def events(self, stream: str) -> list[Event]:
        rows = self._all(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE batch_id = %s ORDER BY seq", (stream,)
        )
        return [_event(r) for r in rows]

    def head(self, stream: str) -> Head | None:
        rows = self._all(
            "SELECT seq, hash FROM events WHERE batch_id = %s ORDER BY seq DESC LIMIT 1",
            (stream,),
        )
        return Head(rows[0][0], rows[0][1]) if rows else None

    def recorded_heads(self) -> dict[str, Head]:
        rows = self._all("SELECT batch_id, seq, hash FROM heads WHERE seq > 0 ORDER BY batch_id")
        return {r[0]: Head(r[1], r[2]) for r in rows}

    def stream_ids(self) -> list[str]:
        rows = self._all(
            "SELECT batch_id FROM heads WHERE seq > 0 UNION SELECT DISTINCT batch_id FROM events "
            "ORDER BY 1"
        )
        return [r[0] for r in rows]

    def batch_ids(self) -> list[str]:
        return [s for s in self.stream_ids() if not is_system(s)]

    def ids_near(self, kind: str, text: str, limit: int) -> list[str]:
        table, column = id_column(kind)
        low, found = text.lower(), []
        for compare, order in ((">=", "ASC"), ("<", "DESC")):
            rows = self._all(
                f'SELECT {column} FROM {table} WHERE lower({column}) COLLATE "C" {compare} %s '
                f'ORDER BY lower({column}) COLLATE "C" {order} LIMIT %s',
                (low, limit),
            )
            found += [r[0] for r in rows]
        return found

    def batch_rows(self, where: BatchFilter | None = None) -> list[dict[str, Any]]:
        sql, args = _where("SELECT data FROM batches", where or BatchFilter())
        sql += " ORDER BY started_at, batch_id"
        return [json.loads(r[0]) for r in self._all(sql, tuple(args))]

    def deviation_rows(self, where: DeviationFilter | None = None) -> list[dict[str, Any]]:
        sql, args = _where("SELECT data FROM deviations", where or DeviationFilter())
        sql += " ORDER BY deviation_id"
        return [json.loads(r[0]) for r in self._all(sql, tuple(args))]

    def batch_table(
        self, where: BatchFilter | None, columns: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        asked_columns(columns, BATCH_COLUMNS, (), "batch")
        sql, args = _where(f"SELECT {_selected(columns)} FROM batches", where or BatchFilter())
        keyed = where.batch_id if where else None
        return self._rows(sql + " ORDER BY started_at, batch_id", args, keyed)

    def deviation_table(
        self, where: DeviationFilter | None, columns: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        asked_columns(columns, DEVIATION_COLUMNS, DEVIATION_FIELDS, "deviation")
        sql, args = _where(
            f"SELECT {_selected(columns)} FROM deviations", where or DeviationFilter()
        )
        one = (where.deviation_id or where.batch_id) if where else None
        return self._rows(sql + " ORDER BY deviation_id", args, one)

    def batch_count(self, where: BatchFilter | None = None) -> int:
        sql, args = _where("SELECT count(*) FROM batches", where or BatchFilter())
        return int(self._all(sql, tuple(args))[0][0])

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
        rows = self._all(f"{sql} GROUP BY {keys} ORDER BY {keys}", tuple(args))
        return [(tuple(r[: len(columns)]), int(r[-2]), str(r[-1])) for r in rows]

    def _rows(self, sql: str, args: list[Any], keyed: str | None) -> Iterator[tuple[Any, ...]]:
        """The rows of SQL: streamed (``_stream``) for a list, but one round trip on the
        store's own connection when the filter is KEYED to one batch or deviation, whose
        rows are few: a connection of its own for each (what verification asked for a
        batch at a time) cost more than the read itself."""
        return iter(self._all(sql, tuple(args))) if keyed else self._stream(sql, args)

    def _stream(self, sql: str, args: list[Any] | tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        """The rows of SQL fetched as the caller iterates (a server-side cursor of its
        own connection, so a long list is never held in memory at once)."""
        try:
            conn = psycopg.connect(self.url, autocommit=False, row_factory=tuple_row)
        except psycopg.Error as err:
            raise StoreError(f"cannot read the database: {_first_line(err)}") from None
        if self.snapshot is not None:  # the moment ``one_moment`` holds
            try:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                conn.execute(_import_snapshot(self.snapshot))
            except psycopg.Error as err:
                conn.close()  # not left open behind a read that never began
                raise StoreError(f"cannot read the database: {_first_line(err)}") from None
        return self._rows_of(conn, sql, tuple(args))

    @contextmanager
    def one_moment(self) -> Iterator[None]:
        """One read-only REPEATABLE READ transaction on the store's connection, its snapshot
        exported for every stream's connection (and a reopened store's) to import. Where
        the server cannot export one, each read is its own moment, as on SQLite."""
        if self.snapshot is not None:  # already held: one moment for the whole block
            yield
            return
        try:
            self._begin_moment()
            row = self.conn.execute("SELECT pg_export_snapshot()").fetchone()
        except psycopg.Error:
            self._end_moment()
            yield
            return
        self.snapshot = str(row[0]) if row else None
        try:
            yield
        finally:
            self.snapshot = None
            self._end_moment()

    def _begin_moment(self) -> None:
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # a long verification leaves this connection idle in its transaction
        self.conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")

    def _end_moment(self) -> None:
        with suppress(psycopg.Error):
            self.conn.execute("ROLLBACK")  # read only: nothing to keep

    def _join_moment(self, snapshot: str) -> None:
        """Read, on this store's connection and its streams, at the moment SNAPSHOT holds
        (a store reopened in a process checking a part of the log)."""
        try:
            self._begin_moment()
            self.conn.execute(_import_snapshot(snapshot))
        except psycopg.Error as err:
            self._end_moment()
            raise StoreError(f"cannot read the database: {_first_line(err)}") from None
        self.snapshot = snapshot

    @staticmethod
    def _rows_of(
        conn: psycopg.Connection[tuple[Any, ...]], sql: str, args: tuple[Any, ...]
    ) -> Iterator[tuple[Any, ...]]:
        try:
            with conn, conn.cursor(name="cmprep_stream") as cur:
                cur.itersize = 2000
                cur.execute(sql, args)
                yield from cur
        except psycopg.Error as err:
            raise StoreError(f"cannot read the database: {_first_line(err)}") from None

    def qc_points(self, where: QCPointFilter) -> list[dict[str, Any]]:
        sql, args = where.query("%s")
        rows = [dict(zip(QC_POINT_COLUMNS, r, strict=True)) for r in self._all(sql, tuple(args))]
        if where.last is not None:
            rows.reverse()
        return rows

    # --- verification, read as a stream --------------------------------------------------
    def iter_events(
        self, stream: str | None = None, span: Span | None = None
    ) -> Iterator[tuple[StoredEvent, Head | None]]:
        where, args = stream_where("e.batch_id", stream, span, "%s")
        rows = self._stream(
            "SELECT e.batch_id, e.seq, e.type, e.actor, e.recorded_at, e.performed_at, "
            "e.reason, e.payload, e.prev_hash, e.hash, h.seq, h.hash FROM events e "
            "LEFT JOIN heads h ON h.batch_id = e.batch_id AND h.seq > 0 "
            f"{where}ORDER BY e.batch_id, e.seq",
            args,
        )
        return (
            (StoredEvent._make(r[:10]), None if r[10] is None else Head(r[10], r[11])) for r in rows
        )

    def iter_logged(self) -> Iterator[StoredEvent]:
        return (StoredEvent._make(r) for r in self._stream(LOGGED_EVENTS_SQL, []))

    def emptied_streams(self, stream: str | None = None) -> list[tuple[str, Head]]:
        where, args = ("AND h.batch_id = %s ", (stream,)) if stream is not None else ("", ())
        rows = self._all(
            "SELECT h.batch_id, h.seq, h.hash FROM heads h WHERE h.seq > 0 AND NOT EXISTS "
            f"(SELECT 1 FROM events e WHERE e.batch_id = h.batch_id) {where}ORDER BY h.batch_id",
            args,
        )
        return [(r[0], Head(r[1], r[2])) for r in rows]

    def iter_ledger(self, stream: str | None = None) -> Iterator[tuple[LedgerEntry, str | None]]:
        where, args = ("WHERE l.batch_id = %s ", [stream]) if stream is not None else ("", [])
        rows = self._stream(
            "SELECT l.pos, l.batch_id, l.seq, l.event_hash, l.prev, l.hash, e.hash "
            "FROM ledger l LEFT JOIN events e ON e.batch_id = l.batch_id AND e.seq = l.seq "
            f"{where}ORDER BY l.pos",
            args,
        )
        return ((LedgerEntry(*r[:6]), r[6]) for r in rows)

    def unledgered(self, stream: str | None = None) -> Iterator[tuple[str, int]]:
        where, args = ("AND e.batch_id = %s ", [stream]) if stream is not None else ("", [])
        rows = self._stream(
            "SELECT e.batch_id, e.seq FROM events e WHERE NOT EXISTS (SELECT 1 FROM ledger l "
            f"WHERE l.batch_id = e.batch_id AND l.seq = e.seq) {where}ORDER BY e.batch_id, e.seq",
            args,
        )
        return ((r[0], r[1]) for r in rows)

    def iter_logged_rows(
        self, table: str, columns: tuple[str, ...], span: Span | None = None
    ) -> Iterator[tuple[Any, ...]]:
        select = _selected(columns) if logged_columns(table, columns) else ", ".join(columns)
        within, args = span_sql("t.batch_id", span, "%s")
        return self._stream(logged_rows_sql(table, select, within), args)

    def unlogged_batches(self) -> list[str]:
        rows = self._all(
            "SELECT t.batch_id FROM (SELECT batch_id FROM batches UNION "
            "SELECT batch_id FROM deviations UNION SELECT batch_id FROM qc_points UNION "
            "SELECT batch_id FROM lot_uses) t "
            "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.batch_id = t.batch_id) ORDER BY 1"
        )
        return [r[0] for r in rows]

    def ledger_at(self, pos: int) -> LedgerEntry | None:
        rows = self._all(
            "SELECT pos, batch_id, seq, event_hash, prev, hash FROM ledger WHERE pos = %s", (pos,)
        )
        return _entry(rows[0]) if rows else None

    def iter_ledgered_through(
        self, pos: int, span: Span | None = None
    ) -> Iterator[tuple[str, int]]:
        within, args = span_sql("l.batch_id", span, "%s")
        return self._stream(ledgered_through_sql("%s", within), [pos, *args])

    def streams_at(self, places: list[int]) -> list[str | None]:
        found = []
        for place in places:
            rows = self._all(part_mark_sql("%s"), (max(place, 0),))
            found.append(str(rows[0][0]) if rows else None)
        return found

    def reopened(self) -> PostgresStore:
        store = PostgresStore(self.url)
        if self.snapshot is not None:
            try:
                store._join_moment(self.snapshot)
            except BaseException:
                store.close()
                raise
        return store

    def ledgered_through(self, stream: str, pos: int) -> int:
        rows = self._all(
            "SELECT MAX(seq) FROM ledger WHERE batch_id = %s AND pos <= %s", (stream, pos)
        )
        return int(rows[0][0] or 0)

    def ledger_tail(self) -> LedgerEntry | None:
        rows = self._all(
            "SELECT pos, batch_id, seq, event_hash, prev, hash FROM ledger "
            "ORDER BY pos DESC LIMIT 1"
        )
        return _entry(rows[0]) if rows else None

    def ledger(self) -> list[LedgerEntry]:
        rows = self._all(
            "SELECT pos, batch_id, seq, event_hash, prev, hash FROM ledger ORDER BY pos"
        )
        return [_entry(r) for r in rows]

    def missing_protections(self) -> list[str]:
        rows = self._all(
            "SELECT t.tgname, c.relname, t.tgenabled FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
        )
        found = {name: (table, enabled) for name, table, enabled in rows}
        missing = []
        for name, what in PROTECTIONS.items():
            if name not in found:
                missing.append(f"the trigger {name} is missing: {what} is no longer refused")
            elif found[name][0] != _PROTECTED_TABLE[name] or found[name][1] == "D":
                missing.append(
                    f"the trigger {name} was moved or disabled: {what} may no longer be refused"
                )
        return missing

    def key_used(self, key: str) -> KeyUse | None:
        return _key_use(self.conn, key)

    def counters(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._all("SELECT name, value FROM counters")}

    def keys(self) -> dict[str, KeyUse]:
        rows = self._all("SELECT key, batch_id, first_seq, last_seq FROM idempotency")
        return {r[0]: KeyUse(r[1], r[2], r[3]) for r in rows}

    # --- writing ---------------------------------------------------------------------------
    @contextmanager
    def writing(self, stream: str, expected_seq: int) -> Iterator[_PostgresUnit]:
        where = stream_name(stream)
        try:
            with self.conn.transaction(), self.conn.pipeline():
                # one round trip: the stream's head row (made or found, and locked by the
                # upsert), then its tip and the ledger's tail (locked too: ledger positions
                # follow commit order). The tip cannot move meanwhile: we hold the head.
                self.conn.execute(
                    "INSERT INTO heads (batch_id, seq, hash) VALUES (%s, 0, '') "
                    "ON CONFLICT (batch_id) DO UPDATE SET seq = heads.seq",
                    (stream,),
                )
                cur = self.conn.execute(
                    "SELECT e.seq, e.hash, e.recorded_at, t.pos, t.batch_id, t.seq, "
                    "t.event_hash, t.prev, t.hash FROM ledger_tail t LEFT JOIN LATERAL "
                    "(SELECT seq, hash, recorded_at FROM events WHERE batch_id = %s "
                    "ORDER BY seq DESC LIMIT 1) e ON true WHERE t.one = 1 FOR UPDATE OF t",
                    (stream,),
                )
                both = cur.fetchone()
                assert both is not None  # ledger_tail always has its one row
                row = both[:3] if both[0] is not None else None
                tail = both[3:]
                tip = StreamTip(row[0], row[1], row[2]) if row else StreamTip()
                last = _entry(tail) if tail and tail[0] else None
                unit = _PostgresUnit(self.conn, Appender(stream, tip, expected_seq), last)
                yield unit
                if not unit.chain.written:  # nothing appended: no stream is created
                    self.conn.execute(
                        "DELETE FROM heads WHERE batch_id = %s AND seq = 0", (stream,)
                    )
        except pg_errors.UniqueViolation:
            hint = Hint("try_again") if is_system(stream) else Hint("try_again", batch=stream)
            raise ConcurrencyError(
                f"{where} changed while you were entering (someone saved first); nothing was "
                "written. Look at it again and try again.",
                hint=hint,
            ) from None
        except pg_errors.OperationalError as err:
            if isinstance(err, pg_errors.DiskFull):
                raise _refusal(err, stream, where) from None
            raise StoreError(f"the database server failed: {_first_line(err)}") from None
        except psycopg.Error as err:
            raise _refusal(err, stream, where) from None

    def replace_projections(self, projected: Iterable[Projected]) -> int:
        written = 0
        try:
            with self.conn.transaction():
                # as a write: the ledger's tail row taken first, so no write changes what
                # is folded until the rebuild is committed
                self.conn.execute("SELECT pos FROM ledger_tail WHERE one = 1 FOR UPDATE")
                for table in ("batches", "deviations", "qc_points", "lot_uses"):
                    self.conn.execute(f"DELETE FROM {table}")
                for batch, deviations, points, uses in projected:
                    values = query_values(batch, BATCH_COLUMNS, "batch")
                    _put(self.conn, "batches", BATCH_COLUMNS, values, batch)
                    for row in deviations:
                        values = query_values(
                            row, DEVIATION_COLUMNS, "deviation", optional=("parameter",)
                        )
                        _put(self.conn, "deviations", DEVIATION_COLUMNS, values, row)
                    _put_qc_points(self.conn, str(batch.get("batch_id")), points)
                    _put_lot_uses(self.conn, str(batch.get("batch_id")), list(uses))
                    written += 1
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('uses_indexed', '1') "
                    "ON CONFLICT (key) DO NOTHING"
                )
        except psycopg.Error as err:
            raise _refusal(err, None, "the query tables") from None
        return written

    # --- lineage (the material graph) -----------------------------------------------------
    def lineage_edges(self, lot: str, direction: str) -> list[dict[str, Any]]:
        sql = lineage_query(direction, "%s")
        return [dict(zip(LINEAGE_COLUMNS, r, strict=True)) for r in self._all(sql, (lot,))]

    def iter_lineage_edges(self) -> Iterator[dict[str, Any]]:
        columns = ", ".join(LINEAGE_COLUMNS)
        rows = self._stream(f"SELECT {columns} FROM lineage_edges ORDER BY seq, parent, child", [])
        return (dict(zip(LINEAGE_COLUMNS, r, strict=True)) for r in rows)

    def lot_uses(
        self, *, lot: str | None = None, batch_id: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = ("lower(lot) = lower(%s)", [lot]) if lot is not None else ("TRUE", [])
        if batch_id is not None:
            where, args = f"{where} AND batch_id = %s", [*args, batch_id]
        rows = self._all(
            f"SELECT {', '.join(LOT_USE_COLUMNS)} FROM lot_uses WHERE {where} "
            'ORDER BY used_at COLLATE "C", batch_id COLLATE "C", step COLLATE "C", lot COLLATE "C"',
            tuple(args),
        )
        return [dict(zip(LOT_USE_COLUMNS, r, strict=True)) for r in rows]

    def uses_indexed(self) -> bool:
        return bool(self._all("SELECT 1 FROM meta WHERE key = 'uses_indexed'"))

    def registered(self, kind: str, ident: str) -> dict[str, Any] | None:
        table, key = register_of(kind)
        rows = self._all(f"SELECT data FROM {table} WHERE {key} = %s", (ident,))
        return dict(json.loads(rows[0][0])) if rows else None

    def registered_rows(self, kind: str, *, batch_id: str | None = None) -> list[dict[str, Any]]:
        table, key = register_of(kind)
        if batch_id is None:
            rows = self._all(f'SELECT data FROM {table} ORDER BY {key} COLLATE "C"')
        else:
            column = register_field(kind, "batch_id")
            rows = self._all(
                f'SELECT data FROM {table} WHERE {column} = %s ORDER BY {key} COLLATE "C"',
                (batch_id,),
            )
        return [json.loads(r[0]) for r in rows]

    def register_whole(self, kind: str) -> bool:
        table, _key = register_of(kind)
        return bool(self._all("SELECT 1 FROM meta WHERE key = %s", (f"{table}_indexed",)))

    def replace_registered(self, kind: str, rows: list[dict[str, Any]]) -> None:
        table, _key = register_of(kind)
        try:
            with self.conn.transaction():
                self.conn.execute(f"DELETE FROM {table}")
                for row in rows:
                    _put_registered(self.conn, kind, row)
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, '1') ON CONFLICT (key) DO NOTHING",
                    (f"{table}_indexed",),
                )
        except psycopg.Error as err:
            raise _refusal(err, None, f"the {table}") from None

    def replace_lineage_edges(self, rows: list[dict[str, Any]]) -> None:
        try:
            with self.conn.transaction():
                self.conn.execute("DELETE FROM lineage_edges")
                _put_lineage_edges(self.conn, rows)
        except psycopg.Error as err:
            raise _refusal(err, None, "the lineage edges") from None

    # --- sign-in state ---------------------------------------------------------------------
    def database_id(self) -> str:
        rows = self._all("SELECT value FROM meta WHERE key = 'database_id'")
        return str(rows[0][0])

    def open_session(self, row: SessionRow) -> None:
        self._write(
            'INSERT INTO sessions (token_hash, "user", opened_at, last_seen, wrapped_key) '
            "VALUES (%s,%s,%s,%s,%s)",
            (row.token_hash, row.user, row.opened_at, row.last_seen, row.wrapped_key),
        )

    def session(self, token_hash: str) -> SessionRow | None:
        rows = self._all(
            'SELECT token_hash, "user", opened_at, last_seen, wrapped_key FROM sessions '
            "WHERE token_hash = %s",
            (token_hash,),
        )
        return SessionRow(*rows[0]) if rows else None

    def touch_session(self, token_hash: str, last_seen: str) -> None:
        self._write(
            "UPDATE sessions SET last_seen = %s WHERE token_hash = %s", (last_seen, token_hash)
        )

    def close_sessions(self, *, token_hash: str | None = None, user: str | None = None) -> int:
        if token_hash is not None:
            return self._write("DELETE FROM sessions WHERE token_hash = %s", (token_hash,))
        return self._write('DELETE FROM sessions WHERE "user" = %s', (user,))

    def count_failure(self, name: str) -> int:
        rows = self._all(
            "INSERT INTO login_failures (name, count) VALUES (%s, 1) ON CONFLICT (name) "
            "DO UPDATE SET count = login_failures.count + 1 RETURNING count",
            (name.casefold(),),
        )
        return int(rows[0][0])

    def clear_failures(self, name: str) -> None:
        self._write("DELETE FROM login_failures WHERE name = %s", (name.casefold(),))

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            cur = self.conn.execute(sql, args)
        except psycopg.Error as err:
            raise _refusal(err, None, "the sign-in records") from None
        return int(cur.rowcount)

    def close(self) -> None:
        """Give the connection back to the pool it was lent from, or close it."""
        if self._pool is not None:
            self._pool.putconn(self.conn)
        else:
            self.conn.close()


_POOLS: dict[str, ConnectionPool[Any]] = {}


def _import_snapshot(snapshot: str) -> Composed:
    """SET TRANSACTION SNAPSHOT with SNAPSHOT quoted (a utility statement takes no
    parameters)."""
    return SQL("SET TRANSACTION SNAPSHOT {}").format(Literal(snapshot))


def pooled(url: str, *, create: bool = False) -> PostgresStore:
    """A store on a connection from this process's pool for URL (made on first use).

    For the web server, which opens a store per request: a pooled connection is lent in
    microseconds where a new one costs a connection handshake each time. A command-line
    run opens one store and needs no pool (nor its threads).
    """
    if url not in _POOLS:
        _POOLS[url] = ConnectionPool(
            url,
            min_size=1,
            max_size=8,
            kwargs={"autocommit": True, "row_factory": tuple_row},
            open=True,
            name="cmprep",
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
        )
    return PostgresStore(url, create=create, pool=_POOLS[url])


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
