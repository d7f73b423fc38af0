"""Text screens of the read models: a batch's status and the review by exception, as a
terminal shows them. Each takes the typed view the service built (the same one the JSON
output serialises) and only prints; nothing here reaches into a Batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cmprep.render.status_text import When, status_lines, utc

if TYPE_CHECKING:
    from cmprep.render.models import (
        DeviationView,
        ReviewView,
        StatusView,
    )


def print_status(v: StatusView, when: When = utc) -> None:
    """The status screen; WHEN shows each time as the site reads it (its time zone)."""
    for line in status_lines(v, when):
        click.echo(line)


def review_sections(report: ReviewView, when: When = utc) -> list[tuple[str, list[str]]]:
    """The review's sections as (title, lines), in the order a reviewer reads them; WHEN
    shows each time as the site reads it."""
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
                f"{c.step}.{c.parameter}: {c.old} -> {c.new} by {c.by} at {when(c.at)}: {c.reason}"
                for c in report.corrections
            ],
        ),
        ("Skipped steps", [f"{s.step} by {s.by}: {s.reason}" for s in report.skipped]),
        ("Branch arms not taken", list(report.not_taken)),
        (
            "Late entries",
            [
                f"{e.step}: performed {when(e.performed_at)}, entered {when(e.entered_at)} "
                f"by {e.by}"
                for e in report.late_entries
            ],
        ),
        (
            "Holds",
            [
                f"{when(h.at)} by {h.actor}: {h.reason}"
                + (f"; resumed {when(h.resumed_at)} by {h.resumed_by}" if h.resumed_at else "")
                for h in report.holds
            ],
        ),
        ("Missing verifications", list(report.missing_verifications)),
        (
            "Signatures",
            [
                f"{s.meaning}: {s.full_name} ({s.signer}) at {when(s.signed_at)} "
                f"on {s.subject['kind']} {s.subject['id']}"
                + (f" [SUPERSEDED: {s.superseded}]" if s.superseded else "")
                for s in report.signatures
            ],
        ),
    ]


def print_review(report: ReviewView, when: When = utc) -> None:
    click.echo(
        f"Review of batch {report.batch} ({report.protocol}), "
        f"state {report.state.replace('_', ' ')}"
    )
    for title, lines in review_sections(report, when):
        click.echo(f"\n{title}: {'none' if not lines else ''}")
        for line in lines:
            click.echo(f"  - {line}")
    if report.decision:  # released or rejected: that is the news, not "blocked"
        d = report.decision
        why = f": {d['reason']}" if d.get("reason") else ""
        click.echo(f"\n{str(d['decision']).capitalize()} on {when(d['at'])} by {d['by']}{why}")
        return
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


def print_deviation(d: DeviationView, when: When = utc) -> None:
    """A deviation as `deviation show` prints it: what, where, the investigation (with
    its impact on the product), the decision, and its history."""
    where = f"in batch {d.batch_id}" + (f", step {d.step}" if d.step else "")
    addendum = ", addendum after the decision" if d.addendum else ""
    click.echo(f"{d.deviation_id} ({d.severity}, {d.kind}{addendum}) {where}: {d.status}")
    if d.parameter:
        click.echo(f"  {d.parameter} = {d.value} (spec {d.spec})")
    click.echo(f"  {d.message}")
    inv = d.investigation
    if inv:
        click.echo(f"  Justification: {inv.get('justification')}")
        click.echo(f"  Impact: {inv.get('impact') or 'none stated'}")
    else:
        click.echo("  Impact: not assessed yet (no investigation)")
    if d.closure:
        capa = f", CAPA {d.closure['capa']}" if d.closure.get("capa") else ""
        click.echo(f"  Decision: {d.closure['decision']}{capa}: {d.closure.get('reason')}")
    for row in d.history:
        extra = f" — {row['why']}" if row["why"] else ""
        signature = f" [{row['signature']}]" if row["signature"] else ""
        click.echo(f"  {when(row['at'])} {row['who']}: {row['what']}{extra}{signature}")
