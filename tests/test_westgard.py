"""Westgard multirule QC: hand-worked series for every rule, the completing-index
semantics, messages, baseline errors, and properties (shift and mirror invariance)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmprep.domain.westgard import (
    REJECTION_RULES,
    RULES,
    Violation,
    baseline,
    evaluate,
    format_number,
    new_point_violations,
)

MEAN, SD = 100.0, 10.0


def rules(values, mean=MEAN, sd=SD):
    return [(v.rule, v.index) for v in evaluate(values, mean, sd)]


def rule_names(values, mean=MEAN, sd=SD):
    return {v.rule for v in evaluate(values, mean, sd)}


# --- hand-worked series, mean 100, SD 10 ----------------------------------------------


def test_in_control_series_has_no_violations():
    assert evaluate([100, 95, 108, 91, 112, 100, 88, 119, 81], MEAN, SD) == []


def test_1_2s_is_a_warning_only():
    found = evaluate([100, 125, 100], MEAN, SD)
    assert [(v.rule, v.index, v.indices, v.rejection) for v in found] == [("1-2s", 1, (1,), False)]


def test_1_2s_below():
    assert rules([75]) == [("1-2s", 0)]


def test_exactly_on_a_limit_is_not_beyond_it():
    # 130 and 70: beyond 2 SD but on 3 SD (no 1-3s); on 2 SD, 120 and 80 make no 1-2s or R-4s
    assert rules([120, 80, 130, 100, 70]) == [("1-2s", 2), ("1-2s", 4)]
    assert rules([120, 121]) == [("1-2s", 1)]  # no 2-2s: 120 is on the limit
    assert rules([110, 110, 110, 110]) == []  # on +1 SD, not beyond: no 4-1s
    assert rules([100] * 12) == []  # on the mean: on neither side, no 10-x


def test_1_3s_and_1_2s():
    found = evaluate([131], MEAN, SD)
    assert [(v.rule, v.rejection) for v in found] == [("1-2s", False), ("1-3s", True)]
    assert rules([69]) == [("1-2s", 0), ("1-3s", 0)]


def test_2_2s_same_side():
    found = evaluate([121, 122], MEAN, SD)
    assert [(v.rule, v.index) for v in found] == [("1-2s", 0), ("1-2s", 1), ("2-2s", 1)]
    two = found[-1]
    assert two.indices == (0, 1) and two.rejection
    assert rules([79, 78])[-1] == ("2-2s", 1)


def test_2_2s_needs_consecutive_points():
    assert "2-2s" not in rule_names([121, 95, 122])
    assert "2-2s" not in rule_names([121, 119])  # the second is within 2 SD


def test_r_4s_opposite_sides():
    found = evaluate([121, 79], MEAN, SD)
    assert [(v.rule, v.index) for v in found] == [("1-2s", 0), ("1-2s", 1), ("R-4s", 1)]
    assert found[-1].indices == (0, 1)
    assert rules([78, 122])[-1] == ("R-4s", 1)
    # opposite sides are never 2-2s, same side never R-4s
    assert "2-2s" not in rule_names([121, 79])
    assert "R-4s" not in rule_names([121, 122])


def test_r_4s_needs_both_beyond_2_sd():
    # a range over 4 SD is not enough on its own: each point must be beyond its 2 SD limit
    assert "R-4s" not in rule_names([125, 81])
    assert "R-4s" not in rule_names([121, 95, 79])  # not consecutive


def test_4_1s():
    found = evaluate([111, 112, 113, 114], MEAN, SD)
    assert [(v.rule, v.index, v.indices) for v in found] == [("4-1s", 3, (0, 1, 2, 3))]
    assert rules([89, 88, 87, 86]) == [("4-1s", 3)]


def test_4_1s_negative_cases():
    assert rules([111, 112, 113]) == []  # three only
    assert rules([111, 112, 105, 113, 114]) == []  # broken by a point within 1 SD
    assert rules([111, 112, 89, 113]) == []  # mixed sides


def test_10_x():
    found = evaluate([101] * 10, MEAN, SD)
    assert [(v.rule, v.index, v.indices) for v in found] == [("10-x", 9, tuple(range(10)))]
    assert rules([99] * 10) == [("10-x", 9)]


def test_10_x_negative_cases():
    assert rules([101] * 9) == []
    assert rules([101] * 5 + [99] + [101] * 5) == []
    assert rules([101] * 5 + [100] + [101] * 5) == []  # a point on the mean breaks the run


def test_each_rule_once_per_completing_index():
    # five consecutive points above +1 SD: 4-1s completed at index 3 and again at 4
    found = evaluate([111] * 5, MEAN, SD)
    assert [(v.rule, v.index, v.indices) for v in found] == [
        ("4-1s", 3, (0, 1, 2, 3)),
        ("4-1s", 4, (1, 2, 3, 4)),
    ]
    # three points above +2 SD: 2-2s at 1 and at 2
    assert [v.index for v in evaluate([121, 122, 123], MEAN, SD) if v.rule == "2-2s"] == [1, 2]
    # twelve above the mean: 10-x at 9, 10, 11
    assert [i for r, i in rules([105] * 12) if r == "10-x"] == [9, 10, 11]


def test_violations_in_order_of_index_and_every_rule_at_one_point():
    # ten points above the mean, the last four above +1 SD, the last two above +2 SD,
    # the newest above +3 SD: every rule but R-4s completes at index 9
    series = [101] * 6 + [111, 112, 121, 131]
    found = evaluate(series, MEAN, SD)
    assert [v.index for v in found] == sorted(v.index for v in found)
    at_last = [v.rule for v in found if v.index == 9]
    assert at_last == ["1-2s", "1-3s", "2-2s", "4-1s", "10-x"]
    for v in found:
        assert v.index == v.indices[-1]
        assert list(v.indices) == list(range(v.indices[0], v.index + 1))


def test_the_rule_constants():
    assert RULES == ("1-2s", "1-3s", "2-2s", "R-4s", "4-1s", "10-x")
    assert set(REJECTION_RULES) == set(RULES) - {"1-2s"}


def test_violation_is_frozen():
    v = evaluate([131], MEAN, SD)[0]
    assert isinstance(v, Violation)
    with pytest.raises(AttributeError):
        v.rule = "x"  # type: ignore[misc]


# --- messages ---------------------------------------------------------------------------


def test_messages_name_batches_by_label_with_mean_and_sd():
    labels = ["CM-001", "CM-002", "CM-003", "CM-004", "CM-005"]
    found = evaluate([300, 310, 290, 390, 395], 300, 40, labels=labels, unit="pg/mL")
    two = next(v for v in found if v.rule == "2-2s")
    assert two.message == "2-2s: batches CM-004 and CM-005 both above +2 SD (mean 300, SD 40 pg/mL)"


def test_messages_without_labels_use_1_based_positions():
    found = evaluate([300, 310, 290, 390, 395], 300, 40)
    two = next(v for v in found if v.rule == "2-2s")
    assert two.message == "2-2s: batches 4 and 5 both above +2 SD (mean 300, SD 40)"


def test_message_for_every_rule():
    def message(values, rule):
        return next(v.message for v in evaluate(values, MEAN, SD, unit="pg/mL") if v.rule == rule)

    assert message([125], "1-2s") == (
        "1-2s: batch 1 (125 pg/mL) above +2 SD, warning (mean 100, SD 10 pg/mL)"
    )
    assert message([65], "1-3s") == "1-3s: batch 1 (65 pg/mL) below -3 SD (mean 100, SD 10 pg/mL)"
    assert message([121, 79], "R-4s") == (
        "R-4s: batch 1 above +2 SD and batch 2 below -2 SD, a range over 4 SD "
        "(mean 100, SD 10 pg/mL)"
    )
    assert message([100, 89, 88, 87, 86], "4-1s") == (
        "4-1s: batches 2 to 5 all below -1 SD (mean 100, SD 10 pg/mL)"
    )
    assert message([101] * 10, "10-x") == (
        "10-x: batches 1 to 10 all above the mean (mean 100, SD 10 pg/mL)"
    )


def test_message_numbers_are_short():
    v = evaluate([400], 312.4567, 40.1234, unit="pg/mL")[0]
    assert "(mean 312.5, SD 40.12 pg/mL)" in v.message
    assert format_number(300.0) == "300"
    assert format_number(12345.6) == "12346"
    assert format_number(0.01234) == "0.01234"
    assert format_number(-0.00001) == "-0.00001"
    assert format_number(0) == "0"


def test_labels_must_match_values():
    with pytest.raises(ValueError, match="2 labels for 3 values"):
        evaluate([1, 2, 3], MEAN, SD, labels=["a", "b"])
    with pytest.raises(ValueError, match="labels"):
        new_point_violations([1, 2], 3, MEAN, SD, labels=["a", "b"])


# --- new_point_violations ---------------------------------------------------------------


def test_new_point_completes_2_2s():
    found = new_point_violations([100, 121], 122, MEAN, SD, labels=["B1", "B2", "B3"])
    assert [(v.rule, v.index, v.indices) for v in found] == [("2-2s", 2, (1, 2))]
    assert "batches B2 and B3" in found[0].message


def test_new_point_never_reports_1_2s_or_old_violations():
    assert new_point_violations([], 125, MEAN, SD) == []  # 1-2s is a warning only
    # the history holds a 1-3s and a 2-2s; the new point is in control
    assert new_point_violations([131, 121, 122], 100, MEAN, SD) == []


def test_new_point_completes_several_rules():
    history = [101] * 6 + [111, 112, 121]
    found = new_point_violations(history, 131, MEAN, SD)
    assert [v.rule for v in found] == ["1-3s", "2-2s", "4-1s", "10-x"]
    assert all(v.index == len(history) and v.rejection for v in found)


def test_new_point_r_4s_and_4_1s_and_10_x():
    assert [v.rule for v in new_point_violations([121], 79, MEAN, SD)] == ["R-4s"]
    assert [v.rule for v in new_point_violations([111, 112, 113], 114, MEAN, SD)] == ["4-1s"]
    assert [v.rule for v in new_point_violations([99] * 9, 98, MEAN, SD)] == ["10-x"]
    assert new_point_violations([99] * 9, 101, MEAN, SD) == []


# --- baseline and argument errors -------------------------------------------------------


def test_baseline_mean_and_sample_sd():
    mean, sd = baseline([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5
    assert sd == pytest.approx(math.sqrt(32 / 7))  # n - 1, not n
    assert baseline([300, 340]) == (320, pytest.approx(math.sqrt(800)))


@pytest.mark.parametrize("values", [[], [300]])
def test_baseline_needs_two_values(values):
    with pytest.raises(ValueError, match="at least 2 values"):
        baseline(values)


def test_baseline_with_no_spread():
    with pytest.raises(ValueError, match="SD is 0"):
        baseline([300, 300, 300])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad):
    with pytest.raises(ValueError, match="finite"):
        baseline([300, bad, 310])
    with pytest.raises(ValueError, match="finite"):
        evaluate([300, bad], 300, 40)
    with pytest.raises(ValueError, match="finite"):
        new_point_violations([300], bad, 300, 40)
    with pytest.raises(ValueError, match="finite"):
        evaluate([300], bad, 40)


@pytest.mark.parametrize("sd", [0, -1, -40.0])
def test_sd_must_be_positive(sd):
    with pytest.raises(ValueError, match="sd must be greater than 0"):
        evaluate([300], 300, sd)
    with pytest.raises(ValueError, match="sd must be greater than 0"):
        new_point_violations([300], 310, 300, sd)


def test_empty_series():
    assert evaluate([], MEAN, SD) == []


# --- properties -------------------------------------------------------------------------

# integers and integer shifts keep every subtraction exact, so no value lands on the other
# side of a limit by rounding
ints = st.integers(min_value=-10_000, max_value=10_000)
series = st.lists(ints, max_size=40)
sds = st.integers(min_value=1, max_value=2_000)


def signature(found):
    return [(v.rule, v.index, v.indices, v.rejection) for v in found]


@given(data=st.data(), mean=ints, sd=sds)
def test_inside_1_sd_no_rejection_but_10_x(data, mean, sd):
    """Inside +-1 SD (exclusive) nothing but 10-x can fire (a long run on one side of the
    mean is a rejection however close to the mean it lies), and series shorter than ten
    points inside +-1 SD never reject."""
    inside = (
        st.integers(min_value=mean - sd + 1, max_value=mean + sd - 1) if sd > 1 else st.just(mean)
    )
    values = data.draw(st.lists(inside, max_size=30))
    found = evaluate(values, mean, sd)
    assert {v.rule for v in found} <= {"10-x"}
    if len(values) < 10:
        assert found == []


@given(values=series, mean=ints, sd=sds)
def test_10_x_exactly_when_ten_on_one_side(values, mean, sd):
    expected = [
        i
        for i in range(9, len(values))
        if all(x > mean for x in values[i - 9 : i + 1])
        or all(x < mean for x in values[i - 9 : i + 1])
    ]
    assert [v.index for v in evaluate(values, mean, sd) if v.rule == "10-x"] == expected


@given(values=series, mean=ints, sd=sds, shift=st.integers(min_value=-(10**6), max_value=10**6))
def test_shift_invariance(values, mean, sd, shift):
    moved = evaluate([x + shift for x in values], mean + shift, sd)
    assert signature(moved) == signature(evaluate(values, mean, sd))


@given(values=series, mean=ints, sd=sds)
def test_mirror_invariance(values, mean, sd):
    mirrored = evaluate([2 * mean - x for x in values], mean, sd)
    assert signature(mirrored) == signature(evaluate(values, mean, sd))


@given(values=series, mean=ints, sd=sds, scale=st.integers(min_value=1, max_value=1000))
def test_scale_invariance(values, mean, sd, scale):
    scaled = evaluate([x * scale for x in values], mean * scale, sd * scale)
    assert signature(scaled) == signature(evaluate(values, mean, sd))


@settings(max_examples=200)
@given(values=st.lists(ints, min_size=1, max_size=25), mean=ints, sd=sds)
def test_new_point_is_the_rejections_evaluate_finds_at_the_end(values, mean, sd):
    *history, new = values
    expected = [v for v in evaluate(values, mean, sd) if v.index == len(history) and v.rejection]
    assert new_point_violations(history, new, mean, sd) == expected


@given(values=series, mean=ints, sd=sds)
def test_structure_of_every_violation(values, mean, sd):
    found = evaluate(values, mean, sd)
    length = {"1-2s": 1, "1-3s": 1, "2-2s": 2, "R-4s": 2, "4-1s": 4, "10-x": 10}
    assert [v.index for v in found] == sorted(v.index for v in found)
    for v in found:
        assert v.rule in RULES
        assert v.rejection == (v.rule != "1-2s")
        assert v.indices == tuple(range(v.index - length[v.rule] + 1, v.index + 1))
        assert v.message.startswith(f"{v.rule}: ")
        assert v.indices[0] >= 0
    # 1-3s always comes with 1-2s at the same point
    assert {v.index for v in found if v.rule == "1-3s"} <= {
        v.index for v in found if v.rule == "1-2s"
    }


# --- why the rejection rules wait for a baseline of 20 (the site's westgard_baseline) --------
def test_an_in_control_batch_breaks_a_rule_falsely_less_often_with_a_larger_baseline():
    """The README's false-alarm figures, simulated with this module (a short run of the
    simulation in bench/westgard_false_alarms.py; seeded, so always the same numbers):
    about 5 % per analyte with 5 baseline batches, 2 % with 10, 1 % with 20."""
    import random

    def rate(n: int, trials: int = 4000) -> float:
        rng = random.Random(n)
        hits = 0
        for _ in range(trials):
            history = [rng.gauss(0.0, 1.0) for _ in range(n)]
            mean, sd = baseline(history)
            hits += bool(new_point_violations(history, rng.gauss(0.0, 1.0), mean, sd))
        return hits / trials

    five, ten, twenty = rate(5), rate(10), rate(20)
    assert 0.036 < five < 0.066  # 5.2 % in 200,000 trials
    assert 0.012 < ten < 0.030  # 2.1 %
    assert 0.005 < twenty < 0.018  # 1.1 %
    assert five > ten > twenty
