"""The command line as a technician, a reviewer and an auditor use it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import GOOD, STANDARD, approve_bundled, present, seed_people

from cmprep.cli import Shell, main
from cmprep.service import Services
from cmprep.store import open_store


@pytest.fixture
def cli(db_path, monkeypatch, clock):
    """Runs cmprep in-process; the service gets the test clock, which each command moves on."""
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


def _started(cli, upto: str | None = None) -> None:
    assert cli("batch", "start", STANDARD, "--id", "B1").exit_code == 0
    for step in ("isolation", "expansion", "pbs_wash", "conditioning"):
        if step == upto:
            return
        assert cli("batch", "record", "B1", step, *_pairs(step)).exit_code == 0


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("command", list(_commands(main)), ids=" ".join)
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "cmprep " in result.output


def test_help_loads_none_of_the_heavy_libraries():
    code = (
        "import sys; from cmprep.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('pydantic', 'jinja2', 'transitions', 'weasyprint', 'yaml', 'sqlite3', 'psycopg', 'starlette', 'uvicorn', 'cryptography') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out


def test_protocol_list_and_show_json_give_the_full_model(cli):
    listed = cli("protocol", "list")
    assert STANDARD in listed.output and "cm-hypoxia-uc" in listed.output
    data = json.loads(cli("protocol", "show", STANDARD, "--format", "json").output)
    spin = next(s for s in data["steps"] if s["id"] == "spin")
    rcf = next(p for p in spin["parameters"] if p["name"] == "rcf")
    assert (rcf["spec"]["min"], rcf["spec"]["max"], rcf["unit"]) == (300, 500, "x g")
    assert len(data["content_hash"]) == 64
    assert "spec 300-500 x g" in cli("protocol", "show", STANDARD).output


def test_unknown_protocol_is_named_with_the_bundled_ones(cli):
    result = cli("protocol", "show", "cm-nope")
    assert result.exit_code == 1
    assert "no protocol 'cm-nope'" in result.output and STANDARD in result.output


def test_spin_at_650g_tells_the_technician_a_deviation_opened(cli):
    _started(cli)
    cli("batch", "record", "B1", "collection", *_pairs("collection"))
    result = cli("batch", "record", "B1", "spin", "rcf=650 x g", "duration=10", "temperature=4")
    assert result.exit_code == 0
    assert (
        "Relative centrifugal force 650 x g is above the protocol's 300-500 x g: deviation DEV-0001 opened (major)"
        in result.output
    )
    assert "Next: filtration" in result.output


def test_a_refused_record_exits_non_zero_and_writes_nothing(cli):
    _started(cli, upto="expansion")
    result = cli("batch", "record", "B1", "expansion", "confluence=130", "passage=3")
    assert result.exit_code == 1
    assert "impossible" in result.output and "nothing was recorded" in result.output
    status = json.loads(cli("batch", "status", "B1", "--format", "json").output)
    assert status["events"] == 2 and status["due"][0]["step"] == "expansion"


def test_out_of_order_record_names_the_step_due(cli):
    _started(cli)
    result = cli("batch", "record", "B1", "filtration", *_pairs("filtration"))
    assert result.exit_code == 1
    assert "the step due is collection" in result.output


def test_a_write_without_a_person_is_refused(cli):
    result = cli("batch", "start", STANDARD, user=None)
    assert result.exit_code == 1 and "--as NAME" in result.output
    assert cli("batch", "list").output.strip() == "(none)"


@pytest.mark.parametrize("bad", ["rcf", "=400", "rcf=1 rcf=2"])
def test_malformed_name_value_pairs_are_usage_errors(cli, bad):
    _started(cli)
    result = cli("batch", "record", "B1", "collection", *bad.split(" "))
    assert (result.exit_code == 2 and "NAME=VALUE" in result.output) or "twice" in result.output


def test_status_shows_values_in_protocol_units_and_what_is_due(cli):
    _started(cli, upto="collection")
    text = cli("batch", "status", "B1").output
    assert "confluence = 75 %" in text
    assert "Due: collection" in text
    data = json.loads(cli("batch", "status", "B1", "--format", "json").output)
    exp = next(s for s in data["steps"] if s["step"] == "expansion")
    assert exp["values"]["confluence"]["display"] == "75 %" and exp["by"] == "alice"


def test_correct_skip_hold_resume_from_the_command_line(cli):
    _started(cli, upto="pbs_wash")
    assert "reason" in cli("batch", "correct", "B1", "expansion", "confluence=78").output
    result = cli("batch", "correct", "B1", "expansion", "confluence=78", "--reason", "misread")
    assert result.exit_code == 0
    assert "corrected from 75 %" in cli("batch", "status", "B1").output
    assert cli("batch", "skip", "B1", "pbs_wash", "--reason", "x").exit_code == 1
    assert cli("batch", "hold", "B1", "--reason", "alarm").exit_code == 0
    assert "on hold" in cli("batch", "record", "B1", "pbs_wash", *_pairs("pbs_wash")).output
    assert cli("batch", "resume", "B1", "--reason", "cleared").exit_code == 0
    assert cli("batch", "record", "B1", "pbs_wash", *_pairs("pbs_wash")).exit_code == 0


def test_deviation_list_exports_csv_and_json(cli):
    _started(cli)
    cli("batch", "record", "B1", "collection", *_pairs("collection"))
    cli("batch", "record", "B1", "spin", "rcf=650", "duration=30", "temperature=4")
    rows = list(csv.DictReader(io.StringIO(cli("deviation", "list", "--format", "csv").output)))
    assert [(r["deviation_id"], r["parameter"], r["severity"]) for r in rows] == [
        ("DEV-0001", "rcf", "major"),
        ("DEV-0002", "duration", "minor"),
    ]
    data = json.loads(
        cli("deviation", "list", "--batch", "B1", "--severity", "minor", "--format", "json").output
    )
    assert [d["deviation_id"] for d in data] == ["DEV-0002"]
    assert "DEV-0001" in cli("deviation", "list").output


def test_batch_list_filters_by_state(cli):
    _started(cli)
    cli("batch", "start", STANDARD, "--id", "B2")
    cli("batch", "hold", "B2", "--reason", "waiting for medium")
    rows = json.loads(cli("batch", "list", "--state", "on_hold", "--format", "json").output)
    assert [r["batch_id"] for r in rows] == ["B2"]


def test_csv_export_neutralises_spreadsheet_formulas():
    from cmprep.render.output import csv_safe as _csv_safe

    assert _csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_safe("-4") == "-4" and _csv_safe(3) == 3


def test_record_and_checklist_are_written_to_files(cli, tmp_path):
    _started(cli)
    html = tmp_path / "r.html"
    result = cli("record", "B1", "-o", str(html))
    assert result.exit_code == 0 and "written to" in result.output
    assert "B1" in html.read_text()
    md = cli("checklist", STANDARD, "--format", "md").output
    assert "Low-speed spin" in md
    assert cli("record", "B1", "--format", "pdf").exit_code == 2  # pdf needs -o


def test_guided_mode_reasks_a_refused_value_and_saves_the_step(cli):
    cli("batch", "start", STANDARD, "--id", "B1")
    # isolation: a bad choice, then a good one; donor id; no note; save; then stop at expansion
    answers = "\n".join(["kidney", "UC", "D-9", "", "y", ""]) + "\n"
    result = cli("batch", "run", "B1", input=answers)
    assert "refused" in result.output and "is not one of" in result.output
    assert "Saved isolation" in result.output
    assert "Stopped. Every step you confirmed is saved" in result.output
    status = json.loads(cli("batch", "status", "B1", "--format", "json").output)
    iso = next(s for s in status["steps"] if s["step"] == "isolation")
    assert iso["status"] == "done" and iso["values"]["source_tissue"]["display"] == "UC"


def test_guided_mode_warns_before_keeping_an_out_of_spec_value(cli):
    _started(cli)
    cli("batch", "record", "B1", "collection", *_pairs("collection"))
    # no centrifuge id (Enter), then 650 (warned, not kept), 450, 10 min, 4 °C, no note, save
    answers = "\n".join(["", "650", "n", "450", "10", "4", "", "y", ""]) + "\n"
    result = cli("batch", "run", "B1", input=answers)
    assert "deviation opens when you save" in result.output
    assert "Saved spin" in result.output and "DEV-" not in result.output


def test_db_rebuild_restores_the_query_tables(cli):
    _started(cli)
    result = cli("db", "rebuild")
    assert result.exit_code == 0 and "1 batch" in result.output


def test_an_output_file_that_cannot_be_written_is_a_plain_error(cli, tmp_path):
    _started(cli)
    result = cli("record", "B1", "-o", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert result.exit_code == 1
    assert "cannot write" in result.output and "No such file or directory" in result.output


def test_a_database_that_is_not_one_is_named(cli, tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("shopping list")
    result = cli("batch", "list", "--db", str(bad))
    assert result.exit_code == 1 and "file is not a database" in result.output
