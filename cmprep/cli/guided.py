"""Guided mode at the bench: the step due, its values one by one, checked as they are typed.

Values are checked with the same pure validation the service uses, so a refused value is
asked again at once; before anything is saved the service says which deviations the save
would open (``BatchService.preview``: an out-of-spec value, an expired lot, an instrument
past its calibration, the time window), and each one is asked about. Nothing is written
until the technician confirms the whole step, and each confirmed step is one transaction,
so Ctrl-C never loses a confirmed step (and ends with status 130, as an interrupt does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from cmprep.cli.hints import hint_text, say
from cmprep.cli.tell import tell
from cmprep.domain import ids
from cmprep.domain.validation import Finding, Verdict, check_value
from cmprep.errors import INTERRUPTED, CmprepError
from cmprep.protocol.models import Parameter, Step

if TYPE_CHECKING:
    from cmprep.domain.batch import Batch
    from cmprep.domain.traceability import Instrument
    from cmprep.service import Services

MENU_LIMIT = 8  # registered instruments of a kind listed at its prompt


class Restart(Exception):
    """The technician declined a deviation that only asking the step again can undo."""


def _describe(param: Parameter) -> str:
    parts = []
    if param.unit:
        parts.append(param.unit)
    if param.spec:
        parts.append(f"spec {param.spec.describe(param.unit)}")
    if param.type.value == "yes/no":
        parts.append("yes/no")
    if not param.required:
        parts.append("optional: Enter to leave blank")
    return f"{param.label} [{'; '.join(parts)}]" if parts else param.label


def _header(app: Services, batch: Batch, actor: str, step: Step) -> None:
    """Who is entering what, at the top of every step: the batch, its protocol, the person."""
    user = app.gate.user(actor)
    who = f"{actor} ({user.full_name})" if user is not None else actor
    p = batch.protocol
    click.secho(f"\n== Batch {batch.id} · {p.id} v{p.version} · signed in as {who} ==", bold=True)
    numbers = {s.id: n for n, s in enumerate(p.steps, 1)}
    click.secho(
        f"-- Step {numbers.get(step.id, '?')} of {len(p.steps)}: {step.title} ({step.id}) --",
        bold=True,
    )


def _refuse(message: str, hint: str = "") -> None:
    click.secho(f"  {message}" + (f" {hint}" if hint else ""), fg="red")


def _ask_lot(kind: str, app: Services) -> str:
    """A lot from the registry (any case, read by key), or empty; an unknown one is asked
    again, with the closest registered ids."""
    from cmprep.errors import Hint

    while True:
        typed = click.prompt(
            f"Lot of {kind} (Enter if none)", default="", show_default=False
        ).strip()
        if not typed:
            return ""
        found = app.materials.lot_named(typed)
        if found is not None:
            return found.lot
        hint = hint_text(Hint("register_lot", lot=typed), guided=True)
        near = app.materials.lots_near(typed)
        _refuse(f"no lot {typed!r}{ids.suggestion(typed, near)}.", hint)


def _ask_instrument(kind: str, known: Mapping[str, Instrument]) -> str:
    """An instrument of KIND from the registry (any case), or empty. An unknown one, or one
    of another kind (a centrifuge given for the biosafety cabinet), is asked again."""
    from cmprep.errors import Hint

    fitting = [i for i, inst in known.items() if ids.same_kind(inst.kind, kind)]
    listed = ", ".join(fitting[:MENU_LIMIT]) + (" ..." if len(fitting) > MENU_LIMIT else "")
    offer = f"registered: {listed}; " if fitting else ""
    while True:
        typed = click.prompt(
            f"{kind.capitalize()} id (a {kind}; {offer}Enter if none)",
            default="",
            show_default=False,
        ).strip()
        if not typed:
            return ""
        found = ids.same(typed, known)
        if found is None:
            hint = hint_text(Hint("register_equipment", equipment=typed), guided=True)
            _refuse(f"no instrument {typed!r}{ids.suggestion(typed, fitting or known)}.", hint)
        elif not ids.same_kind(known[found].kind, kind):
            _refuse(f"{found} is a {known[found].kind}, not a {kind}; give the {kind} used.")
        else:
            return found


def _pick(param: Parameter) -> str:
    """A choice from a numbered menu: its number, or its text (any case; other text is
    judged as typed, so the refusal lists the choices)."""
    choices = param.choices or []
    click.echo(f"{_describe(param)}:")
    for n, choice in enumerate(choices, 1):
        click.echo(f"  {n}. {choice}")
    while True:
        raw = click.prompt("Number", default="", show_default=False).strip()
        if not raw.isdigit() or raw in choices:
            return ids.same(raw, choices) or raw
        if 1 <= int(raw) <= len(choices):
            return choices[int(raw) - 1]
        _refuse(f"give a number from 1 to {len(choices)}.")


def _confirm_deviation(f: Finding, question: str = "Keep this value?") -> bool:
    """Say the deviation a save would open and ask whether to keep what opens it."""
    severity = f.severity.value if f.severity else "major"
    click.secho(
        f"  {f.message}: a {severity} deviation opens when you save this step.", fg="yellow"
    )
    return click.confirm(f"  {question}", default=False)


def _ask_value(
    param: Parameter, rotor_radius_cm: float | None = None, kept: set[str] | None = None
) -> str | None:
    """One value, asked until it is usable; an out-of-spec one kept is added to KEPT."""
    while True:
        raw = (
            _pick(param)
            if param.choices
            else click.prompt(_describe(param), default="", show_default=False)
        )
        if not raw.strip():
            if not param.required:
                return None
            click.secho(f"  {param.label} is required.", fg="red")
            continue
        finding = check_value(param, raw, rotor_radius_cm=rotor_radius_cm)
        if finding.verdict == Verdict.refused:
            extra = hint_text(finding.hint, guided=True) if finding.hint else ""
            _refuse(f"refused: {finding.message}.", extra)
            continue
        if finding.verdict == Verdict.out_of_spec:
            if not _confirm_deviation(finding):
                continue
            (kept if kept is not None else set()).add(param.name)
        if finding.verdict == Verdict.alert:
            click.secho(f"  warning: {finding.message}", fg="yellow")
        return raw


def _lot_of(param: Parameter, step: Step, lots: dict[str, str]) -> str | None:
    """The lot scanned at this step that a free-text lot parameter ("PBS lot number")
    asks for again, or None. The two are one thing: the parameter is filled from the
    registry's lot instead of being typed a second time (and disagreeing)."""
    words = f"{param.name} {param.label}".lower().replace("_", " ")
    if param.type.value != "text" or "lot" not in words.split():
        return None
    named = [kind for kind in step.materials if kind.lower() in words and kind in lots]
    if len(named) == 1:
        return lots[named[0]]
    if len(step.materials) == 1 and step.materials[0] in lots:
        return lots[step.materials[0]]
    return None


def _ask_used(
    app: Services, batch: Batch, step: Step
) -> tuple[dict[str, str], list[str], float | None]:
    """Lots (by material) and instruments the protocol expects at this step; each deviation
    one of them would open (expired, past calibration) is asked about, and a declined one
    is asked again."""
    from cmprep.domain.traceability import rotor_radius

    known = {i.id: i for i in app.materials.instruments_kept()} if step.equipment else {}
    lots: dict[str, str] = {}
    equipment: dict[str, str] = {}
    for kind in step.materials:
        while lot := _ask_lot(kind, app):
            if _kept(app, batch, step, lots=[lot]):
                lots[kind] = lot
                break
    for kind in step.equipment:
        while ident := _ask_instrument(kind, known):
            if _kept(app, batch, step, equipment=[ident]):
                equipment[kind] = ident
                break
    radius = rotor_radius([known[i] for i in equipment.values()])
    return lots, list(equipment.values()), radius


def _kept(
    app: Services,
    batch: Batch,
    step: Step,
    *,
    lots: list[str] | None = None,
    equipment: list[str] | None = None,
) -> bool:
    """Whether the technician keeps a lot or instrument the save would open a deviation
    for (True when it opens none)."""
    found = app.batches.preview(batch.id, step.id, {}, lots=lots, equipment=equipment)
    named = {f"lot:{x}" for x in lots or []} | {f"equipment:{x}" for x in equipment or []}
    opened = [f for f in found if f.verdict == Verdict.out_of_spec and f.parameter in named]
    return all(_confirm_deviation(f) for f in opened)


def _window_kept(app: Services, batch: Batch, step: Step) -> bool:
    """The time window, asked first: a step done outside it opens a deviation whatever is
    typed, so the technician decides before typing anything."""
    if not step.window:
        return True
    found = app.batches.preview(batch.id, step.id, {})
    late = [
        f
        for f in found
        if f.verdict == Verdict.out_of_spec and f.parameter.startswith("time_since_")
    ]
    return all(_confirm_deviation(f, "Record this step now anyway?") for f in late)


def _values(
    app: Services,
    batch: Batch,
    step: Step,
    lots: dict[str, str],
    radius: float | None,
    equipment: list[str],
) -> dict[str, str]:
    """Every value of the step, then the deviations only the whole step shows (the lab's
    trend, a derived value, the route's release spec) asked about; declining one asks the
    step again."""
    entries: dict[str, str] = {}
    kept: set[str] = set()  # values whose deviation was asked about as they were typed
    typed = [p for p in step.parameters if getattr(p, "derived", None) is None]
    for param in typed:
        scanned = _lot_of(param, step, lots)
        if scanned is not None:
            click.echo(f"{param.label}: {scanned} (the lot named above)")
            entries[param.name] = scanned
            continue
        raw = _ask_value(param, radius, kept)
        if raw is not None:
            entries[param.name] = raw
    found = app.batches.preview(
        batch.id, step.id, entries, lots=list(lots.values()), equipment=equipment
    )
    for f in found:
        if f.verdict != Verdict.out_of_spec or f.parameter in kept:
            continue  # in spec, or a typed value asked about as it was typed
        if f.parameter.startswith(("lot:", "equipment:", "time_since_")):
            continue  # asked about before the values
        if not _confirm_deviation(f):  # a rule over the lab's history, a derived value
            raise Restart
    return entries


def _ask_checks(step: Step) -> list[str]:
    """The check items (the `[ ]` lines) the technician ticks, by number; none unless
    named: a tick is a statement that it was done, never a default."""
    if not step.checks:
        return []
    n = len(step.checks)
    while True:
        raw = click.prompt(
            f"Checks done (numbers 1-{n}, e.g. 1,3; 'all'; Enter for none)",
            default="",
            show_default=False,
        )
        raw = raw.strip().lower()
        if not raw:
            return []
        if raw == "all":
            return list(step.checks)
        parts = [p for p in raw.replace(" ", ",").split(",") if p]
        if all(p.isdigit() and 1 <= int(p) <= n for p in parts):
            return [step.checks[int(p) - 1] for p in dict.fromkeys(parts)]
        _refuse(f"give numbers from 1 to {n}, separated by commas, or 'all'.")


def _choose(due: list[Step]) -> Step:
    click.echo("Choose one:")
    for n, step in enumerate(due, 1):
        click.echo(f"  {n}. {step.title} ({step.id})")
    n = click.prompt("Arm", type=click.IntRange(1, len(due)))
    return due[n - 1]


def _interrupted(err: BaseException) -> bool:
    """Ctrl-C, not the end of the input: click turns both into Abort at a prompt and
    keeps the cause as its context."""
    return isinstance(err, KeyboardInterrupt) or isinstance(err.__context__, KeyboardInterrupt)


def run(app: Services, batch_id: str, actor: str) -> None:
    """Ask for each due step until the batch waits for review, is on hold, or is stopped.
    Ctrl-C ends it with status 130; every step confirmed before stays saved."""
    try:
        _run(app, batch_id, actor)
    except (click.Abort, EOFError, KeyboardInterrupt) as err:
        click.echo("\nStopped. Every step you confirmed is saved; nothing else was written.")
        if _interrupted(err):
            raise click.exceptions.Exit(INTERRUPTED) from None


def _run(app: Services, batch_id: str, actor: str) -> None:
    while True:
        batch = app.batches.batch(batch_id)
        if batch.on_hold:
            click.echo(f"Batch {batch.id} is on hold; resume it first with `cmprep batch resume`.")
            return
        due = batch.due()
        if not due:
            click.echo(f"Batch {batch.id}: nothing is due ({batch.state.replace('_', ' ')}).")
            return
        step = due[0] if len(due) == 1 else _choose(due)
        _header(app, batch, actor, step)
        click.echo(step.instructions.strip())
        for n, item in enumerate(step.checks, 1):
            click.echo(f"  [ ] {n}. {item}")
        if step.optional and not click.confirm("Do this optional step?", default=True):
            reason = click.prompt("Reason for skipping")
            try:
                tell(app.batches.skip(batch.id, step.id, actor, reason), f"Skipped {step.id}.")
            except CmprepError as err:
                click.secho(say(err, guided=True), fg="red")
            continue
        if not _window_kept(app, batch, step):
            click.echo(f"Nothing saved for {step.id}.")
            return
        lots, equipment, radius = _ask_used(app, batch, step)
        try:
            entries = _values(app, batch, step, lots, radius, equipment)
        except Restart:
            click.echo("Not saved; asking this step again.")
            continue
        ticked = _ask_checks(step)
        note = click.prompt("Note (Enter for none)", default="", show_default=False) or None
        if not click.confirm(f"Save {step.id}?", default=True):
            click.echo("Not saved; asking again.")
            continue
        try:
            out = app.batches.record(
                batch.id,
                step.id,
                entries,
                actor,
                note=note,
                lots=list(lots.values()),
                equipment=equipment,
            )
            tell(out, f"Saved {step.id}.")
            if ticked:
                app.batches.confirm_checks(batch.id, step.id, ticked, actor)
                click.echo(f"Ticked {len(ticked)} of {len(step.checks)} checks of {step.id}.")
        except CmprepError as err:
            click.secho(say(err, guided=True), fg="red")
            if not click.confirm("Try this step again?", default=True):
                return
