"""The store's contract: what any backend (SQLite here, PostgreSQL later) must give."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from cmprep.events import Event, NewEvent


class StoreError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


class ConcurrencyError(StoreError):
    """Another writer changed the batch between reading it and writing to it."""


class ClockBehind(StoreError):
    """The system clock reads earlier than the stream's last entry: refuse, never reorder."""


class UnitOfWork(Protocol):
    """One transaction: everything in it is written, or nothing is."""

    def next_number(self, counter: str) -> int: ...

    def append(self, events: list[NewEvent], recorded_at: str) -> list[Event]: ...

    def put_batch(self, row: dict[str, Any]) -> None: ...

    def put_deviation(self, row: dict[str, Any]) -> None: ...

    def put_user(self, name: str, row: dict[str, Any]) -> None: ...

    def seen_key(self, key: str) -> tuple[str, int, int] | None: ...

    def remember_key(self, key: str, first_seq: int, last_seq: int) -> None: ...


class EventStore(Protocol):
    def events(self, batch_id: str) -> list[Event]: ...

    def head(self, batch_id: str) -> tuple[int, str] | None: ...

    def writing(self, batch_id: str, expected_seq: int) -> AbstractContextManager[UnitOfWork]: ...

    def batch_rows(self, **filters: Any) -> list[dict[str, Any]]: ...

    def deviation_rows(self, **filters: Any) -> list[dict[str, Any]]: ...

    def batch_ids(self) -> list[str]: ...

    def recorded_heads(self) -> dict[str, tuple[int, str]]: ...

    def replace_projections(
        self, batches: list[dict[str, Any]], deviations: list[dict[str, Any]]
    ) -> None: ...

    def iter_all_events(self) -> Iterator[Event]: ...

    def stream_ids(self) -> list[str]: ...

    def ledger(self) -> list[dict[str, Any]]: ...

    def key_used(self, key: str) -> tuple[str, int, int] | None: ...

    def users(self) -> dict[str, dict[str, Any]]: ...

    def close(self) -> None: ...
