"""QC charts: well-formed SVG, one marker per point, red markers for Westgard rejections,
labelled SD lines, escaped text, comparison bars, sparklines and PNG output."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import pytest

from cmprep.domain.westgard import evaluate
from cmprep.errors import Hint, MissingExtra
from cmprep.render.charts import compare_svg, levey_jennings_svg, sparkline_svg, svg_to_png

NS = "{http://www.w3.org/2000/svg}"
ACCENT = "#b00020"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("viewBox", "").startswith("0 0 ")
    return root


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{NS}text")]


def lj(values, mean=300.0, sd=40.0, labels=None, **kw):
    labels = labels or [f"CM-{i + 1:03d}" for i in range(len(values))]
    violations = evaluate(values, mean, sd, labels=labels, unit="pg/mL")
    kw.setdefault("title", "VEGF")
    kw.setdefault("unit", "pg/mL")
    svg = levey_jennings_svg(
        list(zip(labels, values, strict=True)), mean, sd, violations=violations, **kw
    )
    return svg, violations


# --- Levey-Jennings ---------------------------------------------------------------------


def test_levey_jennings_one_marker_per_point():
    values = [300, 310, 295, 330, 280, 305]
    svg, _ = lj(values)
    root = parse(svg)
    points = by_class(root, "point")
    assert len(points) == len(values)
    assert [int(p.get("data-index")) for p in points] == list(range(len(values)))
    assert by_class(root, "violation") == []
    assert ACCENT not in svg  # the accent colour only for rejections


def test_levey_jennings_red_marker_for_each_rejection():
    #            0    1    2    3    4    5    6    7    8    9
    values = [300, 390, 392, 300, 430, 300, 345, 350, 355, 360]
    svg, violations = lj(values)
    rejections = [v for v in violations if v.rejection]
    assert {v.rule for v in rejections} == {"2-2s", "1-3s", "4-1s"}
    root = parse(svg)
    red = by_class(root, "violation")
    red_indices = {int(p.get("data-index")) for p in red}
    involved = {i for v in rejections for i in v.indices}
    assert red_indices == involved == {1, 2, 4, 6, 7, 8, 9}
    for p in red:
        assert p.get("stroke") == ACCENT and p.get("fill") == "#fff"  # open
        assert p.tag == f"{NS}path"  # a diamond, not a circle
    assert len(by_class(root, "point")) == len(values)  # still one marker per point
    # each rule named in red next to its completing point
    rule_labels = {"".join(e.itertext()) for e in by_class(root, "rule-label")}
    assert rule_labels == {"2-2s", "1-3s", "4-1s"}
    assert all(e.get("fill") == ACCENT for e in by_class(root, "rule-label"))


def test_levey_jennings_warnings_are_not_marked():
    svg, violations = lj([300, 390, 300])  # 1-2s only
    assert [v.rule for v in violations] == ["1-2s"]
    assert by_class(parse(svg), "violation") == []


def test_levey_jennings_consecutive_completions_named_once():
    svg, violations = lj([345, 350, 355, 360, 365, 362])
    assert [v.index for v in violations if v.rule == "4-1s"] == [3, 4, 5]
    root = parse(svg)
    assert ["".join(e.itertext()) for e in by_class(root, "rule-label")] == ["4-1s"]
    assert len(by_class(root, "violation")) == 6


def test_levey_jennings_sd_lines_labelled():
    svg, _ = lj([300, 310])
    root = parse(svg)
    labels = ["".join(e.itertext()) for e in by_class(root, "sd-label")]
    assert labels[0] == "mean 300"
    for text in ("+1 SD 340", "-1 SD 260", "+2 SD 380", "-2 SD 220", "+3 SD 420", "-3 SD 180"):
        assert text in labels
    assert len(by_class(root, "sd-line")) == 6
    assert len(by_class(root, "mean-line")) == 1
    dashes = {e.get("stroke-dasharray") for e in by_class(root, "sd-line")}
    assert None not in dashes and len(dashes) >= 2  # dashed or dotted, told apart


def test_levey_jennings_legend():
    svg, _ = lj([300, 310], baseline_count=20)
    assert "mean 300 pg/mL, SD 40 pg/mL, from 20 released batches" in texts(parse(svg))
    svg, _ = lj([300, 310], baseline_count=1)
    assert "mean 300 pg/mL, SD 40 pg/mL, from 1 released batch" in texts(parse(svg))
    svg, _ = lj([300, 310])
    assert "mean 300 pg/mL, SD 40 pg/mL" in texts(parse(svg))


def center_y(marker: ET.Element) -> float:
    """A circle's cy, or the middle of a diamond path "Mx y-r Lx+r y Lx y+r Lx-r y Z"."""
    if marker.get("cy") is not None:
        return float(marker.get("cy"))
    return float(marker.get("d").split("L")[1].split()[1])


def y_range(root):
    """The values at the top and bottom of the plot, from the mean and +1 SD lines."""
    lines = by_class(root, "sd-line")
    mean_y = float(by_class(root, "mean-line")[0].get("d").split()[1].split("H")[0])
    plus1_y = float(lines[4].get("d").split()[1].split("H")[0])  # (3,+),(3,-),(2,+),(2,-),(1,+)
    return mean_y, plus1_y


def test_levey_jennings_y_range_holds_3_5_sd_and_every_point():
    for values in ([300, 301], [300, 600, 20], [-5000, 300]):
        svg, _ = lj(values)
        root = parse(svg)
        mean_y, plus1_y = y_range(root)
        px_per_sd = mean_y - plus1_y
        (axis,) = by_class(root, "axis")
        top = float(axis.get("d").split()[1].split("V")[0])
        bottom = float(axis.get("d").split("V")[1].split("H")[0])
        assert mean_y - top >= 3.5 * px_per_sd
        assert bottom - mean_y >= 3.5 * px_per_sd
        for p in by_class(root, "point"):
            assert top <= center_y(p) <= bottom


def test_levey_jennings_escapes_labels_title_and_unit():
    svg, _ = lj([300, 395, 398], labels=["<b>x</b>", "A&B", 'q"uote'], title="<i>t</i>", unit="<u>")
    assert "<b>" not in svg and "<i>" not in svg and "<u>" not in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg
    root = parse(svg)
    assert "<b>x</b>" in texts(root)  # shown as text, after parsing
    assert "A&B" in texts(root)


def test_levey_jennings_many_points_rotates_and_thins_labels():
    values = [300 + (i % 7) * 5 for i in range(120)]
    labels = [f"CM-2026-LONGNAME-{i + 1:04d}" for i in range(120)]
    svg, _ = lj(values, labels=labels)
    root = parse(svg)
    assert len(by_class(root, "point")) == 120
    xlabels = by_class(root, "xlabel")
    assert 0 < len(xlabels) < 120
    assert all("rotate(-45)" in (e.get("transform") or "") for e in xlabels)
    shown = ["".join(e.itertext()) for e in xlabels]
    assert shown[-1].endswith("0120")  # the newest always labelled, its end kept
    assert all(len(t) <= 14 for t in shown)


def test_levey_jennings_few_points_horizontal_labels():
    svg, _ = lj([300, 310, 320])
    xlabels = by_class(parse(svg), "xlabel")
    assert ["".join(e.itertext()) for e in xlabels] == ["CM-001", "CM-002", "CM-003"]
    assert not any(e.get("transform") for e in xlabels)


def test_levey_jennings_no_points():
    svg = levey_jennings_svg([], 300, 40, unit="pg/mL", title="VEGF")
    root = parse(svg)
    assert "no data" in texts(root)
    assert by_class(root, "point") == []


def test_levey_jennings_refuses_bad_input():
    with pytest.raises(ValueError, match="sd"):
        levey_jennings_svg([("a", 1)], 300, 0, unit="", title="t")
    with pytest.raises(ValueError, match="finite"):
        levey_jennings_svg([("a", float("nan"))], 300, 40, unit="", title="t")
    violations = evaluate([300, 500], 300, 40)
    with pytest.raises(ValueError, match="refers to point 1"):
        levey_jennings_svg([("a", 300)], 300, 40, unit="", title="t", violations=violations)


def test_levey_jennings_is_deterministic():
    assert lj([300, 390, 392])[0] == lj([300, 390, 392])[0]


# --- comparison -------------------------------------------------------------------------


GROUPS = {"UC-MSC": [310, 290, 355, 300, 280], "BM-MSC": [210, 250, 190], "AD-MSC": [420]}


def test_compare_one_bar_per_group_with_n_labels():
    root = parse(compare_svg(GROUPS, unit="pg/mL", title="VEGF by source"))
    assert len(by_class(root, "bar")) == 3
    assert ["".join(e.itertext()) for e in by_class(root, "n-label")] == ["n=5", "n=3", "n=1"]
    assert ["".join(e.itertext()) for e in by_class(root, "xlabel")] == list(GROUPS)
    assert len(by_class(root, "value")) == 9  # a dot per value
    # an error bar for each group with more than one value
    assert len(by_class(root, "error-bar")) == 2


def test_compare_bar_height_is_the_mean():
    root = parse(compare_svg({"a": [100, 300], "b": [100]}, unit="", title="t"))
    a, b = by_class(root, "bar")
    assert float(a.get("height")) == pytest.approx(2 * float(b.get("height")), abs=0.2)
    assert float(a.get("y")) + float(a.get("height")) == pytest.approx(
        float(b.get("y")) + float(b.get("height"))
    )  # both from the same baseline (0)


def test_compare_jitter_is_deterministic_and_spread():
    first = compare_svg(GROUPS, unit="pg/mL", title="t")
    assert first == compare_svg(GROUPS, unit="pg/mL", title="t")
    root = parse(compare_svg({"same": [5, 5, 5, 5]}, unit="", title="t"))
    xs = {e.get("cx") for e in by_class(root, "value")}
    assert len(xs) == 4  # equal values still all visible


def test_compare_empty():
    for groups in ({}, {"a": []}):
        root = parse(compare_svg(groups, unit="pg/mL", title="t"))
        assert "no data" in texts(root)
        assert by_class(root, "bar") == []


def test_compare_empty_group_among_others():
    root = parse(compare_svg({"a": [1, 2], "none": []}, unit="", title="t"))
    assert len(by_class(root, "bar")) == 1
    assert ["".join(e.itertext()) for e in by_class(root, "n-label")] == ["n=2", "n=0"]


def test_compare_negative_values():
    root = parse(compare_svg({"a": [-5, -3], "b": [4]}, unit="", title="t"))
    assert len(by_class(root, "bar")) == 2
    assert all(float(e.get("height")) > 0 for e in by_class(root, "bar"))


def test_compare_escapes():
    svg = compare_svg({"<b>x</b>": [1, 2]}, unit="<u>", title="<i>t</i>")
    assert "<b>" not in svg and "<i>" not in svg and "<u>" not in svg
    assert "<b>x</b>" in texts(parse(svg))


# --- sparkline --------------------------------------------------------------------------


def test_sparkline_basic():
    svg = sparkline_svg([300, 310, 305, 320])
    root = parse(svg)
    assert root.get("width") == "160" and root.get("height") == "32"
    assert len(by_class(root, "last")) == 1
    assert by_class(root, "band") == []


def test_sparkline_band_and_out_of_band_last_point():
    root = parse(sparkline_svg([300, 310, 305, 320], 300, 40, width=100, height=20))
    assert root.get("viewBox") == "0 0 100 20"
    assert len(by_class(root, "band")) == 1
    assert by_class(root, "last")[0].get("fill") != ACCENT
    root = parse(sparkline_svg([300, 310, 305, 390], 300, 40))
    assert by_class(root, "last")[0].get("fill") == ACCENT


def test_sparkline_last_point_is_rightmost():
    root = parse(sparkline_svg([1, 5, 2, 8, 3]))
    last = by_class(root, "last")[0]
    assert float(last.get("cx")) == pytest.approx(160 - 3.5)


def test_sparkline_edge_cases():
    assert "no data" in texts(parse(sparkline_svg([])))
    parse(sparkline_svg([300]))
    parse(sparkline_svg([300, 300, 300]))
    with pytest.raises(ValueError):
        sparkline_svg([1, 2], 1, 0)


# --- PNG --------------------------------------------------------------------------------


def test_png_output():
    pytest.importorskip("cairosvg")
    svg, _ = lj([300, 390, 392, 280])
    png = svg_to_png(svg)
    assert png.startswith(b"\x89PNG")
    assert svg_to_png(compare_svg(GROUPS, unit="pg/mL", title="t"), scale=1).startswith(b"\x89PNG")
    assert svg_to_png(sparkline_svg([1, 2, 3])).startswith(b"\x89PNG")


def test_png_without_cairosvg(monkeypatch):
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # makes `import cairosvg` fail
    with pytest.raises(MissingExtra, match="PNG output needs cairosvg") as caught:
        svg_to_png(sparkline_svg([1, 2, 3]))
    assert caught.value.hint == Hint("install_extra", extra="png", package="cairosvg")
