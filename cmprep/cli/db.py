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


def _say_checked(done: object, verb: str) -> None:
    """What a copy, backup or restore did, then its verification; exit 1 on any break."""
    from cmprep.service.transfer import Checked

    assert isinstance(done, Checked)
    c = done.copied
    click.echo(
        f"{verb} {c.events} event(s) of {c.streams} stream(s) to {done.where}; "
        f"ledger head {c.ledger_head[:16]}"
    )
    if done.problems:
        for problem in done.problems:
            click.echo(f"  {problem}", err=True)
        raise click.ClickException(f"{done.where} does not verify: do not use it")
    click.echo(f"Verified: every chain, signature and the ledger of {done.where} are intact.")


@db.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
def db_copy(source: str, target: str) -> None:
    """Copy a whole database into a new, empty one (SQLite and PostgreSQL, either way),
    then verify the copy.

    \b
    Example:
      cmprep db copy cmprep.db postgresql://cmprep@dbhost/cmprep
    """
    from cmprep.cli.common import error_message
    from cmprep.errors import CmprepError
    from cmprep.service import transfer

    try:
        done = transfer.copy(source, target)
    except CmprepError as err:
        raise click.ClickException(error_message(err)) from None
    _say_checked(done, "Copied")


@db.command("backup")
@click.argument("dest", metavar="DEST")
@with_app
def db_backup(app: Services, dest: str) -> None:
    """Back up the database to a new SQLite file DEST, then verify the backup.

    \b
    Example:
      cmprep db backup /mnt/qa-share/cmprep-2026-11-29.db
    """
    from cmprep.service import transfer

    _say_checked(transfer.backup(app.store, dest), "Backed up")


@db.command("restore")
@click.argument("source", metavar="SRC")
@click.option("--db", "target", envvar="CMPREP_DB", default=None, metavar="PATH|URL")
def db_restore(source: str, target: str | None) -> None:
    """Restore a backup into a new or empty database (never over a live one), then verify.

    \b
    Example:
      cmprep db restore /mnt/qa-share/cmprep-2026-11-29.db --db restored.db
    """
    from cmprep.cli.common import error_message
    from cmprep.errors import CmprepError
    from cmprep.service import transfer
    from cmprep.store import DEFAULT_DB

    try:
        done = transfer.restore(source, target or DEFAULT_DB)
    except CmprepError as err:
        raise click.ClickException(error_message(err)) from None
    _say_checked(done, "Restored")
