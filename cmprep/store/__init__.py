"""Storage of the event log and its query tables, behind one small contract.

The service never sees SQL: it reads a stream's events and writes through a unit of work
(``base.EventStore``, ``base.UnitOfWork``). ``open_store`` picks the backend from a URL or
a path; a new backend is one more entry in ``_BACKENDS`` plus a class that passes
``tests/test_store_contract.py``.

Nothing heavy is imported here: the backend's module is imported only when it is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cmprep.errors import ClockBehind, ConcurrencyError, Hint, MissingExtra, StoreError
from cmprep.store.base import EventStore, UnitOfWork

DEFAULT_DB = "cmprep.db"

ACCEPTED = (
    "a file path (cmprep.db), sqlite:///relative/path.db, sqlite:////absolute/path.db "
    "or postgresql://user@host/dbname"
)


def _open_sqlite(location: str, create: bool) -> EventStore:
    from cmprep.store.sqlite import SQLiteStore

    return SQLiteStore(location, create=create)


def _open_postgresql(location: str, create: bool, pool: bool = False) -> EventStore:
    # psycopg is an optional extra: imported only here, so SQLite use and `cmprep --help`
    # never load it, and a missing one is said as what to install, not an ImportError
    try:
        from cmprep.store.postgres import PostgresStore, pooled
    except ImportError:
        raise MissingExtra(
            "PostgreSQL support needs the psycopg package",
            hint=Hint("install_extra", extra="postgres", package="psycopg"),
        ) from None
    url = f"postgresql://{location}"
    return pooled(url, create=create) if pool else PostgresStore(url, create=create)


# scheme -> opener of what follows "scheme://"
_BACKENDS: dict[str, Callable[[str, bool], EventStore]] = {
    "sqlite": _open_sqlite,
    "postgresql": _open_postgresql,
    "postgres": _open_postgresql,
}


def _split_url(target: str) -> tuple[str, str]:
    """(scheme, rest) of a URL; ("", target) for a plain path (Windows ``C:\\`` included,
    since only ``scheme://`` makes a URL)."""
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme.replace("+", "").isalnum():
        return "", target
    return scheme.lower(), rest


def open_store(
    url: str | os.PathLike[str] | None = None, *, create: bool = False, pool: bool = False
) -> EventStore:
    """The store named by URL, else $CMPREP_DB, else ./cmprep.db.

    Only CREATE (``cmprep init``) makes a new database: anywhere else a mistyped path must
    be an error that names it, not a fresh empty database that silently takes the entries.

    A plain path or ``sqlite:///path`` opens an SQLite file (three slashes and a relative
    path, four for an absolute one, as in SQLAlchemy). ``postgresql://...`` opens the
    PostgreSQL store (the ``[postgres]`` extra: MissingExtra without it); any other scheme
    is a StoreError naming the forms accepted, never a file created under a strange name.
    """
    target = os.fspath(url) if url else (os.environ.get("CMPREP_DB") or DEFAULT_DB)
    scheme, rest = _split_url(target)
    if not scheme:
        return _open_sqlite(target, create)
    opener = _BACKENDS.get(scheme.split("+")[0])
    if opener is None:
        raise StoreError(
            f"cannot open database {target!r}: {scheme}:// is not known; give {ACCEPTED}"
        )
    if opener is _open_sqlite:
        if not rest.startswith("/") or rest == "/":
            raise StoreError(f"cannot open database {target!r}: give {ACCEPTED}")
        return _open_sqlite(rest[1:], create)
    if opener is _open_postgresql:
        return _open_postgresql(rest, create, pool)
    return opener(rest, create)


__all__ = [
    "DEFAULT_DB",
    "ClockBehind",
    "ConcurrencyError",
    "EventStore",
    "StoreError",
    "UnitOfWork",
    "open_store",
]
