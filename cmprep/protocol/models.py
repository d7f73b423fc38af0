"""A master protocol as data: the schema QA writes in YAML and the engine trusts.

The models are strict (unknown keys are errors) because a typo in a protocol file
("sepc:") silently dropping a specification would be the worst kind of bug in a GMP tool.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cmprep.events import canonical_json
from cmprep.protocol import units

SITE_CHOICE = "site choice"
_ID = r"^[a-z][a-z0-9_\-]*$"


class Strict(BaseModel):
    # allow_inf_nan=False: `max: .nan` compares false with everything, so a NaN bound
    # would pass every value, and `.inf` (or 1e400, which YAML reads as infinity) is no
    # limit a lab can meet; both are refused with the field's name and line.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


class Source(Strict):
    """A citation a figure can point to."""

    id: Annotated[str, Field(pattern=_ID)]
    citation: str = Field(min_length=5)
    doi: str | None = None
    note: str | None = None


class Range(Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self

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


class Spec(Strict):
    """What is in spec.

    Numbers: a range; choices: the accepted ones; yes/no: the expected answer.
    """

    min: float | None = None
    max: float | None = None
    one_of: list[str] | None = None
    equals: bool | None = None

    @model_validator(mode="after")
    def _shape(self) -> Spec:
        kinds = sum(
            [
                self.min is not None or self.max is not None,
                self.one_of is not None,
                self.equals is not None,
            ]
        )
        if kinds != 1:
            raise ValueError("a spec is either min/max, one_of or equals")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self

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


class Parameter(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
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

    @field_validator("unit")
    @classmethod
    def _unit_parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not units.is_known(value):
            raise ValueError(f"unit {value!r} does not parse (known: see the README's unit table)")
        return units.canonical(value)

    @model_validator(mode="after")
    def _coherent(self) -> Parameter:
        numeric = self.type in (ParamType.number, ParamType.integer, ParamType.duration)
        if self.type == ParamType.duration and (
            self.unit is None or units.lookup(self.unit).dimension != "time"
        ):
            raise ValueError("a duration needs a time unit (min, h or d)")
        if self.type == ParamType.choice and not self.choices:
            raise ValueError("a choice parameter needs choices")
        if self.choices and self.type != ParamType.choice:
            raise ValueError("choices are only for type: choice")
        if not numeric and (self.alert or self.limits):
            raise ValueError("alert and limits are only for numbers")
        if not numeric and self.unit and self.type != ParamType.duration:
            raise ValueError(f"a {self.type.value} parameter has no unit")
        if self.spec is not None:
            if numeric and self.spec.range is None:
                raise ValueError("a number's spec is min/max")
            if self.type == ParamType.choice:
                if self.spec.one_of is None:
                    raise ValueError("a choice's spec is one_of")
                unknown = [c for c in self.spec.one_of if c not in (self.choices or [])]
                if unknown:
                    raise ValueError(f"spec.one_of names {unknown} which are not among choices")
            if self.type == ParamType.yes_no and self.spec.equals is None:
                raise ValueError("a yes/no spec is equals: true or equals: false")
            if self.type in (ParamType.text, ParamType.datetime):
                raise ValueError(f"a {self.type.value} parameter has no spec")
        if self.spec and self.spec.range and self.limits:
            lim, sp = self.limits, self.spec.range
            if (lim.min is not None and sp.min is not None and sp.min < lim.min) or (
                lim.max is not None and sp.max is not None and sp.max > lim.max
            ):
                raise ValueError("the spec reaches outside the hard limits")
        if self.alert and self.spec and self.spec.range:
            sp, al = self.spec.range, self.alert
            if (al.min is not None and sp.min is not None and al.min < sp.min) or (
                al.max is not None and sp.max is not None and al.max > sp.max
            ):
                raise ValueError("the alert band must lie inside the spec")
        if self.spec is not None and self.source is None:
            raise ValueError(f"a spec needs a source: a source id or {SITE_CHOICE!r}")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in (ParamType.number, ParamType.integer, ParamType.duration)


class Window(Strict):
    """When a step may be done, counted from an earlier step's recorded time."""

    after: str
    min: float | None = None
    max: float | None = None
    unit: str = "h"
    severity: Severity = Severity.major
    source: str

    @field_validator("unit")
    @classmethod
    def _time_unit(cls, value: str) -> str:
        if not units.is_known(value) or units.lookup(value).dimension != "time":
            raise ValueError(f"a window's unit must be a time unit, not {value!r}")
        return units.canonical(value)

    @model_validator(mode="after")
    def _range(self) -> Window:
        Range(min=self.min, max=self.max)  # same checks: at least one bound, ordered
        return self

    @property
    def range(self) -> Range:
        return Range(min=self.min, max=self.max)


class Step(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    title: str
    instructions: str
    checks: list[str] = Field(default_factory=list)
    optional: bool = False
    branch: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")] | None = None
    verify: bool = False
    window: Window | None = None
    materials: list[str] = Field(default_factory=list)  # kinds of material lot used, e.g. FBS
    equipment: list[str] = Field(default_factory=list)  # kinds of instrument, e.g. centrifuge
    parameters: list[Parameter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_parameters(self) -> Step:
        seen: set[str] = set()
        for p in self.parameters:
            if p.name in seen:
                raise ValueError(f"parameter {p.name!r} appears twice")
            seen.add(p.name)
        if self.branch and self.optional:
            raise ValueError("a branch arm is chosen, not skipped; drop optional")
        return self

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


# Where something is in a protocol document: the keys and item numbers leading to it, as
# pydantic gives a validation error's place (("steps", 3, "parameters", 0, "spec")).
Loc = tuple[str | int, ...]


class CrossReferenceError(ValueError):
    """Problems between parts of a protocol, each with its place (for the loader's lines)."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class Protocol(Strict):
    id: Annotated[str, Field(pattern=_ID)]
    version: Annotated[str, Field(pattern=r"^\d+(\.\d+){0,2}$")]
    title: str
    summary: str
    status: Literal["draft", "approved", "retired"] = "approved"
    late_entry_minutes: float = Field(default=60, gt=0)
    # severity of the deviation opened by a Westgard rule violation on a trended analyte
    trend_severity: Severity = Severity.minor
    # severity of the deviation opened by an expired lot or an instrument past calibration
    traceability_severity: Severity = Severity.major
    sources: list[Source] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        problems: list[tuple[Loc, str]] = []  # (place in the file, message)
        ids = [s.id for s in self.steps]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            second = [n for n, i in enumerate(ids) if i == dup][1]
            problems.append((("steps", second, "id"), f"duplicate step ids: {dup}"))
        source_ids = {s.id for s in self.sources}
        for n, step in enumerate(self.steps):
            for k, p in enumerate(step.parameters):
                if p.source and p.source != SITE_CHOICE and p.source not in source_ids:
                    problems.append(
                        (
                            ("steps", n, "parameters", k, "source"),
                            f"step {step.id}, parameter {p.name}: source {p.source!r} is not "
                            f"among the protocol's sources ({', '.join(sorted(source_ids))}) "
                            f"nor {SITE_CHOICE!r}",
                        )
                    )
            if step.window:
                w = step.window
                if w.after not in ids or ids.index(w.after) >= n:
                    problems.append(
                        (
                            ("steps", n, "window", "after"),
                            f"step {step.id}: window.after {w.after!r} is not an earlier step",
                        )
                    )
                if w.source != SITE_CHOICE and w.source not in source_ids:
                    problems.append(
                        (
                            ("steps", n, "window", "source"),
                            f"step {step.id}: window source {w.source!r} is unknown",
                        )
                    )
        # branches: consecutive arms, at least two
        groups: dict[str, list[int]] = {}
        for i, step in enumerate(self.steps):
            if step.branch:
                groups.setdefault(step.branch, []).append(i)
        for name, idx in groups.items():
            where = ("steps", idx[0], "branch")
            if len(idx) < 2:
                problems.append(
                    (
                        where,
                        f"branch {name!r} has one arm ({self.steps[idx[0]].id}); "
                        "a branch needs two or more",
                    )
                )
            if idx != list(range(idx[0], idx[0] + len(idx))):
                problems.append((where, f"branch {name!r}: its arms must be consecutive steps"))
            if name in ids:
                problems.append((where, f"branch {name!r} has the name of a step"))
        if problems:
            raise CrossReferenceError(problems)
        return self

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

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of the model: the identity a batch copies."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


def stage_name(stage: list[Step]) -> str:
    return stage[0].branch if stage[0].branch else stage[0].id
