"""Printed views of a protocol and a batch: HTML (print-ready), Markdown and PDF.

Rendering only reads: templates get a read model (a ``Batch`` or a ``Protocol``), never the
store. One Jinja environment with autoescape on (HTML and Markdown alike) and
StrictUndefined, so a misspelt field fails loudly instead of printing an empty cell in a
signed record. Everything a person typed (notes, reasons, raw values, names) is escaped:
in HTML by autoescape, in Markdown by the ``md`` filter, which backslash-escapes every
character that could start markup.

The HTML is standalone (the print CSS is inlined) and is the single source of the PDF.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from cmprep.batch import Batch
from cmprep.protocol.models import SITE_CHOICE, Protocol, Source, Step, Window
from cmprep.resources import templates_dir

FORMATS = ("html", "md", "pdf")

PDF_MISSING = "PDF output needs WeasyPrint: pip install 'cmprep[pdf]'"

# Characters that can start Markdown (or inline HTML) markup. `~` makes strike-through and
# `&` entities; backtick code spans. All are escapable ASCII punctuation in CommonMark/GFM.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")
_NEWLINES = re.compile(r"\s*[\r\n]+\s*")

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
    env.globals["VERDICT_MARKS"] = VERDICT_MARKS
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
    }


# --- public API ---------------------------------------------------------------------------
def render_record(
    batch: Batch, fmt: str = "html", *, generated_at: str | None = None
) -> str | bytes:
    """The batch record a QA reviewer reads and signs (bytes for ``pdf``)."""
    _check_format(fmt)
    context = {
        **_protocol_context(batch.protocol),
        "batch": batch,
        "entries": [batch.steps[s.id] for s in batch.protocol.steps],
        "summary": _record_summary(batch),
        "state_label": STATE_LABELS.get(batch.state, f"in progress (at {batch.state})"),
        "generated_at": generated_at or _now(),
        "doc_title": f"Batch record {batch.id}",
    }
    return _render("record", fmt, context)


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


def to_pdf(html: str) -> bytes:
    """A PDF of standalone HTML (the print CSS is inline), via WeasyPrint."""
    try:
        from weasyprint import HTML
    except ImportError as err:  # the optional extra is not installed
        raise RuntimeError(PDF_MISSING) from err
    return HTML(string=html, base_url=str(templates_dir())).write_pdf()


def write_output(content: str | bytes, path: str | os.PathLike[str]) -> Path:
    """Write a rendered document atomically: complete, or not at all.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed
    over the target, so a reader (or a crash) never sees half a record.
    """
    target = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    mode = (target.stat().st_mode & 0o777) if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; a printed record is for others to read
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


__all__ = [
    "FORMATS",
    "cite_short",
    "environment",
    "format_time",
    "md_escape",
    "render_checklist",
    "render_record",
    "to_pdf",
    "write_output",
]
