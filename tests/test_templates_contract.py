"""Each template's context is exactly one read model.

For every template in templates/, the variables it reads (its own and those of the
templates it extends or includes), minus the environment's globals, must be the fields of
its model: a variable the model lacks would fail at render time in some branch nobody
tested, and a field no template reads is dead weight in the contract. Then each template
is rendered from a real model, built by the service from a real batch, with
StrictUndefined (the environment's), so a misspelt attribute fails here too.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import STANDARD, run_to
from jinja2 import meta, nodes

from cmprep import render
from cmprep.render.documents import template_context
from cmprep.render.models import AuditReportView, ChecklistView, RecordView
from cmprep.resources import templates_dir
from cmprep.service.views import audit_view, checklist_view, record_view

MODELS = {
    "record.html": RecordView,
    "record.md": RecordView,
    "checklist.html": ChecklistView,
    "checklist.md": ChecklistView,
    "audit.html": AuditReportView,
    "audit.md": AuditReportView,
}
NOT_TEMPLATES = {"base.html", "print.css"}  # a layout and a stylesheet, included by others
# lot labels: rendered by their own environment (with the QR and Code 128 filters); the same
# contract is checked in test_labels.py
NOT_TEMPLATES |= {"label.html"}


def _locals(ast: nodes.Template) -> set[str]:
    """Names the template binds itself: macros and ``{% set %}`` targets.

    find_undeclared_variables is conservative: a name set inside an ``{% if %}`` (or a
    macro defined outside the blocks of a child template) is reported as possibly
    undeclared, though it is never read from the context.
    """
    names = {m.name for m in ast.find_all(nodes.Macro)}
    for assign in ast.find_all(nodes.Assign):
        names |= {n.name for n in assign.target.find_all(nodes.Name)}
        if isinstance(assign.target, nodes.Name):
            names.add(assign.target.name)
    return names


def _variables(name: str, seen: set[str] | None = None) -> set[str]:
    """The context variables a template reads, its own and those of every template it
    extends or includes, minus the environment's globals."""
    env = render.environment()
    seen = seen if seen is not None else set()
    seen.add(name)
    source = env.loader.get_source(env, name)[0]
    ast = env.parse(source)
    found = set(meta.find_undeclared_variables(ast)) - _locals(ast)
    for ref in meta.find_referenced_templates(ast):
        if ref and ref not in seen:
            found |= _variables(ref, seen)
    return found - set(env.globals)


def test_every_template_has_a_model():
    names = {p.name for p in templates_dir().iterdir() if p.is_file()}
    assert names - NOT_TEMPLATES == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_template_reads_exactly_the_fields_of_its_model(name):
    fields = {f.name for f in dataclasses.fields(MODELS[name])}
    used = _variables(name)
    assert used - fields == set(), f"{name} reads variables its model lacks"
    assert fields - used == set(), f"{name} leaves fields of its model unread"


@pytest.fixture
def views(svc, clock):
    """Real models: a batch of the standard protocol run to the end with a deviation at
    the spin (1950 rpm on centrifuge CF-02), the protocol's checklist, and the audit report over it."""
    from conftest import GOOD

    svc.materials.register_equipment(
        "CF-02", "centrifuge", "2027-01-15", "alice", rotor_radius_cm=16.5
    )
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", "spin")
    clock.advance(hours=1)
    spin = {**GOOD["spin"], "rcf": "1950 rpm"}
    svc.batches.record("B1", "spin", spin, "alice", equipment=["CF-02"])
    run_to(svc, clock, "B1")
    batch = svc.batches.batch("B1")
    assert batch.deviations, "the fixture should open a deviation"
    return {
        RecordView: record_view(
            batch,
            qc=svc.qc.summary(batch),
            ledger_head=svc.audit.ledger_head(),
            generated_at="2026-11-20T12:00:00Z",
        ),
        ChecklistView: checklist_view(batch.protocol, generated_at="2026-11-20T12:00:00Z"),
        AuditReportView: audit_view(svc.audit.report()),
    }


@pytest.mark.parametrize("name", sorted(MODELS))
def test_template_renders_from_a_real_model_with_strict_undefined(views, name):
    env = render.environment()
    assert env.undefined.__name__ == "StrictUndefined"
    view = views[MODELS[name]]
    assert isinstance(view, MODELS[name])
    text = env.get_template(name).render(**template_context(view))
    assert text.strip()


def test_a_missing_field_fails_the_render(views):
    env = render.environment()
    context = template_context(views[RecordView])
    del context["summary"]
    with pytest.raises(Exception, match="summary"):
        env.get_template("record.html").render(**context)


def test_render_refuses_anything_but_its_model(views):
    batch = views[RecordView].batch
    with pytest.raises(TypeError, match="RecordView"):
        render.render_record(batch, "html")
