"""What happened after a write, in the words a technician wants between two steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.render.status_text import MARK, need_text

if TYPE_CHECKING:
    from cmprep.domain.batch import Batch
    from cmprep.protocol.models import Parameter
    from cmprep.service import Outcome


def tell(outcome: Outcome, action: str) -> None:
    """The action, each value's verdict, each deviation opened, a late entry, what is next."""
    b = outcome.batch
    click.echo(action)
    for f in outcome.findings:
        if f.verdict.value in MARK:
            spec = f" (spec {f.spec})" if f.spec and f.verdict.value == "in spec" else ""
            click.echo(f"  {MARK[f.verdict.value]} {f.message}{spec}")
        if f.note:
            click.echo(f"    ℹ {f.note}")
    for d in outcome.deviations:
        click.secho(
            f"{d['message']}: deviation {d['deviation_id']} opened ({d['severity']}). "
            f"QA will review it; add a justification with "
            f"`cmprep deviation investigate {d['deviation_id']} --reason ...`.",
            fg="yellow",
        )
    if outcome.late:
        click.secho(
            f"Late entry: entered more than {b.protocol.late_entry_minutes:g} min "
            "after it was done; the record shows both times.",
            fg="yellow",
        )
    tell_next(b)


def need(p: Parameter) -> str:
    """'rcf (x g, spec 300-500 x g)', 'donor_id', 'note (optional)'."""
    spec = p.spec.describe(p.unit) if p.spec else None
    return need_text(p.name, p.unit, spec, p.required)


def tell_next(b: Batch) -> None:
    if b.on_hold:
        click.echo(f"Batch {b.id} is on hold.")
        return
    if b.is_final or b.state == "awaiting_review":
        click.echo(f"Batch {b.id}: all steps done; {b.state.replace('_', ' ')}.")
        return
    due = b.due()
    if len(due) == 1:
        click.echo(f"Next: {due[0].id} ({due[0].title}).")
    else:
        click.echo("Next: choose one of " + ", ".join(f"{s.id} ({s.title})" for s in due) + ".")
