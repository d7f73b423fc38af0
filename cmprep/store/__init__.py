"""Storage of the event log and its query tables, behind one small interface.

The domain never sees SQL: it asks the store for a batch's events and writes through a
unit of work. A PostgreSQL store implements the same `EventStore` protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

from cmprep.store.base import ClockBehind, ConcurrencyError, EventStore, StoreError, UnitOfWork

DEFAULT_DB = "cmprep.db"


def open_store(path: str | os.PathLike | None = None) -> EventStore:
    """The store at PATH, $CMPREP_DB or ./cmprep.db, created on first use."""
    from cmprep.store.sqlite import SQLiteStore

    target = Path(path or os.environ.get("CMPREP_DB") or DEFAULT_DB)
    return SQLiteStore(target)


__all__ = [
    "ClockBehind",
    "ConcurrencyError",
    "EventStore",
    "StoreError",
    "UnitOfWork",
    "open_store",
]
