"""Text screens of the read models: a batch's status and the review by exception, as a
terminal shows them. Each takes the typed view the service built (the same one the JSON
output serialises) and only prints; nothing here reaches into a Batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from cmprep.cli.tell import MARK, STATUS_MARK

if TYPE_CHECKING:
    from cmprep.render.models import (
        DeviationView,
        ParameterNeeds,
        ReviewView,
        StatusView,
        ValueStatus,
    )

When = Callable[[str | None], str]  # a stored UTC time as the site reads it (common.when)


def _utc(text: str | None) -> str:
    return text or ""


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


def _value_line(name: str, val: ValueStatus, devs: dict[str, dict[str, Any]]) -> str:
    """'✓ rcf = 400 x g', or with its deviations: '✗ vegf = 640 pg/mL DEV-0010 (open;
    Westgard 1-3s)'. A value with a deviation not closed never carries a tick, whatever
    its own verdict: a rule over the lab's history may open one for an in-spec value."""
    named = [devs.get(d, {"deviation_id": d, "status": "open"}) for d in val.deviations]
    still_open = [d for d in named if d.get("status") != "closed"]
    mark = MARK["out of spec"] if still_open else MARK.get(val.verdict, " ")
    told = [
        f"{d['deviation_id']} ({d.get('status')}"
        + (f"; {rule}" if (rule := d.get("raised_by") or d.get("spec")) else "")
        + ")"
        for d in named
    ]
    fixed = f" (corrected from {val.corrections[-1].old})" if val.corrections else ""
    return f"      {mark} {name} = {val.display}{fixed}" + (f" {' '.join(told)}" if told else "")


def print_status(v: StatusView, when: When = _utc) -> None:
    """The status screen; WHEN shows each time as the site reads it (its time zone)."""
    p = v.protocol
    click.echo(f"Batch {v.batch}: {p.id} v{p.version} (hash {p.hash[:12]})")
    click.echo(
        f"State: {v.state.replace('_', ' ')}; started by {v.started_by} at {when(v.started_at)}"
    )
    opened = [d for d in v.deviations if d["status"] != "closed"]
    if opened:
        click.echo(
            "Open deviations: "
            + ", ".join(f"{d['deviation_id']} ({d['severity']})" for d in opened)
        )
    devs = {str(d["deviation_id"]): d for d in v.deviations}
    for entry in v.steps:
        at = when(entry.performed_at)
        who = f" by {entry.by} at {at}" if entry.by and entry.performed_at else ""
        late = " LATE ENTRY" if entry.late else ""
        click.echo(
            f" {STATUS_MARK.get(entry.status, '?')} {entry.step:20} {entry.status}{who}{late}"
        )
        if entry.skip_reason:
            click.echo(f"      reason: {entry.skip_reason}")
        for name, val in entry.values.items():
            click.echo(_value_line(name, val, devs))
            if val.formula:
                click.echo(f"          computed: {val.formula} ({', '.join(val.inputs)})")
        if entry.window:
            click.echo(f"      {MARK.get(entry.window.verdict, ' ')} {entry.window.message}")
    for title, lines in (("QC by route", v.route_lines), ("Conditional release", v.conditional)):
        if lines:
            click.echo(f"{title}:")
            for line in lines:
                click.echo(f"  {line}")
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


def review_sections(report: ReviewView, when: When = _utc) -> list[tuple[str, list[str]]]:
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


def print_review(report: ReviewView, when: When = _utc) -> None:
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


def print_deviation(d: DeviationView, when: When = _utc) -> None:
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
