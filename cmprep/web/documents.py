"""The printed documents as pages (batch record, SOP checklist, audit report) with a print
button and a PDF download where WeasyPrint is installed; the audit trail of a batch; and
the QC control and comparison charts.

A document is exactly the HTML the command line writes (``DocumentService``): the same
autoescaped template, so what QA reads on the tablet is what they print and sign. The page
adds a toolbar (from ``templates/web/toolbar.html``, autoescaped too) after the body's
opening tag and a link to the page's own stylesheet and script; the document's inline
print stylesheet is allowed by its hash in the page's Content-Security-Policy, and no
inline script is added.

Charts are SVG images served from their own address (``<img src>``): an SVG shown as an
image never runs script, whatever text it holds.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable

from starlette.responses import Response

from cmprep.errors import MissingExtra, Refused
from cmprep.web.security import security_headers, style_hash
from cmprep.web.shell import Req
from cmprep.web.templating import render, seg

_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def pdf_available() -> bool:
    return importlib.util.find_spec("weasyprint") is not None


def _document(r: Req, html: str, title: str, pdf_href: str, back: str) -> Response:
    """The document's HTML with the web toolbar, and a CSP that allows its style block."""
    toolbar = render(
        "toolbar.html",
        {
            "title": title,
            "pdf_href": pdf_href if pdf_available() else "",
            "back": back,
            "me": r.user.user if r.user else None,
            "done": r.arg("done"),
            "again": bool(r.arg("again")),
        },
    )
    hashes = tuple(style_hash(css) for css in _STYLE.findall(html))
    head = '<link rel="icon" href="data:,">\n<link rel="stylesheet" href="/static/document.css">\n'
    head += '<script src="/static/web.js" defer></script>\n</head>'
    page = html.replace("</head>", head, 1)
    page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + toolbar, page, count=1)
    return Response(
        page,
        media_type="text/html",
        headers=security_headers(r.https, hashes),
    )


def _pdf(make: Callable[[], str | bytes], name: str) -> Response:
    if not pdf_available():
        raise MissingExtra(
            "PDF output needs WeasyPrint, which is not installed on this server",
        )
    content = make()
    data = content if isinstance(content, bytes) else content.encode()
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- the batch record -------------------------------------------------------------------------
def record_page(r: Req) -> Response:
    batch_id = r.param("batch")
    html = str(r.app.documents.record(batch_id, "html"))
    base = f"/batches/{seg(batch_id)}"
    return _document(r, html, f"Batch record {batch_id}", f"{base}/record.pdf", base)


def record_pdf(r: Req) -> Response:
    batch_id = r.param("batch")
    return _pdf(lambda: r.app.documents.record(batch_id, "pdf"), f"{_file(batch_id)}-record.pdf")


def _file(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", text)


# --- the SOP checklist --------------------------------------------------------------------------
def checklist_page(r: Req) -> Response:
    ref = r.param("protocol")
    html = str(r.app.documents.checklist(ref, "html"))
    return _document(
        r, html, f"SOP checklist {ref}", f"/protocols/{seg(ref)}/checklist.pdf", "/batches/new"
    )


def checklist_pdf(r: Req) -> Response:
    ref = r.param("protocol")
    return _pdf(lambda: r.app.documents.checklist(ref, "pdf"), f"{_file(ref)}-checklist.pdf")


# --- the deviation audit report -------------------------------------------------------------------
def report_page(r: Req) -> Response:
    since = r.arg("since") or None
    html = str(r.app.documents.audit_report(since, "html"))
    pdf = "/audit/report.pdf" + (f"?since={seg(since)}" if since else "")
    return _document(r, html, "Deviation audit report", pdf, "/deviations")


def report_pdf(r: Req) -> Response:
    since = r.arg("since") or None
    return _pdf(lambda: r.app.documents.audit_report(since, "pdf"), "audit-report.pdf")


# --- the audit trail of a batch ---------------------------------------------------------------
def trail_page(r: Req) -> Response:
    batch = r.app.batches.batch(r.param("batch"))
    return r.page("trail.html", batch=batch, rows=r.app.audit.trail(batch.id))


# --- QC charts ----------------------------------------------------------------------------------
def _analytes(r: Req) -> list[tuple[str, str, bool]]:
    """(name, label, trended) of every QC analyte of the approved protocols."""
    seen: dict[str, tuple[str, str, bool]] = {}
    for stored in r.app.protocols.versions():
        if stored.status != "approved":
            continue
        for step in stored.protocol().steps:
            for p in step.parameters:
                if p.method is not None and p.type.value == "number":
                    seen.setdefault(p.name, (p.name, p.label, p.trend))
    return sorted(seen.values(), key=lambda a: (not a[2], a[1].casefold()))


def qc_page(r: Req) -> Response:
    """The control chart of one baseline and the comparison of groups. When the newest
    values of the analyte fall in several baselines (protocols, routes, cell sources), each
    is a link that shows its chart: one tap at the bench, nothing to type."""
    analyte, protocol, by = r.arg("analyte", "vegf"), r.arg("protocol"), r.arg("by", "protocol")
    route, source = r.arg("route") or None, r.arg("source") or None
    trend, trend_problem, compare, compare_problem = None, "", None, ""
    try:
        trend = r.app.qc.trend(analyte, protocol or None, route=route, source=source)
    except Refused as err:
        trend_problem = err.message
    except ValueError as err:  # a baseline without spread: no control limits to draw
        trend_problem = str(err)
    try:  # every baseline of the protocol chosen: the links to pick one
        strata = r.app.qc.strata(analyte, protocol or None)
    except Refused:
        strata = []
    try:
        compare = r.app.qc.compare(by, [analyte])
    except Refused as err:
        compare_problem = err.message
    from cmprep.service.qc import GROUPS

    protocols = sorted({p.id for p in r.app.protocols.versions() if p.status == "approved"})
    return r.page(
        "qc.html",
        analytes=_analytes(r),
        protocols=protocols,
        analyte=analyte,
        protocol=protocol,
        route=route or "",
        source=source or "",
        strata=strata,
        groups=GROUPS,
        by=by,
        trend=trend,
        trend_problem=trend_problem,
        compare=compare,
        compare_problem=compare_problem,
    )


def _svg(svg: str) -> Response:
    return Response(svg, media_type="image/svg+xml")


def trend_svg(r: Req) -> Response:
    from cmprep.render.charts import trend_chart

    analyte, protocol = r.arg("analyte", "vegf"), r.arg("protocol")
    route, source = r.arg("route") or None, r.arg("source") or None
    try:
        view = r.app.qc.trend(analyte, protocol or None, route=route, source=source)
    except ValueError as err:  # a baseline without spread: no control limits to draw
        raise Refused(str(err)) from None
    title = view.label + (
        f" — {view.stratum}" if route or source else f" — {protocol}" if protocol else ""
    )
    return _svg(trend_chart(view, title))


def compare_svg(r: Req) -> Response:
    from cmprep.render.charts import compare_svg as chart

    analyte, by = r.arg("analyte", "vegf"), r.arg("by", "protocol")
    view = r.app.qc.compare(by, [analyte])
    if analyte not in view.table:
        raise Refused(f"no released results for {analyte}")
    return _svg(chart(view.table[analyte], unit=view.units[analyte], title=f"{analyte} by {by}"))
