"""Typed filters for the query tables: what a list may be narrowed by, and nothing else.

A filter names its fields, so a misspelt one is an error where it is written, not an
empty list at the bench; every backend turns the same filter into its own WHERE clause.
Times are the stored UTC text (``2026-11-01T00:00:00Z``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

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


@dataclass(frozen=True)
class BatchFilter:
    """Batches whose every set field equals the row's column."""

    protocol_id: str | None = None
    state: str | None = None

    def equals(self) -> dict[str, Any]:
        """The columns to match exactly, without the unset ones."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


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

    def equals(self) -> dict[str, Any]:
        """The columns to match exactly, without the unset ones and the period."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("since", "until") and getattr(self, f.name)
        }


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


__all__ = ["BATCH_COLUMNS", "DEVIATION_COLUMNS", "BatchFilter", "DeviationFilter", "query_values"]
