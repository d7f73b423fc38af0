"""The quick path of `batch status` (cmprep/quick.py): it answers only what the full command
line would answer the same way, byte for byte, and leaves everything else to it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, Clock, approve_bundled, run_to, seed_people
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmprep import quick
from cmprep.cli import main
from cmprep.errors import INTERRUPTED, INTERRUPTED_SAID
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a batch of every kind a status shows: one under way with an
    out-of-spec value, its deviation and a correction, one concentrated with QC results,
    and the site in Zurich's time zone."""
    db = tmp_path_factory.mktemp("quick") / "lab.db"
    clock = Clock()
    svc = approve_bundled(seed_people(Services(SQLiteStore(db, create=True), clock)))
    svc.settings.change("timezone", "Europe/Zurich", "root", PASSWORD, "the site's zone")
    svc.batches.start("cm-standard-serum-free", "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    clock.advance(hours=1)
    svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650 x g"}, "alice")
    svc.batches.correct("B1", "spin", {"duration": "12 min"}, "alice", "timer misread")
    svc.batches.start("cm-standard-serum-free", "alice", "C1")
    run_to(svc, clock, "C1", stop_before="qc")
    clock.advance(hours=1)
    svc.batches.record("C1", "qc", {**GOOD["qc"], "vegf": "9000 pg/mL"}, "alice")
    svc.close()
    return db


def _full(args: list[str], db: Path) -> tuple[int, str]:
    """What the full command line says to ARGS: its exit status and standard output."""
    result = CliRunner().invoke(main, args, env={"CMPREP_DB": str(db)})
    return result.exit_code, result.stdout


def _quick(args: list[str], db: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, str]:
    """Whether the quick path answered ARGS, and what it wrote."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("CMPREP_DB", str(db))
    answered = quick.answer(args)
    out.flush()
    monkeypatch.undo()
    return answered, out.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args",
    [
        ["batch", "status", "B1"],
        ["batch", "status", "C1"],
        ["batch", "status", "B1", "--format", "json"],
        ["batch", "status", "--format=JSON", "C1"],
        ["batch", "status", "--format", "text", "B1"],
        ["batch", "status", "b1"],  # ids are found in any case, as the full command finds them
    ],
)
def test_a_status_is_answered_as_the_full_command_answers_it(lab, monkeypatch, args):
    answered, said = _quick(args, lab, monkeypatch)
    assert answered
    assert (0, said) == _full(args, lab)
    if "C1" in args and "json" not in str(args).lower():
        assert "above the literature reference range" in said  # the route's lines
    if args == ["batch", "status", "B1"]:
        assert "DEV-0001" in said and "(corrected from 10 min)" in said
        assert "+01:00" in said  # the site's time zone, as the full command shows it


def test_the_database_is_the_option_s_then_the_environment_s(lab, monkeypatch, tmp_path):
    monkeypatch.setenv("CMPREP_DB", str(tmp_path / "elsewhere.db"))
    assert quick.parse(["batch", "status", "B1", "--db", str(lab)]) == ("B1", "text", str(lab))
    assert quick.parse(["batch", "status", "B1"]) == ("B1", "text", str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv("CMPREP_DB", "")  # set but empty, as click reads it: not given
    assert quick.parse(["batch", "status", "B1"]) == ("B1", "text", None)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["batch"],
        ["batch", "status"],  # no batch: click's usage error
        ["batch", "list"],
        ["--help"],
        ["batch", "status", "B1", "--help"],
        ["batch", "status", "-h", "B1"],
        ["batch", "status", "B1", "B2"],
        ["batch", "status", "B1", "--format", "csv"],
        ["batch", "status", "B1", "--format"],
        ["batch", "status", "B1", "--format="],
        ["batch", "status", "B1", "--format", "json", "--format", "text"],
        ["batch", "status", "B1", "--db"],
        ["batch", "status", "B1", "--db", "--format"],
        ["batch", "status", "B1", "--db", "a.db", "--db", "b.db"],
        ["batch", "status", "--", "-B1"],
        ["batch", "status", "-B1"],
        ["batch", "status", ""],
        ["batch", "status", "B1", "--as", "alice"],
        ["batch", "status", "B1", "--form", "json"],  # no abbreviations
        ["batch", "status", "B1", "--format", "JSON\u0130"],
        ["status", "B1"],
        ["--db", "x.db", "batch", "status", "B1"],
    ],
)
def test_anything_but_a_plain_status_is_left_to_the_full_command_line(args):
    assert quick.parse(args) is None


@pytest.mark.parametrize("batch", ["NOPE", "B 1"])
def test_an_error_is_left_to_the_full_command_line_having_written_nothing(lab, monkeypatch, batch):
    """A batch that does not exist, or an id that cannot be one, is said by the full
    command line."""
    answered, said = _quick(["batch", "status", batch], lab, monkeypatch)
    assert (answered, said) == (False, "")
    code, _ = _full(["batch", "status", batch], lab)
    assert code == 1


def test_a_database_that_cannot_be_opened_is_left_to_the_full_command_line(monkeypatch, tmp_path):
    answered, said = _quick(["batch", "status", "B1"], tmp_path / "none.db", monkeypatch)
    assert (answered, said) == (False, "")


def test_an_escape_sequence_is_left_to_click_which_strips_it_when_not_a_terminal(lab, monkeypatch):
    from cmprep.render import status_text

    monkeypatch.setattr(status_text, "status_lines", lambda v, when: ["\x1b[31mred\x1b[0m"])
    assert _quick(["batch", "status", "B1"], lab, monkeypatch) == (False, "")


def test_an_output_that_is_not_utf8_is_left_to_click(lab, monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="latin-1"))
    monkeypatch.setenv("CMPREP_DB", str(lab))
    assert quick.answer(["batch", "status", "B1"]) is False


def test_ctrl_c_ends_the_quick_path_as_it_ends_the_full_command_line(lab, monkeypatch, capsys):
    def interrupted(asked):
        raise KeyboardInterrupt

    monkeypatch.setattr(quick, "_status_text", interrupted)
    with pytest.raises(SystemExit) as ended:
        quick.answer(["batch", "status", "B1"])
    assert ended.value.code == INTERRUPTED
    assert capsys.readouterr().err == INTERRUPTED_SAID + "\n"


def test_a_reader_that_went_away_ends_it_quietly_with_141(lab, monkeypatch):
    class Closed(io.StringIO):
        encoding = "utf-8"

        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    monkeypatch.setenv("CMPREP_DB", str(lab))
    with pytest.raises(SystemExit) as ended:
        quick.answer(["batch", "status", "B1"])
    assert ended.value.code == 141


# the words a command line is made of, a status's and others
WORDS = st.sampled_from(
    ["B1", "C1", "NOPE", "--format", "--format=json", "--format=TEXT", "json", "Json", "text",
     "csv", "--db", "--db=", "--help", "-h", "--", "-x", "status", "batch", ""]
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rest=st.lists(WORDS, max_size=5))
def test_whatever_is_typed_the_quick_path_answers_as_the_full_command_or_not_at_all(
    lab, monkeypatch, rest
):
    args = ["batch", "status", *(f"--db={lab}" if w == "--db=" else w for w in rest)]
    answered, said = _quick(args, lab, monkeypatch)
    if answered:
        assert (0, said) == _full(args, lab)
    else:
        assert said == ""


def test_the_command_answers_a_status_without_importing_click(lab):
    """What the technician types, through the installed entry point: click is not loaded
    for a status, and is for everything else."""
    code = (
        "import sys\n"
        "from cmprep.__main__ import main\n"
        "sys.argv = ['cmprep', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('CLICK', 'click' in sys.modules, 'QUICK', 'cmprep.quick' in sys.modules,"
        " file=sys.stderr)"
    )
    env = {**os.environ, "CMPREP_DB": str(lab)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
        )

    status = run("batch", "status", "B1")
    assert status.stdout.startswith("Batch B1: cm-standard-serum-free")
    assert "CLICK False QUICK True" in status.stderr
    missing = run("batch", "status", "NOPE")
    assert "Error: no batch 'NOPE'" in missing.stderr and "CLICK True" in missing.stderr
    listed = run("batch", "list", "--format", "csv")
    assert listed.stdout.startswith("batch_id,") and "CLICK True" in listed.stderr
    assert "QUICK False" in listed.stderr  # another command does not even load the quick path


def test_the_quick_path_knows_every_option_of_the_full_status_command():
    """A new option, a new format or another default on `batch status` fails here until the
    quick path reads it the same way (or declines it)."""
    from cmprep.cli.batch import batch

    command = batch.commands["status"]
    options = {p.name: p for p in command.params}
    assert set(options) == {"batch_id", "fmt", "db"}
    fmt, db = options["fmt"], options["db"]
    assert fmt.opts == ["--format"] and fmt.default == "text"
    assert tuple(fmt.type.choices) == quick.FORMATS  # type: ignore[attr-defined]
    assert db.opts == ["--db"] and db.envvar == "CMPREP_DB" and db.default is None
    assert {o for p in command.params for o in p.opts if o.startswith("-")} == set(quick._OPTIONS)
