"""Typed filters for the query tables: what a list may be narrowed by, and nothing else.

A filter names its fields, so a misspelt one is an error where it is written, not an
empty list at the bench; every backend turns the same filter into its own WHERE clause.
Times are the stored UTC text (``2026-11-01T00:00:00Z``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class BatchFilter:
    protocol_id: str | None = None
    state: str | None = None

    def equals(self) -> dict[str, Any]:
        """The columns to match exactly, without the unset ones."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


@dataclass(frozen=True)
class DeviationFilter:
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
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("since", "until") and getattr(self, f.name)
        }
