"""The deviation audit report across batches, and the ledger mark a document names.

Apart from ``cmprep.service.audit`` (verification, checkpoints, rebuilds): the report is
counted by the store from the query tables, so its start imports neither the signature
checks nor the protocol models nor the batch fold. ``AuditService`` hands its ``report``
and ``ledger_mark`` on to this module.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    since = _bound(since, "the start of the period")
    until = _bound(until, "the end of the period")
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
    decided = {
        state: [
            dict(zip(DECIDED_COLUMNS, row, strict=True))
            for row in store.batch_table(
                BatchFilter(state=state, updated_since=since, updated_before=until),
                DECIDED_COLUMNS,
            )
        ]
        for state in ("released", "rejected")
    }
    now = ctx.clock()
    summary = report_summary(
        counts,
        open_rows_by_age(still_open, OPEN_COLUMNS, now),
        decided,
        store.batch_count(BatchFilter(started_since=since, started_before=until)),
        now,
        since,
    )
    return {**summary, "until": until}


def _bound(text: str | None, what: str) -> str | None:
    """A period's bound as typed (a date or an ISO time) as stored UTC text; Refused naming
    WHAT and the expected form."""
    if not text:
        return None
    try:
        return parse_day_or_time(text)
    except ValueError as err:
        raise Refused(f"{what}: {err}") from None
