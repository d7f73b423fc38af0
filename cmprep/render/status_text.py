"""The status screen as lines of text: where a batch stands, as a terminal shows it.

Apart from the shells so both can print it: the command line through click, and the
quick path of ``batch status`` (``cmprep/quick.py``), which answers the question asked
most at the bench without loading click. It takes the typed view the service built (the
one the JSON output serialises) and only formats; nothing here reaches into a Batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmprep.render.status import ParameterNeeds, StatusView, ValueStatus

When = Callable[[str | None], str]  # a stored UTC time as the site reads it

MARK = {"in spec": "✓", "alert": "⚠", "out of spec": "✗"}
STATUS_MARK = {"done": "✓", "skipped": "–", "not taken": " ", "due": "→", "pending": "·"}


def utc(text: str | None) -> str:
    """A stored time as it is stored (UTC): the default of every screen."""
    return text or ""


def need_text(name: str, unit: str | None, spec: str | None, required: bool) -> str:
    """What a step asks for, one parameter: 'rcf (x g, spec 300-500 x g)', 'donor_id',
    'note (optional)'; as a status says it and as the command line says it after a write."""
    parts = [x for x in (unit, f"spec {spec}" if spec else "") if x]
    if not required:
        parts.append("optional")
    return f"{name} ({', '.join(parts)})" if parts else name


def need(p: ParameterNeeds) -> str:
    """A due step's parameter, as the status says what it needs."""
    return need_text(p.name, p.unit, p.spec, p.required)


def next_line(v: StatusView) -> str:
    """What comes next, as tell.tell_next says it after a write."""
    if v.state == "on_hold":
        return f"Batch {v.batch} is on hold."
    if v.final or v.state == "awaiting_review":
        return f"Batch {v.batch}: all steps done; {v.state.replace('_', ' ')}."
    if len(v.due) == 1:
        return f"Next: {v.due[0].step} ({v.due[0].title})."
    return "Next: choose one of " + ", ".join(f"{s.step} ({s.title})" for s in v.due) + "."


def value_line(name: str, val: ValueStatus, devs: dict[str, dict[str, Any]]) -> str:
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


def status_lines(v: StatusView, when: When = utc) -> list[str]:
    """The status screen, line by line; WHEN shows each time as the site reads it."""
    p = v.protocol
    out = [
        f"Batch {v.batch}: {p.id} v{p.version} (hash {p.hash[:12]})",
        f"State: {v.state.replace('_', ' ')}; started by {v.started_by} at {when(v.started_at)}",
    ]
    opened = [d for d in v.deviations if d["status"] != "closed"]
    if opened:
        out.append(
            "Open deviations: "
            + ", ".join(f"{d['deviation_id']} ({d['severity']})" for d in opened)
        )
    devs = {str(d["deviation_id"]): d for d in v.deviations}
    for entry in v.steps:
        at = when(entry.performed_at)
        who = f" by {entry.by} at {at}" if entry.by and entry.performed_at else ""
        late = " LATE ENTRY" if entry.late else ""
        out.append(
            f" {STATUS_MARK.get(entry.status, '?')} {entry.step:20} {entry.status}{who}{late}"
        )
        if entry.skip_reason:
            out.append(f"      reason: {entry.skip_reason}")
        for name, val in entry.values.items():
            out.append(value_line(name, val, devs))
            if val.formula:
                out.append(f"          computed: {val.formula} ({', '.join(val.inputs)})")
        if entry.window:
            out.append(f"      {MARK.get(entry.window.verdict, ' ')} {entry.window.message}")
    for title, lines in (("QC by route", v.route_lines), ("Conditional release", v.conditional)):
        if lines:
            out.append(f"{title}:")
            out.extend(f"  {line}" for line in lines)
    if v.state == "on_hold" or v.final:
        out.append(next_line(v))
        return out
    for step in v.due:
        needs = ", ".join(need(p) for p in step.parameters)
        out.append(f"Due: {step.step} ({step.title}); needs: {needs or 'no values'}")
        used = [f"--lot ({m})" for m in step.materials] + [
            f"--equipment ({k})" for k in step.equipment
        ]
        if used:
            out.append(f"     and names what it used: {', '.join(used)}")
    return out
