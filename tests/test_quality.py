"""Verification, signatures, the deviation lifecycle, review and release."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import GOOD, PASSWORD, STANDARD, run_to

from cmprep.store.base import ClockBehind


def _done_with_deviation(svc, clock, batch_id="B1"):
    """A whole standard batch by alice, with one out-of-spec spin (DEV-0001)."""
    svc.start_batch(STANDARD, "alice", batch_id)
    run_to(svc, clock, batch_id, stop_before="spin")
    svc.record_step(batch_id, "spin", {**GOOD["spin"], "rcf": "650"}, "alice")
    for step in ("filtration", "concentrate", "qc"):
        clock.advance(hours=1)
        svc.record_step(batch_id, step, GOOD[step], "alice")
    return svc.deviations(batch_id=batch_id)[0]["deviation_id"]


def _ready(svc, clock, batch_id="B1"):
    dev = _done_with_deviation(svc, clock, batch_id)
    svc.verify_step(batch_id, "filtration", "bob", PASSWORD)
    svc.verify_step(batch_id, "qc", "bob", PASSWORD)
    svc.investigate(dev, "alice", "wrong programme selected", impact="none")
    svc.close_deviation(dev, "quinn", PASSWORD, "accepted", "no impact", capa="CAPA-1")
    return dev


def test_the_performer_cannot_verify_their_own_step(svc, clock):
    _done_with_deviation(svc, clock)
    with pytest.raises(Exception, match="a different person must verify"):
        svc.verify_step("B1", "filtration", "alice", PASSWORD)
    assert svc.security_log()[-1]["who"] == "alice"


def test_verification_is_signed_with_name_time_meaning_and_content_hash(svc, clock):
    _done_with_deviation(svc, clock)
    out = svc.verify_step("B1", "filtration", "bob", PASSWORD)
    sig = out.batch.steps["filtration"].verifications[0]
    assert (sig["meaning"], sig["signer"], sig["full_name"]) == ("verified", "bob", "Bob Baker")
    assert sig["signed_at"] == out.batch.events[-1].recorded_at and len(sig["content_hash"]) == 64
    assert out.batch.steps["filtration"].verified


def test_a_wrong_password_signs_nothing_and_is_logged(svc, clock):
    _done_with_deviation(svc, clock)
    before = svc.batch("B1").seq
    with pytest.raises(Exception, match="wrong password"):
        svc.verify_step("B1", "filtration", "bob", "not the password")
    assert svc.batch("B1").seq == before
    assert svc.security_log()[-1]["reason"] == "wrong password"


def test_a_correction_after_verification_voids_it_until_verified_again(svc, clock):
    _ready(svc, clock)
    svc.correct("B1", "filtration", {"filter_lot": "F-2"}, "alice", "lot misread")
    batch = svc.batch("B1")
    assert not batch.steps["filtration"].verified
    assert (
        "step filtration needs second-person verification (changed after it was verified)"
        in svc.release_blockers(batch, "quinn")
    )
    svc.verify_step("B1", "filtration", "bob", PASSWORD)
    assert svc.release_blockers(svc.batch("B1"), "quinn") == []


def test_a_step_can_be_signed_as_performed(svc, clock):
    svc.start_batch(STANDARD, "alice", "B1")
    out = svc.record_step("B1", "isolation", GOOD["isolation"], "alice", password=PASSWORD)
    sig = out.batch.steps["isolation"].performed_signature
    assert sig["meaning"] == "performed" and sig["full_name"] == "Alice Archer"
    with pytest.raises(Exception, match="wrong password"):
        svc.record_step("B1", "expansion", GOOD["expansion"], "alice", password="nope")
    assert svc.batch("B1").steps["expansion"].status == "due"


def test_deviation_moves_open_investigated_closed(svc, clock):
    dev = _done_with_deviation(svc, clock)
    with pytest.raises(Exception, match="has not been investigated"):
        svc.close_deviation(dev, "quinn", PASSWORD, "accepted", "ok")
    svc.investigate(dev, "alice", "wrong programme", impact="none expected")
    assert svc.deviations(status="investigated")[0]["deviation_id"] == dev
    svc.close_deviation(
        dev,
        "quinn",
        PASSWORD,
        "accepted",
        "no impact",
        capa="CAPA-9",
        severity="minor",
        severity_reason="debris only",
    )
    _, d = svc.deviation(dev)
    assert d.status == "closed" and d.severity == "minor"
    assert d.closure["severity_from"] == "major" and d.closure["capa"] == "CAPA-9"
    assert d.closure["signature"]["meaning"] == "approved"
    assert [h["type"] for h in d.history] == [
        "deviation_opened",
        "deviation_investigated",
        "deviation_closed",
    ]
    with pytest.raises(Exception, match="already closed"):
        svc.close_deviation(dev, "quentin", PASSWORD, "rejected", "x")


def test_nobody_decides_their_own_deviation(svc, clock):
    svc.start_batch(STANDARD, "rita", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    svc.record_step("B1", "spin", {**GOOD["spin"], "rcf": "650"}, "rita")
    dev = svc.deviations()[0]["deviation_id"]
    svc.investigate(dev, "rita", "my mistake")
    with pytest.raises(Exception, match="someone independent must decide"):
        svc.close_deviation(dev, "rita", PASSWORD, "accepted", "fine by me")
    assert svc.security_log()[-1]["action"] == "close deviation"
    with pytest.raises(Exception, match="review must be independent"):
        svc.sign_review("B1", "rita", PASSWORD, "self review")


def test_changing_severity_needs_a_reason(svc, clock):
    dev = _done_with_deviation(svc, clock)
    svc.investigate(dev, "alice", "x")
    with pytest.raises(Exception, match="severity-reason"):
        svc.close_deviation(dev, "quinn", PASSWORD, "accepted", "ok", severity="minor")


def test_a_deviation_opened_by_hand(svc, clock):
    svc.start_batch(STANDARD, "alice", "B1")
    out = svc.open_deviation("B1", "isolation", "critical", "alice", "flask dropped in the hood")
    d = out.deviations[0]
    assert d["kind"] == "manual" and d["severity"] == "critical"
    assert svc.deviations()[0]["message"] == "flask dropped in the hood"
    with pytest.raises(Exception, match="severity 'huge'"):
        svc.open_deviation("B1", "isolation", "huge", "alice", "x")
    with pytest.raises(Exception, match="reason"):
        svc.open_deviation("B1", "isolation", "minor", "alice", "   ")


def test_release_says_exactly_what_blocks_it(svc, clock):
    dev = _done_with_deviation(svc, clock)
    with pytest.raises(Exception) as err:
        svc.release("B1", "quinn", PASSWORD)
    text = str(err.value)
    assert f"deviation {dev} (major) is open" in text
    assert "step filtration needs second-person verification" in text
    assert "step qc needs second-person verification" in text
    assert svc.batch("B1").state == "awaiting_review"


def test_release_needs_every_step_done(svc, clock):
    svc.start_batch(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    with pytest.raises(Exception, match="steps not done: spin, filtration"):
        svc.release("B1", "quinn", PASSWORD)


def test_release_by_someone_who_performed_a_step_is_refused(svc, clock):
    # rita (reviewer) records a step; rita cannot release anyway, so make a QA performer
    svc.add_user("quill", "Quill Q", "qa", PASSWORD, "root")
    _ready(svc, clock)
    svc.hold("B1", "quill", "check")
    svc.resume("B1", "quinn", "ok")
    # holds are not steps: quill may still release
    assert svc.release_blockers(svc.batch("B1"), "quill") == []
    blockers = svc.release_blockers(svc.batch("B1"), "alice")
    assert (
        "alice performed steps of this batch; release needs someone who performed none" in blockers
    )


def test_a_released_batch_takes_no_more_writes(svc, clock):
    _ready(svc, clock)
    out = svc.release("B1", "quinn", PASSWORD, "all closed")
    assert out.batch.state == "released" and out.batch.decision["by"] == "quinn"
    assert out.batch.signatures[-1]["meaning"] == "released"
    for write in (
        lambda: svc.correct("B1", "qc", {"qc_report_id": "X"}, "alice", "late fix"),
        lambda: svc.hold("B1", "alice", "x"),
        lambda: svc.open_deviation("B1", "qc", "minor", "alice", "x"),
        lambda: svc.reject("B1", "quentin", PASSWORD, "second thoughts"),
    ):
        with pytest.raises(Exception, match="released; it takes no more entries"):
            write()


def test_reject_needs_a_reason_and_a_signature(svc, clock):
    _done_with_deviation(svc, clock)
    with pytest.raises(Exception, match="reason"):
        svc.reject("B1", "quinn", PASSWORD, "")
    with pytest.raises(Exception, match="wrong password"):
        svc.reject("B1", "quinn", "bad", "sterility failed")
    out = svc.reject("B1", "quinn", PASSWORD, "sterility failed")
    assert out.batch.state == "rejected" and out.batch.signatures[-1]["meaning"] == "rejected"


def test_review_report_lists_what_a_reviewer_must_see(svc, clock):
    dev = _done_with_deviation(svc, clock)
    svc.correct("B1", "collection", {"volume": "450 mL"}, "alice", "re-read")
    report = svc.review_report("B1")
    assert report["out_of_spec"][0]["deviations"] == [dev]
    assert report["corrections"][0]["old"] == "500 mL"
    assert report["missing_verifications"] == ["filtration", "qc"]
    assert any(dev in b for b in report["release_blockers"])
    svc.sign_review("B1", "rita", PASSWORD, "reviewed by exception")
    assert svc.review_report("B1")["signatures"][-1]["meaning"] == "reviewed"
    with pytest.raises(Exception, match="to review one must be: qa, reviewer"):
        svc.sign_review("B1", "alice", PASSWORD, "self review")


def test_a_clock_that_goes_backwards_is_refused_not_reordered(svc, clock):
    svc.start_batch(STANDARD, "alice", "B1")
    svc.record_step("B1", "isolation", GOOD["isolation"], "alice")
    before = svc.batch("B1").seq
    clock.now -= timedelta(hours=1)
    with pytest.raises(ClockBehind, match="earlier than the last entry"):
        svc.record_step("B1", "expansion", GOOD["expansion"], "alice")
    assert svc.batch("B1").seq == before


def test_the_same_command_twice_with_one_key_is_one_event(svc, clock):
    svc.start_batch(STANDARD, "alice", "B1", key="start-1")
    again = svc.start_batch(STANDARD, "alice", "B1", key="start-1")
    assert again.duplicate and again.written == 0
    svc.record_step("B1", "isolation", GOOD["isolation"], "alice", key="iso-1")
    dup = svc.record_step("B1", "isolation", GOOD["isolation"], "alice", key="iso-1")
    assert dup.duplicate
    types = [e.type for e in svc.batch("B1").events]
    assert types == ["batch_started", "step_recorded"]
