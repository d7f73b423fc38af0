"""A batch's query-table rows as kept: what verification compares with its log's fold, and
what a checkpoint's digest is of.

Two ways to read them, one result. ``kept_by_key`` reads one batch's rows by its key (four
indexed reads): what checking one batch, or a batch whose digest disagrees, needs.
``StreamedRows`` reads each table once, in the log's order of streams, and hands each
batch its rows as verification reaches it in the log: four reads for the whole log,
instead of four per batch, which on a database of years of batches (and on a server,
where each read is a round trip) was most of what an anchored verification cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cmprep.domain.audit import rows_digest
from cmprep.store.base import EventStore
from cmprep.store.query import (
    LOT_USE_COLUMNS,
    QC_POINT_COLUMNS,
    ROW,
    BatchFilter,
    DeviationFilter,
    QCPointFilter,
    Span,
)

# the columns a list or a report searches by, checked beside each stored row
BATCH_SEARCHES = ("protocol_id", "state")
BATCH_SEARCHED = ("batch_id", *BATCH_SEARCHES)
DEVIATION_SEARCHES = ("batch_id", "protocol_id", "step", "severity", "status", "opened_by")
DEVIATION_SEARCHED = ("deviation_id", *DEVIATION_SEARCHES, "opened_at")


@dataclass
class Kept:
    """One batch's query-table rows as kept. The batch and deviation rows stay as read
    (their columns searched, then their JSON text): a digest needs no parsing."""

    batches: Sequence[Sequence[Any]]
    deviations: Sequence[Sequence[Any]]
    points: list[dict[str, Any]]
    uses: list[dict[str, Any]]

    def digest(self) -> str:
        return rows_digest(self.batches, self.deviations, self.points, self.uses)


def kept_by_key(store: EventStore, batch_id: str, kept_uses: bool) -> Kept:
    """BATCH_ID's rows, each table read by the batch's key: its batch row (with the
    columns searched), its deviations, QC points and (KEPT_USES) lot uses."""
    return Kept(
        list(store.batch_table(BatchFilter(batch_id=batch_id), (*BATCH_SEARCHED, ROW))),
        list(store.deviation_table(DeviationFilter(batch_id=batch_id), (*DEVIATION_SEARCHED, ROW))),
        store.qc_points(QCPointFilter(batch_id=batch_id)),
        store.lot_uses(batch_id=batch_id) if kept_uses else [],
    )


class ByStream:
    """Rows whose first column is a stream, in the log's order of streams (each stream's
    rows together), taken a stream at a time as the log is read."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.next = next(rows, None)

    def take(self, stream: str) -> list[tuple[Any, ...]]:
        """STREAM's rows, when the table has reached them (else none). A batch's rows are
        next to each other, as the database orders by id; a table whose next row names a
        later batch keeps it for that batch."""
        taken = []
        while self.next is not None and self.next[0] == stream:
            taken.append(self.next[1:])
            self.next = next(self.rows, None)
        return taken


class StreamedRows:
    """Every logged batch's rows, each table read once, taken batch by batch in the order
    ``iter_events`` gives the streams (every stream taken, in that order, even one whose
    rows are not wanted: a table does not pass a batch it was not asked for). With SPAN,
    only the batches within it (a part of the log: ``log_parts``).

    The store gives each table in the same order of ids as the log (its contract), so the
    rows taken are the batch's own. Should that ever not hold, a batch is only handed no
    rows: its digest then disagrees and the caller reads it again by key
    (``kept_by_key``), so the order can cost time, never a wrong verdict."""

    def __init__(self, store: EventStore, kept_uses: bool, span: Span | None = None) -> None:
        def rows(table: str, columns: tuple[str, ...]) -> ByStream:
            return ByStream(store.iter_logged_rows(table, columns, span))

        self.batches = rows("batches", (*BATCH_SEARCHED, ROW))
        self.deviations = rows("deviations", (*DEVIATION_SEARCHED, ROW))
        self.points = rows("qc_points", QC_POINT_COLUMNS)
        self.uses = rows("lot_uses", LOT_USE_COLUMNS) if kept_uses else None

    def take(self, stream: str) -> Kept:
        """STREAM's rows, as ``kept_by_key`` reads them."""
        return Kept(
            self.batches.take(stream),
            self.deviations.take(stream),
            [dict(zip(QC_POINT_COLUMNS, r, strict=True)) for r in self.points.take(stream)],
            [dict(zip(LOT_USE_COLUMNS, r, strict=True)) for r in self.uses.take(stream)]
            if self.uses is not None
            else [],
        )
