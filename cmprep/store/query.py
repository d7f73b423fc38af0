"""Typed filters for the query tables: what a list may be narrowed by, and nothing else.

A filter names its fields, so a misspelt one is an error where it is written, not an
empty list at the bench; every backend turns the same filter into its own WHERE clause.
Times are the stored UTC text (``2026-11-01T00:00:00Z``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from cmprep.errors import StoreError

# The fields every backend keeps as columns of the query tables, to filter and sort on; the
# whole row is stored beside them and returned as it was given.
BATCH_COLUMNS = (
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
DEVIATION_COLUMNS = (
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
# A QC point is flat: every field is a column (no row kept beside them), so an edit of the
# table is an edit of the row that verification sees. Key: (batch_id, step, name).
QC_POINT_COLUMNS = (
    "batch_id",
    "step",
    "name",
    "protocol_id",
    "started_at",
    "position",
    "analyte",
    "label",
    "method",
    "value",
    "unit",
    "recorded_at",
    "state",
    "source",
    "preconditioning",
    "name_key",
    "reference_key",
    "label_key",
    "route",
)


# Fields of a deviation row kept only in the stored row, not as columns, that a list or a
# count may still ask for: each is text or None. Every backend reads them from the row in
# its own SQL, so a list never parses whole rows in Python.
DEVIATION_FIELDS = (
    "kind",
    "value",
    "spec",
    "message",
    "decision",
    "investigated_by",
    "closed_by",
    "closed_at",
    "capa",
)
ROW = "row"  # asked for as a column: the whole stored row, as JSON text (one object)

# The ids a person types that are looked up ignoring case (``ids_near``): kind -> (table,
# column). Each column has an index on its lower-cased text in every backend, so finding
# ``demo-001`` or the ids next to it reads a few index rows, never the whole table.
ID_COLUMNS = {
    "batch": ("batches", "batch_id"),
    "deviation": ("deviations", "deviation_id"),
    "lot": ("lots", "lot"),
    "instrument": ("instruments", "id"),
    "material": ("materials", "lot"),
}

# The registers kept as query tables, one row per registered thing read by its id (what a
# step naming a lot or an instrument reads, not the whole stream): kind -> (table, the
# row's id key). A table is whole when its meta flag ``<table>_indexed`` is set.
REGISTERS = {
    "lot": ("lots", "lot"),
    "instrument": ("instruments", "id"),
    "material": ("materials", "lot"),  # every lineage material as its events leave it
}
# the columns, besides its id, a register's rows are also found by: a material by the
# batch that made it (what a batch's export and a reagent's recall list)
REGISTER_FIELDS: dict[str, tuple[str, ...]] = {"material": ("batch_id",)}


def register_of(kind: str) -> tuple[str, str]:
    """The (table, id key) of a register KIND; names reach SQL only from ``REGISTERS``."""
    if kind not in REGISTERS:
        raise StoreError(f"no register {kind!r}; registers: {', '.join(REGISTERS)}")
    return REGISTERS[kind]


def id_column(kind: str) -> tuple[str, str]:
    """The (table, column) of an id KIND; names reach SQL only from ``ID_COLUMNS``."""
    if kind not in ID_COLUMNS:
        raise StoreError(f"no id kind {kind!r}; kinds: {', '.join(ID_COLUMNS)}")
    return ID_COLUMNS[kind]


# One group of a count: the values of the columns grouped by, how many rows, and the
# smallest id among them (what orders groups of equal size as the rows themselves are
# ordered: by id).
Group = tuple[tuple[Any, ...], int, str]


class Projected(NamedTuple):
    """One batch's query rows as its log folds to: what ``replace_projections`` writes,
    a batch at a time."""

    batch: dict[str, Any]
    deviations: list[dict[str, Any]]
    points: list[dict[str, Any]]
    uses: Sequence[dict[str, Any]] = ()  # the lots it used (``LOT_USE_COLUMNS``)


@dataclass(frozen=True)
class BatchFilter:
    """Batches whose every set field equals the row's column, started and last written in
    the periods given."""

    protocol_id: str | None = None
    state: str | None = None
    started_since: str | None = None  # started at or after
    updated_since: str | None = None  # last event at or after (for a decided batch: decided)
    batch_id: str | None = None  # one batch's row (what verification compares)
    started_before: str | None = None  # started before (a period is [since, before))
    updated_before: str | None = None  # last event before

    def equals(self) -> dict[str, Any]:
        """The columns to match exactly, without the unset ones."""
        return {
            name: value
            for name in ("batch_id", "protocol_id", "state")
            if (value := getattr(self, name))
        }

    def conditions(self, mark: str = "?") -> tuple[list[str], list[Any]]:
        """The WHERE conditions (joined by AND) and their arguments, MARK being the
        backend's placeholder: one place says what each field means, for every backend."""
        equal = self.equals()
        found, args = [f"{c} = {mark}" for c in equal], list(equal.values())
        for condition, value in (
            (f"started_at >= {mark}", self.started_since),
            (f"updated_at >= {mark}", self.updated_since),
            (f"started_at < {mark}", self.started_before),
            (f"updated_at < {mark}", self.updated_before),
        ):
            if value:
                found.append(condition)
                args.append(value)
        return found, args


@dataclass(frozen=True)
class DeviationFilter:
    """Deviations whose every set field equals the row's column, opened in [since, until)."""

    deviation_id: str | None = None
    batch_id: str | None = None
    protocol_id: str | None = None
    step: str | None = None
    severity: str | None = None
    status: str | None = None
    opened_by: str | None = None
    since: str | None = None  # opened at or after
    until: str | None = None  # opened before
    not_status: str | None = None  # any status but this one ("closed": those still open)

    def equals(self) -> dict[str, Any]:
        """The columns to match exactly, without the unset ones and the period."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("since", "until", "not_status") and getattr(self, f.name)
        }

    def conditions(self, mark: str = "?") -> tuple[list[str], list[Any]]:
        """The WHERE conditions (joined by AND) and their arguments; see BatchFilter."""
        equal = self.equals()
        found, args = [f"{c} = {mark}" for c in equal], list(equal.values())
        for condition, value in (
            (f"opened_at >= {mark}", self.since),
            (f"opened_at < {mark}", self.until),
            (f"status <> {mark}", self.not_status),
        ):
            if value:
                found.append(condition)
                args.append(value)
        return found, args


def asked_columns(
    columns: tuple[str, ...], kept: tuple[str, ...], in_row: tuple[str, ...], what: str
) -> None:
    """Refuse a column a list asks for that the table neither keeps (KEPT) nor can read
    from its stored row (IN_ROW, or ``ROW`` itself): names reach SQL only from these."""
    if not columns:
        raise StoreError(f"a {what} list needs at least one column")
    unknown = [c for c in columns if c not in kept and c not in in_row and c != ROW]
    if unknown:
        raise StoreError(
            f"the {what} table has no column {', '.join(map(repr, unknown))}; "
            f"it has {', '.join((*kept, *in_row, ROW))}"
        )


@dataclass(frozen=True)
class QCPointFilter:
    """QC points whose every set field matches, ordered by the batch's start, then batch
    id, then ``position`` (the protocol's order).

    ``key`` is an analyte as a person names it, already reduced to its key (``il6``): it
    matches the name, reference or label key. ``analytes`` keeps points whose ``analyte``
    or ``name`` is among them. ``last`` keeps only the newest N of the matching points
    (still returned oldest first): what bounds a chart or a baseline.
    """

    protocol_id: str | None = None
    name: str | None = None
    state: str | None = None
    key: str | None = None
    analytes: tuple[str, ...] = ()
    exclude_batch: str | None = None
    since: str | None = None  # batches started at or after
    last: int | None = None
    batch_id: str | None = None  # one batch's points (what verification compares)
    route: str | None = None  # the downstream arm taken (``concentrate``): a baseline's stratum
    source: str | None = None  # the cell source (``UC``): a baseline's stratum

    def __post_init__(self) -> None:
        if self.last is not None and self.last < 1:
            raise StoreError(f"the newest {self.last} points: give at least 1")

    def equals(self) -> dict[str, Any]:
        """The columns to match exactly, without the unset ones."""
        return {
            name: value
            for name in ("batch_id", "protocol_id", "name", "route", "source", "state")
            if (value := getattr(self, name))
        }

    def query(self, mark: str = "?") -> tuple[str, list[Any]]:
        """The whole SELECT of the matching points, ordered (newest N first when ``last``
        is set: the caller reverses them), and its arguments, MARK being the backend's
        placeholder: one query for every backend, in portable SQL."""
        equal = self.equals()
        found, args = [f"{c} = {mark}" for c in equal], list(equal.values())
        if self.key:
            found.append(f"(name_key = {mark} OR reference_key = {mark} OR label_key = {mark})")
            args += [self.key] * 3
        if self.analytes:
            marks = ", ".join([mark] * len(self.analytes))
            found.append(f"(analyte IN ({marks}) OR name IN ({marks}))")
            args += [*self.analytes, *self.analytes]
        if self.exclude_batch:
            found.append(f"batch_id <> {mark}")
            args.append(self.exclude_batch)
        if self.since:
            found.append(f"started_at >= {mark}")
            args.append(self.since)
        sql = f"SELECT {', '.join(QC_POINT_COLUMNS)} FROM qc_points"
        if found:
            sql += " WHERE " + " AND ".join(found)
        if self.last is None:
            return sql + " ORDER BY started_at, batch_id, position", args
        order = " ORDER BY started_at DESC, batch_id DESC, position DESC LIMIT "
        return sql + order + mark, [*args, self.last]


def query_values(
    row: dict[str, Any], columns: tuple[str, ...], what: str, optional: tuple[str, ...] = ()
) -> tuple[Any, ...]:
    """ROW's values for COLUMNS, in order; a missing required one is refused by name.

    Shared by the backends so that a projection row missing a field fails the same way in
    each, instead of as a KeyError deep in one backend's SQL.
    """
    missing = [c for c in columns if c not in row and c not in optional]
    if missing:
        raise StoreError(f"a {what} row lacks {', '.join(missing)}; nothing was written")
    return tuple(row.get(c) for c in columns)


def qc_point_values(batch_id: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The values of ROWS for ``QC_POINT_COLUMNS``, each row checked to be a point of
    BATCH_ID: shared by the backends, so a wrong row is refused alike by each."""
    values = [query_values(r, QC_POINT_COLUMNS, "QC point", optional=("method",)) for r in rows]
    stray = sorted({str(r.get("batch_id")) for r in rows} - {batch_id})
    if stray:
        raise StoreError(
            f"QC points of batch {', '.join(stray)} given as points of {batch_id}; "
            "nothing was written"
        )
    return values


# The lots each batch used, one row per (batch, step, lot): what a recall reads by lot.
LOT_USE_COLUMNS = ("batch_id", "step", "lot", "material", "used_at", "used_by")


def lot_use_values(batch_id: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The values of ROWS for ``LOT_USE_COLUMNS``, each checked to be a use of BATCH_ID."""
    values = [query_values(r, LOT_USE_COLUMNS, "lot use", optional=("material",)) for r in rows]
    stray = sorted({str(r.get("batch_id")) for r in rows} - {batch_id})
    if stray:
        raise StoreError(
            f"lot uses of batch {', '.join(stray)} given as uses of {batch_id}; nothing was written"
        )
    return values


def register_columns(kind: str) -> tuple[str, ...]:
    """The columns a KIND register's row is written to: its id, its ``REGISTER_FIELDS``,
    then ``data`` (the row as JSON)."""
    _table, key = register_of(kind)
    return (key, *REGISTER_FIELDS.get(kind, ()), "data")


def register_values(kind: str, row: dict[str, Any]) -> tuple[str | None, ...]:
    """The values of ``register_columns`` for a KIND register's row: shared by the
    backends, so a row without its id is refused alike by each."""
    _table, key = register_of(kind)
    ident = row.get(key)
    if not isinstance(ident, str) or not ident:
        raise StoreError(f"a {kind} row needs its {key}, not {ident!r}; nothing was written")
    found = [row.get(column) for column in REGISTER_FIELDS.get(kind, ())]
    return (ident, *(None if v is None else str(v) for v in found),
            json.dumps(row, sort_keys=True, ensure_ascii=False))  # fmt: skip


def register_field(kind: str, column: str) -> str:
    """COLUMN, when a KIND register's rows are found by it; StoreError otherwise (names
    reach SQL only from ``REGISTER_FIELDS``)."""
    if column not in REGISTER_FIELDS.get(kind, ()):
        raise StoreError(f"the {kind} register is not searched by {column!r}")
    return column


# --- lineage (the material graph) -----------------------------------------------------------
# One row per (input, output) of a derivation: the parent lot, the child lot, the seq of the
# "@materials" event that made the child, and how much of the parent it drew (text, exact).
LINEAGE_COLUMNS = ("parent", "child", "seq", "drawn", "unit")
LINEAGE_DIRECTIONS = ("up", "down")


def lineage_values(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The values of ROWS for ``LINEAGE_COLUMNS`` (``drawn`` and ``unit`` may be None)."""
    optional = ("drawn", "unit")
    return [query_values(r, LINEAGE_COLUMNS, "lineage edge", optional=optional) for r in rows]


def lineage_query(direction: str, mark: str) -> str:
    """The one recursive query of both backends: every edge reachable from the lot given
    as the one parameter (MARK: '?' or '%s'), ``down`` to its descendants or ``up`` to its
    ancestors, ordered by seq, parent, child.

    The recursion collects lots, not paths, with UNION (not UNION ALL): a lot reached twice
    (a pool of two siblings) is walked once, so the cost follows the edges returned and a
    cycle, were one ever stored, would still end."""
    if direction not in LINEAGE_DIRECTIONS:
        raise StoreError(f"no lineage direction {direction!r}; expected up or down")
    near, far = ("parent", "child") if direction == "down" else ("child", "parent")
    columns = ", ".join(LINEAGE_COLUMNS)
    return (
        f"WITH RECURSIVE reached(lot) AS (SELECT CAST({mark} AS TEXT) UNION "
        f"SELECT e.{far} FROM lineage_edges e JOIN reached r ON e.{near} = r.lot) "
        f"SELECT {columns} FROM lineage_edges WHERE {near} IN (SELECT lot FROM reached) "
        "ORDER BY seq, parent, child"
    )


__all__ = [
    "BATCH_COLUMNS",
    "DEVIATION_COLUMNS",
    "DEVIATION_FIELDS",
    "LINEAGE_COLUMNS",
    "LOT_USE_COLUMNS",
    "QC_POINT_COLUMNS",
    "REGISTERS",
    "REGISTER_FIELDS",
    "ROW",
    "BatchFilter",
    "DeviationFilter",
    "Group",
    "Projected",
    "QCPointFilter",
    "asked_columns",
    "lineage_query",
    "lineage_values",
    "lot_use_values",
    "qc_point_values",
    "query_values",
    "register_columns",
    "register_field",
    "register_of",
    "register_values",
]


# The query tables kept batch by batch, each with the columns it keeps and the fields a
# read may take from its stored row (the flat ones have no row): what verification streams
# in the log's order (``iter_logged_rows``) instead of reading each batch's rows by key.
BATCH_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "batches": (BATCH_COLUMNS, ()),
    "deviations": (DEVIATION_COLUMNS, DEVIATION_FIELDS),
    "qc_points": (QC_POINT_COLUMNS, None),
    "lot_uses": (LOT_USE_COLUMNS, None),
}


def logged_columns(table: str, columns: tuple[str, ...]) -> bool:
    """Refuse a TABLE that is not kept batch by batch, or COLUMNS it cannot give (names
    reach SQL only from ``BATCH_TABLES``). True when the columns go through the backend's
    select list of a table with a stored row (fields, ``ROW``); False when they are its
    plain columns."""
    if table not in BATCH_TABLES:
        raise StoreError(
            f"no query table {table!r} kept by batch; tables: {', '.join(BATCH_TABLES)}"
        )
    kept, in_row = BATCH_TABLES[table]
    if in_row is not None:
        asked_columns(columns, kept, in_row, table)
        return True
    unknown = [c for c in columns if c not in kept]
    if not columns or unknown:
        raise StoreError(
            f"the {table} table has no column {', '.join(map(repr, unknown)) or '(none asked)'}; "
            f"it has {', '.join(kept)}"
        )
    return False


# A part of the log, for a verification made in parts (one process each): the streams
# from the first id (included) to the stop id (excluded), in the database's own order of
# ids, the order ``iter_events`` gives them in; None leaves that end open.
Span = tuple[str | None, str | None]


def span_sql(column: str, span: Span | None, mark: str) -> tuple[str, list[str]]:
    """The condition (`` AND ...``, or nothing) keeping COLUMN within SPAN, and its
    arguments; MARK is the backend's placeholder. The comparison is the column's own, so
    a part holds exactly the streams ``iter_events`` gives between its ends."""
    if span is None:
        return "", []
    first, stop = span
    kept = [(">=", first), ("<", stop)]
    return (
        "".join(f" AND {column} {op} {mark}" for op, end in kept if end is not None),
        [end for _, end in kept if end is not None],
    )


def stream_where(
    column: str, stream: str | None, span: Span | None, mark: str
) -> tuple[str, list[str]]:
    """The WHERE clause (with a space after it, or nothing) keeping COLUMN to STREAM and
    within SPAN, and its arguments: how ``iter_events`` takes one stream or one part."""
    within, args = span_sql(column, span, mark)
    if stream is not None:
        within, args = f"{within} AND {column} = {mark}", [*args, stream]
    return (f"WHERE {within.removeprefix(' AND ')} " if within else ""), args


def logged_rows_sql(table: str, select: str, within: str = "") -> str:
    """The query of ``iter_logged_rows``: TABLE's rows (SELECT: the backend's select list)
    of batches with events, ordered by batch id as ``iter_events`` orders streams; TABLE
    is checked by ``logged_columns`` first. WITHIN: a part's condition on ``t.batch_id``
    (``span_sql``). Portable SQL, one text for every backend."""
    return (
        f"SELECT t.batch_id, {select} FROM {table} t WHERE EXISTS "
        f"(SELECT 1 FROM events e WHERE e.batch_id = t.batch_id){within} ORDER BY t.batch_id"
    )


def ledgered_through_sql(mark: str, within: str = "") -> str:
    """The query of ``iter_ledgered_through``, MARK being the backend's placeholder and
    WITHIN a part's condition on ``l.batch_id``."""
    return (
        f"SELECT l.batch_id, MAX(l.seq) FROM ledger l WHERE l.pos <= {mark} AND EXISTS "
        f"(SELECT 1 FROM events e WHERE e.batch_id = l.batch_id){within} "
        "GROUP BY l.batch_id ORDER BY l.batch_id"
    )


def part_mark_sql(mark: str) -> str:
    """The stream of the event at a given place (MARK: the backend's placeholder for the
    number of events before it) in ``iter_events``' order: where a part of the log is cut.
    An index-only walk of the events' key."""
    return f"SELECT batch_id FROM events ORDER BY batch_id, seq LIMIT 1 OFFSET {mark}"


def part_marks(found: list[str | None]) -> list[str]:
    """The cuts between parts, from the streams FOUND at the log's first event and then at
    each part's place (None: past the end): each once, in order, and never the first
    stream, so that no part is empty (cut twice at one stream, or before the first)."""
    marks: list[str] = []
    for mark in found[1:]:
        if mark is not None and mark != found[0] and mark not in marks:
            marks.append(mark)
    return marks
