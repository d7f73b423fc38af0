"""`cmprep db ...`: database maintenance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import with_app

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("rebuild")
@with_app
def db_rebuild(app: Services) -> None:
    """Rebuild the query tables (batches, deviations) from the event log.

    \b
    Example:
      cmprep db rebuild --db cmprep.db
    """
    n = app.audit.rebuild_projections()
    click.echo(f"Rebuilt the query tables from the event log of {n} batch(es).")
