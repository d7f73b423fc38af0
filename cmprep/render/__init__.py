"""Printed views: the batch record, the SOP checklist and the audit report (HTML, Markdown,
PDF), the QC charts, and writing them out. Rendering only reads: it is handed what to show
and never fetches."""

from __future__ import annotations

from cmprep.render.documents import (
    FORMATS,
    cite_short,
    environment,
    format_time,
    md_escape,
    pareto_svg,
    qc_rows,
    render_audit_report,
    render_checklist,
    render_record,
)
from cmprep.render.output import csv_safe, to_pdf, write_output

__all__ = [
    "FORMATS",
    "cite_short",
    "csv_safe",
    "environment",
    "format_time",
    "md_escape",
    "pareto_svg",
    "qc_rows",
    "render_audit_report",
    "render_checklist",
    "render_record",
    "to_pdf",
    "write_output",
]
