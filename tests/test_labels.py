"""Lot labels: the PDF is rasterised as a printer would and both codes are read back to the
lot id; every print and reprint is an event, a reprint only with its reason."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import approve_bundled, present, seed_people
from jinja2 import meta

from cmprep.cli import Shell, main
from cmprep.domain import lineage as ln
from cmprep.errors import MissingExtra, NotFound, Refused
from cmprep.render.labels import (
    LabelSheet,
    code128_modules,
    code128_values,
    environment,
    label_html,
    render_labels,
)
from cmprep.service import Services
from cmprep.store import open_store


def rasterise(pdf: bytes, folder: Path) -> list[Path]:
    """Every page of PDF as a 600 dpi greyscale PNG, by poppler's pdftoppm."""
    tool = shutil.which("pdftoppm")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("pdftoppm (poppler-utils) is missing; .ci/run installs it")
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    (folder / "labels.pdf").write_bytes(pdf)
    subprocess.run(
        [tool, "-r", "600", "-gray", "-png", str(folder / "labels.pdf"), str(folder / "page")],
        check=True,
    )
    return sorted(folder.glob("page-*.png"))


def decoded(page: Path) -> dict[str, str]:
    """What a scanner reads on PAGE: format name -> text."""
    import zxingcpp
    from PIL import Image

    return {r.format.name: r.text for r in zxingcpp.read_barcodes(Image.open(page))}


@pytest.fixture
def lot(svc) -> str:
    """An aliquot of a released concentrate, ready to label."""
    lin = svc.lineage
    lin.register_donor("D-0001", "ELIG-1", "ICF-1", "alice")
    lin.release("D-0001", "quinn")
    lin.derive([("D-0001", None)], [("CONC-20261129-001", 4)], ln.CONCENTRATE, "mL", "alice",
               material="MSC-CM concentrate 20x", expiry="2027-05-29")  # fmt: skip
    lin.release("CONC-20261129-001", "quinn")
    lin.split("CONC-20261129-001", 4, 1, "alice")
    return "CONC-20261129-001-03"


def test_a_printed_label_scans_back_to_its_lot_id(svc, lot, tmp_path):
    sheet, pdf = svc.lineage.print_labels(lot, 2, "alice")
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
    assert (sheet.lot, sheet.product, sheet.status, sheet.expiry, sheet.quantity) == (
        lot, "MSC-CM concentrate 20x", "quarantine", "2027-05-29", "1 mL"
    )  # fmt: skip
    pages = rasterise(pdf, tmp_path)
    assert len(pages) == 2  # one label a page, one page a copy
    for page in pages:
        assert decoded(page) == {"QRCode": lot, "Code128": lot}


def test_the_page_is_the_label_size(svc, lot, tmp_path):
    _, pdf = svc.lineage.print_labels(lot, 1, "alice")
    from PIL import Image

    [page] = rasterise(pdf, tmp_path)
    width, height = Image.open(page).size  # 600 dpi
    assert (round(width / 600 * 25.4), round(height / 600 * 25.4)) == (50, 25)


def test_every_print_is_an_event_and_a_reprint_needs_a_reason(svc, lot):
    svc.lineage.print_labels(lot, 2, "alice")
    with pytest.raises(Refused, match="a reprint needs a reason") as err:
        svc.lineage.print_labels(lot, 1, "alice")
    assert err.value.hint is not None and err.value.hint.kind == "give_reason"
    with pytest.raises(Refused, match="a reprint needs a reason"):
        svc.lineage.print_labels(lot, 1, "alice", reason="   ")
    sheet, _ = svc.lineage.print_labels(lot, 1, "bob", reason="label smeared by ethanol")
    assert sheet.reprint
    prints = [e for e in svc.store.events("@materials") if e.type == ln.LABEL_PRINTED]
    assert [(e.actor, e.payload["copies"], e.payload["reprint"], e.reason) for e in prints] == [
        ("alice", 2, False, None),
        ("bob", 1, True, "label smeared by ethanol"),
    ]
    assert [p["copies"] for p in svc.lineage.material(lot).labels] == [2, 1]


def test_nothing_is_recorded_when_the_labels_cannot_be_drawn(svc, lot, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    with pytest.raises(MissingExtra, match="WeasyPrint") as err:
        svc.lineage.print_labels(lot, 1, "alice")
    assert err.value.hint is not None and err.value.hint.data["extra"] == "pdf"
    monkeypatch.setitem(sys.modules, "segno", None)
    with pytest.raises(MissingExtra, match="segno") as err:
        svc.lineage.print_labels(lot, 1, "alice")
    assert err.value.hint is not None and err.value.hint.data["extra"] == "labels"
    assert not [e for e in svc.store.events("@materials") if e.type == ln.LABEL_PRINTED]


@pytest.mark.parametrize(
    "copies,problem", [(0, "0 copies: expected 1-500"), (501, "501 copies: expected 1-500")]
)
def test_a_number_of_copies_out_of_range_is_refused(svc, lot, copies, problem):
    with pytest.raises(Refused, match=problem):
        svc.lineage.print_labels(lot, copies, "alice")


def test_nothing_left_is_not_labelled_and_an_unknown_lot_is_not_found(svc, lot):
    with pytest.raises(
        Refused, match="CONC-20261129-001 is consumed: there is nothing left to label"
    ):
        svc.lineage.print_labels("CONC-20261129-001", 1, "alice")
    svc.lineage.destroy(lot, "alice", "vial cracked")
    with pytest.raises(Refused, match="destroyed: there is nothing left to label"):
        svc.lineage.print_labels(lot, 1, "alice")
    with pytest.raises(NotFound):
        svc.lineage.print_labels("NOPE-1", 1, "alice")


def test_a_person_without_the_right_may_not_print(svc, lot):
    with pytest.raises(Refused, match="root is admin"):
        svc.lineage.print_labels(lot, 1, "root")


# --- the template and the codes ------------------------------------------------------------------
SHEET = LabelSheet(
    lot="K1-01",
    product="<b>CM</b> & co",
    kind="aliquot",
    status="released",
    expiry=None,
    quantity="1 mL",
    batch_id=None,
    copies=1,
    printed_at="2026-11-29T10:00:00Z",
    printed_by="alice",
    reprint=True,
)


def test_the_template_reads_exactly_the_fields_of_its_model():
    env = environment()
    ast = env.parse(env.loader.get_source(env, "label.html")[0])
    used = meta.find_undeclared_variables(ast) - set(env.globals) - {"copy"}
    assert used == {f.name for f in dataclasses.fields(LabelSheet)}


def test_what_a_person_typed_is_escaped_and_what_is_missing_said():
    html = label_html(SHEET)
    assert "<b>CM</b>" not in html and "&lt;b&gt;CM&lt;/b&gt; &amp; co" in html
    assert "Expiry: not set" in html and "Reprint 2026-11-29 alice" in html
    assert "@page { size: 50mm 25mm" in html
    with pytest.raises(TypeError, match="LabelSheet"):
        label_html({"lot": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="copies must be 1-500"):
        label_html(dataclasses.replace(SHEET, copies=0))
    with pytest.raises(ValueError, match="unknown label format"):
        render_labels(SHEET, "png")


def test_code128_has_its_start_check_and_stop():
    # start B (104); P J J 1 2 3 C; check (104 + 48*1 + 42*2 + 42*3 + 17*4 + 18*5 + 19*6
    # + 35*7) mod 103 = 879 mod 103 = 55
    assert code128_values("PJJ123C") == [104, 48, 42, 42, 17, 18, 19, 35, 55]
    modules = code128_modules("A")
    assert sum(modules) == 11 * 3 + 13  # start, data, check, and the stop's 13 modules
    assert modules[:6] == [2, 1, 1, 2, 1, 4]  # start B
    with pytest.raises(ValueError, match="printable ASCII only"):
        code128_values("K1\n")
    with pytest.raises(ValueError, match="printable ASCII only"):
        code128_values("")


# --- the command line --------------------------------------------------------------------------
@pytest.fixture
def cli(db_path, monkeypatch, clock):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    svc = approve_bundled(seed_people(Services(open_store(str(db_path), create=True), clock=clock)))
    svc.lineage.register_donor("D-0001", "ELIG-1", "ICF-1", "alice")
    shell = Shell(lambda db: present(Services(open_store(db), clock=clock)))

    def invoke(*args: str):
        clock.advance(minutes=5)
        return CliRunner().invoke(main, list(args), env={"CMPREP_USER": "alice"}, obj=shell)

    return invoke


def test_labels_from_the_command_line(cli, tmp_path):
    target = tmp_path / "labels.pdf"
    out = cli("label", "D-0001", "--copies", "2", "-o", str(target))
    assert out.exit_code == 0, out.output
    assert out.output == f"Labels of D-0001 (2, quarantine) written to {target}\n"
    assert target.read_bytes().startswith(b"%PDF")
    again = cli("label", "D-0001", "-o", str(target))
    assert again.exit_code == 1
    assert again.output == (
        "Error: labels of D-0001 were printed before (1 time(s)); a reprint needs a reason "
        "Give it with --reason TEXT.\n"
    )
    html = tmp_path / "labels.html"
    out = cli("label", "D-0001", "--reason", "torn", "--format", "html", "-o", str(html))
    assert out.exit_code == 0 and out.output.startswith("Reprinted labels of D-0001")
    assert "D-0001" in html.read_text()
    missing = cli("label", "D-0001", "--reason", "x")
    assert missing.exit_code == 2 and "Missing option '-o'" in missing.output
