"""The audit trail and the registries as an auditor and a QA reviewer read them: which lot
and instrument each step used, what the registries say with their dates, calibration and
expiry dates checked when they are entered, status and review that never hide an open
deviation, a superseded signature or a decision, and a deviation's impact."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, approve_bundled, present, seed_people

from cmprep.cli import Shell, main
from cmprep.render.models import ValueStatus
from cmprep.render.status_text import value_line as _value_line
from cmprep.service import Services
from cmprep.store import open_store


@pytest.fixture
def setup(db_path, clock):
    svc = approve_bundled(seed_people(Services(open_store(str(db_path), create=True), clock=clock)))
    svc.materials.register_lot("PBS-26-118", "PBS", "2027-12-31", "alice", supplier="Gibco")
    svc.materials.register_equipment("CF-02", "centrifuge", "2027-06-30", "alice", 16.5)
    return svc


@pytest.fixture
def cli(setup, db_path, monkeypatch, clock):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    shell = Shell(lambda db: present(Services(open_store(db), clock=clock)))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, user: str = "alice"):
        return runner.invoke(
            main, list(args), input=input, env={"CMPREP_USER": user}, obj=shell,
            catch_exceptions=False,
        )  # fmt: skip

    return invoke


def _run(svc, clock, batch_id: str = "B1", until: str | None = None) -> None:
    """A standard batch with good values (PBS lot and centrifuge named), up to UNTIL."""
    svc.batches.start(STANDARD, "alice", batch_id)
    batch = svc.batches.batch(batch_id)
    for stage in batch.pipeline.stages:
        step = next((s for s in stage if s.id == "use_fresh"), stage[0])
        if step.id == until:
            return
        clock.advance(hours=30 if step.id == "collection" else 0.5)
        if step.use_before_qc:  # fresh use before QC: the filtrate checked, QA's release
            for entry in svc.batches.batch(batch_id).missing_verifications():
                svc.quality.verify_step(batch_id, entry.step.id, "bob", PASSWORD)
            svc.quality.conditional_release(batch_id, "quinn", PASSWORD, "study day 0")
        used = {"pbs_wash": {"lots": ["PBS-26-118"]}, "spin": {"equipment": ["CF-02"]}}
        svc.batches.record(batch_id, step.id, GOOD[step.id], "alice", **used.get(step.id, {}))


# --- the trail names what was used, the registries say which and when ----------------------
def test_the_trail_shows_the_lot_and_instrument_each_step_used(setup, cli, clock):
    _run(setup, clock, until="filtration")
    rows = json.loads(cli("audit", "trail", "B1", "--format", "json").output)
    wash = next(r for r in rows if r["what"] == "recorded pbs_wash")
    assert "lot PBS-26-118 (PBS, expires 2027-12-31)" in wash["new"]
    spin = next(r for r in rows if r["what"] == "recorded spin")
    assert "centrifuge CF-02 (calibration due 2027-06-30)" in spin["new"]
    assert "CF-02" in cli("audit", "trail", "B1").output


def test_the_registry_trails_name_the_lot_the_instrument_and_their_dates(setup, cli, clock):
    clock.advance(days=1)
    assert cli("equipment", "calibrate", "CF-02", "--next-due", "2027-12-31",
               "--certificate", "CAL-5531").exit_code == 0  # fmt: skip
    lots = json.loads(cli("audit", "trail", "@materials", "--format", "json").output)
    assert lots[0]["what"] == "lot registered: PBS-26-118 (PBS)"
    assert lots[0]["new"] == "expires 2027-12-31; supplier Gibco"
    kit = json.loads(cli("audit", "trail", "@equipment", "--format", "json").output)
    assert kit[0]["what"] == "equipment registered: CF-02 (centrifuge)"
    assert kit[0]["new"] == "calibration due 2027-06-30; rotor radius 16.5 cm"
    assert kit[1]["what"] == "calibration recorded: CF-02"
    assert kit[1]["new"] == "next due 2027-12-31; certificate CAL-5531"


def test_a_next_calibration_due_date_in_the_past_or_today_is_refused(cli, clock):
    past = cli("equipment", "calibrate", "CF-02", "--next-due", "2020-01-01")
    assert past.exit_code == 1
    assert "the next calibration due date 2020-01-01 is not after today (2026-11-02)" in past.output
    today = cli("equipment", "calibrate", "CF-02", "--next-due", "2026-11-02")
    assert today.exit_code == 1
    bad = cli("equipment", "calibrate", "CF-02", "--next-due", "soon")
    assert bad.exit_code == 1 and "expected YYYY-MM-DD" in bad.output
    assert cli("equipment", "calibrate", "CF-02", "--next-due", "2027-11-02").exit_code == 0


def test_registering_an_expired_lot_warns_and_registers_it(cli):
    result = cli("materials", "add", "FBS-OLD", "--material", "FBS", "--expiry", "2026-01-31")
    assert result.exit_code == 0
    assert "Lot FBS-OLD (FBS, expires 2026-01-31) registered." in result.output
    assert "Warning: lot FBS-OLD expired on 2026-01-31" in result.output
    fresh = cli("materials", "add", "FBS-NEW", "--material", "FBS", "--expiry", "2027-01-31")
    assert "Warning" not in fresh.output


# --- status: never a tick beside an open deviation ---------------------------------------
def test_a_value_with_an_open_deviation_never_has_a_tick():
    value = ValueStatus(
        value=640.0, display="640 pg/mL", unit="pg/mL", spec="100-1000 pg/mL",
        verdict="in spec", deviations=["DEV-0010"], corrections=[],
    )  # fmt: skip
    rule = {"deviation_id": "DEV-0010", "status": "open", "spec": "Westgard 1-3s"}
    line = _value_line("vegf", value, {"DEV-0010": rule})
    assert "✓" not in line and line.strip().startswith("✗")
    assert "DEV-0010 (open; Westgard 1-3s)" in line
    closed = _value_line("vegf", value, {"DEV-0010": {**rule, "status": "closed"}})
    assert closed.strip().startswith("✓") and "DEV-0010 (closed; Westgard 1-3s)" in closed


def test_status_names_the_deviation_and_what_raised_it(setup, cli, clock):
    _run(setup, clock, until="spin")
    clock.advance(minutes=30)
    setup.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650 x g"}, "alice")
    status = cli("batch", "status", "B1").output
    line = next(x for x in status.splitlines() if "rcf =" in x)
    assert "✗" in line and "✓" not in line and "DEV-0001 (open;" in line


# --- review: superseded signatures, arms not taken, the decision -------------------------
def test_review_marks_a_verification_superseded_by_a_later_correction(setup, cli, clock):
    _run(setup, clock, until="use_fresh")
    clock.advance(minutes=10)
    setup.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    clock.advance(minutes=10)
    setup.batches.correct("B1", "filtration", {"filter_lot": "F-2"}, "alice", "label misread")
    review = cli("batch", "review", "B1").output
    line = next(x for x in review.splitlines() if "verified:" in x)
    assert "[SUPERSEDED: the step changed after it was verified]" in line
    assert "downstream (one of use_fresh, concentrate, lyophilise)" in review
    data = json.loads(cli("batch", "review", "B1", "--format", "json").output)
    assert data["signatures"][-1]["superseded"] == "the step changed after it was verified"


def test_review_lists_only_the_arms_not_taken_and_says_the_release(setup, cli, clock):
    _run(setup, clock)
    for entry in setup.batches.batch("B1").missing_verifications():
        clock.advance(minutes=10)
        setup.quality.verify_step("B1", entry.step.id, "bob", PASSWORD)
    before = cli("batch", "review", "B1").output
    assert "Branch arms not taken: \n  - concentrate\n  - lyophilise" in before
    assert "use_fresh" not in before.split("Branch arms not taken")[1].split("\n\n")[0]
    clock.advance(minutes=10)
    setup.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    clock.advance(minutes=10)
    setup.quality.release("B1", "quinn", PASSWORD, "meets specification")
    after = cli("batch", "review", "B1").output
    assert "Released on 2026-11-" in after and "by quinn: meets specification" in after
    assert "blocked by" not in after and "already released" not in after


# --- a deviation shows its impact ----------------------------------------------------------
def test_deviation_show_includes_the_investigation_and_its_impact(setup, cli, clock):
    _run(setup, clock, until="spin")
    setup.quality.open_deviation("B1", "spin", "minor", "alice", "tube cracked")
    before = cli("deviation", "show", "DEV-0001").output
    assert "Impact: not assessed yet (no investigation)" in before
    clock.advance(minutes=10)
    setup.quality.investigate("DEV-0001", "alice", "tube replaced", impact="none on sterility")
    shown = cli("deviation", "show", "dev-0001").output
    assert "Justification: tube replaced" in shown
    assert "Impact: none on sterility" in shown


def test_the_materials_trail_names_a_donor_a_derivation_and_a_release(setup, clock):
    lin = setup.lineage
    lin.register_donor("UC-D0001", "ELIG-2026-001", "ICF-2026-001", "alice")
    lin.release("UC-D0001", "quinn")
    clock.advance(minutes=5)
    lin.derive(
        [("UC-D0001", None)], [("CB-D0001-01", 2)], "cell-bank vial", "vial", "alice", passage=2
    )
    rows = setup.audit.trail("@materials")
    said = [(r["what"], r["new"]) for r in rows]
    assert ("donor registered: UC-D0001", "eligibility ELIG-2026-001; consent ICF-2026-001") in said
    assert any("CB-D0001-01" in what + new and "UC-D0001" in what + new for what, new in said)
