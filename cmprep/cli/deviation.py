"""`cmprep deviation ...`: open, investigate, close (QA), show and list deviations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    PASSWORD_STDIN,
    TABLE_FORMAT,
    TEXT_FORMAT,
    day,
    echo_json,
    read_password,
    stream_table,
    when,
    with_actor,
    with_app,
)
from cmprep.cli.screens import print_deviation

if TYPE_CHECKING:
    from cmprep.service import Services

SEVERITY = click.Choice(["minor", "major", "critical"], case_sensitive=False)
LIST_COLUMNS = [
    "deviation_id",
    "batch_id",
    "step",
    "parameter",
    "value",
    "spec",
    "severity",
    "status",
    "opened_by",
    "opened_at",
    "decision",
]


@click.group()
def deviation() -> None:
    """Deviations: open, investigate, close (QA), show and list them."""


@deviation.command("list")
@click.option("--batch", "batch_id", default=None, help="Only this batch.")
@click.option("--protocol", "protocol_id", default=None)
@click.option("--step", default=None)
@click.option("--severity", type=SEVERITY, default=None)
@click.option(
    "--status",
    type=click.Choice(["open", "investigated", "closed"], case_sensitive=False),
    default=None,
)
@click.option(
    "--person",
    "opened_by",
    default=None,
    help='Only deviations opened by this person (or by a rule: "Westgard 1-3s").',
)
@click.option(
    "--since", default=None, metavar="DATE", help="Opened on or after (YYYY-MM-DD or ISO time)."
)
@click.option(
    "--until", default=None, metavar="DATE", help="Opened before (YYYY-MM-DD or ISO time)."
)
@TABLE_FORMAT
@with_app
def deviation_list(
    app: Services, fmt: str, since: str | None, until: str | None, **where: str | None
) -> None:
    """List deviations, filtered; export as CSV or JSON.

    \b
    Example:
      cmprep deviation list --batch CM-20261129-001 --format csv > deviations.csv
      cmprep deviation list --status open --since 2026-11-01 --severity major
    """
    from cmprep.store.query import DeviationFilter

    bounds = {"since": day(app, since, "--since"), "until": day(app, until, "--until")}
    if where.get("protocol_id"):  # an unknown protocol is an error naming the known ones
        where["protocol_id"] = app.queries.batch_filter(None, where["protocol_id"]).protocol_id
    chosen = DeviationFilter(**where, **bounds)
    stream_table(lambda columns: app.queries.deviations(chosen, columns), LIST_COLUMNS, fmt)


@deviation.command("open")
@click.argument("batch_id", metavar="BATCH")
@click.option("--step", required=True, help="The step where it happened.")
@click.option("--severity", type=SEVERITY, required=True)
@click.option("--reason", required=True, help="What happened.")
@with_actor
@with_app
def deviation_open(
    app: Services, batch_id: str, step: str, severity: str, reason: str, actor: str
) -> None:
    """Open a deviation by hand (a dropped flask, an incubator alarm).

    On a released or rejected batch it is added to the record as an addendum: the recorded
    values and the decision stay as they are.

    \b
    Example:
      cmprep deviation open CM-20261129-001 --step conditioning --severity major --reason "incubator alarm 02:10-02:40" --as alice
    """  # noqa: E501
    out = app.quality.open_deviation(batch_id, step, severity, actor, reason)
    d = out.deviations[0]
    if d.get("addendum"):
        click.echo(
            f"Addendum to {out.batch.state} batch {batch_id}: deviation {d['deviation_id']} "
            f"opened ({severity}) at {step}; the recorded values and the decision are unchanged."
        )
        return
    click.echo(f"Deviation {d['deviation_id']} opened ({severity}) at {step} of batch {batch_id}.")


@deviation.command("investigate")
@click.argument("deviation_id", metavar="DEV")
@click.option(
    "--reason", "justification", required=True, help="The justification: cause and reasoning."
)
@click.option("--impact", default=None, help="Impact assessment on the product.")
@with_actor
@with_app
def deviation_investigate(
    app: Services, deviation_id: str, justification: str, impact: str | None, actor: str
) -> None:
    """Add the justification and impact assessment to a deviation.

    \b
    Example:
      cmprep deviation investigate DEV-0007 --reason "wrong programme selected" --impact "none on sterility" --as alice
    """  # noqa: E501
    app.quality.investigate(deviation_id, actor, justification, impact)
    click.echo(f"{deviation_id.upper()} investigated; it waits for a QA decision.")


@deviation.command("close")
@click.argument("deviation_id", metavar="DEV")
@click.option(
    "--decision", type=click.Choice(["accepted", "rejected"], case_sensitive=False), required=True
)
@click.option("--reason", required=True, help="The reason for the decision.")
@click.option("--capa", default=None, help="A CAPA reference.")
@click.option("--severity", type=SEVERITY, default=None, help="Reclassify the severity.")
@click.option("--severity-reason", default=None, help="Why the severity changes.")
@PASSWORD_STDIN
@with_actor
@with_app
def deviation_close(
    app: Services,
    deviation_id: str,
    decision: str,
    reason: str,
    password_stdin: bool,
    actor: str,
    **change: str | None,
) -> None:
    """Close a deviation with a signed QA decision (someone not involved in it).

    \b
    Example:
      cmprep deviation close DEV-0007 --decision accepted --reason "no impact" --capa CAPA-031 --as quinn
    """  # noqa: E501
    app.quality.deviation(deviation_id)  # name a missing deviation before asking for a password
    password = read_password(password_stdin)
    app.quality.close_deviation(deviation_id, actor, password, decision, reason, **change)
    click.echo(f"{deviation_id.upper()} closed: {decision} by {actor}.")


@deviation.command("show")
@click.argument("deviation_id", metavar="DEV")
@TEXT_FORMAT
@with_app
def deviation_show(app: Services, deviation_id: str, fmt: str) -> None:
    """A deviation and its whole history.

    \b
    Example:
      cmprep deviation show DEV-0007
    """
    d = app.quality.deviation_view(deviation_id)
    if fmt == "json":
        echo_json(d.to_json())
        return
    print_deviation(d, when(app))
