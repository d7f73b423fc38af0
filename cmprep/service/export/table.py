"""The long table a LIMS or a spreadsheet imports: one row per value written to a batch
(recorded, corrected, a time window, a skipped step, the decision), with who, when, and
the event and hash it comes from, so each cell can be traced back to the signed log.

Rows come from one batch's events at a time: exporting one batch reads that batch's
events and nothing else, and exporting every batch streams them batch by batch (CSV row by
row, XLSX in xlsxwriter's constant-memory mode), so memory stays that of one batch.

Cells that a spreadsheet would run as a formula (``= + - @``, or a leading tab or carriage
return, which some spreadsheets strip before looking) are prefixed with ``'``; a number is
left a number.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cmprep import events as ev
from cmprep.domain.batch import Batch
from cmprep.errors import Hint, MissingExtra

COLUMNS = (
    "batch",
    "step",
    "parameter",
    "value",
    "unit",
    "verdict",
    "who",
    "when",
    "seq",
    "event",
    "event_hash",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


def cell_safe(value: Any) -> Any:
    """VALUE as a cell a spreadsheet shows and never runs: text starting like a formula
    gets a leading ``'``; numbers (``-45``) stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def value_text(value: Any) -> str:
    """A recorded value as the table writes it: numbers without a spurious ``.0``, yes/no
    for a check, text as typed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # every digit stored (a LIMS must not get a rounded value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def batch_rows(batch: Batch, since: str | None = None) -> Iterator[tuple[str, ...]]:
    """The long table's rows of one folded batch (events recorded at or after SINCE only,
    when given), in the order of its events."""
    units = {(s.id, p.name): p.unit or "" for s in batch.protocol.steps for p in s.parameters}
    windows = {s.id: s.window.unit for s in batch.protocol.steps if s.window}
    for e in batch.events:
        if since and e.recorded_at < since:
            continue
        p, when = e.payload, e.performed_at or e.recorded_at
        mark = (e.actor, when, str(e.seq), e.type, e.hash)
        step = str(p.get("step", ""))
        if e.type == ev.STEP_RECORDED:
            for name, v in p.get("values", {}).items():
                value = v.get("value")
                yield (batch.id, step, name, value_text(value), units.get((step, name), ""),
                       v.get("verdict", ""), *mark)  # fmt: skip
            if w := p.get("window"):
                yield (batch.id, step, str(w.get("name", "window")), value_text(w.get("value")),
                       windows.get(step, ""), w.get("verdict", ""), *mark)  # fmt: skip
        elif e.type == ev.VALUE_CORRECTED:
            name, new = str(p.get("parameter", "")), p.get("new", {})
            yield (batch.id, step, name, value_text(new.get("value")),
                   units.get((step, name), ""), new.get("verdict", ""), *mark)  # fmt: skip
        elif e.type == ev.STEP_SKIPPED:
            yield (batch.id, step, "", "", "", "skipped", *mark)
        elif e.type in (ev.BATCH_RELEASED, ev.BATCH_REJECTED):
            decision = "released" if e.type == ev.BATCH_RELEASED else "rejected"
            yield (batch.id, "", "decision", decision, "", "", *mark)


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [cell_safe(v) for v in row]


def write_csv(rows: Iterable[Iterable[Any]], handle: io.TextIOBase | Any) -> int:
    """The header and ROWS as CSV (formula-safe) on HANDLE; how many rows."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(safe_row(row))
        count += 1
    return count


def write_xlsx(rows: Iterable[Iterable[Any]], path: Path) -> int:
    """The header and ROWS as one XLSX sheet at PATH; how many rows.

    Text is written as text (never read as a formula, and escaped as in the CSV, so the
    two files hold the same cells), the value as a number when it is one and ``seq`` as a
    whole number. Constant-memory mode: each row goes to disk as it is written."""
    try:
        import xlsxwriter
    except ImportError:
        raise MissingExtra(
            "XLSX output needs xlsxwriter, which is not installed",
            hint=Hint("install_extra", extra="xlsx", package="xlsxwriter"),
        ) from None
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False})
    sheet = book.add_worksheet("values")
    bold = book.add_format({"bold": True})
    for c, name in enumerate(COLUMNS):
        sheet.write_string(0, c, name, bold)
    count = 0
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(safe_row(row)):
            column = COLUMNS[c]
            if column in ("value", "seq") and isinstance(value, str) and _is_number(value):
                sheet.write_number(r, c, float(value))
            else:
                sheet.write_string(r, c, str(value))
        count = r
    sheet.freeze_panes(1, 0)
    book.close()
    return count


def atomic_file(path: str | os.PathLike[str], write: Callable[[Path], int]) -> int:
    """Run WRITE on a temporary file beside PATH, then rename it over PATH: a reader never
    sees half a table, and a failed export leaves nothing behind."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        count = write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return count
