"""Text screens of the read models: a batch's status and the review by exception, as a
terminal shows them. Each takes the typed view the service built (the same one the JSON
output serialises) and only prints; nothing here reaches into a Batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cmprep.cli.tell import MARK, STATUS_MARK

if TYPE_CHECKING:
    from cmprep.render.models import ParameterNeeds, ReviewView, StatusView


def _need(p: ParameterNeeds) -> str:
    """'rcf (x g, spec 300-500 x g)', 'donor_id', 'note (optional)' (as tell.need)."""
    parts = [x for x in (p.unit, f"spec {p.spec}" if p.spec else "") if x]
    if not p.required:
        parts.append("optional")
    return f"{p.name} ({', '.join(parts)})" if parts else p.name


def _tell_next(v: StatusView) -> None:
    """What comes next, as tell.tell_next says it after a write."""
    if v.state == "on_hold":
        click.echo(f"Batch {v.batch} is on hold.")
        return
    if v.final or v.state == "awaiting_review":
        click.echo(f"Batch {v.batch}: all steps done; {v.state.replace('_', ' ')}.")
        return
    if len(v.due) == 1:
        click.echo(f"Next: {v.due[0].step} ({v.due[0].title}).")
    else:
        click.echo("Next: choose one of " + ", ".join(f"{s.step} ({s.title})" for s in v.due) + ".")


def print_status(v: StatusView) -> None:
    p = v.protocol
    click.echo(f"Batch {v.batch}: {p.id} v{p.version} (hash {p.hash[:12]})")
    click.echo(f"State: {v.state.replace('_', ' ')}; started by {v.started_by} at {v.started_at}")
    opened = [d for d in v.deviations if d["status"] != "closed"]
    if opened:
        click.echo(
            "Open deviations: "
            + ", ".join(f"{d['deviation_id']} ({d['severity']})" for d in opened)
        )
    for entry in v.steps:
        who = f" by {entry.by} at {entry.performed_at}" if entry.by and entry.performed_at else ""
        late = " LATE ENTRY" if entry.late else ""
        click.echo(
            f" {STATUS_MARK.get(entry.status, '?')} {entry.step:20} {entry.status}{who}{late}"
        )
        if entry.skip_reason:
            click.echo(f"      reason: {entry.skip_reason}")
        for name, val in entry.values.items():
            devs = f" {', '.join(val.deviations)}" if val.deviations else ""
            fixed = f" (corrected from {val.corrections[-1].old})" if val.corrections else ""
            click.echo(f"      {MARK.get(val.verdict, ' ')} {name} = {val.display}{fixed}{devs}")
        if entry.window:
            click.echo(f"      {MARK.get(entry.window.verdict, ' ')} {entry.window.message}")
    if v.state == "on_hold" or v.final:
        _tell_next(v)
        return
    for step in v.due:
        needs = ", ".join(_need(p) for p in step.parameters)
        click.echo(f"Due: {step.step} ({step.title}); needs: {needs or 'no values'}")
        used = [f"--lot ({m})" for m in step.materials] + [
            f"--equipment ({k})" for k in step.equipment
        ]
        if used:
            click.echo(f"     and names what it used: {', '.join(used)}")


def review_sections(report: ReviewView) -> list[tuple[str, list[str]]]:
    """The review's sections as (title, lines), in the order a reviewer reads them."""
    return [
        (
            "Out of spec",
            [
                f"{r.step}.{r.parameter} = {r.value} (spec {r.spec}) {' '.join(r.deviations)}"
                for r in report.out_of_spec
            ],
        ),
        ("Alerts", [f"{r.step}.{r.parameter}: {r.message}" for r in report.alerts]),
        (
            "Deviations",
            [
                f"{d.id} {d.severity} at {d.step} ({d.kind}): {d.status}"
                + (f", {d.decision}" if d.decision else "")
                for d in report.deviations
            ],
        ),
        (
            "Corrections",
            [
                f"{c.step}.{c.parameter}: {c.old} -> {c.new} by {c.by} at {c.at}: {c.reason}"
                for c in report.corrections
            ],
        ),
        ("Skipped steps", [f"{s.step} by {s.by}: {s.reason}" for s in report.skipped]),
        (
            "Late entries",
            [
                f"{e.step}: performed {e.performed_at}, entered {e.entered_at} by {e.by}"
                for e in report.late_entries
            ],
        ),
        (
            "Holds",
            [
                f"{h.at} by {h.actor}: {h.reason}"
                + (f"; resumed {h.resumed_at} by {h.resumed_by}" if h.resumed_at else "")
                for h in report.holds
            ],
        ),
        ("Missing verifications", list(report.missing_verifications)),
        (
            "Signatures",
            [
                f"{s.meaning}: {s.full_name} ({s.signer}) at {s.signed_at} "
                f"on {s.subject['kind']} {s.subject['id']}"
                for s in report.signatures
            ],
        ),
    ]


def print_review(report: ReviewView) -> None:
    click.echo(
        f"Review of batch {report.batch} ({report.protocol}), "
        f"state {report.state.replace('_', ' ')}"
    )
    for title, lines in review_sections(report):
        click.echo(f"\n{title}: {'none' if not lines else ''}")
        for line in lines:
            click.echo(f"  - {line}")
    blockers = report.release_blockers
    click.echo("\nRelease: " + ("ready for QA release" if not blockers else "blocked by"))
    for b in blockers:
        click.echo(f"  - {b}")


def print_protocol(p: Any, content_hash: str | None = None) -> None:
    """A protocol's steps, parameters, specs and sources, as `protocol show` prints it.
    CONTENT_HASH: the stored content's, when the status shown is the database's."""
    digest = content_hash or p.content_hash()
    click.echo(f"{p.title}\n{p.id} v{p.version} ({p.status}), hash {digest[:12]}\n")
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
