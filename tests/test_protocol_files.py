"""Protocol files QA writes: every problem listed at once, each with file, line and field.

Each test writes a small protocol with one mistake into a temporary folder and checks
the problem list ``load_file`` raises, the way ``cmprep protocol check`` prints it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmprep.cli import main
from cmprep.protocol.loader import MAX_BYTES, Problem, ProtocolError, load_file, parse_text

PROTOCOLS = sorted((Path(__file__).resolve().parent.parent / "protocols").glob("*.yaml"))

GOOD = """\
id: cm-test
version: '1.0'
title: Test protocol
summary: A short protocol for the tests.
sources:
  - id: nasiri2026
    citation: Nasiri N, Hemmati P, Tabaie SM. Iran J Basic Med Sci 2026
steps:
  - id: conditioning
    title: Conditioning
    instructions: Condition the cells in serum-free medium.
    parameters:
      - name: serum_percent
        label: Serum in conditioning medium
        unit: '%'
        spec: {max: 2}
        source: nasiri2026
  - id: collection
    title: Collection
    instructions: Collect the conditioned medium.
    window:
      after: conditioning
      min: 24
      max: 72
      unit: h
      source: nasiri2026
  - id: spin
    title: Low-speed spin
    instructions: Spin the medium.
    parameters:
      - name: rcf
        label: Relative centrifugal force
        unit: x g
        spec:
          min: 300
          max: 500
        limits: {min: 1, max: 30000}
        source: nasiri2026
  - id: use_fresh
    title: Use fresh
    instructions: Use the medium the same day.
    branch: downstream
  - id: freeze
    title: Freeze
    instructions: Freeze the medium at -80 C.
    branch: downstream
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line containing needle."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the test file"
    return hits[occurrence - 1]


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the test file"
    return text.replace(old, new)


def problems_of(tmp_path: Path, text: str, name: str = "bad.yaml") -> list[Problem]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolError) as err:
        load_file(path)
    problems = err.value.details
    assert problems, "a ProtocolError lists at least one problem"
    assert all(p.file == str(path) for p in problems)
    assert err.value.problems == [str(p) for p in problems]
    return problems


def the_problem(problems: list[Problem], words: str) -> Problem:
    found = [p for p in problems if words in p.message]
    assert len(found) == 1, f"one problem saying {words!r} expected, got {problems}"
    return found[0]


# --- a good file ------------------------------------------------------------------------


def test_a_good_protocol_loads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    protocol = load_file(path)
    assert protocol.id == "cm-test"
    assert [s.id for s in protocol.steps] == [
        "conditioning",
        "collection",
        "spin",
        "use_fresh",
        "freeze",
    ]
    assert protocol.step("spin").parameter("rcf").unit == "x g"


# --- one mistake each -------------------------------------------------------------------


def test_a_misspelt_spec_key_is_an_unknown_key_at_its_line(tmp_path):
    text = edit("        spec:\n          min: 300", "        sepc:\n          min: 300")
    [problem] = problems_of(tmp_path, text)
    assert problem.line == line_of(text, "sepc:")
    assert problem.field == "steps[2:spin].parameters[0:rcf].sepc"
    assert problem.message.startswith("unknown key")
    assert (
        str(problem)
        == f"{tmp_path / 'bad.yaml'}:{problem.line}: {problem.field}: {problem.message}"
    )


def test_an_unknown_top_level_key_is_reported_at_its_line(tmp_path):
    text = edit("title: Test protocol\n", "title: Test protocol\nauthor: QA\n")
    [problem] = problems_of(tmp_path, text)
    assert (problem.line, problem.field) == (line_of(text, "author:"), "author")
    assert "unknown key" in problem.message


def test_duplicate_step_ids_are_reported_at_the_second_one(tmp_path):
    text = edit("  - id: freeze", "  - id: spin")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "duplicate step ids: spin"
    assert problem.line == line_of(text, "- id: spin", occurrence=2)
    assert problem.field == "steps[4:spin].id"


def test_a_spec_with_min_above_max_is_reported_at_the_spec(tmp_path):
    text = edit("        spec:\n          min: 300", "        spec:\n          min: 600")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "min (600) is above max (500)"
    assert problem.line == line_of(text, "min: 600") - 1  # the spec: line
    assert problem.field == "steps[2:spin].parameters[0:rcf].spec"


def test_limits_with_min_above_max_are_reported(tmp_path):
    text = edit("limits: {min: 1, max: 30000}", "limits: {min: 30000, max: 1}")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "min (30000) is above max (1)"
    assert problem.line == line_of(text, "limits:")


def test_a_unit_that_does_not_parse_is_reported_at_its_line(tmp_path):
    text = edit("unit: x g", "unit: furlongs")
    [problem] = problems_of(tmp_path, text)
    assert "unit 'furlongs' does not parse" in problem.message
    assert problem.line == line_of(text, "unit: furlongs")
    assert problem.field == "steps[2:spin].parameters[0:rcf].unit"


def test_a_spec_outside_the_hard_limits_is_refused(tmp_path):
    text = edit("limits: {min: 1, max: 30000}", "limits: {min: 1, max: 400}")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "the spec reaches outside the hard limits"
    assert problem.line == line_of(text, "- name: rcf")


def test_a_window_in_a_unit_that_is_not_time_is_refused(tmp_path):
    text = edit("      unit: h\n", "      unit: x g\n")
    [problem] = problems_of(tmp_path, text)
    assert "a window's unit must be a time unit, not 'x g'" in problem.message
    assert problem.line == line_of(text, "unit: x g", occurrence=1)


def test_a_branch_with_one_arm_is_refused(tmp_path):
    text = edit(
        "    instructions: Freeze the medium at -80 C.\n    branch: downstream\n",
        "    instructions: Freeze the medium at -80 C.\n",
    )
    [problem] = problems_of(tmp_path, text)
    assert (
        problem.message == "branch 'downstream' has one arm (use_fresh); a branch needs two or more"
    )
    assert problem.line == line_of(text, "branch: downstream")
    assert problem.field == "steps[3:use_fresh].branch"


def test_a_spec_without_a_source_is_refused(tmp_path):
    text = edit("        spec: {max: 2}\n        source: nasiri2026\n", "        spec: {max: 2}\n")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "a spec needs a source: a source id or 'site choice'"
    assert problem.line == line_of(text, "- name: serum_percent")
    assert problem.field == "steps[0:conditioning].parameters[0:serum_percent]"


def test_a_source_not_among_the_protocols_sources_is_refused_at_its_line(tmp_path):
    text = edit(
        "        spec: {max: 2}\n        source: nasiri2026\n",
        "        spec: {max: 2}\n        source: smith2020\n",
    )
    [problem] = problems_of(tmp_path, text)
    assert problem.message == (
        "step conditioning, parameter serum_percent: source 'smith2020' is not among the "
        "protocol's sources (nasiri2026) nor 'site choice'"
    )
    assert problem.line == line_of(text, "source: smith2020")
    assert problem.field == "steps[0:conditioning].parameters[0:serum_percent].source"


def test_a_window_source_not_among_the_protocols_sources_is_refused(tmp_path):
    text = edit(
        "      unit: h\n      source: nasiri2026\n", "      unit: h\n      source: smith2020\n"
    )
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "step collection: window source 'smith2020' is unknown"
    assert problem.line == line_of(text, "source: smith2020")


@pytest.mark.parametrize("after", ["spin", "collection", "thawing"])
def test_a_window_counted_from_a_later_same_or_unknown_step_is_refused(tmp_path, after):
    text = edit("      after: conditioning", f"      after: {after}")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == f"step collection: window.after '{after}' is not an earlier step"
    assert problem.line == line_of(text, f"after: {after}")
    assert problem.field == "steps[1:collection].window.after"


def test_a_duplicate_yaml_key_is_reported_at_its_second_line(tmp_path):
    text = edit("title: Test protocol\n", "title: Test protocol\ntitle: Another title\n")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "key appears twice"
    assert (problem.line, problem.field) == (line_of(text, "title: Another"), "title")


def test_a_duplicate_key_inside_a_parameter_is_reported(tmp_path):
    text = edit("        unit: x g\n", "        unit: x g\n        unit: rpm\n")
    problems = problems_of(tmp_path, text)
    twice = the_problem(problems, "key appears twice")
    assert twice.line == line_of(text, "unit: rpm")
    assert twice.field == "steps[2:spin].parameters[0:rcf].unit"


@pytest.mark.parametrize("version", ["1.0", "1", "2.10"])
def test_an_unquoted_version_number_gets_the_quoting_hint(tmp_path, version):
    text = edit("version: '1.0'", f"version: {version}")
    [problem] = problems_of(tmp_path, text)
    assert problem.message == "version must be text: quote it, e.g. version: '1.0'"
    assert (problem.line, problem.field) == (2, "version")


def test_a_missing_required_field_is_named(tmp_path):
    text = edit("    title: Low-speed spin\n", "")
    [problem] = problems_of(tmp_path, text)
    assert problem.field == "steps[2:spin].title"
    assert problem.message == "Field required"
    assert problem.line == line_of(text, "- id: spin")


# --- files that are not protocols -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- id: cm-test\n- version: '1.0'\n", "list"),
        ("just a sentence\n", "str"),
        ("42\n", "int"),
        ("", "empty"),
    ],
    ids=["a list", "a scalar", "a number", "an empty file"],
)
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path, text, kind):
    [problem] = problems_of(tmp_path, text)
    assert problem.line == 1
    assert (
        problem.message == f"a protocol is a YAML mapping (id:, version:, steps: ...), not {kind}"
    )


def test_a_file_of_only_comments_is_empty(tmp_path):
    [problem] = problems_of(tmp_path, "# nothing here yet\n")
    assert problem.message.endswith("not empty")


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    text = edit("  - id: collection\n", "  - id: collection\n   bad: indent: here\n")
    [problem] = problems_of(tmp_path, text)
    assert problem.message.startswith("not valid YAML: ")
    assert problem.line == line_of(text, "bad: indent")


def test_an_unclosed_quote_is_invalid_yaml(tmp_path):
    text = edit("title: Test protocol", "title: 'Test protocol")
    [problem] = problems_of(tmp_path, text)
    assert problem.message.startswith("not valid YAML")
    assert problem.line is not None


def test_two_yaml_documents_in_one_file_are_refused(tmp_path):
    [problem] = problems_of(tmp_path, GOOD + "---\nid: another\n")
    assert problem.message.startswith("not valid YAML")
    assert problem.line == line_of(GOOD + "---\n", "---")


def test_a_file_over_the_size_limit_is_refused_without_being_read(tmp_path):
    text = GOOD + "#" * (MAX_BYTES - len(GOOD.encode()) + 1)
    [problem] = problems_of(tmp_path, text)
    assert problem.message == f"file is {MAX_BYTES + 1} bytes; a protocol must be under {MAX_BYTES}"
    assert problem.line is None


def test_text_over_the_size_limit_is_refused(tmp_path):
    with pytest.raises(ProtocolError) as err:
        parse_text("#" * (MAX_BYTES + 10), "big.yaml")
    [problem] = err.value.details
    assert "a protocol must be under" in problem.message


def test_a_file_at_the_size_limit_is_read(tmp_path):
    path = tmp_path / "padded.yaml"
    path.write_text(GOOD + "#" * (MAX_BYTES - len(GOOD.encode())), encoding="utf-8")
    assert load_file(path).id == "cm-test"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ProtocolError) as err:
        load_file(tmp_path / "nowhere.yaml")
    assert [p.message for p in err.value.details] == ["no such file"]


def test_a_folder_is_not_a_protocol_file(tmp_path):
    with pytest.raises(ProtocolError) as err:
        load_file(tmp_path)
    assert [p.message for p in err.value.details] == ["is a folder, not a protocol file"]


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("Test protocol", "Protocole d'essai à 37 °C").encode("latin-1"))
    with pytest.raises(ProtocolError) as err:
        load_file(path)
    assert [p.message for p in err.value.details] == ["not UTF-8 text"]


def test_a_recursive_yaml_alias_is_a_problem_not_a_crash(tmp_path):
    text = edit("title: Test protocol\n", "title: Test protocol\nnotes: &loop [*loop]\n")
    problem = the_problem(problems_of(tmp_path, text), "unknown key")
    assert problem.line == line_of(text, "notes:")


def test_nested_yaml_aliases_are_checked_quickly(tmp_path):
    # 10**5 paths through 6 short lines: walked path by path this takes ~0.7 s and
    # 200 MB (a level more: 10 s and 2 GB); each node once, a few milliseconds.
    bomb = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 6):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        bomb.append(f"a{level}: &a{level} [{refs}]")
    text = GOOD + "\n".join(bomb) + "\n"
    started = time.monotonic()
    problems = problems_of(tmp_path, text)
    assert time.monotonic() - started < 0.2
    assert len(problems) == 6
    assert all(p.message.startswith("unknown key") for p in problems)


# --- many mistakes at once --------------------------------------------------------------


def test_every_problem_in_a_file_is_listed_at_once(tmp_path):
    text = GOOD
    text = edit("version: '1.0'", "version: 1.0", text)
    text = edit("        spec: {max: 2}\n", "        sepc: {max: 2}\n", text)
    text = edit("unit: x g", "unit: furlongs", text)
    text = edit("        spec:\n          min: 300", "        spec:\n          min: 600", text)
    text = edit("title: Test protocol\n", "title: Test protocol\ntitle: Again\n", text)
    problems = problems_of(tmp_path, text)
    assert len(problems) >= 3
    found = {(p.line, p.field): p.message for p in problems}
    assert found[(2, "version")].startswith("version must be text")
    assert found[
        (line_of(text, "sepc:"), "steps[0:conditioning].parameters[0:serum_percent].sepc")
    ].startswith("unknown key")
    assert (
        "does not parse"
        in found[(line_of(text, "unit: furlongs"), "steps[2:spin].parameters[0:rcf].unit")]
    )
    assert found[(line_of(text, "min: 600") - 1, "steps[2:spin].parameters[0:rcf].spec")] == (
        "min (600) is above max (500)"
    )
    assert found[(line_of(text, "title: Again"), "title")] == "key appears twice"


def test_every_cross_reference_problem_is_listed_at_its_own_line(tmp_path):
    text = GOOD
    text = edit("  - id: freeze", "  - id: spin", text)
    text = edit("      after: conditioning", "      after: freeze", text)
    text = edit(
        "        spec: {max: 2}\n        source: nasiri2026\n",
        "        spec: {max: 2}\n        source: smith2020\n",
        text,
    )
    problems = problems_of(tmp_path, text)
    assert len(problems) == 3
    assert the_problem(problems, "duplicate step ids").line == line_of(
        text, "- id: spin", occurrence=2
    )
    assert the_problem(problems, "window.after 'freeze'").line == line_of(text, "after: freeze")
    assert the_problem(problems, "'smith2020'").line == line_of(text, "source: smith2020")


# --- cmprep protocol check --------------------------------------------------------------


def test_protocol_check_lists_the_bad_files_problems_and_says_ok_for_the_good_one(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad_text = edit("unit: x g", "unit: furlongs")
    bad.write_text(bad_text, encoding="utf-8")
    result = CliRunner().invoke(main, ["protocol", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{good}: ok (cm-test v1.0, 5 steps)" in result.stdout
    assert (
        f"{bad}:{line_of(bad_text, 'unit: furlongs')}: steps[2:spin].parameters[0:rcf].unit:"
        in result.stderr
    )
    assert "1 of 2 protocol(s) have problems" in result.stderr
    assert str(bad) not in result.stdout


def test_protocol_check_prints_every_problem_of_a_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = edit("unit: x g", "unit: furlongs", edit("version: '1.0'", "version: 1.0"))
    bad.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["protocol", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: version: version must be text" in result.stderr
    assert f"{bad}:{line_of(text, 'unit: furlongs')}:" in result.stderr


def test_protocol_check_names_a_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["protocol", "check", str(tmp_path / "nowhere.yaml")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere.yaml'}: no such file" in result.stderr


def test_protocol_check_needs_a_file():
    result = CliRunner().invoke(main, ["protocol", "check"])
    assert result.exit_code == 2


def test_every_bundled_protocol_passes_protocol_check():
    assert PROTOCOLS, "the repository bundles protocols"
    result = CliRunner().invoke(main, ["protocol", "check", *map(str, PROTOCOLS)])
    assert result.exit_code == 0, result.output
    for path in PROTOCOLS:
        assert f"{path}: ok (" in result.stdout
    assert result.stderr == ""
