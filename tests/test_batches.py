"""Batches through the service: order, deviations, refusals, corrections, holds, windows."""

from __future__ import annotations

import itertools
import sqlite3

import pytest
from conftest import GOOD, STANDARD, approve_file, forger_connect, run_to

from cmprep import events as ev
from cmprep.errors import Hint, NotFound, Refused
from cmprep.store.query import DeviationFilter


def test_a_batch_follows_the_approved_protocol_and_an_edited_file_changes_nothing(svc, tmp_path):
    proto = tmp_path / "p.yaml"
    src = svc.protocols.get(STANDARD)
    data = {**src.to_content(), "id": "cm-copy"}
    proto.write_text(__import__("yaml").safe_dump(data, sort_keys=False))
    ref = approve_file(svc, proto)
    svc.batches.start(ref, "alice", "B1")
    before = svc.batches.batch("B1")
    text = proto.read_text().replace("max: 500.0", "max: 900.0")
    assert text != proto.read_text()
    proto.write_text(text)  # the spin spec widened in the file, which still says approved
    with pytest.raises(Refused, match="needs a new version number"):
        svc.protocols.import_file(str(proto), "rita")
    with pytest.raises(Refused, match="is a file; a batch starts only from a protocol imported"):
        svc.batches.start(str(proto), "alice", "B2")
    after = svc.batches.batch("B1")
    assert after.protocol_hash == before.protocol_hash
    assert after.protocol_hash == svc.protocols.stored("cm-copy").content_hash
    assert after.protocol.step("spin").parameter("rcf").spec.max == 500
    second = svc.batches.start("cm-copy", "alice", "B2").batch
    assert second.protocol.step("spin").parameter("rcf").spec.max == 500


def test_filtration_before_spin_is_refused_naming_the_step_due(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    with pytest.raises(Refused) as err:
        svc.batches.record("B1", "filtration", GOOD["filtration"], "alice")
    assert "spin" in str(err.value) and "not due yet" in str(err.value)
    assert svc.batches.batch("B1").steps["filtration"].status == "pending"


def test_spin_at_650g_opens_a_major_deviation(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    out = svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650 xg"}, "alice")
    assert [d["severity"] for d in out.deviations] == ["major"]
    dev = out.deviations[0]
    assert dev["deviation_id"].startswith("DEV-") and dev["value"] == "650 x g"
    assert "above the protocol's 300-500 x g" in dev["message"]
    rows = svc.quality.deviations(DeviationFilter(batch_id="B1"))
    assert [r["deviation_id"] for r in rows] == [dev["deviation_id"]]
    assert rows[0]["opened_by"] == "alice" and rows[0]["step"] == "spin"
    assert svc.batches.batch("B1").steps["spin"].values["rcf"].verdict == "out of spec"


def test_three_values_out_of_spec_open_three_deviations(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    out = svc.batches.record(
        "B1", "spin", {"rcf": "200", "duration": "30 min", "temperature": "20"}, "alice"
    )
    assert sorted(d["parameter"] for d in out.deviations) == ["duration", "rcf", "temperature"]
    assert len({d["deviation_id"] for d in out.deviations}) == 3


def test_deviation_ids_count_up_across_batches(svc, clock):
    for b in ("B1", "B2"):
        svc.batches.start(STANDARD, "alice", b)
        run_to(svc, clock, b, stop_before="spin")
        svc.batches.record(b, "spin", {**GOOD["spin"], "rcf": "650"}, "alice")
    assert [r["deviation_id"] for r in svc.quality.deviations()] == ["DEV-0001", "DEV-0002"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"confluence": "120"}, "impossible"),
        ({"confluence": "seventy"}, "does not start with a number"),
        ({"confluence": "75 x g"}, "cannot be converted"),
        ({"confluence": "75,5"}, "decimal comma"),
        ({"confluence": "nan"}, "finite"),
        ({"colour": "red"}, "no parameter 'colour'"),
        ({"passage": "3.5"}, "whole number"),
    ],
)
def test_impossible_or_unreadable_values_are_refused_and_nothing_is_written(
    svc, clock, values, expected
):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="expansion")
    before = svc.batches.batch("B1").seq
    with pytest.raises(Refused) as err:
        svc.batches.record("B1", "expansion", {**GOOD["expansion"], **values}, "alice")
    assert expected in str(err.value)
    assert svc.batches.batch("B1").seq == before
    assert svc.quality.deviations() == []


def test_a_missing_required_value_is_refused_with_what_to_add(svc):
    svc.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Refused) as err:
        svc.batches.record("B1", "isolation", {"donor_id": "D-1"}, "alice")
    assert "source_tissue=VALUE" in str(err.value)


def test_all_problems_of_a_record_are_listed_at_once(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="expansion")
    with pytest.raises(Refused) as err:
        svc.batches.record("B1", "expansion", {"confluence": "150", "viability": "x"}, "alice")
    assert len(err.value.problems) >= 4  # two bad values, passage, basal_medium, fbs missing


def test_unknown_step_and_batch_are_refused_by_name(svc):
    svc.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Refused, match="no step 'centrifuge'"):
        svc.batches.record("B1", "centrifuge", {}, "alice")
    with pytest.raises(NotFound, match="no batch 'B9'"):
        svc.batches.record("B9", "isolation", {}, "alice")


def test_a_write_without_a_person_is_refused(svc):
    with pytest.raises(Refused, match="who is doing this") as caught:
        svc.batches.start(STANDARD, "  ", "B1")
    assert caught.value.hint == Hint("needs_person")
    assert svc.batches.batches() == []


def test_a_batch_id_is_used_once(svc):
    svc.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Exception, match="already exists"):
        svc.batches.start(STANDARD, "alice", "B1")


def test_batch_ids_are_generated_per_day(svc):
    first = svc.batches.start(STANDARD, "alice").batch.id
    second = svc.batches.start(STANDARD, "alice").batch.id
    assert (first, second) == ("CM-20261102-001", "CM-20261102-002")


def test_collecting_at_20_h_or_80_h_opens_a_deviation_48_h_does_not(svc, clock):
    for batch_id, hours, deviations in (("B20", 20, 1), ("B48", 48, 0), ("B80", 80, 1)):
        svc.batches.start(STANDARD, "alice", batch_id)
        run_to(svc, clock, batch_id, stop_before="collection")
        clock.advance(hours=hours)
        out = svc.batches.record(batch_id, "collection", GOOD["collection"], "alice")
        assert len(out.deviations) == deviations, batch_id
        window = svc.batches.batch(batch_id).steps["collection"].window
        assert window.display == f"{hours} h"


def test_a_step_done_earlier_is_entered_with_at_and_flagged_late(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    clock.advance(hours=3)
    out = svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", at="2026-11-02T08:30Z")
    entry = out.batch.steps["isolation"]
    assert entry.performed_at == "2026-11-02T08:30:00Z"
    assert entry.recorded_at == "2026-11-02T11:00:00Z"
    assert entry.late and out.late


def test_an_entry_within_the_allowance_is_not_late(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    clock.advance(minutes=30)
    out = svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", at="2026-11-02T08:10Z")
    assert not out.late


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-11-03T08:00Z", "in the future"),
        ("2026-11-02T08:00", "no time zone"),
        ("yesterday", "not a date-time"),
    ],
)
def test_bad_at_times_are_refused(svc, at, expected):
    svc.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Refused, match=expected):
        svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", at=at)


def test_a_step_cannot_be_dated_before_the_step_before_it(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    clock.advance(hours=2)
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    with pytest.raises(Refused, match="before the previous step"):
        svc.batches.record("B1", "expansion", GOOD["expansion"], "alice", at="2026-11-02T09:00Z")


def test_a_correction_keeps_the_old_value_and_needs_a_reason(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="pbs_wash")
    with pytest.raises(Refused, match="reason"):
        svc.batches.correct("B1", "expansion", {"confluence": "78"}, "bob", "   ")
    out = svc.batches.correct("B1", "expansion", {"confluence": "78"}, "bob", "misread the gauge")
    value = out.batch.steps["expansion"].values["confluence"]
    assert value.display == "78 %"
    assert [(c.old, c.new, c.actor, c.reason) for c in value.corrections] == [
        ("75 %", "78 %", "bob", "misread the gauge")
    ]
    types = [e.type for e in out.batch.events]
    assert types.count(ev.STEP_RECORDED) == 2 and types[-1] == ev.VALUE_CORRECTED


def test_a_correction_to_an_out_of_spec_value_opens_a_deviation(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="pbs_wash")
    out = svc.batches.correct("B1", "expansion", {"confluence": "85"}, "bob", "misread")
    assert len(out.deviations) == 1


def test_an_impossible_correction_is_refused(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="pbs_wash")
    with pytest.raises(Refused, match="impossible"):
        svc.batches.correct("B1", "expansion", {"confluence": "101"}, "bob", "misread")
    with pytest.raises(Refused, match="has not been recorded"):
        svc.batches.correct("B1", "pbs_wash", {"washes": "3"}, "bob", "x")


def test_optional_steps_are_skipped_with_a_reason_others_are_not(svc, clock):
    svc.batches.start("cm-tnf-primed-ad", "alice", "T1")
    batch = svc.batches.batch("T1")
    optional = next(s for s in batch.protocol.steps if s.optional)
    mandatory = batch.protocol.steps[0]
    with pytest.raises(Refused, match="not optional"):
        svc.batches.skip("T1", mandatory.id, "alice", "no reason")
    # walk to the optional step
    while optional not in svc.batches.batch("T1").due():
        step = svc.batches.batch("T1").due()[0]
        clock.advance(minutes=30)
        svc.batches.record("T1", step.id, _good_for(step), "alice")
    with pytest.raises(Refused, match="reason"):
        svc.batches.skip("T1", optional.id, "alice", "")
    out = svc.batches.skip("T1", optional.id, "alice", "normoxic arm")
    assert out.batch.steps[optional.id].status == "skipped"
    assert out.batch.steps[optional.id].skip_reason == "normoxic arm"


def test_a_branch_takes_exactly_one_arm(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="use_fresh")
    assert [s.id for s in svc.batches.batch("B1").due()] == [
        "use_fresh",
        "concentrate",
        "lyophilise",
    ]
    with pytest.raises(Refused, match="choose one arm"):
        svc.batches.skip("B1", "use_fresh", "alice", "not used")
    svc.batches.record("B1", "lyophilise", GOOD["lyophilise"], "alice")
    batch = svc.batches.batch("B1")
    assert [batch.steps[s].status for s in ("use_fresh", "concentrate", "lyophilise")] == [
        "not taken",
        "not taken",
        "done",
    ]
    with pytest.raises(Refused, match="already not taken"):
        svc.batches.record("B1", "concentrate", GOOD["concentrate"], "alice")


def test_a_whole_batch_ends_awaiting_review(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    batch = svc.batches.batch("B1")
    assert batch.state == "awaiting_review" and batch.due() == []
    with pytest.raises(Refused, match="already done"):
        svc.batches.record("B1", "qc", GOOD["qc"], "alice")


def test_hold_blocks_recording_until_resumed(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    svc.batches.hold("B1", "alice", "incubator alarm")
    with pytest.raises(Refused, match="on hold"):
        svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    with pytest.raises(Refused, match="already on hold"):
        svc.batches.hold("B1", "alice", "again")
    with pytest.raises(Refused, match="reason"):
        svc.batches.resume("B1", "alice", "")
    out = svc.batches.resume("B1", "bob", "alarm cleared")
    assert out.batch.state == "isolation"
    assert out.batch.holds[0].reason == "incubator alarm" and out.batch.holds[0].resumed_by == "bob"
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    with pytest.raises(Refused, match="not on hold"):
        svc.batches.resume("B1", "alice", "x")


def test_every_event_links_to_the_one_before(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    events = svc.store.events("B1")
    assert ev.verify_chain("B1", events) is None
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(events))


def test_the_event_table_refuses_update_and_delete(svc, db_path):
    svc.batches.start(STANDARD, "alice", "B1")
    conn = forger_connect(db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET actor = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")


def test_a_changed_event_breaks_the_chain_at_that_event(svc, clock, db_path):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    conn = forger_connect(db_path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute(
        "UPDATE events SET payload = packed(replace(unpacked(payload), '75', '79')) WHERE seq = 3"
    )
    conn.commit()
    broken = ev.verify_chain("B1", svc.store.events("B1"))
    assert broken is not None and broken.seq == 3


def test_query_tables_rebuild_from_the_log(svc, clock, db_path):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650"}, "alice")
    before = (svc.batches.batches(), svc.quality.deviations())
    conn = forger_connect(db_path)
    conn.execute("DELETE FROM batches")
    conn.execute("DELETE FROM deviations")
    conn.commit()
    assert svc.batches.batches() == []
    assert svc.audit.rebuild_projections() == 1
    assert (svc.batches.batches(), svc.quality.deviations()) == before


def _good_for(step):
    """Plausible in-spec values for any bundled step (for protocols other than the standard)."""
    if step.id in GOOD and all(p.name in GOOD[step.id] for p in step.parameters if p.required):
        return {k: v for k, v in GOOD[step.id].items() if step.parameter(k)}
    values = {}
    for p in step.parameters:
        values[p.name] = _good_value(p)
    return values


def _good_value(p):
    from cmprep.protocol.models import ParamType

    if p.type == ParamType.choice:
        return p.spec.one_of[0] if p.spec else p.choices[0]
    if p.type == ParamType.yes_no:
        return "yes" if (p.spec is None or p.spec.equals) else "no"
    if p.type == ParamType.text:
        return "T-1"
    if p.type == ParamType.datetime:
        return "2026-11-02T08:00Z"
    rng = p.spec.range if p.spec else p.limits
    if rng is None:
        return "1"
    lo, hi = rng.min, rng.max
    if lo is not None and hi is not None:
        v = (lo + hi) / 2
    elif lo is not None:
        v = lo + 1 if p.limits is None or p.limits.max is None or lo + 1 <= p.limits.max else lo
    else:
        v = hi - 1 if p.limits is None or p.limits.min is None or hi - 1 >= p.limits.min else hi
    if p.type == ParamType.integer:
        v = round(v)
        if rng.min is not None and v < rng.min:
            v += 1
    return str(v)


def test_filter_entered_as_220_nm_is_exactly_the_protocols_0_22_um(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="filtration")
    out = svc.batches.record(
        "B1", "filtration", {**GOOD["filtration"], "pore_size": "220 nm"}, "alice"
    )
    assert out.deviations == []
    assert out.batch.steps["filtration"].values["pore_size"].display == "0.22 um"


def test_values_read_in_the_protocols_order_not_the_order_typed(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    out = svc.batches.record(
        "B1", "spin", {"temperature": "4", "duration": "10", "rcf": "400"}, "alice"
    )
    assert list(out.batch.steps["spin"].values) == ["rcf", "duration", "temperature"]
