"""`cmprep export ...`: a batch record that leaves cmprep, and the check of one that comes
back.

`cmprep export BATCH --format eln -o BATCH.eln` writes the ELN consortium's archive,
signed by the person exporting (their live session, or their password); `--format csv`
or `xlsx` writes the long table of one batch, or of every batch with `--all`; `cmprep
export verify FILE.eln` checks an archive without any database.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cmprep.cli.common import (
    ACTS,
    OUTPUT,
    PASSWORD_STDIN,
    STDIN_FLAG,
    day,
    error_message,
    with_app,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from cmprep.service import Services

F = TypeVar("F", bound="Callable[..., Any]")


class _ExportGroup(click.Group):
    """`cmprep export BATCH ...` runs `export batch BATCH ...`: the batch is the usual
    thing to export, so it needs no word of its own; `verify` is the other command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["batch", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ExportGroup)
def export() -> None:
    """Export batch records: an .eln archive (signed), or a long CSV/XLSX table; verify
    an archive without a database.

    \b
    Example:
      cmprep export CM-20261129-001 --format eln -o CM-20261129-001.eln
      cmprep export CM-20261129-001 --format csv -o CM-20261129-001.csv
      cmprep export --all --since 2026-11-01 --format xlsx -o values.xlsx
      cmprep export verify CM-20261129-001.eln
    """


def _signing(func: F) -> F:
    """--as NAME, --password-stdin and --unsigned: an .eln is signed by the person
    exporting, proven like anyone who writes (session or password); a table is not."""

    @functools.wraps(func)
    def wrapper(*args: Any, actor: str | None, password_stdin: bool, **kwargs: Any) -> Any:
        _usage(kwargs["batch_id"], kwargs["all_batches"], kwargs["fmt"], kwargs["output"])
        meta = click.get_current_context().meta
        meta[STDIN_FLAG] = password_stdin
        meta[ACTS] = kwargs["fmt"] == "eln" and not kwargs["unsigned"]  # prove who signs
        return func(*args, actor=actor if meta[ACTS] else None, **kwargs)

    wrapper = PASSWORD_STDIN(wrapper)
    wrapper = click.option(
        "--as",
        "actor",
        envvar="CMPREP_USER",
        default=None,
        metavar="NAME",
        help="Who signs the archive: your own name when logged in, or anyone's with their "
        "password (--password-stdin or the prompt).",
    )(wrapper)
    return wrapper  # type: ignore[return-value]


@export.command("batch")
@click.argument("batch_id", required=False, metavar="[BATCH]")
@click.option("--all", "all_batches", is_flag=True, help="Every batch (csv and xlsx only).")
@click.option("--since", default=None, metavar="DATE", help="Only what was entered since DATE.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["eln", "csv", "xlsx"]),
    default="eln",
    show_default=True,
    help="eln: the archive for an ELN; csv or xlsx: one long table of values.",
)
@OUTPUT
@click.option("--unsigned", is_flag=True, help="An .eln without the exporter's signature.")
@_signing
@with_app
def export_batch(
    app: Services,
    batch_id: str | None,
    all_batches: bool,
    since: str | None,
    fmt: str,
    output: str | None,
    unsigned: bool,
    actor: str | None,
) -> None:
    """Export BATCH (or --all) as an .eln archive or a long CSV/XLSX table.

    \b
    Example:
      cmprep export CM-20261129-001 --format eln -o CM-20261129-001.eln
      cmprep export CM-20261129-001 --format csv
      cmprep export --all --since 2026-11-01 --format xlsx -o values.xlsx
    """
    if fmt == "eln":
        _eln(app, batch_id or "", output or "", actor)
        return
    count = app.exports.write_table(fmt, output, batch_id, day(app, since, "--since"))
    if output:
        click.echo(f"{count} row(s) written to {output}")


def _usage(batch_id: str | None, all_batches: bool, fmt: str, output: str | None) -> None:
    """Wrong options are said before anyone is asked to prove who they are."""
    if fmt == "eln" and all_batches:
        raise click.UsageError("an .eln archive holds one batch: give BATCH, not --all")
    if all_batches == bool(batch_id):
        raise click.UsageError("give one BATCH, or --all (not both)")
    if fmt != "csv" and not output:
        raise click.UsageError(f"{fmt} output needs -o FILE (e.g. -o {batch_id or 'all'}.{fmt})")


def _eln(app: Services, batch_id: str, output: str, actor: str | None) -> None:
    from cmprep.render.output import write_output

    made = app.exports.eln(batch_id, signer=actor, folder=Path(output).stem)
    path = write_output(made.data, output)
    signed = (
        f"signed by {made.signed_by} (key {made.fingerprint})" if made.signed_by else "unsigned"
    )
    click.echo(
        f"{len(made.files)} files in {path} ({signed}); check it: cmprep export verify {path}"
    )


@export.command("verify")
@click.argument("path", metavar="FILE.eln", type=click.Path(dir_okay=False))
def export_verify(path: str) -> None:
    """Check an .eln archive without any database: the signature of its manifest, each
    file's size and SHA-256 against it, and the hash chain of its events. Names every file
    that fails; exit status 1 on any.

    \b
    Example:
      cmprep export verify CM-20261129-001.eln
    """
    from cmprep.errors import CmprepError
    from cmprep.service.export import verify_file

    try:
        check = verify_file(path)
    except CmprepError as err:
        raise click.ClickException(error_message(err)) from None
    for name, problem in check.problems:
        click.secho(f"FAILED {name}: {problem}", fg="red", err=True)
    if check.problems:
        click.echo(f"{len(check.problems)} problem(s) in {path}; do not trust this archive.")
        sys.exit(1)
    click.echo(
        f"OK: {check.files} files match the signed manifest, the chain of {check.events} "
        f"events is whole. Signature: {check.signed_by}"
    )
    click.echo("Compare the key above with the one your site published for the signer.")
