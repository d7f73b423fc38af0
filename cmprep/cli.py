"""The `cmprep` command line: parse, call the service, print. Nothing else lives here.

Only click is imported at start-up; each command imports the service, pydantic, jinja2 or
WeasyPrint when it runs, so `cmprep --help` at the bench answers at once.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cmprep.batch import Batch
    from cmprep.protocol.models import Parameter
    from cmprep.service import Outcome, Service

MARK = {"in spec": "✓", "alert": "⚠", "out of spec": "✗"}
STATUS_MARK = {"done": "✓", "skipped": "–", "not taken": " ", "due": "→", "pending": "·"}


# --- shared plumbing ---------------------------------------------------------------------
def _service(db: str | None) -> Service:
    from cmprep.service import Service
    from cmprep.store import open_store

    return Service(open_store(db))


def with_db(func: Callable) -> Callable:
    """Adds --db and turns every cmprep error into a plain message and exit status 1."""

    @click.option(
        "--db",
        envvar="CMPREP_DB",
        default=None,
        metavar="PATH",
        help="Database file (default ./cmprep.db, or $CMPREP_DB).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, db: str | None, **kwargs: Any) -> Any:
        from cmprep.batch import CorruptLog
        from cmprep.protocol.loader import ProtocolError
        from cmprep.service import CmprepError
        from cmprep.store.base import StoreError

        try:
            return func(*args, svc=_service(db), **kwargs)
        except (CmprepError, StoreError, ProtocolError, CorruptLog) as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:  # an output file that cannot be written, a full disk
            where = f" {err.filename}" if err.filename else ""
            raise click.ClickException(f"cannot write{where}: {err.strerror or err}") from None

    return wrapper


def with_actor(func: Callable) -> Callable:
    @click.option(
        "--as",
        "actor",
        envvar="CMPREP_USER",
        default=None,
        metavar="NAME",
        help="Who is doing this (or set $CMPREP_USER). Required for every write.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, actor: str | None, **kwargs: Any) -> Any:
        if not actor or not actor.strip():
            raise click.ClickException(
                "who is doing this? Give --as NAME or set CMPREP_USER; nothing was written"
            )
        return func(*args, actor=actor, **kwargs)

    return wrapper


def _entries(pairs: tuple[str, ...]) -> dict[str, str]:
    entries: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.UsageError(
                f"expected NAME=VALUE, got {pair!r} (e.g. rcf=400 or rcf='400 x g')"
            )
        if name in entries:
            raise click.UsageError(f"{name} is given twice; give each value once")
        entries[name] = value
    return entries


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _write_or_print(content: str | bytes, output: str | None, what: str) -> None:
    from cmprep.render import write_output

    if output:
        path = write_output(content, output)
        click.echo(f"{what} written to {path}")
    elif isinstance(content, bytes):
        raise click.UsageError("PDF output needs -o FILE")
    else:
        click.echo(content, nl=False)


def _need_output(fmt: str, output: str | None) -> None:
    if fmt == "pdf" and not output:
        raise click.UsageError("PDF output needs -o FILE (e.g. -o record.pdf)")


def _tell(outcome: Outcome, action: str) -> None:
    """What happened, in the words a technician wants between two steps."""
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
    _tell_next(b)


def _need(p: Parameter) -> str:
    """'rcf (x g, spec 300-500 x g)', 'donor_id', 'note (optional)'."""
    parts = [x for x in (p.unit, f"spec {p.spec.describe(p.unit)}" if p.spec else "") if x]
    if not p.required:
        parts.append("optional")
    return f"{p.name} ({', '.join(parts)})" if parts else p.name


def _tell_next(b: Batch) -> None:
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


def read_password(from_stdin: bool) -> str:
    """The signer's password: typed at a hidden prompt, or one line on stdin for scripts.
    Never a command-line argument (it would stay in the shell history)."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.UsageError("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    return click.prompt("Password (to sign)", hide_input=True)


TABLE_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table for reading; csv or json for export.",
)
TEXT_FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the signing password from standard input."
)
KEY = click.option(
    "--key",
    default=None,
    metavar="KEY",
    help="Idempotency key: the same command sent twice with it is saved once.",
)


# --- root ------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cmprep")
def main() -> None:
    """Batch records for MSC-conditioned medium.

    \b
    Example:
      cmprep user add admin --full-name "Ada Admin" --role admin
      cmprep user add alice --full-name "Alice Archer" --role technician --as admin
      cmprep protocol list
      cmprep batch start cm-standard-serum-free --as alice
      cmprep batch run CM-20261129-001 --as alice
    """


# --- protocols -------------------------------------------------------------------------
@main.group()
def protocol() -> None:
    """Master protocols: list, show and check them."""


@protocol.command("list")
@with_db
def protocol_list(svc: Service) -> None:
    """List the bundled protocols.

    \b
    Example:
      cmprep protocol list
    """
    for p in svc.protocols():
        click.echo(f"{p.id:32} v{p.version:6} {p.title}")


@protocol.command("show")
@click.argument("protocol_ref", metavar="PROTOCOL")
@TEXT_FORMAT
@with_db
def protocol_show(svc: Service, protocol_ref: str, fmt: str) -> None:
    """Show a protocol's steps, parameters and specs (JSON: the full validated model).

    \b
    Example:
      cmprep protocol show cm-hypoxia-uc --format json
    """
    p = svc.protocol(protocol_ref)
    if fmt == "json":
        _echo_json({**p.model_dump(mode="json"), "content_hash": p.content_hash()})
        return
    click.echo(f"{p.title}\n{p.id} v{p.version} ({p.status}), hash {p.content_hash()[:12]}\n")
    click.echo(p.summary.strip() + "\n")
    for n, step in enumerate(p.steps, 1):
        tags = [
            t
            for t in (
                "optional" if step.optional else "",
                f"branch {step.branch}" if step.branch else "",
                "verified" if step.verify else "",
            )
            if t
        ]
        click.echo(f"{n:2}. {step.id}: {step.title}" + (f" [{', '.join(tags)}]" if tags else ""))
        if step.window:
            w = step.window
            click.echo(f"      window: {w.range.describe(w.unit)} after {w.after} ({w.source})")
        for prm in step.parameters:
            spec = f" spec {prm.spec.describe(prm.unit)} [{prm.severity.value}]" if prm.spec else ""
            unit = f" ({prm.unit})" if prm.unit else ""
            src = f" <{prm.source}>" if prm.source else ""
            click.echo(f"      {prm.name}{unit}: {prm.label}{spec}{src}")
    click.echo("\nSources:")
    for s in p.sources:
        click.echo(f"  [{s.id}] {s.citation}" + (f" doi:{s.doi}" if s.doi else ""))


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
            for problem in err.problems:
                click.echo(str(problem), err=True)
        else:
            click.echo(f"{path}: ok ({p.id} v{p.version}, {len(p.steps)} steps)")
    if bad:
        raise click.ClickException(f"{bad} of {len(files)} file(s) have problems")


# --- checklist and record ----------------------------------------------------------------
FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["html", "md", "pdf"]), default="html", show_default=True
)
OUTPUT = click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE (needed for pdf)."
)


@main.command()
@click.argument("protocol_ref", metavar="PROTOCOL")
@FORMAT
@OUTPUT
@with_db
def checklist(svc: Service, protocol_ref: str, fmt: str, output: str | None) -> None:
    """Print the SOP checklist of a protocol (HTML for print, Markdown or PDF).

    \b
    Example:
      cmprep checklist cm-standard-serum-free --format pdf -o checklist.pdf
    """
    from cmprep.render import render_checklist

    _need_output(fmt, output)
    _write_or_print(render_checklist(svc.protocol(protocol_ref), fmt), output, "Checklist")


@main.command("record")
@click.argument("batch_id", metavar="BATCH")
@FORMAT
@OUTPUT
@with_db
def record_cmd(svc: Service, batch_id: str, fmt: str, output: str | None) -> None:
    """Render the batch record a QA reviewer signs.

    \b
    Example:
      cmprep record CM-20261129-001 --format html -o CM-20261129-001.html
    """
    from cmprep.render import render_record

    _need_output(fmt, output)
    b = svc.batch(batch_id)
    content = render_record(b, fmt, qc=svc.qc_summary(b), ledger_head=svc.ledger_head())
    _write_or_print(content, output, "Batch record")


# --- batches ---------------------------------------------------------------------------
@main.group()
def batch() -> None:
    """Start batches and record their steps in order."""


@batch.command("start")
@click.argument("protocol_ref", metavar="PROTOCOL")
@click.option("--id", "batch_id", default=None, help="Batch id (default CM-YYYYMMDD-NNN).")
@KEY
@with_actor
@with_db
def batch_start(
    svc: Service, protocol_ref: str, batch_id: str | None, key: str | None, actor: str
) -> None:
    """Start a batch from a protocol (a bundled id or a YAML file).

    \b
    Example:
      cmprep batch start cm-standard-serum-free --id LOT-042 --as alice
    """
    out = svc.start_batch(protocol_ref, actor, batch_id, key=key)
    b = out.batch
    if out.duplicate:
        click.echo(f"Already saved under key {key}: batch {b.id}; nothing new was written.")
        return
    click.echo(
        f"Batch {b.id} started from {b.protocol.id} v{b.protocol.version} "
        f"(hash {b.protocol_hash[:12]}) by {actor}."
    )
    _tell_next(b)


@batch.command("status")
@click.argument("batch_id", metavar="BATCH")
@TEXT_FORMAT
@with_db
def batch_status(svc: Service, batch_id: str, fmt: str) -> None:
    """Where a batch stands: steps done with their values, and what the step due needs.

    \b
    Example:
      cmprep batch status CM-20261129-001
    """
    from cmprep.views import status

    b = svc.batch(batch_id)
    if fmt == "json":
        _echo_json(status(b))
        return
    click.echo(f"Batch {b.id}: {b.protocol.id} v{b.protocol.version} (hash {b.protocol_hash[:12]})")
    click.echo(f"State: {b.state.replace('_', ' ')}; started by {b.started_by} at {b.started_at}")
    opened = b.open_deviations()
    if opened:
        click.echo("Open deviations: " + ", ".join(f"{d.id} ({d.severity})" for d in opened))
    for entry in b.steps.values():
        who = (
            f" by {entry.actor} at {entry.performed_at}"
            if entry.actor and entry.performed_at
            else ""
        )
        late = " LATE ENTRY" if entry.late else ""
        click.echo(
            f" {STATUS_MARK.get(entry.status, '?')} {entry.step.id:20} {entry.status}{who}{late}"
        )
        if entry.skip_reason:
            click.echo(f"      reason: {entry.skip_reason}")
        for v in entry.values.values():
            devs = f" {', '.join(v.deviation_ids)}" if v.deviation_ids else ""
            fixed = f" (corrected from {v.corrections[-1].old})" if v.corrections else ""
            click.echo(f"      {MARK.get(v.verdict, ' ')} {v.name} = {v.display}{fixed}{devs}")
        if entry.window:
            click.echo(f"      {MARK.get(entry.window.verdict, ' ')} {entry.window.message}")
    if not b.on_hold and not b.is_final:
        for step in b.due():
            needs = ", ".join(_need(p) for p in step.parameters)
            click.echo(f"Due: {step.id} ({step.title}); needs: {needs or 'no values'}")
            used = [f"--lot ({m})" for m in step.materials] + [
                f"--equipment ({k})" for k in step.equipment
            ]
            if used:
                click.echo(f"     and names what it used: {', '.join(used)}")
    else:
        _tell_next(b)


@batch.command("list")
@click.option("--state", default=None, help="Only batches in this state.")
@click.option("--protocol", "protocol_id", default=None, help="Only batches of this protocol.")
@TABLE_FORMAT
@with_db
def batch_list(svc: Service, state: str | None, protocol_id: str | None, fmt: str) -> None:
    """List batches.

    \b
    Example:
      cmprep batch list --state awaiting_review --format csv
    """
    rows = svc.batches(state=state, protocol_id=protocol_id)
    cols = [
        "batch_id",
        "protocol_id",
        "protocol_version",
        "state",
        "started_by",
        "started_at",
        "open_deviations",
    ]
    _table(rows, cols, fmt)


@batch.command("record")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@click.argument("values", nargs=-1, metavar="NAME=VALUE...")
@click.option("--note", default=None, help="A note for the record.")
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="When it was done, if earlier (ISO 8601 with zone).",
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
@with_db
def batch_record(
    svc: Service,
    batch_id: str,
    step: str,
    values: tuple[str, ...],
    note: str | None,
    at: str | None,
    lots: tuple[str, ...],
    equipment: tuple[str, ...],
    sign: bool,
    password_stdin: bool,
    key: str | None,
    actor: str,
) -> None:
    """Record a step's values. Out-of-spec values open deviations; impossible ones are refused.

    \b
    Example:
      cmprep batch record CM-20261129-001 spin rcf="400 x g" duration=10 temperature=4 --as alice
      cmprep batch record CM-20261129-001 collection volume=48 --at 2026-11-29T08:30Z --as alice
      cmprep batch record CM-20261129-001 spin rcf="1500 rpm" duration=10 temperature=4 --equipment CF-02
    """  # noqa: E501
    entries = _entries(values)
    password = read_password(password_stdin) if sign else None
    out = svc.record_step(
        batch_id,
        step,
        entries,
        actor,
        note=note,
        at=at,
        password=password,
        key=key,
        lots=list(lots),
        equipment=list(equipment),
    )
    if out.duplicate:
        click.echo(f"Already saved under key {key}; nothing new was written.")
        return
    _tell(
        out,
        f"Recorded {step} for batch {batch_id}" + (" and signed as performed." if sign else "."),
    )


@batch.command("skip")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@click.option("--reason", required=True, help="Why the optional step is skipped.")
@with_actor
@with_db
def batch_skip(svc: Service, batch_id: str, step: str, reason: str, actor: str) -> None:
    """Skip an optional step, with a reason.

    \b
    Example:
      cmprep batch skip CM-20261129-001 hypoxia --reason "normoxic arm of the study" --as alice
    """
    out = svc.skip_step(batch_id, step, actor, reason)
    _tell(out, f"Skipped {step} for batch {batch_id}.")


@batch.command("correct")
@click.argument("batch_id", metavar="BATCH")
@click.argument("step")
@click.argument("values", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option("--reason", required=True, help="Why the value is corrected.")
@with_actor
@with_db
def batch_correct(
    svc: Service, batch_id: str, step: str, values: tuple[str, ...], reason: str, actor: str
) -> None:
    """Correct a recorded value. The old value stays in the record, struck through.

    \b
    Example:
      cmprep batch correct CM-20261129-001 spin rcf=450 --reason "transcription error" --as alice
    """
    out = svc.correct(batch_id, step, _entries(values), actor, reason)
    _tell(out, f"Corrected {step} for batch {batch_id}.")


@batch.command("hold")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True)
@with_actor
@with_db
def batch_hold(svc: Service, batch_id: str, reason: str, actor: str) -> None:
    """Put a batch on hold; no step can be recorded until it is resumed.

    \b
    Example:
      cmprep batch hold CM-20261129-001 --reason "incubator alarm" --as alice
    """
    svc.hold(batch_id, actor, reason)
    click.echo(f"Batch {batch_id} is on hold.")


@batch.command("resume")
@click.argument("batch_id", metavar="BATCH")
@click.option("--reason", required=True)
@with_actor
@with_db
def batch_resume(svc: Service, batch_id: str, reason: str, actor: str) -> None:
    """Resume a batch on hold.

    \b
    Example:
      cmprep batch resume CM-20261129-001 --reason "alarm cleared, temperature log OK" --as alice
    """
    out = svc.resume(batch_id, actor, reason)
    click.echo(f"Batch {batch_id} resumed.")
    _tell_next(out.batch)


@batch.command("run")
@click.argument("batch_id", metavar="BATCH")
@with_actor
@with_db
def batch_run(svc: Service, batch_id: str, actor: str) -> None:
    """Guided mode: asks for each value of the step due, checks it as you type.

    Each step is saved when you confirm it; Ctrl-C loses nothing already confirmed.

    \b
    Example:
      cmprep batch run CM-20261129-001 --as alice
    """
    from cmprep.guided import run

    run(svc, batch_id, actor, tell=_tell)


# --- deviations ------------------------------------------------------------------------
@main.group()
def deviation() -> None:
    """Deviations: open, investigate, close (QA), show and list them."""


@deviation.command("list")
@click.option("--batch", "batch_id", default=None, help="Only this batch.")
@click.option("--protocol", "protocol_id", default=None)
@click.option("--step", default=None)
@click.option("--severity", type=click.Choice(["minor", "major", "critical"]), default=None)
@click.option("--status", type=click.Choice(["open", "investigated", "closed"]), default=None)
@click.option("--person", default=None, help="Only deviations opened by this person.")
@click.option(
    "--since", default=None, metavar="DATE", help="Opened on or after (YYYY-MM-DD or ISO time)."
)
@click.option(
    "--until", default=None, metavar="DATE", help="Opened before (YYYY-MM-DD or ISO time)."
)
@TABLE_FORMAT
@with_db
def deviation_list(
    svc: Service,
    batch_id: str | None,
    protocol_id: str | None,
    step: str | None,
    severity: str | None,
    status: str | None,
    person: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
) -> None:
    """List deviations, filtered; export as CSV or JSON.

    \b
    Example:
      cmprep deviation list --batch CM-20261129-001 --format csv > deviations.csv
      cmprep deviation list --status open --since 2026-11-01 --severity major
    """
    rows = svc.deviations(
        batch_id=batch_id,
        protocol_id=protocol_id,
        step=step,
        severity=severity,
        status=status,
        opened_by=person,
        since=_day(since, "--since"),
        until=_day(until, "--until"),
    )
    cols = [
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
    _table(rows, cols, fmt)


def _day(text: str | None, option: str) -> str | None:
    """A date or ISO time as the UTC text the store compares against."""
    if not text:
        return None
    from cmprep.service import iso
    from cmprep.validation import parse_time

    try:
        return iso(parse_time(text if "T" in text else text + "T00:00Z"))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def _table(rows: list[dict[str, Any]], cols: list[str], fmt: str) -> None:
    if fmt == "json":
        _echo_json(rows)
        return
    if fmt == "csv":
        import csv

        writer = csv.DictWriter(
            sys.stdout, fieldnames=cols, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _csv_safe(row.get(c)) for c in cols})
        return
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, "") or "")) for r in rows)) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "") or "").ljust(widths[c]) for c in cols).rstrip())


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in exported text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- maintenance -----------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("rebuild")
@with_db
def db_rebuild(svc: Service) -> None:
    """Rebuild the query tables (batches, deviations) from the event log.

    \b
    Example:
      cmprep db rebuild --db cmprep.db
    """
    n = svc.rebuild_projections()
    click.echo(f"Rebuilt the query tables from the event log of {n} batch(es).")


from cmprep import cli_qc, cli_quality  # noqa: E402,F401  (register their commands)
