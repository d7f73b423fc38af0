"""Material lots and instruments: expiry, calibration, rpm via the rotor radius, recalls."""

from __future__ import annotations

import pytest
from conftest import GOOD, STANDARD, run_to

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
    assert inst.calibration_due == "2027-04-01" and inst.calibrations[0]["certificate"] == "CAL-1"
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
    rows = stocked.materials.where_used("FBS-1")
    assert [(r["batch_id"], r["step"]) for r in rows] == [("B1", "expansion"), ("B2", "expansion")]
    assert stocked.materials.where_used("FBS-OLD") == []


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
