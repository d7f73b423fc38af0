"""Lists across batches, read from the query tables as they are printed.

A list over years of batches must cost what its rows cost, not what the history costs: the
filters run in the database, only the columns shown are read, and rows reach the shell one
by one. This module imports nothing but the store's filters, so a list command does not
load the protocol models, the signing code or the renderer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cmprep.store.query import ROW, BatchFilter, DeviationFilter

if TYPE_CHECKING:
    from cmprep.store.base import EventStore

Rows = Iterator[tuple[Any, ...]]


class QueryService:
    """The batch and deviation lists; each call reads its rows afresh."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def batches(self, where: BatchFilter | None, columns: tuple[str, ...]) -> Rows:
        """COLUMNS of the batches matching WHERE, by start then id; ``ROW``: each whole
        row as JSON text."""
        return self.store.batch_table(where or BatchFilter(), columns)

    def deviations(self, where: DeviationFilter | None, columns: tuple[str, ...]) -> Rows:
        """COLUMNS of the deviations matching WHERE, by id; ``ROW``: each whole row as
        JSON text."""
        return self.store.deviation_table(where or DeviationFilter(), columns)


__all__ = ["ROW", "QueryService", "Rows"]
