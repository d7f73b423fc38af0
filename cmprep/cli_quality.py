"""Commands for people, signatures, the deviation lifecycle, review, release and audit.

Registered on the `cmprep` group by cli.py; like it, imports only click at start-up.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cmprep.cli import (
    FORMAT,
    OUTPUT,
    PASSWORD_STDIN,
    TABLE_FORMAT,
    TEXT_FORMAT,
    _echo_json,
    _need_output,
    _table,
    _tell,
    _write_or_print,
    batch,
    deviation,
    main,
    read_password,
    with_actor,
    with_db,
)

if TYPE_CHECKING:
    from cmprep.service import Service


# --- users -----------------------------------------------------------------------------
@main.group()
def user() -> None:
    """People: add, list and deactivate users (admins only, after the first)."""


@user.command("add")
@click.argument("name")
@click.option("--full-name", required=True, help="Printed with every signature.")
@click.option("--role", type=click.Choice(["technician", "reviewer", "qa", "admin"]), required=True)
@PASSWORD_STDIN
@click.option(
    "--as",
    "actor",
    envvar="CMPREP_USER",
    default=None,
    metavar="NAME",
    help="The admin adding the user (not needed for the first one).",
)
@with_db
def user_add(
    svc: Service, name: str, full_name: str, role: str, password_stdin: bool, actor: str | None
) -> None:
    """Add a user. The new user's password is asked twice (or read from stdin).

    \b
    Example:
      cmprep user add admin --full-name "Ada Admin" --role admin
      cmprep user add alice --full-name "Alice Archer" --role technician --as admin
    """
    if password_stdin:
        password = read_password(True)
    else:
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    u = svc.add_user(name, full_name, role, password, actor)
    click.echo(f"User {u.name} ({u.full_name}, {u.role.value}) added.")


@user.command("list")
@TABLE_FORMAT
@with_db
def user_list(svc: Service, fmt: str) -> None:
    """List users, active and inactive.

    \b
    Example:
      cmprep user list
    """
    rows = [u.row() for u in svc.users().values()]
    _table(
        rows, ["name", "full_name", "role", "active", "added_by", "added_at", "deactivated_at"], fmt
    )


@user.command("deactivate")
@click.argument("name")
@click.option("--reason", required=True)
@with_actor
@with_db
def user_deactivate(svc: Service, name: str, reason: str, actor: str) -> None:
    """Deactivate a user: they can do nothing more; their past entries stay theirs.

    \b
    Example:
      cmprep user deactivate bob --reason "left the lab" --as admin
    """
    svc.deactivate_user(name, actor, reason)
    click.echo(f"User {name} deactivated.")


# --- verification, review, release ----------------------------------------------------
@batch.command("verify")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@PASSWORD_STDIN
@with_actor
@with_db
def batch_verify(svc: Service, batch_id: str, step: str, password_stdin: bool, actor: str) -> None:
    """Second-person verification of a step, signed with your password.

    \b
    Example:
      cmprep batch verify CM-20261129-001 filtration --as bob
    """
    svc.batch(batch_id)  # name a missing batch before asking for a password
    out = svc.verify_step(batch_id, step, actor, read_password(password_stdin))
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
@with_db
def batch_review(
    svc: Service,
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
    report = svc.review_report(batch_id)
    if comment is not None:
        if not actor:
            raise click.ClickException("signing a review needs --as NAME or CMPREP_USER")
        svc.sign_review(batch_id, actor, read_password(password_stdin), comment)
        report = svc.review_report(batch_id)
    if fmt == "json":
        _echo_json(report)
        return
    click.echo(
        f"Review of batch {report['batch']} ({report['protocol']}), "
        f"state {report['state'].replace('_', ' ')}"
    )
    sections = [
        (
            "Out of spec",
            [
                f"{r['step']}.{r['parameter']} = {r['value']} (spec {r['spec']}) "
                f"{' '.join(r['deviations'])}"
                for r in report["out_of_spec"]
            ],
        ),
        ("Alerts", [f"{r['step']}.{r['parameter']}: {r['message']}" for r in report["alerts"]]),
        (
            "Deviations",
            [
                f"{d['id']} {d['severity']} at {d['step']} ({d['kind']}): {d['status']}"
                + (f", {d['decision']}" if d["decision"] else "")
                for d in report["deviations"]
            ],
        ),
        (
            "Corrections",
            [
                f"{c['step']}.{c['parameter']}: {c['old']} -> {c['new']} "
                f"by {c['by']} at {c['at']}: {c['reason']}"
                for c in report["corrections"]
            ],
        ),
        ("Skipped steps", [f"{s['step']} by {s['by']}: {s['reason']}" for s in report["skipped"]]),
        (
            "Late entries",
            [
                f"{e['step']}: performed {e['performed_at']}, "
                f"entered {e['entered_at']} by {e['by']}"
                for e in report["late_entries"]
            ],
        ),
        (
            "Holds",
            [
                f"{h['at']} by {h['actor']}: {h['reason']}"
                + (f"; resumed {h['resumed_at']} by {h['resumed_by']}" if h["resumed_at"] else "")
                for h in report["holds"]
            ],
        ),
        ("Missing verifications", report["missing_verifications"]),
        (
            "Signatures",
            [
                f"{s['meaning']}: {s['full_name']} ({s['signer']}) at {s['signed_at']} "
                f"on {s['subject']['kind']} {s['subject']['id']}"
                for s in report["signatures"]
            ],
        ),
    ]
    for title, lines in sections:
        click.echo(f"\n{title}: {'none' if not lines else ''}")
        for line in lines:
            click.echo(f"  - {line}")
    blockers = report["release_blockers"]
    click.echo("\nRelease: " + ("ready for QA release" if not blockers else "blocked by"))
    for b in blockers:
        click.echo(f"  - {b}")


@batch.command("release")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", default=None, help="An optional release comment.")
@PASSWORD_STDIN
@with_actor
@with_db
def batch_release(
    svc: Service, batch_id: str, reason: str | None, password_stdin: bool, actor: str
) -> None:
    """Release a batch (QA only; someone who performed no step). Says exactly what blocks it.

    \b
    Example:
      cmprep batch release CM-20261129-001 --as quinn
    """
    blockers = svc.release_blockers(svc.batch(batch_id), actor)
    if blockers:  # say it before asking for a password; the service checks again
        svc.release(batch_id, actor, None, reason)
    svc.release(batch_id, actor, read_password(password_stdin), reason)
    click.echo(f"Batch {batch_id} released by {actor}.")


@batch.command("reject")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True)
@PASSWORD_STDIN
@with_actor
@with_db
def batch_reject(
    svc: Service, batch_id: str, reason: str, password_stdin: bool, actor: str
) -> None:
    """Reject a batch (QA only), with a reason and a signature.

    \b
    Example:
      cmprep batch reject CM-20261129-001 --reason "sterility test failed" --as quinn
    """
    svc.batch(batch_id)
    svc.reject(batch_id, actor, read_password(password_stdin), reason)
    click.echo(f"Batch {batch_id} rejected by {actor}.")


# --- deviation lifecycle --------------------------------------------------------------
@deviation.command("open")
@click.argument("batch_id", metavar="BATCH")
@click.option("--step", required=True, help="The step where it happened.")
@click.option("--severity", type=click.Choice(["minor", "major", "critical"]), required=True)
@click.option("--reason", required=True, help="What happened.")
@with_actor
@with_db
def deviation_open(
    svc: Service, batch_id: str, step: str, severity: str, reason: str, actor: str
) -> None:
    """Open a deviation by hand (a dropped flask, an incubator alarm).

    \b
    Example:
      cmprep deviation open CM-20261129-001 --step conditioning --severity major --reason "incubator alarm 02:10-02:40" --as alice
    """  # noqa: E501
    out = svc.open_deviation(batch_id, step, severity, actor, reason)
    d = out.deviations[0]
    click.echo(f"Deviation {d['deviation_id']} opened ({severity}) at {step} of batch {batch_id}.")


@deviation.command("investigate")
@click.argument("deviation_id", metavar="DEV")
@click.option(
    "--reason", "justification", required=True, help="The justification: cause and reasoning."
)
@click.option("--impact", default=None, help="Impact assessment on the product.")
@with_actor
@with_db
def deviation_investigate(
    svc: Service, deviation_id: str, justification: str, impact: str | None, actor: str
) -> None:
    """Add the justification and impact assessment to a deviation.

    \b
    Example:
      cmprep deviation investigate DEV-0007 --reason "wrong programme selected" --impact "none on sterility" --as alice
    """  # noqa: E501
    svc.investigate(deviation_id, actor, justification, impact)
    click.echo(f"{deviation_id.upper()} investigated; it waits for a QA decision.")


@deviation.command("close")
@click.argument("deviation_id", metavar="DEV")
@click.option("--decision", type=click.Choice(["accepted", "rejected"]), required=True)
@click.option("--reason", required=True, help="The reason for the decision.")
@click.option("--capa", default=None, help="A CAPA reference.")
@click.option(
    "--severity",
    type=click.Choice(["minor", "major", "critical"]),
    default=None,
    help="Reclassify the severity.",
)
@click.option("--severity-reason", default=None, help="Why the severity changes.")
@PASSWORD_STDIN
@with_actor
@with_db
def deviation_close(
    svc: Service,
    deviation_id: str,
    decision: str,
    reason: str,
    capa: str | None,
    severity: str | None,
    severity_reason: str | None,
    password_stdin: bool,
    actor: str,
) -> None:
    """Close a deviation with a signed QA decision (someone not involved in it).

    \b
    Example:
      cmprep deviation close DEV-0007 --decision accepted --reason "no impact" --capa CAPA-031 --as quinn
    """  # noqa: E501
    svc.deviation(deviation_id)
    svc.close_deviation(
        deviation_id,
        actor,
        read_password(password_stdin),
        decision,
        reason,
        capa=capa,
        severity=severity,
        severity_reason=severity_reason,
    )
    click.echo(f"{deviation_id.upper()} closed: {decision} by {actor}.")


@deviation.command("show")
@click.argument("deviation_id", metavar="DEV")
@TEXT_FORMAT
@with_db
def deviation_show(svc: Service, deviation_id: str, fmt: str) -> None:
    """A deviation and its whole history.

    \b
    Example:
      cmprep deviation show DEV-0007
    """
    b, d = svc.deviation(deviation_id)
    history = [row for row in svc.audit_trail(b.id) if row["seq"] in {h["seq"] for h in d.history}]
    if fmt == "json":
        _echo_json(
            {**d.row(), "investigation": d.investigation, "closure": d.closure, "history": history}
        )
        return
    click.echo(f"{d.id} ({d.severity}, {d.kind}) in batch {d.batch_id}, step {d.step}: {d.status}")
    if d.parameter:
        click.echo(f"  {d.parameter} = {d.value} (spec {d.spec})")
    click.echo(f"  {d.message}")
    for row in history:
        extra = f" — {row['why']}" if row["why"] else ""
        click.echo(
            f"  {row['at']} {row['who']}: {row['what']}{extra}"
            + (f" [{row['signature']}]" if row["signature"] else "")
        )


# --- audit -----------------------------------------------------------------------------
@main.group()
def audit() -> None:
    """Audit: trails, reports across batches, and proof that nothing was changed."""


@audit.command("trail")
@click.argument("batch_id", metavar="BATCH")
@TABLE_FORMAT
@with_db
def audit_trail(svc: Service, batch_id: str, fmt: str) -> None:
    """Every event of a batch: who, when, what, old and new values, why.

    Also `@users` (accounts) and `@security` (refused attempts).

    \b
    Example:
      cmprep audit trail CM-20261129-001 --format csv > trail.csv
      cmprep audit trail @security
    """
    rows = svc.audit_trail(batch_id)
    _table(
        rows, ["seq", "at", "performed_at", "who", "what", "old", "new", "why", "signature"], fmt
    )


@audit.command("verify")
@click.argument("batch_id", required=False, metavar="[BATCH]")
@with_db
def audit_verify(svc: Service, batch_id: str | None) -> None:
    """Recompute every hash chain, head, signature and the global ledger.
    Names the first broken event; exit status 1 on any break.

    \b
    Example:
      cmprep audit verify
      cmprep audit verify CM-20261129-001
    """
    checked, breaks = svc.audit_verify(batch_id)
    if breaks:
        for b in breaks:
            click.secho(f"BROKEN {b}", fg="red", err=True)
        click.echo(f"{len(breaks)} break(s) in {checked} event(s) checked.")
        sys.exit(1)
    click.echo(
        f"OK: {checked} event(s) checked; every chain, head, signature and the ledger are intact."
    )
    click.echo(
        f"Ledger head: {svc.ledger_head()} (keep it outside the database; compare it next time)"
    )


@audit.command("report")
@click.option(
    "--since", default=None, metavar="DATE", help="Only deviations opened since (YYYY-MM-DD)."
)
@FORMAT
@OUTPUT
@with_db
def audit_report(svc: Service, since: str | None, fmt: str, output: str | None) -> None:
    """Deviations across batches by step, protocol, severity and person (Pareto charts),
    open deviations by age, batches released and rejected.

    \b
    Example:
      cmprep audit report --since 2026-01-01 --format pdf -o audit.pdf
    """
    from cmprep.render import render_audit_report

    _need_output(fmt, output)
    _write_or_print(render_audit_report(svc.audit_report(since), fmt), output, "Audit report")


__all__ = ["_tell"]
