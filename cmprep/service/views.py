"""The one place the read models are built: what a screen, a JSON answer or a printed
document shows, as typed views (``cmprep.render.models``) of a batch, a protocol or a QC
query.

Why one place: the status screen, its JSON, the review and the printed record all show
the same batch; when each shell computed its own dict they drifted. Builders here only
read what they are given (a folded batch, a protocol, rows already fetched), so the
service methods fetch and these shape. Rendering then only formats the model.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from cmprep.domain.batch import Batch, Deviation, StepEntry
from cmprep.protocol.models import SITE_CHOICE, Protocol, Step, Window
from cmprep.render.models import (
    AlertLine,
    CheckLine,
    ChecklistParam,
    ChecklistStep,
    ChecklistView,
    DeviationView,
    HoldLine,
    LateEntry,
    OutOfSpec,
    QCRecordRow,
    QCSummaryRow,
    RecordStep,
    RecordSummary,
    RecordView,
    ReviewCorrection,
    ReviewDeviation,
    ReviewView,
    SignatureLine,
    SignatureRow,
    SkippedStep,
    SourceLine,
    TraceLine,
)
from cmprep.service.status import (
    conditional_lines,
    parameter_needs,
    status,
    step_needs,
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- review by exception --------------------------------------------------------------------
def review(batch: Batch, release_blockers: list[str]) -> ReviewView:
    """Review by exception: only what a reviewer must look at."""
    b = batch
    values = [(entry, v) for entry in b.steps.values() for v in entry.values.values()] + [
        (entry, entry.window) for entry in b.steps.values() if entry.window
    ]
    return ReviewView(
        batch=b.id,
        protocol=f"{b.protocol.id} v{b.protocol.version}",
        state=b.state,
        out_of_spec=[
            OutOfSpec(e.step.id, v.name, v.display, v.spec, list(v.deviation_ids))
            for e, v in values
            if v.verdict == "out of spec"
        ],
        alerts=[
            AlertLine(e.step.id, v.name, v.display, v.message)
            for e, v in values
            if v.verdict == "alert"
        ],
        deviations=[
            ReviewDeviation(
                id=d.id,
                step=d.step,
                severity=d.severity,
                status=d.status,
                kind=d.kind,
                decision=d.closure["decision"] if d.closure else None,
            )
            for d in b.deviations.values()
        ],
        corrections=[
            ReviewCorrection(
                step=e.step.id,
                parameter=v.name,
                old=c.old,
                new=c.new,
                by=c.actor,
                at=c.recorded_at,
                reason=c.reason,
            )
            for e, v in values
            for c in v.corrections
        ],
        skipped=[
            SkippedStep(e.step.id, e.actor, e.skip_reason)
            for e in b.steps.values()
            if e.status == "skipped"
        ],
        late_entries=[
            LateEntry(e.step.id, e.performed_at, e.recorded_at, e.actor)
            for e in b.steps.values()
            if e.late
        ],
        holds=[HoldLine(**h.__dict__) for h in b.holds],
        missing_verifications=[e.step.id for e in b.missing_verifications()],
        signatures=[
            SignatureLine(
                meaning=s["meaning"],
                signer=s["signer"],
                full_name=s["full_name"],
                signed_at=s["signed_at"],
                subject=s["subject"],
                superseded=superseded(b, s),
            )
            for s in b.signatures
        ],
        release_blockers=list(release_blockers),
        not_taken=[e.step.id for e in b.steps.values() if e.status == "not taken"],
        decision=dict(b.decision) if b.decision else None,
    )


def superseded(batch: Batch, signature: dict[str, Any]) -> str:
    """Why a signature no longer counts for what it signed, or "" when it does: a step
    verified or signed as performed and changed after it, a review voided by a later
    entry (or signed before every step was done)."""
    seq = int(signature.get("seq") or 0)
    subject = signature.get("subject") or {}
    meaning = signature.get("meaning")
    if subject.get("kind") == "step" and (entry := batch.steps.get(str(subject.get("id")))):
        if meaning == "verified" and signature.get("content_hash") != entry.content_hash:
            return "the step changed after it was verified"
        changed = [
            e
            for e in batch.events
            if e.seq > seq
            and e.type == "value_corrected"
            and e.payload.get("step") == entry.step.id
        ]
        if meaning == "performed" and changed:
            return f"a value was corrected after it (event {changed[0].seq})"
    if meaning == "reviewed":
        review = next((r for r in batch.reviews if r.seq == seq), None)
        if review is not None and review.voided_by is not None:
            e = review.voided_by
            return f"{e.type.replace('_', ' ')} by {e.actor} after it (event {e.seq})"
        if review is not None and not review.complete:
            return "signed before every step was done"
    return ""


# --- one deviation --------------------------------------------------------------------------
def deviation(dev: Deviation, history: list[dict[str, Any]]) -> DeviationView:
    """A deviation with its investigation, closure and the audit rows of its events
    (``history``: the batch's trail rows whose seq is in the deviation's history)."""
    return DeviationView(
        **dev.row(), investigation=dev.investigation, closure=dev.closure, history=history
    )


# --- printed documents: common parts --------------------------------------------------------
def step_numbers(protocol: Protocol) -> dict[str, str]:
    """Printed step numbers: one per stage, a branch's arms lettered (``9a``, ``9b``...)."""
    numbers: dict[str, str] = {}
    for i, stage in enumerate(protocol.stages(), start=1):
        for j, step in enumerate(stage):
            numbers[step.id] = (
                f"{i}{'abcdefghijklmnopqrstuvwxyz'[j % 26]}" if len(stage) > 1 else str(i)
            )
    return numbers


def sources(protocol: Protocol) -> list[SourceLine]:
    from cmprep.render.documents import cite_short

    return [SourceLine(s.id, cite_short(s), s.citation, s.doi, s.note) for s in protocol.sources]


def _source_text(protocol: Protocol, source_id: str | None) -> str:
    from cmprep.render.documents import cite_short

    if not source_id:
        return ""
    if source_id == SITE_CHOICE:
        return SITE_CHOICE
    return cite_short(protocol.source(source_id)) or source_id


def _window_text(protocol: Protocol, window: Window) -> str:
    earlier = protocol.step(window.after)
    title = f" ({earlier.title})" if earlier else ""
    return f"{window.range.describe(window.unit)} after {window.after}{title}"


def _branch_arms(protocol: Protocol, step: Step) -> list[Step]:
    return [s for s in protocol.steps if step.branch and s.branch == step.branch]


# --- the batch record -----------------------------------------------------------------------
STATE_LABELS = {
    "on_hold": "ON HOLD",
    "awaiting_review": "awaiting QA review",
    "released": "released",
    "rejected": "rejected",
}

SIGNATURE_ROLES = {  # batch-level signature meaning -> the line it fills in the QA section
    "reviewed": "Reviewed by (QA)",
    "released": "Released by (QA)",
    "rejected": "Rejected by (QA)",
}

QC_EXPLANATION = (
    "Reference ranges are the review's typical MSC-CM composition: information only; "
    "deviations come from the release spec and Westgard rules."
)

_HASH = re.compile(r"[0-9a-f]{64}")


def _record_summary(batch: Batch) -> RecordSummary:
    entries = list(batch.steps.values())
    return RecordSummary(
        done=sum(e.status == "done" for e in entries),
        skipped=sum(e.status == "skipped" for e in entries),
        not_taken=sum(e.status == "not taken" for e in entries),
        open_steps=sum(e.status in ("due", "pending") for e in entries),
        late=sum(e.late for e in entries),
        corrections=sum(len(v.corrections) for e in entries for v in e.values.values()),
        alerts=sum(v.verdict == "alert" for e in entries for v in e.values.values()),
        deviations=len(batch.record_deviations()),
        open_deviations=len([d for d in batch.record_deviations() if d.status != "closed"]),
        holds=len(batch.holds),
        missing_verifications=len(batch.missing_verifications()),
    )


def step_signatures(entry: StepEntry) -> list[SignatureRow]:
    """A step's signatures: 'performed' first, then each verification, oldest first.

    A verification counts only while the step is as it was signed; one signed before a later
    correction is printed as superseded.
    """
    from cmprep.render.documents import SUPERSEDED, signature_row

    rows = []
    if entry.performed_signature:
        rows.append(signature_row(entry.performed_signature))
    for sig in entry.verifications:
        valid = sig.get("content_hash") == entry.content_hash
        rows.append(signature_row(sig, "valid" if valid else SUPERSEDED))
    return rows


def batch_signatures(batch: Batch) -> list[SignatureRow]:
    """The batch-level signatures (reviewed, released, rejected) with the comment or reason
    written with each, in log order."""
    from cmprep.render.documents import signature_row

    reasons = {e.seq: e.reason for e in batch.events}
    return [
        signature_row(
            s,
            comment=reasons.get(int(s.get("seq") or 0)),
            line=SIGNATURE_ROLES.get(s["meaning"], s["meaning"]),
        )
        for s in batch.signatures
        if (s.get("subject") or {}).get("kind") == "batch"
    ]


def _trace_deviations(batch: Batch, step_id: str, kind: str, ident: str) -> list[str]:
    """The deviation ids opened at a step for an expired lot or an overdue instrument."""
    return [
        d.id
        for d in batch.deviations.values()
        if d.step == step_id and d.parameter == f"{kind}:{ident}"
    ]


def _record_step(batch: Batch, entry: StepEntry, numbers: dict[str, str]) -> RecordStep:
    from cmprep.render.documents import equipment_text, lot_text

    step = entry.step
    return RecordStep(
        entry=entry,
        number=numbers[step.id],
        branch_arms=[s.id for s in _branch_arms(batch.protocol, step)],
        window_text=_window_text(batch.protocol, step.window) if step.window else "",
        lots=[
            TraceLine(lot_text(lot), _trace_deviations(batch, step.id, "lot", lot.get("lot", "")))
            for lot in entry.lots
        ],
        equipment=[
            TraceLine(
                equipment_text(item),
                _trace_deviations(batch, step.id, "equipment", item.get("id", "")),
            )
            for item in entry.equipment
        ],
        signatures=step_signatures(entry),
        missing_verification=entry.needs_verification and not entry.verified,
        checks=_check_lines(entry),
    )


def _check_lines(entry: StepEntry) -> list[CheckLine]:
    """A done step's check items, each with who ticked it ("" when nobody did)."""
    if entry.status != "done":
        return []
    ticked = entry.checks
    return [
        CheckLine(item, ticked.get(item, {}).get("by", ""), ticked.get(item, {}).get("at", ""))
        for item in entry.step.checks
    ]


def _flag_text(note: str) -> str:
    """The short form of a reference flag: ``ℹ above reference range``."""
    if not note:
        return ""
    for side in ("above", "below"):
        if f" is {side} " in note:
            return f"ℹ {side} reference range"
    return "ℹ see note"


def _replicate_values(rep: dict[str, Any] | None) -> str:
    from cmprep.render.documents import number_text

    if not rep or not rep.get("values"):
        return ""
    values = ", ".join(number_text(v) for v in rep["values"])
    return f"{values} {rep.get('unit') or ''}".strip()


def _qc_unit(batch: Batch, row: QCSummaryRow) -> str:
    step = batch.protocol.step(row.step)
    param = step.parameter(row.name) if step else None
    if param is not None and param.unit:
        return str(param.unit)
    return str((row.replicates or {}).get("unit") or "")


def _history_text(row: QCSummaryRow, unit: str) -> str:
    """``history: n=8, mean 300, SD 10 pg/mL`` (released batches of the same protocol)."""
    from cmprep.render.documents import number_text

    if not row.history:
        return ""
    parts = [f"history: n={len(row.history)}"]
    if row.history_mean is not None:
        parts.append(f"mean {number_text(row.history_mean)}")
    if row.history_sd is not None:
        parts.append(f"SD {number_text(row.history_sd)}")
    text = ", ".join(parts)
    return f"{text} {unit}" if unit and len(parts) > 1 else text


def _deviation_ref(batch: Batch, dev_id: str, name: str) -> str:
    """``DEV-0002 (Westgard 1-3s)`` or ``DEV-0001 (release spec)``: why it was opened."""
    dev = batch.deviations.get(dev_id)
    parameter = (dev.parameter or "") if dev else ""
    if parameter.startswith(f"{name}:westgard:"):
        return f"{dev_id} (Westgard {parameter.rsplit(':', 1)[1]})"
    if parameter == name:
        return f"{dev_id} (release spec)"
    return dev_id


def _qc_value(batch: Batch, row: QCSummaryRow) -> str:
    """A QC result as the record prints it: to its precision, large counts as powers of ten
    (``2.6 x 10^8 pg/mL``); the summary's display when the value is not in the batch."""
    from cmprep.render.documents import shown_value

    entry = batch.steps.get(row.step)
    value = entry.values.get(row.name) if entry else None
    return shown_value(value, entry.step) if entry and value else row.value


def qc_record_rows(batch: Batch, qc: list[QCSummaryRow] | None) -> list[QCRecordRow]:
    """The rows of the record's Quality control section.

    Each QC summary row with what the templates print: the verdict mark, the reference
    range with its citation, the short reference flag (the whole note kept beside it), the
    replicates, and for a trended analyte with history the values of a sparkline (HTML,
    PDF) and a text (all formats).
    """
    from cmprep.render.documents import VERDICT_MARKS, replicates_text

    rows = []
    for row in qc or []:
        measured = bool(row.value)
        verdict = row.verdict or ""
        mark = VERDICT_MARKS.get(verdict) if measured else None
        if mark and not row.spec and verdict == "in spec":
            mark = None  # nothing to meet: recorded, as in the step tables
        reference = row.reference or ""
        if reference and row.reference_source:
            reference += f" ({row.reference_source})"
        history = [float(x) for x in row.history or []]
        trend = bool(row.trend) and bool(history)
        rows.append(
            QCRecordRow(
                step=row.step,
                label=row.label,
                method=row.method,
                value=_qc_value(batch, row),
                spec=row.spec,
                note=row.note or "",
                measured=measured,
                mark=mark,
                result="—" if not measured else ("" if mark else "recorded"),
                reference_text=reference,
                flag=_flag_text(row.note or ""),
                replicates_text=replicates_text(row.replicates),
                replicate_values=_replicate_values(row.replicates),
                deviation_refs=[_deviation_ref(batch, d, row.name) for d in row.deviations or []],
                spark=([*history, float(row.number)] if trend and row.number is not None else []),
                history_mean=row.history_mean,
                history_sd=row.history_sd,
                history_text=_history_text(row, _qc_unit(batch, row)) if trend else "",
                equivalent=row.equivalent,
            )
        )
    return rows


def record_view(
    batch: Batch,
    *,
    qc: list[QCSummaryRow] | None = None,
    ledger_head: str | None = None,
    ledger_pos: int | None = None,
    generated_at: str | None = None,
) -> RecordView:
    """The batch record's model. ``qc`` (the rows of ``QCService.summary``) adds the
    Quality control section; ``ledger_head`` (the newest ledger hash) and ``ledger_pos``
    (its position) are printed in the footer beside the batch's chain head, so the record
    says which state of the whole log it was made from. Without them the record is as
    before."""
    if ledger_head is not None and not _HASH.fullmatch(ledger_head):
        raise ValueError(f"ledger_head must be 64 hex digits, got {ledger_head!r}")
    protocol = batch.protocol
    numbers = step_numbers(protocol)
    return RecordView(
        batch=batch,
        protocol=protocol,
        generated_at=generated_at or _now(),
        state_label=STATE_LABELS.get(batch.state, f"in progress (at {batch.state})"),
        numbers=numbers,
        sources=sources(protocol),
        steps=[_record_step(batch, batch.steps[s.id], numbers) for s in protocol.steps],
        summary=_record_summary(batch),
        batch_signatures=batch_signatures(batch),
        qc_rows=qc_record_rows(batch, qc),
        qc_explanation=QC_EXPLANATION,
        conditional=conditional_lines(batch),
        ledger_head=ledger_head or "",
        ledger_pos=ledger_pos or 0,
        deviations=batch.record_deviations(),
        addenda=batch.addenda(),
    )


# --- the SOP checklist ----------------------------------------------------------------------
def checklist_view(protocol: Protocol, *, generated_at: str | None = None) -> ChecklistView:
    """The SOP checklist's model: each step with its number, branch arms, window and the
    short source of each figure."""
    numbers = step_numbers(protocol)
    return ChecklistView(
        protocol=protocol,
        protocol_hash=protocol.content_hash(),
        generated_at=generated_at or _now(),
        sources=sources(protocol),
        steps=[
            ChecklistStep(
                step=step,
                number=numbers[step.id],
                branch_arms=[s.title for s in _branch_arms(protocol, step)],
                window_text=_window_text(protocol, step.window) if step.window else "",
                window_source=_source_text(protocol, step.window.source) if step.window else "",
                params=[
                    ChecklistParam(p, source, _footnotes(protocol, step).get(source, ""))
                    for p in step.parameters
                    for source in [_source_text(protocol, p.source)]
                ],
                notes=[(mark, src) for src, mark in _footnotes(protocol, step).items()],
            )
            for step in protocol.steps
        ],
    )


def _footnotes(protocol: Protocol, step: Step) -> dict[str, str]:
    """The sources of a step's figures, each with its footnote marker ("1", "2", ...) in
    the order the parameters cite them: the checklist prints the marker beside the spec
    and the source once under the table, so the entry column gets the room."""
    marks: dict[str, str] = {}
    for p in step.parameters:
        source = _source_text(protocol, p.source)
        if source and source not in marks:
            marks[source] = str(len(marks) + 1)
    return marks


# --- the deviation audit report -------------------------------------------------------------
# the audit report's model lives apart: the report must not import the batch fold
from cmprep.service.report_view import PARETO_CHARTS, audit_view  # noqa: E402, F401

__all__ = [
    "audit_view",
    "batch_signatures",
    "checklist_view",
    "deviation",
    "parameter_needs",
    "qc_record_rows",
    "record_view",
    "review",
    "status",
    "step_needs",
    "step_numbers",
    "step_signatures",
]
