"""The checks between the parts of a protocol: sources named, windows after earlier steps,
branches whole, formulas reading numbers recorded before them in units that work out,
routes naming arms of the downstream branch.

Why apart from the schema: they read the whole protocol as the engine holds it (the plain
models), so they are written once, against those, and the schema calls them after each part
has passed its own checks. Each problem carries its place in the file (``Loc``), so the
loader can give its line.
"""

from __future__ import annotations

from cmprep.protocol import expressions
from cmprep.protocol.models import DOWNSTREAM_BRANCH, SITE_CHOICE, Protocol, Step

# Where something is in a protocol document: the keys and item numbers leading to it, as
# pydantic gives a validation error's place (("steps", 3, "parameters", 0, "spec")).
Loc = tuple[str | int, ...]


class CrossReferenceError(ValueError):
    """Problems between parts of a protocol, each with its place (for the loader's lines)."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


def cross_reference_problems(protocol: Protocol) -> list[tuple[Loc, str]]:
    """Every problem between the parts of PROTOCOL, each with its place in the file: step
    ids, sources, windows, branches, formulas and routes. Empty: none."""
    problems: list[tuple[Loc, str]] = []  # (place in the file, message)
    ids = [s.id for s in protocol.steps]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        second = [n for n, i in enumerate(ids) if i == dup][1]
        problems.append((("steps", second, "id"), f"duplicate step ids: {dup}"))
    source_ids = {s.id for s in protocol.sources}
    for n, step in enumerate(protocol.steps):
        for k, p in enumerate(step.parameters):
            if p.source and p.source != SITE_CHOICE and p.source not in source_ids:
                problems.append(
                    (
                        ("steps", n, "parameters", k, "source"),
                        f"step {step.id}, parameter {p.name}: source {p.source!r} is not "
                        f"among the protocol's sources ({', '.join(sorted(source_ids))}) "
                        f"nor {SITE_CHOICE!r}",
                    )
                )
        if step.window:
            w = step.window
            if w.after not in ids or ids.index(w.after) >= n:
                problems.append(
                    (
                        ("steps", n, "window", "after"),
                        f"step {step.id}: window.after {w.after!r} is not an earlier step",
                    )
                )
            if w.source != SITE_CHOICE and w.source not in source_ids:
                problems.append(
                    (
                        ("steps", n, "window", "source"),
                        f"step {step.id}: window source {w.source!r} is unknown",
                    )
                )
    # branches: consecutive arms, at least two
    groups: dict[str, list[int]] = {}
    for i, step in enumerate(protocol.steps):
        if step.branch:
            groups.setdefault(step.branch, []).append(i)
    for name, idx in groups.items():
        where = ("steps", idx[0], "branch")
        if len(idx) < 2:
            problems.append(
                (
                    where,
                    f"branch {name!r} has one arm ({protocol.steps[idx[0]].id}); "
                    "a branch needs two or more",
                )
            )
        if idx != list(range(idx[0], idx[0] + len(idx))):
            problems.append((where, f"branch {name!r}: its arms must be consecutive steps"))
        if name in ids:
            problems.append((where, f"branch {name!r} has the name of a step"))
    problems.extend(_derived_problems(protocol))
    problems.extend(_route_problems(protocol, source_ids))
    return problems


def _derived_problems(protocol: Protocol) -> list[tuple[Loc, str]]:
    """Every formula reads numbers recorded before it, and its units work out.

    A name is a parameter of the same step declared above it (a derived value may use
    another), or ``step.name`` of a step in an earlier stage, or ``branch.name`` where every
    arm of an earlier branch has that parameter in units of one kind."""
    problems: list[tuple[Loc, str]] = []
    stage_of: dict[str, int] = {}
    for number, stage in enumerate(protocol.stages()):
        for s in stage:
            stage_of[s.id] = number
            if s.branch:
                stage_of[s.branch] = number
    for n, step in enumerate(protocol.steps):
        for k, param in enumerate(step.parameters):
            node = param.formula
            if node is None:
                continue
            where: Loc = ("steps", n, "parameters", k, "derived")
            said = f"step {step.id}, parameter {param.name}"
            kinds: dict[expressions.Name, expressions.Kind] = {}
            wrong: list[str] = []
            for name in expressions.names(node):
                if name in kinds or name.text in wrong:
                    continue
                problem = _input_problem(protocol, step, k, name, stage_of)
                if problem:
                    wrong.append(name.text)
                    problems.append((where, f"{said}: {name.text} {problem}"))
                    continue
                found = protocol.inputs_of(step, name)
                arm_kinds = {expressions.kind_of(p.unit).dims for _, p in found}
                if len(arm_kinds) > 1:
                    wrong.append(name.text)
                    units_named = ", ".join(f"{s.id}: {p.unit or 'no unit'}" for s, p in found)
                    problems.append(
                        (
                            where,
                            f"{said}: {name.text} is in units of different kinds in the "
                            f"arms of {name.step} ({units_named})",
                        )
                    )
                    continue
                kinds[name] = expressions.kind_of(found[0][1].unit)
            if wrong:
                continue
            try:
                expressions.check_result(node, kinds.__getitem__, param.unit)
            except expressions.ExpressionError as err:
                problems.append((where, f"{said}: {err}"))
    return problems


def _input_problem(
    protocol: Protocol, step: Step, index: int, name: expressions.Name, stage_of: dict[str, int]
) -> str | None:
    """Why NAME cannot be read by the formula of the INDEX-th parameter of STEP, or None."""
    found = protocol.inputs_of(step, name)
    own = name.step is None or name.step == step.id
    if own:
        if not found:
            known = ", ".join(p.name for p in step.parameters) or "none"
            return f"is not a parameter of step {step.id} (its parameters: {known})"
        position = step.parameters.index(found[0][1])
        if position == index:
            return "is the derived value itself"
        if found[0][1].derived is not None and position > index:
            return "is derived below this one; list it first"
    else:
        assert name.step is not None
        if name.step not in stage_of:
            return f"names {name.step!r}, which is neither a step nor a branch of this protocol"
        if stage_of[name.step] >= stage_of[step.id]:
            return f"names {name.step!r}, which is not done before step {step.id}"
        arms = [s for s in protocol.steps if s.id == name.step or s.branch == name.step]
        if len(found) < len(arms):
            missing = ", ".join(s.id for s in arms if s.parameter(name.name) is None)
            return f"is not a parameter of {missing}"
    for s, p in found:
        if not p.is_numeric:
            return f"is a {p.type.value} parameter of step {s.id}; a formula reads numbers"
    return None


def _route_problems(protocol: Protocol, source_ids: set[str]) -> list[tuple[Loc, str]]:
    """A route spec names an arm of the ``downstream`` branch, and a known source; a step
    used before QC has a step with a release test after it."""
    arms = [s.id for s in protocol.steps if s.branch == DOWNSTREAM_BRANCH]
    problems: list[tuple[Loc, str]] = []
    for n, step in enumerate(protocol.steps):
        for k, p in enumerate(step.parameters):
            for route, rs in (p.route_specs or {}).items():
                where: Loc = ("steps", n, "parameters", k, "route_specs", route)
                if route not in arms:
                    known = ", ".join(arms) or f"none: the protocol has no {DOWNSTREAM_BRANCH!r}"
                    problems.append(
                        (
                            where,
                            f"step {step.id}, parameter {p.name}: route {route!r} is not "
                            f"an arm of the {DOWNSTREAM_BRANCH!r} branch ({known})",
                        )
                    )
                if rs.source and rs.source != SITE_CHOICE and rs.source not in source_ids:
                    problems.append(
                        (
                            where,
                            f"step {step.id}, parameter {p.name}: route spec source "
                            f"{rs.source!r} is unknown",
                        )
                    )
        later = protocol.steps[n + 1 :]
        if step.use_before_qc and not any(
            p.method is not None and p.spec is not None for s in later for p in s.parameters
        ):
            problems.append(
                (
                    ("steps", n, "use_before_qc"),
                    f"step {step.id} is used before QC, but no step after it has a release "
                    "test (a parameter with a method and a spec)",
                )
            )
    return problems
