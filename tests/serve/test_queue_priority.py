"""Priority: the expected value of a person's look, uncertainty × the case's impact."""

from __future__ import annotations

import math

import pytest

from wangge.serve.review import impact, priority, uncertainty


def test_each_reason_has_its_uncertainty() -> None:
    assert uncertainty({"probability": 0.3}, ["category"]) == pytest.approx(0.7)
    assert uncertainty({"route_confidence": 0.4}, ["location"]) == pytest.approx(0.6)
    three = {
        "route_evidence": [
            "东风村",
            "同名社区/村: 东风村(河上镇)、东风村(义桥镇)、东风村(戴村镇)，无法确定",
        ]
    }
    assert uncertainty(three, ["ambiguous_place"]) == pytest.approx(2 / 3)
    assert uncertainty({}, ["conflicting_places"]) == uncertainty({}, ["out_of_area"]) == 0.5
    assert uncertainty({}, ["empty"]) == 1.0
    assert uncertainty({}, []) == 0.0


def test_a_duplicate_is_most_doubtful_at_the_threshold() -> None:
    at, above, far = (uncertainty({}, ["duplicate"], margin) for margin in (0.0, 0.05, 0.2))
    assert (at, above, far) == pytest.approx((0.5, 0.25, 0.05))


def test_several_doubts_combine_as_the_chance_one_is_wrong() -> None:
    both = uncertainty({"probability": 0.5}, ["category", "conflicting_places"])
    assert both == pytest.approx(1 - 0.5 * 0.5)


def test_many_people_weigh_more_than_one_person_many_times() -> None:
    assert impact(1) == 1.0
    assert impact(10, 10) == pytest.approx(1 + math.log(10))
    assert impact(10, 10) > impact(10, 1) > impact(1)
    assert impact(3, None) == impact(3, 3)  # unknown reporters: each report one


def test_priority_is_uncertainty_times_impact() -> None:
    doubtful, sure = {"probability": 0.2}, {"probability": 0.6}
    assert priority(doubtful, ["category"]) == 0.8
    assert priority(sure, ["category"], reports=5, reporters=5) > priority(doubtful, ["category"])
    assert priority(sure, ["category"], reports=5, reporters=1) < priority(doubtful, ["category"])
