"""`cmprep protocol ...` and `cmprep checklist`: master protocols under change control, and
their SOP checklists.

A protocol file is checked, then imported into the database as a draft; QA approves it
with a signature; only an approved version starts a batch. `show`, `check` and `checklist`
read a file (before import) or a stored version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    DOC_FORMAT,
    OUTPUT,
    PASSWORD_STDIN,
    TABLE_FORMAT,
    Shell,
    echo_json,
    error_message,
    need_output,
    read_password,
    table,
    with_actor,
    with_app,
    write_or_print,
)

if TYPE_CHECKING:
    from cmprep.domain.protocols import StoredProtocol
    from cmprep.service import Services
    from cmprep.service.protocols import ProtocolDoc

LIST_COLUMNS = [
    "protocol",
    "version",
    "status",
    "imported_by",
    "approved_by",
    "retired_by",
    "hash",
    "title",
]
VERSION = click.option(
    "--version", "version", required=True, metavar="V", help="The stored version, e.g. 1.0."
)


@click.group()
def protocol() -> None:
    """Master protocols: import, approve, retire, list, show and check them."""


@protocol.command("list")
@TABLE_FORMAT
@with_app
def protocol_list(app: Services, fmt: str) -> None:
    """List the protocol versions stored in this database, with their status
    (draft, approved, retired), who imported and who approved each.

    \b
    Example:
      cmprep protocol list
    """
    rows = [s.row() for s in app.protocols.versions()]
    if not rows and fmt == "table":
        from cmprep.cli.hints import HINTS

        bundled = ", ".join(app.protocols.bundled_ids()) or "none"
        click.echo(f"No protocols in this database yet. Bundled protocol files: {bundled}.")
        click.echo(HINTS["import_protocol"])
        return
    if fmt == "table":
        rows = [{**r, "hash": r["hash"][:12]} for r in rows]
    table(rows, LIST_COLUMNS, fmt)


@protocol.command("show")
@click.argument("protocol_ref", metavar="PROTOCOL")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "svg"]),
    default="text",
    show_default=True,
    help="svg: the protocol as a flow diagram.",
)
@OUTPUT
@with_app
def protocol_show(app: Services, protocol_ref: str, fmt: str, output: str | None) -> None:
    """Show a protocol's steps, parameters and specs (JSON: the full validated model; SVG:
    a flow diagram of its steps, optional steps, branches and time windows).

    PROTOCOL is a stored ID (its newest approved version), ID@VERSION, or a YAML file
    (or a bundled protocol's id, before it is imported).

    \b
    Example:
      cmprep protocol show cm-hypoxia-uc --format json
      cmprep protocol show cm-hypoxia-uc@1.0
      cmprep protocol show cm-hypoxia-uc --format svg -o flow.svg
    """
    from cmprep.cli.screens import print_protocol

    doc = app.protocols.doc(protocol_ref)
    if fmt == "svg":
        from cmprep.render.flow import flow_svg

        write_or_print(flow_svg(doc.protocol), output, "Flow diagram")
        return
    if fmt == "json":
        stored = {k: v for k, v in doc.stored.row().items() if k != "hash"} if doc.stored else None
        model = doc.protocol.to_content()
        echo_json({**model, "content_hash": doc.content_hash, "stored": stored})
        return
    print_protocol(doc.protocol, doc.content_hash)
    click.echo("\n" + standing(doc))


def standing(doc: ProtocolDoc) -> str:
    """Where a protocol stands in this database, in one sentence."""
    s = doc.stored
    if s is None:
        return f"From the file {doc.source}, not this database: no batch can start from it."
    text = f"Stored as {s.ref}: imported by {s.imported_by} at {s.imported_at}"
    if s.approved_by:
        text += f"; approved by {s.approved_by} at {s.approved_at}"
    if s.retired_by:
        text += f"; retired by {s.retired_by} at {s.retired_at} ({s.retired_reason})"
    return text + ("." if s.status != "draft" else "; a draft: no batch can start from it.")


@protocol.command("check")
@click.argument("refs", nargs=-1, required=True, metavar="FILE_OR_ID...")
@click.option(
    "--db", envvar="CMPREP_DB", default=None, metavar="PATH", help="For a stored ID only."
)
def protocol_check(refs: tuple[str, ...], db: str | None) -> None:
    """Validate protocol files (before import), or stored versions again, and list every
    problem with file, line and field.

    \b
    Example:
      cmprep protocol check protocols/*.yaml
      cmprep protocol check cm-standard-serum-free@1.0
    """
    opened: list[Services] = []
    bad = sum(0 if _check_one(ref, db, opened) else 1 for ref in refs)
    if bad:
        raise click.ClickException(f"{bad} of {len(refs)} protocol(s) have problems")


def _check_one(ref: str, db: str | None, opened: list[Services]) -> bool:
    """Check one file or stored version; print ok or every problem. A file needs no
    database, so one is opened only for the first stored id."""
    from cmprep.errors import CmprepError
    from cmprep.protocol import library
    from cmprep.protocol.loader import ProtocolError, load_file

    try:
        if library.is_file(ref):
            p = load_file(ref)
            click.echo(f"{ref}: ok ({p.id} v{p.version}, {len(p.steps)} steps)")
            return True
        if not opened:
            opened.append(click.get_current_context().ensure_object(Shell).services(db))
        doc = opened[0].protocols.check(ref)
    except ProtocolError as err:
        for problem in err.problems:  # each with its file, line and field
            click.echo(problem, err=True)
        return False
    except CmprepError as err:
        click.echo(f"{ref}: {error_message(err)}", err=True)
        return False
    status = doc.stored.status if doc.stored else "file"
    steps = len(doc.protocol.steps)
    click.echo(f"{ref}: ok ({doc.source}, {status}, {steps} steps, hash {doc.content_hash[:12]})")
    return True


@protocol.command("import")
@click.argument("file", metavar="FILE")
@with_actor
@with_app
def protocol_import(app: Services, file: str, actor: str) -> None:
    """Import a protocol file into this database as a draft (reviewer or QA). The file's
    own status is ignored: QA approves the stored version before any batch uses it.

    FILE is a YAML file, or the id of a bundled protocol.

    \b
    Example:
      cmprep protocol import my-protocol.yaml --as rita
      cmprep protocol import cm-standard-serum-free --as rita
    """
    s = app.protocols.import_file(file, actor)
    click.echo(
        f"Imported {s.ref} ({s.title}) from {s.source} as a draft, by {s.imported_by}; "
        f"hash {s.content_hash[:12]}."
    )
    click.echo(f"Next: QA approves it with `cmprep protocol approve {s.id} --version {s.version}`.")


@protocol.command("approve")
@click.argument("protocol_id", metavar="ID")
@VERSION
@PASSWORD_STDIN
@with_actor
@with_app
def protocol_approve(
    app: Services, protocol_id: str, version: str, password_stdin: bool, actor: str
) -> None:
    """Approve a stored draft (QA, not the person who imported it), with a signature over
    its content hash. From then on a batch can start from it.

    \b
    Example:
      cmprep protocol approve cm-standard-serum-free --version 1.0 --as quinn
    """
    app.protocols.stored(protocol_id, version)  # an unknown version is said before the prompt
    s = app.protocols.approve(protocol_id, version, actor, read_password(password_stdin))
    click.echo(told(s, f"approved by {s.approved_by} (hash {s.content_hash[:12]} signed)"))


@protocol.command("retire")
@click.argument("protocol_id", metavar="ID")
@VERSION
@click.option("--reason", required=True, help="Why no new batch may start from it.")
@with_actor
@with_app
def protocol_retire(app: Services, protocol_id: str, version: str, reason: str, actor: str) -> None:
    """Retire a stored version (QA): no new batch can start from it; batches already
    started from it keep their own copy and are untouched.

    \b
    Example:
      cmprep protocol retire cm-standard-serum-free --version 1.0 --reason "replaced by 1.1"
    """
    s = app.protocols.retire(protocol_id, version, actor, reason)
    click.echo(told(s, f"retired by {s.retired_by}; no new batch can start from it"))


def told(s: StoredProtocol, what: str) -> str:
    return f"Protocol {s.ref} ({s.title}) {what}."


@click.command()
@click.argument("protocol_ref", metavar="PROTOCOL")
@DOC_FORMAT
@OUTPUT
@with_app
def checklist(app: Services, protocol_ref: str, fmt: str | None, output: str | None) -> None:
    """Print the SOP checklist of a protocol (HTML for print, Markdown or PDF): a stored
    ID, ID@VERSION or a YAML file. A draft's checklist says it must not be used.

    \b
    Example:
      cmprep checklist cm-standard-serum-free --format pdf -o checklist.pdf
    """
    fmt = need_output(fmt, output)
    write_or_print(app.protocols.checklist(protocol_ref, fmt), output, "Checklist")
