"""The read models the service returns, under the service's name.

They are defined in ``cmprep.render.models`` because rendering must never import
``cmprep.service`` (that would pull in the store), yet templates are rendered from these
very classes; see that module for the why. Built only in ``cmprep.service.views``.
"""

from __future__ import annotations

from cmprep.render.models import (
    AuditReportView,
    ChecklistView,
    CompareRow,
    CompareView,
    DeviationView,
    QCSummaryRow,
    RecordView,
    ReviewView,
    StatusView,
    TrendView,
)

__all__ = [
    "AuditReportView",
    "ChecklistView",
    "CompareRow",
    "CompareView",
    "DeviationView",
    "QCSummaryRow",
    "RecordView",
    "ReviewView",
    "StatusView",
    "TrendView",
]
