"""The protocol as a flow diagram: every bundled protocol draws, with every step, its
branches, optional steps and time windows, as valid SVG that escapes what it prints; and
the checklist and the record show it on their first page."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from click.testing import CliRunner
from conftest import STANDARD, present, run_to

from cmprep.cli import Shell, main
from cmprep.protocol.library import protocol_files
from cmprep.protocol.loader import load_file
from cmprep.protocol.models import from_content
from cmprep.render.flow import flow_svg

SVG = "{http://www.w3.org/2000/svg}"
BUNDLED = [load_file(p) for p in protocol_files()]


def _texts(svg: str) -> list[str]:
    """Every piece of text the diagram shows (its <text> and <title> elements)."""
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return ["".join(el.itertext()) for el in root.iter() if el.tag in (f"{SVG}text", f"{SVG}title")]


@pytest.mark.parametrize("protocol", BUNDLED, ids=lambda p: p.id)
def test_every_bundled_protocol_draws_every_step_id(protocol):
    svg = flow_svg(protocol)
    texts = _texts(svg)
    shown = " ".join(texts)
    for step in protocol.steps:
        assert any(t.startswith(step.id) for t in texts), f"step {step.id} not drawn"
        assert f'id="flow-{step.id}"' in svg
    assert protocol.title in shown


@pytest.mark.parametrize("protocol", BUNDLED, ids=lambda p: p.id)
def test_branches_windows_and_optional_steps_are_drawn(protocol):
    svg = flow_svg(protocol)
    root = ET.fromstring(svg)
    groups = {g.get("id"): g.get("class") for g in root.iter(f"{SVG}g")}
    for step in protocol.steps:
        kind = groups[f"flow-{step.id}"]
        if step.optional:
            assert kind == "fl-step fl-optional"
        elif step.branch:
            assert kind == "fl-step fl-arm"
        else:
            assert kind == "fl-step"
    texts = _texts(svg)
    for branch in {s.branch for s in protocol.steps if s.branch}:
        assert f"branch {branch}: choose one" in texts
    for step in protocol.steps:
        if step.window:
            assert f"window {step.window.range.describe(step.window.unit)}" in texts
            assert any(t.startswith(f"after {step.window.after}") for t in texts)
    if any(s.optional for s in protocol.steps):
        assert "skip" in texts


def test_the_optional_step_has_a_dashed_way_round_it():
    tnf = next(p for p in BUNDLED if any(s.optional for s in p.steps))
    svg = flow_svg(tnf)
    assert 'class="fl-edge fl-skip"' in svg
    optional = next(s for s in tnf.steps if s.optional)
    assert f"{optional.id} · optional" in _texts(svg)


def test_the_same_protocol_draws_the_same_bytes():
    assert flow_svg(BUNDLED[0]) == flow_svg(from_content(copy.deepcopy(BUNDLED[0].to_content())))


def test_text_from_the_protocol_is_escaped():
    base = BUNDLED[0]
    steps = [replace(s, title='<script>alert("x")</script> & more') for s in base.steps]
    hostile = replace(base, steps=steps, title='A <b> & "q" title')
    svg = flow_svg(hostile)
    assert "<script>" not in svg and "<b>" not in svg
    texts = _texts(svg)  # still well-formed, and the words are there as text
    assert any("<script>" in t for t in texts)


def test_a_long_title_is_wrapped_then_cut_inside_its_box():
    base = BUNDLED[0]
    long = "Concentration " * 12
    steps = [replace(base.steps[0], title=long), *base.steps[1:]]
    svg = flow_svg(replace(base, steps=steps))
    lines = [
        t for t in _texts(svg) if t.startswith("1. Concentration") or t.startswith("Concentration")
    ]
    assert len(lines) == 2 and lines[1].endswith("…")
    assert all(len(t) <= 34 for t in lines)


def test_the_size_can_be_fitted_to_a_page():
    svg = flow_svg(BUNDLED[0], width="100%", height="105mm")
    root = ET.fromstring(svg)
    assert root.get("width") == "100%" and root.get("height") == "105mm"
    assert root.get("viewBox", "").startswith("0 0 ")


def test_protocol_show_format_svg(tmp_path, db_path, clock, svc):
    shell = Shell(lambda db: present(type(svc)(svc.store, clock=clock)))
    runner = CliRunner()
    out = runner.invoke(
        main, ["protocol", "show", STANDARD, "--format", "svg", "--db", str(db_path)], obj=shell
    )
    assert out.exit_code == 0, out.output
    protocol = svc.protocols.doc(STANDARD).protocol
    texts = _texts(out.output)
    assert all(any(t.startswith(s.id) for t in texts) for s in protocol.steps)
    target = tmp_path / "flow.svg"
    out = runner.invoke(
        main,
        ["protocol", "show", STANDARD, "--format", "svg", "-o", str(target), "--db", str(db_path)],
        obj=shell,
    )
    assert out.exit_code == 0 and "written to" in out.output
    assert target.read_text() == flow_svg(protocol)


def test_the_checklist_shows_the_diagram_on_its_first_page(svc):
    html = svc.documents.checklist(STANDARD, "html")
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="flow"' in html
    # before the steps: on the first page, after the summary
    assert html.index('class="flow"') < html.index("<h2>Steps</h2>")
    for step in svc.protocols.doc(STANDARD).protocol.steps:
        assert f'id="flow-{step.id}"' in html


def test_the_record_shows_the_diagram_before_its_steps(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", "spin")
    html = svc.documents.record("B1", "html")
    assert html.index('class="flow"') < html.index("<h2>Steps</h2>")
    assert 'id="flow-spin"' in html


def _pages_with_the_diagram(html: str) -> list[int]:
    """The pages (from 0) of the printed document that hold the flow diagram."""
    weasyprint = pytest.importorskip("weasyprint")
    from cmprep.resources import templates_dir

    def boxes(box):
        yield box
        for child in getattr(box, "children", None) or []:
            yield from boxes(child)

    doc = weasyprint.HTML(string=html, base_url=str(templates_dir())).render()
    return [
        n
        for n, page in enumerate(doc.pages)
        if any(
            getattr(b, "element_tag", "") == f"{SVG}svg" and b.element.get("class") == "flow"
            for b in boxes(page._page_box)
        )
    ]


def test_printed_checklist_and_record_have_the_diagram_on_page_one(svc, clock):
    for protocol in BUNDLED:  # the longest summary still leaves room
        assert _pages_with_the_diagram(svc.documents.checklist(protocol.id, "html")) == [0]
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    assert _pages_with_the_diagram(svc.documents.record("B1", "html")) == [0]
