"""Material lots and instruments: registered once, named at each step, checked on use.

Lots and equipment are events in their own streams ("@materials", "@equipment"), chained
and attributable like everything else. A step names the lots and instruments it used; an
expired lot or an instrument past its calibration date opens a deviation, and a recall
asks `where-used` for every batch that touched a lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cmprep.events import Event

MATERIALS_STREAM = "@materials"
EQUIPMENT_STREAM = "@equipment"
LOT_REGISTERED = "lot_registered"
EQUIPMENT_REGISTERED = "equipment_registered"
CALIBRATION_RECORDED = "calibration_recorded"


@dataclass
class Lot:
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
            p = e.payload
            lots[p["lot"]] = Lot(
                p["lot"], p["material"], p["expiry"], p.get("supplier"), e.actor, e.recorded_at
            )
    return lots


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
