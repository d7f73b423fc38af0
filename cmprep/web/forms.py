"""The step form: what a technician typed and ticked, read from the posted fields, and each
entry judged before anything is written.

Judging uses what the service uses to decide, read-only: the pure value checks
(``check_entries``, ``check_window``), the lots and instruments checked by the materials
service (``trace``) and the Westgard check of the consistency service. So the page can say
at once, beside each field, "in spec", "alert", "out of spec: a deviation opens" or
"refused: why", and ask for an explicit "keep, and open a deviation" before an
out-of-spec value is saved. The save itself is one call to ``BatchService.record``, which
decides again from the batch as it then is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from cmprep.domain import ids
from cmprep.domain.batch import Batch
from cmprep.domain.clock import from_iso, parse_time
from cmprep.domain.validation import Finding, Verdict, check_entries, check_window
from cmprep.protocol.models import Step
from cmprep.service import Services


@dataclass
class StepForm:
    """One posted step form, as typed. Passwords are never kept in it."""

    values: dict[str, str] = field(default_factory=dict)  # parameter name -> raw text
    lots: list[str] = field(default_factory=list)  # one per material kind of the step ("" none)
    equipment: list[str] = field(default_factory=list)  # one per instrument kind ("" none)
    checks: list[bool] = field(default_factory=list)
    note: str = ""
    late: bool = False
    at: str = ""  # as typed: a datetime-local value, or ISO 8601 with a zone
    tz: str = ""  # the browser's offset from UTC in minutes, set by the page's script
    late_reason: str = ""
    keep: bool = False
    keep_reason: str = ""
    sign: bool = False
    seq: int = 0  # the batch's last event when the form was shown
    key: str = ""


def _one(form: Mapping[str, str], name: str) -> str:
    return str(form.get(name, "") or "")


def read_step_form(step: Step, form: Mapping[str, str]) -> StepForm:
    """The fields of STEP's form as posted; unknown fields are ignored."""
    values = {}
    for p in step.parameters:
        raw = _one(form, f"v_{p.name}").replace("\r\n", "\n")
        if raw.strip():
            values[p.name] = raw
    seq = _one(form, "seq")
    return StepForm(
        values=values,
        lots=[_one(form, f"lot_{i}").strip() for i in range(len(step.materials))],
        equipment=[_one(form, f"eq_{i}").strip() for i in range(len(step.equipment))],
        checks=[bool(_one(form, f"check_{i}")) for i in range(len(step.checks))],
        note=_one(form, "note").replace("\r\n", "\n").strip(),
        late=bool(_one(form, "late")),
        at=_one(form, "at").strip(),
        tz=_one(form, "tz").strip(),
        late_reason=_one(form, "late_reason").strip(),
        keep=bool(_one(form, "keep")),
        keep_reason=_one(form, "keep_reason").strip(),
        sign=bool(_one(form, "sign")),
        seq=int(seq) if seq.isdigit() else 0,
        key=_one(form, "key").strip(),
    )


def performed_text(f: StepForm) -> str | None:
    """When the step was done, as the service reads it: None for now; a browser's
    datetime-local value (no zone) is read in the browser's zone, given by the page's
    script, else as UTC (the field's label says so)."""
    if not f.late or not f.at:
        return None
    text = f.at
    if len(text) in (16, 19) and text[10:11] == "T" and text[-1].isdigit() and "+" not in text:
        offset = int(f.tz) if f.tz.lstrip("-").isdigit() and abs(int(f.tz)) <= 18 * 60 else 0
        sign = "+" if offset >= 0 else "-"
        hours, minutes = divmod(abs(offset), 60)
        text = f"{text}{sign}{hours:02d}:{minutes:02d}"
    return text


def note_for(step: Step, f: StepForm, kept: list[str]) -> str | None:
    """The note recorded with the step: what was typed, the reason of a late entry, the
    reason for keeping each out-of-spec value, and which check boxes were ticked."""
    parts = [f.note] if f.note else []
    if f.late and f.late_reason:
        parts.append(f"Late entry: {f.late_reason}")
    if kept and f.keep_reason:
        parts.append(f"Kept out of spec ({', '.join(kept)}): {f.keep_reason}")
    if step.checks:
        ticked = [c for c, on in zip(step.checks, f.checks, strict=False) if on]
        left = [c for c, on in zip(step.checks, f.checks, strict=False) if not on]
        if ticked:
            parts.append("Checked: " + "; ".join(ticked))
        if left:
            parts.append("Not checked: " + "; ".join(left))
    return " | ".join(parts) if parts else None


@dataclass(frozen=True)
class Mark:
    """A field's verdict as the page shows it beside the field."""

    verdict: str  # "in spec" | "alert" | "out of spec" | "refused" | "recorded" | "warning"
    message: str


@dataclass
class Judgement:
    """What the step form's live check found: a mark per field, refusals, values out of spec,
    notes."""

    marks: dict[str, Mark] = field(default_factory=dict)  # form field name -> mark
    refused: list[str] = field(default_factory=list)  # every refusal, in words
    out_of_spec: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # information: reference ranges

    def kept_labels(self, step: Step) -> list[str]:
        """What each out-of-spec finding is about, as the person reads it."""
        labels = []
        for x in self.out_of_spec:
            param = step.parameter(x.parameter)
            labels.append(param.label if param else (x.display or x.parameter))
        return labels


def judge(app: Services, batch: Batch, step: Step, f: StepForm, now: datetime) -> Judgement:
    """Every entry of the form judged as the service will judge it on save."""
    out = Judgement()
    performed = now
    if (at := performed_text(f)) is not None:
        try:
            performed = parse_time(at)
        except ValueError as err:
            out.marks["at"] = Mark("refused", str(err))
            out.refused.append(f"the time it was done: {err}")
    lot_ids = [x for x in f.lots if x]
    eq_ids = [x for x in f.equipment if x]
    trace = app.materials.trace(batch, step, lot_ids, eq_ids, performed)
    findings = check_entries(step, f.values, rotor_radius_cm=trace.rotor_radius_cm)
    if not any(x.refused for x in findings):
        findings += app.consistency.westgard_findings(batch, step, findings)
    findings += trace.findings
    if step.window and (start := batch.steps[step.window.after].performed_at):
        findings.append(check_window(step.window, step.title, from_iso(start), performed))
    _trace_marks(app, step, f, trace.findings, out)
    for x in findings:
        name = _field_of(step, f, x)
        if x.refused:
            out.refused.append(x.message)
        elif x.verdict == Verdict.out_of_spec:
            out.out_of_spec.append(x)
        if x.note:
            out.notes.append(x.note)
        if name is None:
            continue
        if name in out.marks and out.marks[name].verdict in ("refused", "out of spec"):
            continue  # the first, worst word about a field stays
        verdict = x.verdict.value if x.spec or x.verdict != Verdict.in_spec else "recorded"
        message = x.message if x.verdict != Verdict.in_spec else _in_spec_text(x)
        out.marks[name] = Mark(verdict, message)
    return out


def _in_spec_text(x: Finding) -> str:
    shown = x.display or x.raw
    return f"{shown} (spec {x.spec})" if x.spec else shown


def _field_of(step: Step, f: StepForm, x: Finding) -> str | None:
    """The form field a finding is about."""
    if step.parameter(x.parameter) is not None:
        return f"v_{x.parameter}"
    if x.parameter.startswith("lot:"):
        lot = ids.key(x.parameter[4:])  # the lot as stored; the field as typed, in any case
        return next((f"lot_{i}" for i, v in enumerate(f.lots) if ids.key(v) == lot), None)
    if x.parameter.startswith("equipment:"):
        ident = ids.key(x.parameter[10:])  # as stored; the field as typed, in any case
        return next((f"eq_{i}" for i, v in enumerate(f.equipment) if ids.key(v) == ident), None)
    if x.parameter.startswith("time_since_"):
        return "window"
    return None


def _trace_marks(
    app: Services, step: Step, f: StepForm, findings: list[Finding], out: Judgement
) -> None:
    """A lot or instrument that was found: what it is, and a warning when it is not of the
    kind this field asks for (a scanned freeze dryer in the centrifuge field)."""
    named = {x.parameter for x in findings}
    for i, (kind, typed) in enumerate(zip(step.materials, f.lots, strict=False)):
        item = app.materials.lot_named(typed) if typed else None  # read by key, any case
        if item is None or f"lot:{item.lot}" in named:
            continue
        text = f"{item.material} lot {item.lot}, expires {item.expiry}"
        if item.material.casefold() != kind.casefold():
            out.marks[f"lot_{i}"] = Mark("warning", f"{text}: not a {kind} lot")
        else:
            out.marks[f"lot_{i}"] = Mark("in spec", text)
    for i, (kind, typed) in enumerate(zip(step.equipment, f.equipment, strict=False)):
        inst = app.materials.instrument_named(typed) if typed else None  # by key, any case
        if inst is None or f"equipment:{inst.id}" in named:
            continue
        rotor = f", rotor {inst.rotor_radius_cm:g} cm" if inst.rotor_radius_cm else ""
        text = f"{inst.kind} {inst.id}, calibration due {inst.calibration_due}{rotor}"
        if inst.kind.casefold() != kind.casefold():
            out.marks[f"eq_{i}"] = Mark("warning", f"{text}: not a {kind}")
        else:
            out.marks[f"eq_{i}"] = Mark("in spec", text)


def local_input(moment: datetime) -> str:
    """A time as a datetime-local field shows it (UTC, to the minute)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")


def default_late_time(batch: Batch, now: datetime) -> str:
    """What the late-entry field offers first: an hour ago, not before the last step."""
    guess = now - timedelta(hours=1)
    last = batch.last_performed_at()
    if last and from_iso(last) > guess:
        guess = from_iso(last)
    return local_input(guess)


__all__ = [
    "Judgement",
    "Mark",
    "StepForm",
    "default_late_time",
    "judge",
    "local_input",
    "note_for",
    "performed_text",
    "read_step_form",
]
