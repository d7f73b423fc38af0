"""`cmprep audit ...`: trails, reports across batches, and proof that nothing was changed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    DOC_FORMAT,
    OUTPUT,
    TABLE_FORMAT,
    need_output,
    table,
    with_app,
    write_or_print,
)

if TYPE_CHECKING:
    from cmprep.service import Services

TRAIL_COLUMNS = ["seq", "at", "performed_at", "who", "what", "old", "new", "why", "signature"]


@click.group()
def audit() -> None:
    """Audit: trails, reports across batches, and proof that nothing was changed."""


@audit.command("trail")
@click.argument("batch_id", metavar="BATCH")
@TABLE_FORMAT
@with_app
def audit_trail(app: Services, batch_id: str, fmt: str) -> None:
    """Every event of a batch: who, when, what, old and new values, why.

    Also `@users` (accounts) and `@security` (refused attempts).

    \b
    Example:
      cmprep audit trail CM-20261129-001 --format csv > trail.csv
      cmprep audit trail @security
    """
    table(app.audit.trail(batch_id), TRAIL_COLUMNS, fmt)


@audit.command("verify")
@click.argument("batch_id", required=False, metavar="[BATCH]")
@with_app
def audit_verify(app: Services, batch_id: str | None) -> None:
    """Recompute every hash chain, head, signature and the global ledger.
    Names the first broken event; exit status 1 on any break.

    \b
    Example:
      cmprep audit verify
      cmprep audit verify CM-20261129-001
    """
    checked, breaks = app.audit.verify(batch_id)
    if breaks:
        for b in breaks:
            click.secho(f"BROKEN {b}", fg="red", err=True)
        click.echo(f"{len(breaks)} break(s) in {checked} event(s) checked.")
        sys.exit(1)
    click.echo(
        f"OK: {checked} event(s) checked; every chain, head, signature and the ledger are intact."
    )
    head = app.audit.ledger_head()
    click.echo(f"Ledger head: {head} (keep it outside the database; compare it next time)")


@audit.command("report")
@click.option(
    "--since", default=None, metavar="DATE", help="Only deviations opened since (YYYY-MM-DD)."
)
@DOC_FORMAT
@OUTPUT
@with_app
def audit_report(app: Services, since: str | None, fmt: str, output: str | None) -> None:
    """Deviations across batches by step, protocol, severity and person (Pareto charts),
    open deviations by age, batches released and rejected.

    \b
    Example:
      cmprep audit report --since 2026-01-01 --format pdf -o audit.pdf
    """
    need_output(fmt, output)
    write_or_print(app.documents.audit_report(since, fmt), output, "Audit report")
