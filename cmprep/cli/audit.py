"""`cmprep audit ...`: trails, reports across batches, proof that nothing was changed, and
signed checkpoints of the ledger kept outside the database."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    DOC_FORMAT,
    OUTPUT,
    PASSWORD_STDIN,
    TABLE_FORMAT,
    day,
    need_output,
    read_password,
    table,
    when,
    with_actor,
    with_app,
    write_or_print,
)

if TYPE_CHECKING:
    from cmprep.domain.audit import Verification
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
    rows = app.audit.trail(batch_id)
    if fmt == "table":  # read by a person: local times; CSV and JSON keep UTC
        shown_at = when(app)
        rows = [
            {**r, "at": shown_at(r["at"]), "performed_at": shown_at(r["performed_at"])}
            for r in rows
        ]
    table(rows, TRAIL_COLUMNS, fmt)


@audit.command("verify")
@click.argument("batch_id", required=False, metavar="[BATCH]")
@click.option(
    "--anchors",
    "anchors_dir",
    default=None,
    metavar="DIR",
    help="Also check the ledger against the signed checkpoints in DIR "
    "(default $CMPREP_ANCHORS, if set).",
)
@click.option(
    "--all-seals",
    is_flag=True,
    help="Trust no checkpoint: check every seal, and fold every batch to compare its query "
    "tables (the newest checkpoint that holds vouches for those it checked otherwise).",
)
@with_app
def audit_verify(
    app: Services, batch_id: str | None, anchors_dir: str | None, all_seals: bool
) -> None:
    """Recompute every hash chain, head, signature and the global ledger; check that the
    ledger still extends every signed checkpoint, that the query tables (lists, reports)
    match the log, and that the database still refuses edits of the log.
    Names every problem; exit status 1 on any.

    Signature seals made before the newest checkpoint that holds were checked when it
    was signed, and the ledger proves those events unchanged since: they are not checked
    again unless --all-seals. Nor is the log of a batch folded again when its head and its
    query-table rows are those that checkpoint found equal (unless --all-seals).

    \b
    Example:
      cmprep audit verify
      cmprep audit verify CM-20261129-001
      cmprep audit verify --anchors /mnt/qa-share/cmprep-anchors
      cmprep audit verify --anchors /mnt/qa-share/cmprep-anchors --all-seals
    """
    result = app.audit.verify(batch_id, anchors_dir, all_seals=all_seals)
    for problem in result.problems:
        click.secho(f"{problem.label} {problem}", fg="red", err=True)
    if result.problems:
        click.echo(f"{len(result.problems)} problem(s) in {result.checked} event(s) checked.")
        for label, advice in VERIFY_ADVICE.items():
            if any(p.label == label for p in result.problems):
                click.echo(advice)
        sys.exit(1)
    _say_verified(result)
    mark = app.audit.ledger_mark()
    click.echo(
        f"Ledger head: {mark.hash} at position {mark.pos} "
        "(sign a checkpoint of it with `cmprep audit anchor`)"
    )


def _say_verified(result: Verification) -> None:
    """What a clean verification checked, and what a checkpoint vouched for."""
    click.echo(
        f"OK: {result.checked} event(s) checked; every chain, head, signature and the ledger "
        "are intact, the query tables match the log, and the log is protected."
    )
    if result.anchors is not None:
        click.echo(f"Checkpoints: the ledger extends all {result.checkpoints} in {result.anchors}.")
    if result.vouched_by is not None:
        click.echo(
            f"Seals: the {result.vouched} signed event(s) up to checkpoint {result.vouched_by} "
            "were checked when it was signed and are unchanged since (--all-seals checks "
            "them again)."
        )
    if result.tables_vouched:
        click.echo(
            f"Tables: the rows of {result.tables_vouched} batch(es) are those checkpoint "
            f"{result.vouched_by} found equal to their logs, and their logs are unchanged "
            f"since; {result.tables_folded} batch(es) were folded and compared (--all-seals "
            "compares them all)."
        )


VERIFY_ADVICE = {  # a problem's label -> what to do about it
    "DIFFERS": "The query tables (what lists and reports show) differ from the log; find out "
    "who changed them, then recompute them with `cmprep db rebuild`.",
    "UNPROTECTED": "The database no longer refuses edits of the log; find out who removed "
    "the protection and restore the database from a verified backup.",
}


@audit.command("anchor")
@click.option(
    "--to",
    "to",
    default=None,
    metavar="DIR",
    help="The checkpoint folder, on another disk or share than the database "
    "(default $CMPREP_ANCHORS).",
)
@PASSWORD_STDIN
@with_actor
@with_app
def audit_anchor(app: Services, to: str | None, password_stdin: bool, actor: str) -> None:
    """Sign the ledger's head into a checkpoint file outside the database (reviewer, QA
    or admin). `audit verify --anchors DIR` then fails if the log was cut short or
    rewritten since. Every checkpoint is a new file; none is ever replaced. Beside it, a
    signed list of the batches whose query tables matched their logs: `audit verify`
    need not fold those again while they stay unchanged.

    \b
    Example:
      cmprep audit anchor --to /mnt/qa-share/cmprep-anchors --as rita
    """
    path, cp = app.audit.anchor(actor, read_password(password_stdin), to)
    click.echo(
        f"Ledger anchored at position {cp.position} ({cp.ledger_hash[:16]}…), "
        f"signed by {cp.anchored_by}: {path}"
    )
    if cp.tables is not None:
        click.echo(
            f"Query tables of {cp.tables['batches']} batch(es) found equal to their logs, "
            f"listed and signed beside it: {path.with_name(cp.tables_file_name)}"
        )


@audit.command("report")
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Only what happened on or after (YYYY-MM-DD: from its midnight in the site's time "
    "zone; or an ISO time with its zone).",
)
@click.option(
    "--until",
    default=None,
    metavar="DATE",
    help="Only what happened before (YYYY-MM-DD: that day is not included).",
)
@DOC_FORMAT
@OUTPUT
@with_app
def audit_report(
    app: Services, since: str | None, until: str | None, fmt: str | None, output: str | None
) -> None:
    """Deviations across batches by step, protocol, severity and person (Pareto charts),
    open deviations by age, batches released and rejected, in a period.

    \b
    Example:
      cmprep audit report --since 2026-01-01 -o audit.pdf
      cmprep audit report --since 2026-07-01 --until 2026-10-01 -o q3.pdf
    """
    fmt = need_output(fmt, output)
    bounds = {"since": day(app, since, "--since"), "until": day(app, until, "--until")}
    if fmt == "pdf":  # laid out whole
        report = app.documents.audit_report(bounds["since"], fmt, until=bounds["until"])
        write_or_print(report, output, "Audit report")
    else:  # written as its rows are read
        parts = app.documents.audit_report_parts(bounds["since"], fmt, until=bounds["until"])
        write_or_print(parts, output, "Audit report")
