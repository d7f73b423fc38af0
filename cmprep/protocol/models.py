"""A master protocol as the engine holds it: plain, frozen dataclasses.

Why plain: a protocol is validated once, when QA imports its file (``cmprep.protocol.schema``,
pydantic, strict); after that the engine reads the stored content, which is protected by its
content hash. Reading it again through pydantic (and importing pydantic at all) cost every
``batch status`` about 100 ms, so the stored content is built straight into these classes
(``from_content``), without a second validation. The field names, order and defaults are the
schema's (a test holds the two together), so ``to_content`` gives back exactly the content that
was stored and hashed.

Nothing here checks a protocol: the schema does, and ``cmprep.protocol.checks`` holds the
checks between its parts (sources, windows, branches, formulas, routes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from cmprep.digest import sha256_hex
from cmprep.events import canonical_json

if TYPE_CHECKING:
    from cmprep.protocol import expressions

SITE_CHOICE = "site choice"
DOWNSTREAM_BRANCH = "downstream"  # the branch whose arm is a batch's route (QC by route)
DERIVED_FIGURES = 3  # significant figures of a derived value unless its precision says


class Severity(str, Enum):
    minor = "minor"
    major = "major"
    critical = "critical"


class ParamType(str, Enum):
    number = "number"
    integer = "integer"
    text = "text"
    choice = "choice"
    yes_no = "yes/no"
    datetime = "date-time"
    duration = "duration"


class Method(str, Enum):
    """How a QC analyte is measured (the review's methods plus the usual release tests)."""

    elisa = "ELISA"
    nta = "NTA"
    mass_spectrometry = "mass spectrometry"
    qpcr = "qPCR"
    rna_seq = "RNA-seq"
    sterility = "sterility"
    endotoxin = "endotoxin"
    mycoplasma = "mycoplasma"
    viability = "viability"
    other = "other"


@dataclass(frozen=True, kw_only=True)
class Source:
    """A citation a figure can point to."""

    id: str
    citation: str
    doi: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Range:
    """Bounds on a number, either of which may be open."""

    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self, unit: str | None = None) -> str:
        u = f" {unit}" if unit else ""
        if self.min is not None and self.min == self.max:
            return f"{self.min:g}{u}"
        if self.min is not None and self.max is not None:
            sep = " to " if self.min < 0 or self.max < 0 else "-"
            return f"{self.min:g}{sep}{self.max:g}{u}"
        if self.min is not None:
            return f">= {self.min:g}{u}"
        return f"<= {self.max:g}{u}"

    def describe_alert(self, unit: str | None = None) -> str:
        """This range as an alert band, in words: when a value raises the alert.

        ``<= 0 %`` read as "alert if <= 0"; the band is where a value is quiet, so it is
        worded from the other side: ``alert if above 0 %``, ``alert if below 72 %``,
        ``alert outside 72-78 %``.
        """
        u = f" {unit}" if unit else ""
        if self.min is not None and self.max is not None:
            if self.min == self.max:
                return f"alert unless {self.min:g}{u}"
            return f"alert outside {self.describe(unit)}"
        if self.min is not None:
            return f"alert if below {self.min:g}{u}"
        return f"alert if above {self.max:g}{u}"


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What is in spec.

    Numbers: a range; choices: the accepted ones; yes/no: the expected answer.
    """

    min: float | None = None
    max: float | None = None
    one_of: list[str] | None = None
    equals: bool | None = None

    @property
    def range(self) -> Range | None:
        if self.min is None and self.max is None:
            return None
        return Range(min=self.min, max=self.max)

    def describe(self, unit: str | None = None) -> str:
        if self.range is not None:
            return self.range.describe(unit)
        if self.one_of is not None:
            return "one of " + ", ".join(self.one_of)
        return "yes" if self.equals else "no"


@dataclass(frozen=True, kw_only=True)
class RouteSpec:
    """A number's release spec on one downstream route (``route_specs: {concentrate: {min:
    500}}``): a concentrate is held to its own floor, not the fresh CM's. ``source`` is the
    figure's source; without one it is the parameter's."""

    min: float | None = None
    max: float | None = None
    source: str | None = None

    def as_spec(self) -> Spec:
        return Spec(min=self.min, max=self.max)


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A value a step asks for: its type, unit, spec, alert and limits, and the source of each
    figure."""

    name: str
    label: str
    type: ParamType = ParamType.number
    unit: str | None = None
    spec: Spec | None = None
    alert: Range | None = None
    limits: Range | None = None
    severity: Severity = Severity.major
    required: bool = True
    choices: list[str] | None = None
    source: str | None = None
    help: str | None = None
    verify: bool = False
    method: Method | None = None  # a QC analyte's assay
    reference: str | None = None  # id of a literature reference range (protocols/reference/)
    trend: bool = False  # watch batch-to-batch consistency (Westgard rules on released batches)
    # release spec by downstream route (arm id of the `downstream` branch), in place of `spec`
    route_specs: dict[str, RouteSpec] | None = None
    # a value computed from other parameters, never typed: a formula of
    # cmprep/protocol/expressions.py ("collection.volume / final_volume")
    derived: str | None = None
    precision: int | None = None  # significant figures (derived)

    @property
    def is_numeric(self) -> bool:
        return self.type in (ParamType.number, ParamType.integer, ParamType.duration)

    @property
    def is_qc_analyte(self) -> bool:
        """A parameter whose numbers make the lab's QC history: measured by an assay, or
        watched for batch-to-batch consistency."""
        return self.is_numeric and (self.method is not None or self.trend)

    @property
    def figures(self) -> int:
        """Significant figures a derived value is rounded to (3 unless the protocol says)."""
        return self.precision if self.precision is not None else DERIVED_FIGURES

    @property
    def formula(self) -> expressions.Node | None:
        """The derived value's formula as a tree (None for a typed value)."""
        return _formula(self.derived) if self.derived is not None else None


@dataclass(frozen=True, kw_only=True)
class Window:
    """When a step may be done, counted from an earlier step's recorded time."""

    after: str
    min: float | None = None
    max: float | None = None
    unit: str = "h"
    severity: Severity = Severity.major
    source: str

    @property
    def range(self) -> Range:
        return Range(min=self.min, max=self.max)


@dataclass(frozen=True, kw_only=True)
class Step:
    """A step of the protocol: its instructions, parameters, window and place in the order."""

    id: str
    title: str
    instructions: str
    checks: list[str] = field(default_factory=list)
    optional: bool = False
    branch: str | None = None
    verify: bool = False
    window: Window | None = None
    materials: list[str] = field(default_factory=list)  # kinds of material lot used, e.g. FBS
    equipment: list[str] = field(default_factory=list)  # kinds of instrument, e.g. centrifuge
    # the product leaves for use here, before the QC steps after it: recorded only under a
    # QA-signed conditional release naming the pending tests (fresh CM)
    use_before_qc: bool = False
    parameters: list[Parameter] = field(default_factory=list)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @cached_property
    def qc_analytes(self) -> tuple[tuple[int, Parameter], ...]:
        """(place among the step's parameters, parameter) of each QC analyte: worked out
        once per step, as every write and every fold's QC points ask for them."""
        return tuple((n, p) for n, p in enumerate(self.parameters) if p.is_qc_analyte)


@lru_cache(maxsize=1024)
def _formula(text: str) -> expressions.Node:
    from cmprep.protocol import expressions

    return expressions.parse(text)


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """A protocol version as the engine runs it: plain data, built from the stored, hash-checked
    content."""

    id: str
    version: str
    title: str
    summary: str
    status: str = "approved"  # draft | approved | retired
    late_entry_minutes: float = 60  # an int, as the schema's default is stored
    # severity of the deviation opened by a Westgard rule violation on a trended analyte
    trend_severity: Severity = Severity.minor
    # severity of the deviation opened by an expired lot or an instrument past calibration
    traceability_severity: Severity = Severity.major
    # may a batch pool material of more than one donor (lineage)? If not, a pool opens a
    # deviation of traceability_severity
    pooling_across_donors: bool = False
    sources: list[Source]
    steps: list[Step]

    def inputs_of(self, step: Step, name: expressions.Name) -> list[tuple[Step, Parameter]]:
        """Where a formula's name is read from: the step's own parameter, an earlier
        step's, or for a branch every arm's (the one done gives the value). Empty: none."""
        if name.step is None or name.step == step.id:
            param = step.parameter(name.name)
            return [(step, param)] if param is not None else []
        arms = [s for s in self.steps if s.id == name.step or s.branch == name.step]
        found = [(s, s.parameter(name.name)) for s in arms]
        return [(s, p) for s, p in found if p is not None] if found else []

    # --- what the engine asks of a protocol -------------------------------------------
    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def source(self, source_id: str | None) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def stages(self) -> list[list[Step]]:
        """Steps grouped as they are done: a branch's arms form one stage."""
        out: list[list[Step]] = []
        for step in self.steps:
            if step.branch and out and out[-1][0].branch == step.branch:
                out[-1].append(step)
            else:
                out.append([step])
        return out

    def with_status(self, status: str) -> Protocol:
        """The same protocol with another status (the stream's, never the file's)."""
        return self if status == self.status else replace(self, status=status)

    def to_content(self) -> dict[str, Any]:
        """The protocol as stored: JSON-ready, every field in the schema's order."""
        content = _plain(self)
        assert isinstance(content, dict)
        return content

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of the content: the identity a batch refers to."""
        return sha256_hex(canonical_json(self.to_content()).encode())


def stage_name(stage: list[Step]) -> str:
    return stage[0].branch if stage[0].branch else stage[0].id


# --- from and to stored content ---------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A model as JSON-ready data (what pydantic's ``model_dump(mode="json")`` gives)."""
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _range(data: dict[str, Any] | None) -> Range | None:
    return Range(**data) if data is not None else None


def _parameter(data: dict[str, Any]) -> Parameter:
    d = dict(data)
    d["type"] = ParamType(d.get("type", "number"))
    d["severity"] = Severity(d.get("severity", "major"))
    if d.get("method") is not None:
        d["method"] = Method(d["method"])
    if d.get("spec") is not None:
        d["spec"] = Spec(**d["spec"])
    d["alert"], d["limits"] = _range(d.get("alert")), _range(d.get("limits"))
    if d.get("route_specs") is not None:
        d["route_specs"] = {k: RouteSpec(**v) for k, v in d["route_specs"].items()}
    return Parameter(**d)


def _step(data: dict[str, Any]) -> Step:
    d = dict(data)
    if d.get("window") is not None:
        w = dict(d["window"])
        w["severity"] = Severity(w.get("severity", "major"))
        d["window"] = Window(**w)
    d["parameters"] = [_parameter(p) for p in d.get("parameters", [])]
    return Step(**d)


def from_content(content: dict[str, Any]) -> Protocol:
    """Stored content (validated when it was imported, protected by its hash) as the model.

    No checks: a key this program does not know, or a missing one without a default, is a
    TypeError or KeyError the caller reports as a damaged store. A key added to the schema
    after the content was stored takes its default, as the schema would give it."""
    d = dict(content)
    d["trend_severity"] = Severity(d.get("trend_severity", "minor"))
    d["traceability_severity"] = Severity(d.get("traceability_severity", "major"))
    d["sources"] = [Source(**s) for s in d.get("sources", [])]
    d["steps"] = [_step(s) for s in d.get("steps", [])]
    return Protocol(**d)


__all__ = [
    "DERIVED_FIGURES",
    "DOWNSTREAM_BRANCH",
    "SITE_CHOICE",
    "Method",
    "ParamType",
    "Parameter",
    "Protocol",
    "Range",
    "RouteSpec",
    "Severity",
    "Source",
    "Spec",
    "Step",
    "Window",
    "from_content",
    "stage_name",
]
