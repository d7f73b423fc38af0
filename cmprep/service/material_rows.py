"""The materials register: what a write to "@materials" decides from, read lot by lot.

Why: every donor, vial, culture, harvest, filtrate, concentrate and aliquot a lab ever
made is an event in one stream. A write that folded that stream to check the two lots it
names cost 1 ms beside 100 materials and hundreds beside 20,000. The store keeps each
material's row as its events leave it (``materials``, written in the same transaction as
the event), so a write reads the rows it names by key and costs the same after years.

The write is decided against the stream's head read before its rows: a write that slipped
in between moves the head, the head check refuses ours, and it is decided again from the
rows as they now are (``Context.append_keyed``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cmprep.domain import ids
from cmprep.domain import lineage as ln
from cmprep.domain import traceability as tr
from cmprep.events import Event, NewEvent
from cmprep.service.context import NEAR_IDS, Context
from cmprep.store.base import EventStore, UnitOfWork

__all__ = ["KeptMaterials", "keep_materials", "known_materials", "write_materials"]


class KeptMaterials:
    """``ln.Known`` over the store's materials register: each lot asked for is one row read
    by key (and kept for the rest of the decision)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.seen: dict[str, ln.Material | None] = {}

    def named(self, lot: str) -> ln.Material | None:
        if lot in self.seen:
            return self.seen[lot]
        row = self.store.registered("material", lot)
        if row is None and (name := ids.same(lot, self.near(lot))) is not None:
            row = self.store.registered("material", name)
        found = ln.Material.from_stored(row) if row is not None else None
        self.seen[lot] = found
        return found

    def near(self, lot: str) -> list[str]:
        return self.store.ids_near("material", lot, NEAR_IDS)


def known_materials(store: EventStore) -> ln.Known:
    """What a decision about materials reads: the register by key where it is whole, else
    (a database upgraded with materials, until `db rebuild` fills it) the stream folded."""
    if store.register_whole("material"):
        return KeptMaterials(store)
    return ln.Folded(ln.fold_materials(store.events(ln.MATERIALS_STREAM)))


def keep_materials(unit: UnitOfWork, known: ln.Known, written: list[Event]) -> None:
    """The query rows WRITTEN changes, in its unit: each material it touches (as KNOWN had
    it, moved on by the events), a registered reagent's lot row, a derivation's lineage
    edges. KNOWN's own materials are not changed (copies are moved on)."""
    rows: dict[str, ln.Material] = {}
    for e in written:
        for lot in ln.touched(e):
            if lot not in rows and (m := known.named(lot)) is not None and m.lot == lot:
                rows[lot] = ln.Material.from_stored(m.stored())
        ln.apply(rows, e)
        if e.type == tr.LOT_REGISTERED:
            unit.put_registered("lot", tr.lot_of(e).row())
    for m in rows.values():
        unit.put_registered("material", m.stored())
    if edges := ln.edges(written):
        unit.put_lineage_edges(edges)


def write_materials(
    ctx: Context,
    decide: Callable[[ln.Known], list[NewEvent]],
    now: datetime | None = None,
) -> list[Event]:
    """Write to "@materials" what DECIDE gives from the materials it reads, with their rows,
    in one transaction; decided again (a few times at most) when another write came first.
    NOW: the time to record (a signed write's own instant)."""
    known: list[ln.Known] = []

    def decided() -> list[NewEvent]:
        known[:] = [known_materials(ctx.store)]  # afresh at each attempt
        return decide(known[0])

    def keep(unit: UnitOfWork, written: list[Event]) -> None:
        keep_materials(unit, known[0], written)

    return ctx.append_keyed(ln.MATERIALS_STREAM, decided, keep, now)
