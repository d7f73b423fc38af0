"""Material lots and instruments: register them, record calibrations, check what a step
names, and find every batch that used a lot (where a recall starts).

Lots and equipment are events in their own streams ("@materials", "@equipment"), written
under the same head check as a batch, so two people registering the same lot at once give
one lot and one clear refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cmprep.domain import ids, lineage
from cmprep.domain import traceability as tr
from cmprep.domain.batch import Batch
from cmprep.domain.ids import usable
from cmprep.domain.validation import Finding, Verdict
from cmprep.errors import Hint, NotFound, Refused
from cmprep.events import Event, NewEvent
from cmprep.protocol.models import Step
from cmprep.service.access import Gate
from cmprep.service.context import NEAR_IDS, Context
from cmprep.service.material_rows import write_materials
from cmprep.store.base import UnitOfWork


@dataclass
class Trace:
    """What a step named: findings (refusals for unknown items, deviations for expired or
    overdue ones), the payload snapshot of what was used, and the rotor radius."""

    findings: list[Finding] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)
    rotor_radius_cm: float | None = None


class MaterialsService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    def lots(self) -> dict[str, tr.Lot]:
        return tr.fold_lots(self.ctx.store.events(tr.MATERIALS_STREAM))

    def lot_named(self, typed: str) -> tr.Lot | None:
        """The registered lot TYPED names, in any case: its row read by key, however many
        lots and derivations the stream holds (in a database upgraded with lots already
        registered, until `db rebuild` fills the lots table: from the stream)."""
        row = self._registered("lot", typed, self.lots)
        return tr.Lot(**row) if row else None

    def lots_near(self, typed: str) -> list[str]:
        """Registered lot ids next to TYPED: what to suggest when it names none."""
        return self._near("lot", typed, self.lots)

    def instrument_named(self, typed: str) -> tr.Instrument | None:
        """The registered instrument TYPED names, in any case: its row read by key (its
        calibration history is not read: ``instruments`` folds it)."""
        row = self._registered("instrument", typed, self.instruments)
        return tr.Instrument(**row, calibrations=[]) if row else None

    def instruments_near(self, typed: str) -> list[str]:
        """Registered instrument ids next to TYPED: what to suggest when it names none."""
        return self._near("instrument", typed, self.instruments)

    def lots_kept(self) -> list[tr.Lot]:
        """Every registered lot, read from its table where it is whole: what a list
        shows."""
        if not self.ctx.store.register_whole("lot"):
            return list(self.lots().values())
        return [tr.Lot(**row) for row in self.ctx.store.registered_rows("lot")]

    def instruments_kept(self) -> list[tr.Instrument]:
        """Every registered instrument, read from its table (without the calibration
        history) where it is whole: what a prompt offers."""
        if not self.ctx.store.register_whole("instrument"):
            return list(self.instruments().values())
        rows = self.ctx.store.registered_rows("instrument")
        return [tr.Instrument(**row, calibrations=[]) for row in rows]

    def _registered(
        self, kind: str, typed: str, folded: Callable[[], Mapping[str, Any]]
    ) -> dict[str, Any] | None:
        """The KIND row TYPED names in any case: read by key where its table is whole,
        else from the stream FOLDED (an upgraded database before its rebuild)."""
        store = self.ctx.store
        if not store.register_whole(kind):
            known = folded()
            name = ids.same(typed, known)
            return known[name].row() if name else None
        name = ids.same(typed, store.ids_near(kind, typed, NEAR_IDS))
        return store.registered(kind, name) if name else None

    def _near(self, kind: str, typed: str, folded: Callable[[], Mapping[str, Any]]) -> list[str]:
        store = self.ctx.store
        if not store.register_whole(kind):
            return list(folded())
        return store.ids_near(kind, typed, NEAR_IDS)

    def instruments(self) -> dict[str, tr.Instrument]:
        return tr.fold_equipment(self.ctx.store.events(tr.EQUIPMENT_STREAM))

    def register_lot(
        self,
        lot: str,
        material: str,
        expiry: str,
        actor: str,
        supplier: str | None = None,
        quantity: Any = None,
        unit: str | None = None,
    ) -> tr.Lot:
        """A supplier's lot: a reagent in the lineage, usable on arrival. QUANTITY and UNIT,
        when given, are counted down as derivations draw from it."""
        actor = self.gate.person(actor, "register materials")
        usable(lot, "lot number")
        if not material or not material.strip():
            raise Refused("give the material, e.g. FBS or PBS")
        try:
            expiry = tr.parse_date(expiry, "expiry")
        except ValueError as err:
            raise Refused(str(err)) from None
        payload = {"lot": lot, "material": material.strip(), "expiry": expiry, "supplier": supplier}
        payload |= lineage.counted(quantity, unit)

        def decide(known: lineage.Known) -> list[NewEvent]:
            if (same := known.named(lot)) is not None:
                raise Refused(f"lot {lot} is already registered" + _as(same.lot, lot))
            return [NewEvent(tr.LOT_REGISTERED, actor, payload)]

        written = write_materials(self.ctx, decide)
        return tr.lot_of(written[0])

    def register_equipment(
        self,
        ident: str,
        kind: str,
        calibration_due: str,
        actor: str,
        rotor_radius_cm: float | None = None,
    ) -> tr.Instrument:
        actor = self.gate.person(actor, "register equipment")
        usable(ident, "equipment id")
        if not kind or not kind.strip():
            raise Refused("give the kind of instrument, e.g. centrifuge")
        try:
            due = tr.parse_date(calibration_due, "calibration due date")
        except ValueError as err:
            raise Refused(str(err)) from None
        if rotor_radius_cm is not None and (problem := tr.rotor_radius_problem(rotor_radius_cm)):
            raise Refused(problem)
        payload = {
            "id": ident,
            "kind": kind.strip(),
            "calibration_due": due,
            "rotor_radius_cm": rotor_radius_cm,
        }

        def decide() -> list[NewEvent]:
            if (same := self.instrument_named(ident)) is not None:
                raise Refused(f"equipment {ident} is already registered" + _as(same.id, ident))
            return [NewEvent(tr.EQUIPMENT_REGISTERED, actor, payload)]

        self.ctx.append_keyed(tr.EQUIPMENT_STREAM, decide, self._keep_instruments)
        return self._instrument(ident)

    def record_calibration(
        self, ident: str, next_due: str, actor: str, certificate: str | None = None
    ) -> tr.Instrument:
        actor = self.gate.person(actor, "register equipment")
        try:
            due = tr.parse_date(next_due, "next calibration due date")
        except ValueError as err:
            raise Refused(str(err)) from None
        today = self.ctx.clock().date().isoformat()
        if due <= today:
            raise Refused(
                f"the next calibration due date {due} is not after today ({today}); give the "
                "date the next calibration is due, from the certificate"
            )

        def decide() -> list[NewEvent]:
            found = self.instrument_named(ident)
            if found is None:
                near = self.instruments_near(ident)
                raise NotFound(
                    f"no equipment {ident!r}{ids.suggestion(ident, near)}",
                    hint=Hint("register_equipment", equipment=ident),
                )
            payload = {"id": found.id, "calibration_due": due, "certificate": certificate}
            return [NewEvent(tr.CALIBRATION_RECORDED, actor, payload)]

        written = self.ctx.append_keyed(tr.EQUIPMENT_STREAM, decide, self._keep_instruments)
        return self._instrument(written[-1].payload["id"])

    def _keep_instruments(self, unit: UnitOfWork, written: list[Event]) -> None:
        """Each instrument's register row as WRITTEN leaves it, in the write's unit (read
        by key: a calibration changes its row's due date)."""
        for e in written:
            ident = str(e.payload.get("id"))
            if row := tr.instrument_row(self.ctx.store.registered("instrument", ident), e):
                unit.put_registered("instrument", row)

    def _instrument(self, ident: str) -> tr.Instrument:
        """The instrument IDENT names (as registered), after a write to it."""
        found = self.instrument_named(ident)
        if found is None:  # the write just made or changed it
            raise AssertionError(f"instrument {ident} was written but is not found")
        return found

    def where_used(self, lot: str) -> list[dict[str, Any]]:
        """Every batch and step that named this lot (in any case): the list a recall starts
        from, read by the lot from the lot uses kept by each write, whatever the number of
        batches (in a database upgraded with batches recorded, until `db rebuild` fills
        them: from every batch's log)."""
        store = self.ctx.store
        if store.uses_indexed():
            return [
                {
                    "lot": u["lot"],
                    "material": u["material"],
                    "batch_id": u["batch_id"],
                    "step": u["step"],
                    "used_at": u["used_at"],
                    "by": u["used_by"],
                }
                for u in store.lot_uses(lot=lot)
            ]
        rows = []
        for batch_id in self.ctx.store.batch_ids():
            for e in self.ctx.store.events(batch_id):
                for used in e.payload.get("lots", []) if e.type == "step_recorded" else []:
                    if ids.key(used["lot"]) == ids.key(lot):
                        rows.append(
                            {
                                "lot": lot,
                                "material": used["material"],
                                "batch_id": batch_id,
                                "step": e.payload["step"],
                                "used_at": e.performed_at or e.recorded_at,
                                "by": e.actor,
                            }
                        )
        return rows

    def trace(
        self, batch: Batch, step: Step, lots: list[str], equipment: list[str], used_at: datetime
    ) -> Trace:
        """Check the lots and instruments a step names on the day it was done."""
        out = Trace()
        severity = batch.protocol.traceability_severity
        day = used_at.date()
        snapshot = []
        for typed in dict.fromkeys(lots):
            item = self.lot_named(typed)
            if item is None:
                near = self.lots_near(typed)
                out.findings.append(
                    Finding(
                        f"lot:{typed}",
                        Verdict.refused,
                        f"no lot {typed!r}{ids.suggestion(typed, near)}"
                        + ("" if ids.closest(typed, near) else "; register it first"),
                        hint=Hint("register_lot", lot=typed),
                    )
                )
                continue
            lot = item.lot
            snapshot.append({"lot": lot, "material": item.material, "expiry": item.expiry})
            if finding := tr.expiry_finding(item, day, severity):
                out.findings.append(finding)
        if snapshot:
            out.payload["lots"] = snapshot
        used, named = [], []
        for typed in dict.fromkeys(equipment):
            inst = self.instrument_named(typed)
            if inst is None:
                near = self.instruments_near(typed)
                out.findings.append(
                    Finding(
                        f"equipment:{typed}",
                        Verdict.refused,
                        f"no equipment {typed!r}{ids.suggestion(typed, near)}"
                        + ("" if ids.closest(typed, near) else "; register it first"),
                        hint=Hint("register_equipment", equipment=typed),
                    )
                )
                continue
            if step.equipment and not any(ids.same_kind(inst.kind, k) for k in step.equipment):
                out.findings.append(wrong_kind(inst, step))
                continue
            named.append(inst)
            used.append(tr.equipment_snapshot(inst))
            if finding := tr.calibration_finding(inst, day, severity):
                out.findings.append(finding)
        if used:
            out.payload["equipment"] = used
        out.rotor_radius_cm = tr.rotor_radius(named)
        return out


def _as(same: str, typed: str) -> str:
    """' as LOT-042 (ids are the same whatever their case)' when TYPED differs from SAME."""
    return "" if same == typed else f" as {same} (ids are the same whatever their case)"


def wrong_kind(inst: tr.Instrument, step: Step) -> Finding:
    """A refusal: an instrument of another kind than any the step names (a centrifuge
    given for the biosafety cabinet)."""
    return Finding(
        f"equipment:{inst.id}",
        Verdict.refused,
        f"{inst.id} is a {inst.kind}; {step.title} needs "
        + " and ".join(f"a {k}" for k in step.equipment),
    )
