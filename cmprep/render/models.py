"""The read models: what each screen, JSON answer and printed document shows, as typed
dataclasses.

Why here, and not in ``cmprep.service``: these classes are the contract between the one
place that builds them (the service, ``cmprep.service.views``) and everything that only
shows them (the templates, the JSON output, the terminal screens). Rendering must never
import ``cmprep.service`` (importing it pulls in the store and every service), so the
models live at the presentation boundary, in a module that imports nothing but the
standard library and the domain types a printed record carries. ``cmprep.service.models``
re-exports them under the service's name, for code that thinks of them as what the
service returns. ``cmprep.render`` loads its Jinja machinery lazily, so importing this
module does not import Jinja.

Why dataclasses: a field renamed in the service is then a TypeError where the view is
built, not an empty cell in a signed record; each template's context is exactly the fields
of one model, and ``tests/test_templates_contract.py`` fails on a field missing from the
model or left unused by its template.

JSON output is ``to_json()``: the fields in order, recursively, minus those marked
``SCREEN_ONLY`` (extra data a terminal screen needs that the JSON never promised). The
keys are those the command line printed before these models existed, so scripts that read
them keep working. ``view["key"]`` reads a field like ``view.key``; it is there so callers
written against the old dict answers keep working while they move to attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmprep.render.audit_report import AuditReportView, ParetoChart
from cmprep.render.status import (
    CorrectionLine,
    DueStep,
    ParameterNeeds,
    ProtocolRef,
    StatusView,
    StepStatus,
    ValueStatus,
    WindowStatus,
)
from cmprep.render.view import SCREEN_ONLY, View

if TYPE_CHECKING:
    from cmprep.domain.batch import Batch, Deviation, StepEntry
    from cmprep.domain.westgard import Violation
    from cmprep.protocol.models import Parameter, Protocol, Step

__all__ = [
    "AlertLine",
    "AuditReportView",
    "CheckLine",
    "ChecklistParam",
    "ChecklistStep",
    "ChecklistView",
    "CompareRow",
    "CompareView",
    "CorrectionLine",
    "DeviationView",
    "DueStep",
    "HoldLine",
    "LateEntry",
    "OutOfSpec",
    "ParameterNeeds",
    "ParetoChart",
    "ProtocolRef",
    "QCRecordRow",
    "QCSummaryRow",
    "RecordStep",
    "RecordSummary",
    "RecordView",
    "ReviewCorrection",
    "ReviewDeviation",
    "ReviewView",
    "SignatureLine",
    "SignatureRow",
    "SkippedStep",
    "SourceLine",
    "StatusView",
    "StepStatus",
    "TraceLine",
    "TrendView",
    "ValueStatus",
    "View",
    "WindowStatus",
]


@dataclass(frozen=True)
class OutOfSpec(View):
    """A value out of spec in the review by exception, with its deviations."""

    step: str
    parameter: str
    value: str
    spec: str
    deviations: list[str]


@dataclass(frozen=True)
class AlertLine(View):
    """A value in its alert band in the review by exception."""

    step: str
    parameter: str
    value: str
    message: str


@dataclass(frozen=True)
class ReviewDeviation(View):
    """A deviation as the reviewer reads it: where, how severe, and what became of it."""

    id: str
    step: str
    severity: str
    status: str
    kind: str
    decision: str | None


@dataclass(frozen=True)
class ReviewCorrection(View):
    """A correction as the reviewer reads it: old and new value, who, when and why."""

    step: str
    parameter: str
    old: str
    new: str
    by: str
    at: str
    reason: str


@dataclass(frozen=True)
class SkippedStep(View):
    """A step skipped, by whom and why."""

    step: str
    by: str | None
    reason: str | None


@dataclass(frozen=True)
class LateEntry(View):
    """A step entered later than it was done: both times and who entered it."""

    step: str
    performed_at: str | None
    entered_at: str | None
    by: str | None


@dataclass(frozen=True)
class HoldLine(View):
    """A hold as the record prints it: who, when, why, and its resumption."""

    actor: str
    at: str
    reason: str
    resumed_by: str | None
    resumed_at: str | None
    resume_reason: str | None


@dataclass(frozen=True)
class SignatureLine(View):
    """A signature as the record prints it: its meaning, the signer's printed name, when, and what
    it covers."""

    meaning: str
    signer: str
    full_name: str
    signed_at: str
    subject: dict[str, Any]  # {"kind": "batch" | "step" | ..., "id": ...}
    superseded: str = ""  # why it no longer counts ("the step changed after it"), "" if it does


@dataclass(frozen=True)
class ReviewView(View):
    """Review by exception: only what a reviewer must look at (``batch review``)."""

    batch: str
    protocol: str  # "id vversion"
    state: str
    out_of_spec: list[OutOfSpec]
    alerts: list[AlertLine]
    deviations: list[ReviewDeviation]
    corrections: list[ReviewCorrection]
    skipped: list[SkippedStep]
    late_entries: list[LateEntry]
    holds: list[HoldLine]
    missing_verifications: list[str]  # step ids
    signatures: list[SignatureLine]
    release_blockers: list[str]
    not_taken: list[str] = field(default_factory=list)  # branch arms not chosen
    decision: dict[str, Any] | None = None  # released or rejected: {decision, by, at, ...}


# --- one deviation (`deviation show --format json`) ------------------------------------------
@dataclass(frozen=True)
class DeviationView(View):
    """A deviation with its investigation, closure and the audit trail rows about it."""

    deviation_id: str
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
    investigated_by: str | None
    justification: str | None
    closed_by: str | None
    closed_at: str | None
    decision: str | None
    capa: str | None
    investigation: dict[str, Any] | None
    closure: dict[str, Any] | None
    history: list[dict[str, Any]]  # audit trail rows (describe()) of its events
    addendum: bool = False  # opened after the batch's release or rejection


# --- QC views ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrendView(View):
    """Levey-Jennings data of an analyte (``qc trend``)."""

    analyte: str
    label: str
    unit: str
    points: list[tuple[str, float, str]]  # (batch id, value in `unit`, batch state)
    mean: float
    sd: float
    baseline_count: int  # released batches the mean and SD come from
    violations: list[Violation]
    # the baseline's stratum in words: protocol, downstream route, cell source
    stratum: str = ""
    rules_from: int = 0  # released batches before rejection rules apply (site setting)


@dataclass(frozen=True)
class QCStratum(View):
    """One baseline a control chart can show: a protocol x downstream route x cell source,
    and how many of the newest batches with the analyte fall in it."""

    protocol: str
    route: str  # "" when the protocol has no downstream arm
    source: str
    batches: int

    def words(self) -> str:
        return f"{self.protocol}, route {self.route or 'none'}, cell source {self.source}"


@dataclass(frozen=True)
class CompareRow(View):
    """One analyte of one group in a comparison of secretomes: n, mean and SD."""

    analyte: str
    group: str  # printed under the grouping's name (protocol, source, preconditioning)
    n: int
    mean: str
    sd: str
    unit: str
    by: str = field(default="", metadata=SCREEN_ONLY)

    def to_json(self) -> dict[str, Any]:
        return {
            "analyte": self.analyte,
            self.by: self.group,
            "n": self.n,
            "mean": self.mean,
            "sd": self.sd,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class CompareView(View):
    """Groups of batches side by side (``qc compare``)."""

    by: str
    units: dict[str, str]  # analyte -> unit
    table: dict[str, dict[str, list[float]]]  # analyte -> group -> values
    rows: list[CompareRow]


@dataclass(frozen=True)
class QCSummaryRow(View):
    """One analyte of a batch, as the record's Quality control section starts from."""

    step: str
    name: str
    label: str
    method: str
    value: str  # as displayed, "" when not measured
    number: float | None
    verdict: str
    spec: str
    reference: str  # literature reference range, information only
    reference_source: str
    note: str
    replicates: dict[str, Any] | None
    deviations: list[str]
    trend: bool
    history: list[float]  # released batches of the same protocol, route and cell source
    history_mean: float | None
    history_sd: float | None
    # on a concentrating route: "300 pg/mL per unconcentrated CM (4500 pg/mL ÷ ...)"
    equivalent: str = ""
    route: str = ""  # the batch's downstream route (arm id), "" before it is taken


# --- printed documents: common parts ---------------------------------------------------------
@dataclass(frozen=True)
class SourceLine(View):
    """A cited source: ``short`` is the citation's short form (``Nasiri et al. 2026``)."""

    id: str
    short: str
    citation: str
    doi: str | None
    note: str | None


@dataclass(frozen=True)
class SignatureRow(View):
    """An electronic signature as printed (21 CFR 11.50): name, id, role, time, meaning."""

    meaning: str
    full_name: str
    signer: str
    role: str
    signed_at: str
    status: str = ""  # "", "valid", or the superseded text
    comment: str = ""
    line: str = ""  # batch signatures: the QA line it fills in ("Reviewed by (QA)")


# --- the batch record (templates/record.*) ---------------------------------------------------
@dataclass(frozen=True)
class RecordSummary(View):
    """The counts at the top of a batch record: steps done, skipped, not taken, open, late."""

    done: int
    skipped: int
    not_taken: int
    open_steps: int
    late: int
    corrections: int
    alerts: int
    deviations: int
    open_deviations: int
    holds: int
    missing_verifications: int


@dataclass(frozen=True)
class TraceLine(View):
    """A lot or instrument a step used, with the deviations opened for it there."""

    text: str
    deviations: list[str]


@dataclass(frozen=True)
class CheckLine(View):
    """A check item of a step (a `[ ]` line of the SOP) and who ticked it, if anyone."""

    text: str
    by: str  # "" when not ticked
    at: str


@dataclass(frozen=True)
class RecordStep(View):
    """One step of the batch record: the folded step and how the record prints it."""

    entry: StepEntry  # the folded step: status, values, times, notes
    number: str  # printed step number ("9a")
    branch_arms: list[str]  # ids of every arm of the step's branch, itself included
    window_text: str
    lots: list[TraceLine]
    equipment: list[TraceLine]
    signatures: list[SignatureRow]  # performed, then each verification
    missing_verification: bool
    checks: list[CheckLine] = field(default_factory=list)  # the step's check items


@dataclass(frozen=True)
class QCRecordRow(View):
    """One QC result as the record's QC table prints it."""

    step: str
    label: str
    method: str
    value: str
    spec: str
    note: str  # the whole reference note; `flag` is its short form
    measured: bool
    mark: tuple[str, str, str] | None  # (symbol, words, css class) of VERDICT_MARKS
    result: str  # "—" (not measured), "recorded" (nothing to meet) or "" (see mark)
    reference_text: str
    flag: str
    replicates_text: str
    replicate_values: str
    deviation_refs: list[str]  # "DEV-0002 (Westgard 1-3s)"
    spark: list[float]  # history then this value, for the sparkline; [] for none
    history_mean: float | None
    history_sd: float | None
    history_text: str
    equivalent: str = ""  # on a concentrate: the value per unconcentrated CM, and how


@dataclass(frozen=True)
class RecordView(View):
    """Everything the batch record prints (templates/record.html and record.md)."""

    batch: Batch  # the folded batch: holds, deviations, decision, chain head
    protocol: Protocol
    generated_at: str
    state_label: str
    numbers: dict[str, str]  # step id -> printed number
    sources: list[SourceLine]
    steps: list[RecordStep]  # in protocol order
    summary: RecordSummary
    batch_signatures: list[SignatureRow]
    qc_rows: list[QCRecordRow]
    qc_explanation: str
    ledger_head: str  # "" when not given
    ledger_pos: int  # the ledger's position (events in the log) with that head; 0: not given
    deviations: list[Deviation]  # the batch's own, as opened
    addenda: list[Deviation]  # deviations and complaints opened after the decision
    # a conditional release and what followed it, in words, oldest first ([] without one)
    conditional: list[str] = field(default_factory=list)


# --- the SOP checklist (templates/checklist.*) -----------------------------------------------
@dataclass(frozen=True)
class ChecklistParam(View):
    """A parameter as the SOP checklist prints it, with the source of its figures."""

    param: Parameter
    source: str  # short citation, the site-choice marker, or ""
    mark: str = ""  # the footnote marker of its source in the step ("1"), "" for none


@dataclass(frozen=True)
class ChecklistStep(View):
    """A step as the SOP checklist prints it: number, branch, window and parameters."""

    step: Step
    number: str
    branch_arms: list[str]  # titles of every arm of the step's branch
    window_text: str
    window_source: str
    params: list[ChecklistParam]
    notes: list[tuple[str, str]] = field(default_factory=list)  # (marker, source) footnotes


@dataclass(frozen=True)
class ChecklistView(View):
    """The printable SOP checklist of a protocol (templates/checklist.html and .md)."""

    protocol: Protocol
    protocol_hash: str
    generated_at: str
    sources: list[SourceLine]
    steps: list[ChecklistStep]
