"""Charts as hand-written SVG: the QC charts (Levey-Jennings, group comparison,
sparklines) and the audit report's Pareto charts. Their shared helpers are in
``cmprep.render.svg``.

Pure standard library and markupsafe (PNG output lazily imports cairosvg). Every chart has a fixed
viewBox, is black and grey with one accent colour for Westgard rejections, and escapes
every text it draws, so the string can be inlined into HTML (and WeasyPrint PDFs) as is.
Point markers carry ``class="point"`` (``class="point violation"`` for points involved in
a rejection rule) and the bars of a comparison ``class="bar"``, so tests and CSS can find
them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from markupsafe import escape as markup_escape

from cmprep.domain.numbers import finite, format_number
from cmprep.domain.westgard import RULES, Violation
from cmprep.errors import Hint, MissingExtra
from cmprep.render.svg import nice_step as _nice_step
from cmprep.render.svg import num as _n
from cmprep.render.svg import shorten as _shorten
from cmprep.render.svg import truncate

if TYPE_CHECKING:
    from cmprep.render.models import TrendView

__all__ = [
    "compare_svg",
    "levey_jennings_svg",
    "pareto_svg",
    "sparkline_svg",
    "svg_to_png",
    "trend_chart",
]

INK, GREY, LIGHT, BAND, ACCENT = "#000", "#666", "#b0b0b0", "#e6e6e6", "#b00020"
FONT = "DejaVu Sans, Arial, sans-serif"
_CHAR = 5.6  # the width of one 9-unit label character, roughly, in viewBox units
_MAX_LABEL = 14  # characters of a rotated x label shown before it is shortened
_LABEL_GAP = 16  # the least horizontal distance between two rotated x labels


def _with_unit(value: float, unit: str) -> str:
    return f"{format_number(value)} {unit}" if unit else format_number(value)


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def _open(width: float, height: float, css_class: str, label: str) -> list[str]:
    text = escape(label)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'width="{_n(width)}" height="{_n(height)}" class="{css_class}" role="img" '
        f'aria-label="{text}" font-family="{FONT}" font-size="10" fill="{INK}">',
        f"<title>{text}</title>",
    ]


def _x_labels(
    out: list[str], labels: list[str], xs: list[float], bottom: float, slot: float, y0: float
) -> None:
    """Category labels under the plot: horizontal when they fit, else rotated -45 degrees
    (truncated, and only every k-th one when they would overlap, always the last one)."""
    fits = int((slot - 4) / _CHAR)
    rotate = _rotated_labels(labels, slot)
    every = max(1, math.ceil(_LABEL_GAP / slot)) if rotate else 1
    n = len(labels)
    for i, (text, x) in enumerate(zip(labels, xs, strict=True)):
        if (n - 1 - i) % every:
            continue
        if rotate:
            out.append(
                f'<text transform="translate({_n(x + 3)} {_n(bottom + y0)}) rotate(-45)" '
                f'text-anchor="end" font-size="9" class="xlabel">'
                f"{escape(_shorten(text, _MAX_LABEL))}</text>"
            )
        else:
            out.append(
                f'<text x="{_n(x)}" y="{_n(bottom + y0 + 4)}" text-anchor="middle" font-size="9" '
                f'class="xlabel">{escape(_shorten(text, max(fits, 3)))}</text>'
            )


def _rotated_labels(labels: list[str], slot: float) -> bool:
    fits = int((slot - 4) / _CHAR)
    return max((len(t) for t in labels), default=0) > fits


def _label_room(labels: list[str], rotate: bool) -> float:
    """The height the x labels take under their baseline offset."""
    if not rotate:
        return 14
    longest = min(max((len(t) for t in labels), default=0), _MAX_LABEL)
    return math.ceil(longest * _CHAR * 0.72) + 8


def _y_axis(
    out: list[str],
    lo: float,
    hi: float,
    y_of: Callable[[float], float],
    left: float,
    right: float,
    unit: str,
    top: float,
    bottom: float,
) -> None:
    step = _nice_step(hi - lo)
    for tick in _ticks(lo, hi, step):
        y = _n(y_of(tick))
        out.append(f'<path d="M{_n(left - 4)} {y}H{_n(left)}" stroke="{INK}" stroke-width="0.8"/>')
        out.append(
            f'<text x="{_n(left - 6)}" y="{y}" dy="3.5" text-anchor="end">'
            f"{_tick_text(tick, step)}</text>"
        )
    if unit:
        mid = _n((top + bottom) / 2)
        out.append(
            f'<text transform="translate(13 {mid}) rotate(-90)" text-anchor="middle">'
            f"{escape(unit)}</text>"
        )
    out.append(
        f'<path d="M{_n(left)} {_n(top)}V{_n(bottom)}H{_n(right)}" fill="none" '
        f'stroke="{INK}" stroke-width="0.9" class="axis"/>'
    )


def _diamond(x: float, y: float, r: float) -> str:
    return f"M{_n(x)} {_n(y - r)}L{_n(x + r)} {_n(y)}L{_n(x)} {_n(y + r)}L{_n(x - r)} {_n(y)}Z"


# --- Levey-Jennings ---------------------------------------------------------------------

_LJ_W, _LJ_H = 640, 330
_LJ_LEFT, _LJ_RIGHT, _LJ_TOP = 58, 548, 50

# the control lines: (k, dash pattern, colour); the mean is solid black
_SD_LINES = (
    (3, "6 3", GREY),
    (2, "4 3", GREY),
    (1, "1.5 2.5", GREY),
)


def levey_jennings_svg(
    points: Sequence[tuple[str, float]],
    mean: float,
    sd: float,
    *,
    unit: str,
    title: str,
    violations: Sequence[Violation] = (),
    baseline_count: int | None = None,
) -> str:
    """A Levey-Jennings chart of ``[(batch label, value), ...]`` in batch order.

    The mean as a solid line and +-1, 2, 3 SD as dotted / dashed lines, each labelled at
    the right with its value; points joined by a thin line. A point involved in a
    rejection violation (``rejection=True``; 1-2s warnings are not marked) is a red open
    diamond, and the rule names are written next to the point that completes them. The
    y range always holds +-3.5 SD and every point. ``violations`` are indices into
    ``points`` (as from westgard.evaluate on the same values); ValueError if one is out
    of range, or sd is not > 0, or a number is not finite.
    """
    mean = finite("mean", mean)
    sd = finite("sd", sd)
    if sd <= 0:
        raise ValueError(f"sd must be greater than 0, got {format_number(sd)}")
    labels = [str(label) for label, _ in points]
    values = [finite(f"value of {label}", v) for label, v in points]
    n = len(values)
    involved: set[int] = set()
    ends: dict[str, set[int]] = {}  # rule -> the indices completing it
    for v in violations:
        if not v.rejection:
            continue
        for i in (*v.indices, v.index):
            if not 0 <= i < n:
                raise ValueError(f"{v.rule} refers to point {i} but the chart has {n} points")
        involved.update(v.indices)
        involved.add(v.index)
        ends.setdefault(v.rule, set()).add(v.index)
    # a rule is named at the point completing it, once per stretch of consecutive
    # completions (five points above +1 SD: "4-1s" once, at the fifth)
    completed: dict[int, list[str]] = {}
    order = {rule: k for k, rule in enumerate(RULES)}
    for rule in sorted(ends, key=lambda r: order.get(r, len(order))):
        for i in sorted(ends[rule]):
            if i + 1 not in ends[rule]:
                completed.setdefault(i, []).append(rule)

    out = _open(_LJ_W, _LJ_H, "levey-jennings-chart", title)
    out.append(
        f'<text x="{_LJ_LEFT}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>'
    )
    legend = f"mean {_with_unit(mean, unit)}, SD {_with_unit(sd, unit)}"
    if baseline_count is not None:
        plural = "batch" if baseline_count == 1 else "batches"
        legend += f", from {baseline_count} released {plural}"
    out.append(f'<text x="{_LJ_LEFT}" y="32" class="legend">{escape(legend)}</text>')
    if involved:
        lx = _LJ_RIGHT - 150
        out.append(
            f'<path d="{_diamond(lx, 28, 4.5)}" fill="none" stroke="{ACCENT}" '
            f'stroke-width="1.4"/><text x="{lx + 9}" y="32" fill="{ACCENT}">'
            "Westgard rejection rule</text>"
        )

    slot = (_LJ_RIGHT - _LJ_LEFT) / max(n, 1)
    rotate = _rotated_labels(labels, slot)
    bottom = _LJ_H - 10 - _label_room(labels, rotate)
    lo = min([mean - 3.5 * sd, *values])
    hi = max([mean + 3.5 * sd, *values])
    pad = (hi - lo) * 0.03
    lo, hi = lo - pad, hi + pad

    def y_of(value: float) -> float:
        return bottom - (bottom - _LJ_TOP) * (value - lo) / (hi - lo)

    # control lines, labelled at the right unless a label would collide with one placed
    placed: list[float] = []

    def line_label(y: float, text: str) -> None:
        if all(abs(y - p) >= 10 for p in placed):
            placed.append(y)
            out.append(
                f'<text x="{_LJ_RIGHT + 5}" y="{_n(y)}" dy="3.5" font-size="9" '
                f'class="sd-label">{escape(text)}</text>'
            )

    ym = y_of(mean)
    out.append(
        f'<path d="M{_LJ_LEFT} {_n(ym)}H{_LJ_RIGHT}" stroke="{INK}" stroke-width="1" '
        'class="mean-line"/>'
    )
    line_label(ym, f"mean {format_number(mean)}")
    for k, dash, colour in _SD_LINES:
        for sign in (1, -1):
            value = mean + sign * k * sd
            y = y_of(value)
            out.append(
                f'<path d="M{_LJ_LEFT} {_n(y)}H{_LJ_RIGHT}" stroke="{colour}" '
                f'stroke-width="0.8" stroke-dasharray="{dash}" class="sd-line"/>'
            )
            line_label(y, f"{'+' if sign > 0 else '-'}{k} SD {format_number(value)}")

    _y_axis(out, lo, hi, y_of, _LJ_LEFT, _LJ_RIGHT, unit, _LJ_TOP, bottom)

    if n == 0:
        out.append(
            f'<text x="{_n((_LJ_LEFT + _LJ_RIGHT) / 2)}" y="{_n((_LJ_TOP + bottom) / 2 - 8)}" '
            f'text-anchor="middle" fill="{GREY}">no data</text></svg>'
        )
        return "".join(out)

    xs = [_LJ_LEFT + slot * (i + 0.5) for i in range(n)]
    ys = [y_of(v) for v in values]
    _x_labels(out, labels, xs, bottom, slot, 10)
    if n > 1:
        path = " ".join(
            f"{'L' if i else 'M'}{_n(x)} {_n(y)}"
            for i, (x, y) in enumerate(zip(xs, ys, strict=True))
        )
        out.append(f'<path d="{path}" fill="none" stroke="{GREY}" stroke-width="0.8"/>')
    r = 3.0 if slot >= 8 else 2.0
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        tip = f"<title>{escape(labels[i])}: {escape(_with_unit(values[i], unit))}</title>"
        if i in involved:
            out.append(
                f'<path d="{_diamond(x, y, r + 2.2)}" fill="#fff" stroke="{ACCENT}" '
                f'stroke-width="1.5" class="point violation" data-index="{i}">{tip}</path>'
            )
        else:
            out.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" fill="{INK}" class="point" '
                f'data-index="{i}">{tip}</circle>'
            )
    for i, names in completed.items():
        text = escape(", ".join(names))
        above = ys[i] - 9 >= _LJ_TOP + 4
        ty = ys[i] - 9 if above else ys[i] + 16
        anchor = "end" if xs[i] > _LJ_RIGHT - 50 else "start"
        tx = xs[i] + (-6 if anchor == "end" else 6)
        out.append(
            f'<text x="{_n(tx)}" y="{_n(ty)}" text-anchor="{anchor}" font-size="9" '
            f'font-weight="bold" fill="{ACCENT}" class="rule-label">{text}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# --- comparison of groups ---------------------------------------------------------------

_CMP_W, _CMP_H = 640, 300
_CMP_LEFT, _CMP_RIGHT, _CMP_TOP = 58, 620, 34
_GOLDEN = 0.6180339887498949


def _mean_sd(xs: list[float]) -> tuple[float, float | None]:
    mean = math.fsum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    var = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var)


def compare_svg(groups: Mapping[str, Sequence[float]], *, unit: str, title: str) -> str:
    """One bar per group (its mean), an error bar of +-1 sample SD (none for a single
    value), the individual values as small dots spread sideways deterministically, and
    "n=" under each group label. The axis starts at 0 unless a value is negative. An
    empty dict (or only empty groups) draws "no data"; an empty group gets "n=0" and no bar.
    """
    names = [str(name) for name in groups]
    data = [
        [finite(f"value in {name}", v) for v in values]
        for name, values in zip(names, groups.values(), strict=True)
    ]
    out = _open(_CMP_W, _CMP_H, "compare-chart", title)
    out.append(
        f'<text x="{_CMP_LEFT}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>'
    )
    if not any(data):
        out.append(
            f'<text x="{_CMP_W // 2}" y="{_CMP_H // 2}" text-anchor="middle" fill="{GREY}">'
            "no data</text></svg>"
        )
        return "".join(out)

    stats = [_mean_sd(xs) if xs else None for xs in data]
    lows, highs = [0.0], [0.0]
    for xs, st in zip(data, stats, strict=True):
        if st is None:
            continue
        mean, sd = st
        spread = sd or 0.0
        lows += [*xs, mean - spread]
        highs += [*xs, mean + spread]
    step = _nice_step(max(highs) - min(lows) or 1.0, 5)
    lo = math.floor(min(lows) / step + 1e-9) * step
    hi = math.ceil(max(highs) / step - 1e-9) * step
    if hi <= lo:
        hi = lo + step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))  # of the tick labels

    slot = (_CMP_RIGHT - _CMP_LEFT) / len(names)
    rotate = _rotated_labels(names, slot)
    bottom = _CMP_H - 21 - _label_room(names, rotate)

    def y_of(value: float) -> float:
        return bottom - (bottom - _CMP_TOP) * (value - lo) / (hi - lo)

    y0 = y_of(0.0)
    width = min(slot * 0.6, 56)
    xs_center = [_CMP_LEFT + slot * (i + 0.5) for i in range(len(names))]
    for cx, xs, st, name in zip(xs_center, data, stats, names, strict=True):
        if st is not None:
            mean, sd = st
            ym = y_of(mean)
            top, height = min(ym, y0), abs(y0 - ym)
            out.append(
                f'<rect x="{_n(cx - width / 2)}" y="{_n(top)}" width="{_n(width)}" '
                f'height="{_n(height)}" fill="{BAND}" stroke="{INK}" stroke-width="0.6" '
                f'class="bar"><title>{escape(name)}: mean {escape(_with_unit(mean, unit))}'
                f"{'' if sd is None else ', SD ' + escape(_with_unit(sd, unit))}, n={len(xs)}"
                "</title></rect>"
            )
            if sd is not None and sd > 0:
                ya, yb = y_of(mean + sd), y_of(mean - sd)
                cap = min(width * 0.3, 8)
                out.append(
                    f'<path d="M{_n(cx)} {_n(ya)}V{_n(yb)}M{_n(cx - cap)} {_n(ya)}H{_n(cx + cap)}'
                    f'M{_n(cx - cap)} {_n(yb)}H{_n(cx + cap)}" stroke="{INK}" stroke-width="1" '
                    'fill="none" class="error-bar"/>'
                )
            spread = width * 0.34
            for j, x in enumerate(xs):
                offset = ((j * _GOLDEN + 0.5) % 1.0 - 0.5) * 2 * spread  # the first central
                out.append(
                    f'<circle cx="{_n(cx + offset)}" cy="{_n(y_of(x))}" r="2.1" fill="#fff" '
                    f'stroke="{INK}" stroke-width="0.9" class="value"/>'
                )
            label_y = min(y_of(mean + (sd or 0.0)), ym, y0, *(y_of(x) for x in xs)) - 5
            if label_y > _CMP_TOP - 6:
                shown = format_number(round(mean, decimals + 1))
                out.append(
                    f'<text x="{_n(cx)}" y="{_n(label_y)}" text-anchor="middle" font-size="9" '
                    f'class="mean-label">{escape(shown)}</text>'
                )
        out.append(
            f'<text x="{_n(cx)}" y="{_n(bottom + 12)}" text-anchor="middle" font-size="9" '
            f'fill="{GREY}" class="n-label">n={len(xs)}</text>'
        )
    _x_labels(out, names, xs_center, bottom, slot, 21)
    _y_axis(out, lo, hi, y_of, _CMP_LEFT, _CMP_RIGHT, unit, _CMP_TOP, bottom)
    if lo < 0:
        out.append(
            f'<path d="M{_CMP_LEFT} {_n(y0)}H{_CMP_RIGHT}" stroke="{INK}" stroke-width="0.6"/>'
        )
    out.append("</svg>")
    return "".join(out)


# --- sparkline ----------------------------------------------------------------------------


def sparkline_svg(
    values: Sequence[float],
    mean: float | None = None,
    sd: float | None = None,
    *,
    width: int = 160,
    height: int = 32,
) -> str:
    """A tiny trend for a table cell: the values as a thin line, the last one as a dot
    (red when it lies beyond +-2 SD), and with ``mean`` and ``sd`` a grey band for
    +-2 SD and a hairline at the mean. No text but "no data" when there are no values.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width} x {height}")
    xs = [finite(f"value {i + 1}", v) for i, v in enumerate(values)]
    m = None if mean is None else finite("mean", mean)
    s = None if sd is None else finite("sd", sd)
    if s is not None and s <= 0:
        raise ValueError(f"sd must be greater than 0, got {format_number(s)}")
    summary = f"last {format_number(xs[-1])}, n={len(xs)}" if xs else "no data"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="sparkline" role="img" '
        f'aria-label="{escape(summary)}" font-family="{FONT}">',
        f"<title>{escape(summary)}</title>",
    ]
    if not xs:
        out.append(
            f'<text x="{_n(width / 2)}" y="{_n(height / 2)}" dy="3" text-anchor="middle" '
            f'font-size="9" fill="{GREY}">no data</text></svg>'
        )
        return "".join(out)

    pad = 3.5
    lo, hi = min(xs), max(xs)
    if m is not None:
        lo, hi = min(lo, m), max(hi, m)
        if s is not None:
            lo, hi = min(lo, m - 2 * s), max(hi, m + 2 * s)
    if hi == lo:
        lo, hi = lo - 1, hi + 1

    def y_of(value: float) -> float:
        return height - pad - (height - 2 * pad) * (value - lo) / (hi - lo)

    def x_of(i: int) -> float:
        return width / 2 if len(xs) == 1 else pad + (width - 2 * pad) * i / (len(xs) - 1)

    if m is not None and s is not None:
        top, low = y_of(m + 2 * s), y_of(m - 2 * s)
        out.append(
            f'<rect x="0" y="{_n(top)}" width="{width}" height="{_n(low - top)}" '
            f'fill="{BAND}" class="band"/>'
        )
    if m is not None:
        out.append(f'<path d="M0 {_n(y_of(m))}H{width}" stroke="{LIGHT}" stroke-width="0.6"/>')
    if len(xs) > 1:
        path = " ".join(f"{'L' if i else 'M'}{_n(x_of(i))} {_n(y_of(x))}" for i, x in enumerate(xs))
        out.append(f'<path d="{path}" fill="none" stroke="{GREY}" stroke-width="1"/>')
    out_of_band = m is not None and s is not None and abs(xs[-1] - m) > 2 * s
    out.append(
        f'<circle cx="{_n(x_of(len(xs) - 1))}" cy="{_n(y_of(xs[-1]))}" r="2.4" '
        f'fill="{ACCENT if out_of_band else INK}" class="last"/>'
    )
    out.append("</svg>")
    return "".join(out)


# --- Pareto chart (the audit report) ------------------------------------------------------

_P_W, _P_H = 640, 270  # the fixed viewBox
_P_LEFT, _P_RIGHT, _P_TOP = 52, 588, 34  # the plot area's left, right and top edges
_P_MAX_BARS = 20
_P_BAR, _P_GRID = "#b0b0b0", "#d9d9d9"


def pareto_svg(rows: Sequence[dict[str, Any]], title: str) -> str:
    """A Pareto chart of ``[{name, count, ...}]`` as inline SVG.

    Bars by count, most first, each with its count; the cumulative % as a line with points.
    The left axis runs from 0 to the total and the right one from 0 to 100 %, so the first
    point sits on the first bar and the line ends at 100 %. Long category labels are
    rotated and truncated (the table under the chart gives them in full); past 20
    categories the rest are drawn as one "other" bar. A fixed viewBox, black and grey
    only, every text escaped; the bars are the only <rect> elements.
    """
    escape = markup_escape
    bars = sorted(rows, key=lambda r: -int(r["count"]))
    if len(bars) > _P_MAX_BARS:
        rest = bars[_P_MAX_BARS - 1 :]
        other = {"name": f"other ({len(rest)})", "count": sum(int(r["count"]) for r in rest)}
        bars = [*bars[: _P_MAX_BARS - 1], other]
    total = sum(int(r["count"]) for r in bars)
    label = escape(title)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_P_W} {_P_H}" width="{_P_W}" '
        f'height="{_P_H}" class="pareto-chart" role="img" aria-label="{label}" '
        f'font-family="{FONT}" font-size="10" fill="{INK}">',
        f"<title>{label}</title>",
        f'<text x="{_P_LEFT}" y="14" font-size="11.5" font-weight="bold">{label}</text>',
    ]
    if not bars or total <= 0:
        out.append(
            f'<text x="{_P_W // 2}" y="{_P_H // 2}" text-anchor="middle">'
            "No deviations in this period</text></svg>"
        )
        return "".join(out)

    slot = (_P_RIGHT - _P_LEFT) / len(bars)
    names = [" ".join(str(b["name"]).split()) for b in bars]
    fits = int((slot - 6) / _CHAR)  # characters a horizontal label has room for
    # horizontal when every label fits, or when a truncated one still says enough
    rotate = max(len(n) for n in names) > fits and fits < 14
    bottom = _P_H - (86 if rotate else 20)
    height = bottom - _P_TOP

    def y_of(count: float) -> float:  # the left axis: 0 .. total
        return bottom - height * count / total

    # legend (paths, not rects)
    lx = _P_RIGHT - 190
    out.append(
        f'<path d="M{lx} 6h10v10h-10z" fill="{_P_BAR}" stroke="{INK}" stroke-width="0.6"/>'
        f'<text x="{lx + 14}" y="15">count</text>'
        f'<path d="M{lx + 60} 11h22" stroke="{INK}" stroke-width="1.3" fill="none"/>'
        f'<circle cx="{lx + 71}" cy="11" r="2.6" fill="#fff" stroke="{INK}" stroke-width="1.1"/>'
        f'<text x="{lx + 88}" y="15">cumulative %</text>'
    )
    # grid and left axis (counts); the top tick is the total
    step = int(_nice_step(total, 5, least=1))
    ticks = [t for t in range(0, total, step) if total - t >= 0.12 * total or t == 0] + [total]
    for tick in ticks:
        y = _n(y_of(tick))
        out.append(f'<path d="M{_P_LEFT} {y}H{_P_RIGHT}" stroke="{_P_GRID}" stroke-width="0.5"/>')
        out.append(f'<text x="{_P_LEFT - 5}" y="{y}" dy="3.5" text-anchor="end">{tick}</text>')
    mid = _n(_P_TOP + height / 2)
    out.append(
        f'<text transform="translate(15 {mid}) rotate(-90)" text-anchor="middle">Deviations</text>'
    )
    # right axis (cumulative %)
    for pct in (0, 25, 50, 75, 100):
        y = _n(bottom - height * pct / 100)
        out.append(f'<path d="M{_P_RIGHT} {y}h4" stroke="{INK}" stroke-width="0.8"/>')
        out.append(f'<text x="{_P_RIGHT + 7}" y="{y}" dy="3.5">{pct} %</text>')
    out.append(
        f'<text transform="translate({_P_W - 6} {mid}) rotate(90)" text-anchor="middle">'
        "Cumulative %</text>"
    )
    # bars with their counts, and the category labels
    width = min(slot * 0.72, 64)
    running, points = 0, []
    for i, (b, name) in enumerate(zip(bars, names, strict=True)):
        count = int(b["count"])
        running += count
        cx = _P_LEFT + slot * (i + 0.5)
        top = y_of(count)
        points.append((cx, y_of(running)))
        out.append(
            f'<rect x="{_n(cx - width / 2)}" y="{_n(top)}" width="{_n(width)}" '
            f'height="{_n(bottom - top)}" fill="{_P_BAR}" stroke="{INK}" stroke-width="0.6">'
            f"<title>{escape(name)}: {count}</title></rect>"
        )
        # the count inside the bar's top when it fits, else just above it
        inside = bottom - top >= 22 and width >= 14
        ty = top + 16 if inside else top - 4
        out.append(
            f'<text x="{_n(cx)}" y="{_n(ty)}" text-anchor="middle" font-weight="bold">'
            f"{count}</text>"
        )
        if rotate:
            out.append(
                f'<text transform="translate({_n(cx + 3)} {bottom + 7}) rotate(-55)" '
                f'text-anchor="end" font-size="9">{escape(truncate(name, 18))}</text>'
            )
        else:
            out.append(
                f'<text x="{_n(cx)}" y="{bottom + 13}" text-anchor="middle" font-size="9">'
                f"{escape(truncate(name, max(fits, 3)))}</text>"
            )
    # the cumulative line and its points
    path = " ".join(f"{'L' if i else 'M'}{_n(px)} {_n(py)}" for i, (px, py) in enumerate(points))
    out.append(f'<path d="{path}" fill="none" stroke="{INK}" stroke-width="1.3"/>')
    for px, py in points:
        out.append(
            f'<circle cx="{_n(px)}" cy="{_n(py)}" r="2.8" fill="#fff" stroke="{INK}" '
            'stroke-width="1.1"/>'
        )
    # the axes over everything
    out.append(
        f'<path d="M{_P_LEFT} {_P_TOP - 4}V{bottom}H{_P_RIGHT}V{_P_TOP - 4}" fill="none" '
        f'stroke="{INK}" stroke-width="0.9"/>'
    )
    out.append("</svg>")
    return "".join(out)


# --- PNG ----------------------------------------------------------------------------------


def svg_to_png(svg: str, *, scale: float = 2.0) -> bytes:
    """The SVG rendered to PNG by cairosvg (imported here, so it is optional).

    MissingExtra if cairosvg (or the Cairo library under it) is not installed.
    """
    if not scale > 0:
        raise ValueError(f"scale must be greater than 0, got {scale}")
    try:
        import cairosvg
    except ImportError:
        raise MissingExtra(
            "PNG output needs cairosvg, which is not installed",
            hint=Hint("install_extra", extra="png", package="cairosvg"),
        ) from None
    except OSError as exc:  # cairosvg is there but the Cairo C library is not
        raise MissingExtra(
            f"PNG output needs cairosvg and the Cairo library ({exc})",
            hint=Hint("install_extra", extra="png", package="cairosvg"),
        ) from None
    png: bytes = cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=scale)
    return png


def trend_chart(view: TrendView, title: str) -> str:
    """The Levey-Jennings chart of a QC trend as the QC service returns it."""
    return levey_jennings_svg(
        [(b, v) for b, v, _ in view.points],
        view.mean,
        view.sd,
        unit=view.unit,
        title=title,
        violations=view.violations,
        baseline_count=view.baseline_count,
    )
