"""Lineage and labels: donors, derivations (transform, split, pool), material status,
the walk up or down the tree, recalls, and printed lot labels.

Everything is written to the "@materials" stream. A derivation's event and its lineage
edges (the store's query table that the recursive walk reads) are written in one
transaction, so the table never names a lot the log does not. Pooling more than one
donor's material, where the batch's protocol does not allow it, first opens a deviation
in that batch and then records the derivation naming it: a deviation without its pool
(when the pool is then refused) is a question for the investigation, a pool without its
deviation would be a silent breach.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cmprep import events as ev
from cmprep.domain import lineage as ln
from cmprep.domain.clock import iso
from cmprep.domain.ids import usable
from cmprep.errors import Hint, Refused
from cmprep.events import Event, NewEvent
from cmprep.render.labels import MAX_COPIES, LabelSheet
from cmprep.render.lineage import LineageEdge, LineageNode, LineageView
from cmprep.service.access import Gate, reason_text
from cmprep.service.context import Context, project
from cmprep.service.material_rows import known_materials, write_materials
from cmprep.service.materials import MaterialsService

__all__ = ["Derived", "LineageService"]


@dataclass
class Derived:
    """What a derivation made, and the deviation its pooling opened (if any)."""

    shape: str
    inputs: list[ln.Material]
    outputs: list[ln.Material]
    donors: tuple[str, ...] = ()
    deviation_id: str | None = None
    seq: int = 0
    problems: list[str] = field(default_factory=list)


class LineageService:
    def __init__(self, ctx: Context, gate: Gate, materials: MaterialsService) -> None:
        self.ctx = ctx
        self.gate = gate
        self.lots = materials

    # --- reading ---------------------------------------------------------------------------
    def materials(self) -> dict[str, ln.Material]:
        """Every material, folded from the whole stream: for a test or an audit, never for
        a command about one lot or one batch (``known``, ``made_in``)."""
        return ln.fold_materials(self.ctx.store.events(ln.MATERIALS_STREAM))

    def known(self) -> ln.Known:
        """The materials by lot, each read by key from the register."""
        return known_materials(self.ctx.store)

    def material(self, lot: str) -> ln.Material:
        return ln.find(self.known(), lot)

    def made_in(self, batch_id: str) -> list[ln.Material]:
        """The materials made at a step of BATCH_ID, in the order they were made: read
        through the register's batch index where it is whole."""
        store = self.ctx.store
        if store.register_whole("material"):
            rows = store.registered_rows("material", batch_id=batch_id)
            found = [ln.Material.from_stored(r) for r in rows]
        else:
            found = [m for m in self.materials().values() if m.batch_id == batch_id]
        return sorted(found, key=lambda m: m.seq)

    def trace(self, lot: str, direction: str) -> LineageView:
        """The tree from LOT, ``down`` (everything made from it) or ``up`` (everything it
        was made from), walked by the store's recursive query."""
        if direction not in ("up", "down"):
            raise Refused(f"direction {direction!r}: expected up or down")
        known = self.known()
        ln.find(known, lot)
        edges = [LineageEdge(**row) for row in self.ctx.store.lineage_edges(lot, direction)]
        lots = [lot] + [x for e in edges for x in (e.parent, e.child)]
        nodes = {x: _node(m) for x in dict.fromkeys(lots) if (m := known.named(x)) is not None}
        return LineageView(lot, direction, nodes, edges)

    def recall(self, lot: str) -> list[dict[str, Any]]:
        """Every material made from LOT, down to the aliquots, in the order they were made:
        what a recall of it must find. For a reagent lot (a medium, a serum), also every
        material made in a batch that used it at a step, and all made from those."""
        known = self.known()
        item = ln.find(known, lot)
        reached: dict[str, str] = {}
        for e in self.ctx.store.lineage_edges(lot, "down"):
            reached.setdefault(e["child"], f"made from {e['parent']}")
        if item.kind == ln.REAGENT:
            used: dict[str, list[str]] = {}
            for r in self.lots.where_used(lot):
                used.setdefault(r["batch_id"], []).append(r["step"])
            for batch_id, steps in used.items():
                where = ", ".join(sorted(set(steps)))
                for made in self.made_in(batch_id):
                    if made.lot in reached:
                        continue
                    reached[made.lot] = f"made in batch {batch_id}, which used {lot} at {where}"
                    for e in self.ctx.store.lineage_edges(made.lot, "down"):
                        reached.setdefault(e["child"], f"made from {e['parent']}")
        found = [m for name in reached if (m := known.named(name)) is not None]
        found.sort(key=lambda m: (m.seq, m.lot))  # made first, first
        return [{**m.row(), "reached": reached[m.lot]} for m in found]

    # --- writing ---------------------------------------------------------------------------
    def register_donor(self, code: str, eligibility: str, consent: str, actor: str) -> ln.Material:
        """A donor, by pseudonymous code, with the references of the eligibility record and
        the consent form (both required: no lineage starts without them). Quarantined until
        QA releases it."""
        actor = self.gate.person(actor, "register materials")
        problems = [p for p in (ln.donor_problem(code),) if p]
        for ref, what in ((eligibility, "eligibility reference"), (consent, "consent reference")):
            if not ref or not ref.strip():
                problems.append(f"give the {what}: a donor is registered only with it")
            elif problem := ln.text_problem(ref, what):
                problems.append(problem)
        if problems:
            raise Refused("the donor was not registered", problems)
        payload = {
            "lot": code,
            "kind": ln.DONOR,
            "material": "donor",
            "eligibility": eligibility.strip(),
            "consent": consent.strip(),
        }

        def decide(known: ln.Known) -> list[NewEvent]:
            if (same := known.named(code)) is not None:
                raise Refused(
                    f"{code} is already registered"
                    + ("" if same.lot == code else f" as {same.lot} (ids are the same "
                       "whatever their case)")
                )  # fmt: skip
            return [NewEvent(ln.MATERIAL_REGISTERED, actor, payload)]

        write_materials(self.ctx, decide)
        return self.material(code)

    def derive(
        self,
        inputs: Sequence[tuple[str, Any]],
        outputs: Sequence[tuple[str, Any]],
        kind: str,
        unit: str,
        actor: str,
        *,
        material: str | None = None,
        passage: int | None = None,
        expiry: str | None = None,
        batch_id: str | None = None,
        step: str | None = None,
    ) -> Derived:
        """Record one derivation: INPUTS as (lot, quantity drawn or None), OUTPUTS as (new
        lot, quantity), all outputs of one KIND and UNIT. A transform, a split or a pool."""
        actor = self.gate.person(actor, "record")
        problems: list[str] = []
        draws = [ln.Draw(lot, _amount(q, f"quantity of {lot}", problems)) for lot, q in inputs]
        outs = []
        for lot, q in outputs:
            got = _amount(q, f"quantity of {lot}", problems)
            outs.append(ln.Output(lot, kind, got or Decimal(1), unit, material, passage, expiry))
        if problems:
            raise Refused("the derivation was not recorded", problems)
        batch, allowed = self._batch(batch_id, step)
        plan = ln.plan_derivation(
            self.known(), draws, outs, batch_id=batch, step=step, pooling_allowed=allowed
        )
        deviation = (
            self._pooling_deviation(batch, step, plan, outs, actor)
            if plan.needs_deviation
            else None
        )
        written = self._write_derivation(draws, outs, batch, step, allowed, deviation, actor)
        known = self.known()
        return Derived(
            shape=plan.shape,
            inputs=[ln.find(known, d.lot) for d in draws],
            outputs=[ln.find(known, o.lot) for o in outs],
            donors=plan.donors,
            deviation_id=deviation,
            seq=written.seq,
        )

    def split(
        self,
        lot: str,
        count: int,
        each: Any,
        actor: str,
        *,
        prefix: str | None = None,
        kind: str = ln.ALIQUOT,
        material: str | None = None,
        expiry: str | None = None,
        batch_id: str | None = None,
        step: str | None = None,
    ) -> Derived:
        """Aliquoting: COUNT new lots of EACH (in LOT's unit), named PREFIX-01, -02 ...
        (PREFIX: LOT), drawn together from LOT."""
        if not 1 <= count <= ln.MAX_OUTPUTS:
            raise Refused(f"{count} aliquots: expected 1-{ln.MAX_OUTPUTS}")
        source = self.material(lot)
        amount = ln.amount(each, "quantity of each aliquot")
        width = max(2, len(str(count)))
        base = usable(prefix, "aliquot prefix") if prefix else source.lot  # as registered
        names = [f"{base}-{n:0{width}d}" for n in range(1, count + 1)]
        return self.derive(
            [(lot, amount * count)],
            [(name, amount) for name in names],
            kind,
            source.unit or "",
            actor,
            material=material or source.material,
            expiry=expiry or source.expiry,
            batch_id=batch_id,
            step=step,
        )

    def release(self, lot: str, actor: str, reason: str | None = None) -> ln.Material:
        """QA releases a quarantined lot once everything upstream of it is released."""
        actor = self.gate.person(actor, "release")
        return self._status(lot, ln.RELEASED, actor, reason.strip() if reason else None)

    def reject(self, lot: str, actor: str, reason: str) -> ln.Material:
        actor = self.gate.person(actor, "reject")
        return self._status(lot, ln.REJECTED, actor, reason_text(reason))

    def destroy(self, lot: str, actor: str, reason: str) -> ln.Material:
        actor = self.gate.person(actor, "register materials")
        return self._status(lot, ln.DESTROYED, actor, reason_text(reason))

    def print_labels(
        self,
        lot: str,
        copies: int,
        actor: str,
        reason: str | None = None,
        render: Callable[[LabelSheet], bytes | str] | None = None,
    ) -> tuple[LabelSheet, bytes | str]:
        """Labels of LOT, COPIES of them: drawn first (so a missing PDF library writes
        nothing), then recorded as a print, or as a reprint, which needs REASON."""
        actor = self.gate.person(actor, "register materials")
        if not 1 <= copies <= MAX_COPIES:
            raise Refused(f"{copies} copies: expected 1-{MAX_COPIES}")
        if reason is not None and reason.strip():
            reason = reason_text(reason)
        now = self.ctx.clock()

        def decide(known: ln.Known) -> tuple[ln.Material, LabelSheet]:
            item = ln.find(known, lot)
            if problem := ln.label_problem(item, reason):
                raise Refused(problem, hint=Hint("give_reason") if item.labels else None)
            return item, _sheet(item, copies, iso(now), actor)

        item, sheet = decide(self.known())
        if render is None:
            from cmprep.render.labels import render_labels

            out = render_labels(sheet)
        else:
            out = render(sheet)
        payload = {"lot": item.lot, "copies": copies, "reprint": bool(item.labels)}

        def record(known: ln.Known) -> list[NewEvent]:
            again, _ = decide(known)
            return [NewEvent(ln.LABEL_PRINTED, actor, {**payload, "reprint": bool(again.labels)},
                             reason=reason if again.labels else None)]  # fmt: skip

        write_materials(self.ctx, record, now)
        return sheet, out

    # --- inside ----------------------------------------------------------------------------
    def _batch(self, batch_id: str | None, step: str | None) -> tuple[str | None, bool]:
        """The batch a derivation names (its stored id) and whether its protocol allows
        pooling across donors."""
        if batch_id is None:
            if step is not None:
                raise Refused(f"step {step!r} is named without its batch; name the batch too")
            return None, False
        batch = self.ctx.batch(batch_id)
        if step is None:
            raise Refused(f"name the step of batch {batch.id} where this was done")
        if step not in {s.id for s in batch.protocol.steps}:
            ids = ", ".join(s.id for s in batch.protocol.steps)
            raise Refused(f"batch {batch.id} has no step {step!r}; its steps: {ids}")
        return batch.id, batch.protocol.pooling_across_donors

    def _pooling_deviation(
        self,
        batch_id: str | None,
        step: str | None,
        plan: ln.Plan,
        outs: list[ln.Output],
        actor: str,
    ) -> str:
        """Open the deviation a pooling across donors needs, in the batch that pools."""
        if batch_id is None or step is None:
            raise Refused(
                "material of donors " + ", ".join(plan.donors) + " would be pooled outside "
                "a batch; pooling across donors is recorded only at a batch's step, where its "
                "deviation is opened"
            )
        batch = self.ctx.batch(batch_id)
        made = ", ".join(o.lot for o in outs)
        message = (
            f"Material of donors {', '.join(plan.donors)} pooled into {made}; protocol "
            f"{batch.protocol.id} does not allow pooling across donors"
        )
        with self.ctx.store.writing(batch.id, batch.seq) as unit:
            dev = {
                "deviation_id": f"DEV-{unit.next_number('deviation'):04d}",
                "step": step,
                "parameter": "pooling across donors",
                "value": ", ".join(plan.donors),
                "spec": "one donor per pool",
                "severity": batch.protocol.traceability_severity.value,
                "message": message,
                "kind": "automatic",
                **({"addendum": True} if batch.is_final else {}),
            }
            written = unit.append(
                [NewEvent(ev.DEVIATION_OPENED, actor, dev)], iso(self.ctx.clock())
            )
            project(unit, batch, written)
        return str(dev["deviation_id"])

    def _write_derivation(
        self,
        draws: list[ln.Draw],
        outs: list[ln.Output],
        batch_id: str | None,
        step: str | None,
        allowed: bool,
        deviation: str | None,
        actor: str,
    ) -> Event:
        """The derivation event and its rows (the materials it touches, its lineage edges)
        in one transaction, decided again from the rows as they are under the head check
        (a lost race is decided afresh a few times)."""

        def decide(known: ln.Known) -> list[NewEvent]:
            plan = ln.plan_derivation(
                known, draws, outs, batch_id=batch_id, step=step, pooling_allowed=allowed
            )
            payload = {**plan.payload, **({"deviation_id": deviation} if deviation else {})}
            return [NewEvent(ln.MATERIAL_DERIVED, actor, payload)]

        return write_materials(self.ctx, decide)[0]

    def _status(self, lot: str, status: str, actor: str, reason: str | None) -> ln.Material:
        def decide(known: ln.Known) -> list[NewEvent]:
            item = ln.find(known, lot)  # typed in any case; the event names it as registered
            problem = ln.status_problem(item, status)
            if problem:
                raise Refused(problem)
            if status == ln.RELEASED and (problems := ln.release_problems(known, item.lot)):
                raise Refused(
                    f"{item.lot} was not released: everything upstream must be released first",
                    problems,
                )
            payload = {"lot": item.lot, "status": status}
            return [NewEvent(ln.MATERIAL_STATUS_CHANGED, actor, payload, reason=reason)]

        write_materials(self.ctx, decide)
        return self.material(lot)


def _amount(value: Any, what: str, problems: list[str]) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return ln.amount(value, what)
    except Refused as err:
        problems.append(err.message)
        return None


def _node(m: ln.Material) -> LineageNode:
    row = m.row()
    return LineageNode(
        m.lot, m.kind, m.material, m.status, row["quantity"], row["remaining"], m.unit,
        m.passage, m.batch_id, m.step, m.expiry,
    )  # fmt: skip


def _sheet(item: ln.Material, copies: int, at: str, actor: str) -> LabelSheet:
    quantity = (
        f"{ln.quantity_text(item.quantity)} {item.unit}" if item.quantity is not None else None
    )
    return LabelSheet(
        lot=item.lot,
        product=item.material,
        kind=item.kind,
        status=item.status,
        expiry=item.expiry,
        quantity=quantity,
        batch_id=item.batch_id,
        copies=copies,
        printed_at=at,
        printed_by=actor,
        reprint=bool(item.labels),
    )
