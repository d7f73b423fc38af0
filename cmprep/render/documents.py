"""Printed views of a protocol and a batch: HTML (print-ready), Markdown and PDF.

Rendering only reads: templates get a read model (a ``Batch`` or a ``Protocol``), never the
store. One Jinja environment with autoescape on (HTML and Markdown alike) and
StrictUndefined, so a misspelt field fails loudly instead of printing an empty cell in a
signed record. Everything a person typed (notes, reasons, raw values, names) is escaped:
in HTML by autoescape, in Markdown by the ``md`` filter, which backslash-escapes every
character that could start markup.

Electronic signatures are printed with the signer's printed name, user id, role, UTC
date/time and meaning (21 CFR 11.50); a verification whose step changed after it was
signed is printed as superseded, never silently dropped.

The HTML is standalone (the print CSS is inlined) and is the single source of the PDF. The
audit report's Pareto charts are inline SVG drawn here in plain Python (no plotting
library), black and grey only, so they print the same in a browser and in WeasyPrint.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from cmprep.domain.batch import Batch, StepEntry
from cmprep.protocol.models import SITE_CHOICE, Protocol, Source, Step, Window
from cmprep.render.output import to_pdf
from cmprep.resources import templates_dir

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

SIGNATURE_ROLES = {  # batch-level signature meaning -> the line it fills in the QA section
    "reviewed": "Reviewed by (QA)",
    "released": "Released by (QA)",
    "rejected": "Rejected by (QA)",
}

STATE_LABELS = {
    "on_hold": "ON HOLD",
    "awaiting_review": "awaiting QA review",
    "released": "released",
    "rejected": "rejected",
}


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


def format_time(value: Any) -> str:
    """An ISO time as the record prints it: ``2026-01-10 08:30:00 UTC``."""
    if value is None or value == "":
        return ""
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
    env.filters["md"] = md_escape
    env.filters["when"] = format_time
    env.filters["doi_url"] = doi_url
    env.filters["sig_row"] = _signature_row
    env.globals["VERDICT_MARKS"] = VERDICT_MARKS
    env.globals["SUPERSEDED"] = SUPERSEDED
    env.globals["MISSING_VERIFICATION"] = MISSING_VERIFICATION
    env.globals["STATUS_LABELS"] = STATUS_LABELS
    return env


def environment() -> Environment:
    """The one Jinja environment, on the bundled templates."""
    return _environment(str(templates_dir()))


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; use one of: {', '.join(FORMATS)}")
    return fmt


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _render(name: str, fmt: str, context: dict[str, Any]) -> str | bytes:
    _check_format(fmt)
    template = environment().get_template(f"{name}.{'md' if fmt == 'md' else 'html'}")
    text = template.render(**context)
    if fmt == "pdf":
        return to_pdf(text)
    return text


# --- view helpers (plain data for the templates) ------------------------------------------
def _source_text(protocol: Protocol, source_id: str | None) -> str:
    if not source_id:
        return ""
    if source_id == SITE_CHOICE:
        return SITE_CHOICE
    return cite_short(protocol.source(source_id)) or source_id


def _window_text(protocol: Protocol, window: Window) -> str:
    earlier = protocol.step(window.after)
    title = f" ({earlier.title})" if earlier else ""
    return f"{window.range.describe(window.unit)} after {window.after}{title}"


def _branch_arms(protocol: Protocol, step: Step) -> list[Step]:
    return [s for s in protocol.steps if step.branch and s.branch == step.branch]


def step_numbers(protocol: Protocol) -> dict[str, str]:
    """Printed step numbers: one per stage, a branch's arms lettered (``9a``, ``9b``...)."""
    numbers: dict[str, str] = {}
    for i, stage in enumerate(protocol.stages(), start=1):
        for j, step in enumerate(stage):
            numbers[step.id] = (
                f"{i}{'abcdefghijklmnopqrstuvwxyz'[j % 26]}" if len(stage) > 1 else str(i)
            )
    return numbers


def doi_url(doi: str | None) -> str:
    """The resolver link of a DOI, percent-encoded so it cannot break out of a link."""
    if not doi:
        return ""
    return "https://doi.org/" + quote(doi.strip(), safe="/.:;-_")


def _protocol_context(protocol: Protocol) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "numbers": step_numbers(protocol),
        "source_text": lambda source_id: _source_text(protocol, source_id),
        "window_text": lambda window: _window_text(protocol, window),
        "branch_arms": lambda step: _branch_arms(protocol, step),
        "cite_short": cite_short,
        "SITE_CHOICE": SITE_CHOICE,
    }


def _record_summary(batch: Batch) -> dict[str, int]:
    entries = list(batch.steps.values())
    return {
        "done": sum(e.status == "done" for e in entries),
        "skipped": sum(e.status == "skipped" for e in entries),
        "not_taken": sum(e.status == "not taken" for e in entries),
        "open_steps": sum(e.status in ("due", "pending") for e in entries),
        "late": sum(e.late for e in entries),
        "corrections": sum(len(v.corrections) for e in entries for v in e.values.values()),
        "alerts": sum(v.verdict == "alert" for e in entries for v in e.values.values()),
        "deviations": len(batch.deviations),
        "open_deviations": len(batch.open_deviations()),
        "holds": len(batch.holds),
        "missing_verifications": len(batch.missing_verifications()),
    }


def _signature_row(
    sig: dict[str, Any], status: str = "", comment: str | None = None
) -> dict[str, Any]:
    """One electronic signature as the record prints it (signature dicts are plain data)."""
    return {
        "meaning": sig.get("meaning", ""),
        "full_name": sig.get("full_name", ""),
        "signer": sig.get("signer", ""),
        "role": sig.get("role", ""),
        "signed_at": sig.get("signed_at", ""),
        "status": status,
        "comment": comment or "",
    }


def step_signatures(entry: StepEntry) -> list[dict[str, Any]]:
    """A step's signatures: 'performed' first, then each verification, oldest first.

    A verification counts only while the step is as it was signed; one signed before a later
    correction is printed as superseded.
    """
    rows = []
    if entry.performed_signature:
        rows.append(_signature_row(entry.performed_signature))
    for sig in entry.verifications:
        valid = sig.get("content_hash") == entry.content_hash
        rows.append(_signature_row(sig, "valid" if valid else SUPERSEDED))
    return rows


def batch_signatures(batch: Batch) -> list[dict[str, Any]]:
    """The batch-level signatures (reviewed, released, rejected) with the comment or reason
    written with each, in log order."""
    reasons = {e.seq: e.reason for e in batch.events}
    return [
        {
            **_signature_row(s, comment=reasons.get(s.get("seq"))),
            "line": SIGNATURE_ROLES.get(s["meaning"], s["meaning"]),
        }
        for s in batch.signatures
        if (s.get("subject") or {}).get("kind") == "batch"
    ]


# --- Pareto chart (inline SVG) ------------------------------------------------------------
_W, _H = 640, 270  # the fixed viewBox
_LEFT, _RIGHT, _TOP = 52, 588, 34  # the plot area's left, right and top edges
_MAX_BARS = 20
_CHAR = 5.6  # the width of one 9-unit label character, roughly, in viewBox units
_INK, _BAR, _GRID = "#000", "#b0b0b0", "#d9d9d9"


def _num(x: float) -> str:
    """A coordinate, short: 12.5, 40 (never 40.0 or 1e-05)."""
    return f"{x:.1f}".rstrip("0").rstrip(".") or "0"


def _nice_step(top: int) -> int:
    """A tick step of 1, 2 or 5 x 10^k giving at most five ticks up to `top`."""
    raw = max(top / 5, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _truncate(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def pareto_svg(rows: list[dict[str, Any]], title: str) -> Markup:
    """A Pareto chart of ``[{name, count, ...}]`` as inline SVG.

    Bars by count, most first, each with its count; the cumulative % as a line with points.
    The left axis runs from 0 to the total and the right one from 0 to 100 %, so the first
    point sits on the first bar and the line ends at 100 %. Long category labels are
    rotated and truncated (the table under the chart gives them in full); past 20
    categories the rest are drawn as one "other" bar. Pure Python, a fixed viewBox, black
    and grey only, every text escaped; the bars are the only <rect> elements.
    """
    bars = sorted(rows, key=lambda r: -int(r["count"]))
    if len(bars) > _MAX_BARS:
        rest = bars[_MAX_BARS - 1 :]
        other = {"name": f"other ({len(rest)})", "count": sum(int(r["count"]) for r in rest)}
        bars = [*bars[: _MAX_BARS - 1], other]
    total = sum(int(r["count"]) for r in bars)
    label = escape(title)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" class="pareto-chart" role="img" aria-label="{label}" '
        f'font-family="DejaVu Sans, Arial, sans-serif" font-size="10" fill="{_INK}">',
        f"<title>{label}</title>",
        f'<text x="{_LEFT}" y="14" font-size="11.5" font-weight="bold">{label}</text>',
    ]
    if not bars or total <= 0:
        out.append(
            f'<text x="{_W // 2}" y="{_H // 2}" text-anchor="middle">'
            "No deviations in this period</text></svg>"
        )
        return Markup("".join(out))

    slot = (_RIGHT - _LEFT) / len(bars)
    names = [" ".join(str(b["name"]).split()) for b in bars]
    fits = int((slot - 6) / _CHAR)  # characters a horizontal label has room for
    # horizontal when every label fits, or when a truncated one still says enough
    rotate = max(len(n) for n in names) > fits and fits < 14
    bottom = _H - (86 if rotate else 20)
    height = bottom - _TOP

    def y_of(count: float) -> float:  # the left axis: 0 .. total
        return bottom - height * count / total

    # legend (paths, not rects)
    lx = _RIGHT - 190
    out.append(
        f'<path d="M{lx} 6h10v10h-10z" fill="{_BAR}" stroke="{_INK}" stroke-width="0.6"/>'
        f'<text x="{lx + 14}" y="15">count</text>'
        f'<path d="M{lx + 60} 11h22" stroke="{_INK}" stroke-width="1.3" fill="none"/>'
        f'<circle cx="{lx + 71}" cy="11" r="2.6" fill="#fff" stroke="{_INK}" stroke-width="1.1"/>'
        f'<text x="{lx + 88}" y="15">cumulative %</text>'
    )
    # grid and left axis (counts); the top tick is the total
    step = _nice_step(total)
    ticks = [t for t in range(0, total, step) if total - t >= 0.12 * total or t == 0] + [total]
    for tick in ticks:
        y = _num(y_of(tick))
        out.append(f'<path d="M{_LEFT} {y}H{_RIGHT}" stroke="{_GRID}" stroke-width="0.5"/>')
        out.append(f'<text x="{_LEFT - 5}" y="{y}" dy="3.5" text-anchor="end">{tick}</text>')
    mid = _num(_TOP + height / 2)
    out.append(
        f'<text transform="translate(15 {mid}) rotate(-90)" text-anchor="middle">Deviations</text>'
    )
    # right axis (cumulative %)
    for pct in (0, 25, 50, 75, 100):
        y = _num(bottom - height * pct / 100)
        out.append(f'<path d="M{_RIGHT} {y}h4" stroke="{_INK}" stroke-width="0.8"/>')
        out.append(f'<text x="{_RIGHT + 7}" y="{y}" dy="3.5">{pct} %</text>')
    out.append(
        f'<text transform="translate({_W - 6} {mid}) rotate(90)" text-anchor="middle">'
        "Cumulative %</text>"
    )
    # bars with their counts, and the category labels
    width = min(slot * 0.72, 64)
    running, points = 0, []
    for i, (b, name) in enumerate(zip(bars, names, strict=True)):
        count = int(b["count"])
        running += count
        cx = _LEFT + slot * (i + 0.5)
        y = y_of(count)
        points.append((cx, y_of(running)))
        out.append(
            f'<rect x="{_num(cx - width / 2)}" y="{_num(y)}" width="{_num(width)}" '
            f'height="{_num(bottom - y)}" fill="{_BAR}" stroke="{_INK}" stroke-width="0.6">'
            f"<title>{escape(name)}: {count}</title></rect>"
        )
        # the count inside the bar's top when it fits, else just above it
        inside = bottom - y >= 22 and width >= 14
        ty = y + 16 if inside else y - 4
        out.append(
            f'<text x="{_num(cx)}" y="{_num(ty)}" text-anchor="middle" font-weight="bold">'
            f"{count}</text>"
        )
        if rotate:
            out.append(
                f'<text transform="translate({_num(cx + 3)} {bottom + 7}) rotate(-55)" '
                f'text-anchor="end" font-size="9">{escape(_truncate(name, 18))}</text>'
            )
        else:
            out.append(
                f'<text x="{_num(cx)}" y="{bottom + 13}" text-anchor="middle" font-size="9">'
                f"{escape(_truncate(name, max(fits, 3)))}</text>"
            )
    # the cumulative line and its points
    path = " ".join(f"{'L' if i else 'M'}{_num(x)} {_num(y)}" for i, (x, y) in enumerate(points))
    out.append(f'<path d="{path}" fill="none" stroke="{_INK}" stroke-width="1.3"/>')
    for x, y in points:
        out.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="2.8" fill="#fff" stroke="{_INK}" '
            'stroke-width="1.1"/>'
        )
    # the axes over everything
    out.append(
        f'<path d="M{_LEFT} {_TOP - 4}V{bottom}H{_RIGHT}V{_TOP - 4}" fill="none" '
        f'stroke="{_INK}" stroke-width="0.9"/>'
    )
    out.append("</svg>")
    return Markup("".join(out))


# --- QC section and traceability (plain data for the templates) ---------------------------
QC_EXPLANATION = (
    "Reference ranges are the review's typical MSC-CM composition: information only; "
    "deviations come from the release spec and Westgard rules."
)


def _number(x: Any) -> str:
    from cmprep.domain.numbers import format_number

    return format_number(float(x))


def _flag_text(note: str) -> str:
    """The short form of a reference flag: ``ℹ above reference range``."""
    if not note:
        return ""
    for side in ("above", "below"):
        if f" is {side} " in note:
            return f"ℹ {side} reference range"
    return "ℹ see note"


def _replicates_text(rep: dict[str, Any] | None) -> str:
    """``n=3, CV 3.2 %`` (no CV for a single replicate)."""
    if not rep:
        return ""
    text = f"n={rep.get('n', len(rep.get('values') or []))}"
    cv = rep.get("cv_percent")
    if cv is not None:
        text += f", CV {float(cv):.1f} %"
    return text


def _replicate_values(rep: dict[str, Any] | None) -> str:
    if not rep or not rep.get("values"):
        return ""
    values = ", ".join(_number(v) for v in rep["values"])
    return f"{values} {rep.get('unit') or ''}".strip()


def _qc_unit(batch: Batch, row: dict[str, Any]) -> str:
    step = batch.protocol.step(row.get("step", ""))
    param = step.parameter(row.get("name", "")) if step else None
    if param is not None and param.unit:
        return str(param.unit)
    return str((row.get("replicates") or {}).get("unit") or "")


def _history_text(row: dict[str, Any], unit: str) -> str:
    """``history: n=8, mean 300, SD 10 pg/mL`` (released batches of the same protocol)."""
    history = row.get("history") or []
    if not history:
        return ""
    parts = [f"history: n={len(history)}"]
    if row.get("history_mean") is not None:
        parts.append(f"mean {_number(row['history_mean'])}")
    if row.get("history_sd") is not None:
        parts.append(f"SD {_number(row['history_sd'])}")
    text = ", ".join(parts)
    return f"{text} {unit}" if unit and len(parts) > 1 else text


def _deviation_ref(batch: Batch, dev_id: str, name: str) -> str:
    """``DEV-0002 (Westgard 1-3s)`` or ``DEV-0001 (release spec)``: why it was opened."""
    dev = batch.deviations.get(dev_id)
    parameter = (dev.parameter or "") if dev else ""
    if parameter.startswith(f"{name}:westgard:"):
        return f"{dev_id} (Westgard {parameter.rsplit(':', 1)[1]})"
    if parameter == name:
        return f"{dev_id} (release spec)"
    return dev_id


def qc_rows(batch: Batch, qc: list[dict[str, Any]] | None, fmt: str) -> list[dict[str, Any]]:
    """The rows of the record's Quality control section.

    Each qc_summary row with what the templates print: the verdict mark, the reference
    range with its citation, the short reference flag (the whole note kept beside it), the
    replicates, and for a trended analyte with history a sparkline (HTML, PDF) or a text.
    """
    from cmprep.render.charts import sparkline_svg

    rows = []
    for row in qc or []:
        measured = bool(row.get("value"))
        verdict = row.get("verdict") or ""
        mark = VERDICT_MARKS.get(verdict) if measured else None
        if mark and not row.get("spec") and verdict == "in spec":
            mark = None  # nothing to meet: recorded, as in the step tables
        reference = row.get("reference") or ""
        if reference and row.get("reference_source"):
            reference += f" ({row['reference_source']})"
        unit = _qc_unit(batch, row)
        history = [float(x) for x in row.get("history") or []]
        trend = bool(row.get("trend")) and bool(history)
        svg = ""
        if trend and fmt != "md" and row.get("number") is not None:
            svg = Markup(
                sparkline_svg(
                    [*history, float(row["number"])],
                    row.get("history_mean"),
                    row.get("history_sd"),
                    width=90,
                    height=30,
                )
            )
        rows.append(
            {
                **row,
                "measured": measured,
                "mark": mark,
                "result": "—" if not measured else ("" if mark else "recorded"),
                "reference_text": reference,
                "flag": _flag_text(row.get("note") or ""),
                "replicates_text": _replicates_text(row.get("replicates")),
                "replicate_values": _replicate_values(row.get("replicates")),
                "deviation_ids": list(row.get("deviations") or []),
                "deviation_refs": [
                    _deviation_ref(batch, d, row.get("name", ""))
                    for d in row.get("deviations") or []
                ],
                "sparkline": svg,
                "history_text": _history_text(row, unit) if trend else "",
            }
        )
    return rows


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
        details.append(f"rotor {_number(item['rotor_radius_cm'])} cm")
    extra = f" ({', '.join(details)})" if details else ""
    return f"{item.get('kind') or 'instrument'} {item.get('id', '')}{extra}".strip()


def _trace_deviations(batch: Batch, step_id: str, kind: str, ident: str) -> list[str]:
    """The deviation ids opened at a step for an expired lot or an overdue instrument."""
    return [
        d.id
        for d in batch.deviations.values()
        if d.step == step_id and d.parameter == f"{kind}:{ident}"
    ]


# --- public API ---------------------------------------------------------------------------
def render_record(
    batch: Batch,
    fmt: str = "html",
    *,
    generated_at: str | None = None,
    qc: list[dict[str, Any]] | None = None,
    ledger_head: str | None = None,
) -> str | bytes:
    """The batch record a QA reviewer reads and signs (bytes for ``pdf``).

    ``qc`` (the rows of ``Service.qc_summary``) adds the Quality control section;
    ``ledger_head`` (the newest ledger hash) is printed in the footer beside the batch's
    chain head. Without them the record is as before.
    """
    _check_format(fmt)
    if ledger_head is not None and not _HASH.fullmatch(ledger_head):
        raise ValueError(f"ledger_head must be 64 hex digits, got {ledger_head!r}")
    context = {
        **_protocol_context(batch.protocol),
        "batch": batch,
        "entries": [batch.steps[s.id] for s in batch.protocol.steps],
        "summary": _record_summary(batch),
        "state_label": STATE_LABELS.get(batch.state, f"in progress (at {batch.state})"),
        "generated_at": generated_at or _now(),
        "doc_title": f"Batch record {batch.id}",
        "step_signatures": step_signatures,
        "batch_signatures": batch_signatures(batch),
        "qc_rows": qc_rows(batch, qc, fmt),
        "qc_explanation": QC_EXPLANATION,
        "ledger_head": ledger_head or "",
        "lot_text": lot_text,
        "equipment_text": equipment_text,
        "trace_deviations": lambda step_id, kind, ident: _trace_deviations(
            batch, step_id, kind, ident
        ),
        "qc_replicates": _replicates_text,
    }
    return _render("record", fmt, context)


PARETO_CHARTS = (  # (key in the report data, heading, category column)
    ("by_step", "Deviations by step", "Step"),
    ("by_protocol", "Deviations by protocol", "Protocol"),
    ("by_severity", "Deviations by severity", "Severity"),
    ("by_person", "Deviations by person (opened by)", "Person"),
)


def render_audit_report(data: dict[str, Any], fmt: str = "html") -> str | bytes:
    """The deviation audit report of ``cmprep.domain.audit.report_data`` (bytes for ``pdf``).

    Pareto charts (HTML and PDF only) each followed by its table; open deviations by age;
    the batches released and rejected in the period.
    """
    _check_format(fmt)
    charts = [
        {
            "key": key,
            "title": title,
            "column": column,
            "rows": data.get(key) or [],
            "svg": pareto_svg(data.get(key) or [], title) if fmt != "md" else "",
        }
        for key, title, column in PARETO_CHARTS
    ]
    context = {
        "data": data,
        "charts": charts,
        "since": data.get("since"),
        "generated_at": data.get("generated_at") or _now(),
        "open_rows": data.get("open") or [],
        "released": data.get("released") or [],
        "rejected": data.get("rejected") or [],
        "doc_title": "Deviation audit report",
    }
    return _render("audit", fmt, context)


def render_checklist(
    protocol: Protocol, fmt: str = "html", *, generated_at: str | None = None
) -> str | bytes:
    """The printable SOP checklist of a protocol, to fill in at the bench (bytes for ``pdf``)."""
    _check_format(fmt)
    context = {
        **_protocol_context(protocol),
        "protocol_hash": protocol.content_hash(),
        "generated_at": generated_at or _now(),
        "doc_title": f"SOP checklist {protocol.id} v{protocol.version}",
    }
    return _render("checklist", fmt, context)


__all__ = [
    "FORMATS",
    "cite_short",
    "environment",
    "format_time",
    "md_escape",
    "pareto_svg",
    "qc_rows",
    "render_audit_report",
    "render_checklist",
    "render_record",
]
