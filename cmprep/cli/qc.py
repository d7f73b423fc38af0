"""`cmprep qc ...`: import QC results, control charts, group comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    PASSWORD_STDIN,
    TABLE_FORMAT,
    TEXT_FORMAT,
    day,
    echo_json,
    entries,
    read_password,
    table,
    with_actor,
    with_app,
)
from cmprep.cli.tell import tell

if TYPE_CHECKING:
    from cmprep.render.models import TrendView
    from cmprep.service import Services


@click.group()
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
@with_app
def qc_import(
    app: Services,
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
    data = Path(file).read_bytes()
    out = app.qc.import_csv(
        batch_id, data, file, actor, step_id=step_id, others=entries(values), note=note, at=at
    )
    replicates = out.batch.steps[step_id].values
    counted = {n: v.replicates for n, v in replicates.items() if v.replicates}
    total = sum(r["n"] for r in counted.values())
    tell(out, f"Imported {total} result(s) into {step_id} of batch {batch_id}.")
    for name, rep in counted.items():
        cv = f", CV {rep['cv_percent']:g} %" if rep["cv_percent"] is not None else ""
        click.echo(f"  {name}: mean of {rep['n']}{cv}")


def write_chart(svg: str, output: str) -> None:
    """An SVG chart to FILE.svg, or to FILE.png through cairosvg."""
    from cmprep.render.output import write_output

    if output.lower().endswith(".png"):
        from cmprep.render.charts import svg_to_png

        content: str | bytes = svg_to_png(svg)
    elif output.lower().endswith(".svg"):
        content = svg
    else:
        raise click.UsageError("-o must end in .svg or .png")
    click.echo(f"Chart written to {write_output(content, output)}")


@qc.command("trend")
@click.argument("analyte")
@click.option("--protocol", "protocol_id", default=None, help="The protocol of the baseline.")
@click.option(
    "--route", default=None, help="The downstream arm (use_fresh, concentrate, lyophilise)."
)
@click.option("--source", default=None, help="The cell source (UC, BM, AD ...).")
@click.option("--since", default=None, metavar="DATE")
@click.option("-o", "--output", default=None, metavar="FILE.svg|FILE.png")
@TEXT_FORMAT
@with_app
def qc_trend(
    app: Services,
    analyte: str,
    protocol_id: str | None,
    route: str | None,
    source: str | None,
    since: str | None,
    output: str | None,
    fmt: str,
) -> None:
    """Levey-Jennings control chart of an analyte by batch, with mean and +/-1, 2, 3 SD from
    the lab's released batches of one baseline (protocol x downstream route x cell source);
    Westgard violations listed. Rejection rules (1-3s, 2-2s, R-4s, 4-1s, 10-x) apply once
    the baseline holds the site's `westgard_baseline` released batches; before, 1-2s only.
    Where the analyte is measured in several baselines, name one.

    \b
    Example:
      cmprep qc trend vegf --protocol cm-standard-serum-free --route concentrate -o vegf.svg
    """
    from cmprep.render.charts import trend_chart

    start = day(app, since, "--since")
    view = app.qc.trend(analyte, protocol_id, start, route=route, source=source)
    if fmt == "json":
        echo_json(view.to_json())
    else:
        print_trend(view)
    if output:
        write_chart(trend_chart(view, f"{view.label} — {view.stratum}"), output)


def print_trend(view: TrendView) -> None:
    """The chart's baseline, its stratum and its Westgard findings, in words."""
    click.echo(f"{view.label} ({view.unit}) in {view.stratum}: {len(view.points)} batch(es)")
    click.echo(
        f"Baseline from {view.baseline_count} released: mean {view.mean:.4g}, SD {view.sd:.3g}"
    )
    rejections = [v for v in view.violations if v.rejection]
    if view.baseline_count < view.rules_from:
        click.echo(
            f"Westgard: warnings only; rejection rules apply from {view.rules_from} "
            f"released batches (the site's westgard_baseline), this baseline has "
            f"{view.baseline_count}"
        )
    else:
        broken = f"{len(rejections)} rejection(s)" if rejections else "no rejection rule broken"
        click.echo(f"Westgard: {broken}")
    for v in view.violations:
        click.echo(f"  {'x' if v.rejection else '!'} {v.message}")


@qc.command("conditional-release")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True, help="Why the product is used before its results.")
@click.option(
    "--pending",
    default=None,
    metavar="TESTS",
    help="The pending tests, comma separated (default: every release test after use).",
)
@PASSWORD_STDIN
@with_actor
@with_app
def qc_conditional_release(
    app: Services,
    batch_id: str,
    reason: str,
    pending: str | None,
    password_stdin: bool,
    actor: str,
) -> None:
    """Sign a conditional release (QA): fresh CM may be used before its QC results. Each
    pending result then closes it (in spec) or opens a critical deviation (out of spec).

    \b
    Example:
      cmprep qc conditional-release CM-20261129-001 --reason "clinical need, study 7" --as quinn
    """
    names = [p for p in (pending or "").split(",") if p.strip()] or None
    _, tests = app.quality.conditional_plan(batch_id, actor, reason, names)  # before a password
    password = read_password(password_stdin)
    app.quality.conditional_release(batch_id, actor, password, reason, names)
    listed = ", ".join(f"{t['step']}.{t['parameter']}" for t in tests)
    click.echo(f"Batch {batch_id} conditionally released by {actor}; pending: {listed}.")
    click.echo("Each result closes it (in spec) or opens a critical deviation (out of spec).")


@qc.command("compare")
@click.option(
    "--by",
    type=click.Choice(["protocol", "source", "preconditioning", "route"], case_sensitive=False),
    required=True,
)
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
@with_app
def qc_compare(
    app: Services,
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
    from cmprep.render.charts import compare_svg

    view = app.qc.compare(by, list(analytes) or None, released_only=not include_all)
    table([r.to_json() for r in view.rows], ["analyte", by, "n", "mean", "sd", "unit"], fmt)
    if output:
        first = analytes[0] if analytes else next(iter(view.table))
        if first not in view.table:
            raise click.ClickException(f"no results for {first}")
        svg = compare_svg(view.table[first], unit=view.units[first], title=f"{first} by {by}")
        write_chart(svg, output)
