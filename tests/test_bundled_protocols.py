"""The bundled protocols: they load, and every figure is credited honestly.

The rule (docs: DOMAIN.md, cited-studies.md): a figure the review (Nasiri et al. 2026)
gives carries ``source: nasiri2026``; every other figure is ``source: site choice``. The
cited studies' abstracts give no process figures, so nothing may be credited to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOOD, STANDARD

from cmprep.domain.validation import Verdict, check_entries
from cmprep.protocol import SITE_CHOICE, ParamType, Protocol, load_file, units
from cmprep.protocol.library import protocol_files
from cmprep.protocol.models import Method
from cmprep.protocol.reference import load_all as load_references

PROTOCOLS_DIR = Path(__file__).resolve().parent.parent / "protocols"
FILES = sorted(PROTOCOLS_DIR.glob("*.yaml"))
REVIEW = "nasiri2026"
REVIEW_DOI = "10.22038/ijbms.2025.88552.19121"
DOWNSTREAM_ARMS = ["use_fresh", "concentrate", "lyophilise"]

# Every numeric spec the review's text supports: (step, parameter, min, max).
REVIEW_NUMERIC_SPECS = {
    ("expansion", "confluence", 70.0, 80.0),  # "Once the cells reach 70-80 % confluence"
    ("expansion", "fbs_percent", 10.0, 10.0),  # "supplemented with 10 % FBS"
    ("conditioning", "serum_percent", None, 2.0),  # "serum-free or low-serum (e.g. 2 % FBS)"
    ("hypoxia", "o2_percent", 1.0, 5.0),  # "hypoxic conditions (1-5 % O2)"
    ("spin", "rcf", 300.0, 500.0),  # "centrifuged at low speed (e.g. 300-500 x g)"
    # "filtered through a 0.22 um membrane": a maximum, so a finer sterilising-grade
    # membrane (0.2 um) meets it
    ("filtration", "pore_size", None, 0.22),
}
# Every choice spec the review supports: (step, parameter, accepted choices).
REVIEW_CHOICE_SPECS = {
    ("expansion", "basal_medium", frozenset({"DMEM", "alpha-MEM"})),  # "DMEM or alpha-MEM"
}
# Every window the review supports: (step, after, min, max, unit).
REVIEW_WINDOWS = {
    ("collection", "conditioning", 24.0, 72.0, "h"),  # "typically 24 to 72 hr"
}
# The figures that must be present, credited to the review, wherever the step is.
REQUIRED_REVIEW_SPECS = [
    ("expansion", "confluence", 70.0, 80.0),
    ("conditioning", "serum_percent", None, 2.0),
    ("spin", "rcf", 300.0, 500.0),
    ("filtration", "pore_size", None, 0.22),
    ("hypoxia", "o2_percent", 1.0, 5.0),
]


def _load(path: Path) -> Protocol:
    return load_file(path)


def _bounds(spec) -> tuple[float | None, float | None]:
    return (
        None if spec.min is None else float(spec.min),
        None if spec.max is None else float(spec.max),
    )


def _specs(proto: Protocol):
    for step in proto.steps:
        for param in step.parameters:
            if param.spec is not None:
                yield step, param


@pytest.fixture(params=FILES, ids=[f.stem for f in FILES])
def proto(request) -> Protocol:
    return _load(request.param)


def test_there_are_bundled_protocols():
    assert len(FILES) >= 4
    assert [p.name for p in protocol_files(PROTOCOLS_DIR)] == [p.name for p in FILES]
    assert any(f.stem == "cm-standard-serum-free" for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_file_loads_and_id_matches_file_name(path: Path):
    proto = _load(path)
    assert proto.id == path.stem
    assert proto.status == "approved"
    assert proto.late_entry_minutes == 60


def test_ids_are_unique_across_files():
    ids = [_load(f).id for f in FILES]
    assert len(ids) == len(set(ids))


def test_cites_the_review(proto: Protocol):
    review = proto.source(REVIEW)
    assert review is not None, f"{proto.id} does not list {REVIEW} among its sources"
    assert review.doi == REVIEW_DOI
    assert "Nasiri" in review.citation and "Iran J Basic Med Sci" in review.citation


def test_has_the_downstream_branch(proto: Protocol):
    arms = [s.id for s in proto.steps if s.branch == "downstream"]
    assert arms == DOWNSTREAM_ARMS
    stage = next(st for st in proto.stages() if st[0].branch == "downstream")
    assert [s.id for s in stage] == DOWNSTREAM_ARMS


def test_common_steps_in_order(proto: Protocol):
    ids = [s.id for s in proto.steps]
    common = [
        "isolation",
        "expansion",
        "pbs_wash",
        "conditioning",
        "collection",
        "spin",
        "filtration",
        *DOWNSTREAM_ARMS,
        "qc",
    ]
    assert [i for i in ids if i in common] == common
    assert ids[0] == "isolation" and ids[-1] == "qc"
    # preconditioning, when present, comes before conditioning starts
    for pre in ("hypoxia", "priming", "spheroid_formation"):
        if pre in ids:
            assert ids.index("expansion") < ids.index(pre) < ids.index("conditioning")


def test_every_spec_is_credited_to_the_review_or_the_site(proto: Protocol):
    for step, param in _specs(proto):
        assert param.source in (REVIEW, SITE_CHOICE), (
            f"{proto.id}: {step.id}.{param.name} spec is credited to {param.source!r}"
        )
    for step in proto.steps:
        if step.window is not None:
            assert step.window.source in (REVIEW, SITE_CHOICE), f"{proto.id}: {step.id} window"


def test_review_figures_are_credited_to_the_review(proto: Protocol):
    for step_id, name, lo, hi in REQUIRED_REVIEW_SPECS:
        step = proto.step(step_id)
        if step is None:
            assert step_id == "hypoxia", f"{proto.id} has no step {step_id}"
            continue
        param = step.parameter(name)
        assert param is not None, f"{proto.id}: {step_id}.{name} missing"
        assert param.spec is not None and _bounds(param.spec) == (lo, hi), (
            f"{proto.id}: {step_id}.{name} spec is not the review's {lo}-{hi}"
        )
        assert param.source == REVIEW, f"{proto.id}: {step_id}.{name} should cite {REVIEW}"


def test_fixed_review_specs(proto: Protocol):
    exp = proto.step("expansion")
    conf = exp.parameter("confluence")
    assert conf.unit == "%" and conf.severity.value == "major"
    assert conf.alert is not None and conf.spec.range is not None
    assert exp.parameter("basal_medium").spec.one_of == ["DMEM", "alpha-MEM"]
    assert exp.parameter("basal_medium").source == REVIEW
    assert _bounds(exp.parameter("fbs_percent").spec) == (10.0, 10.0)
    assert exp.parameter("fbs_percent").source == REVIEW

    spin = proto.step("spin").parameter("rcf")
    assert spin.unit == "x g"
    pore = proto.step("filtration").parameter("pore_size")
    assert pore.unit == "um" and pore.severity.value == "critical"

    window = proto.step("collection").window
    assert window is not None
    assert (window.after, window.min, window.max, window.unit) == ("conditioning", 24, 72, "h")
    assert window.source == REVIEW


def test_nothing_else_is_credited_to_the_review(proto: Protocol):
    """Whitelist: a figure credited to the review must be one the review gives."""
    for step, param in _specs(proto):
        if param.source != REVIEW:
            continue
        if param.spec.range is not None:
            key = (step.id, param.name, *_bounds(param.spec))
            assert key in REVIEW_NUMERIC_SPECS, (
                f"{proto.id}: {step.id}.{param.name} spec {param.spec.describe(param.unit)} "
                f"is credited to {REVIEW} but the review gives no such figure"
            )
        elif param.spec.one_of is not None:
            key = (step.id, param.name, frozenset(param.spec.one_of))
            assert key in REVIEW_CHOICE_SPECS, f"{proto.id}: {step.id}.{param.name} one_of"
        else:
            pytest.fail(f"{proto.id}: {step.id}.{param.name} yes/no spec credited to {REVIEW}")
    for step in proto.steps:
        w = step.window
        if w is not None and w.source == REVIEW:
            key = (step.id, w.after, w.min, w.max, w.unit)
            assert key in REVIEW_WINDOWS, f"{proto.id}: {step.id} window credited to {REVIEW}"


def test_cited_studies_give_no_figures(proto: Protocol):
    """The studies' abstracts give no process figures: they may be listed, never cited."""
    studies = {s.id for s in proto.sources} - {REVIEW}
    for step, param in _specs(proto):
        assert param.source not in studies, f"{proto.id}: {step.id}.{param.name}"
    for step in proto.steps:
        if step.window is not None:
            assert step.window.source not in studies, f"{proto.id}: {step.id} window"


def test_steps_are_written_for_the_bench(proto: Protocol):
    for step in proto.steps:
        assert step.title.strip(), f"{proto.id}: {step.id} has no title"
        assert len(step.instructions.split(".")) >= 3, f"{proto.id}: {step.id} instructions"
        assert 2 <= len(step.checks) <= 4, f"{proto.id}: {step.id} has {len(step.checks)} checks"
        assert step.parameters, f"{proto.id}: {step.id} records nothing"
    assert proto.step("filtration").verify
    assert proto.step("qc").verify


def test_numeric_parameters_have_limits(proto: Protocol):
    for step in proto.steps:
        for param in step.parameters:
            if param.is_numeric:
                assert param.limits is not None, f"{proto.id}: {step.id}.{param.name}"


def test_qc_has_no_literature_range_as_release_spec(proto: Protocol):
    """The review's typical VEGF range is a reference, not an acceptance criterion."""
    vegf = proto.step("qc").parameter("vegf")
    assert vegf is not None and vegf.unit == "pg/mL"
    assert vegf.required, f"{proto.id}: vegf must stay required"
    if vegf.spec is not None:
        ref = load_references()["vegf"][0]
        assert vegf.source == SITE_CHOICE
        assert _bounds(vegf.spec) != (ref.min, ref.max)
    sterility = proto.step("qc").parameter("sterility_passed")
    assert sterility.type == ParamType.yes_no and sterility.spec.equals is True


# --- QC analytes: methods, literature references, trending -------------------------------

# The secretome panel every bundled protocol's qc step declares: (name, method, reference).
SECRETOME_PANEL = [
    ("vegf", Method.elisa, "vegf"),
    ("il6", Method.elisa, "il6"),
    ("il8", Method.elisa, "il8"),
    ("mcp1", Method.elisa, "mcp1"),
    ("fgf2", Method.elisa, "fgf2"),
    ("tgf_beta", Method.elisa, "tgf_beta"),
    ("ev_yield", Method.nta, "ev_yield"),
]
# Release tests every qc step has, as yes/no with a critical site-choice spec "yes".
RELEASE_TESTS = [
    ("sterility_passed", Method.sterility),
    ("mycoplasma_passed", Method.mycoplasma),
]
# The parameter names tests/conftest.py GOOD["qc"] records for the standard protocol.
CONFTEST_QC = {
    "sterility_passed",
    "endotoxin",
    "mycoplasma_passed",
    "vegf",
    "vegf_blank",
    "qc_report_id",
}


def _referenced(proto: Protocol):
    for step in proto.steps:
        for param in step.parameters:
            if param.reference is not None:
                yield step, param


def test_qc_declares_the_secretome_panel(proto: Protocol):
    qc = proto.step("qc")
    for name, method, reference in SECRETOME_PANEL:
        param = qc.parameter(name)
        assert param is not None, f"{proto.id}: qc.{name} missing"
        assert param.is_numeric and param.method == method, f"{proto.id}: qc.{name}"
        assert param.reference == reference, f"{proto.id}: qc.{name} reference"
        # only VEGF is a required result; the rest are recorded when measured (the EV
        # yield is derived: computed when the NTA concentration is entered)
        if param.derived is None:
            assert param.required is (name == "vegf"), f"{proto.id}: qc.{name} required"
    ev = qc.parameter("ev_yield")
    assert ev.unit == "particles/10^6 cells"


def test_qc_release_tests(proto: Protocol):
    qc = proto.step("qc")
    for name, method in RELEASE_TESTS:
        param = qc.parameter(name)
        assert param is not None, f"{proto.id}: qc.{name} missing"
        assert param.type == ParamType.yes_no and param.method == method, f"{proto.id}: qc.{name}"
        assert param.spec is not None and param.spec.equals is True, f"{proto.id}: qc.{name}"
        assert param.source == SITE_CHOICE and param.severity.value == "critical"


def test_endotoxin_is_a_number_with_a_site_limit(proto: Protocol):
    endotoxin = proto.step("qc").parameter("endotoxin")
    assert endotoxin.unit == "EU/mL" and endotoxin.method == Method.endotoxin
    assert _bounds(endotoxin.spec) == (None, 0.5) and endotoxin.source == SITE_CHOICE
    assert endotoxin.severity.value == "critical" and endotoxin.required


def test_every_measured_qc_parameter_names_its_method(proto: Protocol):
    for param in proto.step("qc").parameters:
        if param.type != ParamType.text:
            assert param.method is not None, f"{proto.id}: qc.{param.name} has no method"


def test_references_name_known_ranges_in_convertible_units(proto: Protocol):
    known = load_references()
    for step, param in _referenced(proto):
        where = f"{proto.id}: {step.id}.{param.name}"
        assert param.reference in known, f"{where}: unknown reference {param.reference!r}"
        ref = known[param.reference][0]
        assert param.unit is not None and param.is_numeric, where
        # raises UnitError if the units are of different dimensions
        units.convert(1.0, param.unit, ref.unit)
        if ref.method is not None:
            assert param.method == ref.method, f"{where}: measured by {param.method}"


def test_no_release_spec_is_a_literature_range(proto: Protocol):
    """Reference ranges are information; a referenced analyte's spec is the site's own."""
    known = load_references()
    for step, param in _referenced(proto):
        if param.spec is None:
            continue
        ref = known[param.reference][0]
        where = f"{proto.id}: {step.id}.{param.name}"
        assert param.source == SITE_CHOICE, f"{where}: a release spec is a site choice"
        lo, hi = (
            None if b is None else units.convert(b, param.unit, ref.unit)
            for b in _bounds(param.spec)
        )
        assert (lo, hi) != (ref.min, ref.max), f"{where}: spec is the literature range"
        assert (lo, hi) != (ref.approx, ref.approx), f"{where}: spec is the literature figure"


def test_qc_specs_are_site_choices_and_few(proto: Protocol):
    qc = proto.step("qc")
    specs = [p for p in qc.parameters if p.spec is not None]
    assert all(p.source == SITE_CHOICE for p in specs), proto.id
    numeric = [p.name for p in specs if p.is_numeric]
    assert numeric == ["endotoxin", "vegf"], f"{proto.id}: numeric QC release specs {numeric}"


def test_trend_parameters_are_numeric(proto: Protocol):
    for step in proto.steps:
        for param in step.parameters:
            if param.trend:
                assert param.is_numeric, f"{proto.id}: {step.id}.{param.name} is trended"
                assert param.method is not None, f"{proto.id}: {step.id}.{param.name} method"


def test_vegf_is_trended(proto: Protocol):
    vegf = proto.step("qc").parameter("vegf")
    assert vegf is not None and vegf.trend is True
    for name in ("il6", "fgf2", "ev_yield"):
        assert proto.step("qc").parameter(name).trend is True, f"{proto.id}: qc.{name}"


def test_qc_import_keys_are_unambiguous(proto: Protocol):
    """A QC results file names an analyte by parameter name, reference id or label."""
    seen: dict[str, str] = {}
    for param in proto.step("qc").parameters:
        if not param.is_numeric:
            continue
        for key in {param.name, param.reference, param.label}:
            if key:
                other = seen.setdefault(key.strip().lower(), param.name)
                assert other == param.name, f"{proto.id}: {key!r} names {other} and {param.name}"


def test_standard_qc_still_takes_the_conftest_values():
    """The other tests record GOOD["qc"]; it must be complete and in spec."""
    qc = _load(PROTOCOLS_DIR / f"{STANDARD}.yaml").step("qc")
    assert set(GOOD["qc"]) == CONFTEST_QC
    findings = check_entries(qc, GOOD["qc"])
    assert [f.message for f in findings if f.verdict != Verdict.in_spec] == []


# --- traceability: material lots and instruments -------------------------------------------

# Kinds each step must declare where it exists: (materials, equipment).
TRACEABILITY = {
    "expansion": ({"basal medium", "FBS"}, {"incubator", "biosafety cabinet"}),
    "priming": ({"cytokine"}, set()),
    "pbs_wash": ({"PBS"}, set()),
    "hypoxia": (set(), {"hypoxia chamber"}),
    "conditioning": ({"conditioning medium"}, {"incubator"}),
    "spin": (set(), {"centrifuge"}),
    "filtration": ({"filter"}, set()),
    "concentrate": ({"ultrafiltration device"}, set()),
    "lyophilise": (set(), {"freeze dryer"}),
}


def test_steps_declare_their_lots_and_instruments(proto: Protocol):
    for step_id, (materials, equipment) in TRACEABILITY.items():
        step = proto.step(step_id)
        if step is None:
            continue
        assert materials <= set(step.materials), f"{proto.id}: {step_id} materials"
        assert equipment <= set(step.equipment), f"{proto.id}: {step_id} equipment"
    for step in proto.steps:
        for kinds in (step.materials, step.equipment):
            assert len(kinds) == len(set(kinds)), f"{proto.id}: {step.id} lists a kind twice"
            assert all(k.strip() == k and k for k in kinds), f"{proto.id}: {step.id}"


def test_protocol_severities_are_set(proto: Protocol):
    assert proto.trend_severity.value == "minor"
    assert proto.traceability_severity.value == "major"


def test_the_set_covers_the_review_options():
    protos = {p.id: p for p in (_load(f) for f in FILES)}
    tissues = set()
    for p in protos.values():
        tissues |= set(p.step("isolation").parameter("source_tissue").spec.one_of)
    assert {"UC", "BM", "AD"} <= tissues
    assert protos["cm-hypoxia-uc"].step("hypoxia").optional is False
    tnf = protos["cm-tnf-primed-ad"]
    assert tnf.step("hypoxia").optional is True
    assert tnf.step("priming").parameter("cytokine").choices == ["TNF-alpha", "IFN-gamma"]
    assert protos["cm-3d-spheroid-bm"].step("spheroid_formation") is not None
    assert protos["cm-standard-serum-free"].step("hypoxia") is None


# --- counts, volumes and derived values (version 2.0) ------------------------------------------

# What every protocol records, step by step: (step, parameter, unit).
COUNTS_AND_VOLUMES = [
    ("expansion", "seeding_density", "cells/cm2"),
    ("conditioning", "vessels", None),
    ("conditioning", "vessel_area", "cm2"),
    ("conditioning", "medium_volume", "mL"),
    ("conditioning", "cell_count", "cells"),
    ("conditioning", "viability_start", "%"),
    ("collection", "volume", "mL"),
    ("collection", "cell_count", "cells"),
    ("collection", "viability", "%"),
    ("filtration", "filtrate_volume", "mL"),
    ("use_fresh", "final_volume", "mL"),
    ("concentrate", "final_volume", "mL"),
    ("lyophilise", "fill_volume", "mL"),
    ("lyophilise", "cake_mass", "mg"),
    ("lyophilise", "reconstitution_volume", "mL"),
    ("lyophilise", "final_volume", "mL"),
]
# Every derived value a protocol declares: (step, parameter) -> (formula, unit).
DERIVED = {
    ("conditioning", "medium_per_area"): ("medium_volume / vessel_area", "mL/cm2"),
    ("conditioning", "cell_density"): ("cell_count / (vessels * vessel_area)", "cells/cm2"),
    ("collection", "cell_recovery"): ("cell_count / conditioning.cell_count", "%"),
    ("filtration", "volume_recovery"): ("filtrate_volume / collection.volume", "%"),
    ("concentrate", "concentration_factor"): ("collection.volume / final_volume", None),
    ("lyophilise", "final_volume"): ("aliquots * reconstitution_volume", "mL"),
    ("lyophilise", "concentration_factor"): ("fill_volume / reconstitution_volume", None),
    ("qc", "vegf_per_cells"): (
        "vegf * downstream.final_volume / collection.cell_count",
        "pg/10^6 cells",
    ),
    ("qc", "ev_yield"): (
        "ev_concentration * downstream.final_volume / collection.cell_count",
        "particles/10^6 cells",
    ),
}
# Hold times: (step, after, max hours), all site choices.
HOLD_WINDOWS = [
    ("spin", "collection", 2),
    ("filtration", "spin", 2),
    ("use_fresh", "filtration", 4),
    ("concentrate", "filtration", 4),
    ("lyophilise", "filtration", 4),
]


def test_the_bundled_protocols_are_version_2(proto: Protocol):
    """Counts, volumes and derived values changed every file: a new version, so a database
    holding 1.0 takes the new content as 2.0 (the same version with other content is
    refused)."""
    assert proto.version == "2.0"


def test_counts_and_volumes_are_recorded(proto: Protocol):
    for step_id, name, unit in COUNTS_AND_VOLUMES:
        param = proto.step(step_id).parameter(name)
        assert param is not None, f"{proto.id}: {step_id}.{name} missing"
        assert param.is_numeric and param.unit == unit, f"{proto.id}: {step_id}.{name}"
        if param.derived is None:
            assert param.required, f"{proto.id}: {step_id}.{name} must be recorded"
    for arm in DOWNSTREAM_ARMS:  # number of aliquots, storage container and expiry
        step = proto.step(arm)
        assert step.parameter("aliquots").type == ParamType.integer, f"{proto.id}: {arm}"
        assert step.parameter("container").type == ParamType.choice, f"{proto.id}: {arm}"
        assert step.parameter("expiry").type == ParamType.datetime, f"{proto.id}: {arm}"
    storage = {
        "use_fresh": "hold_temperature",
        "concentrate": "storage_temperature",
        "lyophilise": "storage_temperature",
    }
    for arm, name in storage.items():
        param = proto.step(arm).parameter(name)
        assert param.unit == "°C" and param.spec is not None, f"{proto.id}: {arm}.{name}"
        assert param.source == SITE_CHOICE


def test_derived_values(proto: Protocol):
    declared = {
        (step.id, p.name): (p.derived, p.unit)
        for step in proto.steps
        for p in step.parameters
        if p.derived is not None
    }
    expected = dict(DERIVED)
    if proto.step("spheroid_formation") is not None:  # no monolayer density in 3D culture
        del expected[("conditioning", "medium_per_area")]
        del expected[("conditioning", "cell_density")]
    assert declared == expected, proto.id
    for (step_id, name), _ in declared.items():
        param = proto.step(step_id).parameter(name)
        assert param.type == ParamType.number and param.figures >= 2
        assert param.spec is None or param.source == SITE_CHOICE, f"{proto.id}: {name}"


def test_the_concentration_factor_is_derived_with_its_site_spec(proto: Protocol):
    factor = proto.step("concentrate").parameter("concentration_factor")
    assert factor.derived == "collection.volume / final_volume"
    assert _bounds(factor.spec) == (10.0, 20.0) and factor.source == SITE_CHOICE


def test_hold_time_windows(proto: Protocol):
    for step_id, after, hours in HOLD_WINDOWS:
        window = proto.step(step_id).window
        assert window is not None, f"{proto.id}: {step_id} has no hold-time window"
        assert (window.after, window.min, window.max, window.unit) == (after, None, hours, "h")
        assert window.source == SITE_CHOICE and window.severity.value == "major"


def test_mycoplasma_is_sampled_from_the_unfiltered_harvest(proto: Protocol):
    collection = proto.step("collection")
    sampled = collection.parameter("mycoplasma_sampled")
    assert sampled.type == ParamType.yes_no and sampled.spec.equals is True
    assert collection.parameter("mycoplasma_sample_id").type == ParamType.text
    assert "before the spin" in collection.instructions
    assert "unfiltered harvest" in (proto.step("qc").parameter("mycoplasma_passed").help or "")


def test_viability_at_collection_after_conditioning(proto: Protocol):
    viability = proto.step("collection").parameter("viability")
    assert viability.unit == "%" and viability.spec.min == 80 and viability.source == SITE_CHOICE
    assert "after serum-free conditioning" in viability.label


def test_hpl_percent_wherever_an_hpl_medium_is_accepted(proto: Protocol):
    conditioning = proto.step("conditioning")
    medium = conditioning.parameter("medium")
    accepted = medium.spec.one_of if medium.spec else medium.choices
    hpl_media = [m for m in accepted if "platelet lysate" in m]
    hpl = conditioning.parameter("hpl_percent")
    if hpl_media:
        assert hpl is not None and hpl.unit == "%", f"{proto.id}: no hPL % field"
        assert hpl.source == SITE_CHOICE and hpl.required is False
    else:
        assert hpl is None, f"{proto.id} accepts no hPL medium"


def test_the_elisa_blank_is_recorded_and_reported_beside_the_results(proto: Protocol):
    qc = proto.step("qc")
    blank = qc.parameter("vegf_blank")
    assert blank.unit == "pg/mL" and blank.method == Method.elisa and blank.required
    assert blank.spec is None and blank.reference is None
    assert "unconditioned-medium blank" in qc.instructions
    assert "not subtracted" in qc.instructions


def test_the_filter_pore_size_is_a_maximum(proto: Protocol):
    pore = proto.step("filtration").parameter("pore_size")
    assert _bounds(pore.spec) == (None, 0.22) and pore.source == REVIEW
    findings = check_entries(
        proto.step("filtration"),
        {
            "pore_size": "0.2 um",
            "integrity_test_passed": "yes",
            "filter_lot": "F-1",
            "filtrate_volume": "490 mL",
        },
    )
    assert [f.verdict for f in findings] == [Verdict.in_spec] * 4


def test_the_literature_ranges_are_unchanged():
    """The review's figures (protocols/reference/secretome.json) stay as the review gives
    them, whatever the protocols' version 2.0 changed."""
    ranges = {k: (r[0].min, r[0].max, r[0].approx, r[0].unit) for k, r in load_references().items()}
    assert ranges == {
        "egf": (50.0, 200.0, None, "pg/mL"),
        "ev_yield": (None, None, 2.8e8, "particles/10^6 cells"),
        "fgf2": (100.0, 1500.0, None, "pg/mL"),
        "igf1": (1.0, 5.0, None, "ng/mL"),
        "il10": (50.0, 800.0, None, "pg/mL"),
        "il6": (100.0, 500.0, None, "pg/mL"),
        "il8": (500.0, 1000.0, None, "pg/mL"),
        "mcp1": (5.0, 50.0, None, "ng/mL"),
        "pdgf": (100.0, 2500.0, None, "pg/mL"),
        "tgf_beta": (1.0, 10.0, None, "pg/mL"),
        "vegf": (100.0, 500.0, None, "pg/mL"),
    }


def test_fresh_use_before_qc_needs_a_conditional_release(proto: Protocol):
    """Fresh CM is handed over before its QC results only under QA's conditional release;
    the concentrate and the lyophilisate wait for QC and release."""
    assert [s.id for s in proto.steps if s.use_before_qc] == ["use_fresh"]
