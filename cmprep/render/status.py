"""The read model of ``batch status``: where a batch stands, its steps with their values,
and what the step due needs.

Apart from the other read models (``cmprep.render.models`` re-exports these) because the
status is what a technician asks for most, between steps: its start loads these classes
only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cmprep.render.view import SCREEN_ONLY, View


@dataclass(frozen=True)
class ProtocolRef(View):
    """The protocol version a batch runs, as a status names it."""

    id: str
    version: str
    hash: str
    title: str


@dataclass(frozen=True)
class ParameterNeeds(View):
    """A parameter of a due step: what must be entered, and within what."""

    name: str
    label: str
    type: str
    unit: str | None
    required: bool
    spec: str | None
    alert: str | None
    limits: str | None
    choices: list[str] | None
    source: str | None


@dataclass(frozen=True)
class DueStep(View):
    """A step that is due: what it needs entered, and what it names (lots, instruments)."""

    step: str
    title: str
    optional: bool
    branch: str | None
    parameters: list[ParameterNeeds]
    window: str | None
    materials: list[str] = field(
        default_factory=list, metadata=SCREEN_ONLY
    )  # kinds of lot it names
    equipment: list[str] = field(
        default_factory=list, metadata=SCREEN_ONLY
    )  # kinds of instrument it names


@dataclass(frozen=True)
class CorrectionLine(View):
    """One correction of a value, as a status shows it."""

    old: str
    new: str
    reason: str
    actor: str
    recorded_at: str
    seq: int


@dataclass(frozen=True)
class ValueStatus(View):
    """A recorded value as a status shows it: as printed, its spec, verdict, deviations and
    corrections."""

    value: Any
    display: str
    unit: str
    spec: str
    verdict: str
    deviations: list[str]
    corrections: list[CorrectionLine]
    formula: str = ""  # a derived value's formula ("" when typed)
    inputs: list[str] = field(default_factory=list)  # "collection.volume = 500 mL", ...


@dataclass(frozen=True)
class WindowStatus(View):
    """A step's time window as a status shows it: how long it took against its spec."""

    display: str
    spec: str
    verdict: str
    message: str = field(default="", metadata=SCREEN_ONLY)


@dataclass(frozen=True)
class StepStatus(View):
    """A step as a status shows it: its status, who and when, its values and window."""

    step: str
    title: str
    status: str
    by: str | None
    performed_at: str | None
    recorded_at: str | None
    late: bool
    note: str | None
    skip_reason: str | None
    values: dict[str, ValueStatus]
    window: WindowStatus | None


@dataclass(frozen=True)
class StatusView(View):
    """Where a batch stands: ``batch status`` (text and JSON)."""

    batch: str
    protocol: ProtocolRef
    state: str
    held_from: str | None
    started_at: str
    started_by: str
    events: int
    head_hash: str
    due: list[DueStep]
    steps: list[StepStatus]
    deviations: list[dict[str, Any]]  # Deviation.row(): the deviation table's columns
    final: bool = field(
        default=False, metadata=SCREEN_ONLY
    )  # released or rejected: nothing is due any more
    # QC results on a concentrating route: as measured and per unconcentrated CM
    route_lines: list[str] = field(default_factory=list)
    conditional: list[str] = field(default_factory=list)  # a conditional release's chain


# --- review by exception (`batch review`) ----------------------------------------------------
