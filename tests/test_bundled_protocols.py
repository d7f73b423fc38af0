"""The bundled protocols: they load, and every figure is credited honestly.

The rule (docs: DOMAIN.md, cited-studies.md): a figure the review (Nasiri et al. 2026)
gives carries ``source: nasiri2026``; every other figure is ``source: site choice``. The
cited studies' abstracts give no process figures, so nothing may be credited to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmprep.protocol import SITE_CHOICE, ParamType, Protocol, load_file
from cmprep.protocol.library import protocol_files

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
    ("filtration", "pore_size", 0.22, 0.22),  # "filtered through a 0.22 um membrane"
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
    ("filtration", "pore_size", 0.22, 0.22),
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
    assert vegf.spec is None
    sterility = proto.step("qc").parameter("sterility_passed")
    assert sterility.type == ParamType.yes_no and sterility.spec.equals is True


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
