"""The downstream route of a batch, and what it changes about its QC.

Why: the same filtered CM is used fresh, concentrated 10-20x by ultrafiltration, or
lyophilised and reconstituted. A VEGF result on a concentrate is ten or twenty times the
one on the CM it came from, so it cannot be held to the fresh CM's release spec, judged
against the literature's range for unconcentrated CM, nor pooled with fresh batches in one
Westgard baseline. The route is the arm the batch took in its protocol's ``downstream``
branch (``use_fresh``, ``concentrate``, ``lyophilise``): route-specific release specs
(``route_specs`` of a parameter) replace the general spec on that route, a reference
comparison divides a concentration by the recorded concentration factor, and a baseline is
one protocol x route x cell source.

A concentration factor is read from the arm's ``concentration_factor`` value (typed, or
derived from the collected and final volumes). An arm that declares none keeps the CM's
strength (factor 1). An arm that declares one without a usable value cannot be compared:
the record says so, never guesses. Pure: decisions from a folded batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cmprep.domain.batch import Batch
from cmprep.domain.numbers import format_number, usable_number
from cmprep.protocol.models import DOWNSTREAM_BRANCH, Parameter, Protocol, Step

if TYPE_CHECKING:  # findings are made by validation on the write path; a status only reads
    from cmprep.domain.validation import Finding

DOWNSTREAM = DOWNSTREAM_BRANCH  # the branch whose arm is a batch's route
FACTOR = "concentration_factor"  # the parameter of an arm that gives its concentration factor
EQUIVALENT = "per unconcentrated CM"  # how a divided value is named


def arms(protocol: Protocol) -> list[str]:
    """The routes a protocol offers: the ids of its downstream arms ([] without one)."""
    return [s.id for s in protocol.steps if s.branch == DOWNSTREAM]


def route_of(batch: Batch) -> str:
    """The downstream arm the batch took, or "" (not taken yet, or no such branch)."""
    for entry in batch.steps.values():
        if entry.step.branch == DOWNSTREAM and entry.status == "done":
            return entry.step.id
    return ""


def route_label(protocol: Protocol, route: str) -> str:
    """``concentrate (Concentration by ultrafiltration)``, or ``no downstream route``."""
    step = protocol.step(route) if route else None
    return f"{route} ({step.title})" if step else "no downstream route"


@dataclass(frozen=True)
class Strength:
    """How the route's product relates to the CM: ``factor`` divides a concentration back
    to the unconcentrated CM (1: as the CM); None when it cannot (``problem`` says why)."""

    route: str
    factor: float | None
    concentrated: bool  # the arm declares a concentration factor
    problem: str = ""


def strength(batch: Batch) -> Strength:
    """The batch's route and its concentration factor as the record stands."""
    route = route_of(batch)
    if not route:
        return Strength("", 1.0, False)
    entry = batch.steps[route]
    value = entry.values.get(FACTOR)
    if entry.step.parameter(FACTOR) is None and value is None:
        return Strength(route, 1.0, False)
    number = usable_number(value.value) if value is not None else None
    if number is None or number <= 0:
        return Strength(
            route,
            None,
            True,
            f"no concentration factor is recorded at {entry.step.id} ({entry.step.title}), "
            "so it cannot be compared",
        )
    return Strength(route, number, True)


def routed_step(step: Step, route: str) -> Step:
    """STEP with each parameter's spec for ROUTE (``route_specs``) in place of its general
    one: what a value recorded on that route is judged against."""
    if not route or not any(p.route_specs and route in p.route_specs for p in step.parameters):
        return step
    return replace(step, parameters=[routed(p, route) for p in step.parameters])


def routed(param: Parameter, route: str) -> Parameter:
    """PARAM as it applies on ROUTE: its route spec (and that spec's source) if it has one."""
    own = (param.route_specs or {}).get(route)
    if own is None:
        return param
    spec = own.as_spec()
    return replace(param, spec=spec, source=own.source or param.source)


def dilutes(unit: str | None) -> bool:
    """Whether a value in UNIT scales with concentration (pg/mL, particles/mL, EU/mL), so
    that dividing it by the factor gives the CM's; an amount per 10^6 cells does not.
    The unit table is loaded here, not with the module: ``batch status`` of a batch on
    no concentrating route reads the route and never a unit."""
    from cmprep.protocol import units

    if not unit:
        return False
    try:
        dimension = units.lookup(unit).dimension
    except (units.UnitError, KeyError):
        return False
    return dimension.endswith("concentration") or dimension == "endotoxin"


@dataclass(frozen=True)
class Comparison:
    """A QC value as compared with its literature range on the batch's route."""

    equivalent: float | None  # the value per unconcentrated CM (None: not divided)
    text: str  # "300 pg/mL per unconcentrated CM (4500 pg/mL ÷ concentration factor 15)"
    note: str  # the reference note: outside the range, or why it cannot be compared


def compare(param: Parameter, value: float, how: Strength) -> Comparison:
    """VALUE of PARAM compared with its literature range, after dividing by the factor on a
    concentrating route. Information only, never a deviation."""
    from cmprep.protocol.reference import flag, load_all

    reference = param.reference
    if not how.concentrated or not dilutes(param.unit):
        return Comparison(None, "", (flag(reference, value, param.unit) or "") if reference else "")
    unit = f" {param.unit}" if param.unit else ""
    if how.factor is None:
        entry = load_all().get(reference) if reference else None
        against = f" with the literature reference range {entry[0].describe()}" if entry else ""
        return Comparison(
            None,
            "",
            f"{param.label} {format_number(value)}{unit} is measured on the {how.route} "
            f"product; {how.problem}{against} (information only)",
        )
    equivalent = value / how.factor
    text = (
        f"{format_number(equivalent)}{unit} {EQUIVALENT} ({format_number(value)}{unit} "
        f"÷ concentration factor {format_number(how.factor)})"
    )
    note = flag(reference, equivalent, param.unit) if reference else None
    return Comparison(equivalent, text, f"{EQUIVALENT}: {note}" if note else "")


def noted(batch: Batch, step: Step, findings: list[Finding]) -> list[Finding]:
    """FINDINGS with the reference note of each value compared on the batch's route: on a
    concentrate, after dividing by its concentration factor (or saying it cannot be)."""
    how = strength(batch)
    if not how.concentrated:
        return findings
    out = []
    for f in findings:
        param = step.parameter(f.parameter)
        if param is None or not param.reference or not isinstance(f.value, float) or f.refused:
            out.append(f)
            continue
        out.append(replace(f, note=compare(param, f.value, how).note))
    return out


__all__ = [
    "DOWNSTREAM",
    "EQUIVALENT",
    "FACTOR",
    "Comparison",
    "Strength",
    "arms",
    "compare",
    "dilutes",
    "noted",
    "route_label",
    "route_of",
    "routed",
    "routed_step",
    "strength",
]
