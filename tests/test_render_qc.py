"""The batch record's Quality control section, materials and equipment, and ledger head.

Batches are built through the real service (the QC protocol of test_qc), so the record is
rendered from the same qc_summary the CLI passes in.
"""

from __future__ import annotations

import re

import pytest
from conftest import PASSWORD, approve_file
from markupsafe import escape
from test_qc import HISTORY, PROTOCOL

from cmprep import render
from cmprep.service.views import record_view

SCRIPT = "<script>x</script>"
GENERATED = "2026-11-20T12:00:00Z"

CSV = """analyte,value,unit,method,replicate
VEGF,0.30,ng/mL,ELISA,1
vegf,320,pg/mL,ELISA,2
VEGF,310,pg/mL,elisa,3
IL-6,900,pg/mL,ELISA,1
"""


@pytest.fixture
def proto(svc, tmp_path):
    path = tmp_path / "qc-mini.yaml"
    path.write_text(PROTOCOL)
    return approve_file(svc, path)


def _released(svc, clock, proto, batch_id, vegf):
    svc.batches.start(proto, "alice", batch_id)
    clock.advance(hours=1)
    svc.batches.record(batch_id, "isolation", {"source_tissue": "UC"}, "alice")
    svc.batches.skip(batch_id, "hypoxia", "alice", "normoxic")
    svc.batches.record(
        batch_id, "qc", {"vegf": f"{vegf} pg/mL", "sterility_passed": "yes"}, "alice"
    )
    clock.advance(hours=1)
    svc.quality.sign_review(batch_id, "rita", PASSWORD, "reviewed")
    svc.quality.release(batch_id, "quinn", PASSWORD)


@pytest.fixture
def built(svc, clock, proto):
    """B1 after eight released batches: VEGF from three replicates, IL-6 above its
    literature range, the hypoxia step skipped, a centrifuge and two lots at isolation
    (one with a malicious material name)."""
    for i, v in enumerate(HISTORY):
        _released(svc, clock, proto, f"H{i}", v)
    svc.materials.register_lot("FBS-1", "FBS", "2026-12-31", "alice")
    svc.materials.register_lot("EVIL-1", SCRIPT, "2026-12-31", "alice")
    svc.materials.register_equipment(
        "CF-02", "centrifuge", "2027-01-15", "alice", rotor_radius_cm=16.5
    )
    svc.batches.start(proto, "alice", "B1")
    clock.advance(hours=1)
    svc.batches.record(
        "B1",
        "isolation",
        {"source_tissue": "UC"},
        "alice",
        lots=["FBS-1", "EVIL-1"],
        equipment=["CF-02"],
    )
    svc.batches.skip("B1", "hypoxia", "alice", "normoxic")
    batch = svc.batches.batch("B1")
    entries, reps = svc.qc.parse_csv(batch.protocol.step("qc"), CSV, "elisa.csv")
    svc.batches.record("B1", "qc", {**entries, "sterility_passed": "yes"}, "alice", replicates=reps)
    batch = svc.batches.batch("B1")
    return svc, batch, svc.qc.summary(batch), svc.audit.ledger_head()


def _html(built):
    _, batch, qc, head = built
    return render.render_record(
        record_view(batch, generated_at=GENERATED, qc=qc, ledger_head=head), "html"
    )


def _md(built):
    _, batch, qc, head = built
    return render.render_record(
        record_view(batch, generated_at=GENERATED, qc=qc, ledger_head=head), "md"
    )


def _qc_section(html: str) -> str:
    match = re.search(r'<section class="qc" id="qc">.*?</section>', html, re.S)
    assert match, "no Quality control section"
    return match.group(0)


def _qc_row(section: str, label: str) -> str:
    match = re.search(rf"<tr[^>]*>\s*<td><b>{re.escape(label)}</b>.*?</tr>", section, re.S)
    assert match, f"no QC row for {label}"
    return match.group(0)


def _md_row(md: str, label: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| **{label}** |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_the_qc_section_comes_after_the_steps_and_before_holds_and_deviations(built):
    html = _html(built)
    steps, qc = html.index("<h2>Steps</h2>"), html.index("<h2>Quality control</h2>")
    assert steps < qc < html.index("<h2>Holds</h2>") < html.index("<h2>Deviations</h2>")
    assert (
        "Reference ranges are the review's typical MSC-CM composition: information only; "
        "deviations come from the release spec and Westgard rules."
    ) in html.replace("&#39;", "'")


def test_a_qc_row_has_method_result_spec_mark_reference_and_replicates(built):
    vegf = _qc_row(_qc_section(_html(built)), "VEGF")
    assert "<td>ELISA</td>" in vegf
    assert "310 pg/mL" in vegf
    assert "<td>&gt;= 20 pg/mL</td>" in vegf  # the release spec
    assert "✓ in spec" in vegf
    assert "100-500 pg/mL (Nasiri et al. 2026)" in vegf
    assert "n=3, CV 3.2 %" in vegf
    assert "300, 320, 310 pg/mL" in vegf


def test_a_value_outside_the_reference_range_is_flagged_as_information_only(built):
    batch = built[1]
    note = batch.steps["qc"].values["il6"].note
    assert "above the literature reference range" in note
    il6 = _qc_row(_qc_section(_html(built)), "IL-6")
    assert "900 pg/mL" in il6
    assert '<span class="ref-flag" title="' in il6 and "ℹ above reference range" in il6
    assert str(escape(note)) in il6  # the whole note is kept in the title
    assert "n=1" in il6 and "CV" not in il6  # a single replicate has no CV
    assert "recorded" in il6 and "✗" not in il6  # no release spec: not a deviation
    # and beside the value in the step's own table
    step = re.search(r'<section class="step done" id="step-qc">.*?</section>', _html(built), re.S)
    assert str(escape(note)) in step.group(0)


def test_a_westgard_deviation_is_named_with_its_rule(built, clock, proto):
    svc = built[0]
    # rejection rules from 5 released batches (the site's setting; 20 unless set)
    svc.settings.change("westgard_baseline", "5", "root", PASSWORD, "a test's short history")
    svc.batches.start(proto, "alice", "B2")
    svc.batches.record("B2", "isolation", {"source_tissue": "UC"}, "alice")
    svc.batches.skip("B2", "hypoxia", "alice", "normoxic")
    svc.batches.record("B2", "qc", {"vegf": "345 pg/mL", "sterility_passed": "yes"}, "alice")
    batch = svc.batches.batch("B2")
    [dev] = batch.deviations
    qc = svc.qc.summary(batch)
    html = render.render_record(record_view(batch, generated_at=GENERATED, qc=qc), "html")
    vegf = _qc_row(_qc_section(html), "VEGF")
    assert f"{dev} (Westgard 1-3s)" in vegf and 'fill="#b00020"' in vegf  # the red last dot
    md = render.render_record(record_view(batch, generated_at=GENERATED, qc=qc), "md")
    assert _md_row(md, "VEGF")[8] == f"{dev} (Westgard 1-3s)"


def test_an_unmeasured_analyte_shows_a_dash(built):
    ev = _qc_row(_qc_section(_html(built)), "EV yield")
    assert "NTA" in ev
    cells = re.findall(r"<td[^>]*>(.*?)</td>", ev, re.S)
    assert cells[2] == "—" and cells[4] == "—"


def test_a_trended_analyte_with_history_gets_a_sparkline(built):
    section = _qc_section(_html(built))
    vegf = _qc_row(section, "VEGF")
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in vegf and 'class="sparkline"' in vegf
    assert "history: n=8, mean 300, SD 10 pg/mL" in vegf
    assert "<svg" not in _qc_row(section, "IL-6")  # not trended


def test_the_markdown_qc_table_gives_the_history_as_text(built):
    md = _md(built)
    assert "## Quality control" in md and "<svg" not in md
    vegf = _md_row(md, "VEGF")
    assert vegf[1] == "ELISA" and vegf[2] == "310 pg/mL" and vegf[4] == "✓ in spec"
    assert vegf[5] == "100-500 pg/mL (Nasiri et al. 2026)"
    assert vegf[7] == "n=3, CV 3.2 %"
    assert vegf[9] == "history: n=8, mean 300, SD 10 pg/mL"
    il6 = _md_row(md, "IL-6")
    assert il6[6] == "ℹ above reference range"
    assert len(il6) == len(vegf) == 10
    assert md.index("## Steps") < md.index("## Quality control") < md.index("## Deviations")


def test_the_step_block_lists_materials_and_equipment(built):
    html = _html(built)
    step = re.search(r'id="step-isolation">.*?</section>', html, re.S).group(0)
    assert "<th>Materials</th>" in step and "FBS lot FBS-1 (exp 2026-12-31)" in step
    assert "<th>Equipment</th>" in step
    assert "centrifuge CF-02 (calibration due 2027-01-15, rotor 16.5 cm)" in step
    md = _md(built)
    assert "- Materials: FBS lot FBS-1 (exp 2026-12-31); " in md
    assert "- Equipment: centrifuge CF-02 (calibration due 2027-01-15, rotor 16.5 cm)" in md
    assert "Materials" not in re.search(r'id="step-qc">.*?</section>', html, re.S).group(0)


def test_a_malicious_material_name_is_escaped(built):
    html, md = _html(built), _md(built)
    assert SCRIPT not in html and "&lt;script&gt;x&lt;/script&gt; lot EVIL-1" in html
    assert SCRIPT not in md and r"\<script\>x\</script\> lot EVIL-1" in md


def test_the_footer_prints_the_ledger_head_beside_the_chain_head(built):
    _, batch, _, head = built
    assert re.fullmatch(r"[0-9a-f]{64}", head)
    html = _html(built)
    footer = html[html.index('<footer class="integrity">') :]
    assert footer.index(batch.head_hash) < footer.index("Ledger head") < footer.index(head)
    assert (
        "keep this value outside the database; <code>cmprep audit verify</code> prints it" in footer
    )
    md = _md(built)
    assert (
        f"- Ledger head: `{head}` (keep this value outside the database; `cmprep audit verify` prints it)"
        in md
    )


def test_a_ledger_head_that_is_not_a_hash_is_refused(built):
    with pytest.raises(ValueError, match="64 hex digits"):
        render.render_record(record_view(built[1], ledger_head="<b>x</b>"), "md")


def test_without_qc_or_ledger_head_the_record_is_as_before(built):
    batch = built[1]
    for fmt in ("html", "md"):
        text = render.render_record(record_view(batch, generated_at=GENERATED), fmt)
        assert "Quality control" not in text and "Ledger head" not in text
        assert "Reference ranges are" not in text
        assert text == render.render_record(record_view(batch, generated_at=GENERATED, qc=[]), fmt)
    # the step blocks still show what was used
    assert "FBS lot FBS-1" in render.render_record(
        record_view(batch, generated_at=GENERATED), "html"
    )


def test_the_record_with_qc_as_pdf(built):
    pytest.importorskip("weasyprint")
    _, batch, qc, head = built
    pdf = render.render_record(
        record_view(batch, generated_at=GENERATED, qc=qc, ledger_head=head), "pdf"
    )
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
