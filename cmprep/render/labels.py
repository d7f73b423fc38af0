"""Lot labels: a sheet of identical labels (one per page of 50 x 25 mm) with the lot id,
product, status and expiry in words, a QR code and a Code 128 barcode of the lot id.

Takes a ``LabelSheet`` the service built; never fetches. The two symbols are drawn here
as inline SVG (black rectangles on white, crisp edges), so the PDF carries vectors that
any printer resolution reproduces, and a scanner reads back exactly the lot id:

* the QR code's modules come from segno (imported when a label is drawn: the ``labels``
  extra), the SVG is ours;
* Code 128 is encoded here (code set B, modulo-103 check symbol): small, exact and
  tested by decoding the printed page back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from markupsafe import Markup

from cmprep.errors import Hint, MissingExtra

if TYPE_CHECKING:
    from jinja2 import Environment

FORMATS = ("pdf", "html")
LABEL_SIZE_MM = (50, 25)  # the CSS @page size of templates/label.html
MAX_COPIES = 500


@dataclass(frozen=True)
class LabelSheet:
    """What a label shows, and how many copies; PRINTED_AT/BY and REPRINT say which print
    this is (a reprint is marked on the label)."""

    lot: str
    product: str
    kind: str
    status: str
    expiry: str | None
    quantity: str | None
    batch_id: str | None
    copies: int
    printed_at: str
    printed_by: str
    reprint: bool


# --- Code 128 --------------------------------------------------------------------------------
# The widths of bar, space, bar, space, bar, space (in modules) of symbol values 0-105
# (ISO/IEC 15417, table 1); the stop symbol has a seventh element, its final bar.
_TABLE = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 "
    "221312 231212 112232 122132 122231 113222 123122 123221 223211 221132 "
    "221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 "
    "212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 "
    "231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 "
    "231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 "
    "314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 "
    "112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 "
    "111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 "
    "214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 "
    "114131 311141 411131 211412 211214 211232"
)
_PATTERNS = _TABLE.split()
assert len(_PATTERNS) == 106
_START_B = 104
_STOP = "2331112"
QUIET_MODULES = 10  # the clear space each side that a scanner needs


def code128_values(text: str) -> list[int]:
    """The symbol values of TEXT in code set B: start, data, check (without the stop).

    Code set B holds printable ASCII (space to '~'), which covers every lot id; anything
    else is refused rather than printed as a barcode that reads back differently."""
    if not text or any(not 32 <= ord(c) <= 126 for c in text):
        raise ValueError(f"{text!r} cannot be a Code 128 (set B) barcode: printable ASCII only")
    data = [ord(c) - 32 for c in text]
    check = (_START_B + sum(i * v for i, v in enumerate(data, start=1))) % 103
    return [_START_B, *data, check]


def code128_modules(text: str) -> list[int]:
    """Element widths in modules, bar first and alternating, stop included."""
    widths = "".join(_PATTERNS[v] for v in code128_values(text)) + _STOP
    return [int(w) for w in widths]


def code128_svg(text: str, width_mm: float = 46.0, height_mm: float = 5.0) -> Markup:
    """TEXT as a Code 128 barcode: an inline SVG, quiet zones included."""
    x, bars = QUIET_MODULES, []
    for i, w in enumerate(code128_modules(text)):
        if i % 2 == 0:
            bars.append(f'<rect x="{x}" y="0" width="{w}" height="1"/>')
        x += w
    total = x + QUIET_MODULES
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="code128" width="{width_mm}mm" '
        f'height="{height_mm}mm" viewBox="0 0 {total} 1" preserveAspectRatio="none" '
        f'shape-rendering="crispEdges"><rect width="{total}" height="1" fill="#fff"/>'
        f'<g fill="#000">{"".join(bars)}</g></svg>'
    )


# --- QR ----------------------------------------------------------------------------------------
def qr_svg(text: str, size_mm: float = 15.0) -> Markup:
    """TEXT as a QR code (error correction M, quiet zone of 4 modules): an inline SVG of
    one path, a run of dark modules per rectangle."""
    try:
        import segno
    except ImportError:  # the optional extra is not installed
        raise MissingExtra(
            "labels need segno (QR codes), which is not installed",
            hint=Hint("install_extra", extra="labels", package="segno"),
        ) from None
    code = segno.make_qr(text, error="m", boost_error=False)
    border = 4
    runs = []
    for y, row in enumerate(code.matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append(f"M{start + border} {y + border}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    side = len(code.matrix) + 2 * border
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="qr" width="{size_mm}mm" '
        f'height="{size_mm}mm" viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


# --- the sheet ---------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def environment() -> Environment:
    """The documents' environment (autoescape, StrictUndefined, the same templates) with
    the two symbols added as filters that take only the text they encode."""
    from cmprep.render.documents import environment as documents

    env = documents().overlay()
    env.filters = {**env.filters, "qr_svg": qr_svg, "code128_svg": code128_svg}
    return env


def label_html(sheet: LabelSheet) -> str:
    """The sheet as standalone HTML: one label per page, COPIES pages."""
    if not isinstance(sheet, LabelSheet):
        raise TypeError(f"expected a LabelSheet, got {type(sheet).__name__}")
    if not 1 <= sheet.copies <= MAX_COPIES:
        raise ValueError(f"copies must be 1-{MAX_COPIES}, got {sheet.copies}")
    context = {name: getattr(sheet, name) for name in sheet.__dataclass_fields__}
    return environment().get_template("label.html").render(**context)


def render_labels(sheet: LabelSheet, fmt: str = "pdf") -> str | bytes:
    """The sheet as a PDF (bytes, via WeasyPrint) or its HTML."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown label format {fmt!r}; use one of: {', '.join(FORMATS)}")
    html = label_html(sheet)
    if fmt == "html":
        return html
    from cmprep.render.output import to_pdf

    return to_pdf(html)
