"""Lots, equipment and QC from the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import (
    GOOD,
    PASSWORD,
    STANDARD,
    approve_bundled,
    approve_file,
    present,
    run_to,
    seed_people,
)
from test_qc import HISTORY, PROTOCOL

from cmprep.cli import Shell, main
from cmprep.service import Services
from cmprep.store import open_store

SHELL: list[Shell] = [Shell()]  # the test clock's services, set by the fixture


@pytest.fixture
def svc_cli(db_path, monkeypatch, clock):
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    monkeypatch.setenv("CMPREP_USER", "alice")
    SHELL[0] = Shell(lambda db: present(Services(open_store(db), clock=clock)))
    return approve_bundled(
        seed_people(Services(open_store(str(db_path), create=True), clock=clock))
    )


def run(*args: str):
    return CliRunner().invoke(main, list(args), obj=SHELL[0], catch_exceptions=False)


def test_lots_and_equipment_from_the_command_line(svc_cli, clock):
    assert (
        "registered"
        in run("materials", "add", "FBS-1", "--material", "FBS", "--expiry", "2026-12-31").output
    )
    assert (
        run("materials", "add", "FBS-1", "--material", "FBS", "--expiry", "2026-12-31").exit_code
        == 1
    )
    out = run(
        "equipment",
        "add",
        "CF-02",
        "--kind",
        "centrifuge",
        "--rotor-radius",
        "16.5",
        "--calibration-due",
        "2026-10-01",
    )
    assert (
        "Centrifuge CF-02 registered (calibration due 2026-10-01, rotor radius 16.5 cm)"
        in out.output
    )
    assert json.loads(run("materials", "list", "--format", "json").output)[0]["lot"] == "FBS-1"
    svc_cli.batches.start(STANDARD, "alice", "B1")
    run_to(svc_cli, clock, "B1", stop_before="expansion")
    rec = run(
        "batch",
        "record",
        "B1",
        "expansion",
        *[f"{k}={v}" for k, v in GOOD["expansion"].items()],
        "--lot",
        "FBS-1",
    )
    assert rec.exit_code == 0
    run_to(svc_cli, clock, "B1", stop_before="spin")
    spin = run(
        "batch",
        "record",
        "B1",
        "spin",
        "rcf=1500 rpm",
        "duration=10",
        "temperature=4",
        "--equipment",
        "CF-02",
    )
    assert spin.exit_code == 0
    assert (
        "was due for calibration on 2026-10-01" in spin.output
        and "deviation DEV-0001 opened (major)" in spin.output
    )
    used = run("materials", "where-used", "FBS-1", "--format", "csv").output
    assert "B1,expansion" in used
    assert (
        "No batch used lot NOPE, and no such lot is registered."
        in run("materials", "where-used", "NOPE").output
    )
    assert run("equipment", "calibrate", "CF-02", "--next-due", "2027-05-01").exit_code == 0
    assert "2027-05-01" in run("equipment", "list").output


@pytest.fixture
def proto(svc_cli, tmp_path):
    path = tmp_path / "qc-mini.yaml"
    path.write_text(PROTOCOL)
    return approve_file(svc_cli, path)


def _history(svc, clock, proto):
    for i, v in enumerate(HISTORY):
        b = f"H{i}"
        svc.batches.start(proto, "alice", b)
        clock.advance(hours=1)
        svc.batches.record(b, "isolation", {"source_tissue": "UC"}, "alice")
        svc.batches.skip(b, "hypoxia", "alice", "normoxic")
        svc.batches.record(b, "qc", {"vegf": f"{v}", "sterility_passed": "yes"}, "alice")
        svc.quality.sign_review(b, "rita", PASSWORD, "reviewed")
        svc.quality.release(b, "quinn", PASSWORD)


def test_qc_import_from_a_file(svc_cli, clock, proto, tmp_path):
    svc_cli.batches.start(proto, "alice", "B1")
    svc_cli.batches.record("B1", "isolation", {"source_tissue": "UC"}, "alice")
    svc_cli.batches.skip("B1", "hypoxia", "alice", "normoxic")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "analyte,value,unit,method,replicate\nVEGF,300,pg/mL,ELISA,1\nTNF,1,pg/mL,ELISA,1\n"
    )
    refused = run("qc", "import", "B1", str(bad), "sterility_passed=yes")
    assert (
        refused.exit_code == 1
        and "line 3" in refused.output
        and "nothing was recorded" in refused.output
    )
    good = tmp_path / "good.csv"
    good.write_text(
        "analyte,value,unit,method,replicate\nVEGF,300,pg/mL,ELISA,1\nVEGF,320,pg/mL,ELISA,2\nIL-6,900,pg/mL,ELISA,1\n"
    )
    ok = run("qc", "import", "B1", str(good), "sterility_passed=yes")
    assert ok.exit_code == 0
    assert "vegf: mean of 2, CV 4.6 %" in ok.output
    assert "IL-6 900 pg/mL is above the literature reference range 100-500 pg/mL" in ok.output


def test_qc_trend_and_compare_write_charts(svc_cli, clock, proto, tmp_path):
    _history(svc_cli, clock, proto)
    out = run("qc", "trend", "vegf", "-o", str(tmp_path / "vegf.svg"))
    assert out.exit_code == 0 and "Baseline from 8 released" in out.output
    assert "VEGF (pg/mL) in qc-mini, route none, cell source UC: 8 batch(es)" in out.output
    assert (tmp_path / "vegf.svg").read_text().lstrip().startswith("<svg")
    png = run("qc", "trend", "vegf", "-o", str(tmp_path / "vegf.png"))
    if png.exit_code == 0:
        assert (tmp_path / "vegf.png").read_bytes()[:4] == b"\x89PNG"
    assert run("qc", "trend", "vegf", "-o", str(tmp_path / "vegf.gif")).exit_code == 2
    cmp = run("qc", "compare", "--by", "source", "--format", "json", "-o", str(tmp_path / "c.svg"))
    rows = json.loads(cmp.output.split("Chart written")[0])
    assert rows[0]["analyte"] == "vegf" and rows[0]["n"] == 8
    assert (tmp_path / "c.svg").exists()


def test_guided_mode_asks_for_the_centrifuge_and_converts_rpm_with_its_rotor(svc_cli, clock):
    svc_cli.materials.register_equipment(
        "CF-02", "centrifuge", "2027-01-15", "alice", rotor_radius_cm=16.5
    )
    svc_cli.batches.start(STANDARD, "alice", "B1")
    run_to(svc_cli, clock, "B1", stop_before="spin")
    # an unknown centrifuge (asked again), CF-02, 1500 rpm (= 415 x g), 10 min, 4 °C, no checks
    # ticked, no note, save
    answers = "\n".join(["CF-99", "CF-02", "1500 rpm", "10", "4", "", "", "y", ""]) + "\n"
    result = CliRunner().invoke(
        main, ["batch", "run", "B1"], input=answers, obj=SHELL[0], catch_exceptions=False
    )
    assert "no instrument 'CF-99'; did you mean CF-02?" in result.output
    assert "Register CF-99 at another terminal (`cmprep equipment add`)" in result.output
    assert "Saved spin" in result.output
    spin = svc_cli.batches.batch("B1").steps["spin"]
    assert spin.values["rcf"].value == pytest.approx(415.0575)
    assert spin.equipment[0]["id"] == "CF-02"
