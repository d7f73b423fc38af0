"""Guided mode (`cmprep batch run`) as a technician at the bench uses it: who and what is
on screen, every deviation asked about before the save, instruments of the right kind,
hints in guided-mode words, numbered choices, one lot for one thing, and Ctrl-C."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from conftest import GOOD, STANDARD, approve_bundled, present, seed_people

from cmprep.cli import Shell, main
from cmprep.cli.hints import GUIDED, HINTS, hint_text
from cmprep.errors import Hint
from cmprep.service import Services
from cmprep.store import open_store


@pytest.fixture
def setup(db_path, clock):
    svc = approve_bundled(seed_people(Services(open_store(str(db_path), create=True), clock=clock)))
    svc.materials.register_lot("PBS-26-118", "PBS", "2027-12-31", "alice")
    svc.materials.register_lot("PBS-OLD", "PBS", "2026-10-01", "alice")  # expired by then
    svc.materials.register_equipment("CF-02", "centrifuge", "2027-06-30", "alice", 16.5)
    svc.materials.register_equipment("CF-09", "centrifuge", "2027-06-30", "alice")  # no radius
    svc.materials.register_equipment("CF-OLD", "centrifuge", "2026-10-01", "alice", 16.5)
    svc.materials.register_equipment("BSC-01", "biosafety cabinet", "2027-06-30", "alice")
    svc.batches.start(STANDARD, "alice", "B1")
    return svc


@pytest.fixture
def cli(setup, db_path, monkeypatch, clock):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    shell = Shell(lambda db: present(Services(open_store(db), clock=clock)))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(
            main, list(args), input=input, env={"CMPREP_USER": "alice"}, obj=shell,
            catch_exceptions=False,
        )  # fmt: skip

    return invoke


def _to(svc, clock, step: str) -> None:
    """Record the standard protocol's steps with good values up to STEP (not incl.)."""
    for done in ("isolation", "expansion", "pbs_wash", "conditioning", "collection", "spin"):
        if done == step:
            return
        clock.advance(hours=30 if done == "collection" else 0.5)
        svc.batches.record("B1", done, GOOD[done], "alice")


def _answers(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _values(cli, step: str) -> dict:
    status = json.loads(cli("batch", "status", "B1", "--format", "json").output)
    return next(s for s in status["steps"] if s["step"] == step)


def test_every_step_shows_the_batch_the_protocol_and_who_is_signed_in(cli):
    result = cli("batch", "run", "B1", input=_answers("1", "D-9", "", "", "y", ""))
    assert "== Batch B1 · cm-standard-serum-free v" in result.output
    assert "signed in as alice (Alice Archer) ==" in result.output
    assert "-- Step 1 of" in result.output and "(isolation) --" in result.output
    assert "Saved isolation" in result.output
    assert result.output.count("== Batch B1 ·") == 2  # isolation, then expansion


def test_choices_are_a_numbered_menu_and_a_number_out_of_range_is_asked_again(cli):
    result = cli("batch", "run", "B1", input=_answers("99", "3", "D-9", "", "", "y", ""))
    assert "  1. BM\n  2. AD\n  3. UC" in result.output
    assert "give a number from 1 to 11" in result.output
    assert _values(cli, "isolation")["values"]["source_tissue"]["display"] == "UC"


def test_an_expired_lot_is_asked_about_like_an_out_of_spec_value(setup, cli, clock):
    _to(setup, clock, "pbs_wash")
    clock.advance(hours=1)
    # the expired lot: warned, not kept; then the good one; washes 3; no note; save
    result = cli(
        "batch", "run", "B1", input=_answers("PBS-OLD", "n", "pbs-26-118", "3", "", "", "y", "")
    )
    assert "Lot PBS-OLD (PBS) expired on 2026-10-01" in result.output
    assert "a major deviation opens when you save this step" in result.output
    assert "Keep this value?" in result.output
    assert "Saved pbs_wash" in result.output and "DEV-" not in result.output
    step = _values(cli, "pbs_wash")
    # the free-text lot parameter is the scanned lot, not typed a second time
    assert step["values"]["pbs_lot"]["display"] == "PBS-26-118"
    assert "PBS lot number: PBS-26-118 (the lot named above)" in result.output


def test_an_expired_lot_kept_opens_its_deviation(setup, cli, clock):
    _to(setup, clock, "pbs_wash")
    clock.advance(hours=1)
    result = cli("batch", "run", "B1", input=_answers("PBS-OLD", "y", "3", "", "", "y", ""))
    assert "Saved pbs_wash" in result.output and "DEV-0001 opened (major)" in result.output


def test_an_instrument_past_calibration_is_asked_about(setup, cli, clock):
    _to(setup, clock, "spin")
    clock.advance(minutes=30)
    answers = _answers("CF-OLD", "n", "CF-02", "400", "10", "4", "", "", "y", "")
    result = cli("batch", "run", "B1", input=answers)
    assert "CF-OLD was due for calibration on 2026-10-01" in result.output
    assert "Keep this value?" in result.output
    assert "Saved spin" in result.output and "DEV-" not in result.output


def test_the_collection_window_is_asked_about_before_anything_is_typed(setup, cli, clock):
    _to(setup, clock, "collection")
    clock.advance(hours=100)  # the window is 24-72 h after conditioning
    result = cli("batch", "run", "B1", input=_answers("n"))
    assert "a major deviation opens when you save this step" in result.output
    assert "Record this step now anyway?" in result.output
    assert "Nothing saved for collection" in result.output
    assert _values(cli, "collection")["status"] == "due"


def test_an_instrument_of_another_kind_is_refused_at_its_prompt(setup, cli, clock):
    _to(setup, clock, "spin")
    clock.advance(minutes=30)
    cli("batch", "record", "B1", "spin", *[f"{k}={v}" for k, v in GOOD["spin"].items()])
    clock.advance(minutes=30)
    result = cli("batch", "run", "B1", input=_answers("", "CF-02", "bsc-01", "0.22"))
    assert "Biosafety cabinet id (a biosafety cabinet; registered: BSC-01;" in result.output
    assert "CF-02 is a centrifuge, not a biosafety cabinet" in result.output
    assert "Filter pore size" in result.output  # BSC-01 taken: on to the values


def test_the_command_line_refuses_an_instrument_of_another_kind_too(setup, cli, clock):
    _to(setup, clock, "spin")
    clock.advance(minutes=30)
    pairs = [f"{k}={v}" for k, v in GOOD["spin"].items()]
    wrong = cli("batch", "record", "B1", "spin", *pairs, "--equipment", "BSC-01")
    assert wrong.exit_code == 1
    assert "BSC-01 is a biosafety cabinet" in wrong.output and "needs a centrifuge" in wrong.output
    right = cli("batch", "record", "B1", "spin", *pairs, "--equipment", "cf-02")
    assert right.exit_code == 0, right.output


def test_rpm_without_a_rotor_radius_is_said_in_guided_mode_words(setup, cli, clock):
    _to(setup, clock, "spin")
    clock.advance(minutes=30)
    answers = _answers("CF-09", "1500 rpm", "400", "10", "4", "", "", "y", "")
    result = cli("batch", "run", "B1", input=answers)
    assert "needs the rotor radius" in result.output
    assert 'answer no at "Save?"' in result.output
    assert "--equipment" not in result.output
    assert "Saved spin" in result.output


def test_the_rpm_hint_is_a_flag_at_the_command_line_and_an_answer_in_guided_mode():
    hint = Hint("name_centrifuge")
    assert "--equipment ID" in hint_text(hint)
    assert "--equipment" not in hint_text(hint, guided=True)
    assert set(GUIDED) <= set(HINTS)
    assert "Register lot L-1" in hint_text(Hint("register_lot", lot="L-1"), guided=True)


def _stopping_after(monkeypatch, answers: int, stop: BaseException) -> None:
    """Let ANSWERS prompts through, then stop at the next as Ctrl-C (or Ctrl-D) does."""
    real = click.prompt
    count = {"n": 0}

    def prompt(*args, **kwargs):
        count["n"] += 1
        if count["n"] > answers:
            raise stop
        return real(*args, **kwargs)

    monkeypatch.setattr(click, "prompt", prompt)


def _abort_from(cause: BaseException) -> click.Abort:
    """Abort as click raises it at a prompt: with the cause as its context."""
    try:
        try:
            raise cause
        except BaseException:
            raise click.Abort() from None
    except click.Abort as err:
        return err


def test_ctrl_c_exits_130_and_keeps_every_confirmed_step(cli, monkeypatch):
    _stopping_after(monkeypatch, 4, _abort_from(KeyboardInterrupt()))  # isolation, then stop
    result = cli("batch", "run", "B1", input=_answers("1", "D-9", "", "", "y"))
    assert result.exit_code == 130
    assert (
        "Saved isolation" in result.output and "Every step you confirmed is saved" in result.output
    )
    assert _values(cli, "isolation")["status"] == "done"
    assert _values(cli, "expansion")["status"] == "due"


def test_a_bare_keyboard_interrupt_is_130_too_and_the_end_of_input_is_0(cli, monkeypatch):
    real = click.prompt
    _stopping_after(monkeypatch, 0, KeyboardInterrupt())
    assert cli("batch", "run", "B1", input="").exit_code == 130
    monkeypatch.setattr(click, "prompt", real)
    ended = cli("batch", "run", "B1", input=_answers("1"))
    assert ended.exit_code == 0 and "Stopped." in ended.output


def test_check_items_are_ticked_by_number_and_recorded_with_who(setup, cli):
    result = cli("batch", "run", "B1", input=_answers("3", "D-9", "9", "1,2", "", "y", ""))
    assert "  [ ] 1. " in result.output
    assert "give numbers from 1 to" in result.output
    assert "Ticked 2 of" in result.output and "checks of isolation" in result.output
    entry = setup.batches.batch("B1").steps["isolation"]
    assert len(entry.checks) == 2
    assert all(tick["by"] == "alice" for tick in entry.checks.values())


def test_ctrl_c_in_any_other_command_exits_130_and_says_what_became_of_the_work(cli, monkeypatch):
    from cmprep.service.batches import BatchService

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real = BatchService.record
    monkeypatch.setattr(BatchService, "record", interrupted)
    result = cli("batch", "record", "B1", "isolation", "source_tissue=UC", "donor_id=D-9")
    assert result.exit_code == 130
    assert "Interrupted. What was saved before stays saved; what was being saved was not " in (
        result.output
    )
    monkeypatch.setattr(BatchService, "record", real)
    assert _values(cli, "isolation")["status"] == "due"  # nothing was written
    # Ctrl-C at a password prompt is the same; the end of the input there is click's Abort
    _stopping_after(monkeypatch, 0, _abort_from(KeyboardInterrupt()))
    assert cli("login", "--as", "bob").exit_code == 130
    _stopping_after(monkeypatch, 0, _abort_from(EOFError()))
    ended = cli("login", "--as", "bob")
    assert ended.exit_code == 1 and "Interrupted" not in ended.output
