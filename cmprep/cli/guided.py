"""Guided mode at the bench: the step due, its values one by one, checked as they are typed.

Values are checked with the same pure validation the service uses, so a refused value is
asked again at once; nothing is written until the technician confirms the whole step, and
each confirmed step is one transaction, so Ctrl-C never loses a confirmed step.
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from cmprep.cli.hints import say
from cmprep.cli.tell import tell
from cmprep.domain.traceability import rotor_radius
from cmprep.domain.validation import Verdict, check_value
from cmprep.errors import CmprepError
from cmprep.protocol.models import Parameter, Step
from cmprep.service import Services


def _describe(param: Parameter) -> str:
    parts = []
    if param.unit:
        parts.append(param.unit)
    if param.spec:
        parts.append(f"spec {param.spec.describe(param.unit)}")
    if param.choices:
        parts.append("choices: " + ", ".join(param.choices))
    if param.type.value == "yes/no":
        parts.append("yes/no")
    if not param.required:
        parts.append("optional: Enter to leave blank")
    return f"{param.label} [{'; '.join(parts)}]" if parts else param.label


def _ask_known(prompt: str, known: Mapping[str, object], what: str, register: str) -> str:
    """An id from a registry, or empty; an unknown one is asked again with how to add it."""
    while True:
        ident = click.prompt(f"{prompt} (Enter if none)", default="", show_default=False).strip()
        if not ident or ident in known:
            return ident
        click.secho(f"  no {what} {ident!r}; register it with `{register}`", fg="red")


def _ask_used(app: Services, step: Step) -> tuple[list[str], list[str], float | None]:
    """Lots and instruments the protocol expects at this step; unknown ones are re-asked."""
    lots: list[str] = []
    equipment: list[str] = []
    known_lots = app.materials.lots() if step.materials else {}
    for kind in step.materials:
        lot = _ask_known(f"Lot of {kind}", known_lots, "lot", "cmprep materials add")
        if lot:
            lots.append(lot)
    known = app.materials.instruments() if step.equipment else {}
    for kind in step.equipment:
        ident = _ask_known(f"{kind.capitalize()} id", known, "equipment", "cmprep equipment add")
        if ident:
            equipment.append(ident)
    return lots, equipment, rotor_radius([known[i] for i in equipment])


def _ask_value(param: Parameter, rotor_radius_cm: float | None = None) -> str | None:
    while True:
        raw = click.prompt(_describe(param), default="", show_default=False)
        if not raw.strip():
            if not param.required:
                return None
            click.secho(f"  {param.label} is required.", fg="red")
            continue
        finding = check_value(param, raw, rotor_radius_cm=rotor_radius_cm)
        if finding.verdict == Verdict.refused:
            click.secho(f"  refused: {finding.message}", fg="red")
            continue
        if finding.verdict == Verdict.out_of_spec:
            click.secho(
                f"  {finding.message}: a {finding.severity.value if finding.severity else ''} "
                "deviation opens when you save this step.",
                fg="yellow",
            )
            if not click.confirm("  Keep this value?", default=False):
                continue
        elif finding.verdict == Verdict.alert:
            click.secho(f"  warning: {finding.message}", fg="yellow")
        return raw


def _choose(due: list[Step]) -> Step:
    click.echo("Choose one:")
    for n, step in enumerate(due, 1):
        click.echo(f"  {n}. {step.title} ({step.id})")
    n = click.prompt("Arm", type=click.IntRange(1, len(due)))
    return due[n - 1]


def run(app: Services, batch_id: str, actor: str) -> None:
    """Ask for each due step until the batch waits for review, is on hold, or is stopped."""
    try:
        while True:
            batch = app.batches.batch(batch_id)
            if batch.on_hold:
                click.echo(
                    f"Batch {batch.id} is on hold; resume it first with `cmprep batch resume`."
                )
                return
            due = batch.due()
            if not due:
                click.echo(f"Batch {batch.id}: nothing is due ({batch.state.replace('_', ' ')}).")
                return
            step = due[0] if len(due) == 1 else _choose(due)
            click.secho(f"\n== {step.title} ({step.id}) ==", bold=True)
            click.echo(step.instructions.strip())
            for item in step.checks:
                click.echo(f"  [ ] {item}")
            if step.optional and not click.confirm("Do this optional step?", default=True):
                reason = click.prompt("Reason for skipping")
                try:
                    tell(app.batches.skip(batch.id, step.id, actor, reason), f"Skipped {step.id}.")
                except CmprepError as err:
                    click.secho(say(err), fg="red")
                continue
            lots, equipment, radius = _ask_used(app, step)
            entries: dict[str, str] = {}
            for param in step.parameters:
                raw = _ask_value(param, radius)
                if raw is not None:
                    entries[param.name] = raw
            note = click.prompt("Note (Enter for none)", default="", show_default=False) or None
            if not click.confirm(f"Save {step.id}?", default=True):
                click.echo("Not saved; asking again.")
                continue
            try:
                tell(
                    app.batches.record(
                        batch.id, step.id, entries, actor, note=note, lots=lots, equipment=equipment
                    ),
                    f"Saved {step.id}.",
                )
            except CmprepError as err:
                click.secho(say(err), fg="red")
                if not click.confirm("Try this step again?", default=True):
                    return
    except (click.Abort, EOFError, KeyboardInterrupt):
        click.echo("\nStopped. Every step you confirmed is saved; nothing else was written.")
