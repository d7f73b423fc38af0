"""The schema of a protocol file: what QA writes in YAML, checked (pydantic) on import.

The models are strict (unknown keys are errors) because a typo in a protocol file
("sepc:") silently dropping a specification would be the worst kind of bug in a GMP tool.

Only a file being read (``cmprep.protocol.loader``, ``validate``) comes through here: what
passes is handed on as the plain model the engine holds (``cmprep.protocol.models``), whose
fields are these, in this order (a test holds the two together). Stored content is read
straight into the plain model; so pydantic is imported where a file is checked, never by a
command that only reads batches.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cmprep.protocol import expressions, models, units
from cmprep.protocol.checks import CrossReferenceError, cross_reference_problems
from cmprep.protocol.models import SITE_CHOICE, Method, ParamType, Severity

_ID = r"^[a-z][a-z0-9_\-]*$"


class Strict(BaseModel):
    # allow_inf_nan=False: `max: .nan` compares false with everything, so a NaN bound
    # would pass every value, and `.inf` (or 1e400, which YAML reads as infinity) is no
    # limit a lab can meet; both are refused with the field's name and line.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    def bounded(self) -> bool:
        """A number's spec: a min, a max or both."""
        return self.min is not None or self.max is not None


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
            if numeric and not self.spec.bounded:
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
        if self.spec and self.spec.bounded and self.limits:
            lim, sp = self.limits, self.spec
            if (lim.min is not None and sp.min is not None and sp.min < lim.min) or (
                lim.max is not None and sp.max is not None and sp.max > lim.max
            ):
                raise ValueError("the spec reaches outside the hard limits")
        if self.alert and self.spec and self.spec.bounded:
            sp, al = self.spec, self.alert
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
        problems = cross_reference_problems(models.from_content(self.model_dump(mode="json")))
        if problems:
            raise CrossReferenceError(problems)
        return self


def validate(data: Any) -> models.Protocol:
    """DATA (a protocol file's mapping) checked, as the plain model the engine holds;
    pydantic's ValidationError when it is not a protocol (the loader gives each error's
    line)."""
    return models.from_content(Protocol.model_validate(data).model_dump(mode="json"))
