"""The small helpers every hand-written SVG chart shares: short coordinates, tick steps
and label shortening.

Why one module: the QC charts and the audit report's Pareto charts once each had their own
copy (``_n`` and ``_num``, two ``_nice_step`` with different signatures), and a fix to one
never reached the other. Pure standard library, so the charts stay importable anywhere.
"""

from __future__ import annotations

import math

__all__ = ["nice_step", "num", "shorten", "truncate"]


def num(x: float) -> str:
    """A coordinate, short: 12.5, 40 (never 40.0, -0 or 1e-05)."""
    text = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def nice_step(span: float, target: int = 6, least: float = 0.0) -> float:
    """A tick step of 1, 2 or 5 x 10^k giving about `target` ticks over `span` (at most
    `target` when `span` is a whole count), never below `least`.

    The Pareto charts count deviations, so they ask for ``least=1``: no step of 0.5 for a
    total of 2.
    """
    raw = max(span / target, least) if span > 0 else max(1.0, least)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at the end: category names start with what
    tells them apart ("spin (Centrifugation...)")."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut in the middle: batch labels differ at the end
    ("CM-2026-LONG-0007" -> "CM-202…NG-0007"), so the end is kept."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 2)
    tail = (keep + 1) // 2
    return text[: keep - tail] + "…" + text[-tail:]
