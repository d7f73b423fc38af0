"""Release rules: a review that counts, rejected deviations, addenda after the decision,
and idempotency keys that stand for one command only."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, run_to

from cmprep import events as ev
from cmprep.cli import Shell, main
from cmprep.cli.hints import hint_text
from cmprep.demo import in_spec_value
from cmprep.domain.batch import fold
from cmprep.errors import Refused
from cmprep.service import Services
from cmprep.service.views import record_view
from cmprep.store import open_store
from cmprep.store.query import DeviationFilter


def _done(svc, clock, batch_id="B1", spin=None):
    """A whole standard batch by alice; with SPIN (an rcf), one out-of-spec spin."""
    svc.batches.start(STANDARD, "alice", batch_id)
    run_to(svc, clock, batch_id, stop_before="spin")
    svc.batches.record(batch_id, "spin", {**GOOD["spin"], "rcf": spin or "400 x g"}, "alice")
    for step in ("filtration", "concentrate", "qc"):
        clock.advance(hours=1)
        svc.batches.record(batch_id, step, GOOD[step], "alice")
    for step in ("filtration", "qc"):
        clock.advance(minutes=10)
        svc.quality.verify_step(batch_id, step, "bob", PASSWORD)


def _decide(svc, clock, dev, decision):
    clock.advance(minutes=10)
    svc.quality.investigate(dev, "alice", "wrong programme selected", impact="none")
    clock.advance(minutes=10)
    svc.quality.close_deviation(dev, "quinn", PASSWORD, decision, "QA decision")


def _released(svc, clock, batch_id="B1"):
    _done(svc, clock, batch_id)
    clock.advance(minutes=10)
    svc.quality.sign_review(batch_id, "rita", PASSWORD, "record reviewed")
    clock.advance(minutes=10)
    return svc.quality.release(batch_id, "quinn", PASSWORD, "meets specification")


def _refusal(call) -> Refused:
    with pytest.raises(Refused) as err:
        call()
    return err.value


# --- 1. release needs a review that still counts ---------------------------------------------
def test_release_without_a_review_is_refused_and_says_to_sign_one(svc, clock):
    _done(svc, clock)
    seq = svc.batches.batch("B1").seq
    err = _refusal(lambda: svc.quality.release("B1", "quinn", PASSWORD))
    assert "batch B1 cannot be released" in str(err)
    assert err.problems == ["no review signed: the record must be reviewed once every step is done"]
    assert hint_text(err.hint) == "Sign the review with `cmprep batch review B1 --sign COMMENT`."
    assert svc.batches.batch("B1").seq == seq  # nothing written
    clock.advance(minutes=10)
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    assert svc.quality.release_blockers(svc.batches.batch("B1"), "quinn") == []
    out = svc.quality.release("B1", "quinn", PASSWORD)
    assert out.batch.state == "released"
    assert [s["meaning"] for s in out.batch.signatures][-2:] == ["reviewed", "released"]


def test_a_review_is_refused_while_steps_are_due_naming_them(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="filtration")
    seq = svc.batches.batch("B1").seq
    err = _refusal(lambda: svc.quality.sign_review("B1", "rita", PASSWORD, "early"))
    assert str(err).startswith(
        "batch B1 cannot be reviewed yet: steps not done: filtration, downstream (one of "
        "use_fresh, concentrate, lyophilise), qc; the review is signed once every step is done"
    )
    assert hint_text(err.hint) == "See what it needs with `cmprep batch status B1`."
    assert svc.batches.batch("B1").seq == seq and svc.batches.batch("B1").reviews == []


def test_a_correction_after_the_review_voids_it_until_reviewed_again(svc, clock):
    _done(svc, clock)
    clock.advance(minutes=10)
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    clock.advance(minutes=10)
    # a value no derived value reads (a volume would also recompute the recovery and the
    # concentration factor, and so change the verified filtration step)
    svc.batches.correct("B1", "collection", {"vessels_pooled": "5"}, "alice", "re-read")
    batch = svc.batches.batch("B1")
    assert batch.review is None and batch.reviews[0].voided_by is not None
    err = _refusal(lambda: svc.quality.release("B1", "quinn", PASSWORD))
    corrected = batch.events[-1]
    assert err.problems == [
        f"the review by rita at {batch.reviews[0].at} no longer counts: alice corrected "
        f"collection.vessels_pooled at {corrected.recorded_at}, after it (event {corrected.seq}); "
        "the record must be reviewed again"
    ]
    assert err.hint is not None and err.hint.kind == "sign_review"
    clock.advance(minutes=10)
    svc.quality.sign_review("B1", "quentin", PASSWORD, "correction reviewed")
    assert svc.quality.release("B1", "quinn", PASSWORD).batch.state == "released"


def test_a_deviation_opened_after_the_review_voids_it(svc, clock):
    _done(svc, clock)
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    clock.advance(minutes=5)
    svc.quality.open_deviation("B1", "qc", "minor", "bob", "incubator log shows a gap")
    blockers = svc.quality.release_blockers(svc.batches.batch("B1"), "quinn")
    assert any("no longer counts: bob opened DEV-0001" in b for b in blockers), blockers


def test_verification_and_a_hold_after_the_review_leave_it_standing(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    clock.advance(minutes=5)
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    svc.quality.verify_step("B1", "qc", "bob", PASSWORD)
    svc.batches.hold("B1", "quinn", "pending paperwork")
    svc.batches.resume("B1", "quinn", "paperwork in")
    batch = svc.batches.batch("B1")
    assert batch.review is not None and batch.review.by == "rita"
    assert svc.quality.release_blockers(batch, "quinn") == []


def test_a_review_in_a_log_signed_before_the_steps_were_done_does_not_count(svc, clock):
    """An older log may hold a review made mid-batch: the fold marks it incomplete."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    events = svc.batches.batch("B1").events
    early = dataclasses.replace(events[2], type=ev.BATCH_REVIEWED, payload={}, reason="early")
    later = [dataclasses.replace(e, seq=e.seq + 1) for e in events[2:]]
    batch = fold([*events[:2], early, *later])
    assert batch.reviews[0].complete is False and batch.review is None
    assert svc.quality.release_blockers(batch) == [
        "step filtration needs second-person verification",
        "step qc needs second-person verification",
        f"the review by alice at {early.recorded_at} was signed before every step was done; "
        "the record must be reviewed again",
    ]


# --- 2. a rejected deviation leaves only rejection --------------------------------------------
def test_a_deviation_closed_as_rejected_blocks_release_and_leaves_reject(svc, clock):
    _done(svc, clock, spin="650")
    dev = svc.quality.deviations(DeviationFilter(batch_id="B1"))[0]["deviation_id"]
    _decide(svc, clock, dev, "rejected")
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    blocker = (
        f"deviation {dev} (major) was closed as rejected by quinn; "
        "the batch cannot be released, only rejected"
    )
    assert svc.quality.release_blockers(svc.batches.batch("B1"), "quinn") == [blocker]
    err = _refusal(lambda: svc.quality.release("B1", "quinn", PASSWORD))
    assert err.problems == [blocker]
    assert hint_text(err.hint) == "Only rejection remains: `cmprep batch reject B1 --reason ...`."
    assert svc.quality.review_report("B1")["release_blockers"] == [blocker]
    out = svc.quality.reject("B1", "quinn", PASSWORD, f"{dev} rejected")
    assert out.batch.state == "rejected"


def test_an_accepted_deviation_does_not_block_release(svc, clock):
    _done(svc, clock, spin="650")
    dev = svc.quality.deviations(DeviationFilter(batch_id="B1"))[0]["deviation_id"]
    _decide(svc, clock, dev, "accepted")
    svc.quality.sign_review("B1", "rita", PASSWORD, "record reviewed")
    assert svc.quality.release("B1", "quinn", PASSWORD).batch.state == "released"


# --- 3. addenda after the decision ------------------------------------------------------------
def test_a_deviation_on_a_released_batch_is_an_addendum(svc, clock):
    released = _released(svc, clock).batch
    clock.advance(days=3)
    out = svc.quality.open_deviation("B1", "spin", "major", "bob", "rotor found out of balance")
    d = out.deviations[0]
    assert d["deviation_id"] == "DEV-0001" and d["addendum"] is True
    batch = out.batch
    assert batch.state == "released" and batch.decision == released.decision
    assert batch.steps["spin"].values["rcf"].deviation_ids == []  # values as released
    assert [x.id for x in batch.addenda()] == ["DEV-0001"] and batch.record_deviations() == []
    row = svc.quality.deviations(DeviationFilter(batch_id="B1"))[0]
    assert row["addendum"] is True and row["status"] == "open"
    assert svc.audit.trail("B1")[-1]["what"] == (
        "DEV-0001 opened as an addendum (major, manual) at spin"
    )
    # its lifecycle works on the released batch
    clock.advance(hours=2)
    svc.quality.investigate("DEV-0001", "bob", "rotor serviced after the batch", impact="none")
    clock.advance(hours=2)
    closed = svc.quality.close_deviation("DEV-0001", "quinn", PASSWORD, "accepted", "no impact")
    assert closed.batch.deviations["DEV-0001"].status == "closed"
    assert closed.batch.state == "released"
    # anything else is still refused
    err = _refusal(lambda: svc.batches.correct("B1", "qc", {"qc_report_id": "X"}, "alice", "x"))
    assert str(err).startswith("batch B1 is released; it takes no more entries")
    assert svc.audit.verify("B1")[1] == []


def test_the_record_shows_addenda_in_their_own_section(svc, clock):
    _released(svc, clock)
    clock.advance(days=3)
    svc.quality.open_deviation("B1", "spin", "major", "bob", "rotor found out of balance")
    svc.quality.open_complaint("B1", "minor", "quinn", "study 7: vial 3 cloudy on thawing")
    view = record_view(svc.batches.batch("B1"), generated_at="2026-12-01T00:00:00Z")
    assert view.deviations == [] and [d.id for d in view.addenda] == ["DEV-0001", "CMP-0001"]
    assert view.summary.deviations == 0
    html = svc.documents.record("B1", "html")
    deviations = html[html.index("<h2>Deviations</h2>") : html.index("<h2>QA review")]
    assert "DEV-0001" not in deviations and "<p>None.</p>" in deviations
    addenda = html[html.index("<h2>Addenda after the decision</h2>") :]
    for text in ("DEV-0001", "rotor found out of balance", "bob", "CMP-0001", "complaint"):
        assert text in addenda, text
    assert (
        "study 7: vial 3 cloudy on thawing" in addenda and "Opened after the batch was" in addenda
    )
    md = svc.documents.record("B1", "md")
    section = md[md.index("## Addenda after the decision") :]
    assert "| **CMP-0001** | complaint | — | minor | quinn |" in section
    assert "| **DEV-0001** | deviation | spin | major | bob |" in section


def test_a_record_without_addenda_has_no_addenda_section(svc, clock):
    _released(svc, clock)
    assert "Addenda" not in svc.documents.record("B1", "html")
    assert "Addenda" not in svc.documents.record("B1", "md")


def test_a_complaint_is_an_addendum_with_the_deviation_lifecycle(svc, clock):
    _released(svc, clock)
    clock.advance(days=10)
    out = svc.quality.open_complaint("B1", "major", "quinn", "study 7: vial 3 cloudy")
    c = out.deviations[0]
    assert (c["deviation_id"], c["kind"], c["step"], c["addendum"]) == (
        "CMP-0001",
        "complaint",
        "",
        True,
    )
    assert out.batch.state == "released"
    view = svc.quality.deviation_view("CMP-0001")
    assert view.addendum and view.history[0]["what"] == (
        "CMP-0001 opened as an addendum (major, complaint)"
    )
    svc.quality.investigate("CMP-0001", "alice", "vial 3 froze twice in transit")
    svc.quality.close_deviation(
        "CMP-0001",
        "quentin",
        PASSWORD,
        "accepted",
        "shipping cause",
        severity="minor",
        severity_reason="one vial only",
    )
    _, dev = svc.quality.deviation("CMP-0001")
    assert dev.status == "closed" and dev.severity == "minor"
    assert svc.audit.verify("B1")[1] == []


def test_a_complaint_needs_a_released_or_rejected_batch(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    seq = svc.batches.batch("B1").seq
    err = _refusal(lambda: svc.quality.open_complaint("B1", "major", "quinn", "cloudy"))
    assert str(err) == (
        "batch B1 is not released or rejected yet (it is at isolation); "
        "a problem found before the decision is a deviation at its step"
    )
    assert svc.batches.batch("B1").seq == seq
    with pytest.raises(Refused, match="reason"):
        svc.quality.open_complaint("B1", "major", "quinn", "  ")
    _released(svc, clock, "B2")
    with pytest.raises(Refused, match="severity 'huge' is not one of: minor, major, critical"):
        svc.quality.open_complaint("B2", "huge", "quinn", "cloudy")


def test_addenda_on_a_rejected_batch(svc, clock):
    _done(svc, clock)
    svc.quality.reject("B1", "quinn", PASSWORD, "sterility failed on retest")
    out = svc.quality.open_deviation("B1", "qc", "minor", "bob", "retest sample mislabelled")
    assert out.deviations[0]["addendum"] is True and out.batch.state == "rejected"


# --- 4. idempotency keys stand for one command ------------------------------------------------
def test_a_key_reused_with_other_values_is_refused_naming_the_key(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", key="iso-1")
    seq = svc.batches.batch("B1").seq
    other = {**GOOD["isolation"], "donor_id": "D-2"}
    err = _refusal(lambda: svc.batches.record("B1", "isolation", other, "alice", key="iso-1"))
    assert str(err) == (
        "idempotency key 'iso-1' was already used for another command (record of isolation "
        "in batch B1, by alice); this one differs in values. Nothing was written: a new "
        "command needs a new key"
    )
    err = _refusal(
        lambda: svc.batches.record("B1", "expansion", GOOD["expansion"], "alice", key="iso-1")
    )
    assert "differs in step, values" in str(err)
    err = _refusal(
        lambda: svc.batches.record("B1", "isolation", GOOD["isolation"], "bob", key="iso-1")
    )
    assert "differs in by" in str(err)
    assert svc.batches.batch("B1").seq == seq
    same = svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", key="iso-1")
    assert same.duplicate and same.written == 0


def test_a_key_reused_for_another_batch_or_command_is_refused(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1", key="k-start")
    assert svc.batches.start(STANDARD, "alice", "B1", key="k-start").duplicate
    assert svc.batches.start(STANDARD, "alice", key="k-start").duplicate  # no id: same batch
    with pytest.raises(Refused, match=r"key 'k-start' .* differs in batch"):
        svc.batches.start(STANDARD, "alice", "B2", key="k-start")
    with pytest.raises(Refused, match=r"key 'k-start' .* differs in protocol"):
        svc.batches.start("cm-hypoxia-uc", "alice", "B1", key="k-start")
    with pytest.raises(Refused, match=r"key 'k-start' .*\(start in batch B1, by alice\)"):
        svc.batches.record("B1", "isolation", GOOD["isolation"], "alice", key="k-start")
    assert svc.batches.batches() and [r["batch_id"] for r in svc.batches.batches()] == ["B1"]


def test_a_correction_key_compares_values_and_reason(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    fix = {"volume": "450 mL"}
    svc.batches.correct("B1", "collection", fix, "alice", "re-read", key="c-1")
    assert svc.batches.correct("B1", "collection", fix, "alice", "re-read", key="c-1").duplicate
    with pytest.raises(Refused, match=r"key 'c-1' .* differs in values"):
        svc.batches.correct("B1", "collection", {"volume": "460 mL"}, "alice", "re-read", key="c-1")
    with pytest.raises(Refused, match=r"key 'c-1' .* differs in reason"):
        svc.batches.correct("B1", "collection", fix, "alice", "misread", key="c-1")


def test_a_skip_key_compares_step_and_reason(svc, clock):
    batch = svc.batches.start("cm-tnf-primed-ad", "alice", "H1").batch
    optional = next(s for s in batch.protocol.steps if s.optional)
    for step in batch.protocol.steps[: batch.protocol.steps.index(optional)]:
        clock.advance(hours=1)
        values = {p.name: in_spec_value(p) for p in step.parameters if p.required}
        svc.batches.record("H1", step.id, values, "alice")
    svc.batches.skip("H1", optional.id, "alice", "normoxic arm", key="s-1")
    assert svc.batches.skip("H1", optional.id, "alice", "normoxic arm", key="s-1").duplicate
    with pytest.raises(Refused, match=r"key 's-1' .* differs in reason"):
        svc.batches.skip("H1", optional.id, "alice", "another reason", key="s-1")


# --- 5. the command line ----------------------------------------------------------------------
@pytest.fixture
def cli(db_path, clock, monkeypatch):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    shell = Shell(lambda db: Services(open_store(db), clock=clock))

    def run(*args: str):
        """A command; one with --as NAME is proven by NAME's password on standard input."""
        proof = ["--password-stdin"] if "--as" in args else []
        return CliRunner().invoke(main, [*args, *proof], input=PASSWORD + "\n", obj=shell)

    return run


def test_cli_opens_an_addendum_and_a_complaint_on_a_released_batch(svc, clock, cli):
    _released(svc, clock)
    clock.advance(days=1)
    args = ["--step", "spin", "--severity", "major", "--reason", "rotor out of balance"]
    dev = cli("deviation", "open", "B1", *args, "--as", "bob")
    assert dev.exit_code == 0, dev.output
    assert dev.output == (
        "Addendum to released batch B1: deviation DEV-0001 opened (major) at spin; "
        "the recorded values and the decision are unchanged.\n"
    )
    complaint = cli("batch", "complaint", "B1", "--reason", "vial 3 cloudy", "--as", "quinn")
    assert complaint.exit_code == 0, complaint.output
    assert complaint.output == (
        "Complaint CMP-0001 opened (major) as an addendum to released batch B1; "
        "investigate and close it like a deviation (CMP-0001).\n"
    )
    shown = cli("deviation", "show", "CMP-0001")
    assert "CMP-0001 (major, complaint, addendum after the decision) in batch B1: open" in (
        shown.output
    )
    early = cli("batch", "complaint", "B1", "--reason", "x", "--severity", "huge", "--as", "quinn")
    assert early.exit_code == 2 and "huge" in early.output


def test_cli_refuses_a_complaint_before_the_decision(svc, clock, cli):
    svc.batches.start(STANDARD, "alice", "B1")
    out = cli("batch", "complaint", "B1", "--reason", "vial 3 cloudy", "--as", "quinn")
    assert out.exit_code == 1
    assert "batch B1 is not released or rejected yet (it is at isolation)" in out.output


def test_cli_release_says_the_review_is_missing_before_any_password(svc, clock, cli):
    _done(svc, clock)
    out = cli("batch", "release", "B1", "--as", "quinn")
    assert out.exit_code == 1
    assert "no review signed: the record must be reviewed once every step is done" in out.output
    assert "Sign the review with `cmprep batch review B1 --sign COMMENT`." in out.output


def test_the_audit_report_counts_a_complaint_under_its_kind_not_a_blank_step(svc, clock):
    _released(svc, clock)
    clock.advance(days=10)
    svc.quality.open_complaint("B1", "major", "quinn", "study 7: vial 3 cloudy")
    by_step = {row["name"]: row["count"] for row in svc.audit.report()["by_step"]}
    assert by_step.get("(complaint)") == 1 and "" not in by_step
