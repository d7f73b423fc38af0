"""Conditional release: fresh CM used before its QC results only under QA's signed
conditional release naming the pending tests; each result closes it or opens a critical
deviation, and the record shows the chain."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import PASSWORD, approve_file, cli_lab, cli_run

from cmprep import events as ev
from cmprep.cli import Shell
from cmprep.domain import conditional, people
from cmprep.domain.signatures import check_signatures
from cmprep.errors import Refused
from cmprep.protocol.loader import ProtocolError

PROTOCOL = """
id: fresh-mini
version: '1.0'
title: Fresh mini
summary: Fresh use before QC under a conditional release.
sources:
  - {id: nasiri2026, citation: "Nasiri N, Hemmati P, Tabaie SM. Conditioned medium. Iran J Basic Med Sci 2026; 29:181-190"}
steps:
  - id: filtration
    title: Filtration
    instructions: Filter.
    parameters:
      - {name: filter_lot, label: Filter lot, type: text}
  - id: use_fresh
    branch: downstream
    use_before_qc: true
    title: Use fresh
    instructions: Hand over at 2-8 C.
    parameters:
      - {name: recipient, label: Received by, type: text}
  - id: concentrate
    branch: downstream
    title: Concentrate
    instructions: Ultrafilter.
    parameters:
      - {name: concentration_factor, label: Concentration factor, source: site choice,
         spec: {min: 2, max: 20}}
  - id: qc
    title: QC
    instructions: Measure.
    parameters:
      - {name: sterility_passed, label: Sterility, type: yes/no, method: sterility,
         spec: {equals: true}, source: site choice, severity: major}
      - {name: endotoxin_passed, label: Endotoxin, type: yes/no, method: endotoxin,
         spec: {equals: true}, source: site choice, required: false}
      - {name: vegf, label: VEGF, unit: pg/mL, method: ELISA, reference: vegf,
         spec: {min: 50}, source: site choice}
      - {name: il6, label: IL-6, unit: pg/mL, method: ELISA, reference: il6, required: false}
"""
QC_GOOD = {"sterility_passed": "yes", "endotoxin_passed": "yes", "vegf": "300 pg/mL"}
PENDING = ["qc.sterility_passed", "qc.endotoxin_passed", "qc.vegf"]


@pytest.fixture
def proto(svc, tmp_path):
    path = tmp_path / "fresh-mini.yaml"
    path.write_text(PROTOCOL)
    return approve_file(svc, path)


def filtered(svc, clock, proto, batch_id="B1"):
    svc.batches.start(proto, "alice", batch_id)
    clock.advance(hours=1)
    svc.batches.record(batch_id, "filtration", {"filter_lot": "F-1"}, "alice")
    clock.advance(minutes=10)


def released_conditionally(svc, clock, proto, batch_id="B1", **kw):
    filtered(svc, clock, proto, batch_id)
    out = svc.quality.conditional_release(batch_id, "quinn", PASSWORD, "study 7 needs it", **kw)
    clock.advance(minutes=10)
    svc.batches.record(batch_id, "use_fresh", {"recipient": "study 7"}, "alice")
    clock.advance(hours=48)
    return out


# --- without a conditional release, QC and release come before use -------------------------
def test_fresh_use_is_refused_without_a_conditional_release(svc, clock, proto):
    filtered(svc, clock, proto)
    with pytest.raises(Refused) as err:
        svc.batches.record("B1", "use_fresh", {"recipient": "study 7"}, "alice")
    assert str(err.value).startswith(
        "Use fresh: the product would be used before its QC results (qc) and its release, "
        "and batch B1 has no conditional release."
    )
    assert err.value.hint.kind == "conditional_release" and err.value.hint.data == {"batch": "B1"}
    assert svc.batches.batch("B1").steps["use_fresh"].status == "due"  # nothing written
    # another arm is not used before QC: recorded as ever
    svc.batches.record("B1", "concentrate", {"concentration_factor": "10"}, "alice")


# --- the chain: signed, used, each result ----------------------------------------------------
def test_results_in_spec_close_the_conditional_release_and_the_record_shows_the_chain(
    svc, clock, proto
):
    out = released_conditionally(svc, clock, proto)
    event = out.batch.events[-1]
    assert event.type == ev.BATCH_CONDITIONALLY_RELEASED and event.actor == "quinn"
    assert [f"{t['step']}.{t['parameter']}" for t in event.payload["pending"]] == PENDING
    assert event.payload["signature"]["meaning"] == "conditionally released"
    chain = conditional.chain(svc.batches.batch("B1"))
    assert chain.status == "open" and chain.used_by == "alice"
    assert [t.status for t in chain.tests] == ["pending"] * 3
    result = svc.batches.record("B1", "qc", QC_GOOD, "alice")
    assert result.deviations == []
    chain = conditional.chain(result.batch)
    assert chain.status == "closed" and [t.status for t in chain.tests] == ["in spec"] * 3
    lines = conditional.describe(chain)
    assert lines[0].startswith(
        "conditionally released by Quinn Quality (quinn) at 2026-11-02T09:10:00Z; pending: "
        "Sterility, Endotoxin, VEGF (study 7 needs it)"
    )
    assert lines[1] == "used at use_fresh by alice at 2026-11-02T09:20:00Z"
    assert lines[-1] == "conditional release closed: every pending result in spec"
    html = svc.documents.record("B1")
    assert "<h2>Conditional release</h2>" in html and "Sterility = yes in spec at" in html
    assert "## Conditional release" in svc.documents.record("B1", "md")
    # and the batch is then reviewed and released as any other
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed")
    assert svc.quality.release("B1", "quentin", PASSWORD).batch.state == "released"
    assert svc.audit.verify("B1")[1] == []  # the new signature checks out


def test_a_pending_result_out_of_spec_opens_a_critical_deviation(svc, clock, proto):
    released_conditionally(svc, clock, proto)
    out = svc.batches.record(
        "B1", "qc", {**QC_GOOD, "sterility_passed": "no", "vegf": "20 pg/mL"}, "alice"
    )
    devs = {d["parameter"]: d for d in out.deviations}
    assert {p: d["severity"] for p, d in devs.items()} == {
        "sterility_passed": "critical",  # major in the protocol: the product is in use
        "vegf": "critical",
    }
    assert (
        "the product is already in use under the conditional release signed by quinn"
        in (devs["vegf"]["message"])
    )
    chain = conditional.chain(out.batch)
    assert chain.status == "failed"
    assert conditional.describe(chain)[2] == (
        f"Sterility = no OUT OF SPEC at {chain.tests[0].at}: critical "
        f"{devs['sterility_passed']['deviation_id']}"
    )


def test_a_correction_of_a_pending_result_out_of_spec_is_critical_too(svc, clock, proto):
    released_conditionally(svc, clock, proto)
    svc.batches.record("B1", "qc", QC_GOOD, "alice")
    out = svc.batches.correct("B1", "qc", {"vegf": "10 pg/mL"}, "alice", "re-read the plate")
    assert [d["severity"] for d in out.deviations] == ["critical"]


def test_release_waits_for_a_pending_result_not_entered(svc, clock, proto):
    released_conditionally(svc, clock, proto)
    values = {k: v for k, v in QC_GOOD.items() if k != "endotoxin_passed"}  # optional
    svc.batches.record("B1", "qc", values, "alice")
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed")
    with pytest.raises(Refused) as err:
        svc.quality.release("B1", "quentin", PASSWORD)
    assert "the conditional release by quinn still waits for: qc.endotoxin_passed" in (
        err.value.problems
    )


# --- every way a conditional release is refused ----------------------------------------------
def test_only_qa_signs_a_conditional_release(svc, clock, proto):
    filtered(svc, clock, proto)
    with pytest.raises(Refused, match="alice is technician; to release one must be: qa"):
        svc.quality.conditional_release("B1", "alice", PASSWORD, "need")


def test_a_conditional_release_needs_the_right_password(svc, clock, proto):
    filtered(svc, clock, proto)
    with pytest.raises(Refused):
        svc.quality.conditional_release("B1", "quinn", "wrong password", "need")
    assert conditional.chain(svc.batches.batch("B1")) is None


def test_a_conditional_release_needs_a_reason(svc, clock, proto):
    filtered(svc, clock, proto)
    with pytest.raises(Refused, match="reason"):
        svc.quality.conditional_release("B1", "quinn", PASSWORD, "  ")


def test_a_conditional_release_is_refused_with_everything_in_its_way(svc, clock, proto):
    svc.batches.start(proto, "alice", "B1")
    svc.quality.open_deviation("B1", "filtration", "major", "alice", "filter wet")
    svc.batches.hold("B1", "alice", "waiting for the filter")
    with pytest.raises(Refused) as err:
        svc.quality.conditional_release("B1", "quinn", PASSWORD, "need")
    assert str(err.value).startswith("batch B1 cannot be conditionally released:")
    assert err.value.problems == [
        "the batch is on hold",
        "use_fresh is not due yet: steps not done before it: filtration",
        "deviation DEV-0001 (major) is open, not closed",
    ]


def test_a_reviewer_cannot_conditionally_release(svc, clock, proto):
    filtered(svc, clock, proto)
    with pytest.raises(Refused, match="rita is reviewer; to release one must be: qa"):
        svc.quality.conditional_release("B1", "rita", PASSWORD, "need")


def test_a_batch_takes_one_conditional_release_and_only_before_use(svc, clock, proto):
    released_conditionally(svc, clock, proto)
    with pytest.raises(Refused, match="already conditionally released by quinn"):
        svc.quality.conditional_release("B1", "quentin", PASSWORD, "again")
    filtered(svc, clock, proto, "B2")
    svc.batches.record("B2", "concentrate", {"concentration_factor": "10"}, "alice")
    with pytest.raises(Refused) as err:
        svc.quality.conditional_release("B2", "quinn", PASSWORD, "need")
    assert err.value.problems == ["use_fresh was not taken: the batch took another arm"]


def test_a_released_batch_takes_no_conditional_release(svc, clock, proto):
    filtered(svc, clock, proto)
    svc.batches.record("B1", "concentrate", {"concentration_factor": "10"}, "alice")
    svc.batches.record("B1", "qc", QC_GOOD, "alice")
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed")
    svc.quality.release("B1", "quinn", PASSWORD)
    with pytest.raises(Refused, match="batch B1 is released; it takes no more entries"):
        svc.quality.conditional_release("B1", "quinn", PASSWORD, "late")


def test_a_protocol_without_a_use_step_has_no_conditional_release(svc, clock, tmp_path):
    path = tmp_path / "no-fresh.yaml"
    path.write_text(
        PROTOCOL.replace("    use_before_qc: true\n", "").replace("fresh-mini", "no-fresh"),
        encoding="utf-8",
    )
    approve_file(svc, path)
    svc.batches.start("no-fresh", "alice", "S1")
    with pytest.raises(Refused, match="has no step that uses the product before QC"):
        svc.quality.conditional_release("S1", "quinn", PASSWORD, "need")


@pytest.mark.parametrize(
    ("pending", "problems"),
    [
        (
            ["sterility_passed", "tnf"],
            [
                "'tnf' is not a release test after use_fresh (a QC result with a spec)",
                "every release test after the use is pending and must be named; missing: "
                "qc.endotoxin_passed, qc.vegf",
            ],
        ),
        (
            ["il6", *PENDING],
            ["'il6' is not a release test after use_fresh (a QC result with a spec)"],
        ),
    ],
)
def test_the_pending_tests_named_must_be_the_release_tests(svc, clock, proto, pending, problems):
    filtered(svc, clock, proto)
    with pytest.raises(Refused) as err:
        svc.quality.conditional_release("B1", "quinn", PASSWORD, "need", pending)
    assert str(err.value).startswith("the pending tests are not right; release tests: ")
    assert err.value.problems == problems


def test_the_pending_tests_may_be_named_by_name_or_step_and_name(svc, clock, proto):
    out = released_conditionally(
        svc, clock, proto, pending=["sterility_passed", "qc.endotoxin_passed", "vegf"]
    )
    assert [f"{t['step']}.{t['parameter']}" for t in out.batch.events[-1].payload["pending"]] == (
        PENDING
    )


def test_a_changed_pending_list_no_longer_matches_its_signature(svc, clock, proto):
    """A forgery that edits the pending list and recomputes every hash still fails: the
    signature's content hash covers the list, and its seal covers the content hash."""
    released_conditionally(svc, clock, proto)
    events = svc.batches.batch("B1").events
    signed = next(e for e in events if e.type == ev.BATCH_CONDITIONALLY_RELEASED)
    forged = dataclasses.replace(
        signed, payload={**signed.payload, "pending": signed.payload["pending"][:1]}
    )
    ring = people.key_ring(svc.store.events(people.USERS_STREAM))
    assert check_signatures(events, ring) == []  # as written, it holds
    problems = check_signatures([forged if e is signed else e for e in events], ring)
    assert (signed.seq, "conditionally released signature does not match the content it signs") in (
        problems
    )


def test_use_before_qc_needs_a_release_test_after_it(tmp_path):
    from cmprep.protocol.loader import load_file

    text = PROTOCOL.replace("spec: {equals: true}, source: site choice, severity: major}",
                            "source: site choice, severity: major}")  # fmt: skip
    text = text.replace(
        "spec: {equals: true}, source: site choice, required: false}",
        "source: site choice, required: false}",
    ).replace("spec: {min: 50}, source: site choice}", "source: site choice}")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProtocolError) as err:
        load_file(path)
    assert any(
        "step use_fresh is used before QC, but no step after it has a release test" in p
        for p in err.value.problems
    )


def test_the_audit_trail_says_it_in_words(svc, clock, proto):
    released_conditionally(svc, clock, proto)
    rows = svc.audit.trail("B1")
    [row] = [r for r in rows if r["type"] == ev.BATCH_CONDITIONALLY_RELEASED]
    assert row["what"] == "conditionally released for use before QC"
    assert row["new"] == "pending: " + ", ".join(PENDING)
    assert row["signature"].startswith("conditionally released by Quinn Quality at ")


# --- the command line ------------------------------------------------------------------------
SHELL: list[Shell] = [Shell()]


@pytest.fixture
def cli_svc(db_path, monkeypatch, clock, tmp_path):
    path = tmp_path / "fresh-mini.yaml"
    path.write_text(PROTOCOL)
    svc, proto, SHELL[0] = cli_lab(db_path, monkeypatch, clock, path)
    return svc, proto


def run(*args: str, given: str | None = None):
    return cli_run(SHELL[0], *args, given=given)


def test_the_command_line_refuses_fresh_use_then_takes_a_conditional_release(cli_svc, clock):
    svc, proto = cli_svc
    filtered(svc, clock, proto)
    refused = run("batch", "record", "B1", "use_fresh", "recipient=study 7")
    assert refused.exit_code == 1
    assert "has no conditional release" in refused.output
    assert "cmprep qc conditional-release B1 --reason" in refused.output  # the hint
    wrong = run("qc", "conditional-release", "B1", "--reason", "need", "--pending", "tnf",
                "--as", "quinn", "--password-stdin", given=PASSWORD + "\n")  # fmt: skip
    assert wrong.exit_code == 1 and "'tnf' is not a release test" in wrong.output
    done = run("qc", "conditional-release", "B1", "--reason", "study 7 needs it",
               "--as", "quinn", "--password-stdin", given=PASSWORD + "\n")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (
        "Batch B1 conditionally released by quinn; pending: qc.sterility_passed, "
        "qc.endotoxin_passed, qc.vegf." in done.output
    )
    assert run("batch", "record", "B1", "use_fresh", "recipient=study 7").exit_code == 0
    status = run("batch", "status", "B1")
    assert "Conditional release:" in status.output
    assert "used at use_fresh by alice" in status.output
    assert "Sterility: pending" in status.output
