"""Verification, signatures, the deviation lifecycle, review and release."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import GOOD, PASSWORD, STANDARD, run_to

from cmprep.errors import ClockBehind
from cmprep.store.query import DeviationFilter

NO_REVIEW = "no review signed: the record must be reviewed once every step is done"


def _done_with_deviation(svc, clock, batch_id="B1"):
    """A whole standard batch by alice, with one out-of-spec spin (DEV-0001)."""
    svc.batches.start(STANDARD, "alice", batch_id)
    run_to(svc, clock, batch_id, stop_before="spin")
    svc.batches.record(batch_id, "spin", {**GOOD["spin"], "rcf": "650"}, "alice")
    for step in ("filtration", "concentrate", "qc"):
        clock.advance(hours=1)
        svc.batches.record(batch_id, step, GOOD[step], "alice")
    return svc.quality.deviations(DeviationFilter(batch_id=batch_id))[0]["deviation_id"]


def _ready(svc, clock, batch_id="B1"):
    dev = _done_with_deviation(svc, clock, batch_id)
    svc.quality.verify_step(batch_id, "filtration", "bob", PASSWORD)
    svc.quality.verify_step(batch_id, "qc", "bob", PASSWORD)
    svc.quality.investigate(dev, "alice", "wrong programme selected", impact="none")
    svc.quality.close_deviation(dev, "quinn", PASSWORD, "accepted", "no impact", capa="CAPA-1")
    return dev


def test_the_performer_cannot_verify_their_own_step(svc, clock):
    _done_with_deviation(svc, clock)
    with pytest.raises(Exception, match="a different person must verify"):
        svc.quality.verify_step("B1", "filtration", "alice", PASSWORD)
    assert svc.people.security_log()[-1]["who"] == "alice"


def test_verification_is_signed_with_name_time_meaning_and_content_hash(svc, clock):
    _done_with_deviation(svc, clock)
    out = svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    sig = out.batch.steps["filtration"].verifications[0]
    assert (sig["meaning"], sig["signer"], sig["full_name"]) == ("verified", "bob", "Bob Baker")
    assert sig["signed_at"] == out.batch.events[-1].recorded_at and len(sig["content_hash"]) == 64
    assert out.batch.steps["filtration"].verified


def test_a_wrong_password_signs_nothing_and_is_logged(svc, clock):
    _done_with_deviation(svc, clock)
    before = svc.batches.batch("B1").seq
    with pytest.raises(Exception, match="wrong password"):
        svc.quality.verify_step("B1", "filtration", "bob", "not the password")
    assert svc.batches.batch("B1").seq == before
    assert svc.people.security_log()[-1]["reason"] == "wrong password (1 in a row)"


def test_a_correction_after_verification_voids_it_until_verified_again(svc, clock):
    _ready(svc, clock)
    svc.batches.correct("B1", "filtration", {"filter_lot": "F-2"}, "alice", "lot misread")
    batch = svc.batches.batch("B1")
    assert not batch.steps["filtration"].verified
    assert (
        "step filtration needs second-person verification (changed after it was verified)"
        in svc.quality.release_blockers(batch, "quinn")
    )
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    assert svc.quality.release_blockers(svc.batches.batch("B1"), "quinn") == [NO_REVIEW]


def test_a_step_can_be_signed_as_performed(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    out = svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", password=PASSWORD)
    sig = out.batch.steps["isolation"].performed_signature
    assert sig["meaning"] == "performed" and sig["full_name"] == "Alice Archer"
    with pytest.raises(Exception, match="wrong password"):
        svc.batches.record("B1", "expansion", GOOD["expansion"], "alice", password="nope")
    assert svc.batches.batch("B1").steps["expansion"].status == "due"


def test_deviation_moves_open_investigated_closed(svc, clock):
    dev = _done_with_deviation(svc, clock)
    with pytest.raises(Exception, match="has not been investigated"):
        svc.quality.close_deviation(dev, "quinn", PASSWORD, "accepted", "ok")
    svc.quality.investigate(dev, "alice", "wrong programme", impact="none expected")
    assert svc.quality.deviations(DeviationFilter(status="investigated"))[0]["deviation_id"] == dev
    svc.quality.close_deviation(
        dev,
        "quinn",
        PASSWORD,
        "accepted",
        "no impact",
        capa="CAPA-9",
        severity="minor",
        severity_reason="debris only",
    )
    _, d = svc.quality.deviation(dev)
    assert d.status == "closed" and d.severity == "minor"
    assert d.closure["severity_from"] == "major" and d.closure["capa"] == "CAPA-9"
    assert d.closure["signature"]["meaning"] == "approved"
    assert [h["type"] for h in d.history] == [
        "deviation_opened",
        "deviation_investigated",
        "deviation_closed",
    ]
    with pytest.raises(Exception, match="already closed"):
        svc.quality.close_deviation(dev, "quentin", PASSWORD, "rejected", "x")


def test_nobody_decides_their_own_deviation(svc, clock):
    svc.batches.start(STANDARD, "rita", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650"}, "rita")
    dev = svc.quality.deviations()[0]["deviation_id"]
    svc.quality.investigate(dev, "rita", "my mistake")
    with pytest.raises(Exception, match="someone independent must decide"):
        svc.quality.close_deviation(dev, "rita", PASSWORD, "accepted", "fine by me")
    assert svc.people.security_log()[-1]["action"] == "close deviation"
    with pytest.raises(Exception, match="review must be independent"):
        svc.quality.sign_review("B1", "rita", PASSWORD, "self review")


def test_changing_severity_needs_a_reason(svc, clock):
    dev = _done_with_deviation(svc, clock)
    svc.quality.investigate(dev, "alice", "x")
    with pytest.raises(Exception, match="reason for the change"):
        svc.quality.close_deviation(dev, "quinn", PASSWORD, "accepted", "ok", severity="minor")


def test_a_deviation_opened_by_hand(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    out = svc.quality.open_deviation(
        "B1", "isolation", "critical", "alice", "flask dropped in the hood"
    )
    d = out.deviations[0]
    assert d["kind"] == "manual" and d["severity"] == "critical"
    assert svc.quality.deviations()[0]["message"] == "flask dropped in the hood"
    with pytest.raises(Exception, match="severity 'huge'"):
        svc.quality.open_deviation("B1", "isolation", "huge", "alice", "x")
    with pytest.raises(Exception, match="reason"):
        svc.quality.open_deviation("B1", "isolation", "minor", "alice", "   ")


def test_release_says_exactly_what_blocks_it(svc, clock):
    dev = _done_with_deviation(svc, clock)
    with pytest.raises(Exception) as err:
        svc.quality.release("B1", "quinn", PASSWORD)
    text = str(err.value)
    assert f"deviation {dev} (major) is open" in text
    assert "step filtration needs second-person verification" in text
    assert "step qc needs second-person verification" in text
    assert svc.batches.batch("B1").state == "awaiting_review"


def test_release_needs_a_review_signed_after_every_step(svc, clock):
    _ready(svc, clock)
    with pytest.raises(Exception, match="no review signed"):
        svc.quality.release("B1", "quinn", PASSWORD)
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed by exception")
    assert svc.quality.release("B1", "quinn", PASSWORD).batch.state == "released"


def test_release_needs_every_step_done(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    with pytest.raises(Exception, match="steps not done: spin, filtration"):
        svc.quality.release("B1", "quinn", PASSWORD)


def test_release_by_someone_who_performed_a_step_is_refused(svc, clock):
    # rita (reviewer) records a step; rita cannot release anyway, so make a QA performer
    svc.people.add("quill", "Quill Q", "qa", PASSWORD, "root", PASSWORD)
    svc.gate.prove("quill", PASSWORD, "log in")
    _ready(svc, clock)
    svc.batches.hold("B1", "quill", "check")
    svc.batches.resume("B1", "quinn", "ok")
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed by exception")
    # holds are not steps: quill may still release
    assert svc.quality.release_blockers(svc.batches.batch("B1"), "quill") == []
    blockers = svc.quality.release_blockers(svc.batches.batch("B1"), "alice")
    assert (
        "alice performed steps of this batch; release needs someone who performed none" in blockers
    )


def test_a_released_batch_takes_no_more_writes(svc, clock):
    _ready(svc, clock)
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed by exception")
    out = svc.quality.release("B1", "quinn", PASSWORD, "all closed")
    assert out.batch.state == "released" and out.batch.decision["by"] == "quinn"
    assert out.batch.signatures[-1]["meaning"] == "released"
    for write in (
        lambda: svc.batches.correct("B1", "qc", {"qc_report_id": "X"}, "alice", "late fix"),
        lambda: svc.batches.hold("B1", "alice", "x"),
        lambda: svc.quality.sign_review("B1", "rita", PASSWORD, "again"),
        lambda: svc.quality.reject("B1", "quentin", PASSWORD, "second thoughts"),
    ):
        with pytest.raises(Exception, match="released; it takes no more entries"):
            write()
    # only an addendum: a deviation found late, changing no value and not the decision
    late = svc.quality.open_deviation("B1", "qc", "minor", "alice", "label smudged")
    assert late.deviations[0]["addendum"] is True and late.batch.state == "released"
    assert late.batch.steps["qc"].values == out.batch.steps["qc"].values


def test_reject_needs_a_reason_and_a_signature(svc, clock):
    _done_with_deviation(svc, clock)
    with pytest.raises(Exception, match="reason"):
        svc.quality.reject("B1", "quinn", PASSWORD, "")
    with pytest.raises(Exception, match="wrong password"):
        svc.quality.reject("B1", "quinn", "bad", "sterility failed")
    out = svc.quality.reject("B1", "quinn", PASSWORD, "sterility failed")
    assert out.batch.state == "rejected" and out.batch.signatures[-1]["meaning"] == "rejected"


def test_review_report_lists_what_a_reviewer_must_see(svc, clock):
    dev = _done_with_deviation(svc, clock)
    svc.batches.correct("B1", "collection", {"volume": "450 mL"}, "alice", "re-read")
    report = svc.quality.review_report("B1")
    assert report["out_of_spec"][0]["deviations"] == [dev]
    assert report["corrections"][0]["old"] == "500 mL"
    assert report["missing_verifications"] == ["filtration", "qc"]
    assert any(dev in b for b in report["release_blockers"])
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed by exception")
    assert svc.quality.review_report("B1")["signatures"][-1]["meaning"] == "reviewed"
    with pytest.raises(Exception, match="to review one must be: qa, reviewer"):
        svc.quality.sign_review("B1", "alice", PASSWORD, "self review")


def test_a_clock_that_goes_backwards_is_refused_not_reordered(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    before = svc.batches.batch("B1").seq
    clock.now -= timedelta(hours=1)
    with pytest.raises(ClockBehind, match="earlier than the last entry"):
        svc.batches.record("B1", "expansion", GOOD["expansion"], "alice")
    assert svc.batches.batch("B1").seq == before


def test_the_same_command_twice_with_one_key_is_one_event(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1", key="start-1")
    again = svc.batches.start(STANDARD, "alice", "B1", key="start-1")
    assert again.duplicate and again.written == 0
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", key="iso-1")
    dup = svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", key="iso-1")
    assert dup.duplicate
    types = [e.type for e in svc.batches.batch("B1").events]
    assert types == ["batch_started", "step_recorded"]
