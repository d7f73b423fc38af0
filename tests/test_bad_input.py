"""Bad input gets a clear error and nothing written: never a traceback, never a wrong value.

A full disk, a read-only or damaged database file, YAML built to break a parser, numbers
too long to read, a CSV field over the csv module's limit, a device named as a protocol
file, impossible negative readings, NaN limits and control characters each end in one
sentence saying what was wrong, and the log as it was.
"""

from __future__ import annotations

import csv
import os
import random
import threading
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, run_to
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cmprep.cli import Shell, main
from cmprep.cli.common import error_message
from cmprep.domain import ids, text
from cmprep.domain.validation import Verdict, check_value
from cmprep.errors import CmprepError, Refused, StoreError
from cmprep.events import NewEvent
from cmprep.protocol import units
from cmprep.protocol.loader import MAX_BYTES, MAX_DEPTH, ProtocolError, load_file, parse_text
from cmprep.protocol.models import Parameter, ParamType
from cmprep.protocol.text import MAX_SHOWN
from cmprep.service import Services
from cmprep.store import open_store
from cmprep.store.sqlite import SQLiteStore

PROTOCOL = """\
id: cm-bad-input
version: '1.0'
title: Bad input protocol
summary: |
  A small protocol for the bad-input tests.
  Its summary has two lines.
sources:
  - id: nasiri2026
    citation: Nasiri N, Hemmati P, Tabaie SM. Iran J Basic Med Sci 2026
steps:
  - id: spin
    title: Low-speed spin
    instructions: |
      Spin the medium.
      Then write down the speed.
    parameters:
      - name: rcf
        label: Relative centrifugal force
        unit: x g
        spec:
          min: 300
          max: 500
        limits: {min: 1, max: 30000}
        source: nasiri2026
"""


def edit(old: str, new: str) -> str:
    assert PROTOCOL.count(old) == 1, f"{old!r} must occur once"
    return PROTOCOL.replace(old, new)


def problems(text_: str) -> list[str]:
    with pytest.raises(ProtocolError) as err:
        parse_text(text_, "bad.yaml")
    return [str(p) for p in err.value.details]


def cli_says(args: list[str], open_services=None) -> tuple[int, str]:
    """Run cmprep in-process; exit code and everything it printed."""
    shell = Shell(open_services) if open_services else Shell()
    result = CliRunner().invoke(main, args, obj=shell)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def in_time(func, seconds: float = 10):
    """func's result, or fail when it has not returned in ``seconds`` (a hang)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = func()
        except BaseException as err:  # handed to the test below
            box["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def sentence(err: CmprepError) -> str:
    """What the command line prints for this error."""
    return error_message(err)


# --- 1. a full disk -------------------------------------------------------------------------
def test_a_full_disk_refuses_the_write_says_so_and_leaves_log_and_heads_whole(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    store = svc.store
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count={pages}")  # the file may not grow: a full disk
    err = None
    for n in range(200):  # until a write needs a new page
        before = (store.recorded_heads(), store.ledger(), store.batch_ids())
        clock.advance(minutes=5)
        try:
            svc.batches.start(STANDARD, "alice", f"FULL-{n}")
        except StoreError as caught:
            err = caught
            break
    assert err is not None, "the database never filled up"
    said = sentence(err)
    assert f"the disk or the database {store.path} is full; nothing was written" in said
    assert "Free some space and try again" in said
    assert (store.recorded_heads(), store.ledger(), store.batch_ids()) == before
    assert f"FULL-{n}" not in store.batch_ids()
    assert svc.audit.verify().problems == []
    store.conn.execute("PRAGMA max_page_count=1073741823")  # space freed: the same write works
    svc.batches.start(STANDARD, "alice", f"FULL-{n}")
    assert svc.audit.verify().problems == []


# --- 2. a read-only database ---------------------------------------------------------------
@pytest.fixture
def read_only_db(svc, db_path):
    """A database with batch B1, closed and made read-only (mode 0444)."""
    svc.batches.start(STANDARD, "alice", "B1")
    svc.store.close()
    os.chmod(db_path, 0o444)
    yield db_path
    os.chmod(db_path, 0o644)


def test_a_read_only_file_is_read_but_writes_are_refused_naming_it(read_only_db):
    store = SQLiteStore(read_only_db)
    try:
        assert store.read_only
        events = store.events("B1")
        assert events and store.batch_ids() == ["B1"]
        with pytest.raises(StoreError) as err, store.writing("B1", events[-1].seq) as unit:
            unit.append([NewEvent("note_added", "alice", {"text": "x"})], events[-1].recorded_at)
        assert sentence(err.value).startswith(
            f"database {read_only_db} is read-only; nothing was written. It can still be read"
        )
        assert store.events("B1") == events
    finally:
        store.close()


def test_a_read_only_database_lists_batches_on_the_command_line(read_only_db, clock):
    code, out = cli_says(
        ["batch", "list", "--db", str(read_only_db)],
        lambda db: Services(open_store(db), clock=clock),
    )
    assert code == 0 and "B1" in out


def test_a_write_on_the_command_line_to_a_read_only_file_is_one_sentence(read_only_db, clock):
    result = CliRunner().invoke(
        main,
        [
            "batch",
            "start",
            STANDARD,
            "--as",
            "alice",
            "--password-stdin",
            "--db",
            str(read_only_db),
        ],
        input=PASSWORD + "\n",
        obj=Shell(lambda db: Services(open_store(db), clock=clock)),
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"database {read_only_db} is read-only; nothing was written" in result.output
    store = SQLiteStore(read_only_db)
    assert store.batch_ids() == ["B1"]
    store.close()


def test_a_connection_that_may_not_write_refuses_a_recording_and_still_reads(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    svc.store.conn.execute("PRAGMA query_only=ON")  # what SQLite does with a read-only file
    with pytest.raises(StoreError) as err:
        run_to(svc, clock, "B1", stop_before="expansion")
    assert f"database {svc.store.path} is read-only; nothing was written" in sentence(err.value)
    assert svc.batches.batch("B1").steps["isolation"].status == "due"
    code, out = cli_says(["batch", "start", STANDARD, "--as", "alice"], lambda db: svc)
    assert code == 1 and f"database {svc.store.path} is read-only" in out


# --- 3. a damaged database file ------------------------------------------------------------
def _garble(path: Path, start: float, end: float, seed: int = 7) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = bytes(rng.randrange(256) for _ in range(b - a))
    path.write_bytes(bytes(data))


@pytest.fixture
def garbled_db(svc, clock, db_path):
    """A database with a few batches whose middle pages were overwritten with noise."""
    for n in range(4):
        clock.advance(minutes=5)
        svc.batches.start(STANDARD, "alice", f"B{n}")
    svc.store.close()  # the last connection folds the WAL into the file
    assert not Path(f"{db_path}-wal").exists()
    _garble(db_path, 0.25, 0.75)
    return db_path


DAMAGED = "is damaged"
RESTORE = "Stop using it and restore from backup"


def test_garbled_pages_are_said_as_a_damaged_file_on_open_or_read(garbled_db, clock):
    with pytest.raises(StoreError) as err:
        store = SQLiteStore(garbled_db)
        Services(store, clock=clock).audit.verify()
    said = sentence(err.value)
    assert f"database file {garbled_db} {DAMAGED}" in said and RESTORE in said


def test_a_garbled_header_is_said_as_a_damaged_file_on_open(svc, db_path):
    svc.store.close()
    _garble(db_path, 0.0, 0.02)
    with pytest.raises(StoreError) as err:
        SQLiteStore(db_path)
    assert f"database file {db_path} {DAMAGED} (file is not a database)" in sentence(err.value)


def test_a_damaged_database_on_the_command_line_is_one_sentence(garbled_db, clock):
    code, out = cli_says(
        ["audit", "verify", "--db", str(garbled_db)],
        lambda db: Services(open_store(db), clock=clock),
    )
    assert code == 1 and DAMAGED in out and RESTORE in out


# --- 4, 5, 10. YAML built to break the loader ----------------------------------------------
@pytest.mark.parametrize(
    "nested",
    [
        "x: " + "[" * 1500 + "]" * 1500,  # flow sequences
        "x: " + "{a: " * 1500 + "1" + "}" * 1500,  # flow mappings
        "".join(" " * i + "k:\n" for i in range(1000)) + " " * 1000 + "end",  # block
    ],
    ids=["flow-sequence", "flow-mapping", "block"],
)
def test_yaml_nested_a_thousand_levels_deep_is_a_protocol_error(nested):
    found = problems(PROTOCOL + nested + "\n")
    assert [p for p in found if f"nested more than {MAX_DEPTH} levels deep" in p] != []


def test_aliases_chained_a_thousand_deep_are_a_protocol_error_not_a_recursion_error():
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1200))
    found = problems(PROTOCOL + chain + "deep: *a1199\n")
    assert any("deep: unknown key" in p for p in found)


def test_a_protocol_file_nested_too_deep_through_the_command_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(PROTOCOL + "x: " + "[" * 1000 + "]" * 1000 + "\n", encoding="utf-8")
    code, out = cli_says(["protocol", "check", str(path)])
    assert code == 1 and f"{path}:" in out and "nested more than" in out


def test_an_integer_of_5000_digits_is_refused_naming_its_field():
    found = problems(edit("max: 500", "max: " + "9" * 5000))
    line = PROTOCOL.splitlines().index("          max: 500") + 1
    assert found == [
        f"bad.yaml:{line}: steps[0:spin].parameters[0:rcf].spec.max: a number 5000 "
        "characters long; no protocol value needs over 100 digits"
    ]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("max: 500", "max: .nan", "spec.max"),
        ("min: 300", "min: -.inf", "spec.min"),
        ("{min: 1, max: 30000}", "{min: 1, max: .inf}", "limits.max"),
        ("max: 500", "max: 1e400", "spec.max"),  # YAML reads it as infinity
    ],
)
def test_nan_and_infinite_limits_are_refused(old, new, field):
    [found] = problems(edit(old, new))
    assert f"steps[0:spin].parameters[0:rcf].{field}: must be a finite number" in found


def test_infinite_late_entry_minutes_is_refused():
    [found] = problems(edit("title: Bad", "late_entry_minutes: .inf\ntitle: Bad"))
    assert "late_entry_minutes: must be a finite number, not NaN or infinity" in found


# --- 11. control characters in a protocol -------------------------------------------------
def test_control_characters_in_protocol_text_are_refused_with_the_character_escaped():
    bad = edit("title: Bad input protocol", 'title: "Bad\\e[31m input\\a protocol"')
    [found] = problems(bad)
    assert found == (
        "bad.yaml:3: title: the text 'Bad\\x1b[31m input\\x07 protocol' contains control "
        "characters '\\x1b' (ESC, an escape), '\\x07' (BEL, a bell); type it again without them"
    )


def test_a_line_break_is_text_in_instructions_but_refused_in_a_label():
    assert parse_text(PROTOCOL, "ok.yaml").steps[0].instructions.count("\n") == 2
    [found] = problems(
        edit("label: Relative centrifugal force", 'label: "Relative\\ncentrifugal force"')
    )
    assert "parameters[0:rcf].label: the text 'Relative\\ncentrifugal force'" in found
    assert "'\\n' (LF, a line break)" in found


def test_a_control_character_in_a_key_is_refused():
    found = problems(edit("title: Bad", '"ti\\0tle": x\ntitle: Bad'))
    assert any(
        "the key 'ti\\x00tle' contains a control character '\\x00' (NUL)" in p for p in found
    )


# --- 7. files that are not protocol files --------------------------------------------------
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_protocol_check_of_dev_zero_answers_at_once_naming_the_file():
    code, out = in_time(lambda: cli_says(["protocol", "check", "/dev/zero"]))
    assert code == 1
    assert "/dev/zero: is not a regular file (a device, a pipe or a socket)" in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "protocol.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ProtocolError) as err:
        in_time(lambda: load_file(fifo))
    assert [p.message for p in err.value.details] == [
        "is not a regular file (a device, a pipe or a socket); "
        "give the path of a protocol's YAML file"
    ]


def test_a_huge_file_is_refused_by_its_size_without_being_read(tmp_path):
    big = tmp_path / "huge.yaml"
    with open(big, "wb") as f:
        f.truncate(4 * 1024**3)  # 4 GiB, sparse: nothing is on the disk
    code, out = in_time(lambda: cli_says(["protocol", "check", str(big)]))
    assert code == 1
    assert f"{big}: file is {4 * 1024**3} bytes; a protocol must be under {MAX_BYTES}" in out


# --- 8. impossible negative readings -------------------------------------------------------
@pytest.fixture
def at_the_spin(svc, clock):
    svc.materials.register_equipment(
        "CF-02", "centrifuge", "2027-01-15", "alice", rotor_radius_cm=16.5
    )
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    return svc


def test_a_negative_rpm_is_refused_not_squared_into_a_plausible_force(at_the_spin):
    with pytest.raises(Refused) as err:
        at_the_spin.batches.record(
            "B1", "spin", {**GOOD["spin"], "rcf": "-1500 rpm"}, "alice", equipment=["CF-02"]
        )
    assert "Relative centrifugal force: -1500 rpm is negative; a speed cannot be below zero" in (
        sentence(err.value)
    )
    assert at_the_spin.batches.batch("B1").steps["spin"].status == "due"


@pytest.mark.parametrize(
    ("name", "raw", "said"),
    [
        ("duration", "-10 min", "-10 min is negative; a duration cannot be below zero"),
        ("rcf", "-400", "-400 x g is negative; a centrifugal force cannot be below zero"),
        ("rcf", "-400 x g", "-400 x g is negative; a centrifugal force cannot be below zero"),
    ],
)
def test_negative_durations_and_forces_are_refused(at_the_spin, name, raw, said):
    with pytest.raises(Refused) as err:
        at_the_spin.batches.record("B1", "spin", {**GOOD["spin"], name: raw}, "alice")
    assert said in sentence(err.value)


def test_a_temperature_below_zero_is_still_a_reading(at_the_spin):
    out = at_the_spin.batches.record("B1", "spin", {**GOOD["spin"], "temperature": "-2"}, "alice")
    assert out.batch.steps["spin"].values["temperature"].value == -2.0


@pytest.mark.parametrize(
    ("raw", "unit", "said"),
    [
        ("-500 mL", "mL", "-500 mL is negative; a volume cannot be below zero"),
        ("-0.22 um", "um", "-0.22 um is negative; a length or pore size cannot be below zero"),
        ("-3", "washes", "-3 washes is negative; a number of washes cannot be below zero"),
        ("-250 pg/mL", "pg/mL", "-250 pg/mL is negative; a mass concentration cannot be below"),
    ],
)
def test_negative_volumes_pore_sizes_counts_and_concentrations_are_impossible(raw, unit, said):
    with pytest.raises(units.UnitError) as err:
        units.parse_quantity(raw, unit)
    assert said in str(err.value)


def test_rpm_to_rcf_refuses_a_negative_speed_itself():
    with pytest.raises(units.UnitError, match="-1500 rpm is impossible"):
        units.rpm_to_rcf(-1500, 16.5)
    assert units.rpm_to_rcf(0, 16.5) == 0


# --- 6, 9, 11. a QC results file ------------------------------------------------------------
@pytest.fixture
def qc_step(svc):
    svc.batches.start(STANDARD, "alice", "B1")
    step = svc.batches.batch("B1").protocol.step("qc")
    assert step is not None
    return step


HEADER = "analyte,value,unit,method,replicate\n"


def qc_problems(svc, step, body: str) -> list[str]:
    with pytest.raises(Refused) as err:
        svc.qc.parse_csv(step, HEADER + body, "results.csv")
    assert err.value.message == "results.csv was not imported; nothing was recorded."
    return err.value.problems


def test_a_csv_field_over_the_csv_modules_limit_is_refused_naming_the_line(svc, qc_step):
    limit = csv.field_size_limit()
    body = "VEGF,250,pg/mL,ELISA,1\nVEGF," + "9" * (limit + 10) + ",pg/mL,ELISA,2\n"
    assert qc_problems(svc, qc_step, body) == [
        f"line 3: a field is over {limit} characters; a QC result is a few characters "
        "(is this the right file?)"
    ]


def test_a_negative_qc_replicate_is_refused_with_its_line_and_column(svc, qc_step):
    body = "VEGF,250,pg/mL,ELISA,1\nVEGF,-12.5,pg/mL,ELISA,2\n"
    assert qc_problems(svc, qc_step, body) == [
        "line 3, column value: VEGF (ELISA) '-12.5' is negative; a measured amount cannot be below zero"
    ]


def test_control_characters_in_a_qc_csv_are_refused_with_line_column_and_character(svc, qc_step):
    body = 'VEGF\x1b[2J,250,pg/mL,ELISA,1\nVEGF,260,"pg/mL\r",ELISA,2\n'
    assert qc_problems(svc, qc_step, body) == [
        "line 2, column analyte: the text 'VEGF\\x1b[2J' contains a control character "
        "'\\x1b' (ESC, an escape); type it again without it",
        "line 3, column unit: the text 'pg/mL\\r' contains a control character "
        "'\\r' (CR, a carriage return); type it again without it",
    ]


def test_a_stray_carriage_return_in_a_qc_csv_is_a_line_problem_not_a_traceback(svc, qc_step):
    found = qc_problems(svc, qc_step, "VEGF,250,pg/mL,ELISA,1\nVEGF,2\r60,pg/mL,ELISA,2\n")
    assert len(found) == 1 and found[0].startswith("line 3: not readable as CSV")


# --- 11. control characters in ids and values ----------------------------------------------
@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ("CM-1\n", "'\\n' (LF, a line break)"),
        ("CM\x1b[31m-1", "'\\x1b' (ESC, an escape)"),
        ("CM-\x07", "'\\x07' (BEL, a bell)"),
        ("CM\x00", "'\\x00' (NUL)"),
        ("CM\r1", "'\\r' (CR, a carriage return)"),
        ("CM\x7f", "'\\x7f' (DEL, a delete)"),
        ("CM\x9b1", "'\\x9b'"),  # C1: the one-byte form of ESC [
    ],
)
def test_a_batch_id_with_a_control_character_is_refused_showing_it_escaped(svc, bad, shown):
    with pytest.raises(Refused) as err:
        svc.batches.start(STANDARD, "alice", bad)
    said = sentence(err.value)
    assert f"batch id '{text.printable(bad)}' contains a control character {shown}" in said
    assert not any(text.is_control(c) for c in said.replace("\n", ""))  # none reaches a terminal
    assert svc.store.batch_ids() == []


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (
            lambda s: s.materials.register_lot("LOT\x1b1", "FBS", "2027-01-01", "alice"),
            "lot number 'LOT\\x1b1' contains a control character '\\x1b' (ESC, an escape)",
        ),
        (
            lambda s: s.materials.register_equipment("CF\n2", "centrifuge", "2027-01-01", "alice"),
            "equipment id 'CF\\n2' contains a control character '\\n' (LF, a line break)",
        ),
        (
            lambda s: s.people.add("eve\x07", "Eve", "technician", PASSWORD, "root", PASSWORD),
            "'eve\\x07' is not a usable name",
        ),
    ],
    ids=["lot", "equipment", "user"],
)
def test_lot_equipment_and_user_names_with_control_characters_are_refused(svc, call, what):
    with pytest.raises(Refused) as err:
        call(svc)
    said = sentence(err.value)
    assert what in said
    assert not any(text.is_control(c) for c in said.replace("\n", ""))


def test_a_text_value_with_a_control_character_is_refused_at_the_step(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Refused) as err:
        svc.batches.record(
            "B1", "isolation", {**GOOD["isolation"], "donor_id": "D-1\x1b]0;owned\x07"}, "alice"
        )
    assert (
        "the value 'D-1\\x1b]0;owned\\x07' contains control characters '\\x1b' (ESC, an escape), "
        "'\\x07' (BEL, a bell); type it again without them"
    ) in sentence(err.value)
    assert svc.batches.batch("B1").steps["isolation"].status == "due"


TEXT_PARAM = Parameter(name="note", label="Note", type=ParamType.text, required=False)
NUMBER_PARAM = Parameter(name="volume", label="Volume", unit="mL")
CONTROL = st.sampled_from([chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]])


# --- property tests of the one text rule ----------------------------------------------------
@settings(max_examples=300)
@given(value=st.text())
def test_printable_shows_no_control_character_and_changes_nothing_else(value):
    shown = text.printable(value)
    assert not any(text.is_control(c) for c in shown)
    if text.control_problem(value, "x") is None:
        assert shown == value


@settings(max_examples=300)
@given(before=st.text(), bad=CONTROL, after=st.text())
def test_any_c0_c1_or_del_anywhere_is_named_escaped(before, bad, after):
    """Any control character is refused, escaped; the first few kinds are named and the
    rest counted ("and 2 more"), so a paste of garbage gives one readable line."""
    value = before + bad + after
    problem = text.control_problem(value, "the value")
    assert problem is not None
    found = text.control_characters(value, "")
    if bad in found[:MAX_SHOWN]:
        assert text.escaped(bad) in problem
    else:
        assert f"and {len(found) - MAX_SHOWN} more" in problem
    assert not any(text.is_control(c) for c in problem)


@settings(max_examples=300)
@given(value=st.text())
def test_an_id_is_accepted_only_without_control_characters_and_then_unchanged(value):
    try:
        accepted = ids.usable(value, "batch id")
    except Refused as err:
        assert not any(text.is_control(c) for c in str(err))
        return
    assert accepted == value and ids.is_usable(value)
    assert not any(text.is_control(c) for c in value) and len(value) <= 64


@settings(max_examples=300)
@given(before=st.text(), bad=CONTROL, after=st.text())
@example(before="0" + "\x1f" * 10 + "\x1e\x1d", bad="\x00", after="")  # named 4th: counted
def test_a_value_with_a_control_character_is_refused_for_text_and_numbers(before, bad, after):
    for param in (TEXT_PARAM, NUMBER_PARAM):
        finding = check_value(param, before + bad + after)
        assert finding.verdict == Verdict.refused
        found = text.control_characters(before + bad + after, "")
        if bad in found[:MAX_SHOWN]:  # the first few are named, the rest counted
            assert text.escaped(bad) in finding.message
        else:
            assert f"and {len(found) - MAX_SHOWN} more" in finding.message


@settings(max_examples=300)
@given(value=st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False))
def test_no_negative_number_is_a_volume(value):
    with pytest.raises(units.UnitError, match="is negative"):
        units.parse_quantity(f"{value!r} mL", "mL")


def test_the_disguised_line_and_direction_characters_are_refused_too():
    for char in ("\u2028", "\u202e", "\u2066"):
        assert text.control_problem(f"CM{char}1", "batch id") is not None
    for char in ("\u200e", "\u00e9", "\u00b5"):  # a direction mark, é, µ: ordinary text
        assert text.control_problem(f"D{char}1", "donor") is None
    assert unicodedata.category("\x85") == "Cc" and text.is_control("\x85")
