"""Judging entered values: in spec, alert, out of spec (a deviation) or refused.

Parameters and steps are built directly from the strict protocol models, as a protocol
file would give them.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmprep.domain.validation import Finding, Verdict, check_entries, check_value, check_window
from cmprep.protocol.models import (
    SITE_CHOICE,
    Parameter,
    ParamType,
    Range,
    Severity,
    Spec,
    Step,
    Window,
)

SPEC_MIN, SPEC_MAX = 300.0, 500.0
ALERT_MIN, ALERT_MAX = 350.0, 450.0
LIMIT_MIN, LIMIT_MAX = 1.0, 30000.0

RCF = Parameter(
    name="rcf",
    label="Relative centrifugal force",
    unit="x g",
    spec=Spec(min=SPEC_MIN, max=SPEC_MAX),
    alert=Range(min=ALERT_MIN, max=ALERT_MAX),
    limits=Range(min=LIMIT_MIN, max=LIMIT_MAX),
    severity=Severity.critical,
    source="nasiri2026",
)
SPIN_TIME = Parameter(
    name="spin_minutes",
    label="Spin time",
    type=ParamType.duration,
    unit="min",
    spec=Spec(min=5, max=15),
    severity=Severity.minor,
    source=SITE_CHOICE,
)
SPIN_TEMP = Parameter(
    name="temperature",
    label="Centrifuge temperature",
    unit="°C",
    spec=Spec(min=2, max=8),
    limits=Range(min=-30, max=60),
    source=SITE_CHOICE,
)
SERUM = Parameter(
    name="serum_percent",
    label="Serum in conditioning medium",
    unit="%",
    spec=Spec(max=2),
    limits=Range(min=0, max=100),
    source="nasiri2026",
)
CONFLUENCE = Parameter(
    name="confluence",
    label="Confluence at harvest",
    unit="%",
    spec=Spec(min=70, max=80),
    limits=Range(min=0, max=100),
    source="nasiri2026",
)
PASSAGE = Parameter(
    name="passage",
    label="Passage number at harvest (P)",
    type=ParamType.integer,
    spec=Spec(min=2, max=5),
    limits=Range(min=0, max=50),
    source=SITE_CHOICE,
)
MEDIUM = Parameter(
    name="basal_medium",
    label="Basal medium",
    type=ParamType.choice,
    choices=["DMEM", "alpha-MEM", "RPMI"],
    spec=Spec(one_of=["DMEM", "alpha-MEM"]),
    source="nasiri2026",
)
INTEGRITY = Parameter(
    name="integrity_test_passed",
    label="Filter integrity test passed",
    type=ParamType.yes_no,
    spec=Spec(equals=True),
    severity=Severity.critical,
    source=SITE_CHOICE,
)
STARTED_AT = Parameter(name="started_at", label="Conditioning started", type=ParamType.datetime)
DONOR = Parameter(name="donor_id", label="Donor identifier", type=ParamType.text)
NOTE = Parameter(name="note", label="Note", type=ParamType.text, required=False)

SPIN = Step(
    id="spin",
    title="Low-speed spin",
    instructions="Spin the collected medium to remove cells and debris.",
    parameters=[RCF, SPIN_TIME, SPIN_TEMP, NOTE],
)

COLLECTION_WINDOW = Window(
    after="conditioning", min=24, max=72, unit="h", severity=Severity.major, source="nasiri2026"
)
CONDITIONING_DONE = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def _collected_after(hours: float) -> Finding:
    done = CONDITIONING_DONE + timedelta(hours=hours)
    return check_window(COLLECTION_WINDOW, "Collection", CONDITIONING_DONE, done)


# --- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["400", "400 x g", "400 g", "400 ×g", "350", "450"])
def test_400_x_g_is_in_spec(raw):
    finding = check_value(RCF, raw)
    assert finding.verdict == Verdict.in_spec
    assert finding.value == pytest.approx(float(raw.split()[0]))
    assert finding.display.endswith(" x g")
    assert finding.spec == "300-500 x g"
    assert not finding.refused


def test_in_spec_finding_names_the_parameter_and_value():
    finding = check_value(RCF, "400 xg")
    assert finding.message == "Relative centrifugal force 400 x g"
    assert finding.parameter == "rcf"
    assert finding.raw == "400 xg"
    assert finding.severity is None


@pytest.mark.parametrize("raw", ["300", "320", "470 x g", "500 x g"])
def test_inside_spec_but_outside_the_alert_band_is_an_alert(raw):
    finding = check_value(RCF, raw)
    assert finding.verdict == Verdict.alert
    assert "is in spec but outside the alert band 350-450 x g" in finding.message
    assert finding.severity is None
    assert not finding.refused


def test_650_x_g_is_out_of_spec_with_the_parameters_severity_and_a_message_naming_the_spec():
    finding = check_value(RCF, "650 x g")
    assert finding.verdict == Verdict.out_of_spec
    assert (
        finding.message == "Relative centrifugal force 650 x g is above the protocol's 300-500 x g"
    )
    assert finding.severity == Severity.critical
    assert finding.value == 650
    assert finding.display == "650 x g"
    assert finding.spec == "300-500 x g"
    assert not finding.refused


def test_a_value_below_the_spec_says_below():
    finding = check_value(RCF, "250")
    assert finding.verdict == Verdict.out_of_spec
    assert (
        finding.message == "Relative centrifugal force 250 x g is below the protocol's 300-500 x g"
    )


def test_a_maximum_only_spec_names_the_maximum():
    finding = check_value(SERUM, "5 %")
    assert finding.verdict == Verdict.out_of_spec
    assert (
        finding.message == "Serum in conditioning medium 5 % is above the protocol's maximum of 2 %"
    )
    assert finding.severity == Severity.major  # the default severity


def test_serum_free_medium_is_in_a_maximum_only_spec():
    assert check_value(SERUM, "0").verdict == Verdict.in_spec


def test_a_value_in_another_unit_is_judged_in_the_protocols_unit():
    finding = check_value(SPIN_TIME, "0.5 h")
    assert finding.verdict == Verdict.out_of_spec
    assert finding.value == 30
    assert finding.message == "Spin time 30 min is above the protocol's 5-15 min"
    assert finding.severity == Severity.minor
    assert check_value(SPIN_TIME, "600 s").value == 10


def test_confluence_above_100_percent_is_refused_as_impossible():
    finding = check_value(CONFLUENCE, "120 %")
    assert finding.verdict == Verdict.refused
    assert finding.refused
    assert "Confluence at harvest 120 % is impossible" in finding.message
    assert "within 0-100 %" in finding.message
    assert "enter it again" in finding.message
    assert finding.value is None  # nothing is recorded


@pytest.mark.parametrize("raw", ["0", "50000 x g"])  # -400: tests/test_bad_input.py
def test_a_centrifuge_setting_outside_the_hard_limits_is_refused_as_impossible(raw):
    finding = check_value(RCF, raw)
    assert finding.verdict == Verdict.refused
    assert "is impossible: it must be within 1-30000 x g" in finding.message


@pytest.mark.parametrize("raw", ["abc", "", "37,0", "nan", "inf", "1e400", "5 min", "400 furlongs"])
def test_an_unreadable_value_is_refused_with_the_spec_as_a_hint(raw):
    finding = check_value(RCF, raw)
    assert finding.verdict == Verdict.refused
    assert finding.message.startswith("Relative centrifugal force: ")
    assert finding.message.endswith("(spec: 300-500 x g)")
    assert finding.value is None


def test_an_unreadable_value_message_says_what_is_wrong():
    assert "decimal point" in check_value(RCF, "400,5").message
    assert "cannot be converted" in check_value(RCF, "5 min").message
    assert "unknown unit 'furlongs'" in check_value(RCF, "400 furlongs").message
    assert "no value given" in check_value(RCF, "   ").message


# --- whole numbers ----------------------------------------------------------------------


def test_an_integer_parameter_refuses_3_5():
    finding = check_value(PASSAGE, "3.5")
    assert finding.verdict == Verdict.refused
    assert "'3.5' is not a whole number" in finding.message


@pytest.mark.parametrize("raw", ["4", "4.0", " 4 "])
def test_an_integer_parameter_records_a_whole_number(raw):
    finding = check_value(PASSAGE, raw)
    assert finding.verdict == Verdict.in_spec
    assert finding.value == 4
    assert isinstance(finding.value, int)
    assert finding.display == "4"


def test_passage_8_is_out_of_spec_and_passage_60_impossible():
    assert check_value(PASSAGE, "8").verdict == Verdict.out_of_spec
    assert check_value(PASSAGE, "60").verdict == Verdict.refused


# --- choices ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["DMEM", "dmem", " Dmem ", "ALPHA-MEM"])
def test_a_choice_matches_whatever_the_case_and_records_the_protocols_spelling(raw):
    finding = check_value(MEDIUM, raw)
    assert finding.verdict == Verdict.in_spec
    assert finding.value in ("DMEM", "alpha-MEM")


def test_a_choice_outside_the_accepted_ones_is_out_of_spec():
    finding = check_value(MEDIUM, "rpmi")
    assert finding.verdict == Verdict.out_of_spec
    assert finding.value == "RPMI"
    assert finding.message == (
        "Basal medium RPMI is not accepted by the protocol (in spec: DMEM, alpha-MEM)"
    )


def test_a_choice_not_among_the_choices_is_refused_listing_them():
    finding = check_value(MEDIUM, "IMDM")
    assert finding.verdict == Verdict.refused
    assert "'IMDM' is not one of: DMEM, alpha-MEM, RPMI" in finding.message


# --- yes/no -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["yes", "Yes", "y", "true", "1", "pass", "passed", "OK"])
def test_yes_in_its_usual_spellings_is_yes(raw):
    finding = check_value(INTEGRITY, raw)
    assert finding.verdict == Verdict.in_spec
    assert finding.value is True
    assert finding.display == "yes"


@pytest.mark.parametrize("raw", ["no", "N", "false", "0", "fail", "FAILED"])
def test_a_failed_integrity_test_is_out_of_spec(raw):
    finding = check_value(INTEGRITY, raw)
    assert finding.verdict == Verdict.out_of_spec
    assert finding.value is False
    assert finding.severity == Severity.critical
    assert finding.message == "Filter integrity test passed no is not the expected answer (yes)"


@pytest.mark.parametrize("raw", ["maybe", "", "2", "si"])
def test_anything_else_is_not_yes_or_no(raw):
    finding = check_value(INTEGRITY, raw)
    assert finding.verdict == Verdict.refused
    assert "is not yes or no" in finding.message


# --- date-times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["2026-11-02T09:30+01:00", "2026-11-02T08:30Z", "2026-11-02T08:30:00+00:00"]
)
def test_a_date_time_with_a_zone_is_recorded_in_utc(raw):
    finding = check_value(STARTED_AT, raw)
    assert finding.verdict == Verdict.in_spec
    assert finding.value == "2026-11-02T08:30:00+00:00"


def test_a_date_time_without_a_zone_is_refused():
    finding = check_value(STARTED_AT, "2026-11-02T09:30")
    assert finding.verdict == Verdict.refused
    assert "has no time zone" in finding.message
    assert "2026-11-02T09:30Z" in finding.message


@pytest.mark.parametrize("raw", ["yesterday", "", "02/11/2026 09:30"])
def test_text_that_is_not_a_date_time_is_refused_with_an_example(raw):
    finding = check_value(STARTED_AT, raw)
    assert finding.verdict == Verdict.refused
    assert "is not a date-time" in finding.message
    assert "ISO 8601" in finding.message


@pytest.mark.parametrize("raw", ["0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00"])
def test_a_date_time_at_the_edge_of_the_calendar_is_refused_not_a_crash(raw):
    finding = check_value(STARTED_AT, raw)
    assert finding.verdict == Verdict.refused
    assert "outside the dates" in finding.message


# --- text -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_text_is_refused(raw):
    finding = check_value(DONOR, raw)
    assert finding.verdict == Verdict.refused
    assert finding.message == "Donor identifier: no value given"


def test_text_is_recorded_without_surrounding_spaces():
    finding = check_value(DONOR, "  D-0042 ")
    assert finding.verdict == Verdict.in_spec
    assert finding.value == "D-0042"


def test_text_longer_than_2000_characters_is_refused():
    finding = check_value(DONOR, "x" * 2001)
    assert finding.verdict == Verdict.refused
    assert "longer than 2000 characters" in finding.message
    assert check_value(DONOR, "x" * 2000).verdict == Verdict.in_spec


# --- a step's entries -------------------------------------------------------------------


def test_three_out_of_spec_values_give_three_out_of_spec_findings():
    findings = check_entries(SPIN, {"rcf": "650 x g", "spin_minutes": "30", "temperature": "20"})
    assert [(f.parameter, f.verdict) for f in findings] == [
        ("rcf", Verdict.out_of_spec),
        ("spin_minutes", Verdict.out_of_spec),
        ("temperature", Verdict.out_of_spec),
    ]


def test_good_entries_give_only_in_spec_findings():
    findings = check_entries(SPIN, {"rcf": "400", "spin_minutes": "10", "temperature": "4"})
    assert {f.verdict for f in findings} == {Verdict.in_spec}
    assert len(findings) == 3  # the optional note is not asked for


def test_an_unknown_parameter_is_refused_naming_the_steps_parameters():
    findings = check_entries(
        SPIN, {"rfc": "400", "rcf": "400", "spin_minutes": "10", "temperature": "4"}
    )
    unknown = [f for f in findings if f.parameter == "rfc"]
    assert len(unknown) == 1
    assert unknown[0].verdict == Verdict.refused
    assert unknown[0].raw == "400"
    assert unknown[0].message == (
        "step spin has no parameter 'rfc'; its parameters: note, rcf, spin_minutes, temperature"
    )


def test_a_value_for_a_step_that_records_none_is_refused():
    bare = Step(id="thaw", title="Thaw", instructions="Thaw the vial.")
    [finding] = check_entries(bare, {"rcf": "400"})
    assert finding.verdict == Verdict.refused
    assert "none (this step records no values)" in finding.message


def test_a_missing_required_value_is_refused_saying_name_equals_value():
    findings = check_entries(SPIN, {"spin_minutes": "10", "temperature": "4"})
    [missing] = [f for f in findings if f.refused]
    assert missing.parameter == "rcf"
    assert missing.message == (
        "Relative centrifugal force is required: add rcf=VALUE in x g (spec 300-500 x g)"
    )


def test_every_problem_in_a_step_is_reported_at_once():
    findings = check_entries(SPIN, {"rfc": "400", "spin_minutes": "abc", "temperature": "20"})
    by_name = {f.parameter: f.verdict for f in findings}
    assert by_name == {
        "rfc": Verdict.refused,
        "rcf": Verdict.refused,
        "spin_minutes": Verdict.refused,
        "temperature": Verdict.out_of_spec,
    }


def test_a_correction_may_give_only_the_corrected_value():
    findings = check_entries(SPIN, {"rcf": "420"}, partial=True)
    assert [(f.parameter, f.verdict) for f in findings] == [("rcf", Verdict.in_spec)]


def test_a_correction_still_refuses_an_unknown_name():
    findings = check_entries(SPIN, {"rfc": "420"}, partial=True)
    assert [(f.parameter, f.verdict) for f in findings] == [("rfc", Verdict.refused)]


# --- time windows -----------------------------------------------------------------------


def test_collection_after_20_h_is_out_of_spec_below_the_window():
    finding = _collected_after(20)
    assert finding.verdict == Verdict.out_of_spec
    assert finding.message == "Time since conditioning 20 h is below the protocol's 24-72 h"
    assert finding.severity == Severity.major
    assert finding.parameter == "time_since_conditioning"


def test_collection_after_80_h_is_out_of_spec_above_the_window():
    finding = _collected_after(80)
    assert finding.verdict == Verdict.out_of_spec
    assert finding.message == "Time since conditioning 80 h is above the protocol's 24-72 h"
    assert finding.value == 80


@pytest.mark.parametrize("hours", [24, 48, 72])
def test_collection_within_24_to_72_h_is_in_spec(hours):
    finding = _collected_after(hours)
    assert finding.verdict == Verdict.in_spec
    assert finding.value == hours
    assert finding.display == f"{hours} h"


def test_collection_recorded_before_conditioning_was_done_is_refused():
    finding = _collected_after(-2)
    assert finding.verdict == Verdict.refused
    assert finding.message == "Collection would be 2 h before conditioning was done"


def test_a_window_in_days_counts_in_days():
    window = Window(after="conditioning", min=1, max=3, unit="d", source=SITE_CHOICE)
    finding = check_window(
        window, "Collection", CONDITIONING_DONE, CONDITIONING_DONE + timedelta(hours=36)
    )
    assert finding.verdict == Verdict.in_spec
    assert finding.value == 1.5
    assert finding.display == "1.5 d"


# --- properties -------------------------------------------------------------------------


def _ways_of_writing(value: float) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [repr(value), str(value), f"{value} x g", f"{value}xg", f"{value:.3f} g"]
    )


@settings(max_examples=200)
@given(data=st.data(), value=st.floats())
def test_any_number_is_judged_never_raises_and_never_passes_outside_spec_or_limits(data, value):
    raw = data.draw(_ways_of_writing(value))
    finding = check_value(RCF, raw)
    assert isinstance(finding, Finding)
    assert finding.message
    if not math.isfinite(value):
        assert finding.verdict == Verdict.refused
        return
    recorded = finding.value
    if finding.verdict == Verdict.refused:
        assert recorded is None
    else:
        assert LIMIT_MIN <= recorded <= LIMIT_MAX
        in_spec = SPEC_MIN <= recorded <= SPEC_MAX
        assert finding.verdict in (
            (Verdict.in_spec, Verdict.alert) if in_spec else (Verdict.out_of_spec,)
        )
        if finding.verdict == Verdict.in_spec:
            assert ALERT_MIN <= recorded <= ALERT_MAX
    parsed = float(raw.split("x")[0].split("g")[0])
    if not LIMIT_MIN <= parsed <= LIMIT_MAX:
        assert finding.verdict == Verdict.refused
    elif not SPEC_MIN <= parsed <= SPEC_MAX:
        assert finding.verdict == Verdict.out_of_spec
        assert finding.severity == Severity.critical


@settings(max_examples=200)
@given(value=st.floats(min_value=LIMIT_MIN, max_value=LIMIT_MAX))
def test_every_possible_value_is_recorded_with_the_right_verdict(value):
    finding = check_value(RCF, repr(value))
    if not SPEC_MIN <= value <= SPEC_MAX:
        expected = Verdict.out_of_spec
    elif not ALERT_MIN <= value <= ALERT_MAX:
        expected = Verdict.alert
    else:
        expected = Verdict.in_spec
    assert finding.verdict == expected
    assert finding.value == value


ALL_KINDS = [RCF, SPIN_TIME, SERUM, PASSAGE, MEDIUM, INTEGRITY, STARTED_AT, DONOR]


@settings(max_examples=200)
@given(raw=st.text(), param=st.sampled_from(ALL_KINDS))
def test_any_text_for_any_kind_of_parameter_gives_a_finding_never_an_exception(raw, param):
    finding = check_value(param, raw)
    assert isinstance(finding, Finding)
    assert finding.parameter == param.name
    assert finding.message
    if finding.verdict != Verdict.refused and isinstance(finding.value, float):
        assert math.isfinite(finding.value)


def test_a_converted_value_is_shown_to_three_significant_figures_a_typed_one_as_typed():
    """1950 rpm on a 16.5 cm rotor is 701.447 x g: the message and the record say 701 x g;
    a value typed in the protocol's own unit is shown as typed."""
    converted = check_value(RCF, "1950 rpm", rotor_radius_cm=16.5)
    assert converted.display == "701 x g"
    assert "701 x g" in converted.message and "701.447" not in converted.message
    assert check_value(RCF, "412.5 x g").display == "412.5 x g"
