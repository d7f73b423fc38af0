"""QA's side of a batch: second-person verification, the deviation lifecycle, review,
release and rejection, and the addenda (deviations and complaints) after the decision.

Each act that carries meaning is signed at that moment with the signer's password; the
signature holds a hash of exactly what it signs (see domain/signatures.py).

Release rules: a batch is released only with a review ("reviewed") signed once every step
was done and still counting (nothing recorded, corrected or opened after it), and with no
deviation of its own closed as rejected (such a batch can only be rejected). After the
decision the record's values and state are fixed; a deviation found late or a complaint
is added as an addendum, with its own investigation and closure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cmprep import events as ev
from cmprep.domain import conditional, ids
from cmprep.domain.audit import describe
from cmprep.domain.batch import Batch, Deviation
from cmprep.domain.clock import iso
from cmprep.domain.pipeline import AWAITING_REVIEW
from cmprep.domain.signatures import conditional_content, deviation_content, step_content
from cmprep.errors import Hint, NotFound, Refused
from cmprep.events import NewEvent
from cmprep.protocol.models import Severity, Step
from cmprep.render.models import DeviationView
from cmprep.service.access import Gate, reason_text
from cmprep.service.batches import step_of, writable
from cmprep.service.context import NEAR_IDS, Context, Outcome, project
from cmprep.service.views import deviation as deviation_view
from cmprep.store.query import DeviationFilter

if TYPE_CHECKING:
    from cmprep.render.models import ReviewView

DECISIONS = ("accepted", "rejected")


class QualityService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    # --- second-person verification -------------------------------------------------------
    def verify_step(self, batch_id: str, step_id: str, actor: str, password: str | None) -> Outcome:
        actor = self.gate.person(actor, "verify")
        batch = self.ctx.batch(batch_id)
        writable(batch)
        step = step_of(batch, step_id)
        entry = batch.steps[step.id]
        if not (step.verify or any(p.verify for p in step.parameters)):
            raise Refused(f"{step.title} does not need verification in {batch.protocol.id}")
        if entry.status != "done":
            raise Refused(f"{step.title} is {entry.status}; it can be verified once it is recorded")
        performers = {
            e.actor
            for e in batch.events
            if e.type in (ev.STEP_RECORDED, ev.VALUE_CORRECTED) and e.payload.get("step") == step.id
        }
        if actor in performers:
            self.gate.refuse(
                actor,
                "verify",
                f"{actor} recorded or corrected {step.id}; a different person must verify it",
            )
        if entry.verified:
            raise Refused(f"{step.title} is already verified and unchanged since")
        user = self.gate.authenticate(actor, password, "verified")
        now = self.ctx.clock()
        sig = self.gate.signature(
            "verified",
            user,
            now,
            {"kind": "step", "id": step.id},
            step_content(batch.events, step.id),
        )
        return self.ctx.write(
            batch.id,
            batch.seq,
            [NewEvent(ev.STEP_VERIFIED, actor, {"step": step.id, "signature": sig})],
            now,
            batch,
        )

    def deviations(self, where: DeviationFilter | None = None) -> list[dict[str, Any]]:
        return self.ctx.store.deviation_rows(where or DeviationFilter())

    # --- deviations ------------------------------------------------------------------------
    def open_deviation(
        self, batch_id: str, step_id: str, severity: str, actor: str, reason: str
    ) -> Outcome:
        """A deviation opened by hand: a dropped flask, an incubator alarm. On a released or
        rejected batch it is an addendum: the record keeps its values and its decision."""
        actor, reason = self.gate.person(actor, "open deviation"), reason_text(reason)
        batch = self.ctx.batch(batch_id)
        step = step_of(batch, step_id)
        fields = {"step": step.id, "parameter": None, "value": "", "spec": "", "kind": "manual"}
        return self._open(batch, "deviation", "DEV", fields, severity, actor, reason)

    def open_complaint(self, batch_id: str, severity: str, actor: str, reason: str) -> Outcome:
        """A complaint about a released (or rejected) batch, added to its record as an
        addendum and taken through the deviation lifecycle (investigated, then closed)."""
        actor, reason = self.gate.person(actor, "open deviation"), reason_text(reason)
        batch = self.ctx.batch(batch_id)
        if not batch.is_final:
            raise Refused(
                f"batch {batch.id} is not released or rejected yet (it is at {batch.state}); "
                "a problem found before the decision is a deviation at its step"
            )
        fields = {"step": "", "parameter": None, "value": "", "spec": "", "kind": "complaint"}
        return self._open(batch, "complaint", "CMP", fields, severity, actor, reason)

    def _open(
        self,
        batch: Batch,
        counter: str,
        prefix: str,
        fields: dict[str, Any],
        severity: str,
        actor: str,
        reason: str,
    ) -> Outcome:
        """Write one deviation_opened event, numbered from COUNTER; an addendum when the
        batch is already released or rejected."""
        if severity not in {s.value for s in Severity}:
            raise Refused(f"severity {severity!r} is not one of: minor, major, critical")
        now = self.ctx.clock()
        with self.ctx.store.writing(batch.id, batch.seq) as unit:
            number = unit.next_number(counter)
            dev = {
                "deviation_id": f"{prefix}-{number:04d}",
                **fields,
                "severity": severity,
                "message": reason,
                **({"addendum": True} if batch.is_final else {}),
            }
            written = unit.append(
                [NewEvent(ev.DEVIATION_OPENED, actor, dev, reason=reason)], iso(now)
            )
            result = project(unit, batch, written)
        return Outcome(batch=result, deviations=[dev], written=1)

    def deviation(self, deviation_id: str) -> tuple[Batch, Deviation]:
        rows = self.ctx.store.deviation_rows(DeviationFilter(deviation_id=deviation_id.upper()))
        if not rows:
            near = self.ctx.store.ids_near("deviation", deviation_id, NEAR_IDS)
            raise NotFound(
                f"no deviation {deviation_id!r}{ids.suggestion(deviation_id, near)}",
                hint=Hint("list_deviations"),
            )
        batch = self.ctx.batch(rows[0]["batch_id"])
        return batch, batch.deviations[rows[0]["deviation_id"]]

    def deviation_view(self, deviation_id: str) -> DeviationView:
        """A deviation with its whole history in words, as `deviation show` prints it."""
        batch, dev = self.deviation(deviation_id)
        seqs = {h["seq"] for h in dev.history}
        history = [describe(e) for e in batch.events if e.seq in seqs]
        return deviation_view(dev, history)

    def investigate(
        self, deviation_id: str, actor: str, justification: str, impact: str | None = None
    ) -> Outcome:
        actor, justification = self.gate.person(actor, "investigate"), reason_text(justification)
        batch, dev = self.deviation(deviation_id)
        writable(batch, addendum=dev.addendum)
        if dev.status == "closed":
            raise Refused(
                f"{dev.id} is closed ({dev.closure['decision'] if dev.closure else ''}); "
                "it takes no more investigation"
            )
        payload = {
            "deviation_id": dev.id,
            "impact": impact.strip() if impact and impact.strip() else None,
        }
        new = [NewEvent(ev.DEVIATION_INVESTIGATED, actor, payload, reason=justification)]
        return self.ctx.write(batch.id, batch.seq, new, self.ctx.clock(), batch)

    def close_deviation(
        self,
        deviation_id: str,
        actor: str,
        password: str | None,
        decision: str,
        reason: str,
        *,
        capa: str | None = None,
        severity: str | None = None,
        severity_reason: str | None = None,
    ) -> Outcome:
        actor, reason = self.gate.person(actor, "close deviation"), reason_text(reason)
        batch, dev = self.deviation(deviation_id)
        writable(batch, addendum=dev.addendum)
        if decision not in DECISIONS:
            raise Refused(f"decision {decision!r} is not one of: {', '.join(DECISIONS)}")
        if dev.status == "closed":
            raise Refused(f"{dev.id} is already closed")
        if dev.status != "investigated":
            raise Refused(
                f"{dev.id} has not been investigated; add the justification first",
                hint=Hint("investigate_deviation", deviation=dev.id),
            )
        involved = {dev.opened_by, (dev.investigation or {}).get("by")} | {
            e.actor
            for e in batch.events
            if e.payload.get("step") == dev.step
            and e.type in (ev.STEP_RECORDED, ev.VALUE_CORRECTED)
        }
        if actor in involved:
            self.gate.refuse(
                actor,
                "close deviation",
                f"{actor} opened, investigated or performed {dev.id}'s step; "
                "someone independent must decide it",
            )
        if severity is not None:
            if severity not in {s.value for s in Severity}:
                raise Refused(f"severity {severity!r} is not one of: minor, major, critical")
            if severity == dev.severity:
                severity = None
            elif not severity_reason or not severity_reason.strip():
                raise Refused("changing the severity needs a reason for the change")
        user = self.gate.authenticate(
            actor, password, "approved" if decision == "accepted" else "rejected"
        )
        now = self.ctx.clock()
        meaning = "approved" if decision == "accepted" else "rejected"
        sig = self.gate.signature(
            meaning,
            user,
            now,
            {"kind": "deviation", "id": dev.id},
            deviation_content(batch.events, dev.id),
        )
        payload: dict[str, Any] = {"deviation_id": dev.id, "decision": decision, "signature": sig}
        if capa:
            payload["capa"] = capa.strip()
        if severity:
            payload["severity"] = severity
            payload["severity_reason"] = severity_reason.strip() if severity_reason else None
        return self.ctx.write(
            batch.id,
            batch.seq,
            [NewEvent(ev.DEVIATION_CLOSED, actor, payload, reason=reason)],
            now,
            batch,
        )

    # --- review and release ----------------------------------------------------------------
    def release_blockers(self, batch: Batch, actor: str | None = None) -> list[str]:
        """Everything that stands between this batch and its release, in plain words."""
        blockers: list[str] = []
        if batch.is_final:
            return [f"the batch is already {batch.state}"]
        if batch.on_hold:
            blockers.append("the batch is on hold")
        if batch.active_state != AWAITING_REVIEW:
            blockers.append("steps not done: " + ", ".join(steps_left(batch)))
        for d in batch.rejected_deviations():
            blockers.append(
                f"deviation {d.id} ({d.severity}) was closed as rejected by "
                f"{(d.closure or {}).get('by')}; the batch cannot be released, only rejected"
            )
        for d in batch.open_deviations():
            blockers.append(f"deviation {d.id} ({d.severity}) is {d.status}, not closed")
        for entry in batch.missing_verifications():
            why = " (changed after it was verified)" if entry.verifications else ""
            blockers.append(f"step {entry.step.id} needs second-person verification{why}")
        if (problem := review_problem(batch)) is not None:
            blockers.append(problem)
        if (found := conditional.chain(batch)) is not None and found.pending():
            blockers.append(
                f"the conditional release by {found.by} still waits for: "
                + ", ".join(t.ref for t in found.pending())
            )
        if actor is not None:
            users = self.gate.users()
            user = users.get(actor)
            if user is None or user.role.value != "qa":
                blockers.append(f"{actor} is not QA; only the qa role releases")
            if actor in batch.performers():
                blockers.append(
                    f"{actor} performed steps of this batch; "
                    "release needs someone who performed none"
                )
        return blockers

    def review_report(self, batch_id: str) -> ReviewView:
        """Review by exception: only what a reviewer must look at."""
        from cmprep.service.views import review

        b = self.ctx.batch(batch_id)
        return review(b, self.release_blockers(b))

    def sign_review(self, batch_id: str, actor: str, password: str | None, comment: str) -> Outcome:
        actor, comment = self.gate.person(actor, "review"), reason_text(comment, "a comment")
        batch = self.ctx.batch(batch_id)
        writable(batch)
        if actor in batch.performers():
            self.gate.refuse(
                actor,
                "review",
                f"{actor} performed steps of {batch.id}; the review must be independent",
            )
        if batch.active_state != AWAITING_REVIEW:
            left = steps_left(batch)
            raise Refused(
                f"batch {batch.id} cannot be reviewed yet: steps not done: {', '.join(left)}; "
                "the review is signed once every step is done",
                hint=Hint("record_step", batch=batch.id, due=",".join(s.id for s in batch.due())),
            )
        return self._sign_batch(batch, actor, password, "reviewed", ev.BATCH_REVIEWED, comment)

    def release(
        self, batch_id: str, actor: str, password: str | None, reason: str | None = None
    ) -> Outcome:
        actor = self.gate.person(actor, "release")
        batch = self.ctx.batch(batch_id)
        writable(batch)
        blockers = self.release_blockers(batch, actor)
        if blockers:
            if any("performed steps" in b for b in blockers):
                self.gate.log_refusal(actor, "release", "performed steps of the batch")
            raise Refused(
                f"batch {batch.id} cannot be released:", blockers, hint=release_hint(batch)
            )
        return self._sign_batch(batch, actor, password, "released", ev.BATCH_RELEASED, reason)

    def conditional_release(
        self,
        batch_id: str,
        actor: str,
        password: str | None,
        reason: str,
        pending: list[str] | None = None,
    ) -> Outcome:
        """QA lets fresh product be used before its QC results: a signed conditional release
        naming the pending tests (every release test after the use step; PENDING, if given,
        must name exactly those, as ``name`` or ``step.name``). The use step is then
        recorded; each pending result closes it (in spec) or opens a critical deviation."""
        batch, tests = self.conditional_plan(batch_id, actor, reason, pending)
        user = self.gate.authenticate(actor, password, conditional.MEANING)
        now = self.ctx.clock()
        subject = {"kind": conditional.SUBJECT, "id": batch.id}
        content = conditional_content(batch.head_hash, tests)
        sig = self.gate.signature(conditional.MEANING, user, now, subject, content)
        use = conditional.use_step(batch.protocol.steps)
        payload = {"pending": tests, "use_step": use.id if use else "", "signature": sig}
        new = [NewEvent(ev.BATCH_CONDITIONALLY_RELEASED, actor, payload, reason=reason)]
        return self.ctx.write(batch.id, batch.seq, new, now, batch)

    def conditional_plan(
        self, batch_id: str, actor: str, reason: str, pending: list[str] | None = None
    ) -> tuple[Batch, list[dict[str, str]]]:
        """The batch and the pending tests a conditional release would name, or Refused
        with everything that stands in its way; nothing is signed or written (a shell asks
        this before it asks for a password)."""
        actor, reason = self.gate.person(actor, "release"), reason_text(reason)
        batch = self.ctx.batch(batch_id)
        writable(batch)
        use = conditional.use_step(batch.protocol.steps)
        if use is None:
            raise Refused(
                f"protocol {batch.protocol.id} has no step that uses the product before QC "
                "(use_before_qc); its batches are used after QC and release"
            )
        if (found := conditional.chain(batch)) is not None:
            raise Refused(
                f"batch {batch.id} was already conditionally released by {found.by} at "
                f"{found.at}; a batch takes one conditional release"
            )
        tests = pending_tests(batch, use, pending)
        blockers = self.conditional_blockers(batch, use, actor)
        if blockers:
            if any("performed steps" in b for b in blockers):
                self.gate.log_refusal(actor, "conditional release", "performed steps")
            due = [s.id for s in batch.due()]
            hint = None
            if batch.steps[use.id].status in ("pending", "due") and due and use.id not in due:
                hint = Hint("record_step", batch=batch.id, due=",".join(due))
            raise Refused(
                f"batch {batch.id} cannot be conditionally released:", blockers, hint=hint
            )
        return batch, tests

    def conditional_blockers(self, batch: Batch, use: Step, actor: str) -> list[str]:
        """What stands between the batch and a conditional release for USE, in words."""
        blockers: list[str] = []
        if batch.on_hold:
            blockers.append("the batch is on hold")
        status = batch.steps[use.id].status
        if status == "done":
            blockers.append(f"{use.id} is already recorded; a conditional release comes before use")
        elif status == "not taken":
            blockers.append(f"{use.id} was not taken: the batch took another arm")
        elif use.id not in {s.id for s in batch.due()}:
            steps = batch.protocol.steps
            before = [
                s.id
                for s in steps[: steps.index(use)]
                if batch.steps[s.id].status in ("due", "pending") and not _arm_of(batch, s.id, use)
            ]
            blockers.append(
                f"{use.id} is not due yet: steps not done before it: {', '.join(before)}"
            )
        for d in batch.rejected_deviations():
            blockers.append(f"deviation {d.id} ({d.severity}) was closed as rejected")
        for d in batch.open_deviations():
            blockers.append(f"deviation {d.id} ({d.severity}) is {d.status}, not closed")
        for entry in batch.missing_verifications():
            blockers.append(f"step {entry.step.id} needs second-person verification")
        user = self.gate.users().get(actor)
        if user is None or user.role.value != "qa":
            blockers.append(f"{actor} is not QA; only the qa role releases")
        if actor in batch.performers():
            blockers.append(
                f"{actor} performed steps of this batch; a conditional release needs "
                "someone who performed none"
            )
        return blockers

    def reject(self, batch_id: str, actor: str, password: str | None, reason: str) -> Outcome:
        actor, reason = self.gate.person(actor, "reject"), reason_text(reason)
        batch = self.ctx.batch(batch_id)
        writable(batch)
        return self._sign_batch(batch, actor, password, "rejected", ev.BATCH_REJECTED, reason)

    def _sign_batch(
        self,
        batch: Batch,
        actor: str,
        password: str | None,
        meaning: str,
        kind: str,
        why: str | None,
    ) -> Outcome:
        """A signed act on the whole batch: the signature binds the chain head it saw."""
        user = self.gate.authenticate(actor, password, meaning)
        now = self.ctx.clock()
        subject = {"kind": "batch", "id": batch.id}
        sig = self.gate.signature(meaning, user, now, subject, batch.head_hash)
        new = [NewEvent(kind, actor, {"signature": sig}, reason=why)]
        return self.ctx.write(batch.id, batch.seq, new, now, batch)


# --- release rules, in words ----------------------------------------------------------------
def _arm_of(batch: Batch, step_id: str, use: Step) -> bool:
    """Whether STEP_ID is another arm of USE's branch (not a step before it)."""
    step = batch.protocol.step(step_id)
    return bool(step and use.branch and step.branch == use.branch)


def pending_tests(batch: Batch, use: Step, named: list[str] | None) -> list[dict[str, str]]:
    """The tests a conditional release for USE names as pending: every release test after
    it (a method and a spec), in protocol order. NAMED, when given, must be exactly those:
    a test left out would be unknown at use all the same."""
    tests = conditional.release_tests(batch.protocol.steps, use)
    if not tests:
        raise Refused(f"no release test follows {use.id} in {batch.protocol.id}")
    every = [f"{s.id}.{p.name}" for s, p in tests]
    if named:
        refs, unknown = set(), []
        for name in (n.strip() for n in named if n.strip()):
            match = [r for r in every if name in (r, r.split(".", 1)[1])]
            if not match:
                unknown.append(name)
            refs.update(match)
        problems = [
            f"{name!r} is not a release test after {use.id} (a QC result with a spec)"
            for name in unknown
        ]
        missing = [r for r in every if r not in refs]
        if missing:
            problems.append(
                "every release test after the use is pending and must be named; missing: "
                + ", ".join(missing)
            )
        if problems:
            raise Refused(
                "the pending tests are not right; release tests: " + ", ".join(every), problems
            )
    return [{"step": s.id, "parameter": p.name} for s, p in tests]


def steps_left(batch: Batch) -> list[str]:
    """The steps not yet done, skipped or not taken, in protocol order; a branch not yet
    chosen is one entry naming its arms ("downstream (one of use_fresh, concentrate)"):
    one arm is done, the others are then not taken, never all of them."""
    left: list[str] = []
    for s in batch.steps.values():
        if s.status not in ("due", "pending"):
            continue
        branch = s.step.branch
        if not branch:
            left.append(s.step.id)
        elif not any(x.startswith(f"{branch} (") for x in left):
            arms = [e.step.id for e in batch.steps.values() if e.step.branch == branch]
            left.append(f"{branch} (one of {', '.join(arms)})")
    return left


def review_problem(batch: Batch) -> str | None:
    """Why the batch has no review that counts for release, or None when it has one."""
    if batch.review is not None:
        return None
    if not batch.reviews:
        return "no review signed: the record must be reviewed once every step is done"
    last = batch.reviews[-1]
    signed = f"the review by {last.by} at {last.at}"
    if not last.complete:
        return f"{signed} was signed before every step was done; the record must be reviewed again"
    if (e := last.voided_by) is not None:
        p = e.payload
        what = {
            ev.STEP_RECORDED: f"recorded {p.get('step')}",
            ev.STEP_SKIPPED: f"skipped {p.get('step')}",
            ev.VALUE_CORRECTED: f"corrected {p.get('step')}.{p.get('parameter')}",
            ev.DEVIATION_OPENED: f"opened {p.get('deviation_id')}",
        }.get(e.type, e.type.replace("_", " "))
        return (
            f"{signed} no longer counts: {e.actor} {what} at {e.recorded_at}, after it "
            f"(event {e.seq}); the record must be reviewed again"
        )
    return None


def release_hint(batch: Batch) -> Hint | None:
    """The one next step a refused release points to: only rejection is left when a
    deviation was rejected; the steps first; then the review."""
    if batch.rejected_deviations():
        return Hint("reject_batch", batch=batch.id)
    if batch.active_state != AWAITING_REVIEW:
        return Hint("record_step", batch=batch.id, due=",".join(s.id for s in batch.due()))
    if batch.review is None and not batch.open_deviations() and not batch.missing_verifications():
        return Hint("sign_review", batch=batch.id)
    return None
