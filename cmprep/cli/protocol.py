"""`cmprep protocol ...` and `cmprep checklist`: master protocols and their SOP checklists."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    DOC_FORMAT,
    OUTPUT,
    TEXT_FORMAT,
    echo_json,
    need_output,
    with_app,
    write_or_print,
)

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def protocol() -> None:
    """Master protocols: list, show and check them."""


@protocol.command("list")
@with_app
def protocol_list(app: Services) -> None:
    """List the bundled protocols.

    \b
    Example:
      cmprep protocol list
    """
    for p in app.protocols.list():
        click.echo(f"{p.id:32} v{p.version:6} {p.title}")


@protocol.command("show")
@click.argument("protocol_ref", metavar="PROTOCOL")
@TEXT_FORMAT
@with_app
def protocol_show(app: Services, protocol_ref: str, fmt: str) -> None:
    """Show a protocol's steps, parameters and specs (JSON: the full validated model).

    \b
    Example:
      cmprep protocol show cm-hypoxia-uc --format json
    """
    from cmprep.cli.screens import print_protocol

    p = app.protocols.get(protocol_ref)
    if fmt == "json":
        echo_json({**p.model_dump(mode="json"), "content_hash": p.content_hash()})
    else:
        print_protocol(p)


@protocol.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path())
def protocol_check(files: tuple[str, ...]) -> None:
    """Validate protocol files and list every problem with file, line and field.

    \b
    Example:
      cmprep protocol check protocols/*.yaml
    """
    from cmprep.protocol.loader import ProtocolError, load_file

    bad = 0
    for path in files:
        try:
            p = load_file(path)
        except ProtocolError as err:
            bad += 1
            for problem in err.problems:  # each with its file, line and field
                click.echo(problem, err=True)
        else:
            click.echo(f"{path}: ok ({p.id} v{p.version}, {len(p.steps)} steps)")
    if bad:
        raise click.ClickException(f"{bad} of {len(files)} file(s) have problems")


@click.command()
@click.argument("protocol_ref", metavar="PROTOCOL")
@DOC_FORMAT
@OUTPUT
@with_app
def checklist(app: Services, protocol_ref: str, fmt: str, output: str | None) -> None:
    """Print the SOP checklist of a protocol (HTML for print, Markdown or PDF).

    \b
    Example:
      cmprep checklist cm-standard-serum-free --format pdf -o checklist.pdf
    """
    need_output(fmt, output)
    write_or_print(app.documents.checklist(protocol_ref, fmt), output, "Checklist")
