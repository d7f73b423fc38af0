"""The read model of the deviation audit report (templates/audit.html and audit.md).

Apart from the other read models (``cmprep.render.models`` re-exports these): the report
is built from the query tables alone, and its start loads these two classes, not the
record's, the checklist's and the status's sixty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cmprep.render.view import View


@dataclass(frozen=True)
class ParetoChart(View):
    """A Pareto chart of the audit report: categories by count, most first, with the cumulative
    share."""

    key: str
    title: str
    column: str  # the category column's heading
    rows: list[dict[str, Any]]  # {name, count, cumulative}, most first


@dataclass(frozen=True)
class AuditReportView(View):
    """The deviation audit report (templates/audit.html and audit.md)."""

    since: str | None
    generated_at: str
    total: int  # deviations in the period
    batches: int  # batches started in the period
    charts: list[ParetoChart]
    open_rows: list[dict[str, Any]]  # not closed, oldest first, with age_days
    # batch rows, as the store reads them: whole history's worth without --since, so they
    # may be read once only, while the document is written (counted apart, below)
    released: Iterable[dict[str, Any]]
    rejected: Iterable[dict[str, Any]]
    ledger_head: str  # the ledger head when it was made; "" when not given
    ledger_pos: int  # the ledger's position (events in the log) then; 0 when not given
    until: str | None = None  # the period's end (exclusive); None: up to now
    released_count: int = 0  # batches released in the period (the rows above)
    rejected_count: int = 0
