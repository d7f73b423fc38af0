"""The formula language of derived values: read by hand, never by ``eval``.

Properties: any text either parses or raises ExpressionError (never anything else);
printing a tree and reading it back gives the same tree; a tree computes what Python's
arithmetic computes, and division by zero or an overflow is an ExpressionError. Units:
each result's kind follows from its inputs', and + or - of different kinds is refused.
"""

from __future__ import annotations

import contextlib
import math
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmprep.protocol import expressions as ex
from cmprep.protocol.expressions import BinOp, ExpressionError, Name, Neg, Number

NAMES = [Name("a"), Name("b"), Name("volume", "collection"), Name("final_volume", "downstream")]

numbers = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False).map(
    lambda x: Number(abs(x) + 0.0)
)
leaves = st.one_of(numbers, st.sampled_from(NAMES))
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Neg, inner),
        st.builds(BinOp, st.sampled_from("+-*/"), inner, inner),
    ),
    max_leaves=12,
)
values = st.fixed_dictionaries(
    {
        name: st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
        for name in NAMES
    }
)
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def python_value(node: ex.Node, given_values: dict[Name, float]) -> float:
    """The same tree with Python's own arithmetic (ZeroDivisionError included)."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Name):
        return given_values[node]
    if isinstance(node, Neg):
        return -python_value(node.operand, given_values)
    return OPS[node.op](
        python_value(node.left, given_values), python_value(node.right, given_values)
    )


@settings(max_examples=400)
@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_with_the_module_error(text):
    try:
        node = ex.parse(text)
    except ExpressionError as err:
        assert str(err)
    else:
        assert ex.parse(ex.to_text(node)) == node


@settings(max_examples=300)
@given(st.lists(st.sampled_from(list("ab.()+-*/ 0123456789e_")), max_size=40).map("".join))
def test_formula_like_text_parses_or_is_refused(text):
    with contextlib.suppress(ExpressionError):
        ex.parse(text)


@settings(max_examples=300)
@given(trees)
def test_printing_round_trips(node):
    assert ex.parse(ex.to_text(node)) == node


@settings(max_examples=300)
@given(trees, values)
def test_evaluation_matches_python_arithmetic(node, given_values):
    try:
        expected = python_value(node, given_values)
    except ZeroDivisionError:
        with pytest.raises(ExpressionError, match="division by zero"):
            ex.evaluate(node, given_values)
        return
    except OverflowError:
        with pytest.raises(ExpressionError):
            ex.evaluate(node, given_values)
        return
    if not math.isfinite(expected):
        with pytest.raises(ExpressionError):
            ex.evaluate(node, given_values)
        return
    try:
        got = ex.evaluate(node, given_values)
    except ExpressionError as err:  # an intermediate overflowed, though the end is finite
        assert "too large" in str(err)
        return
    assert got == expected


def test_precedence_and_grouping():
    assert ex.parse("a + b * 2") == BinOp("+", Name("a"), BinOp("*", Name("b"), Number(2.0)))
    assert ex.parse("a - b - 1") == BinOp("-", BinOp("-", Name("a"), Name("b")), Number(1.0))
    assert ex.parse("-a * b") == BinOp("*", Neg(Name("a")), Name("b"))
    assert ex.parse("(a + b) / collection.volume") == BinOp(
        "/", BinOp("+", Name("a"), Name("b")), Name("volume", "collection")
    )
    assert ex.to_text(ex.parse("(a+b)/(c*(d-e))")) == "(a + b) / (c * (d - e))"
    assert ex.parse("1e6 * .5 + 2.") == BinOp(
        "+", BinOp("*", Number(1e6), Number(0.5)), Number(2.0)
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "the formula is empty"),
        ("   ", "the formula is empty"),
        ("a +", "the formula ends where a number or a name is expected"),
        ("(a + b", "a closing parenthesis is missing for the one at position 1"),
        ("a + b)", "')' at position 6 does not continue the formula"),
        ("a b", "'b' at position 3 does not continue the formula"),
        ("a ** b", "'*' at position 4: a number, a name or an opening parenthesis is expected"),
        ("__import__('os')", '"\'" at position 12 has no place in a formula'),
        ("a; b", "';' at position 2 has no place in a formula"),
        ("a.", "a parameter name must follow a. at position 3"),
        ("1.2.3", "'1.2.' at position 1 is not a number"),
        ("2x", "'2x' at position 1 is not a number"),
        ("1e999", "1e999 at position 1 is too large"),
        ("a ^ 2", "'^' at position 3 has no place in a formula"),
        ("µ", "'µ' at position 1 has no place in a formula"),
        ("-" * 50 + "a", "nested more than 40 levels deep"),
        ("(" * 50 + "a" + ")" * 50, "nested more than 40 levels deep"),
        ("a" * 501, "a formula is at most 500 characters"),
    ],
)
def test_what_is_refused_and_why(text, said):
    with pytest.raises(ExpressionError) as err:
        ex.parse(text)
    assert said in str(err.value)


def test_names_in_order():
    node = ex.parse("ev_concentration * downstream.final_volume / collection.cell_count")
    assert [n.text for n in ex.names(node)] == [
        "ev_concentration",
        "downstream.final_volume",
        "collection.cell_count",
    ]


def test_division_by_zero_names_the_divisor():
    with pytest.raises(ExpressionError, match=r"division by zero: b - 1.0 is 0"):
        ex.evaluate(ex.parse("a / (b - 1)"), {Name("a"): 2.0, Name("b"): 1.0})


# --- units ----------------------------------------------------------------------------------
def _compute(text: str, inputs: dict[str, tuple[float, str | None]], unit: str | None) -> float:
    node = ex.parse(text)
    by_name = {n: inputs[n.text] for n in ex.names(node)}
    return ex.compute(node, by_name, unit)


def test_a_ratio_of_volumes_is_a_plain_number_or_a_percentage():
    volumes = {"a": (500.0, "mL"), "b": (40.0, "mL")}
    assert _compute("a / b", volumes, None) == 12.5
    assert _compute("b / a", volumes, "%") == 8.0
    assert _compute("a / b", {"a": (0.5, "L"), "b": (40.0, "mL")}, None) == 12.5


def test_evs_per_million_cells():
    inputs = {"c": (3e11, "particles/mL"), "v": (40.0, "mL"), "n": (4.5e7, "cells")}
    value = _compute("c * v / n", inputs, "particles/10^6 cells")
    assert value == pytest.approx(2.6666666666667e11)


def test_secretome_per_million_cells_across_units():
    inputs = {"c": (0.25, "ng/mL"), "v": (40.0, "mL"), "n": (4.5e7, "cells")}
    assert _compute("c * v / n", inputs, "pg/10^6 cells") == pytest.approx(222.2222222222)


def test_sums_convert_within_a_kind():
    assert _compute("a + b", {"a": (1.0, "L"), "b": (500.0, "mL")}, "mL") == 1500.0
    assert _compute("a - b", {"a": (2.0, "h"), "b": (30.0, "min")}, "min") == 90.0


def test_cell_density_from_a_count_vessels_and_area():
    inputs = {"n": (4.9e7, "cells"), "k": (14.0, None), "area": (175.0, "cm2")}
    assert _compute("n / (k * area)", inputs, "cells/cm2") == pytest.approx(20000.0)
    medium = {"v": (36.0, "mL"), "area": (175.0, "cm2")}
    assert _compute("v / area", medium, "mL/cm2") == pytest.approx(0.2057142857)


@pytest.mark.parametrize(
    ("text", "kinds", "said"),
    [
        ("a + n", {"a": "mL", "n": "cells"}, "cannot add n (a count (e.g. cells)) to a (a volume"),
        ("a - t", {"a": "mL", "t": "h"}, "cannot subtract t (a time (e.g. s)) from a (a volume"),
        ("a + 1", {"a": "mL"}, "cannot add 1.0 (a plain number (or %)) to a (a volume"),
        ("-(a * b) + b", {"a": "mL", "b": "mL"}, "cannot add b (a volume (e.g. L))"),
    ],
)
def test_mixed_kinds_in_a_sum_are_refused(text, kinds, said):
    node = ex.parse(text)
    with pytest.raises(ExpressionError, match="the units are incompatible") as err:
        ex.infer(node, lambda n: ex.kind_of(kinds[n.text]))
    assert said in str(err.value)


def test_the_result_must_be_of_the_declared_kind():
    node = ex.parse("a * b")
    with pytest.raises(ExpressionError) as err:
        ex.check_result(node, lambda n: ex.kind_of("mL"), "%")
    assert str(err.value) == (
        "the formula gives volume^2 but the parameter's unit is % (a plain number (or %))"
    )
    with pytest.raises(ExpressionError, match="but the parameter's unit is no unit"):
        ex.check_result(ex.parse("a"), lambda n: ex.kind_of("mL"), None)


def test_significant_figures():
    assert ex.significant(12.4999, 3) == 12.5
    assert ex.significant(266666666666.7, 3) == 2.67e11
    assert ex.significant(0.0, 3) == 0.0
    assert ex.significant(-0.000123456, 2) == -0.00012
