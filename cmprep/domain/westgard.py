"""Westgard multirule QC on a lab's own batch history (Levey-Jennings).

A secretome QC result (VEGF, IL-6 ... in pg/mL) of each new batch is judged against the
mean and SD of the lab's earlier released batches. The classical rules, with "beyond"
meaning strictly past the limit (a point exactly on +2 SD is not beyond it):

- ``1-2s``  one point beyond +-2 SD (a warning only, ``rejection=False``)
- ``1-3s``  one point beyond +-3 SD
- ``2-2s``  two consecutive points beyond 2 SD on the same side
- ``R-4s``  two consecutive points, one beyond +2 SD and the other beyond -2 SD
- ``4-1s``  four consecutive points beyond 1 SD on the same side
- ``10-x``  ten consecutive points on the same side of the mean (a point on it breaks the run)

Each rule is reported once per index that completes it (the newest point involved), so
five consecutive points above +1 SD give ``4-1s`` at indices 3 and 4. Comparisons are made
as ``(x - mean) > k * sd`` in floating point. Pure standard library.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cmprep.domain.numbers import finite, format_number

__all__ = [
    "OPENER",
    "REJECTION_RULES",
    "RULES",
    "Violation",
    "baseline",
    "evaluate",
    "format_number",
    "is_opener",
    "new_point_violations",
    "opener",
]

RULES = ("1-2s", "1-3s", "2-2s", "R-4s", "4-1s", "10-x")
REJECTION_RULES = RULES[1:]
OPENER = "Westgard"  # a deviation a rule raises is opened by the system under the rule's name


def opener(rule: str) -> str:
    """Who opens the deviation RULE raises: ``Westgard 1-3s``. Never a person's name (a
    person's name has no space), so the technician who recorded the value is not blamed."""
    return f"{OPENER} {rule}"


def is_opener(name: str) -> bool:
    """Whether NAME is a rule that opened a deviation rather than a person."""
    return name.startswith(f"{OPENER} ") and name.split(" ", 1)[1] in RULES


@dataclass(frozen=True)
class Violation:
    """One rule broken by the series.

    ``index`` is the point that completes the rule (the newest point involved, 0-based)
    and ``indices`` all points involved, oldest first, ending with ``index``.
    """

    rule: str
    index: int
    indices: tuple[int, ...]
    rejection: bool
    message: str


def _series(values: Sequence[float]) -> list[float]:
    return [finite(f"value {i + 1}", v) for i, v in enumerate(values)]


def baseline(values: Sequence[float]) -> tuple[float, float]:
    """The mean and sample SD (n - 1) of a baseline series, e.g. the released batches.

    ValueError if there are fewer than two values, a value is not a finite number, or all
    values are equal (SD 0: no spread to judge new batches against).
    """
    xs = _series(values)
    if len(xs) < 2:
        raise ValueError(f"a baseline needs at least 2 values to estimate an SD, got {len(xs)}")
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs)
    if not sd > 0:
        raise ValueError(
            f"the baseline values are all equal ({format_number(xs[0])}): SD is 0, so no "
            "control limits can be set"
        )
    return mean, sd


def _check_limits(mean: float, sd: float) -> tuple[float, float]:
    mean = finite("mean", mean)
    sd = finite("sd", sd)
    if sd <= 0:
        raise ValueError(f"sd must be greater than 0, got {format_number(sd)}")
    return mean, sd


def _names(labels: Sequence[str] | None, n: int) -> list[str]:
    """What messages call each point: its label, or its 1-based position in the series."""
    if labels is None:
        return [str(i + 1) for i in range(n)]
    names = [str(label) for label in labels]
    if len(names) != n:
        raise ValueError(f"got {len(names)} labels for {n} values; give one label per value")
    return names


class _Context:
    def __init__(self, xs: list[float], mean: float, sd: float, names: list[str], unit: str):
        self.xs, self.mean, self.sd, self.names = xs, mean, sd, names
        self.unit = f" {unit}" if unit else ""
        self.limits = f"(mean {format_number(mean)}, SD {format_number(sd)}{self.unit})"

    def side(self, i: int, k: float) -> int:
        """+1 if point i is beyond +k SD, -1 if beyond -k SD, else 0 (k = 0: of the mean)."""
        d = self.xs[i] - self.mean
        limit = k * self.sd
        return 1 if d > limit else -1 if d < -limit else 0

    def value(self, i: int) -> str:
        return f"{format_number(self.xs[i])}{self.unit}"

    def violation(self, rule: str, indices: range, text: str) -> Violation:
        rejection = rule != "1-2s"
        return Violation(
            rule=rule,
            index=indices[-1],
            indices=tuple(indices),
            rejection=rejection,
            message=f"{rule}: {text} {self.limits}",
        )


def _limit(side: int, k: int) -> str:
    return f"{'above +' if side > 0 else 'below -'}{k} SD"


def _run(ctx: _Context, i: int, length: int, k: float) -> int:
    """The common side (+1/-1) of the `length` points ending at i beyond k SD, else 0."""
    if i + 1 < length:
        return 0
    first = ctx.side(i, k)
    if first == 0:
        return 0
    return first if all(ctx.side(j, k) == first for j in range(i - length + 1, i)) else 0


def _at(ctx: _Context, i: int) -> Iterator[Violation]:
    """The violations that point i completes, in the order of RULES."""
    names = ctx.names
    s2 = ctx.side(i, 2)
    if s2:
        yield ctx.violation(
            "1-2s", range(i, i + 1), f"batch {names[i]} ({ctx.value(i)}) {_limit(s2, 2)}, warning"
        )
    s3 = ctx.side(i, 3)
    if s3:
        yield ctx.violation(
            "1-3s", range(i, i + 1), f"batch {names[i]} ({ctx.value(i)}) {_limit(s3, 3)}"
        )
    if i >= 1 and s2:
        before = ctx.side(i - 1, 2)
        pair = range(i - 1, i + 1)
        if before == s2:
            yield ctx.violation(
                "2-2s", pair, f"batches {names[i - 1]} and {names[i]} both {_limit(s2, 2)}"
            )
        elif before == -s2:
            yield ctx.violation(
                "R-4s",
                pair,
                f"batch {names[i - 1]} {_limit(before, 2)} and batch {names[i]} "
                f"{_limit(s2, 2)}, a range over 4 SD",
            )
    s1 = _run(ctx, i, 4, 1)
    if s1:
        yield ctx.violation(
            "4-1s",
            range(i - 3, i + 1),
            f"batches {names[i - 3]} to {names[i]} all {_limit(s1, 1)}",
        )
    s0 = _run(ctx, i, 10, 0)
    if s0:
        side = "above" if s0 > 0 else "below"
        yield ctx.violation(
            "10-x",
            range(i - 9, i + 1),
            f"batches {names[i - 9]} to {names[i]} all {side} the mean",
        )


def evaluate(
    values: Sequence[float],
    mean: float,
    sd: float,
    *,
    labels: Sequence[str] | None = None,
    unit: str = "",
) -> list[Violation]:
    """Every violation in the series, in order of completing index (then in RULES order).

    ``labels`` name the batches in messages (one per value); without them a batch is named
    by its 1-based position in the series. ValueError if sd is not > 0 or a value, the
    mean or the SD is not a finite number.
    """
    mean, sd = _check_limits(mean, sd)
    xs = _series(values)
    ctx = _Context(xs, mean, sd, _names(labels, len(xs)), unit)
    return [v for i in range(len(xs)) for v in _at(ctx, i)]


def new_point_violations(
    history: Sequence[float],
    new: float,
    mean: float,
    sd: float,
    *,
    labels: Sequence[str] | None = None,
    unit: str = "",
) -> list[Violation]:
    """The rejection violations (never 1-2s) that ``new`` completes after ``history``.

    Every returned violation has ``index == len(history)``; the earlier points matter only
    as part of a run the new point completes. ``labels``, if given, name the history's
    batches and then the new one (``len(history) + 1`` labels).
    """
    mean, sd = _check_limits(mean, sd)
    xs = [*_series(history), finite("new value", new)]
    ctx = _Context(xs, mean, sd, _names(labels, len(xs)), unit)
    return [v for v in _at(ctx, len(xs) - 1) if v.rejection]
