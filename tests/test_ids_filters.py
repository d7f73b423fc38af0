"""Identifiers in any case, choices in any case, filters that say what they accept, times
in the site's zone, document formats from the file name, and a reader that goes away.

All at the command line, as a technician and a reviewer type them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import click
import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, approve_bundled, present, seed_people

from cmprep.cli import Shell, main
from cmprep.cli.common import need_output
from cmprep.domain import ids
from cmprep.domain.clock import local, parse_day_or_time
from cmprep.service import Services
from cmprep.store import open_store


@pytest.fixture
def cli(db_path, monkeypatch, clock):
    """cmprep in-process on a database with the test people and the bundled protocols;
    each command moves the test clock on (a day for a collection)."""
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    approve_bundled(seed_people(Services(open_store(str(db_path), create=True), clock=clock)))
    shell = Shell(lambda db: present(Services(open_store(db), clock=clock)))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, user: str | None = "alice"):
        env = {"CMPREP_USER": user} if user else {}
        clock.advance(hours=24 if "collection" in args else 0.25)
        return runner.invoke(
            main, list(args), input=input, env=env, obj=shell, catch_exceptions=False
        )

    return invoke


def _pairs(step: str) -> list[str]:
    return [f"{k}={v}" for k, v in GOOD[step].items()]


# --- one id rule -------------------------------------------------------------------------
def test_ids_compare_ignoring_case_and_suggest_the_closest():
    assert ids.key("LOT-042") == ids.key("lot-042")
    assert ids.same("demo-001", ["DEMO-001", "DEMO-002"]) == "DEMO-001"
    assert ids.same("demo-003", ["DEMO-001"]) is None
    assert ids.closest("DEMO-01", ["DEMO-001", "CM-20261102-001", "X"]) == ["DEMO-001"]
    assert ids.suggestion("zzzz", ["DEMO-001"]) == ""
    assert ids.same_kind("Biosafety-Cabinet", "biosafety cabinet")
    assert not ids.same_kind("centrifuge", "biosafety cabinet")


def test_a_batch_is_found_in_any_case_and_a_case_twin_is_refused(cli):
    assert cli("batch", "start", STANDARD, "--id", "LOT-042").exit_code == 0
    status = cli("batch", "status", "lot-042")
    assert status.exit_code == 0 and "Batch LOT-042:" in status.output
    twin = cli("batch", "start", STANDARD, "--id", "lot-042")
    assert twin.exit_code == 1
    assert "batch LOT-042 already exists" in twin.output and "choose another id" in twin.output
    recorded = cli("batch", "record", "lot-042", "isolation", *_pairs("isolation"))
    assert recorded.exit_code == 0 and "Next: expansion" in recorded.output
    trail = cli("audit", "trail", "Lot-042", "--format", "json")
    assert [r["stream"] for r in json.loads(trail.output)] == ["LOT-042", "LOT-042"]


def test_an_unknown_batch_names_the_closest_ids_not_the_last_ten(cli):
    for batch_id in ("DEMO-001", "DEMO-002", "CM-7"):
        assert cli("batch", "start", STANDARD, "--id", batch_id).exit_code == 0
    result = cli("batch", "status", "DEMO-01")
    assert result.exit_code == 1
    assert "no batch 'DEMO-01'; did you mean DEMO-001 or DEMO-002?" in result.output
    assert "CM-7" not in result.output
    far = cli("batch", "status", "QQQQ")
    assert far.exit_code == 1 and "no batch 'QQQQ'" in far.output and "did you" not in far.output


def test_an_unknown_batch_is_looked_up_in_the_index_never_in_every_batch(cli, db_path, clock):
    svc = Services(open_store(str(db_path)), clock=clock)

    def every_batch() -> list[str]:
        raise AssertionError("read every batch id")

    svc.store.batch_ids = every_batch  # type: ignore[method-assign]
    from cmprep.errors import NotFound

    with pytest.raises(NotFound, match="no batches yet"):
        svc.batches.batch("B9")
    svc.close()


def test_lots_and_instruments_are_one_id_whatever_the_case(cli):
    assert (
        cli("materials", "add", "PBS-1", "--material", "PBS", "--expiry", "2027-12-31").exit_code
        == 0
    )
    twin = cli("materials", "add", "pbs-1", "--material", "PBS", "--expiry", "2027-12-31")
    assert twin.exit_code == 1
    assert "lot pbs-1 is already registered as PBS-1" in twin.output
    assert (
        cli(
            "equipment", "add", "CF-02", "--kind", "centrifuge", "--calibration-due", "2027-06-30"
        ).exit_code
        == 0
    )
    again = cli(
        "equipment", "add", "cf-02", "--kind", "centrifuge", "--calibration-due", "2027-06-30"
    )
    assert again.exit_code == 1 and "already registered as CF-02" in again.output
    calibrated = cli("equipment", "calibrate", "cf-02", "--next-due", "2027-09-30")
    assert calibrated.exit_code == 0 and "CF-02: calibration recorded" in calibrated.output
    _started_to(cli, "pbs_wash")
    used = cli("batch", "record", "B1", "pbs_wash", *_pairs("pbs_wash"), "--lot", "pbs-1")
    assert used.exit_code == 0, used.output
    where = cli("materials", "where-used", "PBS-1", "--format", "json")
    assert [r["batch_id"] for r in json.loads(where.output)] == ["B1"]


def test_an_unknown_lot_or_instrument_suggests_the_registered_one(cli):
    cli("materials", "add", "PBS-26-118", "--material", "PBS", "--expiry", "2027-12-31")
    _started_to(cli, "pbs_wash")
    result = cli("batch", "record", "B1", "pbs_wash", *_pairs("pbs_wash"), "--lot", "PBS-26-11")
    assert result.exit_code == 1
    assert "no lot 'PBS-26-11'; did you mean PBS-26-118?" in result.output
    missing = cli("equipment", "calibrate", "CF-2", "--next-due", "2027-09-30")
    assert missing.exit_code == 1 and "no equipment 'CF-2'" in missing.output


def test_a_deviation_is_found_in_any_case_and_an_unknown_one_suggests(cli):
    _started_to(cli, "pbs_wash")
    opened = cli("deviation", "open", "B1", "--step", "pbs_wash", "--severity", "Major",
                 "--reason", "flask dropped")  # fmt: skip
    assert opened.exit_code == 0 and "(major)" in opened.output
    assert cli("deviation", "show", "dev-0001").exit_code == 0
    unknown = cli("deviation", "show", "DEV-0002")
    assert unknown.exit_code == 1
    assert "no deviation 'DEV-0002'; did you mean DEV-0001?" in unknown.output


# --- choices in any case -----------------------------------------------------------------
def test_choices_are_accepted_in_any_case_and_kept_as_written_in_the_list(cli):
    added = cli("user", "add", "tina", "--full-name", "Tina Tech", "--role", "Technician",
                "--as", "root", "--password-stdin",
                input=f"{PASSWORD}\ntina initial password\n")  # fmt: skip
    assert added.exit_code == 0, added.output
    people = json.loads(cli("user", "list", "--format", "JSON").output)
    assert next(p for p in people if p["name"] == "tina")["role"] == "technician"
    assert cli("deviation", "list", "--severity", "MAJOR", "--status", "Open").exit_code == 0


# --- filters that say what they accept --------------------------------------------------
def test_batch_list_filters_name_the_states_and_protocols_there_are(cli):
    _started_to(cli, "pbs_wash")
    state = cli("batch", "list", "--state", "awaiting-review")
    assert state.exit_code == 0 and "(none)" in state.output  # a real state, no batch in it
    at = cli("batch", "list", "--state", "PBS_WASH", "--format", "csv")
    assert at.exit_code == 0 and "B1" in at.output
    bogus = cli("batch", "list", "--state", "waiting")
    assert bogus.exit_code == 1
    assert "no batch state 'waiting'" in bogus.output
    assert "awaiting_review, on_hold, released, rejected" in bogus.output
    assert "pbs_wash" in bogus.output
    protocol = cli("batch", "list", "--protocol", "nonexistent")
    assert protocol.exit_code == 1
    assert "no protocol 'nonexistent'" in protocol.output and STANDARD in protocol.output
    typed = cli("batch", "list", "--protocol", STANDARD.upper(), "--format", "csv")
    assert typed.exit_code == 0 and "B1" in typed.output
    deviations = cli("deviation", "list", "--protocol", "nonexistent")
    assert deviations.exit_code == 1 and "no protocol 'nonexistent'" in deviations.output
    assert cli("deviation", "list", "--protocol", STANDARD.upper()).exit_code == 0


def test_audit_trail_of_an_unknown_stream_lists_the_streams(cli):
    result = cli("audit", "trail", "@bogus")
    assert result.exit_code == 1
    assert "no stream '@bogus'" in result.output and "@users" in result.output
    assert "@materials" in result.output
    users = cli("audit", "trail", "@USERS", "--format", "csv")
    assert users.exit_code == 0 and "user added: alice" in users.output


def test_dates_are_iso_and_anything_else_says_the_expected_form(cli):
    bad = cli("deviation", "list", "--since", "01/10/2026")
    assert bad.exit_code == 2
    assert "'01/10/2026' is not a date; expected YYYY-MM-DD" in bad.output
    assert "T00:00Z" not in bad.output
    assert cli("deviation", "list", "--since", "2026-10-01").exit_code == 0
    assert cli("deviation", "list", "--since", "2026-10-01T08:00+02:00").exit_code == 0
    naive = cli("deviation", "list", "--until", "2026-10-01T08:00")
    assert naive.exit_code == 2 and "has no time zone" in naive.output
    assert parse_day_or_time("2026-10-01") == "2026-10-01T00:00:00Z"


def test_the_audit_report_covers_a_period_with_since_and_until(cli, clock):
    _started_to(cli, "pbs_wash")  # 2026-11-02
    cli("deviation", "open", "B1", "--step", "pbs_wash", "--severity", "minor", "--reason", "x")
    inside = cli(
        "audit", "report", "--since", "2026-10-01", "--until", "2027-01-01", "--format", "md"
    )
    assert inside.exit_code == 0 and "DEV-0001" in inside.output
    before = cli(
        "audit", "report", "--since", "2026-07-01", "--until", "2026-10-01", "--format", "md"
    )
    assert before.exit_code == 0 and "DEV-0001" not in before.output
    backwards = cli("audit", "report", "--since", "2026-10-01", "--until", "2026-07-01")
    assert (
        backwards.exit_code == 1
        and "ends" in backwards.output
        and "before it starts" in backwards.output
    )
    bad = cli("audit", "report", "--until", "Q3")
    assert bad.exit_code == 2 and "expected YYYY-MM-DD" in bad.output


# --- times in the site's zone ------------------------------------------------------------
def test_times_are_shown_in_the_sites_zone_and_kept_in_utc(cli):
    assert local("2026-11-02T08:00:00Z", "Europe/Zurich") == "2026-11-02 09:00:00 +01:00"
    assert local("2026-07-02T08:00:00Z", "Europe/Zurich") == "2026-07-02 10:00:00 +02:00"
    assert local("2026-11-02T08:00:00Z") == "2026-11-02 08:00:00 +00:00"
    assert local("not a time", "UTC") == "not a time"
    refused = cli("site", "set", "timezone", "Mars/Olympus", "--reason", "x", "--as", "root",
                  "--password-stdin", input=PASSWORD + "\n")  # fmt: skip
    assert refused.exit_code == 1 and "not a time zone" in refused.output
    changed = cli("site", "set", "timezone", "Europe/Zurich", "--reason", "site in Zurich",
                  "--as", "root", "--password-stdin", input=PASSWORD + "\n")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert cli("batch", "start", STANDARD, "--id", "B1").exit_code == 0
    status = cli("batch", "status", "B1")
    assert (
        "+01:00" in status.output and "Z" not in status.output.split("started by")[1].split("\n")[0]
    )
    data = json.loads(cli("batch", "status", "B1", "--format", "json").output)
    assert data["started_at"].endswith("Z")
    trail = cli("audit", "trail", "B1")
    assert "+01:00" in trail.output
    assert json.loads(cli("audit", "trail", "B1", "--format", "json").output)[0]["at"].endswith("Z")


def test_a_typed_date_is_its_midnight_in_the_sites_zone(cli, clock):
    """An auditor in Zurich asking for what happened since 3 November means Zurich's
    midnight: a deviation opened at 00:30 there (23:30 UTC the day before) is in."""
    assert parse_day_or_time("2026-07-01", "Europe/Zurich") == "2026-06-30T22:00:00Z"
    assert parse_day_or_time("2026-01-15", "Europe/Zurich") == "2026-01-14T23:00:00Z"
    assert parse_day_or_time("2026-07-01T08:00Z", "Europe/Zurich") == "2026-07-01T08:00:00Z"
    changed = cli("site", "set", "timezone", "Europe/Zurich", "--reason", "site in Zurich",
                  "--as", "root", "--password-stdin", input=PASSWORD + "\n")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    _started_to(cli, "pbs_wash")
    clock.now = datetime(2026, 11, 2, 23, 30, tzinfo=timezone.utc)  # 00:30 on 3 Nov in Zurich
    opened = cli("deviation", "open", "B1", "--step", "pbs_wash", "--severity", "minor",
                 "--reason", "x")  # fmt: skip
    assert opened.exit_code == 0, opened.output
    since = cli("deviation", "list", "--since", "2026-11-03", "--format", "csv")
    until = cli("deviation", "list", "--until", "2026-11-03", "--format", "csv")
    assert "DEV-0001" in since.output and "DEV-0001" not in until.output
    report = cli("audit", "report", "--since", "2026-11-03", "--format", "md")
    assert report.exit_code == 0 and "DEV-0001" in report.output
    utc = cli("deviation", "list", "--since", "2026-11-03T00:00Z", "--format", "csv")
    assert "DEV-0001" not in utc.output  # a time with its zone is that time


# --- documents: the format from the file name -------------------------------------------
def test_the_output_file_name_decides_the_format_and_a_mismatch_is_refused(cli, tmp_path):
    assert need_output(None, "record.PDF") == "pdf"
    assert need_output(None, "record.md") == "md"
    assert need_output(None, None) == "html" and need_output(None, "record.txt") == "html"
    assert need_output("pdf", "record.pdf") == "pdf"
    with pytest.raises(click.UsageError, match="PDF output needs -o FILE"):
        need_output("pdf", None)
    with pytest.raises(click.UsageError, match="names a PDF file but --format html"):
        need_output("html", "record.pdf")
    assert cli("batch", "start", STANDARD, "--id", "B1").exit_code == 0
    md = tmp_path / "record.md"
    assert cli("batch", "record-doc", "B1", "-o", str(md)).exit_code == 0
    assert md.read_text().lstrip().startswith(("#", "<!--")) and "<html" not in md.read_text()
    for args in (
        ("batch", "record-doc", "B1"),
        ("checklist", STANDARD),
        ("audit", "report"),
    ):
        mismatch = cli(*args, "--format", "html", "-o", str(tmp_path / "x.pdf"))
        assert mismatch.exit_code == 2 and "names a PDF file but --format html" in mismatch.output
        assert not (tmp_path / "x.pdf").exists()
    checklist = tmp_path / "checklist.md"
    assert cli("checklist", STANDARD, "-o", str(checklist)).exit_code == 0
    assert "<html" not in checklist.read_text()


@pytest.mark.slow
def test_a_pdf_file_name_gives_a_pdf(cli, tmp_path):
    pytest.importorskip("weasyprint")
    assert cli("batch", "start", STANDARD, "--id", "B1").exit_code == 0
    out = tmp_path / "record.pdf"
    assert cli("batch", "record-doc", "B1", "-o", str(out)).exit_code == 0
    assert out.read_bytes().startswith(b"%PDF")


# --- a reader that goes away -------------------------------------------------------------
def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    db = tmp_path / "pipe.db"
    env = {**os.environ, "CMPREP_DB": str(db), "PYTHONPATH": os.pathsep.join(sys.path)}
    init = subprocess.run(
        [sys.executable, "-m", "cmprep", "init", "--admin", "root", "--full-name", "Ada Admin",
         "--password-stdin"],
        input=f"{PASSWORD}\n", text=True, capture_output=True, env=env, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmprep", "audit", "trail", "@users"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head` that read nothing and left
    err = proc.stderr.read().decode()
    assert proc.wait() in (0, 141)
    assert "Error" not in err and "Broken pipe" not in err and "Traceback" not in err


def test_broken_pipe_in_a_command_exits_141_without_a_message(cli, monkeypatch):
    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    assert cli("batch", "start", STANDARD, "--id", "B1").exit_code == 0
    monkeypatch.setattr(click, "echo", closed)
    result = cli("batch", "status", "B1")
    assert result.exit_code == 141 and "Error" not in result.output


def _started_to(cli, upto: str) -> None:
    assert cli("batch", "start", STANDARD, "--id", "B1").exit_code == 0
    for step in ("isolation", "expansion", "pbs_wash", "conditioning"):
        if step == upto:
            return
        assert cli("batch", "record", "B1", step, *_pairs(step)).exit_code == 0
