"""Derived values through the service: computed when their inputs are recorded, computed
again when an input is corrected, judged against their spec like a typed value, shown in
the record with their formula and inputs, and refused by `protocol check` when a formula
names an unknown parameter or mixes units."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOOD, REPO, STANDARD, run_to

from cmprep.domain.validation import Verdict, check_entries
from cmprep.errors import Refused
from cmprep.protocol import ProtocolError, load_file, parse_text
from cmprep.render import render_record
from cmprep.service import views
from cmprep.store.query import DeviationFilter

STANDARD_FILE = REPO / "protocols" / f"{STANDARD}.yaml"


def test_the_concentration_factor_is_computed_when_the_final_volume_is_recorded(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    out = svc.batches.record("B1", "concentrate", GOOD["concentrate"], "alice")
    factor = out.batch.steps["concentrate"].values["concentration_factor"]
    assert factor.value == 12.5 and factor.display == "12.5" and factor.verdict == "in spec"
    assert factor.formula == "collection.volume / final_volume"
    assert factor.inputs == [
        {"name": "collection.volume", "display": "500 mL"},
        {"name": "final_volume", "display": "40 mL"},
    ]
    assert factor.derivation == (
        "= collection.volume / final_volume (collection.volume = 500 mL, final_volume = 40 mL)"
    )
    assert out.deviations == []


def test_every_derived_value_of_a_standard_batch(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    clock.advance(hours=1)
    run_to(svc, clock, "B1")
    batch = svc.batches.batch("B1")
    shown = {
        (step, name): v.display
        for step, entry in batch.steps.items()
        for name, v in entry.values.items()
        if v.formula
    }
    assert shown == {
        ("conditioning", "medium_per_area"): "0.21 mL/cm2",  # 36 mL / 175 cm2, 2 figures
        ("conditioning", "cell_density"): "20000 cells/cm2",  # 4.9e7 / (14 x 175 cm2)
        ("collection", "cell_recovery"): "91.8 %",  # 4.5e7 / 4.9e7
        ("filtration", "volume_recovery"): "98 %",  # 490 mL / 500 mL
        ("concentrate", "concentration_factor"): "12.5",
        ("qc", "vegf_per_cells"): "222 pg/10^6 cells",  # 250 pg/mL x 40 mL / 4.5e7 cells
    }
    # no NTA result was entered: the EV yield is not computed, and nothing was typed for it
    assert "ev_yield" not in batch.steps["qc"].values


def test_ev_yield_uses_the_final_product_volume_of_the_arm_taken(svc, clock):
    """The NTA sample is the final product, so the concentrate's volume counts, not the
    volume collected (which would overstate the yield by the concentration factor)."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    out = svc.batches.record(
        "B1", "qc", {**GOOD["qc"], "ev_concentration": "3e11 particles/mL"}, "alice"
    )
    ev = out.batch.steps["qc"].values["ev_yield"]
    # 3e11 /mL x 40 mL / 4.5e7 cells = 2.67e5 per cell = 2.67e11 per 10^6 cells
    assert ev.display == "2.67e+11 particles/10^6 cells"
    assert {"name": "downstream.final_volume", "display": "40 mL"} in ev.inputs


def test_the_lyophilised_arm_gives_its_reconstituted_volume(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc", arm="lyophilise")
    lyo = svc.batches.batch("B1").steps["lyophilise"].values["final_volume"]
    assert lyo.display == "480 mL" and lyo.formula == "aliquots * reconstitution_volume"
    out = svc.batches.record("B1", "qc", GOOD["qc"], "alice")
    per_cells = out.batch.steps["qc"].values["vegf_per_cells"]
    assert per_cells.display == "2670 pg/10^6 cells"  # 250 pg/mL x 480 mL / 4.5e7 cells
    assert {"name": "downstream.final_volume", "display": "480 mL"} in per_cells.inputs


def test_an_out_of_spec_derived_value_opens_a_deviation(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    out = svc.batches.record(
        "B1", "concentrate", {**GOOD["concentrate"], "final_volume": "100 mL"}, "alice"
    )
    assert len(out.deviations) == 1
    dev = out.deviations[0]
    assert (dev["step"], dev["parameter"], dev["value"], dev["severity"]) == (
        "concentrate",
        "concentration_factor",
        "5",
        "major",
    )
    assert dev["message"].startswith(
        "Concentration factor (collected / final volume) 5 is below the protocol's 10-20"
    )
    assert "collection.volume = 500 mL, final_volume = 100 mL" in dev["message"]
    value = out.batch.steps["concentrate"].values["concentration_factor"]
    assert value.verdict == "out of spec" and value.deviation_ids == [dev["deviation_id"]]


def test_a_derived_value_cannot_be_typed_or_corrected(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    with pytest.raises(Refused) as err:
        svc.batches.record(
            "B1", "concentrate", {**GOOD["concentrate"], "concentration_factor": "15"}, "alice"
        )
    assert err.value.problems == [
        "Concentration factor (collected / final volume) is computed from "
        "collection.volume / final_volume, never entered; enter or correct the values it "
        "is computed from"
    ]
    svc.batches.record("B1", "concentrate", GOOD["concentrate"], "alice")
    with pytest.raises(Refused, match=r"is computed from collection\.volume / final_volume"):
        svc.batches.correct("B1", "concentrate", {"concentration_factor": "15"}, "alice", "typo")


def test_a_correction_recomputes_the_derived_values_that_read_it(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    out = svc.batches.correct(
        "B1", "collection", {"volume": "600 mL"}, "alice", "re-read from the bottle"
    )
    batch = out.batch
    factor = batch.steps["concentrate"].values["concentration_factor"]
    assert factor.display == "15"
    assert [(c.old, c.new, c.reason) for c in factor.corrections] == [
        ("12.5", "15", "re-read from the bottle")
    ]
    recovery = batch.steps["filtration"].values["volume_recovery"]
    assert recovery.display == "81.7 %" and recovery.verdict == "out of spec"
    # the recovery below 90 % opens a deviation at the filtration step, linked to its value
    assert [(d["step"], d["parameter"]) for d in out.deviations] == [
        ("filtration", "volume_recovery")
    ]
    assert recovery.deviation_ids == [out.deviations[0]["deviation_id"]]
    rows = svc.quality.deviations(DeviationFilter(batch_id="B1"))
    assert [r["step"] for r in rows] == ["filtration"]
    # one correction event per value: the typed one and the two recomputed ones
    corrected = [e for e in batch.events if e.type == "value_corrected"]
    assert [
        (e.payload["step"], e.payload["parameter"], e.payload.get("derived")) for e in corrected
    ] == [
        ("collection", "volume", None),
        ("filtration", "volume_recovery", True),
        ("concentrate", "concentration_factor", True),
    ]


def test_a_correction_that_leaves_a_derived_value_unchanged_writes_nothing_for_it(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    out = svc.batches.correct("B1", "concentrate", {"device_lot": "UF-2"}, "alice", "typo")
    assert [e.payload["parameter"] for e in out.batch.events if e.type == "value_corrected"] == [
        "device_lot"
    ]


def test_the_same_correction_sent_twice_under_one_key_is_saved_once(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    first = svc.batches.correct("B1", "collection", {"volume": "520 mL"}, "alice", "r", key="k1")
    again = svc.batches.correct("B1", "collection", {"volume": "520 mL"}, "alice", "r", key="k1")
    assert again.duplicate and not first.duplicate
    assert again.batch.seq == first.batch.seq


def test_a_correction_that_makes_a_derived_value_impossible_is_refused(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    with pytest.raises(Refused) as err:
        svc.batches.correct("B1", "collection", {"volume": "5 mL"}, "alice", "typo")
    (problem,) = err.value.problems
    assert problem.startswith(
        "Concentration factor (collected / final volume) 0.125 is impossible: it must be "
        "within 1-1000."
    )
    assert "It is computed as collection.volume / final_volume from" in problem
    assert "collection.volume = 5 mL, final_volume = 40 mL" in problem
    assert svc.batches.batch("B1").steps["collection"].values["volume"].display == "500 mL"


def test_division_by_zero_is_refused_naming_the_input(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    with pytest.raises(Refused) as err:
        svc.batches.record(
            "B1", "concentrate", {**GOOD["concentrate"], "final_volume": "0 mL"}, "alice"
        )
    assert err.value.problems == [
        "Concentration factor (collected / final volume) cannot be computed from "
        "collection.volume / final_volume: division by zero: final_volume is 0 "
        "(collection.volume = 500 mL, final_volume = 0 mL); check the values it reads"
    ]
    assert svc.batches.batch("B1").steps["concentrate"].status == "due"


def test_an_idempotent_record_with_derived_values_is_saved_once(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    first = svc.batches.record("B1", "concentrate", GOOD["concentrate"], "alice", key="c1")
    again = svc.batches.record("B1", "concentrate", GOOD["concentrate"], "alice", key="c1")
    assert again.duplicate and again.batch.seq == first.batch.seq


def test_the_record_shows_formula_and_inputs(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    record = svc.documents.record_view("B1")
    md = render_record(record, "md")
    row = next(line for line in md.splitlines() if line.startswith("| Concentration factor"))
    assert row == (
        "| Concentration factor (collected / final volume) | **12.5** | computed = "
        "collection.volume / final\\_volume (collection.volume = 500 mL, final\\_volume = "
        "40 mL) | 10-20 | ✓ in spec |"
    )
    assert "(cell\\_count = 4.5 x 10^7 cells, conditioning.cell\\_count = 4.9 x 10^7 cells)" in md
    html = render_record(record, "html")
    assert (
        '<span class="raw derived">computed = collection.volume / final_volume '
        "(collection.volume = 500 mL, final_volume = 40 mL)</span>"
    ) in html


def test_batch_status_shows_derived_values_with_their_formula(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="qc")
    status = views.status(svc.batches.batch("B1"))
    factor = next(s for s in status.steps if s.step == "concentrate").values["concentration_factor"]
    assert factor.display == "12.5"
    assert factor.formula == "collection.volume / final_volume"
    assert factor.inputs == ["collection.volume = 500 mL", "final_volume = 40 mL"]


def test_check_entries_never_asks_for_a_derived_value():
    step = load_file(STANDARD_FILE).step("concentrate")
    findings = check_entries(step, GOOD["concentrate"])
    assert all(f.verdict == Verdict.in_spec for f in findings)
    assert "concentration_factor" not in {f.parameter for f in findings}


# --- protocol check: the formula's names and units ------------------------------------------
def _standard_with(old: str, new: str) -> str:
    text = STANDARD_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ProtocolError) as err:
        parse_text(text, "p.yaml")
    return [(p.line, p.field, p.message) for p in err.value.details]


def _line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


def test_check_refuses_an_unknown_parameter_with_its_line():
    text = _standard_with(
        "derived: collection.volume / final_volume", "derived: collection.volumes / final_volume"
    )
    assert _problems(text) == [
        (
            _line_of(text, "        derived: collection.volumes / final_volume"),
            "steps[8:concentrate].parameters[2:concentration_factor].derived",
            "step concentrate, parameter concentration_factor: collection.volumes is not a "
            "parameter of collection",
        )
    ]


def test_check_refuses_a_name_of_the_same_step_that_does_not_exist():
    text = _standard_with("derived: medium_volume / vessel_area", "derived: medium / area")
    line = _line_of(text, "        derived: medium / area")
    field = "steps[3:conditioning].parameters[6:medium_per_area].derived"
    said = "step conditioning, parameter medium_per_area"
    assert _problems(text) == [  # every problem at once
        (
            line,
            field,
            f"{said}: medium is a choice parameter of step conditioning; a formula reads numbers",
        ),
        (
            line,
            field,
            f"{said}: area is not a parameter of step conditioning (its parameters: "
            "serum_percent, medium, incubator_temp, vessels, vessel_area, medium_volume, "
            "medium_per_area, cell_count, viability_start, cell_density)",
        ),
    ]


def test_check_refuses_mixed_units_in_a_sum():
    text = _standard_with(
        "derived: collection.volume / final_volume",
        "derived: collection.volume + collection.cell_count",
    )
    ((_, _, message),) = _problems(text)
    assert message == (
        "step concentrate, parameter concentration_factor: cannot add collection.cell_count "
        "(a count (e.g. cells)) to collection.volume (a volume (e.g. L)): the units are "
        "incompatible"
    )


def test_check_refuses_a_result_in_the_wrong_unit():
    text = _standard_with(
        "derived: filtrate_volume / collection.volume",
        "derived: filtrate_volume * collection.volume",
    )
    ((_, field, message),) = _problems(text)
    assert field == "steps[6:filtration].parameters[4:volume_recovery].derived"
    assert message.endswith("but the parameter's unit is % (a plain number (or %))")


def test_check_refuses_a_later_step_a_later_derived_and_a_syntax_error():
    later = _standard_with(
        "derived: cell_count / conditioning.cell_count",
        "derived: cell_count / filtration.filtrate_volume",
    )
    ((_, _, message),) = _problems(later)
    assert "names 'filtration', which is not done before step collection" in message
    syntax = _standard_with(
        "derived: medium_volume / vessel_area", "derived: medium_volume / (vessel_area"
    )
    ((line, _, message),) = _problems(syntax)
    assert "does not read: a closing parenthesis is missing" in message
    assert line == _line_of(syntax, "        derived: medium_volume / (vessel_area")
    ahead = _standard_with(
        "derived: medium_volume / vessel_area", "derived: cell_density * vessel_area"
    )
    ((_, _, message),) = _problems(ahead)
    assert message.endswith("cell_density is derived below this one; list it first")


def test_check_refuses_a_branch_name_missing_from_an_arm():
    text = _standard_with(
        "derived: ev_concentration * downstream.final_volume / collection.cell_count",
        "derived: ev_concentration * downstream.aliquots / collection.cell_count",
    )
    assert "downstream.aliquots" in text
    ((_, _, message),) = _problems(text)
    # every arm has aliquots, but they are plain numbers: the result is no EV yield
    assert "but the parameter's unit is particles/10^6 cells" in message
    missing = _standard_with(
        "derived: vegf * downstream.final_volume / collection.cell_count",
        "derived: vegf * downstream.cake_mass / collection.cell_count",
    )
    ((_, _, message),) = _problems(missing)
    assert message.endswith("downstream.cake_mass is not a parameter of use_fresh, concentrate")


def test_check_refuses_a_derived_value_that_is_not_a_number(tmp_path: Path):
    text = _standard_with(
        "        derived: medium_volume / vessel_area\n        precision: 2\n",
        "        derived: medium_volume / vessel_area\n        precision: 2\n        type: integer\n",
    )
    ((_, _, message),) = _problems(text)
    assert message == "a derived value is a number (type: number)"
    typed = _standard_with(
        "        label: Final volume of concentrate\n",
        "        label: Final volume of concentrate\n        precision: 2\n",
    )
    ((_, _, message),) = _problems(typed)
    assert message == "precision is for derived values (a typed value is kept as typed)"


def test_a_result_added_by_correction_computes_the_value_it_was_missing(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    assert "ev_yield" not in svc.batches.batch("B1").steps["qc"].values
    out = svc.batches.correct(
        "B1", "qc", {"ev_concentration": "3e11 particles/mL"}, "alice", "NTA report arrived"
    )
    ev = out.batch.steps["qc"].values["ev_yield"]
    assert ev.display == "2.67e+11 particles/10^6 cells"
    assert [(c.old, c.new) for c in ev.corrections] == [("", ev.display)]


def test_a_filtrate_above_the_volume_collected_opens_a_deviation(svc, clock):
    """Above 100 % one of the two volumes is misread; either may be corrected later, so the
    value is recorded and looked into, not refused."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="filtration")
    out = svc.batches.record(
        "B1", "filtration", {**GOOD["filtration"], "filtrate_volume": "520 mL"}, "alice"
    )
    assert [(d["parameter"], d["value"], d["severity"]) for d in out.deviations] == [
        ("volume_recovery", "104 %", "minor")
    ]
