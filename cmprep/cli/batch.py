"""`cmprep batch ...`: start batches, record their steps in order, verify, review,
release or reject them, and print their record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cmprep.cli.common import (
    DOC_FORMAT,
    KEY,
    OUTPUT,
    PASSWORD_STDIN,
    TABLE_FORMAT,
    TEXT_FORMAT,
    echo_json,
    entries,
    need_output,
    read_password,
    stream_table,
    when,
    with_actor,
    with_app,
    write_or_print,
)
from cmprep.cli.screens import print_review, print_status
from cmprep.cli.tell import tell, tell_next

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def batch() -> None:
    """Start batches and record their steps in order."""


@batch.command("start")
@click.argument("protocol_ref", metavar="PROTOCOL")
@click.option("--id", "batch_id", default=None, help="Batch id (default CM-YYYYMMDD-NNN).")
@KEY
@with_actor
@with_app
def batch_start(
    app: Services, protocol_ref: str, batch_id: str | None, key: str | None, actor: str
) -> None:
    """Start a batch from a protocol approved in this database (ID, or ID@VERSION).

    \b
    Example:
      cmprep batch start cm-standard-serum-free --id LOT-042 --as alice
    """
    out = app.batches.start(protocol_ref, actor, batch_id, key=key)
    b = out.batch
    if out.duplicate:
        click.echo(f"Already saved under key {key}: batch {b.id}; nothing new was written.")
        return
    click.echo(
        f"Batch {b.id} started from {b.protocol.id} v{b.protocol.version} "
        f"(hash {b.protocol_hash[:12]}) by {actor}."
    )
    tell_next(b)


@batch.command("status")
@click.argument("batch_id", metavar="BATCH")
@TEXT_FORMAT
@with_app
def batch_status(app: Services, batch_id: str, fmt: str) -> None:
    """Where a batch stands: steps done with their values, and what the step due needs.

    \b
    Example:
      cmprep batch status CM-20261129-001
    """
    from cmprep.service.status import status

    view = status(app.batch(batch_id))
    if fmt == "json":
        echo_json(view.to_json())
    else:
        print_status(view, when(app))


LIST_COLUMNS = [
    "batch_id",
    "protocol_id",
    "protocol_version",
    "state",
    "started_by",
    "started_at",
    "open_deviations",
]


@batch.command("list")
@click.option(
    "--state",
    default=None,
    help="Only batches in this state: awaiting_review, on_hold, released, rejected, or the "
    "stage a batch in progress is at (e.g. spin).",
)
@click.option("--protocol", "protocol_id", default=None, help="Only batches of this protocol.")
@TABLE_FORMAT
@with_app
def batch_list(app: Services, state: str | None, protocol_id: str | None, fmt: str) -> None:
    """List batches.

    \b
    Example:
      cmprep batch list --state awaiting_review --format csv
    """
    chosen = app.queries.batch_filter(state, protocol_id)
    stream_table(lambda columns: app.queries.batches(chosen, columns), LIST_COLUMNS, fmt)


@batch.command("record")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@click.argument("values", nargs=-1, metavar="NAME=VALUE...")
@click.option("--note", default=None, help="A note for the record.")
@click.option(
    "--at", default=None, metavar="TIME", help="When it was done, if earlier (ISO 8601 with zone)."
)
@click.option(
    "--lot", "lots", multiple=True, metavar="LOT", help="A material lot used (repeatable)."
)
@click.option("--equipment", multiple=True, metavar="ID", help="An instrument used (repeatable).")
@click.option(
    "--sign", is_flag=True, help="Also sign the step as performed (asks for your password)."
)
@PASSWORD_STDIN
@KEY
@with_actor
@with_app
def batch_record(
    app: Services,
    batch_id: str,
    step: str,
    values: tuple[str, ...],
    sign: bool,
    password_stdin: bool,
    **details: Any,
) -> None:
    """Record a step's values. Out-of-spec values open deviations; impossible ones are refused.

    \b
    Example:
      cmprep batch record CM-20261129-001 spin rcf="400 x g" duration=10 temperature=4 --as alice
      cmprep batch record CM-20261129-001 collection volume=48 --at 2026-11-29T08:30Z --as alice
      cmprep batch record CM-20261129-001 spin rcf="1500 rpm" duration=10 temperature=4 --equipment CF-02
    """  # noqa: E501
    given, actor = entries(values), details.pop("actor")
    password = read_password(password_stdin) if sign else None
    lots, equipment = list(details.pop("lots")), list(details.pop("equipment"))
    out = app.batches.record(
        batch_id, step, given, actor, password=password, lots=lots, equipment=equipment, **details
    )
    if out.duplicate:
        click.echo(f"Already saved under key {details['key']}; nothing new was written.")
        return
    signed = " and signed as performed." if sign else "."
    tell(out, f"Recorded {step} for batch {batch_id}{signed}")


@batch.command("skip")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@click.option("--reason", required=True, help="Why the optional step is skipped.")
@with_actor
@with_app
def batch_skip(app: Services, batch_id: str, step: str, reason: str, actor: str) -> None:
    """Skip an optional step, with a reason.

    \b
    Example:
      cmprep batch skip CM-20261129-001 hypoxia --reason "normoxic arm of the study" --as alice
    """
    out = app.batches.skip(batch_id, step, actor, reason)
    tell(out, f"Skipped {step} for batch {batch_id}.")


@batch.command("correct")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@click.argument("values", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option("--reason", required=True, help="Why the value is corrected.")
@with_actor
@with_app
def batch_correct(
    app: Services, batch_id: str, step: str, values: tuple[str, ...], reason: str, actor: str
) -> None:
    """Correct a recorded value. The old value stays in the record, struck through.

    \b
    Example:
      cmprep batch correct CM-20261129-001 spin rcf=450 --reason "transcription error" --as alice
    """
    out = app.batches.correct(batch_id, step, entries(values), actor, reason)
    tell(out, f"Corrected {step} for batch {batch_id}.")


@batch.command("hold")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True)
@with_actor
@with_app
def batch_hold(app: Services, batch_id: str, reason: str, actor: str) -> None:
    """Put a batch on hold; no step can be recorded until it is resumed.

    \b
    Example:
      cmprep batch hold CM-20261129-001 --reason "incubator alarm" --as alice
    """
    app.batches.hold(batch_id, actor, reason)
    click.echo(f"Batch {batch_id} is on hold.")


@batch.command("resume")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True)
@with_actor
@with_app
def batch_resume(app: Services, batch_id: str, reason: str, actor: str) -> None:
    """Resume a batch on hold.

    \b
    Example:
      cmprep batch resume CM-20261129-001 --reason "alarm cleared, temperature log OK" --as alice
    """
    out = app.batches.resume(batch_id, actor, reason)
    click.echo(f"Batch {batch_id} resumed.")
    tell_next(out.batch)


@batch.command("run")
@click.argument("batch_id", metavar="BATCH")
@with_actor
@with_app
def batch_run(app: Services, batch_id: str, actor: str) -> None:
    """Guided mode: asks for each value of the step due, checks it as you type.

    Each step is saved when you confirm it; Ctrl-C loses nothing already confirmed.

    \b
    Example:
      cmprep batch run CM-20261129-001 --as alice
    """
    from cmprep.cli.guided import run

    run(app, batch_id, actor)


@batch.command("verify")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@PASSWORD_STDIN
@with_actor
@with_app
def batch_verify(app: Services, batch_id: str, step: str, password_stdin: bool, actor: str) -> None:
    """Second-person verification of a step, signed with your password.

    \b
    Example:
      cmprep batch verify CM-20261129-001 filtration --as bob
    """
    app.batches.batch(batch_id)  # name a missing batch before asking for a password
    out = app.quality.verify_step(batch_id, step, actor, read_password(password_stdin))
    click.echo(f"{step} of batch {batch_id} verified by {actor}.")
    missing = [e.step.id for e in out.batch.missing_verifications()]
    if missing:
        click.echo("Still to verify: " + ", ".join(missing))


@batch.command("review")
@click.argument("batch_id", metavar="BATCH")
@TEXT_FORMAT
@click.option(
    "--sign",
    "comment",
    default=None,
    metavar="COMMENT",
    help="Sign the review (meaning 'reviewed') with this comment.",
)
@PASSWORD_STDIN
@click.option("--as", "actor", envvar="CMPREP_USER", default=None, metavar="NAME")
@with_app
def batch_review(
    app: Services,
    batch_id: str,
    fmt: str,
    comment: str | None,
    password_stdin: bool,
    actor: str | None,
) -> None:
    """Review by exception: out-of-spec values, deviations, corrections, skips, late
    entries, missing verifications and signatures, and what blocks release.

    \b
    Example:
      cmprep batch review CM-20261129-001
      cmprep batch review CM-20261129-001 --sign "record reviewed, no further remarks" --as rita
    """
    report = app.quality.review_report(batch_id)
    if comment is not None:  # signing: prove who signs, as every write does
        from cmprep.cli.identity import STDIN_FLAG, identify

        click.get_current_context().meta[STDIN_FLAG] = password_stdin
        actor = identify(app, actor)
        app.quality.sign_review(batch_id, actor, read_password(password_stdin), comment)
        report = app.quality.review_report(batch_id)
    if fmt == "json":
        echo_json(report.to_json())
    else:
        print_review(report, when(app))


@batch.command("release")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", default=None, help="An optional release comment.")
@PASSWORD_STDIN
@with_actor
@with_app
def batch_release(
    app: Services, batch_id: str, reason: str | None, password_stdin: bool, actor: str
) -> None:
    """Release a batch (QA only; someone who performed no step). Says exactly what blocks it.

    \b
    Example:
      cmprep batch release CM-20261129-001 --as quinn
    """
    blockers = app.quality.release_blockers(app.batches.batch(batch_id), actor)
    if blockers:  # say it before asking for a password; the service checks again
        app.quality.release(batch_id, actor, None, reason)
    app.quality.release(batch_id, actor, read_password(password_stdin), reason)
    click.echo(f"Batch {batch_id} released by {actor}.")


@batch.command("reject")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True)
@PASSWORD_STDIN
@with_actor
@with_app
def batch_reject(
    app: Services, batch_id: str, reason: str, password_stdin: bool, actor: str
) -> None:
    """Reject a batch (QA only), with a reason and a signature.

    \b
    Example:
      cmprep batch reject CM-20261129-001 --reason "sterility test failed" --as quinn
    """
    app.batches.batch(batch_id)
    app.quality.reject(batch_id, actor, read_password(password_stdin), reason)
    click.echo(f"Batch {batch_id} rejected by {actor}.")


@batch.command("complaint")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True, help="The complaint: who reported what, and when.")
@click.option(
    "--severity",
    type=click.Choice(["minor", "major", "critical"], case_sensitive=False),
    default="major",
    show_default=True,
    help="First classification; QA may change it when closing.",
)
@with_actor
@with_app
def batch_complaint(app: Services, batch_id: str, reason: str, severity: str, actor: str) -> None:
    """Record a complaint about a released (or rejected) batch, as an addendum to its record.

    It is investigated and closed like a deviation; the recorded values and the decision
    stay as they are.

    \b
    Example:
      cmprep batch complaint CM-20261129-001 --reason "study 7: vial 3 cloudy on thawing" --as quinn
    """
    out = app.quality.open_complaint(batch_id, severity, actor, reason)
    c = out.deviations[0]["deviation_id"]
    click.echo(
        f"Complaint {c} opened ({severity}) as an addendum to {out.batch.state} batch "
        f"{batch_id}; investigate and close it like a deviation ({c})."
    )


@batch.command("record-doc")
@click.argument("batch_id", metavar="BATCH")
@DOC_FORMAT
@OUTPUT
@with_app
def batch_record_doc(app: Services, batch_id: str, fmt: str | None, output: str | None) -> None:
    """Render the batch record a QA reviewer signs (HTML for print, Markdown or PDF).

    \b
    Example:
      cmprep batch record-doc CM-20261129-001 -o CM-20261129-001.pdf
    """
    fmt = need_output(fmt, output)
    write_or_print(app.documents.record(batch_id, fmt), output, "Batch record")
