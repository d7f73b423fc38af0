"""A batch as it stands: the fold of its events. Pure; no store, no clock.

Everything a screen, a record or a check needs is derived here from the event list, so
the log stays the only truth and every view of a batch agrees with every other.

The protocol a batch follows is not in its events: the first one names it by content
hash, and the fold asks a resolver for it (the service's reads the "@protocols" stream;
each version is parsed and its machine built once per process). Each event is applied by
one handler, so a batch already folded takes new events without replaying the old ones
(``advance``): the write path folds once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cmprep import events as ev
from cmprep.domain.pipeline import AWAITING_REVIEW, FINAL, ON_HOLD, Cursor, Pipeline
from cmprep.domain.protocols import Compiled, Resolver, compiled, known, ref
from cmprep.domain.signatures import step_content
from cmprep.errors import CorruptLog
from cmprep.events import Event
from cmprep.protocol.models import Parameter, Protocol, Step


@dataclass
class Correction:
    """One correction of a value: the old and new text, why, who and when (kept, never
    overwritten)."""

    old: str
    new: str
    reason: str
    actor: str
    recorded_at: str
    seq: int


@dataclass
class Value:
    """A value as a step recorded it: the parsed value, how it prints, its verdict against the
    spec, and its corrections."""

    name: str
    label: str
    value: Any
    display: str
    raw: str
    verdict: str
    message: str
    spec: str
    unit: str
    deviation_ids: list[str] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    note: str = ""  # e.g. outside a literature reference range (information only)
    replicates: dict[str, Any] | None = None  # QC replicates: values, n, CV
    formula: str = ""  # a derived value's formula; "" for a typed one
    inputs: list[dict[str, str]] = field(default_factory=list)  # [{"name", "display"}]

    @property
    def derivation(self) -> str:
        """How a derived value was computed, as the record prints it ("" if typed)."""
        if not self.formula:
            return ""
        used = ", ".join(f"{i.get('name')} = {i.get('display')}" for i in self.inputs)
        return f"= {self.formula}" + (f" ({used})" if used else "")


@dataclass
class StepEntry:
    """A protocol step in one batch: its status, who did it and when, its values, lots and
    signatures."""

    step: Step
    status: str = "pending"  # pending | due | done | skipped | not taken
    actor: str | None = None
    recorded_at: str | None = None
    performed_at: str | None = None
    late: bool = False
    note: str | None = None
    skip_reason: str | None = None
    values: dict[str, Value] = field(default_factory=dict)
    window: Value | None = None
    seq: int | None = None
    performed_signature: dict[str, Any] | None = None
    lots: list[dict[str, Any]] = field(default_factory=list)  # material lots used
    equipment: list[dict[str, Any]] = field(default_factory=list)  # instruments used
    verifications: list[dict[str, Any]] = field(default_factory=list)  # signatures, newest last
    checks: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> {by, at} ticked
    # the hash of the events that wrote this step, worked out when asked (a verification,
    # a review, a record) rather than on every fold: the batch's events and the seq before
    # which they count, kept until then
    _content: str | None = field(default=None, repr=False, compare=False)
    _content_of: tuple[list[Event], int] | None = field(default=None, repr=False, compare=False)

    @property
    def content_hash(self) -> str | None:
        """The hash of the events that wrote this step, as they were when it was last
        written (None before it is done or skipped)."""
        if self._content_of is not None:
            events, before = self._content_of
            self._content, self._content_of = step_content(events, self.step.id, before), None
        return self._content

    def written_by(self, events: list[Event]) -> None:
        """The step was just written: its content hash is that of EVENTS (the batch's,
        as they are now), worked out when first asked."""
        self._content_of = (events, events[-1].seq + 1)

    @property
    def needs_verification(self) -> bool:
        return self.status == "done" and (
            self.step.verify or any(p.verify for p in self.step.parameters)
        )

    @property
    def verified(self) -> bool:
        """Verified by someone, and nothing changed in the step since they signed."""
        return any(v["content_hash"] == self.content_hash for v in self.verifications)


@dataclass
class Deviation:
    """A deviation as the batch's events leave it: what was out of spec, its severity,
    investigation and closure."""

    id: str
    batch_id: str
    protocol_id: str
    step: str
    parameter: str | None
    value: str
    spec: str
    severity: str
    status: str
    kind: str
    message: str
    opened_by: str
    opened_at: str
    seq: int
    investigation: dict[str, Any] | None = None
    closure: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # opened after the batch was released or rejected: an addendum to the record, linked to
    # no value and changing neither the values nor the decision
    addendum: bool = False

    @property
    def rejected(self) -> bool:
        """Closed with the decision "rejected": the batch it belongs to cannot be released."""
        return self.closure is not None and self.closure.get("decision") == "rejected"

    def row(self) -> dict[str, Any]:
        return {
            "deviation_id": self.id,
            "batch_id": self.batch_id,
            "protocol_id": self.protocol_id,
            "step": self.step,
            "parameter": self.parameter,
            "value": self.value,
            "spec": self.spec,
            "severity": self.severity,
            "status": self.status,
            "kind": self.kind,
            "message": self.message,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "investigated_by": self.investigation["by"] if self.investigation else None,
            "justification": self.investigation["justification"] if self.investigation else None,
            "closed_by": self.closure["by"] if self.closure else None,
            "closed_at": self.closure["at"] if self.closure else None,
            "decision": self.closure["decision"] if self.closure else None,
            "capa": self.closure.get("capa") if self.closure else None,
            "addendum": self.addendum,
        }


@dataclass
class Hold:
    """A hold on a batch: who put it on hold, when and why, and who resumed it."""

    actor: str
    at: str
    reason: str
    resumed_by: str | None = None
    resumed_at: str | None = None
    resume_reason: str | None = None


@dataclass
class Review:
    """A signed review ("reviewed") of the batch record, and whether it still counts.

    It counts when it was signed with every step done (``complete``) and nothing that the
    record shows was entered after it (``voided_by`` is the first such event): release
    needs a review of the record as it is released, not of an earlier version of it.
    """

    by: str
    at: str
    seq: int
    comment: str
    complete: bool
    voided_by: Event | None = None

    @property
    def valid(self) -> bool:
        return self.complete and self.voided_by is None


# the events that change what the record says about the batch: each voids a review before it
# (verifications and deviation decisions are signed acts release checks on their own)
CHANGES_RECORD = (
    ev.STEP_RECORDED,
    ev.STEP_SKIPPED,
    ev.VALUE_CORRECTED,
    ev.DEVIATION_OPENED,
    ev.CHECKS_CONFIRMED,  # a tick added after a review changes what the record says
)


@dataclass
class Batch:
    """A batch as its events leave it: the fold of its stream, against the protocol version it
    started from."""

    id: str
    protocol: Protocol
    protocol_hash: str
    pipeline: Pipeline
    state: str
    started_at: str
    started_by: str
    held_from: str | None = None
    steps: dict[str, StepEntry] = field(default_factory=dict)
    deviations: dict[str, Deviation] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)
    decision: dict[str, Any] | None = None  # release or rejection: who, when, why
    reviews: list[Review] = field(default_factory=list)  # oldest first

    def performers(self) -> set[str]:
        """Everyone who wrote a step's values (recorded, skipped or corrected one)."""
        kinds = (ev.STEP_RECORDED, ev.STEP_SKIPPED, ev.VALUE_CORRECTED)
        return {e.actor for e in self.events if e.type in kinds}

    def missing_verifications(self) -> list[StepEntry]:
        return [s for s in self.steps.values() if s.needs_verification and not s.verified]

    @property
    def seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    @property
    def head_hash(self) -> str:
        return self.events[-1].hash if self.events else ev.GENESIS

    @property
    def is_final(self) -> bool:
        return self.state in FINAL

    @property
    def on_hold(self) -> bool:
        return self.state == ON_HOLD

    @property
    def active_state(self) -> str:
        """The stage the batch is at, looking through a hold."""
        return self.held_from if self.state == ON_HOLD and self.held_from else self.state

    def due(self) -> list[Step]:
        return self.pipeline.due_steps(self.active_state)

    def open_deviations(self) -> list[Deviation]:
        """Every deviation not yet closed, addenda included (they still need QA's decision)."""
        return [d for d in self.deviations.values() if d.status != "closed"]

    def record_deviations(self) -> list[Deviation]:
        """The deviations of the batch itself, opened before its release or rejection."""
        return [d for d in self.deviations.values() if not d.addendum]

    def addenda(self) -> list[Deviation]:
        """Deviations and complaints opened after the decision, in the order opened."""
        return [d for d in self.deviations.values() if d.addendum]

    def rejected_deviations(self) -> list[Deviation]:
        """The batch's own deviations closed as rejected: each one rules out release."""
        return [d for d in self.record_deviations() if d.rejected]

    @property
    def review(self) -> Review | None:
        """The newest review that still counts, or None."""
        return next((r for r in reversed(self.reviews) if r.valid), None)

    def last_performed_at(self) -> str | None:
        times = [s.performed_at for s in self.steps.values() if s.performed_at]
        return max(times) if times else None

    def projection(self) -> dict[str, Any]:
        return {
            "batch_id": self.id,
            "protocol_id": self.protocol.id,
            "protocol_version": self.protocol.version,
            "protocol_hash": self.protocol_hash,
            "state": self.state,
            "started_at": self.started_at,
            "started_by": self.started_by,
            "updated_at": self.events[-1].recorded_at if self.events else self.started_at,
            "head_seq": self.seq,
            "open_deviations": len(self.open_deviations()),
            "due": [s.id for s in self.due()],
        }


def _value_from(param: Parameter | None, name: str, data: dict[str, Any]) -> Value:
    return Value(
        name=name,
        label=param.label if param else name,
        value=data.get("value"),
        display=data.get("display", ""),
        raw=data.get("raw", ""),
        verdict=data.get("verdict", ""),
        message=data.get("message", ""),
        spec=data.get("spec", ""),
        unit=(param.unit or "") if param else data.get("unit", ""),
        note=data.get("note", ""),
        formula=data.get("formula", ""),
        inputs=list(data.get("inputs", [])),
    )


def fold(events: list[Event], resolve: Resolver | None = None) -> Batch:
    """Replay a batch's events in order into its current state.

    RESOLVE gives the protocol version the first event names by content hash (the
    service passes its own, which reads the version from the database; without one, only
    a version this process has already built is found). An older first event carries its
    own copy of the protocol: that copy is used once it is checked against its hash."""
    if not events or events[0].type != ev.BATCH_STARTED:
        raise CorruptLog("a batch's first event must be batch_started")
    return advance(_started(events[0], resolve or known), events)


def _started(first: Event, resolve: Resolver) -> Batch:
    """The batch as its first event opens it, before any event is applied."""
    p = first.payload
    digest = p.get("protocol_hash")
    if not isinstance(digest, str):
        raise CorruptLog(f"batch {first.batch_id}: its first event names no protocol hash")
    if "protocol" in p:  # written before protocols were stored once: the batch's own copy
        version: Compiled | None = compiled(
            p["protocol"], digest, f"the protocol copied into batch {first.batch_id}"
        )
    else:
        version = resolve(digest)
    if version is None:
        named = ref(str(p.get("protocol_id")), str(p.get("protocol_version")))
        raise CorruptLog(
            f"batch {first.batch_id} was started from protocol {named} (content hash "
            f"{digest[:12]}), which is not stored in this database; run an audit verify "
            "and restore the database from a backup"
        )
    protocol, pipeline = version.protocol, version.pipeline
    return Batch(
        id=first.batch_id,
        protocol=protocol,
        protocol_hash=digest,
        pipeline=pipeline,
        state=pipeline.initial,
        started_at=first.recorded_at,
        started_by=first.actor,
        steps={s.id: StepEntry(step=s) for s in protocol.steps},
    )


def advance(batch: Batch, events: list[Event]) -> Batch:
    """BATCH moved on by EVENTS, the ones that follow its last (changed in place, and
    returned). What ``fold`` does for a whole log, for a few events more: the write path
    applies what it has just written to the batch it decided from."""
    cursor = Cursor(batch.state, batch.held_from)
    touched: set[str] = set()
    for event in events:
        _replay(batch, cursor, event)
        step = event.payload.get("step")
        if isinstance(step, str):
            touched.add(step)
    batch.state, batch.held_from = cursor.state, cursor.held_from
    for step_id in touched:
        entry = batch.steps.get(step_id)
        if entry is not None and entry.status in ("done", "skipped"):
            entry.written_by(batch.events)
    _mark_due(batch)
    return batch


def _replay(batch: Batch, cursor: Cursor, event: Event) -> None:
    """One event applied: its handler, then what every event may carry (a signature, a
    deviation's history) and the reviews it voids."""
    try:
        _apply(batch, batch.pipeline, cursor, event)
    except Exception as err:  # a log cmprep did not write
        raise CorruptLog(
            f"batch {batch.id}, event {event.seq} ({event.type}) does not replay: {err}"
        ) from err
    batch.events.append(event)
    if event.type in CHANGES_RECORD and not event.payload.get("addendum"):
        for review in batch.reviews:
            if review.voided_by is None:
                review.voided_by = event
    if event.payload.get("signature"):
        batch.signatures.append({**event.payload["signature"], "seq": event.seq})
    dev_id = event.payload.get("deviation_id")
    if dev_id in batch.deviations:
        batch.deviations[dev_id].history.append(
            {
                "seq": event.seq,
                "type": event.type,
                "by": event.actor,
                "at": event.recorded_at,
                "reason": event.reason,
            }
        )


def _apply(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    handler = HANDLERS.get(event.type)
    if handler is None:
        raise CorruptLog(f"unknown event type {event.type!r}")
    handler(batch, pipeline, cursor, event)


# One handler per event type, each named for what happened at the bench. Each changes the
# batch (and moves the cursor) exactly as that event says and nothing more; a handler that
# meets a payload it cannot use raises, and fold() turns that into CorruptLog.
Handler = Callable[[Batch, Pipeline, Cursor, Event], None]


def _batch_started(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """Nothing to do: fold() built the batch from this event before replaying."""


def _step_recorded(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    p = event.payload
    entry = batch.steps[p["step"]]
    pipeline.fire(cursor, f"record_{entry.step.id}")
    entry.status = "done"
    entry.actor = event.actor
    entry.recorded_at = event.recorded_at
    entry.performed_at = event.performed_at or event.recorded_at
    entry.late = bool(p.get("late"))
    entry.note = p.get("note")
    entry.seq = event.seq
    recorded = p.get("values", {})
    for param in entry.step.parameters:  # in the protocol's order, as the SOP reads
        if param.name in recorded:
            entry.values[param.name] = _value_from(param, param.name, recorded[param.name])
    if p.get("window"):
        entry.window = _value_from(None, p["window"]["name"], p["window"])
    entry.performed_signature = p.get("signature")
    entry.lots = p.get("lots", [])
    entry.equipment = p.get("equipment", [])
    for name, rep in p.get("replicates", {}).items():
        if name in entry.values:
            entry.values[name].replicates = rep
    # the arms of a branch not taken
    for step in pipeline.stages[pipeline.stage_names.index(pipeline.stage_of[entry.step.id])]:
        if step.id != entry.step.id:
            batch.steps[step.id].status = "not taken"


def _step_skipped(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    entry = batch.steps[event.payload["step"]]
    pipeline.fire(cursor, f"skip_{entry.step.id}")
    entry.status = "skipped"
    entry.actor = event.actor
    entry.recorded_at = event.recorded_at
    entry.skip_reason = event.reason
    entry.seq = event.seq


def _value_corrected(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """The new value replaces the old one, which stays in its correction history."""
    p = event.payload
    entry = batch.steps[p["step"]]
    old = entry.values.get(p["parameter"])
    new = _value_from(entry.step.parameter(p["parameter"]), p["parameter"], p["new"])
    history = list(old.corrections) if old else []
    history.append(
        Correction(
            old=old.display if old else "",
            new=new.display,
            reason=event.reason or "",
            actor=event.actor,
            recorded_at=event.recorded_at,
            seq=event.seq,
        )
    )
    new.corrections = history
    new.deviation_ids = (old.deviation_ids if old else []) + []
    entry.values[p["parameter"]] = new


def _deviation_opened(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """A new deviation, linked to the value (or the time window) it is about; an addendum
    (opened after the decision: a deviation found late, or a complaint) is linked to nothing,
    so the released values print as they were released."""
    p = event.payload
    dev = Deviation(
        id=p["deviation_id"],
        batch_id=batch.id,
        protocol_id=batch.protocol.id,
        step=p["step"],
        parameter=p.get("parameter"),
        value=p.get("value", ""),
        spec=p.get("spec", ""),
        severity=p["severity"],
        status="open",
        kind=p.get("kind", "automatic"),
        message=p.get("message") or event.reason or "",
        opened_by=event.actor,
        opened_at=event.recorded_at,
        seq=event.seq,
        addendum=bool(p.get("addendum")),
    )
    batch.deviations[dev.id] = dev
    entry = batch.steps.get(dev.step)
    if entry is None or dev.addendum:  # no step of this protocol, or an addendum: no link
        return
    value_name = (dev.parameter or "").split(":")[0]  # "vegf:westgard:1-3s" -> vegf
    if value_name in entry.values:
        entry.values[value_name].deviation_ids.append(dev.id)
    elif entry.window and dev.parameter == entry.window.name:
        entry.window.deviation_ids.append(dev.id)


def _deviation_investigated(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    p = event.payload
    dev = batch.deviations[p["deviation_id"]]
    dev.status = "investigated"
    dev.investigation = {
        "by": event.actor,
        "at": event.recorded_at,
        "justification": event.reason,
        "impact": p.get("impact"),
    }


def _deviation_closed(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """Closed with a decision; a changed severity keeps the one it had before."""
    p = event.payload
    dev = batch.deviations[p["deviation_id"]]
    dev.status = "closed"
    dev.closure = {
        "by": event.actor,
        "at": event.recorded_at,
        "decision": p["decision"],
        "reason": event.reason,
        "capa": p.get("capa"),
        "severity_from": dev.severity if p.get("severity") else None,
        "severity_reason": p.get("severity_reason"),
        "signature": p["signature"],
    }
    if p.get("severity"):
        dev.severity = p["severity"]


def _step_verified(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    p = event.payload
    batch.steps[p["step"]].verifications.append(p["signature"])


def _batch_reviewed(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """A review, complete when signed with every step done (looking through a hold); the
    signature itself is collected by fold() as for every event."""
    state = cursor.held_from if cursor.state == ON_HOLD and cursor.held_from else cursor.state
    batch.reviews.append(
        Review(
            by=event.actor,
            at=event.recorded_at,
            seq=event.seq,
            comment=event.reason or "",
            complete=state == AWAITING_REVIEW,
        )
    )


def _decided(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event, how: str) -> None:
    """Released or rejected: the batch's end, with who decided, when and why."""
    pipeline.fire(cursor, "release" if how == "released" else "reject")
    batch.decision = {
        "decision": how,
        "by": event.actor,
        "at": event.recorded_at,
        "reason": event.reason,
    }


def _batch_released(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    _decided(batch, pipeline, cursor, event, "released")


def _batch_rejected(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    _decided(batch, pipeline, cursor, event, "rejected")


def _batch_held(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    pipeline.fire(cursor, "hold")
    batch.holds.append(Hold(actor=event.actor, at=event.recorded_at, reason=event.reason or ""))


def _batch_resumed(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    pipeline.fire(cursor, "resume")
    hold = batch.holds[-1]
    hold.resumed_by, hold.resumed_at, hold.resume_reason = (
        event.actor,
        event.recorded_at,
        event.reason,
    )


def _checks_confirmed(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """Check items of a done step ticked: each keeps who ticked it first, and when."""
    entry = batch.steps[event.payload["step"]]
    for item in event.payload["checks"]:
        entry.checks.setdefault(str(item), {"by": event.actor, "at": event.recorded_at})


def _conditionally_released(batch: Batch, pipeline: Pipeline, cursor: Cursor, event: Event) -> None:
    """Nothing moves: the use step it allows and the chain of results after it are read
    from the events (domain/conditional.py); its signature is collected as for every
    event."""


HANDLERS: dict[str, Handler] = {
    ev.BATCH_STARTED: _batch_started,
    ev.STEP_RECORDED: _step_recorded,
    ev.STEP_SKIPPED: _step_skipped,
    ev.VALUE_CORRECTED: _value_corrected,
    ev.DEVIATION_OPENED: _deviation_opened,
    ev.DEVIATION_INVESTIGATED: _deviation_investigated,
    ev.DEVIATION_CLOSED: _deviation_closed,
    ev.STEP_VERIFIED: _step_verified,
    ev.BATCH_REVIEWED: _batch_reviewed,
    ev.BATCH_RELEASED: _batch_released,
    ev.BATCH_REJECTED: _batch_rejected,
    ev.BATCH_HELD: _batch_held,
    ev.BATCH_RESUMED: _batch_resumed,
    ev.CHECKS_CONFIRMED: _checks_confirmed,
    ev.BATCH_CONDITIONALLY_RELEASED: _conditionally_released,
}


def _mark_due(batch: Batch) -> None:
    """The steps that may be recorded now are "due"; the rest of those not yet done are
    "pending" (again: a batch moved on by ``advance`` had other steps due before)."""
    for entry in batch.steps.values():
        if entry.status == "due":
            entry.status = "pending"
    if batch.is_final:
        return
    for step in batch.due():
        if batch.steps[step.id].status == "pending":
            batch.steps[step.id].status = "due"


__all__ = [
    "AWAITING_REVIEW",
    "CHANGES_RECORD",
    "Batch",
    "CorruptLog",
    "Deviation",
    "Review",
    "StepEntry",
    "Value",
    "advance",
    "fold",
]
