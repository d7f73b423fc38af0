"""Text screens of the read models: a batch's status and the review by exception, as a
terminal shows them. Each takes what the service returned and only prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cmprep.cli.tell import MARK, STATUS_MARK, need, tell_next

if TYPE_CHECKING:
    from cmprep.domain.batch import Batch


def print_status(b: Batch) -> None:
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
    if b.on_hold or b.is_final:
        tell_next(b)
        return
    for step in b.due():
        needs = ", ".join(need(p) for p in step.parameters)
        click.echo(f"Due: {step.id} ({step.title}); needs: {needs or 'no values'}")
        used = [f"--lot ({m})" for m in step.materials] + [
            f"--equipment ({k})" for k in step.equipment
        ]
        if used:
            click.echo(f"     and names what it used: {', '.join(used)}")


def review_sections(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The review's sections as (title, lines), in the order a reviewer reads them."""
    return [
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
        ("Missing verifications", list(report["missing_verifications"])),
        (
            "Signatures",
            [
                f"{s['meaning']}: {s['full_name']} ({s['signer']}) at {s['signed_at']} "
                f"on {s['subject']['kind']} {s['subject']['id']}"
                for s in report["signatures"]
            ],
        ),
    ]


def print_review(report: dict[str, Any]) -> None:
    click.echo(
        f"Review of batch {report['batch']} ({report['protocol']}), "
        f"state {report['state'].replace('_', ' ')}"
    )
    for title, lines in review_sections(report):
        click.echo(f"\n{title}: {'none' if not lines else ''}")
        for line in lines:
            click.echo(f"  - {line}")
    blockers = report["release_blockers"]
    click.echo("\nRelease: " + ("ready for QA release" if not blockers else "blocked by"))
    for b in blockers:
        click.echo(f"  - {b}")


def print_protocol(p: Any) -> None:
    """A protocol's steps, parameters, specs and sources, as `protocol show` prints it."""
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
