"""The printed batch record and SOP checklist: what a QA reviewer reads and signs.

Batches are built through the real service on a temporary SQLite file, so the record is
rendered from the same read model the CLI renders.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import PASSWORD, approve_file, seed_people

from cmprep import render
from cmprep.cli.hints import say
from cmprep.errors import Hint, MissingExtra
from cmprep.protocol import load_file
from cmprep.render.documents import MISSING_VERIFICATION, SUPERSEDED
from cmprep.resources import protocols_dir
from cmprep.service import Services
from cmprep.service.views import checklist_view, record_view
from cmprep.store.sqlite import SQLiteStore

PROTOCOL_YAML = """\
id: cm-render-test
version: '1.0'
title: Render test conditioned medium
summary: A small protocol for the rendering tests, with a window and a branch.
sources:
  - id: nasiri2026
    citation: >-
      Nasiri N, Hemmati P, Tabaie SM. Conditioned medium from mesenchymal stem cells.
      Iran J Basic Med Sci 2026; 29:181-190
    doi: 10.22038/ijbms.2025.88552.19121
steps:
  - id: wash
    title: PBS wash to remove serum
    optional: true
    instructions: Wash the monolayer twice with PBS.
    checks:
      - PBS lot and expiry checked
    parameters:
      - {name: washes, label: Number of PBS washes, type: integer, spec: {min: 2},
         source: site choice, limits: {min: 1, max: 10}}
  - id: conditioning
    title: Start of conditioning
    instructions: Add serum-free medium and start the clock.
    checks:
      - Medium is the serum-free medium on the preparation sheet
      - Every vessel is labelled
    parameters:
      - {name: serum_percent, label: Serum in conditioning medium, unit: '%',
         spec: {max: 2}, alert: {max: 0}, limits: {min: 0, max: 100}, source: nasiri2026}
      - {name: medium_lot, label: Medium lot, type: text}
  - id: collection
    title: Collection of conditioned medium
    instructions: Collect the medium into sterile tubes.
    window: {after: conditioning, min: 24, max: 72, unit: h, source: nasiri2026}
    parameters:
      - {name: volume, label: Volume collected, unit: mL, limits: {min: 0, max: 100000}}
  - id: filtration
    title: Sterile filtration
    verify: true
    instructions: Filter through 0.22 um.
    parameters:
      - {name: pore_size, label: Filter pore size, unit: um, spec: {min: 0.22, max: 0.22},
         limits: {min: 0.01, max: 10}, source: nasiri2026, severity: critical}
      - {name: integrity, label: Integrity test passed, type: yes/no, spec: {equals: true},
         source: site choice}
  - id: use_fresh
    branch: downstream
    title: Use immediately
    instructions: Hand the CM over for use.
    parameters:
      - {name: recipient, label: Received by, type: text}
  - id: lyophilise
    branch: downstream
    title: Lyophilisation
    instructions: Freeze-dry the CM.
"""

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=timezone.utc)
GENERATED = "2026-01-20T12:00:00Z"
SCRIPT = "<script>alert(1)</script>"
BOLD = "<b>LOT-7</b>"
MD_TRAP = "*star* _under_ [link](http://evil.example) | pipe # hash `code` ~~gone~~"


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def protocol_file(tmp_path: Path) -> Path:
    path = tmp_path / "cm-render-test.yaml"
    path.write_text(PROTOCOL_YAML, encoding="utf-8")
    return path


@pytest.fixture
def service(tmp_path: Path, protocol_file: Path) -> tuple[Services, Clock]:
    """The service, its people, and the render test protocol imported and approved."""
    clock = Clock(T0)
    svc = seed_people(Services(SQLiteStore(tmp_path / "t.db", create=True), clock=clock))
    approve_file(svc, protocol_file)
    return svc, clock


@pytest.fixture
def batch(service: tuple[Services, Clock], protocol_file: Path):
    """A batch a reviewer would see: a skip, a deviation, a correction, a hold, a late entry."""
    svc, clock = service
    svc.batches.start("cm-render-test", "alice", "B1")
    clock.advance(minutes=5)
    svc.batches.skip("B1", "wash", "alice", reason=f"<b>no PBS</b> {MD_TRAP}")
    clock.advance(minutes=5)  # 08:10
    svc.batches.record(
        "B1", "conditioning", {"serum_percent": "5 %", "medium_lot": BOLD}, "alice", note=SCRIPT
    )
    clock.advance(minutes=10)
    svc.batches.correct(
        "B1", "conditioning", {"serum_percent": "0 %"}, "bob", reason=f"typo {MD_TRAP}"
    )
    clock.advance(minutes=10)
    svc.batches.hold("B1", "quinn", reason="incubator <i>alarm</i>")
    clock.advance(minutes=30)
    svc.batches.resume("B1", "quinn", reason="alarm cleared")
    # two days later, collection entered 2 h after it was done: a late entry
    clock.now = T0 + timedelta(days=2, hours=1)  # 2026-01-12 09:00
    svc.batches.record(
        "B1", "collection", {"volume": "0.5 L"}, "rita", at="2026-01-12T07:00:00Z", note=MD_TRAP
    )
    clock.advance(minutes=20)
    svc.batches.record("B1", "filtration", {"pore_size": "0.45 um", "integrity": "yes"}, "rita")
    clock.advance(minutes=20)
    svc.batches.record(
        "B1", "use_fresh", {"recipient": "study <img src=x onerror=alert(1)>"}, "bob"
    )
    return svc.batches.batch("B1")


def html_text_outside_tags(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


# --- the batch record, HTML ---------------------------------------------------------------
def test_record_html_shows_the_header_a_reviewer_identifies_the_batch_by(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert isinstance(html, str)
    assert html.startswith("<!DOCTYPE html>")
    for text in (
        "B1",
        "cm-render-test",
        "version 1.0",
        "Render test conditioned medium",
        batch.protocol_hash,
        "alice",
        "2026-01-10 08:00:00 UTC",  # started at
        "Nasiri et al. 2026",
        "10.22038/ijbms.2025.88552.19121",
        "awaiting QA review",
    ):
        assert text in html, text


def test_record_html_is_standalone_with_the_print_css_inlined(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "<link" not in html
    assert "@page" in html and "size: A4" in html
    assert "counter(page)" in html


def test_record_html_shows_values_in_protocol_units_with_spec_and_verdict(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "500 mL" in html  # entered as 0.5 L, printed in the protocol's unit
    assert "0.5 L" in html  # and what was typed
    assert "&lt;= 2 %" in html  # the spec, escaped like everything else
    assert "✓ in spec" in html
    assert "✗ out of spec" in html
    assert "0.45 um" in html and "0.22 um" in html


def test_record_html_names_the_deviation_at_the_value_and_in_the_deviation_table(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    dev_ids = sorted(batch.deviations)
    assert dev_ids == ["DEV-0001", "DEV-0002"]
    for dev_id in dev_ids:
        assert html.count(dev_id) >= 2, dev_id  # at the value and in the deviations section
    assert "critical" in html  # the pore size deviation's severity
    assert "open" in html


def test_record_html_strikes_through_the_corrected_value_with_who_when_why(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "<del>5 %</del> → 0 %" in html
    assert "by bob, 2026-01-10 08:20:00 UTC" in html
    assert "reason: typo" in html


def test_record_html_shows_performed_and_entered_times_and_flags_a_late_entry(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "LATE ENTRY" in html
    assert "<b>Performed at:</b> 2026-01-12 07:00:00 UTC" in html
    assert "<b>Entered at:</b> 2026-01-12 09:00:00 UTC" in html
    # only the late step carries the flag (once in its head, once in its body)
    assert html.count('<span class="flag-late">') == 2


def test_record_html_shows_each_step_status(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "skipped" in html and "no PBS" in html
    assert "not taken (branch arm not chosen)" in html  # lyophilise
    assert html.count('class="status status-done"') == 4


def test_record_html_shows_the_window_finding(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "Time since conditioning (window)" in html
    assert "46.83 h" in html  # 08:10 to 07:00 two days later
    assert "24-72 h" in html


def test_record_html_lists_holds_and_signature_lines_and_the_chain_head(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "quinn" in html and "alarm cleared" in html
    assert "Reviewed by (QA)" in html and "Released by (QA)" in html
    assert batch.head_hash in html
    assert f"<td>{batch.seq}</td>" in html
    assert "2026-01-20 12:00:00 UTC" in html  # generated at
    assert "Verified by (second person)" in html  # filtration is a verify step


def test_record_html_escapes_everything_a_person_typed(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>LOT-7</b>" not in html
    assert "&lt;b&gt;LOT-7&lt;/b&gt;" in html
    assert "<b>no PBS</b>" not in html
    assert "<i>alarm</i>" not in html
    assert "<img" not in html
    assert '<a href="http://evil.example' not in html


def test_record_of_a_new_batch_on_hold_shows_what_is_due(service, protocol_file):
    svc, clock = service
    svc.batches.start("cm-render-test", "alice", "B2")
    clock.advance(minutes=1)
    svc.batches.hold("B2", "quinn", reason="waiting for medium")
    batch = svc.batches.batch("B2")
    for fmt in ("html", "md"):
        text = render.render_record(record_view(batch, generated_at=GENERATED), fmt)
        assert "ON HOLD" in text
        assert "still on hold" in text
        assert "Not yet recorded" in text  # pending steps
        assert "Due now" in text  # the first step
        assert "DEV-" not in text


def test_a_collection_outside_its_window_shows_the_window_deviation(service, protocol_file):
    svc, clock = service
    svc.batches.start("cm-render-test", "alice", "B3")
    svc.batches.skip("B3", "wash", "alice", reason="not needed")
    svc.batches.record("B3", "conditioning", {"serum_percent": "1 %", "medium_lot": "L1"}, "alice")
    clock.advance(hours=80)
    svc.batches.record("B3", "collection", {"volume": "200 mL"}, "alice")
    batch = svc.batches.batch("B3")
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert "⚠ alert" in html  # 1 % serum is in spec but past the alert band
    window_row = html[html.index("Time since conditioning (window)") :]
    window_row = window_row[: window_row.index("</tr>")]
    assert "80 h" in window_row and "✗ out of spec" in window_row and "DEV-0001" in window_row
    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    assert "| Time since conditioning (window) | **80 h** |" in md


# --- the batch record, Markdown -----------------------------------------------------------
def test_record_md_carries_what_a_reviewer_needs(batch):
    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    assert isinstance(md, str)
    assert md.startswith("# Batch record B1")
    for text in (
        "500 mL",
        "\\<= 2 %",
        "DEV-0001",
        "DEV-0002",
        "~~5 %~~ → 0 %",
        batch.head_hash,
        batch.protocol_hash,
        "**⚠ LATE ENTRY**",
        "Performed at: 2026-01-12 07:00:00 UTC",
        "Entered at: 2026-01-12 09:00:00 UTC",
        "not taken (branch arm not chosen)",
        "Reviewed by (QA)",
        "Released by (QA)",
        "Time since conditioning (window)",
    ):
        assert text in md, text


def test_record_md_user_text_cannot_create_markup(batch):
    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    # no raw tag survives: every < is backslash-escaped
    assert re.search(r"(?<!\\)<(script|b|i|img)\b", md) is None
    assert "\\<script\\>alert(1)\\</script\\>" in md
    # no link, emphasis, code span, strike-through or table cell from user text
    assert "[link](" not in md
    assert "\\[link\\](http://evil.example)" in md
    assert "\\*star\\* \\_under\\_" in md
    assert "\\| pipe \\# hash \\`code\\` \\~\\~gone\\~\\~" in md


def test_md_escape_folds_newlines_and_escapes_markup():
    out = render.md_escape("# title\n| a | b |\n- item <x> & y\\")
    assert "\n" not in out
    assert out == "\\# title \\| a \\| b \\| - item \\<x\\> \\& y\\\\"
    assert render.md_escape(None) == ""


def test_md_escape_keeps_table_rows_intact(batch):
    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    table_rows = [line for line in md.splitlines() if line.startswith("| Medium lot")]
    assert len(table_rows) == 1
    # a row has as many unescaped pipes as the header: 5 columns, 6 pipes
    assert len(re.findall(r"(?<!\\)\|", table_rows[0])) == 6


# --- electronic signatures in the record --------------------------------------------------
EVIL_NAME = "Eve <i>Evil</i> | *x*"


@pytest.fixture
def signed(service: tuple[Services, Clock], protocol_file: Path):
    """A batch taken through verification, a correction after it, a deviation's
    investigation and closure; returns (svc, clock, batch_id) before the re-verification."""
    svc, clock = service
    svc.people.add("eve", EVIL_NAME, "reviewer", PASSWORD, "root", PASSWORD)
    svc.gate.prove("eve", PASSWORD, "log in")
    svc.batches.start("cm-render-test", "alice", "S1")
    clock.advance(minutes=5)  # 08:05
    svc.batches.skip("S1", "wash", "alice", reason="not needed")
    svc.batches.record(
        "S1",
        "conditioning",
        {"serum_percent": "0 %", "medium_lot": "L1"},
        "alice",
        password=PASSWORD,
    )
    clock.now = T0 + timedelta(days=2)  # 2026-01-12 08:00
    svc.batches.record("S1", "collection", {"volume": "500 mL"}, "alice", password=PASSWORD)
    clock.advance(minutes=30)  # 08:30: pore size out of spec -> critical DEV-0001
    svc.batches.record(
        "S1", "filtration", {"pore_size": "0.45 um", "integrity": "yes"}, "alice", password=PASSWORD
    )
    clock.advance(minutes=15)  # 08:45
    svc.quality.verify_step("S1", "filtration", "bob", PASSWORD)
    clock.advance(minutes=15)  # 09:00: a correction after the verification
    svc.batches.correct("S1", "filtration", {"pore_size": "0.22 um"}, "alice", reason="typo")
    clock.advance(minutes=15)  # 09:15
    svc.batches.record("S1", "use_fresh", {"recipient": "study 7"}, "alice", password=PASSWORD)
    clock.advance(minutes=15)  # 09:30
    svc.quality.investigate(
        "DEV-0001",
        "bob",
        justification="a 0.22 um filter was used; 0.45 was a typo",
        impact="none: refiltered",
    )
    clock.advance(minutes=30)  # 10:00
    svc.quality.close_deviation(
        "DEV-0001",
        "quinn",
        PASSWORD,
        "accepted",
        "refiltered through 0.22 um, retested",
        capa="CAPA-42 relabel filter stock",
        severity="major",
        severity_reason="caught before use",
    )
    return svc, clock, "S1"


def _finish(svc: Services, clock: Clock, batch_id: str) -> None:
    clock.advance(minutes=10)  # 10:10: a fresh verification of the corrected step
    svc.quality.verify_step(batch_id, "filtration", "rita", PASSWORD)
    clock.advance(minutes=10)  # 10:20
    svc.quality.sign_review(batch_id, "eve", PASSWORD, comment="record complete <ok>")
    clock.advance(minutes=10)  # 10:30
    svc.quality.release(batch_id, "quentin", PASSWORD, reason="meets specification")


def test_record_shows_each_step_signature_with_name_user_time_and_meaning(signed):
    svc, clock, batch_id = signed
    _finish(svc, clock, batch_id)
    html = render.render_record(
        record_view(svc.batches.batch(batch_id), generated_at=GENERATED), "html"
    )
    performed = html[html.index('id="step-collection"') :]
    performed = performed[: performed.index("</section>")]
    for text in (
        "<b>performed</b>",
        "Alice Archer",
        ">alice<",
        "technician",
        "2026-01-12 08:00:00 UTC",
    ):
        assert text in performed, text
    filtration = html[html.index('id="step-filtration"') :]
    filtration = filtration[: filtration.index("</section>")]
    # bob's verification predates the correction: printed, marked superseded
    bob = filtration[filtration.index("Bob Baker") :]
    bob = bob[: bob.index("</tr>")]
    assert "2026-01-12 08:45:00 UTC" in bob and SUPERSEDED in bob
    rita = filtration[filtration.index("Rita Reviewer") :]
    rita = rita[: rita.index("</tr>")]
    assert "<b>verified</b>" in filtration
    assert "2026-01-12 10:10:00 UTC" in rita and "valid" in rita and SUPERSEDED not in rita
    assert filtration.count("<b>verified</b>") == 2
    assert MISSING_VERIFICATION not in html
    assert "Verified by (second person)" not in html  # signed: no blank line left


def test_record_marks_a_verification_superseded_and_missing_after_a_correction(signed):
    svc, _clock, batch_id = signed
    batch = svc.batches.batch(batch_id)
    assert not batch.steps["filtration"].verified and batch.steps["filtration"].verifications
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    assert html.count(SUPERSEDED) == 1
    assert MISSING_VERIFICATION in html
    assert "Verified by (second person)" in html  # the blank line for the re-verification
    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    assert f"**{SUPERSEDED}**" in md
    assert f"**{MISSING_VERIFICATION}**" in md
    assert "| **verified** | Bob Baker | bob | technician | 2026-01-12 08:45:00 UTC |" in md


def test_record_shows_the_deviation_investigation_and_signed_closure(signed):
    svc, _clock, batch_id = signed
    for fmt in ("html", "md"):
        text = render.render_record(
            record_view(svc.batches.batch(batch_id), generated_at=GENERATED), fmt
        )
        head = '<section class="dev" id="dev-DEV-0001">' if fmt == "html" else "### DEV-0001"
        dev = text[text.index(head) :]
        assert "· major · closed (accepted)" in dev
        for part in (
            "bob",
            "2026-01-12 09:30:00 UTC",  # investigated at
            "a 0.22 um filter was used; 0.45 was a typo",
            "none: refiltered",
            "refiltered through 0.22 um, retested",
            "CAPA-42 relabel filter stock",
            "critical → ",  # severity changed from critical
            "caught before use",
            "Quinn Quality",
            "quinn",
            "approved",  # the meaning of an accepting closure's signature
            "2026-01-12 10:00:00 UTC",
        ):
            assert part in dev, (fmt, part)


def test_record_shows_the_review_and_release_signatures_and_the_decision(signed):
    svc, clock, batch_id = signed
    _finish(svc, clock, batch_id)
    batch = svc.batches.batch(batch_id)
    assert batch.state == "released"
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    qa = html[html.index("<h2>QA review and release</h2>") :]
    assert "Decision: <b>RELEASED</b>" in qa and "meets specification" in qa
    release = qa[qa.index("Released by (QA)") :]
    release = release[: release.index("</tr>")]
    for text in ("Quentin Quality", "quentin", "<b>released</b>", "2026-01-12 10:30:00 UTC"):
        assert text in release, text
    review = qa[qa.index("Reviewed by (QA)") :]
    review = review[: review.index("</tr>")]
    assert "Eve &lt;i&gt;Evil&lt;/i&gt; | *x*" in review  # the printed name, escaped
    assert "record complete &lt;ok&gt;" in review and "<b>reviewed</b>" in review
    assert 'class="blank"' not in qa  # every line is signed: no blank sign line
    assert "<i>Evil</i>" not in html

    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    assert "Decision: **RELEASED** by quentin at 2026-01-12 10:30:00 UTC" in md
    assert (
        "| Released by (QA) | Quentin Quality | quentin | **released** | 2026-01-12 10:30:00 UTC "
        "| meets specification |"
    ) in md
    assert "Eve \\<i\\>Evil\\</i\\> \\| \\*x\\*" in md
    assert "____" not in md.split("## QA review and release")[1]


def test_a_rejected_batch_shows_the_rejection_and_no_blank_release_line(signed):
    svc, clock, batch_id = signed
    clock.advance(minutes=5)
    svc.quality.reject(batch_id, "quentin", PASSWORD, reason="filter integrity failed")
    batch = svc.batches.batch(batch_id)
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    qa = html[html.index("<h2>QA review and release</h2>") :]
    assert "Decision: <b>REJECTED</b>" in qa
    rejected = qa[qa.index("Rejected by (QA)") :]
    rejected = rejected[: rejected.index("</tr>")]
    assert "Quentin Quality" in rejected and "<b>rejected</b>" in rejected
    assert "filter integrity failed" in rejected
    assert "Released by (QA)" not in qa
    assert "Reviewed by (QA)" in qa  # never reviewed: its blank line stays
    md = render.render_record(record_view(batch, generated_at=GENERATED), "md")
    assert "Released by (QA) ____" not in md and "Reviewed by (QA) ____" in md


def test_a_step_recorded_without_a_password_has_no_signature_table(batch):
    html = render.render_record(record_view(batch, generated_at=GENERATED), "html")
    conditioning = html[html.index('id="step-conditioning"') :]
    conditioning = conditioning[: conditioning.index("</section>")]
    assert 'class="esig"' not in conditioning
    assert MISSING_VERIFICATION in html  # filtration: done, never verified


def test_the_signed_record_as_pdf(signed):
    svc, clock, batch_id = signed
    _finish(svc, clock, batch_id)
    pdf = render.render_record(
        record_view(svc.batches.batch(batch_id), generated_at=GENERATED), "pdf"
    )
    assert pdf.startswith(b"%PDF")


# --- the SOP checklist --------------------------------------------------------------------
def test_checklist_html_has_boxes_fields_specs_sources_and_sign_lines(protocol_file):
    protocol = load_file(protocol_file)
    html = render.render_checklist(checklist_view(protocol, generated_at=GENERATED), "html")
    assert html.startswith("<!DOCTYPE html>")
    for text in (
        "Render test conditioned medium",
        "cm-render-test",
        protocol.content_hash(),
        "A small protocol for the rendering tests",
        "Nasiri et al. 2026",
        "(optional)",
        "Branch downstream: choose one of Use immediately / Lyophilisation",
        "Wash the monolayer twice with PBS.",
        "Serum in conditioning medium",
        "&lt;= 2 %",  # spec
        "alert if above 0 %",  # alert band, in words
        "0-100 %",  # hard limits
        "site choice",
        "24-72 h after conditioning",
        "Done by",
        "Date/time",
        "Verified by",
    ):
        assert text in html, text
    assert html.count('<span class="box"></span>') >= 3 + 2 + 2  # checks, yes/no, arms
    assert html.count("Verified by") == 1  # only filtration has verify


def test_checklist_md_has_task_boxes_and_fields(protocol_file):
    protocol = load_file(protocol_file)
    md = render.render_checklist(checklist_view(protocol, generated_at=GENERATED), "md")
    assert md.startswith("# SOP checklist: Render test conditioned medium")
    assert "- [ ] PBS lot and expiry checked" in md
    assert "- [ ] Every vessel is labelled" in md
    row = (  # the source is a footnote; the entered value and initials are blank
        "| Serum in conditioning medium | % | \\<= 2 % \\[1\\] | alert if above 0 % | 0-100 % | | |"
    )
    assert row in md
    assert "\\[1\\] Source: Nasiri et al. 2026" in md
    assert "Window: 24-72 h after conditioning" in md
    assert "Done by ____" in md
    assert md.count("Verified by ____") == 1
    assert protocol.content_hash() in md


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_checklist_of_every_bundled_protocol_shows_every_step(fmt):
    files = sorted(protocols_dir().glob("*.yaml"))
    if not files:
        pytest.skip("no bundled protocols yet")
    for path in files:
        protocol = load_file(path)
        text = render.render_checklist(checklist_view(protocol, generated_at=GENERATED), fmt)
        for step in protocol.steps:
            title = step.title if fmt == "html" else str(render.md_escape(step.title))
            if fmt == "html":
                title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert title in text, f"{path.name}: {step.title}"


# --- formats and files --------------------------------------------------------------------
def test_the_record_as_pdf(batch):
    record = render.render_record(record_view(batch, generated_at=GENERATED), "pdf")
    assert isinstance(record, bytes) and record.startswith(b"%PDF")


def test_the_checklist_as_pdf(protocol_file):
    checklist = render.render_checklist(
        checklist_view(load_file(protocol_file), generated_at=GENERATED), "pdf"
    )
    assert isinstance(checklist, bytes) and checklist.startswith(b"%PDF")


@pytest.mark.parametrize("fmt", ["pdf ", "docx", "HTML", ""])
def test_an_unknown_format_is_refused_naming_the_accepted_ones(batch, protocol_file, fmt):
    with pytest.raises(ValueError, match="html, md, pdf"):
        render.render_record(record_view(batch), fmt)
    with pytest.raises(ValueError, match="html, md, pdf"):
        render.render_checklist(checklist_view(load_file(protocol_file)), fmt)


def test_to_pdf_without_weasyprint_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_weasyprint(name, *args, **kwargs):
        if name == "weasyprint" or name.startswith("weasyprint."):
            raise ImportError("No module named 'weasyprint'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weasyprint)
    with pytest.raises(MissingExtra, match="PDF output needs WeasyPrint") as caught:
        render.to_pdf("<p>x</p>")
    assert caught.value.hint == Hint("install_extra", extra="pdf", package="weasyprint")
    assert "pip install 'cmprep[pdf]'" in say(caught.value)


def test_write_output_writes_text_and_bytes_and_leaves_no_temp_file(tmp_path: Path):
    out = render.write_output("<p>record</p>", tmp_path / "record.html")
    assert out == tmp_path / "record.html"
    assert out.read_text(encoding="utf-8") == "<p>record</p>"
    render.write_output(b"%PDF-1.7 x", tmp_path / "record.pdf")
    assert (tmp_path / "record.pdf").read_bytes() == b"%PDF-1.7 x"
    render.write_output("second", tmp_path / "record.html")  # replaces
    assert (tmp_path / "record.html").read_text(encoding="utf-8") == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.html", "record.pdf"]


def test_write_output_that_fails_leaves_neither_temp_file_nor_half_a_record(tmp_path, monkeypatch):
    target = tmp_path / "record.md"
    target.write_text("old complete record", encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        render.write_output("new record", target)
    assert target.read_text(encoding="utf-8") == "old complete record"
    assert [p.name for p in tmp_path.iterdir()] == ["record.md"]


def test_a_citation_short_form():
    from cmprep.protocol.models import Source

    assert render.cite_short(Source(id="a", citation="Nasiri et al 2026")) == "Nasiri et al. 2026"
    assert (
        render.cite_short(Source(id="b", citation="Smith J. A paper. J X 2019; 1:2"))
        == "Smith 2019"
    )
    assert render.cite_short(Source(id="c", citation="no year in here")) == "c"
