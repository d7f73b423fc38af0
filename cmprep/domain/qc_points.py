"""The QC results of a batch as flat points: what the lab's QC history is read from.

Why a projection: Westgard rules, the control chart, group comparisons and the record's
QC section all look at the lab's other batches. Folding every released batch to get their
values made each of those (and recording a QC step) cost more with every batch the lab
made; one row per measured analyte, kept by the write path beside the batch row and
rebuilt from the log with the other query tables, makes each one indexed query.

A point is a QC analyte (a parameter with an assay ``method``, or one watched with
``trend: true``) with a usable number. Each row carries what the readers filter and group
by: the protocol, the batch's state, its downstream route, cell source and
preconditioning (a Westgard baseline is one protocol x route x cell source), and the keys
an analyte can be named by. Pure: rows from a folded batch, nothing read or written.
"""

from __future__ import annotations

import re
from typing import Any

from cmprep.domain.batch import Batch, Correction, StepEntry
from cmprep.domain.numbers import usable_number
from cmprep.domain.routes import route_of
from cmprep.protocol.models import Parameter

# Site choices, how much history each reader looks at (the newest points first):
# a Westgard baseline and the record's sparkline use the newest 30 released batches (CLSI
# C24 asks for at least 20 points to set control limits; 30 keeps a sparkline readable), a
# control chart (``trend``) shows the newest 100 batches of any state.
HISTORY_POINTS = 30
TREND_POINTS = 100

# the steps that precondition the cells, in the words `compare` groups by
PRECONDITIONING_STEPS = ("hypoxia", "priming", "spheroid_formation")


def analyte_key(text: str) -> str:
    """'IL-6', 'il6', 'IL 6' and 'IL-6 (ELISA)' all name the same analyte: ``il6``."""
    return re.sub(r"[^a-z0-9]", "", text.split("(")[0].lower())


def is_qc_analyte(param: Parameter) -> bool:
    """A parameter whose numbers make the lab's QC history."""
    return param.is_qc_analyte


def cell_source(batch: Batch) -> str:
    """The tissue the cells came from (the isolation step's ``source_tissue``), or
    ``unknown``."""
    entry = batch.steps.get("isolation")
    v = entry.values.get("source_tissue") if entry else None
    return str(v.value) if v else "unknown"


def preconditioning(batch: Batch) -> str:
    """The preconditioning steps done, joined by ``+`` (``hypoxia+priming``), or ``none``."""
    done = [
        s.step.id
        for s in batch.steps.values()
        if s.status == "done" and s.step.id in PRECONDITIONING_STEPS
    ]
    return "+".join(done) if done else "none"


def points(batch: Batch) -> list[dict[str, Any]]:
    """The batch's QC points as query rows, in the protocol's order (``position``)."""
    rows: list[dict[str, Any]] = []
    source, precond, route = cell_source(batch), preconditioning(batch), route_of(batch)
    before = 0  # the parameters of the steps before this one
    for entry in batch.steps.values():
        first, before = before, before + len(entry.step.parameters)
        if not entry.values:  # nothing measured at this step yet (most of a batch's life)
            continue
        for n, param in entry.step.qc_analytes:
            position = first + n + 1
            v = entry.values.get(param.name)
            number = usable_number(v.value) if v is not None else None
            if v is None or number is None:
                continue
            rows.append(
                {
                    "batch_id": batch.id,
                    "step": entry.step.id,
                    "name": param.name,
                    "protocol_id": batch.protocol.id,
                    "started_at": batch.started_at,
                    "position": position,
                    "analyte": param.reference or param.name,
                    "label": param.label,
                    "method": param.method.value if param.method else None,
                    "value": number,
                    "unit": param.unit or "",
                    "recorded_at": _recorded_at(entry, v.corrections),
                    "state": batch.state,
                    "source": source,
                    "preconditioning": precond,
                    "name_key": analyte_key(param.name),
                    "reference_key": analyte_key(param.reference or param.name),
                    "label_key": analyte_key(param.label),
                    "route": route,
                }
            )
    return rows


def _recorded_at(entry: StepEntry, corrections: list[Correction]) -> str:
    """When the value as it stands was entered: its newest correction, else the step."""
    if corrections:
        return corrections[-1].recorded_at
    return str(entry.recorded_at or "")


__all__ = [
    "HISTORY_POINTS",
    "PRECONDITIONING_STEPS",
    "TREND_POINTS",
    "analyte_key",
    "cell_source",
    "is_qc_analyte",
    "points",
    "preconditioning",
]
