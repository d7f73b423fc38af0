"""Lineage from donor to aliquot: derivations (transform, split, pool), the rules on each,
release of a lot only when everything upstream is released, the recursive walk up and down,
recalls, the command line, and a stateful property test over random splits and pools."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import STANDARD, approve_bundled, edit_tables, present, seed_people, whole_reads
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cmprep.cli import Shell, main
from cmprep.domain import lineage as ln
from cmprep.errors import NotFound, Refused
from cmprep.events import NewEvent
from cmprep.render.lineage import lineage_svg, tree_rows
from cmprep.service import Services
from cmprep.service.material_rows import KeptMaterials, keep_materials
from cmprep.store import open_store
from cmprep.store.sqlite import SQLiteStore


# --- a lineage as a lab makes it ----------------------------------------------------------------
def chain(svc) -> None:
    """Donor D-0001 -> vials (P2) -> culture (P3) -> harvest in batch B1 -> filtrate ->
    concentrate; every material released on the way, so the next may be made from it."""
    lin = svc.lineage
    lin.register_donor("D-0001", "ELIG-1", "ICF-1", "alice")
    lin.release("D-0001", "quinn")
    lin.derive([("D-0001", None)], [("V1-01", 1), ("V1-02", 1)], ln.VIAL, "vial", "alice",
               passage=2)  # fmt: skip
    lin.release("V1-01", "quinn")
    lin.derive([("V1-01", 1)], [("C1", 1)], ln.CULTURE, "flask", "alice")
    lin.release("C1", "quinn")
    svc.batches.start(STANDARD, "alice", "B1")
    lin.derive([("C1", 1)], [("H1", "500")], ln.HARVEST, "mL", "alice", batch_id="B1",
               step="collection")  # fmt: skip
    lin.release("H1", "quinn")
    lin.derive([("H1", 490)], [("F1", 490)], ln.FILTRATE, "mL", "alice", batch_id="B1",
               step="filtration")  # fmt: skip
    lin.release("F1", "quinn")
    lin.derive([("F1", "490")], [("K1", "24.5")], ln.CONCENTRATE, "mL", "alice",
               material="MSC-CM concentrate 20x", expiry="2027-05-29", batch_id="B1",
               step="concentrate")  # fmt: skip


@pytest.fixture
def lab(svc):
    chain(svc)
    return svc


def test_a_derivation_draws_from_its_inputs_and_quarantines_what_it_makes(lab):
    k1 = lab.lineage.material("K1")
    assert (k1.kind, k1.status, k1.quantity, k1.unit) == (
        ln.CONCENTRATE,
        "quarantine",
        Decimal("24.5"),
        "mL",
    )
    assert (k1.batch_id, k1.step, k1.parents, k1.donors) == (
        "B1",
        "concentrate",
        ["F1"],
        frozenset({"D-0001"}),
    )
    assert k1.material == "MSC-CM concentrate 20x" and k1.expiry == "2027-05-29"
    h1 = lab.lineage.material("H1")
    assert (h1.remaining, h1.status) == (Decimal("10"), "released")
    f1 = lab.lineage.material("F1")
    assert (f1.remaining, f1.status) == (Decimal("0"), "consumed")  # the last of it drawn


def test_the_passage_of_a_cell_material_is_its_parents_plus_one(lab):
    assert lab.lineage.material("V1-01").passage == 2  # given: made from a donor
    assert lab.lineage.material("C1").passage == 3
    lab.lineage.release("V1-02", "quinn")
    with pytest.raises(Refused) as err:
        lab.lineage.derive([("V1-02", 1)], [("C2", 1)], ln.CULTURE, "flask", "alice", passage=5)
    assert err.value.problems == ["C2 is at passage 3 (its parent's 2 + 1), not 5"]
    with pytest.raises(Refused) as err:
        lab.lineage.derive([("D-0001", None)], [("V9", 1)], ln.VIAL, "vial", "alice")
    assert err.value.problems == ["give the passage of V9 (it is made from no cell material)"]


def test_nothing_is_drawn_beyond_what_remains(lab):
    with pytest.raises(Refused) as err:
        lab.lineage.derive([("H1", "10.5")], [("X1", 10)], ln.FILTRATE, "mL", "alice")
    assert err.value.problems == ["10.5 mL of H1 is more than remains (10 mL)"]
    assert lab.lineage.material("H1").remaining == Decimal("10")
    assert "X1" not in lab.lineage.materials()


def test_exact_decimals_let_the_last_drop_be_drawn(lab):
    lab.lineage.derive([("H1", "0.1")], [("S1", "0.1")], ln.ALIQUOT, "mL", "alice")
    lab.lineage.derive([("H1", "0.2")], [("S2", "0.2")], ln.ALIQUOT, "mL", "alice")
    lab.lineage.derive([("H1", "9.7")], [("S3", "9.7")], ln.ALIQUOT, "mL", "alice")
    assert lab.lineage.material("H1").status == "consumed"


@pytest.mark.parametrize("status", ["quarantine", "rejected", "destroyed"])
def test_nothing_is_derived_from_material_not_released(lab, status):
    if status == "rejected":
        lab.lineage.reject("K1", "quinn", "endotoxin 2.1 EU/mL")
    elif status == "destroyed":
        lab.lineage.destroy("K1", "alice", "bottle broken")
    with pytest.raises(Refused) as err:
        lab.lineage.split("K1", 2, 1, "alice")
    assert err.value.problems == [f"K1 is {status}; only released material may be used"]


def test_a_consumed_lot_gives_nothing_more(lab):
    with pytest.raises(Refused) as err:
        lab.lineage.derive([("F1", 1)], [("X", 1)], ln.CONCENTRATE, "mL", "alice")
    assert err.value.problems[0] == "F1 is consumed: nothing of it remains"


def test_a_split_makes_numbered_aliquots_and_cannot_make_more_than_it_draws(lab):
    lab.lineage.release("K1", "quinn")
    out = lab.lineage.split("K1", 12, 2, "alice", batch_id="B1", step="concentrate")
    assert out.shape == "split" and [m.lot for m in out.outputs][:2] == ["K1-01", "K1-02"]
    assert all(m.kind == ln.ALIQUOT and m.expiry == "2027-05-29" for m in out.outputs)
    assert lab.lineage.material("K1").remaining == Decimal("0.5")
    with pytest.raises(Refused) as err:
        lab.lineage.derive(
            [("K1", "0.5")], [("Y1", "0.3"), ("Y2", "0.3")], ln.ALIQUOT, "mL", "alice"
        )
    assert err.value.problems == ["the outputs hold 0.6 mL, more than the 0.5 mL drawn"]


def test_a_lot_is_released_only_when_everything_upstream_is(lab):
    lab.lineage.release("K1", "quinn")
    lab.lineage.split("K1", 2, 1, "alice")
    lab.lineage.reject("C1", "quinn", "mycoplasma positive in the harvest sample")
    with pytest.raises(Refused) as err:
        lab.lineage.release("K1-01", "quinn")
    assert err.value.problems == ["upstream culture C1 is rejected"]
    assert lab.lineage.material("K1-01").status == "quarantine"


def test_release_refuses_what_is_not_in_quarantine_and_who_is_not_qa(lab):
    with pytest.raises(Refused, match="H1 is released; it cannot become released"):
        lab.lineage.release("H1", "quinn")
    assert ln.release_problems(lab.lineage.known(), "H1") == [
        "H1 is released; only material in quarantine is released"
    ]
    with pytest.raises(Refused, match="to release one must be: qa"):
        lab.lineage.release("K1", "alice")
    with pytest.raises(Refused, match="reason is required"):
        lab.lineage.reject("K1", "quinn", " ")
    with pytest.raises(Refused, match="consumed; it cannot become destroyed"):
        lab.lineage.destroy("F1", "alice", "spilled")


def test_pooling_two_donors_opens_a_deviation_in_the_batch(lab):
    lin = lab.lineage
    lin.register_donor("D-0002", "ELIG-2", "ICF-2", "alice")
    lin.release("D-0002", "quinn")
    lin.derive([("D-0002", None)], [("V2-01", 1)], ln.VIAL, "vial", "alice", passage=2)
    lin.release("V2-01", "quinn")
    lin.derive([("V2-01", 1)], [("C2", 1)], ln.CULTURE, "flask", "alice")
    lin.release("C2", "quinn")
    lin.derive(
        [("C2", 1)], [("H2", 500)], ln.HARVEST, "mL", "alice", batch_id="B1", step="collection"
    )
    lin.release("H2", "quinn")
    out = lin.derive([("H1", 10), ("H2", 500)], [("P1", 510)], ln.HARVEST, "mL", "alice",
                     batch_id="B1", step="collection")  # fmt: skip
    assert out.shape == "pool" and out.donors == ("D-0001", "D-0002")
    [dev] = lab.quality.deviations()
    assert dev["deviation_id"] == out.deviation_id and dev["step"] == "collection"
    assert dev["message"] == (
        "Material of donors D-0001, D-0002 pooled into P1; protocol cm-standard-serum-free "
        "does not allow pooling across donors"
    )
    assert lin.material("P1").donors == frozenset({"D-0001", "D-0002"})
    lin.release("P1", "quinn")
    lin.split("P1", 2, 5, "alice", batch_id="B1", step="collection")  # not pooled again
    assert len(lab.quality.deviations()) == 1


def test_pooling_across_donors_outside_a_batch_is_refused(lab):
    lab.lineage.register_donor("D-0002", "ELIG-2", "ICF-2", "alice")
    lab.lineage.release("D-0002", "quinn")
    with pytest.raises(Refused, match="pooled outside a batch"):
        lab.lineage.derive([("D-0001", None), ("D-0002", None)], [("VX", 1)], ln.VIAL, "vial",
                           "alice", passage=1)  # fmt: skip
    assert "VX" not in lab.lineage.materials()


def test_a_protocol_that_allows_pooling_opens_nothing(lab, tmp_path_factory):
    from conftest import REPO, approve_file

    text = (REPO / "protocols" / "cm-standard-serum-free.yaml").read_text()
    text = text.replace(
        "id: cm-standard-serum-free", "id: cm-pooled\npooling_across_donors: true", 1
    )
    path = tmp_path_factory.mktemp("p") / "cm-pooled.yaml"
    path.write_text(text)
    pooled = approve_file(lab, path)
    lab.batches.start(pooled, "alice", "B2")
    lab.lineage.register_donor("D-0002", "ELIG-2", "ICF-2", "alice")
    lab.lineage.release("D-0002", "quinn")
    out = lab.lineage.derive([("D-0001", None), ("D-0002", None)], [("VX", 1)], ln.VIAL, "vial",
                             "alice", passage=1, batch_id="B2", step="isolation")  # fmt: skip
    assert out.deviation_id is None and out.donors == ("D-0001", "D-0002")
    assert lab.quality.deviations() == []
    assert lab.store.events("@materials")[-1].payload["pooling_allowed"] is True


@pytest.mark.parametrize(
    "kwargs,problem",
    [
        ({"batch_id": "B1"}, "name the step of batch B1 where this was done"),
        ({"step": "spin"}, "step 'spin' is named without its batch; name the batch too"),
        ({"batch_id": "B1", "step": "nope"}, "batch B1 has no step 'nope'"),
    ],
)
def test_a_derivation_names_a_real_batch_and_step(lab, kwargs, problem):
    with pytest.raises(Refused, match=problem):
        lab.lineage.derive([("H1", 1)], [("X1", 1)], ln.FILTRATE, "mL", "alice", **kwargs)
    with pytest.raises(NotFound):
        lab.lineage.derive(
            [("H1", 1)], [("X1", 1)], ln.FILTRATE, "mL", "alice", batch_id="NOPE", step="spin"
        )


@pytest.mark.parametrize(
    "inputs,outputs,kind,unit,problem",
    [
        ([("H1", "-1")], [("X", 1)], ln.FILTRATE, "mL", "quantity of H1 '-1' is not a quantity"),
        ([("H1", "nan")], [("X", 1)], ln.FILTRATE, "mL", "quantity of H1 'nan' is not a quantity"),
        (
            [("H1", None)],
            [("X", 1)],
            ln.FILTRATE,
            "mL",
            "give how much of H1 is used (it holds 10 mL)",
        ),
        ([("H1", 1), ("H1", 1)], [("X", 1)], ln.FILTRATE, "mL", "input H1 is named twice"),
        ([("H1", 1)], [("X", 1), ("x", 1)], ln.ALIQUOT, "mL", "output x is named twice"),
        ([("H1", 1)], [("K1", 1)], ln.FILTRATE, "mL", "lot K1 already exists"),
        ([("H1", 1)], [("bad id", 1)], ln.FILTRATE, "mL", "output lot 'bad id' is not usable"),
        ([("H1", 1)], [("X", 1)], "donor", "mL", "kind 'donor' cannot be made"),
        ([("H1", 1)], [("X", 1)], ln.FILTRATE, "", "give the unit of X, e.g. mL"),
        ([("H1", 1)], [("X", 1)], ln.FILTRATE, "m\x1bL", "contains a control character"),
        ([("H1", 1)], [("X", 1)], ln.FILTRATE, "mL", None),
        ([], [("X", 1)], ln.FILTRATE, "mL", "name at least one input"),
        ([("H1", 1)], [], ln.FILTRATE, "mL", "name at least one output"),
    ],
)
def test_every_bad_derivation_is_refused_with_its_reason(lab, inputs, outputs, kind, unit, problem):
    if problem is None:  # the control: the same derivation, well formed, is recorded
        assert lab.lineage.derive(inputs, outputs, kind, unit, "alice").shape == "transform"
        return
    before = lab.store.events("@materials")
    with pytest.raises(Refused) as err:
        lab.lineage.derive(inputs, outputs, kind, unit, "alice")
    assert any(problem in p for p in err.value.problems), err.value.problems
    assert lab.store.events("@materials") == before


def test_an_unknown_input_is_not_found_with_the_closest_named(lab):
    with pytest.raises(NotFound, match=r"no material 'V1-03'; did you mean V1-02 or V1-01") as err:
        lab.lineage.derive([("V1-03", 1)], [("X", 1)], ln.FILTRATE, "mL", "alice")
    assert err.value.hint is not None and err.value.hint.kind == "register_lot"


def test_lots_are_found_in_any_case(lab):
    out = lab.lineage.derive([("h1", 1)], [("X1", 1)], ln.FILTRATE, "mL", "alice")
    assert out.inputs[0].lot == "H1" and lab.lineage.material("x1").lot == "X1"
    assert lab.store.lineage_edges("H1", "down")[-1]["child"] == "X1"


def test_a_donor_needs_a_pseudonymous_code_eligibility_and_consent(svc):
    with pytest.raises(Refused) as err:
        svc.lineage.register_donor("JaneDoe", " ", "", "alice")
    assert err.value.problems == [
        "donor code 'JaneDoe' has no digit; give the pseudonymous code (e.g. D-0042), never a name",
        "give the eligibility reference: a donor is registered only with it",
        "give the consent reference: a donor is registered only with it",
    ]
    svc.lineage.register_donor("D-7", "ELIG-7", "ICF-7", "alice")
    with pytest.raises(Refused, match="already registered"):
        svc.lineage.register_donor("D-7", "ELIG-7", "ICF-7", "alice")
    with pytest.raises(Refused, match="already registered"):
        svc.materials.register_lot("d-7", "FBS", "2027-01-01", "alice")
    donor = svc.lineage.material("D-7")
    assert (donor.kind, donor.status, donor.eligibility, donor.consent) == (
        "donor",
        "quarantine",
        "ELIG-7",
        "ICF-7",
    )


def test_a_reagent_lot_is_released_on_arrival_and_may_be_counted(svc):
    svc.materials.register_lot("DMEM-1", "DMEM", "2027-01-01", "alice", quantity="500", unit="mL")
    svc.materials.register_lot("FBS-1", "FBS", "2027-01-01", "alice")
    dmem, fbs = svc.lineage.material("DMEM-1"), svc.lineage.material("FBS-1")
    assert (dmem.kind, dmem.status, dmem.remaining, dmem.unit) == (
        "reagent",
        "released",
        Decimal("500"),
        "mL",
    )
    assert fbs.remaining is None and svc.materials.lots()["FBS-1"].material == "FBS"
    with pytest.raises(Refused, match="quantity and its unit together"):
        svc.materials.register_lot("PBS-1", "PBS", "2027-01-01", "alice", quantity="5")
    with pytest.raises(Refused, match="not a quantity"):
        svc.materials.register_lot("PBS-1", "PBS", "2027-01-01", "alice", quantity="x", unit="mL")


# --- the walk, the drawing, the recall ---------------------------------------------------------
def test_trace_walks_down_to_the_aliquots_and_up_to_the_donor(lab):
    lab.lineage.release("K1", "quinn")
    lab.lineage.split("K1", 3, 1, "alice", batch_id="B1", step="concentrate")
    down = lab.lineage.trace("D-0001", "down")
    assert [r["tree"] for r in tree_rows(down)] == [
        "D-0001", "  └ V1-01", "    └ C1", "      └ H1", "        └ F1", "          └ K1",
        "            └ K1-01", "            └ K1-02", "            └ K1-03", "  └ V1-02",
    ]  # fmt: skip
    up = lab.lineage.trace("K1-02", "up")
    assert [r["tree"].strip(" └") for r in tree_rows(up)] == [
        "K1-02",
        "K1",
        "F1",
        "H1",
        "C1",
        "V1-01",
        "D-0001",
    ]
    assert tree_rows(up)[1]["drawn"] == "1 mL"  # K1-02's share of K1
    data = up.as_json()
    assert data["root"] == "K1-02" and {n["lot"] for n in data["nodes"]} == {
        "K1-02",
        "K1",
        "F1",
        "H1",
        "C1",
        "V1-01",
        "D-0001",
    }
    with pytest.raises(NotFound):
        lab.lineage.trace("nope", "down")
    with pytest.raises(Refused, match="expected up or down"):
        lab.lineage.trace("K1", "sideways")


def test_the_drawing_has_a_box_per_lot_and_escapes_what_it_shows(lab):
    lab.lineage.derive([("H1", 1)], [("X-1", 1)], ln.FILTRATE, "mL", "alice", material="<script>")
    svg = lineage_svg(lab.lineage.trace("D-0001", "down"))
    assert svg.startswith("<svg") and svg.count('<g class="node">') == 8
    assert "<script>" not in svg
    import xml.etree.ElementTree as ET

    ET.fromstring(svg)  # well formed


def test_a_recall_from_a_donor_a_vial_or_a_medium_lot_finds_every_aliquot(lab, clock):
    from conftest import GOOD, run_to

    lab.lineage.release("K1", "quinn")
    lab.lineage.split("K1", 3, 1, "alice")
    aliquots = {"K1-01", "K1-02", "K1-03"}
    for start in ("D-0001", "V1-01", "H1", "K1"):
        assert aliquots <= {r["lot"] for r in lab.lineage.recall(start)}, start
    assert {r["lot"] for r in lab.lineage.recall("V1-02")} == set()
    # a medium lot used at a step of B1: everything made in B1, and from it
    lab.materials.register_lot("DMEM-7", "serum-free DMEM", "2027-12-31", "alice")
    run_to(lab, clock, "B1", stop_before="conditioning")
    lab.batches.record("B1", "conditioning", GOOD["conditioning"], "alice", lots=["DMEM-7"])
    rows = {r["lot"]: r["reached"] for r in lab.lineage.recall("DMEM-7")}
    assert set(rows) == {"H1", "F1", "K1"} | aliquots
    assert rows["H1"] == "made in batch B1, which used DMEM-7 at conditioning"
    assert rows["K1-02"] == "made from K1"


def test_db_rebuild_fills_the_edges_of_an_older_database(tmp_path, clock):
    path = tmp_path / "old.db"
    svc = approve_bundled(seed_people(Services(SQLiteStore(path, create=True), clock=clock)))
    chain(svc)
    edges = svc.store.lineage_edges("D-0001", "down")
    svc.close()
    conn = sqlite3.connect(path)  # as a database of the schema before lineage edges
    conn.execute("DROP TABLE lineage_edges")
    conn.execute("PRAGMA user_version=6")
    conn.commit()
    conn.close()
    again = Services(SQLiteStore(path), clock=clock)
    assert again.store.lineage_edges("D-0001", "down") == []  # the table is back, empty
    result = CliRunner().invoke(
        main, ["db", "rebuild", "--db", str(path)], obj=Shell(lambda db: again)
    )
    assert result.exit_code == 0, result.output
    assert again.store.lineage_edges("D-0001", "down") == edges


# --- writes read the materials they name, by key ------------------------------------------------
def test_every_write_to_materials_reads_the_rows_it_names_not_the_stream(lab):
    """A registration, a derivation, a split, a release, a rejection, a label print and a
    recall cost the same beside a lab's years of materials: none folds "@materials"."""
    for n in range(40):  # more materials the writes below never read
        lab.materials.register_lot(f"PBS-{n:03d}", "PBS", "2027-12-31", "alice")
    asked = whole_reads(lab)
    lab.lineage.register_donor("D-0009", "ELIG-9", "ICF-9", "alice")
    lab.materials.register_lot("DMEM-1", "DMEM", "2027-01-31", "alice", quantity=500, unit="mL")
    lab.lineage.release("k1", "quinn")  # any case
    out = lab.lineage.split("K1", 3, 2, "alice", batch_id="B1", step="concentrate")
    lab.lineage.reject("K1-01", "quinn", "endotoxin 2.1 EU/mL")
    lab.lineage.print_labels("K1-02", 3, "alice", render=lambda sheet: b"")
    lab.lineage.derive([("DMEM-1", "100")], [("M1", "100")], ln.FILTRATE, "mL", "alice")
    assert [m.lot for m in out.outputs] == ["K1-01", "K1-02", "K1-03"]
    assert lab.lineage.material("K1").remaining == Decimal("18.5")
    assert lab.lineage.material("DMEM-1").remaining == Decimal("400")
    assert [r["lot"] for r in lab.lineage.recall("H1")][:2] == ["F1", "K1"]
    with pytest.raises(Refused, match="lot pbs-001 is already registered as PBS-001"):
        lab.materials.register_lot("pbs-001", "PBS", "2027-12-31", "alice")
    with pytest.raises(Refused, match="d-0009 is already registered as D-0009"):
        lab.lineage.register_donor("d-0009", "ELIG-9", "ICF-9", "alice")
    with pytest.raises(NotFound, match="no material 'K1-04'; did you mean K1-03 or K1-02"):
        lab.lineage.release("K1-04", "quinn")
    assert "@materials" not in asked
    assert lab.audit.verify().problems == []  # the rows are what the log folds to


def test_the_materials_register_is_what_the_log_folds_to_and_a_changed_row_is_named(lab, db_path):
    kept = {r["lot"]: r for r in lab.store.registered_rows("material")}
    assert kept == {lot: m.stored() for lot, m in lab.lineage.materials().items()}
    made = [r["lot"] for r in lab.store.registered_rows("material", batch_id="B1")]
    assert made == ["F1", "H1", "K1"]  # by the batch's index
    assert [m.lot for m in lab.lineage.made_in("B1")] == ["H1", "F1", "K1"]  # as made
    edit_tables(
        db_path,
        "UPDATE materials SET data = json_set(data, '$.remaining', '500') WHERE lot = 'K1'",
        "DELETE FROM materials WHERE lot = 'H1'",
    )
    said = [f"{p.label} {p}" for p in lab.audit.verify().problems]
    assert said == [
        "DIFFERS materials table, H1: missing from the table; the log has it",
        "DIFFERS materials table, K1: remaining is '500' in the table, '24.5' in the log",
    ]
    lab.audit.rebuild_projections()
    assert lab.audit.verify().problems == []
    assert lab.lineage.material("K1").remaining == Decimal("24.5")


def test_an_upgraded_database_decides_from_the_stream_until_rebuilt(tmp_path, clock):
    """A database from before the materials register (schema 9): its writes decide from
    the stream, and keep correct rows, until `db rebuild` fills the register."""
    path = tmp_path / "old.db"
    svc = approve_bundled(seed_people(Services(SQLiteStore(path, create=True), clock=clock)))
    chain(svc)
    svc.close()
    conn = sqlite3.connect(path)  # as a database of schema 9
    conn.execute("DROP TABLE materials")
    conn.execute("DELETE FROM meta WHERE key = 'materials_indexed'")
    conn.execute("PRAGMA user_version=9")
    conn.commit()
    conn.close()
    again = present(Services(SQLiteStore(path), clock=clock))
    assert not again.store.register_whole("material")
    assert again.store.registered_rows("material") == []
    again.lineage.release("K1", "quinn")  # decided from the stream
    again.lineage.split("K1", 2, 1, "alice")
    assert again.lineage.material("k1-02").status == ln.QUARANTINE
    assert [m.lot for m in again.lineage.made_in("B1")] == ["H1", "F1", "K1"]
    assert again.audit.verify().problems == []  # a register not filled is not compared
    again.audit.rebuild_projections()
    assert again.store.register_whole("material")
    kept = {r["lot"]: r for r in again.store.registered_rows("material")}
    assert kept == {lot: m.stored() for lot, m in again.lineage.materials().items()}
    again.lineage.derive([("K1", "2")], [("K2", "2")], ln.LYOPHILISATE, "mL", "alice")
    assert again.lineage.material("K1").remaining == Decimal("20.5")
    assert again.audit.verify().problems == []
    again.close()


# --- the command line ----------------------------------------------------------------------------
@pytest.fixture
def cli(db_path, monkeypatch, clock):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    approve_bundled(seed_people(Services(open_store(str(db_path), create=True), clock=clock)))
    shell = Shell(lambda db: present(Services(open_store(db), clock=clock)))

    def invoke(*args: str, user: str = "alice"):
        clock.advance(minutes=5)
        return CliRunner().invoke(main, list(args), env={"CMPREP_USER": user}, obj=shell)

    return invoke


def test_the_lineage_from_the_command_line(cli, tmp_path):
    ok = [
        ("materials", "donor", "D-0042", "--eligibility", "ELIG-42", "--consent", "ICF-42"),
        ("materials", "release", "D-0042"),
        ("materials", "derive", "--in", "D-0042", "--out", "V42-1:1", "--kind", "cell-bank vial",
         "--unit", "vial", "--passage", "2"),
        ("materials", "release", "V42-1"),
        ("batch", "start", STANDARD, "--id", "B7"),
        ("materials", "derive", "--in", "V42-1:1", "--out", "H42:300", "--kind", "CM harvest",
         "--unit", "mL", "--batch", "B7", "--step", "collection"),
        ("materials", "release", "H42"),
        ("materials", "split", "H42", "--count", "3", "--each", "100"),
    ]  # fmt: skip
    said = []
    for args in ok:
        user = "quinn" if args[1] == "release" else "alice"
        out = cli(*args, user=user)
        assert out.exit_code == 0, (args, out.output)
        said.append(out.output)
    assert said[0] == "Donor D-0042 registered (in quarantine until QA releases it).\n"
    assert said[2] == "Transform recorded: V42-1 (cell-bank vial, in quarantine).\n"
    assert said[-1] == (
        "Split recorded: H42-01, H42-02, H42-03 (aliquot, in quarantine).\n"
        "  H42: 0 mL remain (consumed).\n"
    )
    table = cli("materials", "trace", "D-0042", "--down")
    assert table.exit_code == 0 and "      └ H42-03" in table.output and "consumed" in table.output
    data = json.loads(cli("materials", "trace", "H42-02", "--up", "--format", "json").output)
    assert [e["child"] for e in data["edges"]] == ["V42-1", "H42", "H42-02"]
    svg = tmp_path / "t.svg"
    out = cli("materials", "trace", "D-0042", "--down", "--format", "svg", "-o", str(svg))
    assert out.exit_code == 0 and svg.read_text().startswith("<svg")
    recall = cli("materials", "recall", "D-0042", "--format", "csv")
    assert recall.output.splitlines()[0] == "lot,kind,status,remaining,unit,batch_id,step,reached"
    assert len(recall.output.splitlines()) == 6
    show = cli("materials", "show", "H42")
    assert "status     consumed" in show.output and "parents    V42-1" in show.output


@pytest.mark.parametrize(
    "args,said",
    [
        (("materials", "trace", "D-1"), "give --up (what LOT was made from) or --down"),
        (("materials", "trace", "NOPE", "--up"), "no material 'NOPE'"),
        (
            (
                "materials",
                "derive",
                "--in",
                "X:",
                "--out",
                "Y:1",
                "--kind",
                "filtrate",
                "--unit",
                "mL",
            ),
            "expected LOT or LOT:QUANTITY",
        ),
        (
            (
                "materials",
                "derive",
                "--in",
                "X:1",
                "--out",
                "Y",
                "--kind",
                "filtrate",
                "--unit",
                "mL",
            ),
            "expected NEW-LOT:QUANTITY",
        ),
        (("materials", "release", "NOPE"), "alice is technician; to release one must be: qa"),
        (("materials", "reject", "NOPE"), "Missing option '--reason'"),
        (("materials", "donor", "Jane", "--eligibility", "E1", "--consent", "C1"), "never a name"),
        (
            ("materials", "split", "NOPE", "--count", "0", "--each", "1"),
            "0 aliquots: expected 1-1000",
        ),
        (("materials", "recall", "NOPE"), "no material 'NOPE'"),
    ],
)
def test_each_command_line_error_is_said_plainly(cli, args, said):
    out = cli(*args)
    assert out.exit_code != 0 and said in out.output, out.output
    assert "Traceback" not in out.output


# --- property: random splits and pools ---------------------------------------------------------
class Lineage(RuleBasedStateMachine):
    """Random donors, releases, splits, pools and over-draws on a real store: the
    quantities always balance, the graph has no cycle, and the recursive walk from any
    lot finds exactly what the fold says descends from it."""

    @initialize()
    def open(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.store = SQLiteStore(Path(self.dir.name) / "p.db", create=True)
        self.n = 0

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def materials(self) -> dict[str, ln.Material]:
        return ln.fold_materials(self.store.events("@materials"))

    def write(self, event: NewEvent) -> None:
        events = self.store.events("@materials")
        with self.store.writing("@materials", len(events)) as unit:
            written = unit.append([event], f"2026-11-02T08:{min(self.n, 59):02d}:00Z")
            keep_materials(unit, KeptMaterials(self.store), written)

    def new_lot(self) -> str:
        self.n += 1
        return f"L{self.n}"

    @rule()
    def donor(self) -> None:
        self.n += 1
        self.write(NewEvent(ln.MATERIAL_REGISTERED, "alice",
                            {"lot": f"D-{self.n}", "kind": "donor", "material": "donor"}))  # fmt: skip

    @rule(qty=st.integers(1, 50))
    def reagent(self, qty: int) -> None:
        self.write(NewEvent(ln.LOT_REGISTERED, "alice",
                            {"lot": self.new_lot(), "material": "medium", "expiry": "2027-01-01",
                             "quantity": str(qty), "unit": "mL"}))  # fmt: skip

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        known = self.materials()
        waiting = sorted(k for k, m in known.items() if m.status == "quarantine")
        if not waiting:
            return
        lot = data.draw(st.sampled_from(waiting))
        if ln.release_problems(ln.Folded(known), lot):
            return
        self.write(
            NewEvent(ln.MATERIAL_STATUS_CHANGED, "quinn", {"lot": lot, "status": "released"})
        )

    def derive(self, draws: list[ln.Draw], outs: list[ln.Output]) -> None:
        known = self.materials()
        try:
            plan = ln.plan_derivation(
                ln.Folded(known), draws, outs, batch_id="B", step="s", pooling_allowed=True
            )
        except Refused:
            assert self.materials() == known
            return
        self.write(NewEvent(ln.MATERIAL_DERIVED, "alice", plan.payload))

    @rule(data=st.data(), parts=st.lists(st.integers(1, 20), min_size=1, max_size=4),
          extra=st.integers(-5, 5))  # fmt: skip
    def split(self, data: st.DataObject, parts: list[int], extra: int) -> None:
        known = self.materials()
        usable = sorted(k for k, m in known.items() if m.status == "released")
        if not usable:
            return
        lot = data.draw(st.sampled_from(usable))
        m = known[lot]
        drawn = None if m.remaining is None else Decimal(max(sum(parts) + extra, 1))
        outs = [ln.Output(self.new_lot(), ln.ALIQUOT, Decimal(p), m.unit or "mL") for p in parts]
        self.derive([ln.Draw(lot, drawn)], outs)

    @rule(data=st.data(), take=st.integers(1, 30))
    def pool(self, data: st.DataObject, take: int) -> None:
        known = self.materials()
        usable = sorted(k for k, m in known.items() if m.status == "released" and m.unit == "mL")
        if len(usable) < 2:
            return
        lots = data.draw(st.lists(st.sampled_from(usable), min_size=2, max_size=3, unique=True))
        draws = [ln.Draw(x, Decimal(take)) for x in lots]
        self.derive(draws, [ln.Output(self.new_lot(), ln.HARVEST, Decimal(take * len(lots)), "mL")])

    @invariant()
    def quantities_balance(self) -> None:
        if not hasattr(self, "store"):
            return
        known = self.materials()
        taken: dict[str, Decimal] = {}
        for e in self.store.events("@materials"):
            if e.type == ln.MATERIAL_DERIVED:
                drawn = sum(Decimal(d["quantity"]) for d in e.payload["inputs"] if d["quantity"])
                made = sum(Decimal(o["quantity"]) for o in e.payload["outputs"])
                assert made <= drawn or any(d["quantity"] is None for d in e.payload["inputs"])
                for d in e.payload["inputs"]:
                    if d["quantity"] is not None:
                        taken[d["lot"]] = taken.get(d["lot"], Decimal(0)) + Decimal(d["quantity"])
        for lot, m in known.items():
            if m.quantity is not None:
                assert m.remaining is not None and m.remaining >= 0
                assert m.quantity == m.remaining + taken.get(lot, Decimal(0))
                assert (m.remaining == 0) == (m.status == "consumed")

    @invariant()
    def no_cycles_and_the_walk_covers_every_descendant(self) -> None:
        if not hasattr(self, "store"):
            return
        known = ln.Folded(self.materials())
        for lot in known.found:
            below = ln.descendants(known, lot)
            assert lot not in below and lot not in ln.ancestors(known, lot)
            walked = {e["child"] for e in self.store.lineage_edges(lot, "down")}
            assert walked == set(below)
            up = {e["parent"] for e in self.store.lineage_edges(lot, "up")}
            assert up == set(ln.ancestors(known, lot))

    @invariant()
    def the_register_holds_each_material_as_the_fold_leaves_it(self) -> None:
        """What a write reads by key is what folding the whole stream gives, after any
        mix of registrations, releases, splits and pools (and each row reads back equal)."""
        if not hasattr(self, "store"):
            return
        folded = {lot: m.stored() for lot, m in self.materials().items()}
        kept = {row["lot"]: row for row in self.store.registered_rows("material")}
        assert kept == folded
        register = KeptMaterials(self.store)
        for lot, row in folded.items():
            assert register.named(lot.lower()) == ln.Material.from_stored(row)


Lineage.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
TestRandomSplitsAndPools = Lineage.TestCase


def test_each_lineage_event_has_its_words_for_the_trail(lab):
    lab.lineage.release("K1", "quinn")
    lab.lineage.split("K1", 2, 1, "alice")
    lab.lineage.print_labels("K1-01", 1, "alice", render=lambda sheet: b"")
    words = [ln.trail_words(e) for e in lab.store.events("@materials")]
    assert words[0] == ("donor registered: D-0001", "eligibility ELIG-1; consent ICF-1")
    assert ("transform at B1 concentrate: F1 490 mL", "K1 24.5 mL") in words
    assert ("split: K1 2 mL", "K1-01 1 mL, K1-02 1 mL") in words
    assert ("K1 released", "") in words and words[-1] == ("labels printed: K1-01", "1 copies")


# --- the edges table against the log -----------------------------------------------------------
def test_audit_verify_names_an_edge_changed_removed_or_invented_in_the_table(lab, db_path):
    """A recall walks the edges table: an edge edited there hides an aliquot from it while
    every hash holds. Verification rebuilds the edges from @materials and names each."""
    assert lab.audit.verify().problems == []
    seq = {e["child"]: e["seq"] for e in lab.store.lineage_edges("D-0001", "down")}
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE lineage_edges SET drawn = '5' WHERE parent = 'H1' AND child = 'F1'")
    conn.execute("DELETE FROM lineage_edges WHERE parent = 'F1' AND child = 'K1'")
    conn.execute("INSERT INTO lineage_edges VALUES ('V1-02', 'X9', 99, NULL, NULL)")
    conn.commit()
    conn.close()
    said = [f"{p.label} {p}" for p in lab.audit.verify().problems]
    assert said == [
        f"DIFFERS lineage_edges table, H1 -> F1 (@materials event {seq['F1']}): drawn is "
        "'5' in the table, '490' in the log",
        f"DIFFERS lineage_edges table, F1 -> K1 (@materials event {seq['K1']}): missing from "
        "the table; the log has it",
        "DIFFERS lineage_edges table, V1-02 -> X9 (@materials event 99): in the table, but "
        "not in the log",
    ]
    assert lab.audit.verify("B1").problems == []  # one batch's check reads no edges
    lab.audit.rebuild_projections()
    assert lab.audit.verify().problems == []
