"""Printed views: the batch record, the SOP checklist and the audit report (HTML, Markdown,
PDF), the charts, and writing them out. Rendering only reads: it is handed a read model
(``cmprep.render.models``) and never fetches; it never imports ``cmprep.service`` or
``cmprep.store``.

The names below are loaded on first use (PEP 562), so ``cmprep.render.models`` (the read
models the service, the JSON output and the terminal screens share) can be imported
without loading Jinja.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "FORMATS": "documents",
    "cite_short": "documents",
    "environment": "documents",
    "format_time": "documents",
    "md_escape": "documents",
    "render_audit_report": "documents",
    "render_audit_report_parts": "documents",
    "render_checklist": "documents",
    "render_record": "documents",
    "pareto_svg": "charts",
    "csv_safe": "output",
    "to_pdf": "output",
    "write_output": "output",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cmprep.render' has no attribute {name!r}")
    value = getattr(import_module(f"cmprep.render.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
