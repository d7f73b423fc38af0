"""A protocol drawn as a flow diagram: its steps top to bottom, a branch's arms side by
side, optional steps dashed with a way round them, and each time window as a bracket from
the step it is counted from to the step it limits.

Why a layout of our own and not Graphviz: a protocol is a line of stages, each one step or
the arms of one branch, and a time window always points back up that line. A fixed grid
draws that exactly, the same bytes for the same protocol on every machine (a printed SOP
is a controlled document; its picture must not move between two prints), with nothing to
install: Graphviz is a system binary that a bench PC, a wheel and CI would all have to
carry, for a layout problem that has one answer.

Pure: takes the protocol model, returns SVG text with every piece of text escaped. Black
and grey only, so it prints the same in a browser and in WeasyPrint.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from cmprep.render.svg import num, truncate

if TYPE_CHECKING:  # read only: a document that draws no diagram does not load pydantic
    from cmprep.protocol.models import Protocol, Step

__all__ = ["flow_svg"]

BOX_W = 210.0  # a step's box
BOX_H = 48.0
COL_GAP = 14.0  # between the arms of a branch
ROW_GAP = 24.0  # between stages (arrows run here)
TOP = 30.0  # room for the title
SIDE = 30.0  # left margin: the way round an optional step runs here
LANE = 14.0  # each time window's bracket has a lane of its own right of the steps
LABEL_W = 170.0  # the windows' labels, right of the lanes
LINE_CHARS = 34  # a step title is wrapped at this many characters, on two lines at most


@dataclass(frozen=True)
class _Box:
    """One step's box in the flow diagram, where it is drawn."""

    step: Step
    number: str
    x: float
    y: float

    @property
    def cx(self) -> float:
        return self.x + BOX_W / 2

    @property
    def bottom(self) -> float:
        return self.y + BOX_H


def _layout(protocol: Protocol) -> tuple[list[list[_Box]], float]:
    """Each stage's boxes, centred on one axis, and the width of the widest stage."""
    stages = protocol.stages()
    widest = max(len(s) for s in stages)
    width = widest * BOX_W + (widest - 1) * COL_GAP
    rows: list[list[_Box]] = []
    for i, stage in enumerate(stages):
        span = len(stage) * BOX_W + (len(stage) - 1) * COL_GAP
        left = SIDE + (width - span) / 2
        y = TOP + i * (BOX_H + ROW_GAP)
        rows.append(
            [
                _Box(
                    step,
                    f"{i + 1}{'abcdefghijklmnopqrstuvwxyz'[j % 26]}"
                    if len(stage) > 1
                    else str(i + 1),
                    left + j * (BOX_W + COL_GAP),
                    y,
                )
                for j, step in enumerate(stage)
            ]
        )
    return rows, width


def _wrap(text: str) -> list[str]:
    """TEXT on at most two lines of LINE_CHARS, broken between words; the rest cut ("…")."""
    first: list[str] = []
    words = text.split()
    while words and len(" ".join([*first, words[0]])) <= LINE_CHARS:
        first.append(words.pop(0))
    if not first:  # one very long word
        return [truncate(text, LINE_CHARS)]
    rest = " ".join(words)
    return [" ".join(first), truncate(rest, LINE_CHARS)] if rest else [" ".join(first)]


def _attr(text: str) -> str:
    """TEXT safe inside a double-quoted attribute."""
    return escape(text, {'"': "&quot;"})


def _text(x: float, y: float, text: str, css: str = "", anchor: str = "middle") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<text x="{num(x)}" y="{num(y)}" text-anchor="{anchor}"{cls}>{escape(text)}</text>'


def _arrow(x1: float, y1: float, x2: float, y2: float, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<path d="M{num(x1)} {num(y1)} L{num(x2)} {num(y2)}" class="fl-edge"{dash} '
        'marker-end="url(#flow-arrow)"/>'
    )


def _box(box: _Box) -> list[str]:
    step = box.step
    dash = ' stroke-dasharray="5 3"' if step.optional else ""
    kind = " fl-optional" if step.optional else (" fl-arm" if step.branch else "")
    marks = [
        m for m in ("optional" if step.optional else "", "verified" if step.verify else "") if m
    ]
    sub = step.id + (f" · {', '.join(marks)}" if marks else "")
    lines = _wrap(f"{box.number}. {step.title}")
    return [
        f'<g class="fl-step{kind}" id="flow-{escape(step.id)}">',
        f"<title>{escape(f'{box.number} {step.title} ({step.id})')}</title>",
        f'<rect x="{num(box.x)}" y="{num(box.y)}" width="{num(BOX_W)}" height="{num(BOX_H)}" '
        f'rx="4" class="fl-box"{dash}/>',
        *(
            _text(box.cx, box.y + (16 if len(lines) > 1 else 21) + 13 * k, line, "fl-title")
            for k, line in enumerate(lines)
        ),
        _text(box.cx, box.y + 42, sub, "fl-id"),
        "</g>",
    ]


def _edges(rows: list[list[_Box]]) -> list[str]:
    """Arrows from each stage to the next: straight between two single steps; through a
    bar between the stages where a branch's arms fan out or meet again. An optional step
    gets a dashed way round it on the left: it may be skipped."""
    out: list[str] = []
    for above, below in pairwise(rows):
        if len(above) == 1 and len(below) == 1:
            out.append(_arrow(above[0].cx, above[0].bottom, below[0].cx, below[0].y - 2))
            continue
        mid = above[0].bottom + ROW_GAP / 2
        xs = [b.cx for b in above + below]
        out.append(f'<path d="M{num(min(xs))} {num(mid)} H{num(max(xs))}" class="fl-edge"/>')
        out += [
            f'<path d="M{num(a.cx)} {num(a.bottom)} V{num(mid)}" class="fl-edge"/>' for a in above
        ]
        out += [_arrow(b.cx, mid, b.cx, b.y - 2) for b in below]
        if len(below) > 1 and below[0].step.branch:
            label = f"branch {below[0].step.branch}: choose one"
            out.append(_text(below[0].x, mid - 3, label, "fl-note", "start"))
    for i, row in enumerate(rows):
        if len(row) == 1 and row[0].step.optional and 0 < i < len(rows) - 1:
            box, x = row[0], row[0].x - SIDE / 2
            top, bottom = box.y - ROW_GAP / 2, box.bottom + ROW_GAP / 2
            out.append(
                f'<path d="M{num(box.cx)} {num(top)} H{num(x)} V{num(bottom)} H{num(box.cx - 8)}" '
                'class="fl-edge fl-skip" stroke-dasharray="4 3" marker-end="url(#flow-arrow)"/>'
            )
            out.append(_text(x - 3, box.y + BOX_H / 2 + 3, "skip", "fl-note", "end"))
    return out


_Group = tuple[str, str, int, list[_Box]]  # (after, range text, row, boxes it limits)


def _window_groups(rows: list[list[_Box]]) -> list[_Group]:
    """The time windows to draw: one per step counted from, range and stage, so a
    branch's arms that share a window (each "<= 4 h after filtration") get one bracket."""
    row_of = {b.step.id: i for i, row in enumerate(rows) for b in row}
    groups: dict[tuple[str, str, int], list[_Box]] = {}
    for i, row in enumerate(rows):
        for box in row:
            w = box.step.window
            if w is not None and w.after in row_of:
                groups.setdefault((w.after, w.range.describe(w.unit), i), []).append(box)
    return [(after, text, i, boxes) for (after, text, i), boxes in groups.items()]


def _windows(rows: list[list[_Box]], groups: list[_Group], right: float) -> list[str]:
    """Each window as a bracket in a lane of its own right of the steps, from the stage
    it is counted from to the stage it limits (leaving a stage a little above its middle
    and arriving a little below, so two windows meeting at one step stay apart), with its
    range and what it counts from in a column right of every lane."""
    row_of = {b.step.id: i for i, row in enumerate(rows) for b in row}
    label_x = right + LANE * len(groups) + 8
    out: list[str] = []
    for lane, (after, text, i, boxes) in enumerate(groups):
        start, end = rows[row_of[after]], rows[i]
        x = right + LANE * (lane + 1)
        y1, y2 = start[0].y + BOX_H / 2 - 8, end[0].y + BOX_H / 2 + 8
        out.append(
            f'<path d="M{num(start[-1].x + BOX_W)} {num(y1)} H{num(x)} V{num(y2)} '
            f'H{num(end[-1].x + BOX_W + 2)}" class="fl-window" marker-end="url(#flow-arrow)"/>'
        )
        which = f" ({', '.join(b.number for b in boxes)})" if len(end) > 1 else ""
        mid = (y1 + y2) / 2
        out.append(_text(label_x, mid - 2, f"window {text}", "fl-wlabel", "start"))
        out.append(_text(label_x, mid + 10, f"after {after}{which}", "fl-note", "start"))
    return out


def flow_svg(protocol: Protocol, *, width: str = "", height: str = "") -> str:
    """The protocol's flow diagram as standalone SVG text (no script, no external refs).

    Every step appears once with its printed number (``9a`` for a branch's first arm, as
    the checklist numbers it), its title and its id; optional steps are dashed with a
    dashed way round them, a branch's arms sit side by side under a "choose one" note, and
    each time window is a bracket from the step it is counted from.

    WIDTH and HEIGHT (CSS lengths, e.g. ``100%`` and ``110mm``) fit the drawing into a
    printed page, keeping its proportions; without them it is drawn at its own size in px.
    """
    rows, span = _layout(protocol)
    label = f"Flow diagram of {protocol.id} v{protocol.version}"
    groups = _window_groups(rows)
    right = SIDE + span
    total_w = right + (LANE * len(groups) + LABEL_W if groups else SIDE)
    total_h = rows[-1][0].bottom + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow" '
        f'width="{_attr(width) or num(total_w)}" height="{_attr(height) or num(total_h)}" '
        f'viewBox="0 0 {num(total_w)} {num(total_h)}" role="img" '
        f'aria-label="{_attr(label)}">',
        "<style>"
        ".flow text{font-family:Helvetica,Arial,sans-serif;fill:#000}"
        ".flow .fl-title{font-size:11px;font-weight:bold}"
        ".flow .fl-id{font-size:9px;font-family:monospace;fill:#333}"
        ".flow .fl-note{font-size:9px;fill:#444}.flow .fl-wlabel{font-size:10px}"
        ".flow .fl-head{font-size:12px;font-weight:bold}"
        ".flow .fl-box{fill:#fff;stroke:#000;stroke-width:1.2}"
        ".flow .fl-arm .fl-box{fill:#f2f2f2}"
        ".flow .fl-edge{fill:none;stroke:#000;stroke-width:1}"
        ".flow .fl-window{fill:none;stroke:#666;stroke-width:1;stroke-dasharray:2 2}"
        "</style>",
        '<defs><marker id="flow-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0 0 L8 4 L0 8 z" fill="#000"/></marker></defs>',
        _text(SIDE, 18, f"{protocol.title} (v{protocol.version})", "fl-head", "start"),
    ]
    parts += _edges(rows)
    parts += [line for row in rows for box in row for line in _box(box)]
    parts += _windows(rows, groups, right)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
