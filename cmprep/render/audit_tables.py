"""The audit report's long tables (deviations not closed, batches released and rejected) as
text: one formatted line per row, handed to the template as Markup.

Why not a Jinja loop: at 10,000 batches these tables have about 10,000 rows of 5 to 8
cells, and a loop with a filter call per cell was four fifths of the report's time. Here
each line is one ``str.format`` of cells already escaped exactly as the template escaped
them: in Markdown by the ``md`` filter (``md_escape``), after ``when`` for a time; in HTML
by markupsafe's ``escape``, what autoescape does. The escaper and the time format are
given by ``cmprep.render.documents`` (the same functions its filters are), so there is one
definition of each; only ``when``'s print of a stored time is restated, to convert a whole
column at once (``_STORED_TIMES``), and tests hold the two to the same text.

A text that cannot be markup (letters, digits, spaces inside and ``.:+/@-``) is its own
escape in both formats: a column of such texts (ids, times: most columns) is found so by
one search over the whole column and printed as it is; in any other column each distinct
text is escaped once (a person, a step, a severity repeat).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from markupsafe import Markup, escape

# A character that may need escaping in Markdown or HTML, or any space but " " (the line
# break is allowed: it parts a column's texts, none of which holds one). A text without
# one, and without a space at either end, is its own escape in both formats.
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9.:+/@\- \n]")

# A column of times as the write path stores them (``2026-01-10T08:30:00Z``, one a line):
# ``when`` prints each as ``2026-01-10 08:30:00 UTC`` (tests/test_audit_report.py holds
# the two to the same text), here done to the whole column at once.
_STORED_TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ(?:\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)*")

# Each table's line per format, and what fills its fields: (column, kind), kind being
# "text" (escaped), "time" (``when``, then escaped) or "age" (days, one decimal).
Layout = tuple[str, tuple[tuple[str, str], ...]]
_OPEN = (
    ("deviation_id", "text"),
    ("batch_id", "text"),
    ("step", "text"),
    ("severity", "text"),
    ("status", "text"),
    ("opened_by", "text"),
    ("opened_at", "time"),
    ("age_days", "age"),
)
_DECIDED = (
    ("batch_id", "text"),
    ("protocol_id", "text"),
    ("protocol_version", "text"),
    ("started_at", "time"),
    ("started_by", "text"),
    ("updated_at", "time"),
)
LAYOUTS: dict[tuple[str, str], Layout] = {
    ("open", "md"): ("| **{}** | {} | {} | {} | {} | {} | {} | {} |", _OPEN),
    (
        "open",
        "html",
    ): (
        '    <tr><td class="mono nowrap"><b>{}</b></td><td class="ident">{}</td>'
        '<td class="ident">{}</td><td><b>{}</b></td><td>{}</td><td>{}</td>'
        '<td class="nowrap">{}</td><td class="c-age">{}</td></tr>',
        _OPEN,
    ),
    ("decided", "md"): ("| **{}** | {} v{} | {} | {} | {} |", _DECIDED),
    (
        "decided",
        "html",
    ): (
        '    <tr><td class="ident"><b>{}</b></td><td><span class="ident">{}</span> v{}</td>'
        '<td class="nowrap">{}</td><td>{}</td><td class="nowrap">{}</td></tr>',
        _DECIDED,
    ),
}


def _layout(table: str, fmt: str) -> Layout:
    """The line and fields of TABLE in FMT; ValueError naming the tables there are."""
    if (table, fmt) not in LAYOUTS:
        raise ValueError(f"no audit table {table!r} in {fmt!r}; tables: open, decided; md, html")
    return LAYOUTS[table, fmt]


def _html(value: Any) -> str:
    return str(escape(value))


def _joined(values: list[Any]) -> str | None:
    """VALUES one a line, when each is a text holding no line break (a line is a value);
    else None."""
    if not values:
        return None
    try:
        joined = "\n".join(values)
    except TypeError:  # not every value is a text
        return None
    return joined if joined.count("\n") == len(values) - 1 else None


def _column(values: list[Any], text: Callable[[Any], str]) -> list[Any]:
    """VALUES escaped by TEXT: as they are when every one is plain text (one search over
    the column), else each one, a repeated text escaped once."""
    joined = _joined(values)
    if (
        joined is not None
        and not _NOT_PLAIN.search(joined)
        and " \n" not in joined  # and no text starts or ends with a space
        and "\n " not in joined
        and joined[:1] != " "
        and joined[-1:] != " "
    ):
        return values
    seen: dict[str, str] = {}
    out = []
    for value in values:
        if type(value) is not str:  # None, a number: printed as the template printed it
            out.append(str(text(value)))
            continue
        done = seen.get(value)
        if done is None:
            done = seen[value] = str(text(value))
        out.append(done)
    return out


def _times(values: list[Any], when: Callable[[Any], str]) -> list[Any]:
    """VALUES printed as times by WHEN; a column of stored times (most) in one pass."""
    joined = _joined(values)
    if joined is not None and _STORED_TIMES.fullmatch(joined):
        return joined.replace("T", " ").replace("Z", " UTC").split("\n")
    return list(map(when, values))


def table_rows(
    rows: Iterable[Mapping[str, Any]],
    table: str,
    fmt: str,
    md: Callable[[Any], str],
    when: Callable[[Any], str],
) -> Markup:
    """ROWS of TABLE (``open`` or ``decided``) as the lines of a Markdown or HTML (FMT)
    table body, without the last line break; MD and WHEN: the template's ``md`` and
    ``when`` filters."""
    line, layout = _layout(table, fmt)
    text = md if fmt == "md" else _html
    rows = rows if isinstance(rows, list) else list(rows)
    columns = []
    for name, kind in layout:
        values = [row[name] for row in rows]
        if kind == "age":
            columns.append([f"{days:.1f}" for days in values])
        else:
            columns.append(_column(values if kind == "text" else _times(values, when), text))
    return Markup("\n".join(map(line.format, *columns)))


PART = 1000  # rows formatted at a time: the memory of a thousand rows, whatever the table


def table_parts(
    rows: Iterable[Mapping[str, Any]],
    table: str,
    fmt: str,
    md: Callable[[Any], str],
    when: Callable[[Any], str],
) -> Iterator[Markup]:
    """ROWS of TABLE as ``table_rows`` gives them, every line ending in a line break, a
    thousand rows at a time as they are read: the report writes a table of every batch
    released in ten years without holding it."""
    _layout(table, fmt)  # refused before a row is read
    rows = iter(rows)
    while part := list(islice(rows, PART)):
        yield table_rows(part, table, fmt, md, when) + Markup("\n")
