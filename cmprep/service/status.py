"""``batch status`` as a read model: the batch's steps with their values, what the step due
needs, its route's QC beside the literature and its conditional release.

Why apart from ``cmprep.service.views``: the status is what a technician asks for most,
between steps, so building it loads only the status read models (``cmprep.render.status``)
and the fold, not the record's, the review's or the checklist's classes.
"""

from __future__ import annotations

from cmprep.domain.batch import Batch, StepEntry
from cmprep.domain.pipeline import FINAL
from cmprep.protocol.models import Parameter, Step
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


def parameter_needs(param: Parameter) -> ParameterNeeds:
    return ParameterNeeds(
        name=param.name,
        label=param.label,
        type=param.type.value,
        unit=param.unit,
        required=param.required,
        spec=param.spec.describe(param.unit) if param.spec else None,
        alert=param.alert.describe(param.unit) if param.alert else None,
        limits=param.limits.describe(param.unit) if param.limits else None,
        choices=param.choices,
        source=param.source,
    )


def step_needs(step: Step) -> DueStep:
    return DueStep(
        step=step.id,
        title=step.title,
        optional=step.optional,
        branch=step.branch,
        parameters=[parameter_needs(p) for p in step.parameters if p.derived is None],
        window=(
            f"{step.window.range.describe(step.window.unit)} after {step.window.after}"
            if step.window
            else None
        ),
        materials=list(step.materials),
        equipment=list(step.equipment),
    )


def step_status(entry: StepEntry) -> StepStatus:
    return StepStatus(
        step=entry.step.id,
        title=entry.step.title,
        status=entry.status,
        by=entry.actor,
        performed_at=entry.performed_at,
        recorded_at=entry.recorded_at,
        late=entry.late,
        note=entry.note,
        skip_reason=entry.skip_reason,
        values={
            name: ValueStatus(
                value=v.value,
                display=v.display,
                unit=v.unit,
                spec=v.spec,
                verdict=v.verdict,
                deviations=list(v.deviation_ids),
                corrections=[CorrectionLine(**c.__dict__) for c in v.corrections],
                formula=v.formula,
                inputs=[f"{i.get('name')} = {i.get('display')}" for i in v.inputs],
            )
            for name, v in entry.values.items()
        },
        window=(
            WindowStatus(
                display=entry.window.display,
                spec=entry.window.spec,
                verdict=entry.window.verdict,
                message=entry.window.message,
            )
            if entry.window
            else None
        ),
    )


def status(batch: Batch) -> StatusView:
    """Everything `batch status` promises: state, steps with values, what is due."""
    return StatusView(
        batch=batch.id,
        protocol=ProtocolRef(
            id=batch.protocol.id,
            version=batch.protocol.version,
            hash=batch.protocol_hash,
            title=batch.protocol.title,
        ),
        state=batch.state,
        held_from=batch.held_from,
        started_at=batch.started_at,
        started_by=batch.started_by,
        events=batch.seq,
        head_hash=batch.head_hash,
        due=[step_needs(s) for s in batch.due()] if not batch.on_hold else [],
        steps=[step_status(entry) for entry in batch.steps.values()],
        deviations=[d.row() for d in batch.deviations.values()],
        final=batch.state in FINAL,
        route_lines=route_lines(batch),
        conditional=conditional_lines(batch),
    )


def route_lines(batch: Batch) -> list[str]:
    """Each QC result with a literature range on a concentrating route, as measured and per
    unconcentrated CM (or why it cannot be compared), for ``batch status``."""
    from cmprep.domain import routes

    how = routes.strength(batch)
    if not how.concentrated:
        return []
    factor = f"concentration factor {how.factor:g}" if how.factor else how.problem
    lines = [f"route {how.route}: {factor}"]
    for entry in batch.steps.values():
        for param in entry.step.parameters:
            v = entry.values.get(param.name)
            if v is None or not param.reference or not isinstance(v.value, float):
                continue
            seen = routes.compare(param, v.value, how)
            said = f"{param.name} = {v.display}" + (f" = {seen.text}" if seen.text else "")
            lines.append(said + (f"; {seen.note}" if seen.note else ""))
    return lines


def conditional_lines(batch: Batch) -> list[str]:
    """The batch's conditional release and what followed it, in words ([] without one).
    A batch without one does not load the release rules (and the validation they judge
    with): most batches asked about at the bench have none."""
    from cmprep import events as ev

    if not any(e.type == ev.BATCH_CONDITIONALLY_RELEASED for e in batch.events):
        return []
    from cmprep.domain import conditional

    found = conditional.chain(batch)
    return conditional.describe(found) if found else []
