"""Plain-data views of a batch for JSON output and text screens. Read-only."""

from __future__ import annotations

from typing import Any

from cmprep.domain.batch import Batch
from cmprep.protocol.models import Parameter, Step


def parameter_needs(param: Parameter) -> dict[str, Any]:
    return {
        "name": param.name,
        "label": param.label,
        "type": param.type.value,
        "unit": param.unit,
        "required": param.required,
        "spec": param.spec.describe(param.unit) if param.spec else None,
        "alert": param.alert.describe(param.unit) if param.alert else None,
        "limits": param.limits.describe(param.unit) if param.limits else None,
        "choices": param.choices,
        "source": param.source,
    }


def step_needs(step: Step) -> dict[str, Any]:
    return {
        "step": step.id,
        "title": step.title,
        "optional": step.optional,
        "branch": step.branch,
        "parameters": [parameter_needs(p) for p in step.parameters],
        "window": (
            f"{step.window.range.describe(step.window.unit)} after {step.window.after}"
            if step.window
            else None
        ),
    }


def status(batch: Batch) -> dict[str, Any]:
    """Everything `batch status --format json` promises: state, steps with values, what is due."""
    steps = []
    for entry in batch.steps.values():
        values = {
            name: {
                "value": v.value,
                "display": v.display,
                "unit": v.unit,
                "spec": v.spec,
                "verdict": v.verdict,
                "deviations": v.deviation_ids,
                "corrections": [c.__dict__ for c in v.corrections],
            }
            for name, v in entry.values.items()
        }
        steps.append(
            {
                "step": entry.step.id,
                "title": entry.step.title,
                "status": entry.status,
                "by": entry.actor,
                "performed_at": entry.performed_at,
                "recorded_at": entry.recorded_at,
                "late": entry.late,
                "note": entry.note,
                "skip_reason": entry.skip_reason,
                "values": values,
                "window": (
                    {
                        "display": entry.window.display,
                        "spec": entry.window.spec,
                        "verdict": entry.window.verdict,
                    }
                    if entry.window
                    else None
                ),
            }
        )
    return {
        "batch": batch.id,
        "protocol": {
            "id": batch.protocol.id,
            "version": batch.protocol.version,
            "hash": batch.protocol_hash,
            "title": batch.protocol.title,
        },
        "state": batch.state,
        "held_from": batch.held_from,
        "started_at": batch.started_at,
        "started_by": batch.started_by,
        "events": batch.seq,
        "head_hash": batch.head_hash,
        "due": [step_needs(s) for s in batch.due()] if not batch.on_hold else [],
        "steps": steps,
        "deviations": [d.row() for d in batch.deviations.values()],
    }
