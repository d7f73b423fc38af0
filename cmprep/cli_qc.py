"""Commands for material lots, equipment and secretome QC. Registered by cli.py; click only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cmprep.cli import TABLE_FORMAT, TEXT_FORMAT, _entries, _table, _tell, main, with_actor, with_db

if TYPE_CHECKING:
    from cmprep.service import Service


# --- materials -------------------------------------------------------------------------
@main.group()
def materials() -> None:
    """Material lots: register them, and find every batch that used one (recalls)."""


@materials.command("add")
@click.argument("lot")
@click.option("--material", required=True, help="What it is, e.g. FBS, PBS, 0.22 um filter.")
@click.option("--expiry", required=True, metavar="YYYY-MM-DD")
@click.option("--supplier", default=None)
@with_actor
@with_db
def materials_add(
    svc: Service, lot: str, material: str, expiry: str, supplier: str | None, actor: str
) -> None:
    """Register a material lot with its expiry date.

    \b
    Example:
      cmprep materials add FBS-24-0711 --material FBS --expiry 2027-03-31 --as alice
    """
    item = svc.register_lot(lot, material, expiry, actor, supplier)
    click.echo(f"Lot {item.lot} ({item.material}, expires {item.expiry}) registered.")


@materials.command("list")
@TABLE_FORMAT
@with_db
def materials_list(svc: Service, fmt: str) -> None:
    """List registered lots.

    \b
    Example:
      cmprep materials list --format csv
    """
    _table(
        [lot.row() for lot in svc.lots().values()],
        ["lot", "material", "expiry", "supplier", "registered_by", "registered_at"],
        fmt,
    )


@materials.command("where-used")
@click.argument("lot")
@TABLE_FORMAT
@with_db
def materials_where_used(svc: Service, lot: str, fmt: str) -> None:
    """Every batch and step that used a lot: where a recall starts.

    \b
    Example:
      cmprep materials where-used FBS-24-0711
    """
    rows = svc.where_used(lot)
    if not rows and fmt == "table":
        known = lot in svc.lots()
        click.echo(
            f"No batch used lot {lot}."
            if known
            else f"No batch used lot {lot}, and no such lot is registered."
        )
        return
    _table(rows, ["lot", "material", "batch_id", "step", "used_at", "by"], fmt)


# --- equipment -------------------------------------------------------------------------
@main.group()
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
@with_db
def equipment_add(
    svc: Service,
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
    inst = svc.register_equipment(ident, kind, calibration_due, actor, rotor_radius)
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
@with_db
def equipment_calibrate(
    svc: Service, ident: str, next_due: str, certificate: str | None, actor: str
) -> None:
    """Record a calibration and the next due date.

    \b
    Example:
      cmprep equipment calibrate CF-02 --next-due 2027-07-15 --certificate CAL-5531 --as alice
    """
    inst = svc.record_calibration(ident, next_due, actor, certificate)
    click.echo(f"{inst.id}: calibration recorded; next due {inst.calibration_due}.")


@equipment.command("list")
@TABLE_FORMAT
@with_db
def equipment_list(svc: Service, fmt: str) -> None:
    """List instruments and their calibration due dates.

    \b
    Example:
      cmprep equipment list
    """
    _table(
        [i.row() for i in svc.instruments().values()],
        ["id", "kind", "calibration_due", "rotor_radius_cm", "registered_by"],
        fmt,
    )


# --- QC --------------------------------------------------------------------------------
@main.group()
def qc() -> None:
    """Secretome QC: import results, control charts, group comparisons."""


@qc.command("import")
@click.argument("batch_id", metavar="BATCH")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("values", nargs=-1, metavar="[NAME=VALUE...]")
@click.option("--step", "step_id", default="qc", show_default=True, help="The QC step to record.")
@click.option("--note", default=None)
@click.option(
    "--at", default=None, metavar="TIME", help="When the QC was done (ISO 8601 with zone)."
)
@with_actor
@with_db
def qc_import(
    svc: Service,
    batch_id: str,
    file: str,
    values: tuple[str, ...],
    step_id: str,
    note: str | None,
    at: str | None,
    actor: str,
) -> None:
    """Record the QC step from a CSV of results (analyte,value,unit,method,replicate);
    replicates are averaged and their CV kept. Other values of the step as NAME=VALUE.
    A malformed file is refused whole, naming each bad line.

    \b
    Example:
      cmprep qc import CM-20261129-001 elisa.csv sterility_passed=yes endotoxin_passed=yes qc_report_id=QC-77 --as alice
    """  # noqa: E501
    batch = svc.batch(batch_id)
    step = batch.protocol.step(step_id)
    if step is None:
        raise click.ClickException(f"protocol {batch.protocol.id} has no step {step_id!r}")
    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text; save it as CSV UTF-8") from None
    from cmprep.service import CmprepError

    try:
        entries, replicates = svc.parse_qc_csv(step, text, file)
        extra = _entries(values)
        clash = sorted(set(entries) & set(extra))
        if clash:
            raise click.UsageError(f"{', '.join(clash)} given both in the file and as NAME=VALUE")
        out = svc.record_step(
            batch_id, step_id, {**entries, **extra}, actor, note=note, at=at, replicates=replicates
        )
    except CmprepError as err:
        raise click.ClickException(str(err)) from None
    _tell(
        out,
        f"Imported {sum(r['n'] for r in replicates.values())} result(s) "
        f"into {step_id} of batch {batch_id}.",
    )
    for name, rep in replicates.items():
        cv = f", CV {rep['cv_percent']:g} %" if rep["cv_percent"] is not None else ""
        click.echo(f"  {name}: mean of {rep['n']}{cv}")
    for f in out.findings:
        if f.note:
            click.echo(f"  i {f.note}")


def _write_chart(svg: str, output: str) -> None:
    from cmprep.render import write_output

    if output.lower().endswith(".png"):
        from cmprep.charts import svg_to_png

        try:
            content: str | bytes = svg_to_png(svg)
        except RuntimeError as err:
            raise click.ClickException(str(err)) from None
    elif output.lower().endswith(".svg"):
        content = svg
    else:
        raise click.UsageError("-o must end in .svg or .png")
    click.echo(f"Chart written to {write_output(content, output)}")


@qc.command("trend")
@click.argument("analyte")
@click.option("--protocol", "protocol_id", default=None)
@click.option("--since", default=None, metavar="DATE")
@click.option("-o", "--output", default=None, metavar="FILE.svg|FILE.png")
@TEXT_FORMAT
@with_db
def qc_trend(
    svc: Service,
    analyte: str,
    protocol_id: str | None,
    since: str | None,
    output: str | None,
    fmt: str,
) -> None:
    """Levey-Jennings control chart of an analyte by batch, with mean and +/-1, 2, 3 SD from
    the lab's released batches; Westgard violations (1-3s, 2-2s, R-4s, 4-1s, 10-x) listed.

    \b
    Example:
      cmprep qc trend vegf --protocol cm-standard-serum-free -o vegf.svg
    """
    from cmprep.cli import _day, _echo_json

    data = svc.trend(analyte, protocol_id, _day(since, "--since"))
    if fmt == "json":
        _echo_json({**data, "violations": [v.__dict__ for v in data["violations"]]})
    else:
        click.echo(
            f"{data['label']} ({data['unit']}): {len(data['points'])} batch(es); "
            f"baseline from {data['baseline_count']} released: "
            f"mean {data['mean']:.4g}, SD {data['sd']:.3g}"
        )
        rejections = [v for v in data["violations"] if v.rejection]
        click.echo(
            "Westgard: "
            + ("no rejection rule broken" if not rejections else f"{len(rejections)} rejection(s)")
        )
        for v in data["violations"]:
            click.echo(f"  {'x' if v.rejection else '!'} {v.message}")
    if output:
        from cmprep.charts import levey_jennings_svg

        svg = levey_jennings_svg(
            [(b, v) for b, v, _ in data["points"]],
            data["mean"],
            data["sd"],
            unit=data["unit"],
            title=f"{data['label']}" + (f" — {protocol_id}" if protocol_id else ""),
            violations=data["violations"],
            baseline_count=data["baseline_count"],
        )
        _write_chart(svg, output)


@qc.command("compare")
@click.option("--by", type=click.Choice(["protocol", "source", "preconditioning"]), required=True)
@click.option("--analyte", "analytes", multiple=True, help="Only these analytes (repeatable).")
@click.option("--all", "include_all", is_flag=True, help="Include batches not (yet) released.")
@TABLE_FORMAT
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE.svg|FILE.png",
    help="Plot of the first analyte (or --analyte).",
)
@with_db
def qc_compare(
    svc: Service,
    by: str,
    analytes: tuple[str, ...],
    include_all: bool,
    fmt: str,
    output: str | None,
) -> None:
    """The secretome of groups of batches side by side (mean, SD, n), e.g. hypoxic vs
    normoxic VEGF.

    \b
    Example:
      cmprep qc compare --by preconditioning --analyte vegf -o vegf-by-preconditioning.svg
    """
    import statistics

    data = svc.compare(by, list(analytes) or None, released_only=not include_all)
    rows = []
    for analyte, groups in data["table"].items():
        for group, vals in sorted(groups.items()):
            sd = statistics.stdev(vals) if len(vals) > 1 else None
            rows.append(
                {
                    "analyte": analyte,
                    by: group,
                    "n": len(vals),
                    "mean": f"{statistics.fmean(vals):.4g}",
                    "sd": f"{sd:.3g}" if sd is not None else "",
                    "unit": data["units"][analyte],
                }
            )
    _table(rows, ["analyte", by, "n", "mean", "sd", "unit"], fmt)
    if output:
        from cmprep.charts import compare_svg

        first = analytes[0] if analytes else next(iter(data["table"]))
        if first not in data["table"]:
            raise click.ClickException(f"no results for {first}")
        svg = compare_svg(data["table"][first], unit=data["units"][first], title=f"{first} by {by}")
        _write_chart(svg, output)
