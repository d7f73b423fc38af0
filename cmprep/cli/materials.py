"""`cmprep materials ...` and `cmprep equipment ...`: lots and instruments."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import TABLE_FORMAT, table, with_actor, with_app

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def materials() -> None:
    """Material lots: register them, and find every batch that used one (recalls)."""


@materials.command("add")
@click.argument("lot")
@click.option("--material", required=True, help="What it is, e.g. FBS, PBS, 0.22 um filter.")
@click.option("--expiry", required=True, metavar="YYYY-MM-DD")
@click.option("--supplier", default=None)
@with_actor
@with_app
def materials_add(
    app: Services, lot: str, material: str, expiry: str, supplier: str | None, actor: str
) -> None:
    """Register a material lot with its expiry date.

    \b
    Example:
      cmprep materials add FBS-24-0711 --material FBS --expiry 2027-03-31 --as alice
    """
    item = app.materials.register_lot(lot, material, expiry, actor, supplier)
    click.echo(f"Lot {item.lot} ({item.material}, expires {item.expiry}) registered.")


@materials.command("list")
@TABLE_FORMAT
@with_app
def materials_list(app: Services, fmt: str) -> None:
    """List registered lots.

    \b
    Example:
      cmprep materials list --format csv
    """
    rows = [lot.row() for lot in app.materials.lots().values()]
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
        known = lot in app.materials.lots()
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
    rows = [i.row() for i in app.materials.instruments().values()]
    table(rows, ["id", "kind", "calibration_due", "rotor_radius_cm", "registered_by"], fmt)
