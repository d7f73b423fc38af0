"""Derived values of a batch: computed from what was recorded, never typed. Pure.

A protocol declares a derived value by a formula (``cmprep/protocol/expressions.py``)
over numbers of its own step and of earlier ones. The service asks here for the derived
values of a step when the step is recorded, and for every derived value again when a value
is corrected: each is judged against its spec like a typed one, so an out-of-spec
concentration factor opens a deviation as an out-of-spec volume would.

A derived value whose inputs are not all recorded (an optional value left out, a step
skipped, a branch arm not taken) is not computed; one that would divide by zero is
refused, with the input that is zero named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cmprep.domain.batch import Batch
from cmprep.domain.validation import Finding, Verdict, check_derived
from cmprep.protocol import expressions
from cmprep.protocol.models import Parameter, Step

# (step id, parameter name) -> (value in the parameter's unit, as the record prints it)
Known = Mapping[tuple[str, str], tuple[float, str]]


def recorded(batch: Batch) -> dict[tuple[str, str], tuple[float, str]]:
    """Every numeric value the batch holds now, by (step, parameter)."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for step_id, entry in batch.steps.items():
        if entry.status != "done":
            continue
        for name, value in entry.values.items():
            if isinstance(value.value, (int, float)) and not isinstance(value.value, bool):
                out[(step_id, name)] = (float(value.value), value.display)
    return out


def step_values(batch: Batch, step: Step, known: Known) -> list[Finding]:
    """The derived values of STEP from KNOWN (its own values included), in the order the
    protocol lists them; a later one may read an earlier one."""
    values = dict(known)
    findings: list[Finding] = []
    for param in step.parameters:
        if param.formula is None:
            continue
        finding = derive(batch, step, param, values)
        if finding is None:
            continue
        finding = replace(finding, step=step.id)
        findings.append(finding)
        if isinstance(finding.value, float) and not finding.refused:
            values[(step.id, param.name)] = (finding.value, finding.display)
    return findings


def derive(batch: Batch, step: Step, param: Parameter, known: Known) -> Finding | None:
    """One derived value, or None when an input is not recorded."""
    node = param.formula
    assert node is not None
    inputs: dict[expressions.Name, tuple[float, str | None]] = {}
    shown: list[tuple[str, str]] = []
    for name in expressions.names(node):
        if name in inputs:
            continue
        source = _source(batch, step, name)
        if source is None or (source[0].id, name.name) not in known:
            return None
        where, input_param = source
        value, display = known[(where.id, name.name)]
        inputs[name] = (value, input_param.unit)
        shown.append((name.text, display))
    try:
        value = expressions.compute(node, inputs, param.unit)
    except expressions.ExpressionError as err:
        return Finding(
            parameter=param.name,
            verdict=Verdict.refused,
            message=(
                f"{param.label} cannot be computed from {param.derived}: {err} "
                f"({', '.join(f'{n} = {d}' for n, d in shown)}); check the values it reads"
            ),
            step=step.id,
            formula=param.derived or "",
            inputs=tuple(shown),
        )
    return check_derived(param, value, shown)


def _source(batch: Batch, step: Step, name: expressions.Name) -> tuple[Step, Parameter] | None:
    """The step and parameter a name reads in this batch: for a branch, the arm done."""
    found = batch.protocol.inputs_of(step, name)
    if len(found) == 1:
        return found[0]
    done = [(s, p) for s, p in found if batch.steps[s.id].status == "done"]
    return done[0] if done else None


def recomputed(batch: Batch, known: Known) -> list[Finding]:
    """Every derived value of the batch's done steps whose value differs from the one it
    holds, computed from KNOWN (the values as a correction leaves them), in protocol
    order, each finding naming its step."""
    values = dict(known)
    changed: list[Finding] = []
    for step in batch.protocol.steps:
        entry = batch.steps[step.id]
        if entry.status != "done" or not any(p.formula for p in step.parameters):
            continue
        for finding in step_values(batch, step, values):
            old = entry.values.get(finding.parameter)
            if finding.refused:
                changed.append(finding)
                continue
            assert isinstance(finding.value, float)
            values[(step.id, finding.parameter)] = (finding.value, finding.display)
            if old is None or old.value != finding.value:
                changed.append(finding)
    return changed
