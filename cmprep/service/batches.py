"""Batches at the bench: start one, record its steps in order, skip, correct, hold, resume.

Each write folds the batch, decides with the pure domain, then writes in one transaction
(see ``Context.write``). Lots and instruments named at a step are checked by the materials
service; a trended QC value is checked against the lab's history by the consistency one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from cmprep import events as ev
from cmprep.domain import conditional, derived, ids, routes
from cmprep.domain.batch import Batch
from cmprep.domain.clock import from_iso, iso, parse_time
from cmprep.domain.ids import usable
from cmprep.domain.pipeline import Cursor
from cmprep.domain.signatures import performed_content
from cmprep.domain.validation import Finding, check_entries, check_window
from cmprep.errors import Hint, Refused
from cmprep.events import Event, NewEvent
from cmprep.protocol.models import Step
from cmprep.service.access import Gate, reason_text
from cmprep.service.consistency import ConsistencyService
from cmprep.service.context import Context, Outcome
from cmprep.service.materials import MaterialsService, Trace
from cmprep.store.query import BatchFilter

FUTURE_SKEW = timedelta(minutes=2)


class BatchService:
    def __init__(
        self,
        ctx: Context,
        gate: Gate,
        materials: MaterialsService,
        consistency: ConsistencyService,
    ) -> None:
        self.ctx = ctx
        self.gate = gate
        self.materials = materials
        self.consistency = consistency

    # --- reading --------------------------------------------------------------------------
    def batch(self, batch_id: str) -> Batch:
        return self.ctx.batch(batch_id)

    def batches(self, where: BatchFilter | None = None) -> list[dict[str, Any]]:
        return self.ctx.store.batch_rows(where or BatchFilter())

    # --- writing --------------------------------------------------------------------------
    def start(
        self, protocol_ref: str, actor: str, batch_id: str | None = None, *, key: str | None = None
    ) -> Outcome:
        actor = self.gate.person(actor, "start")
        version = self.ctx.startable(protocol_ref)  # approved in the database, never a file
        protocol, digest = version.protocol, version.content_hash
        command = {"command": "start", "batch": batch_id, "by": actor}
        if key and (done := self._seen(key, {**command, "protocol": digest})):
            return done
        now = self.ctx.clock()
        if batch_id is not None:
            usable(batch_id, "batch id")
            taken = self.ctx.store.ids_near("batch", batch_id, 1)
            if taken and taken[0] != batch_id and ids.key(taken[0]) == ids.key(batch_id):
                raise Refused(
                    f"batch {taken[0]} already exists; ids are the same whatever their case "
                    f"({batch_id} is {taken[0]}): choose another id"
                )
        # the version is stored once in "@protocols": the batch names it by content hash
        payload = {
            "protocol_hash": digest,
            "protocol_id": protocol.id,
            "protocol_version": protocol.version,
        }
        if batch_id is None:
            day = now.astimezone(timezone.utc).strftime("%Y%m%d")
            with self.ctx.store.writing("__counter__", 0) as unit:
                number = unit.next_number(f"batch-{day}")
            batch_id = f"CM-{day}-{number:03d}"
        new = [NewEvent(ev.BATCH_STARTED, actor, payload)]
        return self.ctx.write(batch_id, 0, new, now, None, key=key)

    def record(
        self,
        batch_id: str,
        step_id: str,
        entries: dict[str, str],
        actor: str,
        *,
        note: str | None = None,
        at: str | datetime | None = None,
        password: str | None = None,
        key: str | None = None,
        lots: list[str] | None = None,
        equipment: list[str] | None = None,
        replicates: dict[str, Any] | None = None,
    ) -> Outcome:
        """Record a step. With a password, the performer also signs it ("performed").

        ``lots`` and ``equipment`` name what was used (checked for expiry and calibration);
        ``replicates`` carries QC replicate details from a CSV import.
        """
        actor = self.gate.person(actor, "record")
        command = {
            "command": "record",
            "batch": batch_id,
            "step": step_id,
            "by": actor,
            "values": dict(entries),
            "note": note or "",
            # ids in any case are one id: a retry typed in another case is the same command
            "lots": sorted({ids.key(lot) for lot in lots or []}),
            "equipment": sorted({ids.key(item) for item in equipment or []}),
        }
        if key and (done := self._seen(key, command)):
            return done
        batch = self.ctx.batch(batch_id)
        writable(batch)
        step = step_of(batch, step_id)
        in_order(batch, step, "record")
        if (problem := conditional.use_problem(batch, step)) is not None:
            raise Refused(problem, hint=Hint("conditional_release", batch=batch.id))
        now = self.ctx.clock()
        performed = performed_at(batch, at, now)
        findings, trace = self._check(batch, step, entries, lots or [], equipment or [], performed)
        refused = [f for f in findings if f.refused]
        if refused:
            hint = next((f.hint for f in refused if f.hint), None)
            raise Refused(
                f"{step.title}: nothing was recorded.", [f.message for f in refused], hint=hint
            )
        late = (now - performed) > timedelta(minutes=batch.protocol.late_entry_minutes)
        names = {p.name for p in step.parameters}
        values = {f.parameter: value_payload(f) for f in findings if f.parameter in names}
        window = next((f for f in findings if f.parameter.startswith("time_since_")), None)
        payload: dict[str, Any] = {"step": step.id, "values": values, "late": late, **trace.payload}
        if replicates:
            payload["replicates"] = replicates
        if note:
            payload["note"] = note
        if window:
            payload["window"] = {**value_payload(window), "name": window.parameter}
        if password is not None:
            user = self.gate.authenticate(actor, password, "performed")
            content = performed_content(step.id, values, iso(performed), actor)
            subject = {"kind": "step", "id": step.id}
            payload["signature"] = self.gate.signature("performed", user, now, subject, content)
        new = [NewEvent(ev.STEP_RECORDED, actor, payload, performed_at=iso(performed))]
        return self.ctx.write(batch.id, batch.seq, new, now, batch, findings, step, key=key)

    def _check(
        self,
        batch: Batch,
        step: Step,
        entries: dict[str, str],
        lots: list[str],
        equipment: list[str],
        performed: datetime,
    ) -> tuple[list[Finding], Trace]:
        """Every finding of recording STEP with these entries, lots and instruments at
        PERFORMED: each value's verdict, the lab's trend (Westgard), what was used (expiry,
        calibration, kind), and the time window."""
        trace = self.materials.trace(batch, step, lots, equipment, performed)
        step = routes.routed_step(step, routes.route_of(batch))  # the route's release specs
        findings = check_entries(step, entries, rotor_radius_cm=trace.rotor_radius_cm)
        findings = conditional.escalate(batch, step, routes.noted(batch, step, findings))
        if not any(f.refused for f in findings):
            findings += derived_findings(batch, step, findings)
        if not any(f.refused for f in findings):
            findings += self.consistency.westgard_findings(batch, step, findings)
        findings += trace.findings
        if step.window:
            start = batch.steps[step.window.after]
            if start.performed_at:
                findings.append(
                    check_window(step.window, step.title, from_iso(start.performed_at), performed)
                )
        return findings, trace

    def preview(
        self,
        batch_id: str,
        step_id: str,
        entries: dict[str, str],
        *,
        lots: list[str] | None = None,
        equipment: list[str] | None = None,
    ) -> list[Finding]:
        """What recording the step now would find, writing nothing: the findings ``record``
        would decide from. A shell asks before it saves: every out-of-spec finding is a
        deviation the save opens (a value, an expired lot, an overdue instrument, the
        time window), every refused one a value the save refuses. ENTRIES may be partial
        (a missing value is then among the refusals)."""
        batch = self.ctx.batch(batch_id)
        step = step_of(batch, step_id)
        performed = self.ctx.clock()
        return self._check(batch, step, entries, lots or [], equipment or [], performed)[0]

    def skip(
        self, batch_id: str, step_id: str, actor: str, reason: str, *, key: str | None = None
    ) -> Outcome:
        actor, reason = self.gate.person(actor, "skip"), reason_text(reason)
        command = {"command": "skip", "batch": batch_id, "step": step_id, "by": actor}
        if key and (done := self._seen(key, {**command, "reason": reason})):
            return done
        batch = self.ctx.batch(batch_id)
        writable(batch)
        step = step_of(batch, step_id)
        if not step.optional:
            if step.branch:
                raise Refused(
                    f"{step.title} is an arm of the {step.branch} branch; "
                    "choose one arm by recording it "
                    f"({', '.join(s.id for s in batch.due())}), the others are then not taken"
                )
            raise Refused(
                f"{step.title} is not optional in {batch.protocol.id}; it cannot be skipped"
            )
        in_order(batch, step, "skip")
        new = [NewEvent(ev.STEP_SKIPPED, actor, {"step": step.id}, reason=reason)]
        return self.ctx.write(batch.id, batch.seq, new, self.ctx.clock(), batch, key=key)

    def correct(
        self,
        batch_id: str,
        step_id: str,
        entries: dict[str, str],
        actor: str,
        reason: str,
        *,
        key: str | None = None,
    ) -> Outcome:
        actor, reason = self.gate.person(actor, "correct"), reason_text(reason)
        command = {"command": "correct", "batch": batch_id, "step": step_id, "by": actor}
        if key and (done := self._seen(key, {**command, "values": entries, "reason": reason})):
            return done
        batch = self.ctx.batch(batch_id)
        writable(batch)
        step = step_of(batch, step_id)
        entry = batch.steps[step.id]
        if entry.status != "done":
            raise Refused(
                f"{step.title} has not been recorded ({entry.status}); "
                "record it instead of correcting it"
            )
        if not entries:
            raise Refused("give at least one name=value to correct")
        routed = routes.routed_step(step, routes.route_of(batch))  # the route's release specs
        findings = check_entries(routed, entries, partial=True)
        findings = conditional.escalate(batch, step, routes.noted(batch, step, findings))
        if not any(f.refused for f in findings):
            findings += derived.recomputed(batch, corrected(batch, step, findings))
        refused = [f for f in findings if f.refused]
        if refused:
            raise Refused(f"{step.title}: nothing was corrected.", [f.message for f in refused])
        new: list[NewEvent] = []
        for f in findings:
            entry = batch.steps[f.step or step.id]
            old = entry.values.get(f.parameter)
            if old is not None and old.value == f.value and not f.formula:
                raise Refused(f"{f.parameter} is already {old.display}; nothing to correct")
            payload = {
                "step": entry.step.id,
                "parameter": f.parameter,
                "old": {"value": old.value, "display": old.display} if old else None,
                "new": value_payload(f),
                # computed again because a value it reads was corrected, not typed
                **({"derived": True} if f.formula else {}),
            }
            new.append(NewEvent(ev.VALUE_CORRECTED, actor, payload, reason=reason))
        now = self.ctx.clock()
        return self.ctx.write(batch.id, batch.seq, new, now, batch, findings, step, key=key)

    def confirm_checks(self, batch_id: str, step_id: str, checks: list[str], actor: str) -> Outcome:
        """Tick check items (the `[ ]` lines) of a recorded step, so the record shows who
        ticked each one. An item is named by its text or its number in the step (1 is the
        first); one already ticked keeps its first tick."""
        actor = self.gate.person(actor, "record")
        batch = self.ctx.batch(batch_id)
        writable(batch)
        step = step_of(batch, step_id)
        entry = batch.steps[step.id]
        if entry.status != "done":
            raise Refused(
                f"{step.title} has not been recorded ({entry.status}); record it, then tick "
                "its checks"
            )
        if not step.checks:
            raise Refused(f"{step.title} has no check items to tick")
        named: list[str] = []
        unknown: list[str] = []
        for item in checks:
            text = item.strip()
            if text.isdigit() and 1 <= int(text) <= len(step.checks):
                text = step.checks[int(text) - 1]
            (named if text in step.checks else unknown).append(text)
        if unknown or not named:
            numbered = "; ".join(f"{n}. {c}" for n, c in enumerate(step.checks, 1))
            problems = [f"{u!r} is not a check item of {step.id}" for u in unknown]
            raise Refused(
                f"{step.title}: nothing was ticked.",
                [*problems, f"its check items are: {numbered}"],
            )
        new_ticks = [c for c in step.checks if c in named and c not in entry.checks]
        if not new_ticks:
            raise Refused(f"{step.title}: every check named is already ticked")
        new = [NewEvent(ev.CHECKS_CONFIRMED, actor, {"step": step.id, "checks": new_ticks})]
        return self.ctx.write(batch.id, batch.seq, new, self.ctx.clock(), batch)

    def hold(self, batch_id: str, actor: str, reason: str) -> Outcome:
        actor, reason = self.gate.person(actor, "hold"), reason_text(reason)
        batch = self.ctx.batch(batch_id)
        writable(batch)
        if batch.on_hold:
            raise Refused(
                f"batch {batch.id} is already on hold", hint=Hint("resume_batch", batch=batch.id)
            )
        new = [NewEvent(ev.BATCH_HELD, actor, {}, reason=reason)]
        return self.ctx.write(batch.id, batch.seq, new, self.ctx.clock(), batch)

    def resume(self, batch_id: str, actor: str, reason: str) -> Outcome:
        actor, reason = self.gate.person(actor, "resume"), reason_text(reason)
        batch = self.ctx.batch(batch_id)
        writable(batch)
        if not batch.on_hold:
            raise Refused(f"batch {batch.id} is not on hold")
        new = [NewEvent(ev.BATCH_RESUMED, actor, {}, reason=reason)]
        return self.ctx.write(batch.id, batch.seq, new, self.ctx.clock(), batch)

    def _seen(self, key: str, command: dict[str, Any]) -> Outcome | None:
        """The outcome of a command already saved under this idempotency key, if any.

        A key stands for one command: sent again with the same content it answers "already
        saved"; with other content (another batch, step, value, person...) it is refused, so
        a key reused by mistake never passes off a different entry as saved. The content is
        read back from the events the key wrote, so the store keeps nothing more.
        """
        usable(key, "idempotency key")
        found = self.ctx.store.key_used(key)
        if found is None:
            return None
        stream, first, last = found
        written = [e for e in self.ctx.store.events(stream) if first <= e.seq <= last]
        saved = saved_command(stream, written)
        differ = [
            name
            for name, value in command.items()
            if value is not None
            and (
                ids.key(str(saved.get(name))) != ids.key(str(value))  # a batch id in any case
                if name == "batch"
                else saved.get(name) != value
            )
        ]
        if differ:
            what = f"{saved.get('command', 'a command')} in batch {stream}"
            if saved.get("step"):
                what = f"{saved['command']} of {saved['step']} in batch {stream}"
            raise Refused(
                f"idempotency key {key!r} was already used for another command ({what}, by "
                f"{saved.get('by')}); this one differs in {', '.join(differ)}. Nothing was "
                "written: a new command needs a new key"
            )
        return Outcome(batch=self.ctx.batch(stream), duplicate=True)


# --- rules every batch command shares -------------------------------------------------------
def saved_command(stream: str, written: list[Event]) -> dict[str, Any]:
    """What the command saved under an idempotency key was, read back from its events, in
    the terms each command's ``_seen`` check compares (entries as they were typed)."""
    first = written[0] if written else None
    if first is None:
        return {}
    p = first.payload
    saved: dict[str, Any] = {"batch": stream, "by": first.actor, "step": p.get("step")}
    if first.type == ev.BATCH_STARTED:
        return {**saved, "command": "start", "protocol": p.get("protocol_hash")}
    if first.type == ev.STEP_RECORDED:
        return {
            **saved,
            "command": "record",
            "values": {  # what was typed: a derived value was computed, not sent
                name: v.get("raw")
                for name, v in p.get("values", {}).items()
                if not v.get("formula")
            },
            "note": p.get("note") or "",
            "lots": sorted({ids.key(lot["lot"]) for lot in p.get("lots", [])}),
            "equipment": sorted({ids.key(item["id"]) for item in p.get("equipment", [])}),
        }
    if first.type == ev.STEP_SKIPPED:
        return {**saved, "command": "skip", "reason": first.reason}
    if first.type == ev.VALUE_CORRECTED:
        values = {
            e.payload["parameter"]: e.payload["new"].get("raw")
            for e in written
            if e.type == ev.VALUE_CORRECTED and not e.payload.get("derived")
        }
        return {**saved, "command": "correct", "values": values, "reason": first.reason}
    return {**saved, "command": first.type.replace("_", " ")}


def writable(batch: Batch, *, addendum: bool = False) -> None:
    """Refuse an entry on a released or rejected batch. An ``addendum`` (a deviation or a
    complaint opened after the decision, and its investigation and closure) is the one
    kind of entry such a batch still takes: it changes no recorded value and not the
    decision."""
    if batch.is_final and not addendum:
        raise Refused(
            f"batch {batch.id} is {batch.state}; it takes no more entries "
            "(a deviation or a complaint found now is added to its record as an addendum)"
        )


def step_of(batch: Batch, step_id: str) -> Step:
    step = batch.protocol.step(step_id)
    if step is None:
        names = ", ".join(s.id for s in batch.protocol.steps)
        raise Refused(f"protocol {batch.protocol.id} has no step {step_id!r}; its steps: {names}")
    return step


def in_order(batch: Batch, step: Step, action: str) -> None:
    if batch.on_hold:
        raise Refused(
            f"batch {batch.id} is on hold; resume it first",
            hint=Hint("resume_batch", batch=batch.id),
        )
    if batch.pipeline.may(Cursor(batch.state, batch.held_from), f"{action}_{step.id}"):
        return
    entry = batch.steps[step.id]
    due = batch.due()
    due_text = (
        " or ".join(f"{s.id} ({s.title})" for s in due) if due else "none: all steps are done"
    )
    if entry.status in ("done", "skipped", "not taken"):
        raise Refused(
            f"{step.title} is already {entry.status} in batch {batch.id}; "
            f"to change a value, correct it with a reason. Step due: {due_text}",
            hint=Hint("correct_value", batch=batch.id, step=step.id),
        )
    raise Refused(
        f"{step.title} is not due yet in batch {batch.id}: the step due is {due_text}",
        hint=Hint("record_step", batch=batch.id, due=",".join(s.id for s in due)),
    )


def performed_at(batch: Batch, at: str | datetime | None, now: datetime) -> datetime:
    """When the step was physically done: now, or a given earlier time within reason."""
    if at is None:
        return now  # a "now" before the last step is the clock going backwards: the store refuses
    try:
        performed = parse_time(at) if isinstance(at, str) else at.astimezone(timezone.utc)
    except ValueError as err:
        raise Refused(f"the time it was done: {err}") from None
    if performed > now + FUTURE_SKEW:
        raise Refused(
            f"the time it was done, {iso(performed)}, is in the future (now {iso(now)}); "
            "give the time the step was done"
        )
    last = batch.last_performed_at()
    if last and performed < from_iso(last):
        raise Refused(
            f"the time it was done, {iso(performed)}, is before the previous step was done "
            f"({last}); steps are done in order"
        )
    if performed < from_iso(batch.started_at) - timedelta(days=365):
        raise Refused(
            f"the time it was done, {iso(performed)}, is more than a year before the batch started"
        )
    return performed


def value_payload(f: Finding) -> dict[str, Any]:
    return {
        "value": f.value,
        "raw": f.raw,
        "verdict": f.verdict.value,
        "message": f.message,
        "spec": f.spec,
        "display": f.display,
        **({"note": f.note} if f.note else {}),
        **(
            {"formula": f.formula, "inputs": [{"name": n, "display": d} for n, d in f.inputs]}
            if f.formula
            else {}
        ),
    }


def derived_findings(batch: Batch, step: Step, findings: list[Finding]) -> list[Finding]:
    """The derived values of STEP, from the batch's values and the step's new ones."""
    return derived.step_values(batch, step, corrected(batch, step, findings))


def corrected(
    batch: Batch, step: Step, findings: list[Finding]
) -> dict[tuple[str, str], tuple[float, str]]:
    """The batch's numeric values as FINDINGS (a step's new or corrected values) leave them."""
    known = derived.recorded(batch)
    for f in findings:
        if isinstance(f.value, (int, float)) and not isinstance(f.value, bool):
            known[(step.id, f.parameter)] = (float(f.value), f.display)
    return known
