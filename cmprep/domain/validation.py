"""Checking entered values against a protocol: findings, not exceptions.

Each value ends in one of four verdicts: in spec, in spec but past the alert band
(recorded with a warning), out of spec (recorded, and a deviation opens), or refused
(impossible, unreadable, unknown). The service decides what to write from the list;
returning every finding at once lets a technician fix all their typos in one go.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from cmprep.domain.clock import parse_time
from cmprep.domain.text import control_problem
from cmprep.errors import Hint
from cmprep.protocol import units
from cmprep.protocol.expressions import significant
from cmprep.protocol.models import Parameter, ParamType, Severity, Spec, Step, Window


class Verdict(str, Enum):
    in_spec = "in spec"
    alert = "alert"
    out_of_spec = "out of spec"
    refused = "refused"


@dataclass(frozen=True)
class Finding:
    """What checking one entered value found: its verdict, the parsed value and the words said
    about it."""

    parameter: str
    verdict: Verdict
    message: str
    value: object = None  # the value in the protocol's unit (JSON-serialisable)
    raw: str = ""
    spec: str = ""
    severity: Severity | None = None
    display: str = ""  # the value as the record prints it, in the protocol's unit
    note: str = ""  # information that is not a verdict: outside a literature reference range
    hint: Hint | None = None  # what to do about a refusal (register the lot first)
    raised_by: str = ""  # a rule that opens the deviation (Westgard 1-3s), not the person
    # a derived value: its formula and the inputs it was computed from ("name", "display")
    formula: str = ""
    inputs: tuple[tuple[str, str], ...] = ()
    step: str = ""  # the step the value belongs to, when not the step being written

    @property
    def refused(self) -> bool:
        return self.verdict == Verdict.refused


_YES = {"yes", "y", "true", "1", "pass", "passed", "ok"}
_NO = {"no", "n", "false", "0", "fail", "failed"}


def format_value(param: Parameter, value: object, raw: str | None = None) -> str:
    """A value as the record prints it, in the protocol's unit.

    A number typed in the protocol's unit keeps the digits typed; one converted from
    another unit (1950 rpm with a rotor radius, 0.318 ng/mL) is shown to 3 significant
    figures, not to the converter's precision (701 x g, not 701.447 x g)."""
    if value is None:
        return ""
    if param.type == ParamType.yes_no:
        return "yes" if value else "no"
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    if isinstance(value, float) and raw is not None and _converted(raw, value):
        text = f"{significant(value, 3):g}"
    return f"{text} {param.unit}" if param.unit else text


_LEADING_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def _converted(raw: str, value: float) -> bool:
    """Whether VALUE is not the number RAW begins with (its unit was converted)."""
    match = _LEADING_NUMBER.match(raw)
    try:
        return match is None or float(match.group(1)) != value
    except ValueError:
        return True


def _parse(param: Parameter, raw: str, rotor_radius_cm: float | None = None) -> object:
    """The value in the parameter's own type and unit, or ValueError saying what is expected.

    A control character anywhere in what was typed (an ESC, a NUL, a line break) is refused
    for every type: the raw text is kept in the record next to the value.
    """
    problem = control_problem(raw, "the value")
    if problem:
        raise ValueError(problem)
    text = raw.strip()
    if param.type in (ParamType.number, ParamType.duration, ParamType.integer):
        value = units.parse_quantity(text, param.unit, rotor_radius_cm=rotor_radius_cm)
        if param.type == ParamType.integer:
            if not float(value).is_integer():
                raise ValueError(f"{raw!r} is not a whole number")
            return int(value)
        return float(value)
    if param.type == ParamType.choice:
        for choice in param.choices or []:
            if choice.casefold() == text.casefold():
                return choice
        raise ValueError(f"{raw!r} is not one of: {', '.join(param.choices or [])}")
    if param.type == ParamType.yes_no:
        low = text.casefold()
        if low in _YES:
            return True
        if low in _NO:
            return False
        raise ValueError(f"{raw!r} is not yes or no")
    if param.type == ParamType.datetime:
        return parse_time(text).isoformat()
    if not text:
        raise ValueError("no value given")
    if len(text) > 2000:
        raise ValueError("text is longer than 2000 characters")
    return text


def _number(value: object) -> float:
    """A parsed value as a float, for a range, an alert band or limits.

    Only numeric parameters have those (the protocol model refuses any other), and
    ``_parse`` gives those an int or a float, so anything else here is a bug.
    """
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"{value!r} is not a number")


def _against(spec: Spec, value: object, unit: str | None) -> str:
    """'above the protocol's 300-500 x g', 'below the protocol's minimum of 90 %', ..."""
    rng = spec.range
    if rng is not None:
        v = _number(value)
        u = f" {unit}" if unit else ""
        below = rng.min is not None and v < rng.min
        side = "below" if below else "above"
        if rng.min is not None and rng.max is not None:
            return f"{side} the protocol's {rng.describe(unit)}"
        bound = rng.min if below else rng.max
        return f"{side} the protocol's {'minimum' if below else 'maximum'} of {bound:g}{u}"
    if spec.one_of is not None:
        return "not accepted by the protocol (in spec: " + ", ".join(spec.one_of) + ")"
    return f"not the expected answer ({'yes' if spec.equals else 'no'})"


def check_value(param: Parameter, raw: str, *, rotor_radius_cm: float | None = None) -> Finding:
    """Parse one entered value and judge it; add the reference-range note where one applies."""
    finding = _judge(param, raw, rotor_radius_cm)
    if param.reference and finding.verdict != Verdict.refused and isinstance(finding.value, float):
        from cmprep.protocol.reference import flag

        note = flag(param.reference, finding.value, param.unit)
        if note:
            return replace(finding, note=note)
    return finding


def _judge(param: Parameter, raw: str, rotor_radius_cm: float | None) -> Finding:
    """Parse one entered value and judge it against the parameter's limits, spec and alert."""
    spec_text = param.spec.describe(param.unit) if param.spec else ""
    try:
        value = _parse(param, raw, rotor_radius_cm)
    except ValueError as err:
        hint = f" (spec: {spec_text})" if spec_text else ""
        return Finding(
            verdict=Verdict.refused,
            parameter=param.name,
            raw=raw,
            message=f"{param.label}: {err}{hint}",
            hint=Hint("name_centrifuge") if isinstance(err, units.NeedsRotorRadius) else None,
        )
    return _verdict(param, value, raw, spec_text)


def _verdict(param: Parameter, value: object, raw: str, spec_text: str) -> Finding:
    """A readable value judged against the parameter's limits, spec and alert band."""
    shown = format_value(param, value, raw)
    if (
        param.limits is not None
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not param.limits.contains(float(value))
    ):
        return Finding(
            verdict=Verdict.refused,
            message=(
                f"{param.label} {shown} is impossible: it must be within "
                f"{param.limits.describe(param.unit)}. Check the reading and enter it again."
            ),
            parameter=param.name,
            raw=raw,
        )
    spec = param.spec
    if spec is not None:
        out = False
        if spec.range is not None:
            out = not spec.range.contains(_number(value))
        elif spec.one_of is not None:
            out = value not in spec.one_of
        elif spec.equals is not None:
            out = value is not spec.equals
        if out:
            return Finding(
                verdict=Verdict.out_of_spec,
                message=f"{param.label} {shown} is {_against(spec, value, param.unit)}",
                value=value,
                display=shown,
                spec=spec_text,
                severity=param.severity,
                parameter=param.name,
                raw=raw,
            )
    if param.alert is not None and not param.alert.contains(_number(value)):
        return Finding(
            verdict=Verdict.alert,
            message=(
                f"{param.label} {shown} is in spec but outside the alert band "
                f"{param.alert.describe(param.unit)}"
                if param.alert.min is not None and param.alert.max is not None
                # one-sided: "outside <= 0 %" reads as its opposite; say when it alerts
                else f"{param.label} {shown} is in spec but raises an alert "
                f"({param.alert.describe_alert(param.unit)})"
            ),
            value=value,
            display=shown,
            spec=spec_text,
            parameter=param.name,
            raw=raw,
        )
    return Finding(
        verdict=Verdict.in_spec,
        message=f"{param.label} {shown}",
        value=value,
        display=shown,
        spec=spec_text,
        parameter=param.name,
        raw=raw,
    )


def check_entries(
    step: Step,
    entries: dict[str, str],
    *,
    partial: bool = False,
    rotor_radius_cm: float | None = None,
) -> list[Finding]:
    """Every finding for one step's entries: unknown names, missing required ones, each value.

    ``partial`` is for corrections, where only the corrected names are given.
    """
    findings: list[Finding] = []
    known = {p.name for p in step.parameters}
    for name in entries:
        derived = step.parameter(name)
        if derived is not None and derived.derived is not None:
            findings.append(
                Finding(
                    parameter=name,
                    verdict=Verdict.refused,
                    message=(
                        f"{derived.label} is computed from {derived.derived}, never entered; "
                        "enter or correct the values it is computed from"
                    ),
                    raw=entries[name],
                )
            )
        elif name not in known:
            expected = ", ".join(sorted(known)) or "none (this step records no values)"
            findings.append(
                Finding(
                    parameter=name,
                    verdict=Verdict.refused,
                    message=f"step {step.id} has no parameter {name!r}; its parameters: {expected}",
                    raw=entries[name],
                )
            )
    for param in step.parameters:
        if param.derived is not None:
            continue  # computed by the service once the values it reads are known
        if param.name in entries:
            findings.append(
                check_value(param, entries[param.name], rotor_radius_cm=rotor_radius_cm)
            )
        elif param.required and not partial:
            unit = f" in {param.unit}" if param.unit else ""
            spec = f" (spec {param.spec.describe(param.unit)})" if param.spec else ""
            findings.append(
                Finding(
                    parameter=param.name,
                    verdict=Verdict.refused,
                    message=f"{param.label} is required: add {param.name}=VALUE{unit}{spec}",
                )
            )
    return findings


def check_derived(param: Parameter, value: float, inputs: list[tuple[str, str]]) -> Finding:
    """A computed value, rounded to the parameter's precision and judged like a typed one.

    Past the hard limits it is refused as a typed value would be: one of the values it is
    computed from is then almost surely a typo, and the message names them."""
    rounded = significant(value, param.figures)
    spec_text = param.spec.describe(param.unit) if param.spec else ""
    finding = _verdict(param, rounded, "", spec_text)
    used = ", ".join(f"{name} = {shown}" for name, shown in inputs)
    formula = param.derived or ""
    message = f"{finding.message} (= {formula}; {used})"
    if finding.refused:
        message = f"{finding.message} It is computed as {formula} from {used}."
    return replace(finding, message=message, formula=formula, inputs=tuple(inputs))


def check_window(window: Window, step_label: str, started: datetime, done: datetime) -> Finding:
    """The elapsed time since an earlier step, judged against the step's window."""
    elapsed = units.convert((done - started).total_seconds(), "s", window.unit)
    elapsed = math.floor(elapsed * 100 + 0.5) / 100
    spec_text = window.range.describe(window.unit)
    name = f"time_since_{window.after}"
    label = f"Time since {window.after}"
    if elapsed < 0:
        return Finding(
            parameter=name,
            verdict=Verdict.refused,
            message=(
                f"{step_label} would be {-elapsed:g} {window.unit} before {window.after} was done"
            ),
        )
    if not window.range.contains(elapsed):
        below = window.min is not None and elapsed < window.min
        return Finding(
            parameter=name,
            verdict=Verdict.out_of_spec,
            message=(
                f"{label} {elapsed:g} {window.unit} is {'below' if below else 'above'} "
                f"the protocol's {spec_text}"
            ),
            value=elapsed,
            display=f"{elapsed:g} {window.unit}",
            spec=spec_text,
            severity=window.severity,
        )
    return Finding(
        parameter=name,
        verdict=Verdict.in_spec,
        message=f"{label} {elapsed:g} {window.unit}",
        value=elapsed,
        display=f"{elapsed:g} {window.unit}",
        spec=spec_text,
    )
