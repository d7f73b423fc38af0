"""Material lots and instruments: registered once, named at each step, checked on use.

Lots and equipment are events in their own streams ("@materials", "@equipment"), chained
and attributable like everything else. A step names the lots and instruments it used; an
expired lot or an instrument past its calibration date opens a deviation, and a recall
asks `where-used` for every batch that touched a lot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from cmprep.domain.validation import Finding, Verdict
from cmprep.events import Event
from cmprep.protocol.models import Severity

MATERIALS_STREAM = "@materials"
EQUIPMENT_STREAM = "@equipment"
LOT_REGISTERED = "lot_registered"
EQUIPMENT_REGISTERED = "equipment_registered"
CALIBRATION_RECORDED = "calibration_recorded"
EQUIPMENT_TYPES = frozenset({EQUIPMENT_REGISTERED, CALIBRATION_RECORDED})  # what an instrument is


@dataclass
class Lot:
    """A registered lot of material: what it is, when it expires, who registered it."""

    lot: str
    material: str
    expiry: str  # ISO date
    supplier: str | None
    registered_by: str
    registered_at: str

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Instrument:
    """A registered instrument: its kind, when its calibration falls due, who registered it."""

    id: str
    kind: str
    calibration_due: str  # ISO date
    rotor_radius_cm: float | None
    registered_by: str
    registered_at: str
    calibrations: list[dict[str, Any]]

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "calibrations"}


def fold_lots(events: list[Event]) -> dict[str, Lot]:
    lots: dict[str, Lot] = {}
    for e in events:
        if e.type == LOT_REGISTERED:
            lot = lot_of(e)
            lots[lot.lot] = lot
    return lots


def lot_of(event: Event) -> Lot:
    """The lot a ``lot_registered`` event registers (its query row is ``Lot.row()``)."""
    p = event.payload
    return Lot(p["lot"], p["material"], p["expiry"], p.get("supplier"), event.actor,
               event.recorded_at)  # fmt: skip


def fold_equipment(events: list[Event]) -> dict[str, Instrument]:
    found: dict[str, Instrument] = {}
    for e in events:
        p = e.payload
        if e.type == EQUIPMENT_REGISTERED:
            found[p["id"]] = Instrument(
                p["id"],
                p["kind"],
                p["calibration_due"],
                p.get("rotor_radius_cm"),
                e.actor,
                e.recorded_at,
                [],
            )
        elif e.type == CALIBRATION_RECORDED:
            inst = found[p["id"]]
            inst.calibrations.append(
                {
                    "by": e.actor,
                    "at": e.recorded_at,
                    "due": p["calibration_due"],
                    "certificate": p.get("certificate"),
                }
            )
            inst.calibration_due = p["calibration_due"]
    return found


def instrument_row(row: dict[str, Any] | None, e: Event) -> dict[str, Any] | None:
    """An instrument's register row (``Instrument.row``) moved on by E: what a
    registration makes and a calibration changes (its due date), read and written by key
    instead of folding the "@equipment" stream. None: E names no row there is."""
    p = e.payload
    if e.type == EQUIPMENT_REGISTERED:
        return fold_equipment([e])[p["id"]].row()
    if e.type == CALIBRATION_RECORDED and row is not None:
        return {**row, "calibration_due": p["calibration_due"]}
    return row


def parse_date(text: str, what: str) -> str:
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date; expected YYYY-MM-DD") from None


def expired(lot: Lot, used_on: date) -> bool:
    """A lot may be used on its expiry date, not after it."""
    return used_on > date.fromisoformat(lot.expiry)


def overdue(inst: Instrument, used_on: date) -> bool:
    return used_on > date.fromisoformat(inst.calibration_due)


MAX_ROTOR_RADIUS_CM = 100.0


def rotor_radius_problem(radius_cm: float) -> str | None:
    """Why a rotor radius cannot be right, or None: the one rule for every entry point."""
    if not (math.isfinite(radius_cm) and 0 < radius_cm <= MAX_ROTOR_RADIUS_CM):
        return f"rotor radius {radius_cm} cm is impossible; expected 0-{MAX_ROTOR_RADIUS_CM:g} cm"
    return None


def rotor_radius(instruments: list[Instrument]) -> float | None:
    """The radius that turns rpm into x g at a step: the first named instrument that has
    one (a step names one centrifuge)."""
    return next((i.rotor_radius_cm for i in instruments if i.rotor_radius_cm is not None), None)


def equipment_snapshot(inst: Instrument) -> dict[str, Any]:
    """What the step's event keeps of an instrument, as it was on the day."""
    return {
        "id": inst.id,
        "kind": inst.kind,
        "calibration_due": inst.calibration_due,
        "rotor_radius_cm": inst.rotor_radius_cm,
    }


def expiry_finding(lot: Lot, day: date, severity: Severity) -> Finding | None:
    """A deviation finding for a lot used after its expiry date, else None."""
    if not expired(lot, day):
        return None
    return Finding(
        f"lot:{lot.lot}",
        Verdict.out_of_spec,
        f"Lot {lot.lot} ({lot.material}) expired on {lot.expiry} and was used on {day.isoformat()}",
        value=lot.lot,
        display=f"{lot.lot} (expired {lot.expiry})",
        spec=f"not expired on {day.isoformat()}",
        severity=severity,
    )


def calibration_finding(inst: Instrument, day: date, severity: Severity) -> Finding | None:
    """A deviation finding for an instrument used past its calibration due date, else None."""
    if not overdue(inst, day):
        return None
    return Finding(
        f"equipment:{inst.id}",
        Verdict.out_of_spec,
        f"{inst.kind.capitalize()} {inst.id} was due for calibration on "
        f"{inst.calibration_due} and was used on {day.isoformat()}",
        value=inst.id,
        display=f"{inst.id} (calibration due {inst.calibration_due})",
        spec=f"calibrated (due after {day.isoformat()})",
        severity=severity,
    )
