"""The printed record and checklist as paper: what a technician and a reviewer hold.

An 80-character donor id wraps inside its column (HTML, WeasyPrint PDF, Chromium print)
and pushes no column off the A4 page; the checklist has lines for each step's lots and
instruments, a wide entry column, initials per value and the source as a footnote; check
items ticked in guided mode are printed with who ticked them; alert bands are worded as
alerts; QC numbers print to their precision, large counts as powers of ten; a deviation's
row keeps its description; and printed from Chromium the record and checklist carry the
batch id and page numbers on every page.

The browser tests drive Debian's /usr/bin/chromium with Playwright and read the PDF with
pdftotext (Debian's poppler-utils); without them they are skipped with the reason, unless
$CMPREP_REQUIRE_BROWSER is set (CI), where they fail instead.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock, approve_file, seed_people
from hypothesis import given
from hypothesis import strategies as st

from cmprep import render
from cmprep.domain.audit import describe
from cmprep.errors import Refused
from cmprep.protocol.models import Range
from cmprep.render.numbers import (
    computed_from,
    plain_powers,
    quantity,
    significant,
    superscript_html,
    typed_digits,
)
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
GENERATED = "2026-11-10T12:00:00Z"
LONG_ID = ("DONOR-" + "UCX7Q2" * 13)[:74] + "END42Z"  # 80 characters, no break opportunity
A4_WIDTH_PT = 595.28
MARGIN_PT = 15 / 25.4 * 72  # the @page side margins of print.css

PROTOCOL_YAML = """\
id: cm-print-test
version: '1.0'
title: Print layout test conditioned medium
summary: A small protocol for the print layout tests.
sources:
  - id: nasiri2026
    citation: >-
      Nasiri N, Hemmati P, Tabaie SM. Conditioned medium from mesenchymal stem cells.
      Iran J Basic Med Sci 2026; 29:181-190
steps:
  - id: isolation
    title: MSC source and donor identity
    instructions: Copy the donor identifier exactly as written on the cell bank label.
    checks:
      - Cell bank label, certificate and donor identifier agree
      - Donor consent records are on file
    parameters:
      - {name: donor_id, label: Donor identifier, type: text}
      - {name: serum_percent, label: Serum in conditioning medium, unit: '%',
         spec: {max: 2}, alert: {max: 0}, limits: {min: 0, max: 100}, source: nasiri2026}
  - id: spin
    title: Low-speed spin
    instructions: Spin the medium. Centrifuge ID recorded on the run sheet.
    materials: [conditioning medium]
    equipment: [centrifuge]
    parameters:
      - {name: rcf, label: Relative centrifugal force, unit: x g, spec: {min: 300, max: 500},
         source: nasiri2026, limits: {min: 0, max: 100000}}
      - {name: temperature, label: Centrifuge temperature, unit: °C, spec: {min: 2, max: 8},
         source: site choice, limits: {min: -20, max: 40}, severity: minor}
  - id: qc
    title: Release QC
    instructions: Enter each result from the signed report.
    checks:
      - Every result transcribed from a signed report
    parameters:
      - {name: mycoplasma_passed, label: Mycoplasma test passed (not detected), type: yes/no,
         method: mycoplasma, spec: {equals: true}, source: site choice, severity: critical}
      - {name: cell_count, label: Cells harvested, unit: cells, method: other,
         limits: {min: 0}}
      - {name: confluence, label: Confluence at harvest, unit: '%', method: other,
         spec: {min: 70, max: 80}, alert: {min: 72, max: 78}, source: nasiri2026,
         limits: {min: 0, max: 100}}
"""


# --- a batch with a long value, deviations and QC --------------------------------------------
@pytest.fixture
def app(tmp_path: Path) -> Iterator[Services]:
    path = tmp_path / "cm-print-test.yaml"
    path.write_text(PROTOCOL_YAML, encoding="utf-8")
    store = SQLiteStore(tmp_path / "print.db", create=True)
    svc = seed_people(Services(store, clock=Clock()))
    approve_file(svc, path)
    yield svc
    store.close()


@pytest.fixture
def batch_id(app: Services) -> str:
    """B-PRINT-1: the long donor id, two deviations (spin), QC with a large count; the
    first check of isolation ticked by alice, the second left unticked."""
    clock = app.batches.ctx.clock
    app.batches.start("cm-print-test", "alice", "B-PRINT-1")
    clock.advance(minutes=30)
    app.batches.record(
        "B-PRINT-1", "isolation", {"donor_id": LONG_ID, "serum_percent": "0"}, "alice"
    )
    app.batches.confirm_checks("B-PRINT-1", "isolation", ["1"], "alice")
    clock.advance(minutes=30)
    app.batches.record("B-PRINT-1", "spin", {"rcf": "600 x g", "temperature": "12"}, "bob")
    clock.advance(hours=2)
    app.batches.record(
        "B-PRINT-1",
        "qc",
        {"mycoplasma_passed": "yes", "cell_count": "260000000", "confluence": "75.0"},
        "alice",
    )
    return "B-PRINT-1"


def _record(app: Services, batch_id: str, fmt: str = "html") -> Any:
    return render.render_record(app.documents.record_view(batch_id, GENERATED), fmt)


def _checklist(app: Services, fmt: str = "html") -> Any:
    view = app.documents.checklist_view("cm-print-test", GENERATED)
    return render.render_checklist(view, fmt)


# --- numbers: one pure module, property-tested --------------------------------------------------
def _back(text: str) -> float:
    return float(text.replace(" x 10^", "e"))


@given(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False).filter(lambda x: x != 0),
    st.integers(min_value=1, max_value=8),
)
def test_a_number_to_n_figures_reads_back_within_half_its_last_figure(x, digits):
    text = significant(x, digits)
    assert "e" not in text and "E" not in text  # never 2.6e+08
    last_figure = 10 ** (math.floor(math.log10(abs(x))) - digits + 1)
    assert abs(_back(text) - x) <= last_figure / 2 * 1.000001 + 1e-300


@given(st.floats(min_value=1e6, max_value=1e15), st.integers(min_value=1, max_value=6))
def test_a_count_of_a_million_or_more_prints_as_a_power_of_ten(x, digits):
    text = significant(x, digits)
    mantissa, _, exponent = text.partition(" x 10^")
    assert exponent and 1 <= float(mantissa) < 10
    assert len(mantissa.replace(".", "")) == digits  # its figures, trailing zeros kept


@given(st.integers(min_value=1, max_value=999_999), st.integers(min_value=0, max_value=4))
def test_a_typed_number_keeps_its_figures(n, decimals):
    typed = f"{n / 10**decimals:.{decimals}f}"
    shown = quantity(float(typed), typed, None)
    if float(typed) >= 1e-3:
        assert shown == typed  # its figures, trailing zeros and all
    else:
        assert _back(shown) == float(typed)  # 0.0001 is 1 x 10^-4


def test_numbers_print_as_a_person_writes_them():
    assert significant(701.447, 3) == "701"
    assert quantity(701.447, "2000 rpm", "x g") == "701 x g"  # computed: 3 figures
    assert computed_from("2000 rpm", "x g") and not computed_from("0.5 L", "mL")
    assert quantity(500.0, "0.5 L", "mL") == "500 mL"  # scaled from what was typed
    assert quantity(2.6e8, "260000000", "cells") == "2.6 x 10^8 cells"
    assert quantity(272090909.0, "", "cells", derived=True) == "2.72 x 10^8 cells"
    assert quantity(37.0, "37.0", "°C") == "37.0 °C"
    assert quantity(2.6e8, "260000000", "cells", precision=4) == "2.600 x 10^8 cells"
    assert typed_digits("0.0050") == 2 and typed_digits("500") == 1 and typed_digits("") is None
    assert plain_powers("VEGF 2.6e+08 pg/mL, 1e-05") == "VEGF 2.6 x 10^8 pg/mL, 1 x 10^-5"
    html = str(superscript_html("<b>2.6 x 10^8</b> per 10^6 cells"))
    assert html == "&lt;b&gt;2.6 × 10<sup>8</sup>&lt;/b&gt; per 10<sup>6</sup> cells"
    with pytest.raises(ValueError):
        significant(float("nan"), 3)


# --- alert bands in words --------------------------------------------------------------------------
def test_an_alert_band_is_worded_as_when_the_alert_rings():
    assert Range(max=0).describe_alert("%") == "alert if above 0 %"
    assert Range(min=72).describe_alert("%") == "alert if below 72 %"
    assert Range(min=72, max=78).describe_alert("%") == "alert outside 72-78 %"
    assert Range(min=5, max=5).describe_alert() == "alert unless 5"
    assert Range(max=0).describe("%") == "<= 0 %"  # describe itself is unchanged


def test_the_checklist_words_alert_bands_as_alerts(app):
    html, md = _checklist(app), _checklist(app, "md")
    for text in (html, md):
        assert "alert if above 0 %" in text and "alert outside 72-78 %" in text
    assert "<td>&lt;= 0 %</td>" not in html


# --- long values -------------------------------------------------------------------------------------
def test_the_value_tables_lay_out_from_their_widths_and_break_a_long_token(app, batch_id):
    html = _record(app, batch_id)
    css = html[html.index("<style>") : html.index("</style>")]
    fixed = re.search(r"\}\s*([^{}]*)\{\s*table-layout: fixed;\s*\}\s*/\* in those", css)
    assert fixed is not None
    for table in ("table.values", "table.trace", "table.deviations", "table.holds"):
        assert table in fixed.group(1), table
    assert re.search(r"table\.values td,[^{]*\{\s*overflow-wrap: anywhere", css)
    assert LONG_ID in html  # whole, as typed, escaped by nothing
    md = _record(app, batch_id, "md")
    assert LONG_ID in md


# --- the checklist --------------------------------------------------------------------------------------
def _step_section(html: str, step_id: str) -> str:
    found = re.search(rf'<section class="step[^"]*" id="step-{step_id}">.*?</section>', html, re.S)
    assert found, step_id
    return found.group(0)


def test_each_step_has_lines_for_its_lots_and_instruments_with_their_kind(app):
    spin = _step_section(_checklist(app), "spin")
    assert '<table class="used">' in spin
    assert '<b>conditioning medium</b> <span class="small">lot</span>' in spin
    assert '<b>centrifuge</b> <span class="small">ID</span>' in spin
    assert "Lot number or instrument ID" in spin and "Expiry / calibration due" in spin
    md = _checklist(app, "md")
    assert "| conditioning medium lot |" in md and "| centrifuge ID |" in md
    assert '<table class="used">' not in _step_section(_checklist(app), "isolation")


def test_every_value_has_an_initials_field_and_the_source_is_a_footnote(app):
    spin = _step_section(_checklist(app), "spin")
    head = re.search(r"<thead>\s*<tr>(.*?)</tr>", spin.split('<table class="params">')[1], re.S)
    assert head is not None
    columns = re.findall(r'<th class="([^"]+)">', head.group(1))
    assert columns == ["c-param", "c-spec", "c-alert", "c-limits", "c-entry", "c-init"]
    rows = spin.split('<table class="params">')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("<tr>") == 2 and rows.count('<td class="entry">') == 4  # value, initials
    assert '<sup class="fn" title="Nasiri et al. 2026">1</sup>' in spin
    assert '<sup class="fn" title="site choice">2</sup>' in spin
    assert "Source: Nasiri et al. 2026" in spin and "Source: site choice" in spin
    assert ">Source</th>" not in spin
    md = _checklist(app, "md")
    assert "| Parameter | Unit | Spec | Alert band | Hard limits | Entered value | Initials |" in md
    assert "300-500 x g \\[1\\]" in md and "\\[1\\] Source: Nasiri et al. 2026" in md


def test_the_entry_column_is_the_widest_in_the_stylesheet(app):
    html = _checklist(app)
    widths = dict(re.findall(r"\.params \.(c-[a-z]+)[^{]*\{\s*width: (\d+)%", html))
    assert set(widths) >= {"c-param", "c-spec", "c-alert", "c-limits", "c-init"}
    assert "c-entry" not in widths  # it takes the rest
    assert 100 - sum(int(w) for w in widths.values()) > max(int(w) for w in widths.values())


# --- check items ----------------------------------------------------------------------------------------
def test_ticked_checks_are_printed_with_who_ticked_them(app, batch_id):
    html = _record(app, batch_id)
    isolation = _step_section(html, "isolation")
    assert "Cell bank label, certificate and donor identifier agree" in isolation
    assert re.search(
        r"☑</span>Cell bank label, certificate and donor identifier agree "
        r'<span class="small">— ticked by <span class="ident">alice</span>, 2026-11-02 ',
        isolation,
    )
    assert re.search(
        r"☐</span>Donor consent records are on file <span class=\"small\">— not ticked", isolation
    )
    md = _record(app, batch_id, "md")
    assert "- [x] Cell bank label, certificate and donor identifier agree (ticked by alice, " in md
    assert "- [ ] Donor consent records are on file (not ticked)" in md
    assert "☐" in _step_section(html, "qc")  # its check was left unticked


def test_ticking_checks_by_text_or_number_is_in_the_trail(app, batch_id):
    app.batches.confirm_checks(batch_id, "isolation", ["Donor consent records are on file"], "bob")
    app.batches.confirm_checks(batch_id, "qc", ["1"], "bob")
    batch = app.batches.batch(batch_id)
    assert batch.steps["isolation"].checks["Donor consent records are on file"]["by"] == "bob"
    assert (
        batch.steps["isolation"].checks["Cell bank label, certificate and donor identifier agree"][
            "by"
        ]
        == "alice"
    )
    rows = [describe(e) for e in batch.events if e.type == "checks_confirmed"]
    assert [r["what"] for r in rows] == [
        "checks ticked at isolation",
        "checks ticked at isolation",
        "checks ticked at qc",
    ]
    assert rows[-1]["new"] == "Every result transcribed from a signed report"
    assert "☐" not in _step_section(_record(app, batch_id), "qc")


def test_ticking_refuses_what_is_not_a_check_item_of_a_recorded_step(app, batch_id):
    with pytest.raises(Refused) as err:
        app.batches.confirm_checks(batch_id, "isolation", ["Label checked", "9"], "alice")
    assert "nothing was ticked" in err.value.message
    assert "'Label checked' is not a check item of isolation" in err.value.problems
    assert "'9' is not a check item of isolation" in err.value.problems
    assert "1. Cell bank label" in err.value.problems[-1]
    with pytest.raises(Refused, match="already ticked"):
        app.batches.confirm_checks(batch_id, "isolation", ["1"], "bob")
    with pytest.raises(Refused, match="no check items"):
        app.batches.confirm_checks(batch_id, "spin", ["1"], "alice")
    app.batches.start("cm-print-test", "alice", "B-PRINT-2")
    with pytest.raises(Refused, match="has not been recorded"):
        app.batches.confirm_checks("B-PRINT-2", "isolation", ["1"], "alice")
    with pytest.raises(Refused):
        app.batches.confirm_checks(batch_id, "isolation", ["1"], "quinn")  # QA does not record


# --- QC table and numbers in the record --------------------------------------------------------------
def test_the_qc_table_hyphenates_words_and_prints_counts_as_powers_of_ten(app, batch_id):
    html = _record(app, batch_id)
    qc = html[html.index('<section class="qc" id="qc">') :]
    qc = qc[: qc.index("</section>")]
    assert "2.6 × 10<sup>8</sup> cells" in qc
    assert "260000000" not in qc.replace(LONG_ID, "") and "e+08" not in qc
    assert "75.0 %" in qc  # as typed: the trailing zero is a figure
    assert re.search(r"table\.qc td \{[^}]*hyphens: auto", html)
    md = _record(app, batch_id, "md")
    assert "2.6 x 10^8 cells" in md


def test_a_deviation_row_and_its_description_are_one_group(app, batch_id):
    html = _record(app, batch_id)
    table = html[html.index('<table class="deviations">') :]
    table = table[: table.index("</table>")]
    groups = re.findall(r'<tbody class="dev-group">(.*?)</tbody>', table, re.S)
    assert len(groups) == 2
    for group in groups:
        assert group.count("<tr>") == 2 and 'class="msg"' in group
    assert re.search(r"tbody\.dev-group \{\s*break-inside: avoid", html)


# --- PDF (WeasyPrint) and Chromium print -----------------------------------------------------------
def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CMPREP_REQUIRE_BROWSER"):
            pytest.fail(f"CMPREP_REQUIRE_BROWSER is set but {tool} is missing (poppler-utils)")
        pytest.skip(f"{tool} is missing: install Debian's poppler-utils")
    return found


def _pages(pdf: Path) -> list[str]:
    """The text of each page (pdftotext -layout)."""
    _need("pdftotext")
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


def _words(pdf: Path) -> list[tuple[int, float, str]]:
    """(page, right edge in pt, word) of every word (pdftotext -bbox)."""
    _need("pdftotext")
    xhtml = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    words, page = [], 0
    for line in xhtml.splitlines():
        if "<page " in line:
            page += 1
        found = re.search(
            r'<word xMin="[\d.]+" yMin="[\d.]+" xMax="([\d.]+)"[^>]*>(.*)</word>', line
        )
        if found:
            words.append((page, float(found.group(1)), found.group(2)))
    return words


def _assert_nothing_cut(pdf: Path) -> None:
    """Every word lies inside the page's right margin, and the long value is whole."""
    words = _words(pdf)
    right = A4_WIDTH_PT - MARGIN_PT + 1
    outside = [(p, x, w) for p, x, w in words if x > right]
    assert outside == [], f"words past the right margin: {outside[:5]}"
    joined = "".join(w for _, _, w in words)
    assert LONG_ID in joined or LONG_ID[-30:] in joined


def test_the_weasyprint_record_keeps_spec_and_result_beside_the_long_value(app, batch_id, tmp_path):
    pytest.importorskip("weasyprint")
    pdf = tmp_path / "record.pdf"
    pdf.write_bytes(_record(app, batch_id, "pdf"))
    _assert_nothing_cut(pdf)
    page = next(t for t in _pages(pdf) if "DONOR-" in t)
    tail = page[page.index("Donor identifier") :]
    assert LONG_ID[-6:] in tail  # the end of the value, wrapped, not cut
    first_line = tail.splitlines()[0]
    assert first_line.rstrip().endswith("recorded")  # the Result column, on the page
    assert "—" in first_line  # the Spec column


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CMPREP_REQUIRE_BROWSER"):
            pytest.fail("CMPREP_REQUIRE_BROWSER is set but /usr/bin/chromium is missing")
        pytest.skip("no /usr/bin/chromium: install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install '.[dev]')")
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield found
        found.close()


def _print(browser: Any, html: str, tmp_path: Path, name: str) -> Path:
    """The HTML as Chromium prints it (A4 from the stylesheet), as a PDF file."""
    source = tmp_path / f"{name}.html"
    source.write_text(html, encoding="utf-8")
    page = browser.new_page()
    try:
        page.goto(source.as_uri())
        pdf = tmp_path / f"{name}-chromium.pdf"
        page.pdf(path=str(pdf), prefer_css_page_size=True, format="A4")
    finally:
        page.close()
    return pdf


def test_chromium_prints_the_batch_id_and_page_numbers_on_every_page(
    app, batch_id, browser, tmp_path
):
    pdf = _print(browser, _record(app, batch_id), tmp_path, "record")
    pages = _pages(pdf)
    assert len(pages) >= 2
    for number, text in enumerate(pages, 1):
        assert f"Batch {batch_id}" in text, f"page {number} has no batch id"
        assert f"Page {number} of {len(pages)}" in text, f"page {number} has no page number"
        assert "Batch record" in text.splitlines()[0]  # the running header, at the top
    _assert_nothing_cut(pdf)
    footer = f"Batch {batch_id} · chain head"
    assert [t.count(footer) for t in pages] == [1] * len(pages)  # the footer, once a page


def test_chromium_prints_the_checklist_with_its_batch_no_field_on_every_page(
    app, browser, tmp_path
):
    pdf = _print(browser, _checklist(app), tmp_path, "checklist")
    pages = _pages(pdf)
    assert len(pages) >= 2
    for number, text in enumerate(pages, 1):
        assert "batch no." in text.splitlines()[0], f"page {number} has no batch no. field"
        assert f"Page {number} of {len(pages)}" in text


def test_chromium_lays_out_the_checklist_entry_column_widest(app, browser, tmp_path):
    source = tmp_path / "checklist.html"
    source.write_text(_checklist(app), encoding="utf-8")
    page = browser.new_page(viewport={"width": 794, "height": 1123})  # A4 at 96 dpi
    try:
        page.emulate_media(media="print")
        page.goto(source.as_uri())
        widths = page.evaluate(
            """() => [...document.querySelectorAll('#step-spin table.params th')]
                 .map(th => [th.className, th.getBoundingClientRect().width])"""
        )
        used = page.evaluate(
            """() => [...document.querySelectorAll('#step-spin table.used td.entry')]
                 .map(td => td.getBoundingClientRect().height)"""
        )
    finally:
        page.close()
    by_class = dict(widths)
    assert by_class["c-entry"] == max(by_class.values())
    assert used and min(used) >= 30  # room to write a lot number by hand (9 mm)


def test_the_running_header_text_cannot_break_out_of_the_style_element(app, tmp_path):
    from cmprep.render.documents import css_string

    assert str(css_string('a"}</style><script>')) == (
        '"a\\000022\\00007d\\00003c\\00002fstyle\\00003e\\00003cscript\\00003e"'
    )
    html = _checklist(app)
    style = html[html.index("<style>") : html.index("</style>")]
    assert "<" not in style.replace("<style>", "")
