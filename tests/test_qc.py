"""Secretome QC: reference flags, CSV import, Westgard deviations, trends and comparisons."""

from __future__ import annotations

import pytest
from conftest import PASSWORD, approve_file

from cmprep.errors import Refused

PROTOCOL = """
id: qc-mini
version: '1.0'
title: QC mini
summary: A two-step protocol to test QC.
trend_severity: major
sources:
  - {id: nasiri2026, citation: "Nasiri N, Hemmati P, Tabaie SM. Conditioned medium. Iran J Basic Med Sci 2026; 29:181-190"}
steps:
  - id: isolation
    title: Isolation
    instructions: Isolate.
    parameters:
      - {name: source_tissue, label: Source, type: choice, choices: [BM, AD, UC]}
  - id: hypoxia
    title: Hypoxia
    instructions: Hypoxia.
    optional: true
    parameters:
      - {name: o2_percent, label: O2, unit: "%", spec: {min: 1, max: 5}, source: nasiri2026}
  - id: qc
    title: QC
    instructions: Measure.
    parameters:
      - {name: vegf, label: VEGF, unit: pg/mL, method: ELISA, reference: vegf, trend: true,
         spec: {min: 20}, source: site choice}
      - {name: il6, label: IL-6, unit: pg/mL, method: ELISA, reference: il6, required: false}
      - {name: ev_yield, label: EV yield, unit: particles/10^6 cells, method: NTA, reference: ev_yield, required: false}
      - {name: sterility_passed, label: Sterility, type: yes/no, method: sterility, spec: {equals: true}, source: site choice}
"""


@pytest.fixture
def proto(svc, tmp_path):
    """The protocol imported and approved: ``ID@VERSION``, what a batch starts from."""
    path = tmp_path / "qc-mini.yaml"
    path.write_text(PROTOCOL)
    return approve_file(svc, path)


def _batch(svc, clock, proto, batch_id, vegf, *, source="UC", hypoxia=False, release=True):
    svc.batches.start(proto, "alice", batch_id)
    clock.advance(hours=1)
    svc.batches.record(batch_id, "isolation", {"source_tissue": source}, "alice")
    if hypoxia:
        svc.batches.record(batch_id, "hypoxia", {"o2_percent": "2"}, "alice")
    else:
        svc.batches.skip(batch_id, "hypoxia", "alice", "normoxic")
    out = svc.batches.record(
        batch_id, "qc", {"vegf": f"{vegf} pg/mL", "sterility_passed": "yes"}, "alice"
    )
    if release and not out.deviations:
        clock.advance(hours=1)
        svc.quality.sign_review(batch_id, "rita", PASSWORD, "reviewed")
        svc.quality.release(batch_id, "quinn", PASSWORD)
    return out


def test_a_value_outside_the_literature_range_is_flagged_with_its_citation_not_a_deviation(
    svc, clock, proto
):
    out = _batch(svc, clock, proto, "B1", 1200, release=False)
    assert out.deviations == []
    vegf = next(f for f in out.findings if f.parameter == "vegf")
    assert vegf.note == (
        "VEGF 1200 pg/mL is above the literature reference range 100-500 pg/mL (Nasiri et al. 2026); information only"
    )
    assert svc.batches.batch("B1").steps["qc"].values["vegf"].note == vegf.note


def test_the_release_spec_still_opens_a_deviation(svc, clock, proto):
    out = _batch(svc, clock, proto, "B1", 10, release=False)
    assert [d["parameter"] for d in out.deviations] == ["vegf"]


CSV_OK = """analyte,value,unit,method,replicate
VEGF,0.30,ng/mL,ELISA,1
vegf,320,pg/mL,ELISA,2
VEGF,310,pg/mL,elisa,3
IL-6,150,pg/mL,ELISA,1
ev_yield,2.5e8,particles/10^6 cells,NTA,1
"""


def _to_qc(svc, clock, proto, batch_id="B1"):
    svc.batches.start(proto, "alice", batch_id)
    svc.batches.record(batch_id, "isolation", {"source_tissue": "UC"}, "alice")
    svc.batches.skip(batch_id, "hypoxia", "alice", "normoxic")
    return svc.batches.batch(batch_id).protocol.step("qc")


def test_csv_import_averages_replicates_and_keeps_their_cv(svc, clock, proto):
    step = _to_qc(svc, clock, proto)
    entries, reps = svc.qc.parse_csv(step, CSV_OK, "elisa.csv")
    assert entries["vegf"] == "310 pg/mL"
    assert reps["vegf"]["n"] == 3 and reps["vegf"]["values"] == [300.0, 320.0, 310.0]
    assert reps["vegf"]["cv_percent"] == pytest.approx(3.2)
    assert reps["il6"]["cv_percent"] is None
    out = svc.batches.record(
        "B1", "qc", {**entries, "sterility_passed": "yes"}, "alice", replicates=reps
    )
    value = out.batch.steps["qc"].values["vegf"]
    assert value.display == "310 pg/mL" and value.replicates["n"] == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        ("analyte,value,unit\nVEGF,1,pg/mL\n", "missing column(s) method, replicate"),
        ("analyte,value,unit,method,replicate,extra\n", "unknown column(s) extra"),
        ("analyte,value,unit,method,replicate\n", "no results"),
        (
            "analyte,value,unit,method,replicate\nTNF,1,pg/mL,ELISA,1\n",
            "line 2: step qc has no analyte 'TNF'",
        ),
        (
            "analyte,value,unit,method,replicate\nVEGF,1,pg/mL,NTA,1\n",
            "line 2: VEGF is measured by ELISA, not 'NTA'",
        ),
        ("analyte,value,unit,method,replicate\nVEGF,1,pg/mL,ELISA,0\n", "line 2: replicate '0'"),
        (
            "analyte,value,unit,method,replicate\nVEGF,1,pg/mL,ELISA,1\nVEGF,2,pg/mL,ELISA,1\n",
            "line 3: VEGF replicate 1 appears twice",
        ),
        (
            'analyte,value,unit,method,replicate\nVEGF,"1,5",pg/mL,ELISA,1\n',
            "line 2: VEGF: '1,5 pg/mL' has a decimal comma",
        ),
        (
            "analyte,value,unit,method,replicate\nVEGF,1,pg,ELISA,1\n",
            "line 2: VEGF: unknown unit 'pg'",
        ),
        ("analyte,value,unit,method,replicate\nVEGF,1,pg/mL\n", "line 2: expected 5 fields"),
    ],
)
def test_a_malformed_csv_is_refused_whole_naming_the_line(svc, clock, proto, text, expected):
    step = _to_qc(svc, clock, proto)
    with pytest.raises(Refused) as err:
        svc.qc.parse_csv(step, text, "r.csv")
    assert expected in str(err.value)


def test_every_bad_line_is_named_at_once(svc, clock, proto):
    step = _to_qc(svc, clock, proto)
    text = "analyte,value,unit,method,replicate\nTNF,1,pg/mL,ELISA,1\nVEGF,1,pg/mL,ELISA,1\nVEGF,x,pg/mL,ELISA,2\n"
    with pytest.raises(Refused) as err:
        svc.qc.parse_csv(step, text, "r.csv")
    assert [p.split(":")[0] for p in err.value.problems] == ["line 2", "line 4"]


HISTORY = [300, 310, 290, 305, 295, 300, 315, 285]  # mean 300, SD ~10


def small_baseline(svc, n=5):
    """Rejection rules from N released batches (the site's setting; 20 unless set)."""
    svc.settings.change("westgard_baseline", str(n), "root", PASSWORD, "a test's short history")


def test_a_westgard_rejection_on_a_new_batch_opens_a_deviation_of_the_protocols_severity(
    svc, clock, proto
):
    small_baseline(svc)
    for i, v in enumerate(HISTORY):
        _batch(svc, clock, proto, f"H{i}", v)
    out = _batch(svc, clock, proto, "NEW", 345, release=False)  # > +3 SD: 1-3s
    [dev] = out.deviations
    assert dev["parameter"] == "vegf:westgard:1-3s" and dev["severity"] == "major"
    assert "Westgard 1-3s against 8 released batches" in dev["message"]
    assert "qc-mini, route none, UC" in dev["message"]  # the baseline's stratum
    # opened by the rule, not by alice who recorded the value
    assert svc.batches.batch("NEW").deviations[dev["deviation_id"]].opened_by == "Westgard 1-3s"
    assert svc.batches.batch("NEW").steps["qc"].values["vegf"].deviation_ids == [
        dev["deviation_id"]
    ]


def test_no_westgard_check_before_enough_released_history(svc, clock, proto):
    for i, v in enumerate(HISTORY[:1]):
        _batch(svc, clock, proto, f"H{i}", v)
    out = _batch(svc, clock, proto, "NEW", 345, release=False)
    assert out.deviations == [] and not [f for f in out.findings if "westgard" in f.parameter]


def test_before_the_sites_minimum_a_rule_only_warns_and_opens_nothing(svc, clock, proto):
    for i, v in enumerate(HISTORY):  # 8 released batches: under the default 20
        _batch(svc, clock, proto, f"H{i}", v)
    out = _batch(svc, clock, proto, "NEW", 345, release=False)
    assert out.deviations == []
    [warning] = [f for f in out.findings if "westgard" in f.parameter]
    assert warning.verdict.value == "alert" and warning.parameter == "vegf:westgard:1-2s"
    assert "rejection rules apply from 20 released batches" in warning.message
    view = svc.qc.trend("vegf")
    assert [v.rule for v in view.violations] == ["1-2s"] and view.rules_from == 20


def test_trend_gives_baseline_from_released_batches_and_lists_violations(svc, clock, proto):
    small_baseline(svc)
    for i, v in enumerate(HISTORY):
        _batch(svc, clock, proto, f"H{i}", v)
    _batch(svc, clock, proto, "NEW", 345, release=False)
    data = svc.qc.trend("vegf")
    assert data["baseline_count"] == 8 and data["mean"] == pytest.approx(300)
    assert [p[0] for p in data["points"]][-1] == "NEW"
    assert any(v.rule == "1-3s" and v.rejection for v in data["violations"])
    assert data.stratum == "qc-mini, route none, cell source UC"
    with pytest.raises(Refused, match=r"unknown analyte 'tnf'; known analytes: .*il6.*vegf"):
        svc.qc.trend("tnf")


def test_compare_groups_by_preconditioning_and_source(svc, clock, proto):
    _batch(svc, clock, proto, "N1", 250)
    _batch(svc, clock, proto, "N2", 270)
    _batch(svc, clock, proto, "X1", 450, hypoxia=True, source="BM")
    data = svc.qc.compare("preconditioning", ["vegf"])
    assert data["table"]["vegf"] == {"none": [250.0, 270.0], "hypoxia": [450.0]}
    assert set(svc.qc.compare("source")["table"]["vegf"]) == {"UC", "BM"}
    assert set(svc.qc.compare("route")["table"]["vegf"]) == {"none"}  # qc-mini has no route
    with pytest.raises(Refused, match="expected protocol, source, preconditioning or route"):
        svc.qc.compare("donor")


# --- the QC history is a projection: kept by the write path, rebuilt, verified ------------
def _points(svc, **where):
    from cmprep.store.query import QCPointFilter

    return svc.store.qc_points(QCPointFilter(**where))


def test_the_write_path_keeps_each_batchs_qc_points_with_its_state(svc, clock, proto):
    _batch(svc, clock, proto, "B1", 250, release=False)
    [point] = _points(svc, name="vegf")
    assert (point["batch_id"], point["value"], point["unit"], point["state"]) == (
        "B1",
        250.0,
        "pg/mL",
        "awaiting_review",
    )
    assert (point["source"], point["preconditioning"], point["method"]) == ("UC", "none", "ELISA")
    clock.advance(hours=1)
    svc.batches.correct("B1", "qc", {"vegf": "260 pg/mL"}, "alice", "transcription error")
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed")
    svc.quality.release("B1", "quinn", PASSWORD)
    [point] = _points(svc, name="vegf")
    assert (point["value"], point["state"]) == (260.0, "released")
    [correction] = svc.batches.batch("B1").steps["qc"].values["vegf"].corrections
    assert point["recorded_at"] == correction.recorded_at > point["started_at"]


def test_westgard_and_the_sparkline_use_only_the_newest_released_batches(
    svc, clock, proto, monkeypatch
):
    from cmprep.service import consistency

    monkeypatch.setattr(consistency, "HISTORY_POINTS", 5)
    small_baseline(svc)
    for i, v in enumerate([900, 900, 900, *HISTORY]):  # three old outliers, then steady
        _batch(svc, clock, proto, f"H{i}", v)
    out = _batch(svc, clock, proto, "NEW", 345, release=False)
    [dev] = out.deviations  # against the newest five only
    assert "Westgard 1-3s against 5 released batches (mean 300, SD 11.2 pg/mL)" in dev["message"]
    vegf = next(r for r in svc.qc.summary(svc.batches.batch("NEW")) if r.name == "vegf")
    assert vegf.history == [305.0, 295.0, 300.0, 315.0, 285.0]


def test_a_trend_shows_the_newest_points_and_finds_an_analyte_by_its_label(
    svc, clock, proto, monkeypatch
):
    from cmprep.service import qc

    for i, v in enumerate(HISTORY):
        _batch(svc, clock, proto, f"H{i}", v)
    monkeypatch.setattr(qc, "TREND_POINTS", 4)
    data = svc.qc.trend("VEGF (ELISA)")
    assert [p[0] for p in data.points] == ["H4", "H5", "H6", "H7"]
    assert data.baseline_count == 4 and data.label == "VEGF" and data.unit == "pg/mL"
    with pytest.raises(Refused, match="unknown analyte 'sterility'"):
        svc.qc.trend("sterility")  # a yes/no is not a point
    with pytest.raises(Refused, match="unknown analyte '---'"):
        svc.qc.trend("---", "qc-mini")
    with pytest.raises(Refused, match="no batch has a value for 'il6' in protocol qc-mini"):
        svc.qc.trend("il6", "qc-mini")  # known, never measured


def test_an_edited_qc_point_is_named_by_verify_and_put_right_by_rebuild(svc, clock, proto, db_path):
    import sqlite3

    for i, v in enumerate(HISTORY[:3]):
        _batch(svc, clock, proto, f"H{i}", v)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE qc_points SET value = 999 WHERE batch_id = 'H1'")
        conn.execute("DELETE FROM qc_points WHERE batch_id = 'H2'")
    conn.close()
    problems = [str(p) for p in svc.audit.verify()[1]]
    assert problems == [
        "qc_points table, H1/qc/vegf: value is 999.0 in the table, 310.0 in the log",
        "qc_points table, H2/qc/vegf: missing from the table; the log has it",
    ]
    assert [str(p) for p in svc.audit.verify("H1")[1]] == problems[:1]
    assert svc.qc.trend("vegf").points[1] == ("H1", 999.0, "released")  # what people would see
    svc.audit.rebuild_projections()
    assert svc.audit.verify()[1] == []
    assert [p[1] for p in svc.qc.trend("vegf").points] == [300.0, 310.0, 290.0]


def test_a_database_from_before_the_qc_points_gets_them_by_a_rebuild(svc, clock, proto, db_path):
    """An older database has no QC points table: opening it adds the table, verification
    names every point the log has and the table lacks, and a rebuild fills it."""
    import sqlite3

    from cmprep.service import Services
    from cmprep.store.sqlite import SQLiteStore

    for i, v in enumerate(HISTORY[:2]):
        _batch(svc, clock, proto, f"H{i}", v)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DROP TABLE qc_points")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    svc.close()
    again = Services(SQLiteStore(db_path), clock=clock)  # as the next command opens it
    try:
        assert again.store.conn.execute("PRAGMA user_version").fetchone()[0] > 2
        assert [p.problem for p in again.audit.verify()[1]] == [
            "missing from the table; the log has it"
        ] * 2
        assert again.audit.rebuild_projections() == 2
        assert [p["batch_id"] for p in _points(again)] == ["H0", "H1"]
        assert again.audit.verify()[1] == []
    finally:
        again.close()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_CELLS = st.sampled_from(
    [
        "VEGF",
        "il6",
        "TNF",
        "300",
        "0.3",
        "ng/mL",
        "pg/mL",
        "ELISA",
        "NTA",
        "1",
        "2",
        "",
        "x",
        "1,5",
        "nan",
    ]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_CELLS | st.text(max_size=8), min_size=0, max_size=6), max_size=6),
    header=st.booleans(),
)
def test_any_csv_is_imported_or_refused_never_crashes(svc, clock, proto, rows, header):
    step = svc.protocols.get(proto).step("qc")
    lines = (["analyte,value,unit,method,replicate"] if header else []) + [
        ",".join(c.replace("\n", " ").replace("\r", " ") for c in r) for r in rows
    ]
    try:
        entries, reps = svc.qc.parse_csv(step, "\n".join(lines), "fuzz.csv")
    except Refused as err:
        assert "fuzz.csv" in str(err) or "line" in str(err)
    else:
        assert set(entries) == set(reps) and all(r["n"] >= 1 for r in reps.values())
