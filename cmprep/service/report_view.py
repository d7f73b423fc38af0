"""The deviation audit report's read model, built from the query tables alone.

Apart from ``cmprep.service.views`` because that module builds the batch record and the
screens from a folded batch, and importing it imports the protocol models and the fold:
the report reads only tables, and a start of ``cmprep audit report`` must not pay for
what it never uses (see bench/bench_queries.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from cmprep.render.audit_report import AuditReportView, ParetoChart

_HASH = re.compile(r"[0-9a-f]{64}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


PARETO_CHARTS = (  # (key in the report data, heading, category column)
    ("by_step", "Deviations by step", "Step"),
    ("by_protocol", "Deviations by protocol", "Protocol"),
    ("by_severity", "Deviations by severity", "Severity"),
    ("by_person", "Deviations by person (opened by)", "Person"),
)


def audit_view(
    data: dict[str, Any], *, ledger_head: str | None = None, ledger_pos: int | None = None
) -> AuditReportView:
    """The audit report's model, from ``cmprep.domain.report.report_data``; the ledger's
    head and position (``AuditService.ledger_mark``) say which state of the log it shows."""
    if ledger_head is not None and not _HASH.fullmatch(ledger_head):
        raise ValueError(f"ledger_head must be 64 hex digits, got {ledger_head!r}")
    # the decided batches as the store streams them (counted by it), or lists (counted here)
    released, rejected = data.get("released") or [], data.get("rejected") or []
    counted = {
        "released": len(released) if isinstance(released, list) else 0,
        "rejected": len(rejected) if isinstance(rejected, list) else 0,
    }
    return AuditReportView(
        since=data.get("since"),
        generated_at=data.get("generated_at") or _now(),
        total=int(data.get("total") or 0),
        batches=int(data.get("batches") or 0),
        charts=[
            ParetoChart(key=key, title=title, column=column, rows=list(data.get(key) or []))
            for key, title, column in PARETO_CHARTS
        ],
        open_rows=list(data.get("open") or []),
        released=released,
        rejected=rejected,
        ledger_head=ledger_head or "",
        ledger_pos=ledger_pos or 0,
        until=data.get("until"),
        released_count=int(data.get("released_count", counted["released"])),
        rejected_count=int(data.get("rejected_count", counted["rejected"])),
    )
