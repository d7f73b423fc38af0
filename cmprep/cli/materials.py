"""`cmprep materials ...` and `cmprep equipment ...`: lots and instruments."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from cmprep.cli.common import (
    OUTPUT,
    TABLE_FORMAT,
    echo_json,
    shown,
    table,
    with_actor,
    with_app,
    write_or_print,
)

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def materials() -> None:
    """Materials from donor to aliquot: register, derive, release, trace and recall them."""


@materials.command("add")
@click.argument("lot")
@click.option("--material", required=True, help="What it is, e.g. FBS, PBS, 0.22 um filter.")
@click.option("--expiry", required=True, metavar="YYYY-MM-DD")
@click.option("--supplier", default=None)
@click.option("--quantity", default=None, help="How much there is, counted down as it is used.")
@click.option("--unit", default=None, help="The quantity's unit, e.g. mL.")
@with_actor
@with_app
def materials_add(
    app: Services,
    lot: str,
    material: str,
    expiry: str,
    supplier: str | None,
    quantity: str | None,
    unit: str | None,
    actor: str,
) -> None:
    """Register a material lot with its expiry date.

    \b
    Example:
      cmprep materials add FBS-24-0711 --material FBS --expiry 2027-03-31 --as alice
    """
    item = app.materials.register_lot(lot, material, expiry, actor, supplier, quantity, unit)
    click.echo(f"Lot {item.lot} ({item.material}, expires {item.expiry}) registered.")
    if item.expiry < item.registered_at[:10]:  # both ISO: the day it was registered on
        click.secho(
            f"Warning: lot {item.lot} expired on {item.expiry}, before today; a step that "
            "uses it opens a deviation. Check the expiry date on the label.",
            fg="yellow",
            err=True,
        )


@materials.command("list")
@TABLE_FORMAT
@with_app
def materials_list(app: Services, fmt: str) -> None:
    """List registered lots.

    \b
    Example:
      cmprep materials list --format csv
    """
    rows = [lot.row() for lot in app.materials.lots_kept()]
    table(rows, ["lot", "material", "expiry", "supplier", "registered_by", "registered_at"], fmt)


@materials.command("where-used")
@click.argument("lot")
@TABLE_FORMAT
@with_app
def materials_where_used(app: Services, lot: str, fmt: str) -> None:
    """Every batch and step that used a lot: where a recall starts.

    \b
    Example:
      cmprep materials where-used FBS-24-0711
    """
    rows = app.materials.where_used(lot)
    if not rows and fmt == "table":
        known = app.materials.lot_named(lot) is not None
        unknown = "" if known else ", and no such lot is registered"
        click.echo(f"No batch used lot {lot}{unknown}.")
        return
    table(rows, ["lot", "material", "batch_id", "step", "used_at", "by"], fmt)


@click.group()
def equipment() -> None:
    """Instruments: register them with their calibration due date (and rotor radius)."""


@equipment.command("add")
@click.argument("ident", metavar="ID")
@click.option(
    "--kind", required=True, help="centrifuge, incubator, hypoxia chamber, biosafety cabinet ..."
)
@click.option("--calibration-due", required=True, metavar="YYYY-MM-DD")
@click.option(
    "--rotor-radius",
    type=float,
    default=None,
    metavar="CM",
    help="Centrifuges: radius in cm, for rpm -> x g.",
)
@with_actor
@with_app
def equipment_add(
    app: Services,
    ident: str,
    kind: str,
    calibration_due: str,
    rotor_radius: float | None,
    actor: str,
) -> None:
    """Register an instrument.

    \b
    Example:
      cmprep equipment add CF-02 --kind centrifuge --rotor-radius 16.5 --calibration-due 2027-01-15 --as alice
    """  # noqa: E501
    inst = app.materials.register_equipment(ident, kind, calibration_due, actor, rotor_radius)
    radius = f", rotor radius {inst.rotor_radius_cm:g} cm" if inst.rotor_radius_cm else ""
    click.echo(
        f"{inst.kind.capitalize()} {inst.id} registered "
        f"(calibration due {inst.calibration_due}{radius})."
    )


@equipment.command("calibrate")
@click.argument("ident", metavar="ID")
@click.option("--next-due", required=True, metavar="YYYY-MM-DD")
@click.option("--certificate", default=None, help="Calibration certificate number.")
@with_actor
@with_app
def equipment_calibrate(
    app: Services, ident: str, next_due: str, certificate: str | None, actor: str
) -> None:
    """Record a calibration and the next due date.

    \b
    Example:
      cmprep equipment calibrate CF-02 --next-due 2027-07-15 --certificate CAL-5531 --as alice
    """
    inst = app.materials.record_calibration(ident, next_due, actor, certificate)
    click.echo(f"{inst.id}: calibration recorded; next due {inst.calibration_due}.")


@equipment.command("list")
@TABLE_FORMAT
@with_app
def equipment_list(app: Services, fmt: str) -> None:
    """List instruments and their calibration due dates.

    \b
    Example:
      cmprep equipment list
    """
    rows = [i.row() for i in app.materials.instruments_kept()]
    table(rows, ["id", "kind", "calibration_due", "rotor_radius_cm", "registered_by"], fmt)


# --- lineage: donors, derivations, status, trace, recall -------------------------------------
def _draw(text: str) -> tuple[str, str | None]:
    """LOT or LOT:QUANTITY (in the lot's own unit)."""
    lot, sep, qty = text.partition(":")
    if not lot or (sep and not qty):
        raise click.BadParameter(f"expected LOT or LOT:QUANTITY, got {text!r}")
    return lot, qty or None


def _made(text: str) -> tuple[str, str]:
    lot, sep, qty = text.partition(":")
    if not lot or not sep or not qty:
        raise click.BadParameter(f"expected NEW-LOT:QUANTITY, got {text!r}")
    return lot, qty


def _say_derived(out: Any) -> None:
    made = ", ".join(m.lot for m in out.outputs)
    click.echo(f"{out.shape.capitalize()} recorded: {made} ({out.outputs[0].kind}, in quarantine).")
    for m in out.inputs:
        if m.remaining is not None:
            left, done = m.row()["remaining"], " (consumed)" if m.status == "consumed" else ""
            click.echo(f"  {m.lot}: {left} {m.unit} remain{done}.")
    if out.deviation_id:
        click.echo(f"Deviation {out.deviation_id} opened: donors {', '.join(out.donors)} pooled.")


BATCH_STEP = [
    click.option("--batch", "batch_id", default=None, help="The batch where this was done."),
    click.option("--step", default=None, help="Its step (with --batch)."),
]


def _batch_step(func: Any) -> Any:
    for option in reversed(BATCH_STEP):
        func = option(func)
    return func


@materials.command("donor")
@click.argument("code")
@click.option("--eligibility", required=True, metavar="REF", help="Eligibility record reference.")
@click.option("--consent", required=True, metavar="REF", help="Consent form reference.")
@with_actor
@with_app
def materials_donor(app: Services, code: str, eligibility: str, consent: str, actor: str) -> None:
    """Register a donor by pseudonymous code (never a name); quarantined until released.

    \b
    Example:
      cmprep materials donor D-0042 --eligibility ELIG-2026-014 --consent ICF-2026-014 --as alice
    """
    item = app.lineage.register_donor(code, eligibility, consent, actor)
    click.echo(f"Donor {item.lot} registered (in quarantine until QA releases it).")


@materials.command("derive")
@click.option(
    "--in",
    "inputs",
    multiple=True,
    required=True,
    metavar="LOT[:QTY]",
    help="An input and how much of it is drawn (in its unit); repeat to pool.",
)
@click.option(
    "--out",
    "outputs",
    multiple=True,
    required=True,
    metavar="NEW-LOT:QTY",
    help="A material made; repeat to split.",
)
@click.option(
    "--kind",
    required=True,
    help="cell-bank vial, culture, CM harvest, filtrate, concentrate, lyophilisate or aliquot.",
)
@click.option("--unit", required=True, help="Unit of the outputs, e.g. mL.")
@click.option("--material", default=None, help="What the outputs are, in words.")
@click.option("--passage", type=int, default=None, help="Passage (cell materials from a donor).")
@click.option("--expiry", default=None, metavar="YYYY-MM-DD")
@_batch_step
@with_actor
@with_app
def materials_derive(
    app: Services,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    kind: str,
    unit: str,
    material: str | None,
    passage: int | None,
    expiry: str | None,
    batch_id: str | None,
    step: str | None,
    actor: str,
) -> None:
    """Record a derivation: a transform, a split or a pool (everything made is quarantined).

    \b
    Example:
      cmprep materials derive --in FILT-001:200 --out CONC-001:20 --kind concentrate --unit mL --batch CM-20261129-001 --step concentrate --as alice
      cmprep materials derive --in HARV-1:100 --in HARV-2:100 --out POOL-1:200 --kind "CM harvest" --unit mL --batch CM-20261129-001 --step collect --as alice
    """  # noqa: E501
    out = app.lineage.derive(
        [_draw(x) for x in inputs],
        [_made(x) for x in outputs],
        kind,
        unit,
        actor,
        material=material,
        passage=passage,
        expiry=expiry,
        batch_id=batch_id,
        step=step,
    )
    _say_derived(out)


@materials.command("split")
@click.argument("lot")
@click.option("--count", type=int, required=True, help="How many aliquots.")
@click.option("--each", required=True, help="Quantity of each, in the lot's unit.")
@click.option("--prefix", default=None, help="New lots are PREFIX-01, -02 ... (default: LOT).")
@click.option("--expiry", default=None, metavar="YYYY-MM-DD", help="Default: the lot's.")
@_batch_step
@with_actor
@with_app
def materials_split(
    app: Services,
    lot: str,
    count: int,
    each: str,
    prefix: str | None,
    expiry: str | None,
    batch_id: str | None,
    step: str | None,
    actor: str,
) -> None:
    """Aliquot a lot: COUNT new lots of EACH, drawn from it.

    \b
    Example:
      cmprep materials split CONC-001 --count 10 --each 1 --batch CM-20261129-001 --step aliquot --as alice
    """  # noqa: E501
    out = app.lineage.split(
        lot, count, each, actor, prefix=prefix, expiry=expiry, batch_id=batch_id, step=step
    )
    _say_derived(out)


@materials.command("release")
@click.argument("lot")
@click.option("--reason", default=None, help="A note (optional).")
@with_actor
@with_app
def materials_release(app: Services, lot: str, reason: str | None, actor: str) -> None:
    """QA releases a lot: only once everything upstream of it is released.

    \b
    Example:
      cmprep materials release D-0042 --as quinn
    """
    item = app.lineage.release(lot, actor, reason)
    click.echo(f"{item.lot} ({item.kind}) released.")


@materials.command("reject")
@click.argument("lot")
@click.option("--reason", required=True)
@with_actor
@with_app
def materials_reject(app: Services, lot: str, reason: str, actor: str) -> None:
    """QA rejects a lot: nothing may be made from it.

    \b
    Example:
      cmprep materials reject V-0042-03 --reason "mycoplasma positive" --as quinn
    """
    item = app.lineage.reject(lot, actor, reason)
    click.echo(f"{item.lot} ({item.kind}) rejected.")


@materials.command("destroy")
@click.argument("lot")
@click.option("--reason", required=True)
@with_actor
@with_app
def materials_destroy(app: Services, lot: str, reason: str, actor: str) -> None:
    """Record that what remains of a lot was destroyed.

    \b
    Example:
      cmprep materials destroy CONC-001-07 --reason "vial cracked on thaw" --as alice
    """
    item = app.lineage.destroy(lot, actor, reason)
    click.echo(f"{item.lot} ({item.kind}) destroyed.")


@materials.command("show")
@click.argument("lot")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@with_app
def materials_show(app: Services, lot: str, fmt: str) -> None:
    """One material: kind, status, quantity, where it came from, draws and label prints.

    \b
    Example:
      cmprep materials show CONC-001
    """
    item = app.lineage.material(lot)
    row = {**item.row(), "history": item.history, "labels": item.labels}
    if fmt == "json":
        echo_json(row)
        return
    for key in (
        "lot",
        "kind",
        "material",
        "status",
        "quantity",
        "remaining",
        "unit",
        "passage",
        "expiry",
        "batch_id",
        "step",
        "parents",
        "donors",
        "made_by",
        "made_at",
    ):
        value = row[key]
        if value not in (None, [], ""):
            click.echo(
                f"{key:10} {shown(', '.join(value) if isinstance(value, list) else str(value))}"
            )
    for h in item.history:
        click.echo(shown("  " + ", ".join(f"{k} {v}" for k, v in h.items() if v not in (None, []))))
    for p in item.labels:
        what = "reprinted" if p["reprint"] else "printed"
        why = f" ({p['reason']})" if p["reason"] else ""
        click.echo(shown(f"  labels: {p['copies']} {what} by {p['by']} at {p['at']}{why}"))


@materials.command("trace")
@click.argument("lot")
@click.option("--up", "direction", flag_value="up", help="Everything LOT was made from.")
@click.option("--down", "direction", flag_value="down", help="Everything made from LOT.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "svg"]),
    default="table",
    show_default=True,
)
@OUTPUT
@with_app
def materials_trace(
    app: Services, lot: str, direction: str | None, fmt: str, output: str | None
) -> None:
    """Walk the lineage tree of a lot, up to its donor or down to its aliquots.

    \b
    Example:
      cmprep materials trace D-0042 --down
      cmprep materials trace CONC-001-03 --up --format svg -o lineage.svg
    """
    if direction is None:
        raise click.UsageError(
            "give --up (what LOT was made from) or --down (what was made from it)"
        )
    from cmprep.render.lineage import TREE_COLUMNS, lineage_svg, tree_rows

    view = app.lineage.trace(lot, direction)
    if fmt == "json":
        write_or_print(
            json.dumps(view.as_json(), indent=2, ensure_ascii=False) + "\n", output, "Lineage"
        )
    elif fmt == "svg":
        write_or_print(lineage_svg(view), output, "Lineage drawing")
    else:
        table(tree_rows(view), TREE_COLUMNS, "table")


@materials.command("recall")
@click.argument("lot")
@TABLE_FORMAT
@with_app
def materials_recall(app: Services, lot: str, fmt: str) -> None:
    """Every material made from a lot (a donor, a medium lot, a vial), down to the aliquots.

    \b
    Example:
      cmprep materials recall D-0042 --format csv
    """
    rows = app.lineage.recall(lot)
    if not rows and fmt == "table":
        click.echo(f"Nothing was made from {lot}.")
        return
    table(rows, ["lot", "kind", "status", "remaining", "unit", "batch_id", "step", "reached"], fmt)
