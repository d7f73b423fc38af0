"""Material lots and instruments: expiry, calibration, rpm via the rotor radius, recalls."""

from __future__ import annotations

import pytest
from conftest import GOOD, STANDARD, edit_tables, run_to, whole_reads

from cmprep.errors import NotFound, Refused


@pytest.fixture
def stocked(svc):
    svc.materials.register_lot("FBS-1", "FBS", "2026-12-31", "alice", supplier="Acme")
    svc.materials.register_lot("FBS-OLD", "FBS", "2026-10-31", "alice")
    svc.materials.register_equipment(
        "CF-02", "centrifuge", "2027-01-15", "alice", rotor_radius_cm=16.5
    )
    svc.materials.register_equipment(
        "CF-OLD", "centrifuge", "2026-10-01", "alice", rotor_radius_cm=10
    )
    svc.materials.register_equipment("INC-1", "incubator", "2027-06-30", "alice")
    return svc


def test_a_lot_in_date_and_a_calibrated_instrument_open_nothing(stocked, clock):
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="expansion")
    out = stocked.batches.record(
        "B1", "expansion", GOOD["expansion"], "alice", lots=["FBS-1"], equipment=["INC-1"]
    )
    assert out.deviations == []
    entry = out.batch.steps["expansion"]
    assert entry.lots == [{"lot": "FBS-1", "material": "FBS", "expiry": "2026-12-31"}]
    assert entry.equipment[0]["id"] == "INC-1"


def test_an_expired_lot_opens_a_deviation_of_the_protocols_severity(stocked, clock):
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="expansion")
    out = stocked.batches.record("B1", "expansion", GOOD["expansion"], "alice", lots=["FBS-OLD"])
    [dev] = out.deviations
    assert dev["message"] == "Lot FBS-OLD (FBS) expired on 2026-10-31 and was used on 2026-11-02"
    assert dev["severity"] == out.batch.protocol.traceability_severity.value


def test_an_instrument_past_calibration_opens_a_deviation(stocked, clock):
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="spin")
    out = stocked.batches.record("B1", "spin", GOOD["spin"], "alice", equipment=["CF-OLD"])
    [dev] = out.deviations
    assert "CF-OLD was due for calibration on 2026-10-01" in dev["message"]


def test_a_calibration_moves_the_due_date(stocked, clock):
    inst = stocked.materials.record_calibration(
        "CF-OLD", "2027-04-01", "alice", certificate="CAL-1"
    )
    assert inst.calibration_due == "2027-04-01"
    [done] = stocked.materials.instruments()["CF-OLD"].calibrations  # the history, from the log
    assert (done["certificate"], done["due"]) == ("CAL-1", "2027-04-01")
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="spin")
    assert (
        stocked.batches.record("B1", "spin", GOOD["spin"], "alice", equipment=["CF-OLD"]).deviations
        == []
    )


def test_unknown_lots_and_instruments_are_refused_and_nothing_written(stocked, clock):
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="expansion")
    with pytest.raises(Refused) as err:
        stocked.batches.record(
            "B1", "expansion", GOOD["expansion"], "alice", lots=["NOPE"], equipment=["X-9"]
        )
    assert "no lot 'NOPE'" in str(err.value) and "no equipment 'X-9'" in str(err.value)
    assert stocked.batches.batch("B1").steps["expansion"].status == "due"


def test_rpm_converts_to_x_g_with_the_named_centrifuges_rotor_radius(stocked, clock):
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="spin")
    # RCF = 1.118e-5 x 16.5 cm x 1500^2 = 415.06 x g: in spec
    out = stocked.batches.record(
        "B1", "spin", {**GOOD["spin"], "rcf": "1500 rpm"}, "alice", equipment=["CF-02"]
    )
    assert out.deviations == []
    assert out.batch.steps["spin"].values["rcf"].value == pytest.approx(415.0575)


def test_rpm_without_a_rotor_radius_is_refused_with_the_reason(stocked, clock):
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="spin")
    with pytest.raises(Refused, match="needs the rotor radius"):
        stocked.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "1500 rpm"}, "alice")
    with pytest.raises(Refused, match="needs the rotor radius"):
        stocked.batches.record(
            "B1", "spin", {**GOOD["spin"], "rcf": "1500 rpm"}, "alice", equipment=["INC-1"]
        )


def test_where_used_lists_every_batch_that_used_a_lot(stocked, clock):
    for b in ("B1", "B2"):
        stocked.batches.start(STANDARD, "alice", b)
        run_to(stocked, clock, b, stop_before="expansion")
        stocked.batches.record(b, "expansion", GOOD["expansion"], "alice", lots=["FBS-1"])
    asked = whole_reads(stocked)
    rows = stocked.materials.where_used("fbs-1")  # any case, read by the lot
    assert [(r["batch_id"], r["step"]) for r in rows] == [("B1", "expansion"), ("B2", "expansion")]
    assert rows[0]["lot"] == "FBS-1" and rows[0]["by"] == "alice" and rows[0]["material"] == "FBS"
    assert stocked.materials.where_used("FBS-OLD") == []
    assert asked == []  # no batch's log read: a recall costs the same in year five


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda s: s.materials.register_lot("FBS-1", "FBS", "2027-01-01", "alice"),
            "already registered",
        ),
        (lambda s: s.materials.register_lot("L2", "FBS", "31/12/2026", "alice"), "not a date"),
        (lambda s: s.materials.register_lot("L 2", "FBS", "2027-01-01", "alice"), "not usable"),
        (lambda s: s.materials.register_lot("L2", " ", "2027-01-01", "alice"), "give the material"),
        (
            lambda s: s.materials.register_equipment("CF-02", "centrifuge", "2027-01-01", "alice"),
            "already registered",
        ),
        (
            lambda s: s.materials.register_equipment(
                "CF-9", "centrifuge", "2027-01-01", "alice", rotor_radius_cm=-3
            ),
            "impossible",
        ),
        (
            lambda s: s.materials.register_equipment("CF-9", "centrifuge", "soon", "alice"),
            "not a date",
        ),
        (lambda s: s.materials.register_lot("L3", "FBS", "2027-01-01", "root"), "admin"),
    ],
)
def test_bad_registrations_are_refused(stocked, call, expected):
    with pytest.raises(Refused, match=expected):
        call(stocked)


def test_calibrating_an_unknown_instrument_says_so(stocked):
    with pytest.raises(NotFound, match="no equipment"):
        stocked.materials.record_calibration("NOPE", "2027-01-01", "alice")


def test_registrations_are_chained_and_verified(stocked):
    assert stocked.audit.verify()[1] == []
    trail = stocked.audit.trail("@materials")
    assert [r["who"] for r in trail] == ["alice", "alice"]


# --- a step naming a lot reads the lot's row, not the whole @materials stream -----------------
def test_a_step_naming_a_lot_reads_that_lot_by_key_in_any_case(stocked, clock):
    for n in range(30):  # more lots: the step reads none of them
        stocked.materials.register_lot(f"PBS-{n:03d}", "PBS", "2027-12-31", "alice")
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="expansion")
    asked = whole_reads(stocked)
    out = stocked.batches.record("B1", "expansion", GOOD["expansion"], "alice", lots=["fbs-1"])
    assert "@materials" not in asked
    assert out.batch.steps["expansion"].lots[0]["lot"] == "FBS-1"  # as registered
    with pytest.raises(Refused) as refused:
        stocked.batches.record("B1", "pbs_wash", GOOD["pbs_wash"], "alice", lots=["FBS-2"])
    [problem] = refused.value.problems
    assert problem.startswith("no lot 'FBS-2'; did you mean FBS-1 or "), problem
    assert "@materials" not in asked


def test_an_upgraded_database_finds_its_lots_and_instruments_from_the_streams_until_rebuilt(
    stocked, clock, db_path
):
    """A database from before the lots and instruments tables: they are found (from the
    streams) until `db rebuild` fills the tables; verification then compares them with the
    log."""
    import sqlite3

    from conftest import present

    from cmprep.service import Services
    from cmprep.store import open_store

    conn = sqlite3.connect(db_path)  # as a database of schema 8
    conn.execute("DROP TABLE lots")
    conn.execute("DROP TABLE instruments")
    conn.execute("DELETE FROM meta WHERE key IN ('lots_indexed', 'instruments_indexed')")
    conn.execute("PRAGMA user_version=8")
    conn.commit()
    conn.close()
    again = present(Services(open_store(str(db_path)), clock=clock))
    assert not again.store.register_whole("lot") and again.store.registered_rows("lot") == []
    assert not again.store.register_whole("instrument")
    assert again.materials.lot_named("fbs-1").lot == "FBS-1"  # from the stream
    assert again.materials.instrument_named("cf-02").rotor_radius_cm == 16.5
    assert again.audit.verify().problems == []
    again.audit.rebuild_projections()
    assert again.store.register_whole("lot") and again.store.register_whole("instrument")
    assert [r["lot"] for r in again.store.registered_rows("lot")] == ["FBS-1", "FBS-OLD"]
    ids = [r["id"] for r in again.store.registered_rows("instrument")]
    assert ids == ["CF-02", "CF-OLD", "INC-1"]
    edit_tables(
        db_path,
        "UPDATE lots SET data = json_set(data, '$.expiry', '2099-12-31') WHERE lot = 'FBS-OLD'",
        "DELETE FROM lots WHERE lot = 'FBS-1'",
        "UPDATE instruments SET data = json_set(data, '$.calibration_due', '2099-01-01') "
        "WHERE id = 'CF-OLD'",
    )
    said = [f"{p.label} {p}" for p in again.audit.verify().problems]
    assert said == [
        "DIFFERS lots table, FBS-1: missing from the table; the log has it",
        "DIFFERS lots table, FBS-OLD: expiry is '2099-12-31' in the table, '2026-10-31' in the log",
        "DIFFERS instruments table, CF-OLD: calibration_due is '2099-01-01' in the table, "
        "'2026-10-01' in the log",
    ]
    again.close()


def test_a_step_naming_an_instrument_reads_it_by_key_whatever_its_calibrations(stocked, clock):
    for n in range(12):  # a year of calibrations: the step reads none of them
        clock.advance(days=1)
        stocked.materials.record_calibration("CF-02", f"2027-02-{n + 1:02d}", "alice")
    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="spin")
    asked = whole_reads(stocked)
    out = stocked.batches.record("B1", "spin", GOOD["spin"], "alice", equipment=["cf-02"])
    assert "@equipment" not in asked
    [used] = out.batch.steps["spin"].equipment
    assert used["id"] == "CF-02" and used["calibration_due"] == "2027-02-12"


def test_a_recall_in_an_upgraded_database_reads_the_logs_until_rebuilt(stocked, clock, db_path):
    """Before the lot uses were kept, a recall read every batch's log: it still does in a
    database upgraded with batches recorded, until `db rebuild` fills them; verification
    then compares them with the log, batch by batch."""
    import sqlite3

    from conftest import present

    from cmprep.service import Services
    from cmprep.store import open_store

    stocked.batches.start(STANDARD, "alice", "B1")
    run_to(stocked, clock, "B1", stop_before="expansion")
    stocked.batches.record("B1", "expansion", GOOD["expansion"], "alice", lots=["FBS-1"])
    conn = sqlite3.connect(db_path)  # as a database of schema 8
    conn.execute("DROP TABLE lot_uses")
    conn.execute("DELETE FROM meta WHERE key = 'uses_indexed'")
    conn.execute("PRAGMA user_version=8")
    conn.commit()
    conn.close()
    again = present(Services(open_store(str(db_path)), clock=clock))
    assert not again.store.uses_indexed() and again.store.lot_uses() == []
    [use] = again.materials.where_used("FBS-1")  # from the logs
    assert (use["batch_id"], use["step"]) == ("B1", "expansion")
    assert again.audit.verify().problems == []
    again.audit.rebuild_projections()
    assert again.store.uses_indexed() and again.materials.where_used("FBS-1") == [use]
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE lot_uses SET used_by = 'bob'")
    conn.execute(
        "INSERT INTO lot_uses VALUES ('B1', 'conditioning', 'FBS-OLD', 'FBS', "
        "'2026-11-02T09:00:00Z', 'alice')"
    )
    conn.commit()
    conn.close()
    said = [f"{p.label} {p}" for p in again.audit.verify().problems]
    assert said == [
        "DIFFERS lot_uses table, B1/conditioning/FBS-OLD: in the table, but not in the log",
        "DIFFERS lot_uses table, B1/expansion/FBS-1: used_by is 'bob' in the table, 'alice' "
        "in the log",
    ]
    again.audit.rebuild_projections()
    assert again.audit.verify().problems == []
    again.close()


def test_registering_and_calibrating_read_the_instruments_row_not_the_stream(stocked, clock):
    """A registration and a calibration read the instrument's row by key and keep it, so
    they cost the same after years of calibrations; verification finds the row as the log
    folds it."""
    asked = whole_reads(stocked)
    for n in range(6):
        clock.advance(days=1)
        inst = stocked.materials.record_calibration("cf-02", f"2027-03-{n + 1:02d}", "alice")
    assert (inst.id, inst.calibration_due) == ("CF-02", "2027-03-06")
    made = stocked.materials.register_equipment("CF-03", "centrifuge", "2027-05-01", "alice")
    assert made.id == "CF-03"
    with pytest.raises(Refused, match="equipment cf-03 is already registered as CF-03"):
        stocked.materials.register_equipment("cf-03", "centrifuge", "2027-05-01", "alice")
    with pytest.raises(NotFound, match="no equipment 'CF-04'; did you mean CF-03"):
        stocked.materials.record_calibration("CF-04", "2027-05-01", "alice")
    assert "@equipment" not in asked
    assert stocked.store.registered("instrument", "CF-02")["calibration_due"] == "2027-03-06"
    assert [i.id for i in stocked.materials.instruments_kept()] == [
        "CF-02", "CF-03", "CF-OLD", "INC-1"
    ]  # fmt: skip
    assert stocked.audit.verify().problems == []
