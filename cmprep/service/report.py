"""The deviation audit report across batches, and the ledger mark a document names.

Apart from ``cmprep.service.audit`` (verification, checkpoints, rebuilds): the report is
counted by the store from the query tables, so its start imports neither the signature
checks nor the protocol models nor the batch fold. ``AuditService`` hands its ``report``
and ``ledger_mark`` on to this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from cmprep import events as ev
from cmprep.domain.clock import parse_day_or_time
from cmprep.domain.report import (
    DECIDED_COLUMNS,
    OPEN_COLUMNS,
    REPORT_COUNTS,
    open_rows_by_age,
    report_summary,
)
from cmprep.errors import Refused
from cmprep.service.context import Context
from cmprep.store.query import BatchFilter, DeviationFilter


@dataclass(frozen=True)
class LedgerMark:
    """Where the ledger stood: its position (number of events) and the hash there."""

    pos: int
    hash: str


def ledger_mark(ctx: Context) -> LedgerMark:
    """The ledger's position and head hash now: what a record or report was made from.
    One read of the newest entry, whatever the length of the ledger."""
    tail = ctx.store.ledger_tail()
    return LedgerMark(tail.pos, tail.hash) if tail else LedgerMark(0, ev.GENESIS)


def report(ctx: Context, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Deviations across batches by step, protocol, severity and person, in the period
    [SINCE, UNTIL) (a quarter: since its first day, until the next quarter's).

    Counted and filtered by the store: only the groups, the deviations not closed and
    the batches decided in the period are read, never every row of the history.
    """
    zone = ctx.settings().timezone  # a date typed is its midnight where the lab is
    since = _bound(since, "the start of the period", zone)
    until = _bound(until, "the end of the period", zone)
    if since and until and until <= since:
        raise Refused(f"the period ends ({until}) before it starts ({since})")
    store = ctx.store
    period = DeviationFilter(since=since, until=until)
    counts = {
        chart: store.deviation_counts(columns, period) for chart, columns in REPORT_COUNTS.items()
    }
    still_open = store.deviation_table(
        DeviationFilter(since=since, until=until, not_status="closed"), OPEN_COLUMNS
    )
    decided, decided_counts = {}, {}
    for state in ("released", "rejected"):
        where = BatchFilter(state=state, updated_since=since, updated_before=until)
        decided_counts[state] = store.batch_count(where)
        decided[state] = _opened(store.batch_table(where, DECIDED_COLUMNS), DECIDED_COLUMNS)
    now = ctx.clock()
    summary = report_summary(
        counts,
        open_rows_by_age(still_open, OPEN_COLUMNS, now),
        decided,
        store.batch_count(BatchFilter(started_since=since, started_before=until)),
        now,
        since,
        decided_counts,
    )
    return {**summary, "until": until}


def _opened(rows: Iterator[tuple[Any, ...]], columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """ROWS as dicts of COLUMNS, read as the caller iterates, the first one read now.

    The batches decided in a period grow with the years (every batch released since the
    lab began, without --since): the report prints them as they are read, never holding
    them. Reading the first row now fixes what the query sees (its snapshot) before the
    ledger mark is read, so the report still shows the log as it stood at that mark or
    before, as when every row was read first."""
    first = next(rows, None)
    if first is None:
        return iter(())
    return (dict(zip(columns, row, strict=True)) for row in chain((first,), rows))


def _bound(text: str | None, what: str, zone: str) -> str | None:
    """A period's bound as typed (a date, its midnight in ZONE, or an ISO time) as stored
    UTC text; Refused naming WHAT and the expected form."""
    if not text:
        return None
    try:
        return parse_day_or_time(text, zone)
    except ValueError as err:
        raise Refused(f"{what}: {err}") from None
