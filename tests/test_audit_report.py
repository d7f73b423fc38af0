"""The deviation audit report: Pareto charts (inline SVG) and tables, from hand-made rows
run through ``cmprep.domain.report.report_data``, as HTML, Markdown and PDF."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmprep import render
from cmprep.domain.report import report_data
from cmprep.service.views import audit_view

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SINCE = "2026-01-01T00:00:00Z"
EVIL_STEP = "<b>x</b>"
SVG_NS = "{http://www.w3.org/2000/svg}"


def dev(n, step, protocol, severity, by, at, status="open", decision=None):
    return {
        "deviation_id": f"DEV-{n:04d}",
        "batch_id": f"B{n}",
        "protocol_id": protocol,
        "step": step,
        "parameter": "p",
        "value": "1",
        "spec": "<= 0",
        "severity": severity,
        "status": status,
        "opened_by": by,
        "opened_at": at,
        "decision": decision,
    }


def batch_row(batch_id, state, started_at, updated_at, protocol="cm-a"):
    return {
        "batch_id": batch_id,
        "protocol_id": protocol,
        "protocol_version": "1.0",
        "state": state,
        "started_at": started_at,
        "started_by": "alice",
        "updated_at": updated_at,
    }


DEVIATIONS = [
    dev(9, "old-step", "cm-a", "minor", "zed", "2025-12-01T08:00:00Z"),  # before the period
    dev(1, "spin", "cm-a", "major", "alice", "2026-01-05T12:00:00Z"),
    dev(2, "spin", "cm-a", "minor", "bob", "2026-02-01T12:00:00Z", "closed", "accepted"),
    dev(3, EVIL_STEP, "cm-b", "critical", "alice", "2026-02-10T12:00:00Z", "investigated"),
    dev(4, "spin", "cm-b", "major", "alice", "2026-02-20T12:00:00Z"),
    dev(5, "filtration", "cm-a", "major", "carol", "2026-02-25T12:00:00Z", "closed", "rejected"),
]
BATCHES = [
    batch_row("B0", "released", "2025-11-01T08:00:00Z", "2025-12-15T08:00:00Z"),  # before
    batch_row("B1", "released", "2026-01-02T08:00:00Z", "2026-02-15T08:00:00Z"),
    batch_row("B2", "rejected", "2026-01-03T08:00:00Z", "2026-02-20T08:00:00Z", "cm-b"),
    batch_row("B3", "conditioning", "2026-02-01T08:00:00Z", "2026-02-02T08:00:00Z"),
]


@pytest.fixture
def data():
    return report_data(DEVIATIONS, BATCHES, NOW, SINCE)


def svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def pareto_table(html: str, chart_key: str) -> list[tuple[str, str, str]]:
    """(name, count, cumulative) rows of the table after one chart, as printed."""
    section = html[html.index(f'id="{chart_key}"') :]
    section = section[: section.index("</section>")]
    table = section[section.index("<tbody>") :]
    cells = re.findall(
        r"<tr><td>\d+</td><td>(.*?)</td><td[^>]*>(\d+)</td><td[^>]*>([\d.]+) %</td></tr>", table
    )
    return cells


# --- the data ---------------------------------------------------------------------------
def test_pareto_order_and_cumulative_share(data):
    assert data["total"] == 5  # DEV-0009 is before the period
    assert [(r["name"], r["count"], r["cumulative"]) for r in data["by_step"]] == [
        ("spin", 3, 60.0),
        (EVIL_STEP, 1, 80.0),
        ("filtration", 1, 100.0),
    ]
    assert [(r["name"], r["cumulative"]) for r in data["by_person"]] == [
        ("alice", 60.0),
        ("bob", 80.0),
        ("carol", 100.0),
    ]
    assert data["by_severity"][0]["name"] == "major"
    assert [(r["name"], r["count"]) for r in data["by_protocol"]] == [("cm-a", 3), ("cm-b", 2)]


# --- HTML ---------------------------------------------------------------------------------
def test_html_has_title_period_generated_time_and_totals(data):
    html = render.render_audit_report(audit_view(data), "html")
    assert html.startswith("<!DOCTYPE html>")
    assert "<h1>Deviation audit report</h1>" in html
    assert "2026-01-01 00:00:00 UTC" in html  # the period's start
    assert "2026-03-01 12:00:00 UTC" in html  # generated
    assert "<td>5</td><td>3</td><td>3</td><td>1</td><td>1</td>" in html  # totals row


def test_html_tables_follow_the_pareto_order_with_cumulative_percent(data):
    html = render.render_audit_report(audit_view(data), "html")
    assert pareto_table(html, "by_step") == [
        ("spin", "3", "60.0"),
        ("&lt;b&gt;x&lt;/b&gt;", "1", "80.0"),
        ("filtration", "1", "100.0"),
    ]
    assert pareto_table(html, "by_protocol") == [("cm-a", "3", "60.0"), ("cm-b", "2", "100.0")]
    assert pareto_table(html, "by_severity")[0] == ("major", "3", "60.0")
    assert pareto_table(html, "by_person")[0] == ("alice", "3", "60.0")


def test_html_has_one_svg_chart_per_category_kind_with_one_bar_per_category(data):
    html = render.render_audit_report(audit_view(data), "html")
    charts = svgs(html)
    assert len(charts) == 4
    for chart, key in zip(
        charts, ("by_step", "by_protocol", "by_severity", "by_person"), strict=True
    ):
        assert chart.count("<rect") == len(data[key]), key
        ET.fromstring(chart)  # well-formed XML
        assert "100 %" in chart and "0 %" in chart  # the right-hand axis
    # every chart is followed by its table
    for key in ("by_step", "by_protocol", "by_severity", "by_person"):
        section = html[html.index(f'id="{key}"') :]
        assert section.index("<svg") < section.index("<table")


def test_html_escapes_category_labels_everywhere(data):
    html = render.render_audit_report(audit_view(data), "html")
    assert EVIL_STEP not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in svgs(html)[0]  # the bar label in the chart
    assert "<b>x" not in html


def test_html_lists_open_deviations_oldest_first_with_age(data):
    html = render.render_audit_report(audit_view(data), "html")
    table = html[html.index("Open deviations by age") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td[^>]*><b>(DEV-\d+)</b></td>(.*?)</tr>", table)
    assert [r[0] for r in rows] == ["DEV-0001", "DEV-0003", "DEV-0004"]  # closed ones left out
    ages = [re.findall(r'class="c-age">([\d.]+)</td>$', r[1])[0] for r in rows]
    assert ages == ["55.0", "19.0", "9.0"]
    first = rows[0][1]
    for text in ("B1", "spin", "major", "open", "alice", "2026-01-05 12:00:00 UTC"):
        assert text in first, text
    assert "&lt;b&gt;x&lt;/b&gt;" in rows[1][1] and "investigated" in rows[1][1]


def test_html_lists_released_and_rejected_batches_of_the_period(data):
    html = render.render_audit_report(audit_view(data), "html")
    released = html[
        html.index("<h2>Batches released</h2>") : html.index("<h2>Batches rejected</h2>")
    ]
    rejected = html[html.index("<h2>Batches rejected</h2>") :]
    assert "B1" in released and "B0" not in released and "B2" not in released
    assert "B2" in rejected and "cm-b" in rejected and "2026-02-20 08:00:00 UTC" in rejected


# --- Markdown and PDF ---------------------------------------------------------------------
def test_md_has_tables_only_and_escapes_labels(data):
    md = render.render_audit_report(audit_view(data), "md")
    assert md.startswith("# Deviation audit report")
    assert "<svg" not in md and "<rect" not in md
    assert "| 1 | spin | 3 | 60.0 % |" in md
    assert "| 2 | \\<b\\>x\\</b\\> | 1 | 80.0 % |" in md
    assert re.search(r"(?<!\\)<b>", md) is None
    open_rows = [line for line in md.splitlines() if line.startswith("| **DEV-")]
    assert [line.split("|")[1].strip() for line in open_rows] == [
        "**DEV-0001**",
        "**DEV-0003**",
        "**DEV-0004**",
    ]
    assert open_rows[0].endswith("| 55.0 |")
    assert "| **B1** | cm-a v1.0 |" in md and "| **B2** | cm-b v1.0 |" in md


def test_pdf(data):
    pdf = render.render_audit_report(audit_view(data), "pdf")
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")


# --- no deviations --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_an_empty_period_renders_cleanly(fmt):
    empty = report_data([], [], NOW, None)
    text = render.render_audit_report(audit_view(empty), fmt)
    assert "No deviations in this period" in text
    assert "<svg" not in text
    assert "all records" in text
    assert "None" in text  # no open deviations, no batches


def test_an_empty_period_as_pdf():
    pdf = render.render_audit_report(audit_view(report_data([], BATCHES[:1], NOW, SINCE)), "pdf")
    assert pdf.startswith(b"%PDF")


# --- the chart function --------------------------------------------------------------------
def _parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def test_pareto_svg_sorts_bars_by_count_and_ends_the_line_at_100_percent():
    rows = [{"name": "b", "count": 1}, {"name": "a", "count": 5}, {"name": "c", "count": 4}]
    root = _parse(render.pareto_svg(rows, "T"))
    assert root.get("viewBox") == "0 0 640 270"
    bars = root.findall(f"{SVG_NS}rect")
    heights = [float(b.get("height")) for b in bars]
    assert heights == sorted(heights, reverse=True) and len(bars) == 3
    assert [b.find(f"{SVG_NS}title").text for b in bars] == ["a: 5", "c: 4", "b: 1"]
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    for count in ("5", "4", "1"):
        assert count in texts
    points = [float(c.get("cy")) for c in root.findall(f"{SVG_NS}circle")][1:]  # [0]: legend
    assert points == sorted(points, reverse=True)  # the cumulative line only rises
    top = min(float(b.get("y")) for b in bars)
    assert points[0] == pytest.approx(top)  # the first point sits on the first bar
    # ... and the last at the 100 % tick
    hundred = next(t for t in root.iter(f"{SVG_NS}text") if t.text == "100 %")
    assert points[-1] == pytest.approx(float(hundred.get("y")))


def test_pareto_svg_uses_black_and_grey_only():
    svg = str(render.pareto_svg([{"name": "a", "count": 2}, {"name": "b", "count": 1}], "T"))
    colours = set(re.findall(r'(?:fill|stroke)="([^"]+)"', svg)) - {"none"}
    for colour in colours:
        assert re.fullmatch(r"#([0-9a-f]{2})\1\1|#fff|#000", colour), colour


def test_pareto_svg_escapes_truncates_and_rotates_long_labels():
    long = "a very long step name & more <i>text</i> beyond any bar"
    rows = [{"name": long, "count": 2}] + [{"name": f"s{i}", "count": 1} for i in range(6)]
    svg = str(render.pareto_svg(rows, 'Title "<x>"'))
    root = _parse(svg)
    assert "<i>" not in svg and "<x>" not in svg
    labels = [t for t in root.iter(f"{SVG_NS}text") if "rotate(-55)" in (t.get("transform") or "")]
    assert len(labels) == 7
    assert labels[0].text.endswith("…") and len(labels[0].text) <= 18
    assert root.find(f"{SVG_NS}rect/{SVG_NS}title").text == f"{long}: 2"  # full name kept


def test_pareto_svg_groups_categories_past_twenty_as_other():
    rows = [{"name": f"step{i:02d}", "count": 30 - i} for i in range(25)]
    root = _parse(render.pareto_svg(rows, "Many"))
    bars = root.findall(f"{SVG_NS}rect")
    assert len(bars) == 20
    assert (
        bars[-1].find(f"{SVG_NS}title").text == f"other (6): {sum(30 - i for i in range(19, 25))}"
    )


def test_pareto_svg_of_nothing_says_so():
    root = _parse(render.pareto_svg([], "Empty"))
    assert root.findall(f"{SVG_NS}rect") == []
    assert "No deviations in this period" in [t.text for t in root.iter(f"{SVG_NS}text")]


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(timezone.utc)))
def test_a_stored_time_prints_as_the_general_path_prints_it(moment):
    """The report prints a stored time by slicing its text (100,000 rows at a time); it
    must read exactly as the parsed and formatted time would."""
    from cmprep.domain.clock import iso
    from cmprep.render.documents import format_time

    stored = iso(moment.replace(microsecond=0))
    assert format_time(stored) == format_time(moment.replace(microsecond=0))


def test_a_period_with_an_end_prints_it_in_html_and_markdown(data):
    """A quarter is since its first day until the next quarter's: the paper says both."""
    view = audit_view({**data, "until": "2026-04-01T00:00:00Z"})
    html = render.render_audit_report(view, "html")
    assert "before <b>2026-04-01 00:00:00 UTC</b>" in html
    assert html.count("until 2026-04-01 00:00:00 UTC") == 2  # running header and footer
    md = render.render_audit_report(view, "md")
    assert "| Period | since 2026-01-01 00:00:00 UTC, before 2026-04-01 00:00:00 UTC |" in md
    assert "before" not in render.render_audit_report(audit_view(data), "md").split("\n")[4]


# --- the long tables: every row, every cell escaped as the template escaped it ---------------
# The rows as the templates printed them, a Jinja loop and a filter call per cell, before the
# long tables became lines formatted in Python (``audit_rows``): the reference they must
# match, character for character.
ROW_TEMPLATES = {
    ("open", "md"): (
        "| **{{ d.deviation_id|md }}** | {{ d.batch_id|md }} | {{ d.step|md }} | "
        "{{ d.severity|md }} | {{ d.status|md }} | {{ d.opened_by|md }} | "
        '{{ d.opened_at|when|md }} | {{ "%.1f"|format(d.age_days) }} |'
    ),
    ("open", "html"): (
        '    <tr><td class="mono nowrap"><b>{{ d.deviation_id }}</b></td><td class="ident">'
        '{{ d.batch_id }}</td><td class="ident">{{ d.step }}</td><td><b>{{ d.severity }}</b>'
        '</td><td>{{ d.status }}</td><td>{{ d.opened_by }}</td><td class="nowrap">'
        '{{ d.opened_at|when }}</td><td class="c-age">{{ "%.1f"|format(d.age_days) }}</td></tr>'
    ),
    ("decided", "md"): (
        "| **{{ d.batch_id|md }}** | {{ d.protocol_id|md }} v{{ d.protocol_version|md }} | "
        "{{ d.started_at|when|md }} | {{ d.started_by|md }} | {{ d.updated_at|when|md }} |"
    ),
    ("decided", "html"): (
        '    <tr><td class="ident"><b>{{ d.batch_id }}</b></td><td><span class="ident">'
        '{{ d.protocol_id }}</span> v{{ d.protocol_version }}</td><td class="nowrap">'
        '{{ d.started_at|when }}</td><td>{{ d.started_by }}</td><td class="nowrap">'
        "{{ d.updated_at|when }}</td></tr>"
    ),
}
HOSTILE = [
    "<script>alert(1)</script>",
    "a|b",
    "**bold** _it_ `code` ~~s~~",
    "[link](http://x) ![img](y)",
    "# heading",
    "line one\nline two\r\n| new | row |",
    "  padded  ",
    "&amp; &lt;",
    "\"double\" 'single'",
    "back\\slash",
    "",
    "plain-B-0001",
    "😀 ünïcode",
    "٢٠٢٦-٠١-٠٢T٠٨:٠٠:٠٠Z",  # Arabic-Indic digits in a stored time's shape
]


def _reference(rows, table, fmt):
    template = render.environment().from_string(ROW_TEMPLATES[table, fmt])
    return "\n".join(template.render(d=d) for d in rows)


def _tables(rows, table, fmt):
    from cmprep.render.audit_tables import table_rows
    from cmprep.render.documents import format_time, md_escape

    return table_rows(rows, table, fmt, md_escape, format_time)


def _open_row(n, text, at="2026-01-05T12:00:00Z"):
    return {
        "deviation_id": f"DEV-{n:04d}",
        "batch_id": text,
        "step": text,
        "severity": text,
        "status": text,
        "opened_by": text,
        "opened_at": at,
        "age_days": n / 3,
    }


def _decided_row(text, started="2026-01-02T08:00:00Z", updated="2026-02-15T08:00:00Z"):
    return {
        "batch_id": text,
        "protocol_id": text,
        "protocol_version": text,
        "started_at": started,
        "started_by": text,
        "updated_at": updated,
    }


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_hostile_values_in_the_long_tables_print_as_the_template_printed_them(fmt):
    open_rows = [_open_row(n, text) for n, text in enumerate(HOSTILE)]
    open_rows.append(_open_row(99, None, at="not a time"))
    decided = [_decided_row(text, started=text, updated=text) for text in HOSTILE]
    decided.append(_decided_row(None, started=None, updated=""))
    assert str(_tables(open_rows, "open", fmt)) == _reference(open_rows, "open", fmt)
    assert str(_tables(decided, "decided", fmt)) == _reference(decided, "decided", fmt)


@given(
    texts=st.one_of(
        st.lists(st.from_regex(r"[A-Za-z0-9.:+/@ -]{0,10}", fullmatch=True), min_size=1),
        st.lists(st.one_of(st.text(max_size=12), st.none()), min_size=1, max_size=8),
    ),
    times=st.lists(
        st.one_of(
            st.datetimes(min_value=datetime(1000, 1, 1)).map(
                lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            st.text(max_size=25),
        ),
        min_size=1,
        max_size=8,
    ),
    fmt=st.sampled_from(["md", "html"]),
)
def test_any_text_in_the_long_tables_prints_as_the_template_printed_it(texts, times, fmt):
    """Columns all plain, all stored times, or anything mixed: the same characters as a
    Jinja loop with ``md``/``when`` or autoescape per cell would print."""
    rows = [
        _decided_row(text, started=times[n % len(times)], updated=times[-1 - n % len(times)])
        for n, text in enumerate(texts)
    ]
    assert str(_tables(rows, "decided", fmt)) == _reference(rows, "decided", fmt)
    opened = [_open_row(n, text, at=times[n % len(times)]) for n, text in enumerate(texts)]
    assert str(_tables(opened, "open", fmt)) == _reference(opened, "open", fmt)


def test_an_unknown_long_table_is_refused():
    with pytest.raises(ValueError, match="no audit table 'closed' in 'md'"):
        _tables([], "closed", "md")


def _many():
    deviations = [
        dev(n, "spin", "cm-a", "major", "alice", f"2026-02-{1 + n % 27:02d}T08:{n % 60:02d}:00Z")
        for n in range(1, 301)
    ]
    deviations.append(dev(301, "x|y", "cm-b", "minor", "<img src=x onerror=alert(1)>", SINCE))
    batches = [
        batch_row(f"B{n:05d}", "released" if n % 7 else "rejected", SINCE, "2026-02-10T08:00:00Z")
        for n in range(1, 1001)
    ]
    batches.append(batch_row("B<i>|evil", "released", SINCE, "2026-02-11T08:00:00Z"))
    return report_data(deviations, batches, NOW, SINCE)


def test_the_markdown_tables_hold_every_row_with_hostile_ids_and_names_escaped():
    data = _many()
    md = render.render_audit_report(audit_view(data), "md")
    open_section = md[md.index("## Open deviations by age") : md.index("## Batches released")]
    released = md[md.index("## Batches released") : md.index("## Batches rejected")]
    rejected = md[md.index("## Batches rejected") : md.index("\n---\n")]
    assert len(re.findall(r"^\| \*\*DEV-\d{4}\*\* \|", open_section, re.M)) == 301
    assert len(re.findall(r"^\| \*\*B", released, re.M)) == len(data["released"]) == 859
    assert len(re.findall(r"^\| \*\*B", rejected, re.M)) == len(data["rejected"]) == 142
    assert "| **DEV-0301** | B301 | x\\|y | minor | open | \\<img src=x onerror=alert(1)\\> |" in (
        open_section
    )
    assert "| **B\\<i\\>\\|evil** | cm-a v1.0 | 2026-01-01 00:00:00 UTC | alice |" in released
    assert "<img" not in md.replace("\\<img", "") and "<i>" not in md.replace("\\<i\\>", "")


def test_the_html_tables_hold_every_row_with_hostile_ids_and_names_escaped():
    data = _many()
    html = render.render_audit_report(audit_view(data), "html")
    open_table = html[html.index('<table class="open-devs">') :]
    open_table = open_table[: open_table.index("</table>")]
    released = html[html.index("<h2>Batches released</h2>") : html.index("<h2>Batches rejected")]
    rejected = html[html.index("<h2>Batches rejected</h2>") :]
    rejected = rejected[: rejected.index("</table>")]
    assert open_table.count("<tr><td") == 301
    assert released.count("<tr><td") == 859 and rejected.count("<tr><td") == 142
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in open_table
    assert '<td class="ident">x|y</td>' in open_table
    assert '<td class="ident"><b>B&lt;i&gt;|evil</b></td>' in released
    assert "<img" not in html and "<i>" not in html


# --- written as its rows are read -------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_tables_print_the_same_in_parts_of_any_size(fmt, monkeypatch):
    """Rows are formatted a thousand at a time; where the parts meet changes no byte."""
    from cmprep.render import audit_tables

    data = _many()
    whole = render.render_audit_report(audit_view(data), fmt)
    monkeypatch.setattr(audit_tables, "PART", 7)
    assert render.render_audit_report(audit_view(data), fmt) == whole
    monkeypatch.setattr(audit_tables, "PART", 1)
    assert render.render_audit_report(audit_view(data), fmt) == whole


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_decided_batches_are_read_while_the_report_is_written_not_before(fmt):
    """Without --since the decided batches are every batch released in the lab's years: the
    report takes them from the store as it writes their table, never holding them whole."""
    data = _many()
    read = []

    def streamed(rows):
        for row in rows:
            read.append(row["batch_id"])
            yield row

    rows = data["released"]
    data = {**data, "released": streamed(rows), "released_count": len(rows)}
    parts = render.render_audit_report_parts(audit_view(data), fmt)
    table = "## Batches released" if fmt == "md" else "<h2>Batches released</h2>"
    written = ""
    while table not in written:
        written += str(next(parts))  # a part may be Markup: joined as text, not escaped
    assert read == []  # everything before their table is written before one is read
    assert f"{len(rows)} / {len(data['rejected'])}" in written  # counted apart, up front
    written += "".join(map(str, parts))
    assert read == [r["batch_id"] for r in rows]
    assert written == render.render_audit_report(audit_view(_many()), fmt)


def test_a_pdf_is_laid_out_whole_and_says_so():
    with pytest.raises(ValueError, match="a PDF is laid out whole"):
        render.render_audit_report_parts(audit_view(_many()), "pdf")


def test_the_command_writes_the_report_in_parts_to_a_file_whole_or_not_at_all(tmp_path):
    from cmprep.render.output import write_output

    target = tmp_path / "report.md"
    write_output(iter(["# one\n", "two\n"]), target)
    assert target.read_text() == "# one\ntwo\n"

    def broken():
        yield "# half a report\n"
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        write_output(broken(), target)
    assert target.read_text() == "# one\ntwo\n"  # the earlier report, not half of a new one
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary file left
