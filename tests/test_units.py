"""The unit table: what a technician may type, what it means, and what is refused.

A value is read into the protocol's unit; a bare number is taken in that unit. Anything
that cannot be read exactly (empty, decimal comma, NaN, infinity, overflow, an unknown
unit, a unit of another dimension) is refused with a sentence saying what to type.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmprep.protocol import units
from cmprep.protocol.units import UnitError, canonical, compatible_units, convert, parse_quantity

# The canonical spellings the README's unit table documents, grouped by dimension.
TABLE = {
    "time": ["s", "min", "h", "d"],
    "length": ["m", "mm", "um", "nm"],
    "rcf": ["x g"],
    "rotation": ["rpm"],
    "fraction": ["%"],
    "temperature": ["°C"],
    "volume": ["L", "mL", "uL"],
    "mass_concentration": ["pg/mL", "ng/mL", "ug/mL", "mg/mL"],
    "activity_concentration": ["U/mL"],
    "count": ["cells"],
    "cell_density": ["cells/cm2"],
    "cell_concentration": ["cells/mL"],
    "particle_concentration": ["particles/mL"],
    "washes": ["washes"],
    "flasks": ["flasks"],
}
CANONICAL = [u for group in TABLE.values() for u in group]
SAME_DIMENSION_PAIRS = [(a, b) for group in TABLE.values() for a in group for b in group]

MICRO_SIGN = "\u00b5"  # µ, what a keyboard's AltGr+m types
GREEK_MU = "\u03bc"  # μ, what a Greek layout or a copied PDF gives

# Floats a bench reading can be: finite, not so large that d -> s or m -> nm overflows.
readings = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e250, max_value=1e250)


def refusal(text: str, unit: str | None) -> str:
    with pytest.raises(UnitError) as err:
        parse_quantity(text, unit)
    return str(err.value)


# --- the table itself -------------------------------------------------------------------


def test_the_unit_table_is_the_documented_one():
    for dimension, group in TABLE.items():
        for unit in group:
            assert canonical(unit) == unit
            assert units.lookup(unit).dimension == dimension
            assert compatible_units(unit) == group


@pytest.mark.parametrize(
    ("spelling", "symbol"),
    [
        ("ml", "mL"),
        ("hours", "h"),
        ("hr", "h"),
        ("minutes", "min"),
        ("days", "d"),
        ("micron", "um"),
        (f"{MICRO_SIGN}m", "um"),
        (f"{GREEK_MU}m", "um"),
        ("xg", "x g"),
        ("rcf", "x g"),
        ("degC", "°C"),
        ("percent", "%"),
        ("IU/mL", "U/mL"),
        ("cells/cm²", "cells/cm2"),
        ("wash", "washes"),
    ],
)
def test_common_spellings_print_as_the_canonical_unit(spelling, symbol):
    assert canonical(spelling) == symbol


def test_g_alone_means_times_g_never_grams():
    assert units.lookup("g").dimension == "rcf"
    assert canonical("g") == "x g"


# --- conversions ------------------------------------------------------------------------


def test_48_h_equals_2_d_equals_2880_min():
    assert parse_quantity("48 h", "min") == 2880
    assert parse_quantity("2 d", "min") == 2880
    assert parse_quantity("2880 min", "h") == 48
    assert parse_quantity("2 d", "h") == 48
    assert parse_quantity("48 hours", "d") == 2


@pytest.mark.parametrize("spelling", ["um", f"{MICRO_SIGN}m", f"{GREEK_MU}m", "micron"])
def test_0_22_um_in_any_micro_spelling_is_220_nm(spelling):
    assert parse_quantity(f"0.22 {spelling}", "um") == pytest.approx(0.22)
    assert math.isclose(parse_quantity(f"0.22 {spelling}", "nm"), 220)
    assert math.isclose(parse_quantity("220 nm", spelling), 0.22)


@pytest.mark.parametrize(
    "text", ["400 x g", "400 xg", "400 g", "400 ×g", "400 × g", "400xg", "400 X G"]
)
def test_every_way_of_writing_400_times_g_is_400_times_g(text):
    assert parse_quantity(text, "x g") == 400


@pytest.mark.parametrize("text", ["75 %", "75%", "75 percent"])
def test_75_percent(text):
    assert parse_quantity(text, "%") == 75


@pytest.mark.parametrize("text", ["37 degC", "37 °C", "37 C", "37°C", "37 ℃"])
def test_37_degrees_celsius_in_any_spelling(text):
    assert parse_quantity(text, "°C") == 37


def test_1_2_ng_per_ml_equals_1200_pg_per_ml():
    assert math.isclose(parse_quantity("1.2 ng/mL", "pg/mL"), 1200)
    assert math.isclose(parse_quantity("1200 pg/mL", "ng/mL"), 1.2)


def test_500_ml_is_half_a_litre():
    assert parse_quantity("500 mL", "L") == 0.5


def test_a_bare_number_is_taken_in_the_protocols_unit():
    assert parse_quantity("48", "h") == 48
    assert parse_quantity("48", "min") == 48
    assert parse_quantity("  400  ", "x g") == 400
    assert parse_quantity("-80", "°C") == -80
    assert parse_quantity("1.5e6", "cells") == 1_500_000


def test_a_plain_number_parameter_takes_a_bare_number_and_refuses_a_unit():
    assert parse_quantity("12", None) == 12
    message = refusal("12 h", None)
    assert "plain number" in message
    assert "h" in message


def test_converting_across_dimensions_is_refused():
    with pytest.raises(UnitError, match="cannot be converted"):
        convert(5, "min", "x g")


def test_an_unknown_unit_is_refused_by_name():
    with pytest.raises(UnitError, match="furlongs"):
        units.lookup("furlongs")
    assert not units.is_known("furlongs")


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "   \t  ", "\n"])
def test_an_empty_value_is_refused(text):
    assert refusal(text, "x g") == "no value given"


def test_a_decimal_comma_is_refused_asking_for_a_decimal_point():
    message = refusal("37,0", "°C")
    assert "decimal comma" in message
    assert "decimal point" in message
    assert "'37.0'" in message


def test_a_decimal_comma_with_a_unit_suggests_the_same_reading_with_a_point():
    message = refusal("1,5 h", "h")
    assert "decimal point" in message
    assert "'1.5 h'" in message


@pytest.mark.parametrize(
    ("text", "suggestion"), [("1,000 cells", "'1000 cells'"), ("2,500,000", "'2500000'")]
)
def test_a_thousands_separator_is_refused_without_suggesting_a_value_1000_times_smaller(
    text, suggestion
):
    message = refusal(text, "cells")
    assert "thousands separators" in message
    assert "decimal point" in message
    assert suggestion in message
    assert "'1.000" not in message and "'2.500" not in message


@pytest.mark.parametrize(
    "text", ["nan", "NaN", "inf", "-inf", "+inf", "Infinity", "-Infinity", "nan x g"]
)
def test_nan_and_infinity_are_refused_as_not_finite(text):
    assert "not a finite number" in refusal(text, "x g")


def test_1e400_overflows_and_is_refused_as_too_large():
    assert "too large" in refusal("1e400", "x g")
    assert "too large" in refusal("-1e400", "x g")


def test_a_value_that_overflows_when_converted_is_refused_not_made_infinite():
    message = refusal("1e308 d", "s")
    assert "too large" in message
    with pytest.raises(UnitError, match="too large"):
        convert(1e308, "m", "nm")


def test_an_unknown_unit_is_refused_naming_it_and_listing_the_expected_ones():
    message = refusal("5 furlongs", "min")
    assert "unknown unit 'furlongs'" in message
    assert "expected one of: s, min, h, d" in message


def test_a_unit_of_the_wrong_dimension_is_refused_as_not_convertible():
    message = refusal("5 min", "x g")
    assert "min cannot be converted to x g" in message
    assert "time vs rcf" in message
    assert "expected one of: x g" in message


def test_grams_per_ml_are_not_a_centrifuge_setting():
    assert "cannot be converted" in refusal("5 ng/mL", "x g")


@pytest.mark.parametrize("text", ["abc", "x g", "about 400", ".", "-", "e5"])
def test_text_that_does_not_start_with_a_number_is_refused(text):
    assert "does not start with a number" in refusal(text, "x g")


# --- properties -------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False),
    pair=st.sampled_from(SAME_DIMENSION_PAIRS),
)
def test_converting_there_and_back_gives_the_original_or_is_refused_as_too_large(value, pair):
    there, back_unit = pair
    try:
        converted = convert(value, there, back_unit)
        back = convert(converted, back_unit, there)
    except UnitError as err:  # only at the edge of the float range
        assert "too large" in str(err)
        assert abs(value) > 1e280
        return
    assert math.isfinite(converted)
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-300)


@settings(max_examples=200)
@given(value=readings, pair=st.sampled_from(SAME_DIMENSION_PAIRS))
def test_converting_a_reading_there_and_back_gives_the_original(value, pair):
    there, back_unit = pair
    back = convert(convert(value, there, back_unit), back_unit, there)
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-290)


@settings(max_examples=200)
@given(value=readings, unit=st.sampled_from(CANONICAL))
def test_a_value_written_with_its_canonical_unit_reads_back_exactly(value, unit):
    if value < 0 and unit != "°C":  # only a temperature can be below zero
        assert "is negative" in refusal(f"{value} {unit}", unit)
        assert "is negative" in refusal(f"{value}", unit)
        return
    assert parse_quantity(f"{value} {unit}", unit) == value
    assert parse_quantity(f"{value}", unit) == value


@settings(max_examples=200)
@given(text=st.text(), unit=st.sampled_from([*CANONICAL, None]))
def test_any_text_is_read_or_refused_with_a_unit_error_never_nan_or_infinity(text, unit):
    try:
        value = parse_quantity(text, unit)
    except UnitError as err:
        assert str(err)
        return
    assert isinstance(value, float)
    assert math.isfinite(value)


@settings(max_examples=200)
@given(
    number=st.from_regex(r"[+-]?[0-9]{1,6}(\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    spelling=st.sampled_from([*units._ALIASES, "", " ", "furlongs", "ångström"]),
    unit=st.sampled_from(CANONICAL),
)
def test_a_number_with_any_spelling_is_read_or_refused_never_nan_or_infinity(
    number, spelling, unit
):
    try:
        value = parse_quantity(f"{number} {spelling}", unit)
    except UnitError as err:
        assert str(err)
        return
    assert math.isfinite(value)


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("37 \u00b0\u0421", "°C", None),  # Cyrillic capital ES looks like C: refused, not guessed
        ("400 \u0445g", "x g", None),  # Cyrillic small HA looks like x
        ("0.22 \u00b5m", "um", 0.22),  # micro sign
        ("0.22 \u03bcm", "um", 0.22),  # Greek mu
        ("\uff13\uff17 \u00b0C", "°C", 37.0),  # full-width digits read as the digits they are
        ("400 \u00d7g", "x g", 400.0),  # multiplication sign
    ],
)
def test_unicode_look_alikes_get_a_clear_answer_never_a_wrong_conversion(text, unit, expected):
    if expected is None:
        with pytest.raises(UnitError, match="unknown unit"):
            parse_quantity(text, unit)
    else:
        assert parse_quantity(text, unit) == expected
