"""issue 43: the release's fast model is the cheapest frontier point that meets the goal."""

import pytest

from ferx.deploy.fast_model import Point, choose_fast_model

FER = Point("fer", accuracy=0.650, macro_f1=0.630, faces_per_s=2000.0)


def test_the_fastest_point_that_meets_the_goal_is_chosen():
    points = [
        Point("wide", 0.680, 0.660, 3100.0),  # meets it, slower
        Point("narrow", 0.655, 0.635, 4200.0),  # meets it, fastest
        Point("tiny", 0.640, 0.620, 6000.0),  # fastest of all, behind fer
    ]
    choice = choose_fast_model(points, FER)
    assert choice.chosen == points[1]
    assert choice.shortfalls == {
        "tiny": "PublicTest accuracy 64.00 % < 65.00 %; PublicTest macro-F1 62.00 % < 63.00 %"
    }


def test_a_point_behind_fer_on_macro_f1_alone_is_out():
    choice = choose_fast_model([Point("a", 0.700, 0.629, 5000.0)], FER)
    assert choice.chosen is None
    assert choice.shortfalls == {"a": "PublicTest macro-F1 62.90 % < 63.00 %"}


def test_a_point_under_the_speedup_is_out_and_exactly_the_speedup_is_in():
    under = Point("under", 0.700, 0.700, 2990.0)
    exact = Point("exact", 0.651, 0.631, 3000.0)
    choice = choose_fast_model([under, exact], FER)
    assert choice.chosen == exact
    assert choice.shortfalls == {"under": "1.495x fer's faces/s, under 1.5x"}


def test_equal_speed_goes_to_the_higher_accuracy_whatever_the_order():
    a, b = Point("a", 0.660, 0.640, 4000.0), Point("b", 0.670, 0.640, 4000.0)
    assert choose_fast_model([a, b], FER).chosen == b
    assert choose_fast_model([b, a], FER).chosen == b


def test_equal_speed_and_accuracy_go_to_the_first_name_whatever_the_order():
    a, b = Point("a", 0.660, 0.640, 4000.0), Point("b", 0.660, 0.650, 4000.0)
    assert choose_fast_model([b, a], FER).chosen == a
    assert choose_fast_model([a, b], FER).chosen == a


def test_no_point_meeting_the_goal_says_why_for_each():
    choice = choose_fast_model([Point("slow", 0.7, 0.7, 2500.0)], FER, min_speedup=2.0)
    assert choice.chosen is None
    assert choice.shortfalls == {"slow": "1.250x fer's faces/s, under 2x"}


@pytest.mark.parametrize(
    "points, anchor",
    [
        ([Point("a", 0.7, 0.7, 1.0), Point("a", 0.6, 0.6, 2.0)], FER),
        ([Point("a", 0.7, 0.7, 1.0)], Point("fer", 0.6, 0.6, 0.0)),
        ([Point("a", float("nan"), 0.7, 5000.0)], FER),
        ([Point("a", 0.7, 0.7, float("inf"))], FER),
    ],
    ids=["a name twice", "anchor without speed", "a missing accuracy", "an infinite speed"],
)
def test_a_table_it_cannot_judge_is_refused(points, anchor):
    with pytest.raises(ValueError, match="choose_fast_model"):
        choose_fast_model(points, anchor)
