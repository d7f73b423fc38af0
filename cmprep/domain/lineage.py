"""Lineage: every material from a donor to an aliquot, what it was made from and how much
of it is left.

Why one model for all of them: a recall asks "which aliquots came from this donor, this
medium lot, this vial", and a release asks "is everything this lot was made from
released". Both are walks over one graph. So donors, cell-bank vials, cultures, CM
harvests, filtrates, concentrates, lyophilisates and aliquots are materials like the
reagent lots, in the "@materials" stream, each with a kind, a quantity and unit, a status
and the batch and step that made it.

One event kind, ``material_derived``, records a derivation: the inputs (and how much of
each was drawn) and the outputs. A transform (filtrate -> concentrate), a split (a
concentrate into aliquots) and a pool (two harvests into one) are all derivations; the
rules below hold for each:

* never draw more than remains of an input (quantities are exact decimals, never floats);
* nothing is derived from quarantined, rejected, consumed or destroyed material;
* a cell material made from a cell material is at the parent's passage + 1;
* when every input and output is counted in one unit, the outputs hold no more than was
  drawn (a split cannot make 12 mL of aliquots from 10 mL);
* a lot is released only when everything upstream of it is released (or was, and has
  since been used up);
* pooling material of more than one donor opens a deviation, unless the protocol of the
  batch that pools allows it.

This module is pure: it folds events and decides; the service writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from cmprep.domain.ids import RULE, is_usable, same, suggestion
from cmprep.domain.text import control_problem
from cmprep.errors import Hint, NotFound, Refused
from cmprep.events import Event

MATERIALS_STREAM = "@materials"
LOT_REGISTERED = "lot_registered"  # a reagent lot (the first kind of material there was)
MATERIAL_REGISTERED = "material_registered"  # a donor: where a lineage starts
MATERIAL_DERIVED = "material_derived"  # inputs drawn, outputs made
MATERIAL_STATUS_CHANGED = "material_status_changed"  # released, rejected, destroyed
LABEL_PRINTED = "label_printed"  # a print or a reprint of a lot's labels
LINEAGE_EVENTS = (MATERIAL_REGISTERED, MATERIAL_DERIVED, MATERIAL_STATUS_CHANGED, LABEL_PRINTED)

REAGENT = "reagent"
DONOR = "donor"
VIAL = "cell-bank vial"
CULTURE = "culture"
HARVEST = "CM harvest"
FILTRATE = "filtrate"
CONCENTRATE = "concentrate"
LYOPHILISATE = "lyophilisate"
ALIQUOT = "aliquot"
KINDS = (REAGENT, DONOR, VIAL, CULTURE, HARVEST, FILTRATE, CONCENTRATE, LYOPHILISATE, ALIQUOT)
DERIVED_KINDS = KINDS[2:]  # what a derivation may make: never a donor or a supplier's lot
CELL_KINDS = frozenset({VIAL, CULTURE})  # counted in passages

QUARANTINE = "quarantine"
RELEASED = "released"
REJECTED = "rejected"
CONSUMED = "consumed"
DESTROYED = "destroyed"
STATUSES = (QUARANTINE, RELEASED, REJECTED, CONSUMED, DESTROYED)
# what a person may set (consumed follows from drawing the last of a lot)
SETTABLE = {
    RELEASED: (QUARANTINE,),
    # a lot used up may still be found bad (a late mycoplasma result): rejecting it blocks
    # the release of everything made from it
    REJECTED: (QUARANTINE, RELEASED, CONSUMED),
    DESTROYED: (QUARANTINE, RELEASED, REJECTED),
}

MAX_UNIT = 16
MAX_TEXT = 200
MAX_OUTPUTS = 1000  # aliquots of one split


@dataclass
class Material:
    """One material as its events leave it."""

    lot: str
    kind: str
    material: str  # what it is, in words: "FBS", "MSC-CM concentrate 10x"
    status: str
    quantity: Decimal | None  # as made or registered; None: not counted (a donor)
    unit: str | None
    remaining: Decimal | None
    made_by: str
    made_at: str
    passage: int | None = None
    expiry: str | None = None
    supplier: str | None = None
    eligibility: str | None = None  # donors: the eligibility record's reference
    consent: str | None = None  # donors: the consent form's reference
    batch_id: str | None = None
    step: str | None = None
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    donors: frozenset[str] = frozenset()  # every donor upstream (itself, for a donor)
    released_once: bool = False
    labels: list[dict[str, Any]] = field(default_factory=list)  # every print, in order
    history: list[dict[str, Any]] = field(default_factory=list)  # status changes, draws
    seq: int = 0  # the "@materials" event that made it: materials are listed in this order

    def stored(self) -> dict[str, Any]:
        """Everything it holds, JSON-safe: its row in the store's materials register,
        which a write reads by lot instead of folding the whole stream. Quantities stay
        exact text; ``from_stored`` gives back an equal Material."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["quantity"] = quantity_text(self.quantity)
        out["remaining"] = quantity_text(self.remaining)
        out["donors"] = sorted(self.donors)
        return out

    @classmethod
    def from_stored(cls, row: Mapping[str, Any]) -> Material:
        """The Material a register row holds (``stored``)."""
        data = dict(row)
        data["quantity"] = _stored(data.get("quantity"))
        data["remaining"] = _stored(data.get("remaining"))
        data["donors"] = frozenset(data.get("donors") or ())
        return cls(**data)

    def row(self) -> dict[str, Any]:
        """JSON-safe, for lists and exports."""
        return {
            "lot": self.lot,
            "kind": self.kind,
            "material": self.material,
            "status": self.status,
            "quantity": quantity_text(self.quantity),
            "remaining": quantity_text(self.remaining),
            "unit": self.unit,
            "passage": self.passage,
            "expiry": self.expiry,
            "batch_id": self.batch_id,
            "step": self.step,
            "parents": list(self.parents),
            "donors": sorted(self.donors),
            "made_by": self.made_by,
            "made_at": self.made_at,
        }


def quantity_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def amount(value: Any, what: str) -> Decimal:
    """A quantity typed or stored: a positive finite decimal, exactly as written.

    Why Decimal: 0.1 + 0.2 mL drawn from 0.3 mL must leave 0 and not refuse the last
    draw, so sums are exact; a float would be converted through its shortest text."""
    if isinstance(value, bool):
        raise Refused(f"{what} {value!r} is not a quantity; expected a positive number")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise Refused(f"{what} {value!r} is not a quantity; expected a positive number") from None
    if not number.is_finite() or number <= 0:
        raise Refused(f"{what} {value!r} is not a quantity; expected a positive number")
    if number.adjusted() > 12 or -int(number.as_tuple().exponent) > 9:
        raise Refused(f"{what} {value!r} is out of range; expected up to 12 digits, 9 decimals")
    return number


def counted(quantity: Any, unit: str | None) -> dict[str, str]:
    """The payload fields of a registered lot's quantity: {} when neither is given;
    Refused when only one is, or either is unusable."""
    if quantity is None and unit is None:
        return {}
    if quantity is None or not unit or not unit.strip():
        raise Refused("give the quantity and its unit together, e.g. 500 mL")
    if problem := text_problem(unit.strip(), "unit", MAX_UNIT):
        raise Refused(problem)
    return {"quantity": str(quantity_text(amount(quantity, "quantity"))), "unit": unit.strip()}


def _stored(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


# --- the fold ------------------------------------------------------------------------------
def fold_materials(events: Iterable[Event]) -> dict[str, Material]:
    """Every material of the "@materials" stream by lot, as its events leave it."""
    found: dict[str, Material] = {}
    for e in events:
        apply(found, e)
    return found


def touched(e: Event) -> list[str]:
    """The lots event E changes (what ``apply`` needs in FOUND and then updates): the lot
    registered, set or labelled; a derivation's inputs and outputs."""
    p = e.payload
    if e.type == MATERIAL_DERIVED:
        return list(dict.fromkeys([*(d["lot"] for d in p["inputs"]),
                                   *(o["lot"] for o in p["outputs"])]))  # fmt: skip
    if e.type in (LOT_REGISTERED, *LINEAGE_EVENTS):
        return [p["lot"]]
    return []


def apply(found: MutableMapping[str, Material], e: Event) -> None:
    """Move FOUND on by one event: the fold's step, and what a write does to the rows it
    read by lot (FOUND then holds the event's ``touched`` lots that exist)."""
    p = e.payload
    if e.type == LOT_REGISTERED:
        qty = _stored(p.get("quantity"))
        found[p["lot"]] = Material(
            p["lot"], REAGENT, p["material"], RELEASED, qty, p.get("unit"), qty,
            e.actor, e.recorded_at, expiry=p.get("expiry"), supplier=p.get("supplier"),
            released_once=True, seq=e.seq,
        )  # fmt: skip
    elif e.type == MATERIAL_REGISTERED:
        found[p["lot"]] = Material(
            p["lot"], p["kind"], p["material"], QUARANTINE, None, None, None,
            e.actor, e.recorded_at, eligibility=p.get("eligibility"),
            consent=p.get("consent"), donors=frozenset({p["lot"]}), seq=e.seq,
        )  # fmt: skip
    elif e.type == MATERIAL_DERIVED:
        _derived(found, e)
    elif e.type == MATERIAL_STATUS_CHANGED:
        item = found[p["lot"]]
        item.history.append(
            {"status": p["status"], "from": item.status, "by": e.actor,
             "at": e.recorded_at, "reason": e.reason}
        )  # fmt: skip
        item.status = p["status"]
        item.released_once = item.released_once or p["status"] == RELEASED
    elif e.type == LABEL_PRINTED:
        found[p["lot"]].labels.append(
            {"copies": p["copies"], "reprint": p.get("reprint", False), "by": e.actor,
             "at": e.recorded_at, "reason": e.reason}
        )  # fmt: skip


def _derived(found: MutableMapping[str, Material], e: Event) -> None:
    p = e.payload
    donors: set[str] = set()
    for draw in p["inputs"]:
        source = found[draw["lot"]]
        donors |= source.donors
        used = _stored(draw.get("quantity"))
        if used is not None and source.remaining is not None:
            source.remaining -= used
            if source.remaining == 0:
                source.status = CONSUMED
        source.history.append(
            {"drawn": quantity_text(used), "unit": source.unit, "by": e.actor, "at": e.recorded_at,
             "into": [o["lot"] for o in p["outputs"]]}
        )  # fmt: skip
    parents = [d["lot"] for d in p["inputs"]]
    for out in p["outputs"]:
        qty = _stored(out["quantity"])
        found[out["lot"]] = Material(
            out["lot"], out["kind"], out["material"], QUARANTINE, qty, out["unit"], qty,
            e.actor, e.recorded_at, passage=out.get("passage"), expiry=out.get("expiry"),
            batch_id=p.get("batch_id"), step=p.get("step"), parents=list(parents),
            donors=frozenset(donors), seq=e.seq,
        )  # fmt: skip
        for parent in parents:
            found[parent].children.append(out["lot"])


def edges(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The lineage edge rows of derivation events (the store's projection): one per input
    and output, with the event's seq and how much of the input went into the output (in a
    split, the output's own quantity; otherwise all that was drawn of the input)."""
    rows: list[dict[str, Any]] = []
    for e in events:
        if e.type != MATERIAL_DERIVED:
            continue
        ins, outs = e.payload["inputs"], e.payload["outputs"]
        # a split's share: each aliquot took its own quantity of the one input
        share = len(ins) == 1 and all(o["unit"] == ins[0].get("unit") for o in outs)
        for draw in ins:
            for out in outs:
                drawn = out["quantity"] if share else draw.get("quantity")
                rows.append(
                    {"parent": draw["lot"], "child": out["lot"], "seq": e.seq,
                     "drawn": drawn if draw.get("quantity") is not None else None,
                     "unit": draw.get("unit")}
                )  # fmt: skip
    return rows


# --- what a decision reads ----------------------------------------------------------------
class Known(Protocol):
    """The materials a decision reads, one lot at a time.

    Why not a mapping of every lot: a write must cost the same beside 100 lots as beside
    100,000, so it asks only for the lots it names (the store's materials register, read
    by key); the whole fold (``Folded``) is for a database whose register is not filled
    yet, and for tests."""

    def named(self, lot: str) -> Material | None:
        """The material LOT names, typed in any case, or None."""

    def near(self, lot: str) -> list[str]:
        """A bounded list of lots next to LOT: what a "did you mean" picks from."""


class Folded:
    """``Known`` over a fold of the whole stream (``fold_materials``)."""

    def __init__(self, found: Mapping[str, Material]) -> None:
        self.found = found

    def named(self, lot: str) -> Material | None:
        return self.found.get(lot) or self.found.get(same(lot, self.found) or "")

    def near(self, lot: str) -> list[str]:
        return list(self.found)


# --- walks ---------------------------------------------------------------------------------
def ancestors(materials: Known, lot: str) -> list[str]:
    """Every lot upstream of LOT (not itself), nearest first."""
    return _walk(materials, lot, lambda m: m.parents)


def descendants(materials: Known, lot: str) -> list[str]:
    """Every lot downstream of LOT (not itself), nearest first: what a recall of it covers."""
    return _walk(materials, lot, lambda m: m.children)


def _walk(materials: Known, lot: str, step: Any) -> list[str]:
    seen, order, queue = {lot}, [], [lot]
    while queue:
        current = queue.pop(0)
        item = materials.named(current)
        for nxt in step(item) if item else []:
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
                queue.append(nxt)
    return order


# --- deciding ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draw:
    """How much of one input a derivation uses (None: a lot whose quantity is not counted)."""

    lot: str
    quantity: Decimal | None = None


@dataclass(frozen=True)
class Output:
    """One material a derivation makes."""

    lot: str
    kind: str
    quantity: Decimal
    unit: str
    material: str | None = None  # in words; the kind when not given
    passage: int | None = None
    expiry: str | None = None


@dataclass(frozen=True)
class Plan:
    """A derivation decided: the event's payload, its shape, and whether its pooling of
    donors needs a deviation."""

    payload: dict[str, Any]
    shape: str  # "transform", "split" or "pool"
    donors: tuple[str, ...]  # the donors pooled, when more than one
    needs_deviation: bool


def find(materials: Known, lot: str) -> Material:
    """The material LOT names, typed in any case; NotFound naming the closest."""
    item = materials.named(lot)
    if item is None:
        raise NotFound(
            f"no material {lot!r}{suggestion(lot, materials.near(lot))}",
            hint=Hint("register_lot", lot=lot),
        )
    return item


def use_problem(item: Material) -> str | None:
    """Why nothing may be drawn from ITEM now, or None."""
    if item.status == RELEASED:
        return None
    if item.status == CONSUMED:
        return f"{item.lot} is consumed: nothing of it remains"
    return f"{item.lot} is {item.status}; only released material may be used"


def text_problem(text: str | None, what: str, limit: int = MAX_TEXT) -> str | None:
    if text is None:
        return None
    if not text.strip():
        return f"{what} is empty"
    if problem := control_problem(text, what):
        return problem
    if len(text) > limit:
        return f"{what} is longer than {limit} characters"
    return None


def plan_derivation(
    materials: Known,
    draws: Sequence[Draw],
    outputs: Sequence[Output],
    *,
    batch_id: str | None = None,
    step: str | None = None,
    pooling_allowed: bool = False,
) -> Plan:
    """Check a derivation against every rule and give what to write; Refused listing every
    problem at once, NotFound for an input that is not registered."""
    problems: list[str] = []
    if not draws:
        problems.append("name at least one input")
    if not outputs:
        problems.append("name at least one output")
    if len(outputs) > MAX_OUTPUTS:
        problems.append(f"{len(outputs)} outputs; at most {MAX_OUTPUTS} in one derivation")
    inputs = [find(materials, d.lot) for d in draws]
    names = [m.lot for m in inputs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"input {dup} is named twice; name each input once with all it gives")
    drawn: list[dict[str, Any]] = []
    for item, d in zip(inputs, draws, strict=True):
        if problem := use_problem(item):
            problems.append(problem)
        if d.quantity is None and item.remaining is not None:
            problems.append(
                f"give how much of {item.lot} is used (it holds {quantity_text(item.remaining)} "
                f"{item.unit})"
            )
        elif d.quantity is not None and item.remaining is not None and d.quantity > item.remaining:
            problems.append(
                f"{quantity_text(d.quantity)} {item.unit} of {item.lot} is more than remains "
                f"({quantity_text(item.remaining)} {item.unit})"
            )
        drawn.append({"lot": item.lot, "quantity": quantity_text(d.quantity), "unit": item.unit})
    made: list[dict[str, Any]] = []
    out_names = [o.lot.lower() for o in outputs]
    for dup in sorted({n for n in out_names if out_names.count(n) > 1}):
        problems.append(f"output {dup} is named twice")
    for o in outputs:
        problems += _output_problems(materials, o, names)
        made.append(
            {"lot": o.lot, "kind": o.kind, "material": (o.material or o.kind).strip(),
             "quantity": quantity_text(o.quantity), "unit": o.unit,
             "passage": _passage(inputs, o, problems), "expiry": o.expiry}
        )  # fmt: skip
    problems += _balance(inputs, draws, outputs)
    if problems:
        raise Refused("the derivation was not recorded", problems)
    donors = tuple(sorted(set().union(*(m.donors for m in inputs))))
    # a new mixing of donors: together the inputs carry more donors than any one of them
    # (a split or a transform of a pool made before is not pooled again)
    pooled = len(donors) > max((len(m.donors) for m in inputs), default=0)
    shape = "pool" if len(draws) > 1 else "split" if len(outputs) > 1 else "transform"
    payload: dict[str, Any] = {
        "inputs": drawn,
        "outputs": made,
        "shape": shape,
        "batch_id": batch_id,
        "step": step,
    }
    if pooled:
        payload["pooled_donors"] = list(donors)
        payload["pooling_allowed"] = pooling_allowed
    return Plan(payload, shape, donors if pooled else (), pooled and not pooling_allowed)


def _output_problems(materials: Known, o: Output, inputs: Sequence[str]) -> list[str]:
    problems: list[str] = []
    if not is_usable(o.lot):
        problems.append(f"output lot {o.lot!r} is not usable: {RULE}")
    elif materials.named(o.lot) is not None or same(o.lot, inputs) is not None:
        problems.append(f"lot {o.lot} already exists; give each new material a new lot id")
    if o.kind not in DERIVED_KINDS:
        problems.append(f"kind {o.kind!r} cannot be made; expected one of: "
                        + ", ".join(DERIVED_KINDS))  # fmt: skip
    if not o.unit:
        problems.append(f"give the unit of {o.lot}, e.g. mL")
    elif problem := text_problem(o.unit, "unit", MAX_UNIT):
        problems.append(problem)
    if problem := text_problem(o.material, "material"):
        problems.append(problem)
    if o.expiry is not None:
        try:
            date.fromisoformat(o.expiry)
        except ValueError:
            problems.append(f"expiry {o.expiry!r} is not a date; expected YYYY-MM-DD")
    return problems


def _passage(inputs: Sequence[Material], o: Output, problems: list[str]) -> int | None:
    """The output's passage: a cell material from a cell material is at parent + 1; one
    from a donor must be given; anything else has none."""
    if o.kind not in CELL_KINDS:
        if o.passage is not None:
            problems.append(f"{o.lot} is a {o.kind}: only cell materials have a passage")
        return None
    parents = {m.passage for m in inputs if m.kind in CELL_KINDS}
    if len(parents) > 1:
        problems.append(
            "cell materials at passages " + ", ".join(str(p) for p in sorted(
                x for x in parents if x is not None)) + " cannot be pooled into one passage"
        )  # fmt: skip
        return None
    if parents:
        parent = next(iter(parents))
        expected = None if parent is None else parent + 1
        if o.passage is not None and o.passage != expected:
            problems.append(
                f"{o.lot} is at passage {expected} (its parent's {parent} + 1), not {o.passage}"
            )
        return expected
    if o.passage is None:
        problems.append(f"give the passage of {o.lot} (it is made from no cell material)")
    elif not 0 <= o.passage <= 100:
        problems.append(f"passage {o.passage} is impossible; expected 0-100")
    return o.passage


def _balance(
    inputs: Sequence[Material], draws: Sequence[Draw], outputs: Sequence[Output]
) -> list[str]:
    """Outputs cannot hold more than was drawn, when everything is counted in one unit."""
    units = {m.unit for m in inputs} | {o.unit for o in outputs}
    if len(units) != 1 or any(d.quantity is None for d in draws) or not outputs:
        return []
    taken = sum((d.quantity for d in draws if d.quantity is not None), Decimal(0))
    made = sum((o.quantity for o in outputs), Decimal(0))
    if made > taken:
        unit = next(iter(units))
        held, drawn = quantity_text(made), quantity_text(taken)
        return [f"the outputs hold {held} {unit}, more than the {drawn} {unit} drawn"]
    return []


def release_problems(materials: Known, lot: str) -> list[str]:
    """Why LOT cannot be released now ([] when it can): it must be in quarantine, and
    everything upstream released (or released once, and since used up or destroyed)."""
    item = find(materials, lot)
    problems = []
    if item.status != QUARANTINE:
        problems.append(f"{lot} is {item.status}; only material in quarantine is released")
    for up in ancestors(materials, lot):
        m = find(materials, up)
        if m.status == RELEASED or (m.released_once and m.status in (CONSUMED, DESTROYED)):
            continue
        problems.append(f"upstream {m.kind} {up} is {m.status}")
    return problems


def status_problem(item: Material, status: str) -> str | None:
    """Why ITEM cannot be set to STATUS by a person, or None."""
    if status not in SETTABLE:
        return f"status {status!r} cannot be set; expected one of: {', '.join(SETTABLE)}"
    if item.status not in SETTABLE[status]:
        return f"{item.lot} is {item.status}; it cannot become {status}"
    return None


def donor_problem(code: str) -> str | None:
    """Why CODE cannot be a donor's pseudonymous code, or None: a usable id with a digit
    in it, so that a donor's name is never what is typed."""
    if not is_usable(code):
        return f"donor code {code!r} is not usable: {RULE}"
    if not any(c.isdigit() for c in code):
        return (
            f"donor code {code!r} has no digit; give the pseudonymous code (e.g. D-0042), "
            "never a name"
        )
    return None


def label_problem(item: Material, reason: str | None) -> str | None:
    """Why labels of ITEM cannot be printed now, or None: nothing is left of a consumed or
    destroyed lot, and a reprint needs its reason."""
    if item.status in (CONSUMED, DESTROYED):
        return f"{item.lot} is {item.status}: there is nothing left to label"
    if item.labels and not (reason and reason.strip()):
        return (
            f"labels of {item.lot} were printed before ({len(item.labels)} time(s)); "
            "a reprint needs a reason"
        )
    return None


def trail_words(event: Event) -> tuple[str, str] | None:
    """(what, new) of a lineage event as the audit trail says it; None for another event.

    For ``domain.audit.describe``: a donor registered, a derivation (what was drawn, what
    was made, a pooling of donors), a status set, a label print."""
    p = event.payload
    if event.type == MATERIAL_REGISTERED:
        return f"donor registered: {p['lot']}", (
            f"eligibility {p.get('eligibility')}; consent {p.get('consent')}"
        )
    if event.type == MATERIAL_DERIVED:
        drawn = ", ".join(
            f"{d['lot']}"
            + (f" {d['quantity']} {d.get('unit') or ''}".rstrip() if d.get("quantity") else "")
            for d in p["inputs"]
        )
        made = ", ".join(f"{o['lot']} {o['quantity']} {o['unit']}" for o in p["outputs"])
        where = f" at {p['batch_id']} {p['step']}" if p.get("batch_id") else ""
        pooled = (
            f"; donors {', '.join(p['pooled_donors'])} pooled" if p.get("pooled_donors") else ""
        )
        return f"{p.get('shape', 'derivation')}{where}: {drawn}", f"{made}{pooled}"
    if event.type == MATERIAL_STATUS_CHANGED:
        return f"{p['lot']} {p['status']}", ""
    if event.type == LABEL_PRINTED:
        what = "labels reprinted" if p.get("reprint") else "labels printed"
        return f"{what}: {p['lot']}", f"{p['copies']} copies"
    return None
