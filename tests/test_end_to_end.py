"""Every bundled protocol, every downstream arm: a whole batch from start to release."""

from __future__ import annotations

import pytest
from conftest import PASSWORD

from cmprep.demo import in_spec_value
from cmprep.protocol.library import protocol_files

PROTOCOLS = [p.stem for p in protocol_files()]
ARMS = ["use_fresh", "concentrate", "lyophilise"]


@pytest.mark.parametrize("arm", ARMS)
@pytest.mark.parametrize("protocol_id", PROTOCOLS)
def test_a_whole_batch_runs_to_release_without_a_deviation(svc, clock, protocol_id, arm):
    out = svc.batches.start(protocol_id, "alice", "E2E")
    batch = out.batch
    for stage in batch.pipeline.stages:
        step = next((s for s in stage if s.id == arm), stage[0])
        clock.advance(hours=48 if step.id == "collection" else 1)
        if step.use_before_qc:  # fresh use before QC: only under QA's conditional release
            for entry in svc.batches.batch("E2E").missing_verifications():
                svc.quality.verify_step("E2E", entry.step.id, "bob", PASSWORD)
            svc.quality.conditional_release("E2E", "quinn", PASSWORD, "study day 0")
        values = {p.name: in_spec_value(p) for p in step.parameters if p.required}
        out = svc.batches.record("E2E", step.id, values, "alice")
        assert out.deviations == [], (step.id, out.deviations)
    batch = out.batch
    assert batch.state == "awaiting_review"
    assert batch.steps[arm].status == "done"
    assert all(batch.steps[a].status == "not taken" for a in ARMS if a != arm)
    for entry in batch.missing_verifications():
        svc.quality.verify_step("E2E", entry.step.id, "bob", PASSWORD)
    svc.quality.sign_review("E2E", "rita", PASSWORD, "reviewed by exception")
    released = svc.quality.release("E2E", "quinn", PASSWORD)
    assert released.batch.state == "released"
    html = svc.documents.record("E2E", "html")
    assert all(s.title.split("(")[0].strip()[:20] in html for s in batch.protocol.steps)
    assert "Quality control" in html
    assert svc.audit.verify("E2E")[1] == []


@pytest.mark.parametrize("protocol_id", PROTOCOLS)
def test_every_bundled_checklist_renders_in_both_text_formats(svc, protocol_id):
    proto = svc.protocols.get(protocol_id)
    for fmt in ("html", "md"):
        text = svc.documents.checklist(protocol_id, fmt)
        assert proto.id in text and proto.steps[-1].title.split("(")[0].strip() in text
