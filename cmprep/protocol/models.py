"""A master protocol as data: the schema QA writes in YAML and the engine trusts.

The models are strict (unknown keys are errors) because a typo in a protocol file
("sepc:") silently dropping a specification would be the worst kind of bug in a GMP tool.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cmprep.events import canonical_json
from cmprep.protocol import expressions, units

SITE_CHOICE = "site choice"
DOWNSTREAM_BRANCH = "downstream"  # the branch whose arm is a batch's route (QC by route)
DERIVED_FIGURES = 3  # significant figures of a derived value unless its precision says
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


class RouteSpec(Strict):
    """A number's release spec on one downstream route (``route_specs: {concentrate: {min:
    500}}``): a concentrate is held to its own floor, not the fresh CM's. ``source`` is the
    figure's source; without one it is the parameter's."""

    min: float | None = None
    max: float | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RouteSpec:
        self.as_spec()  # same checks as a spec: a bound, in order
        return self

    def as_spec(self) -> Spec:
        return Spec(min=self.min, max=self.max)


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
    # release spec by downstream route (arm id of the `downstream` branch), in place of `spec`
    route_specs: dict[str, RouteSpec] | None = None
    # a value computed from other parameters, never typed: a formula of
    # cmprep/protocol/expressions.py ("collection.volume / final_volume")
    derived: str | None = None
    precision: int | None = Field(default=None, ge=1, le=15)  # significant figures (derived)

    @model_validator(mode="before")
    @classmethod
    def _derived_is_not_entered(cls, data: object) -> object:
        """A derived value is computed, never entered, so it is never "required" (a form
        that asks for every required value must not ask for it)."""
        if isinstance(data, dict) and data.get("derived") is not None:
            if data.get("required") is True:
                raise ValueError("a derived value is computed, never entered: drop required")
            return {**data, "required": False}
        return data

    @field_validator("derived")
    @classmethod
    def _formula_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                expressions.parse(value)
            except expressions.ExpressionError as err:
                raise ValueError(f"the formula {value!r} does not read: {err}") from None
        return value

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
        if self.route_specs and not numeric:
            raise ValueError("route_specs are only for numbers")
        if (
            self.route_specs
            and self.source is None
            and any(r.source is None for r in self.route_specs.values())
        ):
            raise ValueError(f"a route spec needs a source: a source id or {SITE_CHOICE!r}")
        if self.derived is not None and self.type != ParamType.number:
            raise ValueError("a derived value is a number (type: number)")
        if self.precision is not None and self.derived is None:
            raise ValueError("precision is for derived values (a typed value is kept as typed)")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in (ParamType.number, ParamType.integer, ParamType.duration)

    @property
    def figures(self) -> int:
        """Significant figures a derived value is rounded to (3 unless the protocol says)."""
        return self.precision if self.precision is not None else DERIVED_FIGURES

    @property
    def formula(self) -> expressions.Node | None:
        """The derived value's formula as a tree (None for a typed value)."""
        return _formula(self.derived) if self.derived is not None else None


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
    # the product leaves for use here, before the QC steps after it: recorded only under a
    # QA-signed conditional release naming the pending tests (fresh CM)
    use_before_qc: bool = False
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


@lru_cache(maxsize=1024)
def _formula(text: str) -> expressions.Node:
    return expressions.parse(text)


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
    # may a batch pool material of more than one donor (lineage)? If not, a pool opens a
    # deviation of traceability_severity
    pooling_across_donors: bool = False
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
        problems.extend(_derived_problems(self))
        problems.extend(_route_problems(self, source_ids))
        if problems:
            raise CrossReferenceError(problems)
        return self

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

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of the model: the identity a batch copies."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


def _derived_problems(protocol: Protocol) -> list[tuple[Loc, str]]:
    """Every formula reads numbers recorded before it, and its units work out.

    A name is a parameter of the same step declared above it (a derived value may use
    another), or ``step.name`` of a step in an earlier stage, or ``branch.name`` where every
    arm of an earlier branch has that parameter in units of one kind."""
    problems: list[tuple[Loc, str]] = []
    stage_of: dict[str, int] = {}
    for number, stage in enumerate(protocol.stages()):
        for s in stage:
            stage_of[s.id] = number
            if s.branch:
                stage_of[s.branch] = number
    for n, step in enumerate(protocol.steps):
        for k, param in enumerate(step.parameters):
            node = param.formula
            if node is None:
                continue
            where: Loc = ("steps", n, "parameters", k, "derived")
            said = f"step {step.id}, parameter {param.name}"
            kinds: dict[expressions.Name, expressions.Kind] = {}
            wrong: list[str] = []
            for name in expressions.names(node):
                if name in kinds or name.text in wrong:
                    continue
                problem = _input_problem(protocol, step, k, name, stage_of)
                if problem:
                    wrong.append(name.text)
                    problems.append((where, f"{said}: {name.text} {problem}"))
                    continue
                found = protocol.inputs_of(step, name)
                arm_kinds = {expressions.kind_of(p.unit).dims for _, p in found}
                if len(arm_kinds) > 1:
                    wrong.append(name.text)
                    units_named = ", ".join(f"{s.id}: {p.unit or 'no unit'}" for s, p in found)
                    problems.append(
                        (
                            where,
                            f"{said}: {name.text} is in units of different kinds in the "
                            f"arms of {name.step} ({units_named})",
                        )
                    )
                    continue
                kinds[name] = expressions.kind_of(found[0][1].unit)
            if wrong:
                continue
            try:
                expressions.check_result(node, kinds.__getitem__, param.unit)
            except expressions.ExpressionError as err:
                problems.append((where, f"{said}: {err}"))
    return problems


def _input_problem(
    protocol: Protocol, step: Step, index: int, name: expressions.Name, stage_of: dict[str, int]
) -> str | None:
    """Why NAME cannot be read by the formula of the INDEX-th parameter of STEP, or None."""
    found = protocol.inputs_of(step, name)
    own = name.step is None or name.step == step.id
    if own:
        if not found:
            known = ", ".join(p.name for p in step.parameters) or "none"
            return f"is not a parameter of step {step.id} (its parameters: {known})"
        position = step.parameters.index(found[0][1])
        if position == index:
            return "is the derived value itself"
        if found[0][1].derived is not None and position > index:
            return "is derived below this one; list it first"
    else:
        assert name.step is not None
        if name.step not in stage_of:
            return f"names {name.step!r}, which is neither a step nor a branch of this protocol"
        if stage_of[name.step] >= stage_of[step.id]:
            return f"names {name.step!r}, which is not done before step {step.id}"
        arms = [s for s in protocol.steps if s.id == name.step or s.branch == name.step]
        if len(found) < len(arms):
            missing = ", ".join(s.id for s in arms if s.parameter(name.name) is None)
            return f"is not a parameter of {missing}"
    for s, p in found:
        if not p.is_numeric:
            return f"is a {p.type.value} parameter of step {s.id}; a formula reads numbers"
    return None


def _route_problems(protocol: Protocol, source_ids: set[str]) -> list[tuple[Loc, str]]:
    """A route spec names an arm of the ``downstream`` branch, and a known source; a step
    used before QC has a step with a release test after it."""
    arms = [s.id for s in protocol.steps if s.branch == DOWNSTREAM_BRANCH]
    problems: list[tuple[Loc, str]] = []
    for n, step in enumerate(protocol.steps):
        for k, p in enumerate(step.parameters):
            for route, rs in (p.route_specs or {}).items():
                where: Loc = ("steps", n, "parameters", k, "route_specs", route)
                if route not in arms:
                    known = ", ".join(arms) or f"none: the protocol has no {DOWNSTREAM_BRANCH!r}"
                    problems.append(
                        (
                            where,
                            f"step {step.id}, parameter {p.name}: route {route!r} is not "
                            f"an arm of the {DOWNSTREAM_BRANCH!r} branch ({known})",
                        )
                    )
                if rs.source and rs.source != SITE_CHOICE and rs.source not in source_ids:
                    problems.append(
                        (
                            where,
                            f"step {step.id}, parameter {p.name}: route spec source "
                            f"{rs.source!r} is unknown",
                        )
                    )
        later = protocol.steps[n + 1 :]
        if step.use_before_qc and not any(
            p.method is not None and p.spec is not None for s in later for p in s.parameters
        ):
            problems.append(
                (
                    ("steps", n, "use_before_qc"),
                    f"step {step.id} is used before QC, but no step after it has a release "
                    "test (a parameter with a method and a spec)",
                )
            )
    return problems


def stage_name(stage: list[Step]) -> str:
    return stage[0].branch if stage[0].branch else stage[0].id
