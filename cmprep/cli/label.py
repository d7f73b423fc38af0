"""`cmprep label LOT`: print a lot's labels (PDF), each print and reprint recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import with_actor, with_app, write_or_print

if TYPE_CHECKING:
    from cmprep.service import Services


@click.command("label")
@click.argument("lot")
@click.option("--copies", type=int, default=1, show_default=True, help="How many labels.")
@click.option("--reason", default=None, help="Why labels are printed again (needed for a reprint).")
@click.option(
    "--format", "fmt", type=click.Choice(["pdf", "html"]), default="pdf", show_default=True
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Write to FILE."
)
@with_actor
@with_app
def label(
    app: Services, lot: str, copies: int, reason: str | None, fmt: str, output: str, actor: str
) -> None:
    """Print labels of a lot (50 x 25 mm): lot id, product, status, expiry, QR and Code 128.

    Every print is recorded; printing a lot's labels again needs --reason.

    \b
    Example:
      cmprep label CONC-001-03 -o labels.pdf --as alice
      cmprep label CONC-001-03 --copies 2 --reason "label smeared" -o labels.pdf --as alice
    """
    from cmprep.render.labels import render_labels

    sheet, content = app.lineage.print_labels(
        lot, copies, actor, reason, render=lambda s: render_labels(s, fmt)
    )
    what = "Reprinted labels" if sheet.reprint else "Labels"
    write_or_print(content, output, f"{what} of {sheet.lot} ({sheet.copies}, {sheet.status})")
