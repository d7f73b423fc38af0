"""A lineage tree as the terminal and the page show it: indented lines, JSON, and an SVG
drawing of the graph.

Takes a ``LineageView`` the service built from the recursive walk of the store and the
materials' fold; never fetches. Pure standard library, so it loads anywhere; every text
put into the SVG is escaped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from xml.sax.saxutils import escape

from cmprep.render.svg import num, truncate

DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class LineageNode:
    """One material as a tree shows it."""

    lot: str
    kind: str
    material: str
    status: str
    quantity: str | None
    remaining: str | None
    unit: str | None
    passage: int | None
    batch_id: str | None
    step: str | None
    expiry: str | None


@dataclass(frozen=True)
class LineageEdge:
    """PARENT was drawn from (DRAWN of its UNIT) to make CHILD, by "@materials" event SEQ."""

    parent: str
    child: str
    seq: int
    drawn: str | None
    unit: str | None


@dataclass(frozen=True)
class LineageView:
    """A tree from ROOT: ``down`` to everything made from it, ``up`` to everything it was
    made from. NODES has the root and every lot an edge names."""

    root: str
    direction: str
    nodes: dict[str, LineageNode]
    edges: list[LineageEdge]

    def as_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": [asdict(n) for n in self.nodes.values()],
            "edges": [asdict(e) for e in self.edges],
        }


def _next(view: LineageView) -> dict[str, list[LineageEdge]]:
    """Edges by the lot they leave in the walk's direction, in seq order."""
    out: dict[str, list[LineageEdge]] = {}
    for e in view.edges:
        out.setdefault(e.parent if view.direction == "down" else e.child, []).append(e)
    return out


def _far(view: LineageView, e: LineageEdge) -> str:
    return e.child if view.direction == "down" else e.parent


def tree_rows(view: LineageView) -> list[dict[str, Any]]:
    """The tree as rows (depth first, in the order things were made), each lot indented
    under the one it was drawn from (down) or made into (up). A lot reached a second way
    (a pool) is listed again, marked, without its subtree."""
    nexts, rows, seen = _next(view), [], set()

    def visit(lot: str, depth: int, edge: LineageEdge | None) -> None:
        node = view.nodes[lot]
        again = lot in seen
        seen.add(lot)
        drawn = f"{edge.drawn} {edge.unit or ''}".strip() if edge and edge.drawn else ""
        rows.append(
            {
                "tree": "  " * depth
                + ("└ " if depth else "")
                + lot
                + (" (above)" if again else ""),
                "kind": node.kind,
                "status": node.status,
                "remaining": f"{node.remaining} {node.unit}" if node.remaining else "",
                "drawn": drawn,
                "passage": "" if node.passage is None else node.passage,
                "batch": node.batch_id or "",
                "step": node.step or "",
            }
        )
        if not again:
            for e in nexts.get(lot, []):
                visit(_far(view, e), depth + 1, e)

    visit(view.root, 0, None)
    return rows


TREE_COLUMNS = ["tree", "kind", "status", "remaining", "drawn", "passage", "batch", "step"]

# drawing: one column per generation, one row per lot in it
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 46, 60, 14, 12
STATUS_FILL = {
    "released": "#ffffff",
    "quarantine": "#eeeeee",
    "rejected": "#bbbbbb",
    "consumed": "#f6f6f6",
    "destroyed": "#bbbbbb",
}


def layers(view: LineageView) -> dict[str, int]:
    """Each lot's generation from the root: the longest path to it, so a pooled lot
    stands right of every input. Edges come in seq order and a lot is always made after
    what it was made from, so one pass over them in make order is enough."""
    depth = {view.root: 0}
    ordered = view.edges if view.direction == "down" else list(reversed(view.edges))
    for e in ordered:
        near, far = (e.parent, e.child) if view.direction == "down" else (e.child, e.parent)
        if near in depth:
            depth[far] = max(depth.get(far, 0), depth[near] + 1)
    return depth


def lineage_svg(view: LineageView) -> str:
    """The tree as a standalone SVG: boxes (lot, kind, status, what remains) in one column
    per generation, lines from each input to what it made, labelled with the quantity
    drawn. Greys only, so it prints as it shows."""
    depth = layers(view)
    columns: dict[int, list[str]] = {}
    for lot in view.nodes:
        if lot in depth:
            columns.setdefault(depth[lot], []).append(lot)
    where: dict[str, tuple[float, float]] = {}
    for d, lots in columns.items():
        for i, lot in enumerate(lots):
            where[lot] = (PAD + d * (BOX_W + GAP_X), PAD + i * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(v) for v in columns.values()), default=1) * (BOX_H + GAP_Y)
    title = f"Lineage of {view.root} ({'descendants' if view.direction == 'down' else 'ancestors'})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}" font-family="sans-serif" font-size="11" '
        f'role="img" aria-label="{escape(title, {chr(34): "&quot;"})}">',
        f"<title>{escape(title)}</title>",
    ]
    for e in view.edges:
        if e.parent not in where or e.child not in where:
            continue
        (px, py), (cx, cy) = where[e.parent], where[e.child]
        left, right = (px, cx) if view.direction == "down" else (cx, px)
        ly, ry = (py, cy) if view.direction == "down" else (cy, py)
        x1, y1, x2, y2 = left + BOX_W, ly + BOX_H / 2, right, ry + BOX_H / 2
        parts.append(
            f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
            'stroke="#555" stroke-width="1"/>'
        )
        if e.drawn:
            label = escape(truncate(f"{e.drawn} {e.unit or ''}".strip(), 12))
            parts.append(
                f'<text x="{num((x1 + x2) / 2)}" y="{num((y1 + y2) / 2 - 3)}" '
                f'text-anchor="middle" fill="#333" font-size="9">{label}</text>'
            )
    for lot, (x, y) in where.items():
        node = view.nodes[lot]
        fill = STATUS_FILL.get(node.status, "#ffffff")
        weight = ' stroke-width="2"' if lot == view.root else ' stroke-width="1"'
        remains = f"{node.remaining} {node.unit}" if node.remaining else ""
        kind = node.kind + (f" P{node.passage}" if node.passage is not None else "")
        state = " · ".join(t for t in (node.status, remains) if t)
        parts += [
            f'<g class="node"><rect x="{num(x)}" y="{num(y)}" width="{BOX_W}" height="{BOX_H}" '
            f'rx="4" fill="{fill}" stroke="#000"{weight}/>',
            f'<text x="{num(x + 6)}" y="{num(y + 14)}" font-weight="bold">'
            f"{escape(truncate(lot, 26))}</text>",
            f'<text x="{num(x + 6)}" y="{num(y + 27)}">{escape(truncate(kind, 28))}</text>',
            f'<text x="{num(x + 6)}" y="{num(y + 40)}" fill="#333">'
            f"{escape(truncate(state, 28))}</text></g>",
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
