"""Printed views of a protocol and a batch: HTML (print-ready), Markdown and PDF.

Rendering only formats: each document is rendered from one read model
(``cmprep.render.models``: RecordView, ChecklistView, AuditReportView) that the service
built, and never fetches. The template's context is exactly that model's fields; what the
templates call are filters registered on the environment that take only data (no
closures over a batch or protocol), so the model is the whole contract.

One Jinja environment with autoescape on (HTML and Markdown alike) and StrictUndefined,
so a misspelt field fails loudly instead of printing an empty cell in a signed record.
Everything a person typed (notes, reasons, raw values, names) is escaped: in HTML by
autoescape, in Markdown by the ``md`` filter, which backslash-escapes every character that
could start markup.

Electronic signatures are printed with the signer's printed name, user id, role, UTC
date/time and meaning (21 CFR 11.50); a verification whose step changed after it was
signed is printed as superseded, never silently dropped.

The HTML is standalone (the print CSS is inlined) and is the single source of the PDF. The
charts (the audit report's Pareto charts, the record's QC sparklines) are inline SVG from
``cmprep.render.charts``, black and grey only, so they print the same in a browser and in
WeasyPrint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from cmprep.render.audit_report import AuditReportView
from cmprep.render.numbers import plain_powers, quantity, superscript_html
from cmprep.render.output import to_pdf
from cmprep.resources import templates_dir

if TYPE_CHECKING:
    from cmprep.domain.batch import Value
    from cmprep.protocol.models import Parameter, Range, Source, Step
    from cmprep.render.models import ChecklistView, RecordView, SignatureRow

# the protocol models (pydantic) are not imported at run time: the audit report renders
# without them, and the words a figure's source is given as are one constant
SITE_CHOICE = "site choice"  # = cmprep.protocol.models.SITE_CHOICE (tests/test_cli_lazy.py)

FORMATS = ("html", "md", "pdf")


# Characters that can start Markdown (or inline HTML) markup. `~` makes strike-through and
# `&` entities; backtick code spans. All are escapable ASCII punctuation in CommonMark/GFM.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")
_NEWLINES = re.compile(r"\s*[\r\n]+\s*")
_HASH = re.compile(r"[0-9a-f]{64}")

VERDICT_MARKS = {
    "in spec": ("✓", "in spec", "ok"),
    "alert": ("⚠", "alert", "alert"),
    "out of spec": ("✗", "out of spec", "oos"),
}

STATUS_LABELS = {
    "done": "done",
    "skipped": "skipped",
    "not taken": "not taken (branch arm not chosen)",
    "due": "due",
    "pending": "pending",
}

SUPERSEDED = "superseded: the step changed after it was signed"
MISSING_VERIFICATION = "verification required — missing"


# --- filters ------------------------------------------------------------------------------
def md_escape(value: Any) -> Markup:
    """Text made inert for Markdown: markup characters backslash-escaped, newlines folded.

    Folding newlines keeps user text inside its table cell or line, so it can never start a
    heading, list, quote or new table row. Returns Markup so HTML autoescape (on for .md as
    a safety net) does not escape it a second time.
    """
    if value is None:
        return Markup("")
    text = _NEWLINES.sub(" ", str(value)).strip()
    return Markup(_MD_SPECIAL.sub(r"\\\1", text))


# a time as the write path stores it (``domain.clock.iso``): UTC, to the second
_STORED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def format_time(value: Any) -> str:
    """An ISO time as the record prints it: ``2026-01-10 08:30:00 UTC``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and _STORED_TIME.fullmatch(value):  # as the log stores it
        return f"{value[:10]} {value[11:19]} UTC"  # a report prints 100,000 of these
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def cite_short(source: Source | None) -> str:
    """A citation's short form, e.g. ``Nasiri et al. 2026``; the source id when unsure."""
    if source is None:
        return ""
    text = " ".join(source.citation.split())
    name = re.match(r"[^\W\d_][\w'\-]*", text)
    year = re.search(r"\b(1[89]|20)\d{2}\b", text)
    if not name or not year:
        return source.id
    authors = text.split(". ")[0]
    many = "," in authors or " and " in authors or " et al" in authors or "&" in authors
    return f"{name.group(0)}{' et al.' if many else ''} {year.group(0)}"


# --- the environment ----------------------------------------------------------------------
@lru_cache(maxsize=4)
def _environment(directory: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml", "md"),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # filters take only data: what a template shows is in its model, not in a closure
    env.filters["md"] = md_escape
    env.filters["when"] = format_time
    env.filters["doi_url"] = doi_url
    env.filters["sig_row"] = signature_row
    env.filters["replicates"] = replicates_text
    env.filters["sparkline"] = _sparkline
    env.filters["pareto"] = _pareto
    env.filters["audit_rows"] = _audit_rows
    env.filters["flow"] = _flow
    env.filters["shown"] = shown_value
    env.filters["sup"] = superscript_html
    env.filters["powers"] = plain_powers
    env.filters["css_string"] = css_string
    env.filters["describe_alert"] = describe_alert
    # constants only (the contract test subtracts these from each template's variables)
    env.globals["VERDICT_MARKS"] = VERDICT_MARKS
    env.globals["SUPERSEDED"] = SUPERSEDED
    env.globals["MISSING_VERIFICATION"] = MISSING_VERIFICATION
    env.globals["STATUS_LABELS"] = STATUS_LABELS
    env.globals["SITE_CHOICE"] = SITE_CHOICE
    return env


def environment() -> Environment:
    """The one Jinja environment, on the bundled templates."""
    return _environment(str(templates_dir()))


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; use one of: {', '.join(FORMATS)}")
    return fmt


def template_context(view: RecordView | ChecklistView | AuditReportView) -> dict[str, Any]:
    """A model's fields, by name, as its template sees them (not a deep copy: the batch
    and protocol objects inside stay as they are)."""
    return {name: getattr(view, name) for name in view.__dataclass_fields__}


def _render(name: str, fmt: str, view: RecordView | ChecklistView | AuditReportView) -> str | bytes:
    _check_format(fmt)
    template = environment().get_template(f"{name}.{'md' if fmt == 'md' else 'html'}")
    text = template.render(**template_context(view))
    if fmt == "pdf":
        return to_pdf(text)
    return text


# --- text formats (pure; the service uses them to build the views) -------------------------
def doi_url(doi: str | None) -> str:
    """The resolver link of a DOI, percent-encoded so it cannot break out of a link."""
    if not doi:
        return ""
    return "https://doi.org/" + quote(doi.strip(), safe="/.:;-_")


def signature_row(
    sig: dict[str, Any], status: str = "", comment: str | None = None, line: str = ""
) -> SignatureRow:
    """One electronic signature as the record prints it (signature dicts are plain data)."""
    from cmprep.render.models import SignatureRow

    return SignatureRow(
        meaning=sig.get("meaning", ""),
        full_name=sig.get("full_name", ""),
        signer=sig.get("signer", ""),
        role=sig.get("role", ""),
        signed_at=sig.get("signed_at", ""),
        status=status,
        comment=comment or "",
        line=line,
    )


def replicates_text(rep: dict[str, Any] | None) -> str:
    """``n=3, CV 3.2 %`` (no CV for a single replicate)."""
    if not rep:
        return ""
    text = f"n={rep.get('n', len(rep.get('values') or []))}"
    cv = rep.get("cv_percent")
    if cv is not None:
        text += f", CV {float(cv):.1f} %"
    return text


def shown_value(value: Value, step: Step) -> str:
    """A recorded value as the record prints it: a number to its precision (what the
    parameter declares, else as typed, else 3 figures for a computed one) and large counts
    as ``2.6 x 10^8``; anything else as it was recorded."""
    param = step.parameter(value.name)
    number = value.value
    if (
        param is None
        or not param.is_numeric
        or isinstance(number, bool)
        or not isinstance(number, (int, float))
        or not math.isfinite(number)
    ):
        return value.display or value.raw
    return quantity(float(number), value.raw, param.unit, precision=param_precision(param))


def param_precision(param: Parameter) -> int | None:
    """The significant figures a parameter declares for its values, if any."""
    return param.figures if param.derived is not None else None


def describe_alert(alert: Range | None, unit: str | None = None) -> str:
    """An alert band in words: ``alert if above 0 %``; "—" without one."""
    return alert.describe_alert(unit) if alert is not None else "—"


def css_string(text: object) -> Markup:
    """Text as a quoted CSS string for a <style> block: every character but ASCII letters
    and digits as a six-digit CSS hex escape, so nothing typed can end the string, the rule
    or the style element (spaces too: a space after an escape would be swallowed)."""
    out = []
    for char in "" if text is None else str(text):
        if char.isascii() and char.isalnum():
            out.append(char)
        else:
            out.append(f"\\{ord(char):06x}")
    return Markup('"' + "".join(out) + '"')


def number_text(x: Any) -> str:
    from cmprep.domain.numbers import format_number

    return format_number(float(x))


def lot_text(lot: dict[str, Any]) -> str:
    """``FBS lot FBS-1 (exp 2026-12-31)``."""
    material = lot.get("material") or "material"
    expiry = f" (exp {lot['expiry']})" if lot.get("expiry") else ""
    return f"{material} lot {lot.get('lot', '')}{expiry}"


def equipment_text(item: dict[str, Any]) -> str:
    """``centrifuge CF-02 (calibration due 2027-01-15, rotor 16.5 cm)``."""
    details = []
    if item.get("calibration_due"):
        details.append(f"calibration due {item['calibration_due']}")
    if item.get("rotor_radius_cm") is not None:
        details.append(f"rotor {number_text(item['rotor_radius_cm'])} cm")
    extra = f" ({', '.join(details)})" if details else ""
    return f"{item.get('kind') or 'instrument'} {item.get('id', '')}{extra}".strip()


# --- chart filters: data in, inline SVG out -----------------------------------------------
def _sparkline(values: Sequence[float], mean: float | None, sd: float | None) -> Markup:
    """A QC row's trend for its table cell (90 x 30), or nothing without values."""
    from cmprep.render.charts import sparkline_svg

    if not values:
        return Markup("")
    return Markup(sparkline_svg(list(values), mean, sd, width=90, height=30))


def _flow(protocol: Any, height: str = "125mm") -> Markup:  # a protocol.models.Protocol
    """The protocol's flow diagram, fitted to the page's width and HEIGHT; flow_svg
    escapes every text it draws, so it is safe to inline."""
    from cmprep.render.flow import flow_svg

    return Markup(flow_svg(protocol, width="100%", height=height))


def _pareto(rows: Sequence[dict[str, Any]], title: str) -> Markup:
    """A Pareto chart; pareto_svg escapes every text it draws, so it is safe to inline."""
    from cmprep.render.charts import pareto_svg

    return Markup(pareto_svg(rows, title))


def _audit_rows(rows: Iterable[dict[str, Any]], table: str, fmt: str) -> Iterator[Markup]:
    """The audit report's long table TABLE (``open``, ``decided``) as FMT lines, each
    cell escaped as the ``md`` and ``when`` filters (Markdown) or autoescape (HTML) would:
    one line per row (each ending in a line break), without a Jinja loop and a filter call
    per cell, in parts of a thousand rows as they are read."""
    from cmprep.render.audit_tables import table_parts

    return table_parts(rows, table, fmt, md_escape, format_time)


# --- public API ---------------------------------------------------------------------------
def _check_view(view: object, kind: type, builder: str) -> None:
    if not isinstance(view, kind):
        raise TypeError(
            f"expected a {kind.__name__}, got {type(view).__name__}; "
            f"build it with cmprep.service.views.{builder} (or use app.documents)"
        )


def render_record(view: RecordView, fmt: str = "html") -> str | bytes:
    """The batch record a QA reviewer reads and signs (bytes for ``pdf``).

    The ledger head is checked again here although the service built the view: it is
    printed as a trust anchor, so anything but a SHA-256 hex digest is refused.
    """
    from cmprep.render.models import RecordView

    _check_format(fmt)
    _check_view(view, RecordView, "record_view")
    if view.ledger_head and not _HASH.fullmatch(view.ledger_head):
        raise ValueError(f"ledger_head must be 64 hex digits, got {view.ledger_head!r}")
    return _render("record", fmt, view)


def render_checklist(view: ChecklistView, fmt: str = "html") -> str | bytes:
    """The printable SOP checklist of a protocol, to fill in at the bench (bytes for ``pdf``)."""
    from cmprep.render.models import ChecklistView

    _check_format(fmt)
    _check_view(view, ChecklistView, "checklist_view")
    return _render("checklist", fmt, view)


def render_audit_report(view: AuditReportView, fmt: str = "html") -> str | bytes:
    """The deviation audit report (bytes for ``pdf``): Pareto charts (HTML and PDF only)
    each followed by its table; open deviations by age; the batches released and rejected
    in the period."""
    if fmt == "pdf":
        return to_pdf("".join(render_audit_report_parts(view, "html")))
    return "".join(render_audit_report_parts(view, fmt))


def render_audit_report_parts(view: AuditReportView, fmt: str = "html") -> Iterator[str]:
    """The audit report in HTML or Markdown as parts, made as they are asked for: its
    tables of decided batches are read from the store while the document is written, so
    the report of ten years is written in the memory of a thousand rows. A PDF is laid out
    whole: ``render_audit_report``."""
    _check_format(fmt)
    if fmt == "pdf":
        raise ValueError("a PDF is laid out whole; use render_audit_report")
    _check_view(view, AuditReportView, "audit_view")
    template = environment().get_template(f"audit.{fmt}")
    return template.generate(**template_context(view))


__all__ = [
    "FORMATS",
    "MISSING_VERIFICATION",
    "SUPERSEDED",
    "VERDICT_MARKS",
    "cite_short",
    "doi_url",
    "environment",
    "equipment_text",
    "format_time",
    "lot_text",
    "md_escape",
    "render_audit_report",
    "render_audit_report_parts",
    "render_checklist",
    "render_record",
    "replicates_text",
    "signature_row",
    "template_context",
]
