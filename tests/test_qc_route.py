"""QC by downstream route: route specs, reference comparison per unconcentrated CM, Westgard
baselines per protocol x route x cell source, the baseline minimum, and the trend view."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import PASSWORD, approve_file, cli_lab, cli_run

from cmprep.cli import Shell
from cmprep.errors import Refused
from cmprep.protocol.loader import ProtocolError
from cmprep.service import Services
from cmprep.store import open_store
from cmprep.store.query import QCPointFilter

SOURCES = """sources:
  - {id: nasiri2026, citation: "Nasiri N, Hemmati P, Tabaie SM. Conditioned medium. Iran J Basic Med Sci 2026; 29:181-190"}
"""

PROTOCOL = (
    """
id: route-mini
version: '1.0'
title: Route mini
summary: QC by downstream route.
trend_severity: major
"""
    + SOURCES
    + """steps:
  - id: isolation
    title: Isolation
    instructions: Isolate.
    parameters:
      - {name: source_tissue, label: Source, type: choice, choices: [BM, AD, UC]}
  - id: use_fresh
    branch: downstream
    title: Use fresh
    instructions: Hand over.
    parameters:
      - {name: recipient, label: Recipient, type: text, required: false}
  - id: concentrate
    branch: downstream
    title: Concentrate
    instructions: Ultrafilter.
    parameters:
      - {name: concentration_factor, label: Concentration factor, spec: {min: 2, max: 20},
         source: site choice, limits: {min: 1, max: 1000}, required: false}
  - id: lyophilise
    branch: downstream
    title: Lyophilise
    instructions: Freeze-dry.
    parameters:
      - {name: cycle_id, label: Cycle, type: text, required: false}
  - id: qc
    title: QC
    instructions: Measure.
    parameters:
      - {name: vegf, label: VEGF, unit: pg/mL, method: ELISA, reference: vegf, trend: true,
         spec: {min: 50}, source: site choice,
         route_specs: {concentrate: {min: 500}}}
      - {name: ev_yield, label: EV yield, unit: particles/10^6 cells, method: NTA,
         reference: ev_yield, required: false}
      - {name: sterility_passed, label: Sterility, type: yes/no, method: sterility,
         spec: {equals: true}, source: site choice}
"""
)
OTHER = PROTOCOL.replace("id: route-mini", "id: route-other")

HISTORY = [300, 310, 290, 305, 295, 300, 315, 285]  # mean 300, SD ~10


@pytest.fixture
def proto(svc, tmp_path):
    path = tmp_path / "route-mini.yaml"
    path.write_text(PROTOCOL)
    return approve_file(svc, path)


def small_baseline(svc, n=5):
    svc.settings.change("westgard_baseline", str(n), "root", PASSWORD, "a test's short history")


def batch(svc, clock, proto, batch_id, vegf, *, route="use_fresh", factor="15", source="UC",
          release=True, extra=None):  # fmt: skip
    svc.batches.start(proto, "alice", batch_id)
    clock.advance(hours=1)
    svc.batches.record(batch_id, "isolation", {"source_tissue": source}, "alice")
    arm = {"concentrate": {"concentration_factor": factor} if factor else {}}.get(route, {})
    svc.batches.record(batch_id, route, arm, "alice")
    values = {"vegf": f"{vegf} pg/mL", "sterility_passed": "yes", **(extra or {})}
    out = svc.batches.record(batch_id, "qc", values, "alice")
    if release and not out.deviations:
        clock.advance(hours=1)
        svc.quality.sign_review(batch_id, "rita", PASSWORD, "reviewed")
        svc.quality.release(batch_id, "quinn", PASSWORD)
    return out


def vegf_row(svc, batch_id):
    return next(r for r in svc.qc.summary(svc.batches.batch(batch_id)) if r.name == "vegf")


# --- the reference comparison, per unconcentrated CM ----------------------------------------
def test_a_concentrate_is_compared_with_the_literature_after_dividing_by_its_factor(
    svc, clock, proto
):
    """The README's example: 4500 pg/mL at factor 15 is 300 pg/mL of CM, within the
    review's 100-500 pg/mL; nothing flagged, both numbers shown."""
    out = batch(svc, clock, proto, "C1", 4500, route="concentrate", factor="15", release=False)
    assert out.deviations == []
    vegf = next(f for f in out.findings if f.parameter == "vegf")
    assert vegf.note == ""  # 300 pg/mL is inside the range: no flag
    row = vegf_row(svc, "C1")
    assert row.value == "4500 pg/mL" and row.route == "concentrate"
    assert row.equivalent == (
        "300 pg/mL per unconcentrated CM (4500 pg/mL ÷ concentration factor 15)"
    )
    assert row.spec == ">= 500 pg/mL"  # the concentrate's own release spec
    html = svc.documents.record("C1")
    assert "= 300 pg/mL per unconcentrated CM (4500 pg/mL ÷ concentration factor 15)" in html
    assert "= 300 pg/mL per unconcentrated CM" in svc.documents.record("C1", "md")


def test_a_concentrate_above_the_range_per_cm_is_flagged_with_both_numbers(svc, clock, proto):
    out = batch(svc, clock, proto, "C1", 4500, route="concentrate", factor="5", release=False)
    vegf = next(f for f in out.findings if f.parameter == "vegf")
    assert vegf.note == (
        "per unconcentrated CM: VEGF 900 pg/mL is above the literature reference range "
        "100-500 pg/mL (Nasiri et al. 2026); information only"
    )
    assert out.deviations == []  # information, never a deviation
    assert svc.batches.batch("C1").steps["qc"].values["vegf"].note == vegf.note


def test_fresh_cm_is_compared_as_measured(svc, clock, proto):
    out = batch(svc, clock, proto, "F1", 4500, release=False)
    vegf = next(f for f in out.findings if f.parameter == "vegf")
    assert vegf.note.startswith("VEGF 4500 pg/mL is above the literature reference range")
    assert vegf_row(svc, "F1").equivalent == ""


def test_an_amount_per_cells_is_not_divided_by_the_factor(svc, clock, proto):
    batch(svc, clock, proto, "C1", 4500, route="concentrate", extra={"ev_yield": "2e8"},
          release=False)  # fmt: skip
    row = next(r for r in svc.qc.summary(svc.batches.batch("C1")) if r.name == "ev_yield")
    assert row.equivalent == ""


def test_a_concentrate_without_a_factor_cannot_be_compared_and_says_so(svc, clock, proto):
    out = batch(svc, clock, proto, "C1", 4500, route="concentrate", factor="", release=False)
    vegf = next(f for f in out.findings if f.parameter == "vegf")
    assert vegf.note == (
        "VEGF 4500 pg/mL is measured on the concentrate product; no concentration factor is "
        "recorded at concentrate (Concentrate), so it cannot be compared with the literature "
        "reference range 100-500 pg/mL (information only)"
    )
    row = vegf_row(svc, "C1")
    assert row.equivalent == "" and row.note == vegf.note


def test_a_corrected_factor_changes_the_comparison_the_record_shows(svc, clock, proto):
    batch(svc, clock, proto, "C1", 4500, route="concentrate", factor="15", release=False)
    svc.batches.correct("C1", "concentrate", {"concentration_factor": "5"}, "alice", "typo")
    row = vegf_row(svc, "C1")
    assert row.equivalent.startswith("900 pg/mL per unconcentrated CM")
    assert "is above the literature reference range" in row.note


# --- release specs by route -----------------------------------------------------------------
def test_a_route_spec_replaces_the_general_spec_on_its_route_only(svc, clock, proto):
    out = batch(svc, clock, proto, "C1", 400, route="concentrate", release=False)
    [dev] = out.deviations
    assert (dev["parameter"], dev["spec"]) == ("vegf", ">= 500 pg/mL")
    assert batch(svc, clock, proto, "F1", 400, release=False).deviations == []
    assert batch(svc, clock, proto, "L1", 400, route="lyophilise", release=False).deviations == []


def test_a_correction_is_judged_against_the_routes_spec(svc, clock, proto):
    batch(svc, clock, proto, "C1", 600, route="concentrate", release=False)
    out = svc.batches.correct("C1", "qc", {"vegf": "450 pg/mL"}, "alice", "re-read plate")
    assert [d["spec"] for d in out.deviations] == [">= 500 pg/mL"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("route_specs: {concentrate: {min: 500}}", "route_specs: {freeze: {min: 500}}"),
            "route 'freeze' is not an arm of the 'downstream' branch (use_fresh, concentrate, "
            "lyophilise)",
        ),
        (
            ("route_specs: {concentrate: {min: 500}}", "route_specs: {concentrate: {max: 1, min: 5}}"),
            "min (5) is above max (1)",
        ),
        (
            ("route_specs: {concentrate: {min: 500}}", "route_specs: {concentrate: {min: 1, source: bogus}}"),
            "route spec source 'bogus' is unknown",
        ),
        (
            ("{name: cycle_id, label: Cycle, type: text, required: false}",
             "{name: cycle_id, label: Cycle, type: text, required: false, route_specs: {lyophilise: {min: 1}}}"),
            "route_specs are only for numbers",
        ),
        (
            ("         spec: {min: 50}, source: site choice,", "         spec: {min: 50},"),
            "a spec needs a source",
        ),
    ],
)  # fmt: skip
def test_protocol_check_refuses_a_wrong_route_spec(tmp_path, change, problem):
    from cmprep.protocol.loader import load_file

    path = tmp_path / "p.yaml"
    text = PROTOCOL.replace(*change)
    assert text != PROTOCOL
    path.write_text(text)
    with pytest.raises(ProtocolError) as err:
        load_file(path)
    assert problem in str(err.value) + " ".join(str(p) for p in err.value.problems)


def test_a_protocol_without_a_downstream_branch_cannot_give_route_specs(tmp_path):
    from cmprep.protocol.loader import load_file

    text = PROTOCOL.replace("branch: downstream", "branch: finish")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProtocolError) as err:
        load_file(path)
    said = str(err.value) + " ".join(str(p) for p in err.value.problems)
    assert "route 'concentrate' is not an arm of the 'downstream' branch (none" in said


# --- Westgard baselines per protocol x route x cell source ---------------------------------
def test_qc_points_carry_the_route_and_the_cell_source(svc, clock, proto):
    batch(svc, clock, proto, "C1", 4500, route="concentrate", source="BM", release=False)
    [point] = svc.store.qc_points(QCPointFilter(name="vegf"))
    assert (point["route"], point["source"]) == ("concentrate", "BM")


def test_a_concentrate_is_judged_against_concentrates_only(svc, clock, proto):
    small_baseline(svc)
    for i, v in enumerate(HISTORY):
        batch(svc, clock, proto, f"F{i}", v)  # fresh CM around 300 pg/mL
    out = batch(svc, clock, proto, "C1", 4500, route="concentrate", release=False)
    assert out.deviations == []  # no concentrate baseline yet: nothing to break
    assert not [f for f in out.findings if "westgard" in f.parameter]
    fresh = batch(svc, clock, proto, "F9", 345, release=False)  # > +3 SD of the fresh ones
    [dev] = fresh.deviations
    assert dev["parameter"] == "vegf:westgard:1-3s"
    assert "route-mini, route use_fresh, UC" in dev["message"]


def test_each_cell_source_has_its_own_baseline(svc, clock, proto):
    small_baseline(svc)
    for i, v in enumerate(HISTORY):
        batch(svc, clock, proto, f"U{i}", v, source="UC")
    bm = batch(svc, clock, proto, "B1", 345, source="BM", release=False)
    assert bm.deviations == []  # BM has no baseline: the UC batches do not judge it
    assert svc.consistency.baseline_history(svc.batches.batch("B1"), "vegf") == []
    assert len(svc.consistency.baseline_history(svc.batches.batch("U0"), "vegf")) == 7


def test_a_westgard_deviation_is_opened_by_the_rule_and_shown_apart_in_the_pareto(
    svc, clock, proto
):
    small_baseline(svc)
    for i, v in enumerate(HISTORY):
        batch(svc, clock, proto, f"F{i}", v)
    [dev] = batch(svc, clock, proto, "NEW", 345, release=False).deviations
    opened = svc.quality.deviation(dev["deviation_id"])[1]
    assert opened.opened_by == "Westgard 1-3s"  # not alice, who recorded the value
    svc.quality.open_deviation("NEW", "qc", "minor", "alice", "plate reader alarm")
    people = {r["name"]: r["count"] for r in svc.audit.report()["by_person"]}
    assert people == {"(system: Westgard 1-3s)": 1, "alice": 1}
    trail = [r for r in svc.quality.deviation_view(dev["deviation_id"]).history]
    assert trail[0]["who"] == "Westgard 1-3s"


def test_the_baseline_minimum_is_a_site_setting_within_limits(svc):
    assert svc.settings.show().westgard_baseline == 20
    for bad in ("1", "31", "twenty"):
        with pytest.raises(Refused, match="westgard_baseline must be a whole number from 2 to 30"):
            svc.settings.change("westgard_baseline", bad, "root", PASSWORD, "try")
    assert (
        svc.settings.change("westgard_baseline", "10", "root", PASSWORD, "x").westgard_baseline
        == 10
    )


def test_rejection_rules_apply_once_the_baseline_holds_the_sites_minimum(svc, clock, proto):
    small_baseline(svc, 9)
    for i, v in enumerate(HISTORY):
        batch(svc, clock, proto, f"F{i}", v)
    early = batch(svc, clock, proto, "E1", 345, release=False)  # 8 released: warnings only
    assert early.deviations == []
    [warning] = [f for f in early.findings if "westgard" in f.parameter]
    assert "rejection rules apply from 9 released batches" in warning.message
    batch(svc, clock, proto, "F8", 300)  # the ninth
    assert [
        d["parameter"] for d in batch(svc, clock, proto, "E2", 345, release=False).deviations
    ] == ["vegf:westgard:1-3s"]


def test_the_query_of_a_baseline_is_one_indexed_query(svc, clock, proto):
    """The baseline reads one stratum through the index that starts with its columns (on
    PostgreSQL, whose planner may scan a tiny table whole, the index itself is checked)."""
    if svc.store.__class__.__name__ != "SQLiteStore":
        [(definition,)] = svc.store._all(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'qc_points_baseline'"
        )
        columns = definition.split("(", 1)[1]
        assert columns.startswith("protocol_id, name, route, source, state")
        return
    sql, args = QCPointFilter(
        protocol_id="route-mini", name="vegf", route="concentrate", source="UC",
        state="released", exclude_batch="X", last=30,
    ).query("?")  # fmt: skip
    plan = " ".join(r[-1] for r in svc.store.conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    assert "qc_points_baseline" in plan and "TEMP B-TREE" not in plan


def test_a_rebuild_fills_the_route_of_points_recorded_before_it_was_kept(
    svc, clock, proto, db_path
):
    batch(svc, clock, proto, "C1", 4500, route="concentrate", release=False)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE qc_points SET route = ''")
    conn.close()
    assert [str(p) for p in svc.audit.verify()[1]] == [
        "qc_points table, C1/qc/vegf: route is '' in the table, 'concentrate' in the log"
    ]
    svc.audit.rebuild_projections()
    assert svc.audit.verify()[1] == []


def test_a_database_from_before_the_route_gets_the_column_on_opening(svc, clock, proto, db_path):
    batch(svc, clock, proto, "C1", 4500, route="concentrate", release=False)
    svc.close()
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DROP INDEX qc_points_baseline")
        conn.execute("ALTER TABLE qc_points DROP COLUMN route")
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    again = Services(open_store(str(db_path)), clock=clock)
    try:
        columns = [r[1] for r in again.store.conn.execute("PRAGMA table_info(qc_points)")]
        assert "route" in columns
        again.audit.rebuild_projections()
        [point] = again.store.qc_points(QCPointFilter(name="vegf"))
        assert point["route"] == "concentrate"
    finally:
        again.close()


# --- the control chart: one stratum, named ---------------------------------------------------
def test_a_trend_of_an_unknown_analyte_lists_the_known_ones(svc, proto):
    with pytest.raises(Refused) as err:
        svc.qc.trend("vegff")
    assert str(err.value).startswith("unknown analyte 'vegff'; known analytes: ")
    assert "vegf" in str(err.value) and "ev_yield" in str(err.value)


def test_a_trend_over_several_baselines_is_refused_naming_each(svc, clock, proto, tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(OTHER)
    other = approve_file(svc, path)
    for i, v in enumerate(HISTORY[:3]):
        batch(svc, clock, proto, f"F{i}", v)
        batch(svc, clock, proto, f"C{i}", v * 15, route="concentrate")
        batch(svc, clock, other, f"O{i}", v)
    with pytest.raises(Refused) as err:
        svc.qc.trend("vegf")
    assert err.value.problems == [
        "route-mini, route concentrate, cell source UC: 3 batch(es)",
        "route-mini, route use_fresh, cell source UC: 3 batch(es)",
        "route-other, route use_fresh, cell source UC: 3 batch(es)",
    ]
    with pytest.raises(Refused, match="2 baselines"):
        svc.qc.trend("vegf", "route-mini")
    view = svc.qc.trend("vegf", "route-mini", route="concentrate")
    assert view.stratum == "route-mini, route concentrate, cell source UC"
    assert view.baseline_count == 3 and view.mean == pytest.approx(4500)
    assert svc.qc.trend("vegf", "route-other").stratum.startswith("route-other, route use_fresh")
    with pytest.raises(
        Refused, match="no batch has a value for 'vegf' in protocol route-mini on route lyophilise"
    ):
        svc.qc.trend("vegf", "route-mini", route="lyophilise")


# --- the command line ------------------------------------------------------------------------
SHELL: list[Shell] = [Shell()]


@pytest.fixture
def cli_svc(db_path, monkeypatch, clock, tmp_path):
    path = tmp_path / "route-mini.yaml"
    path.write_text(PROTOCOL)
    svc, proto, SHELL[0] = cli_lab(db_path, monkeypatch, clock, path)
    return svc, proto


def run(*args: str, given: str | None = None):
    return cli_run(SHELL[0], *args, given=given)


def test_the_command_line_shows_both_numbers_and_the_stratum(cli_svc, clock):
    svc, proto = cli_svc
    batch(svc, clock, proto, "C1", 4500, route="concentrate")
    batch(svc, clock, proto, "C2", 4800, route="concentrate")
    status = run("batch", "status", "C1")
    assert "QC by route:" in status.output
    assert "route concentrate: concentration factor 15" in status.output
    assert (
        "vegf = 4500 pg/mL = 300 pg/mL per unconcentrated CM (4500 pg/mL ÷ concentration "
        "factor 15)" in status.output
    )
    trend = run("qc", "trend", "vegf")
    assert trend.exit_code == 0, trend.output
    assert (
        "VEGF (pg/mL) in route-mini, route concentrate, cell source UC: 2 batch(es)" in trend.output
    )
    assert "rejection rules apply from 20 released batches" in trend.output


def test_the_command_line_names_an_unknown_analyte_and_an_ambiguous_trend(cli_svc, clock):
    svc, proto = cli_svc
    batch(svc, clock, proto, "F1", 300)
    batch(svc, clock, proto, "C1", 4500, route="concentrate")
    unknown = run("qc", "trend", "vegff")
    assert unknown.exit_code == 1
    assert "unknown analyte 'vegff'; known analytes: ev_yield, vegf" in unknown.output
    mixed = run("qc", "trend", "vegf")
    assert mixed.exit_code == 1
    assert "vegf is measured in 2 baselines" in mixed.output
    assert "route-mini, route use_fresh, cell source UC: 1 batch(es)" in mixed.output
    few = run("qc", "trend", "vegf", "--route", "use_fresh")
    assert few.exit_code == 1 and "a control chart needs at least 2" in few.output
    assert run("site", "set", "westgard_baseline", "1", "--reason", "x", "--as", "root",
               "--password-stdin", given=PASSWORD + "\n").exit_code == 1  # fmt: skip


def test_compare_groups_by_route_as_measured(svc, clock, proto):
    batch(svc, clock, proto, "F1", 300)
    batch(svc, clock, proto, "C1", 4500, route="concentrate")
    table = svc.qc.compare("route", ["vegf"])["table"]["vegf"]
    assert table == {"use_fresh": [300.0], "concentrate": [4500.0]}
