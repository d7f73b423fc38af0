"""A whole-log verification in parts, one process each, so that a lab's years of batches
are checked on all of the server's cores instead of one.

Every stream's checks (its chain, head, seals, fold and query-table rows) depend on that
stream alone, and the log gives the streams in one order of ids (the database's own). So
the log is cut into spans of streams (``query.Span``) holding about their share of the
events; each span but the first is checked in a process forked for it, reading through a
connection of its own (``EventStore.reopened``), while this process checks the first span
and then walks the ledger, which is one chain and cannot be cut. What each child found is
sent back pickled through a pipe and put after what this process found, in the order of
the spans: the same problems, in the same order, as one process finds.

A child never uses a connection it inherited: it opens its own, and leaves the parent's
untouched until it ends with ``os._exit`` (no finalizer runs, so no PostgreSQL session is
ended under the parent). The parent forks before its own reads begin, when it holds no
read open on the database (SQLite's locks are kept per process, and a child inheriting a
lock its process had taken would not take it again).

A child that fails in any way (an error, a signal, nothing sent) costs time, never a
verdict: its span is then checked here. Parts are used only where forking is safe (a
platform with ``fork``, no other thread running in this process) and worth it (a log of
``PARTS_FROM`` events or more, two processors or more).
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable
from contextlib import suppress
from itertools import accumulate, pairwise
from typing import Generic, TypeVar

from cmprep.store.base import EventStore
from cmprep.store.query import Span, part_marks

T = TypeVar("T")

PARTS_FROM = 40_000  # events: a smaller log is checked in one process (a fork costs more)
MAX_PARTS = 4  # processes at most, this one included
# this process's share of the streams, against 1 for each child: after its span it walks
# the ledger (one chain over every event) while the children are still at theirs
HERE_SHARE = 0.6


def processes() -> int:
    """How many processes a verification may use: 1 where a fork is not safe (no
    ``fork``, or another thread running, which a child would inherit stopped mid-step)."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))  # the processors this process may run on
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_PARTS))


def spans(store: EventStore, events: int, parts: int | None = None) -> list[Span]:
    """The spans a log of EVENTS events is checked in: one, the whole log, unless it is
    large enough and there is more than one processor; else PARTS (default: as many as
    ``processes``), this process's the first and smallest (``HERE_SHARE``). A stream is
    never cut: a span ends where the stream at its share begins."""
    parts = processes() if parts is None else parts
    if parts < 2 or events < PARTS_FROM:
        return [(None, None)]
    shares = [HERE_SHARE, *[1.0] * (parts - 1)]
    total = sum(shares)
    places = [round(events * c / total) for c in list(accumulate(shares))[:-1]]
    bounds: list[str | None] = [None, *part_marks(store.streams_at([0, *places])), None]
    return list(pairwise(bounds))


class Forked(Generic[T]):
    """WORK run in a process forked for it; what it returned is read back by ``result``.

    The child never returns into the caller's code: whatever happens it ends with
    ``os._exit``, so nothing of the parent (buffered output, open connections, a test
    runner) is flushed, closed or run twice. It writes its result only once WORK has
    finished, and the parent reads it once its own part is done."""

    def __init__(self, work: Callable[[], T]) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.close(read)
                data = pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write, "wb") as out:
                    out.write(data)
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        os.close(write)
        self.pid: int | None = pid
        self.fd: int | None = read

    def result(self) -> T | None:
        """What the child returned; None when it failed, was killed or sent nothing
        whole (the caller then does its part itself)."""
        fd, self.fd = self.fd, None
        data = b""
        try:
            if fd is not None:
                with os.fdopen(fd, "rb") as pipe:
                    data = pipe.read()
        finally:
            status = self._reap()
        if status != 0 or not data:
            return None
        try:
            found: T = pickle.loads(data)
        except Exception:
            return None
        return found

    def stop(self) -> None:
        """End the child if it still runs (the parent's own part failed or was
        interrupted), so no process outlives the command."""
        if self.pid is not None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()
        if self.fd is not None:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def _reap(self) -> int:
        if self.pid is None:
            return -1
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return os.waitstatus_to_exitcode(status)
