"""Which doubt about a place becomes which review reason (wangge.pipeline.triage)."""

from __future__ import annotations

import pytest

from wangge.models.router import MessageRouter
from wangge.pipeline import Message, ReviewReason, Triage
from wangge.pipeline.reasons import LOCATION_REASONS


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage(router=MessageRouter.load(ner=False))


def reasons_of(triage: Triage, **fields: str) -> tuple[ReviewReason, ...]:
    [result] = triage([Message.of(**fields)])
    return result.reasons


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("城厢街道陈公桥社区门口路灯坏了", ()),  # a community with its street: no doubt
        ("东风村路口的路灯坏了好几天", (ReviewReason.AMBIGUOUS_PLACE,)),  # two streets have one
        ("城厢街道荣庄村的路灯坏了", (ReviewReason.CONFLICTING_PLACES,)),  # 荣庄村 is in 北干
        ("萧山区的养老保险怎么转到江苏", (ReviewReason.OUT_OF_AREA,)),
        ("城厢街道的路灯坏了", (ReviewReason.UNLOCATED,)),  # a street only
        ("楼下的路灯坏了好几天", (ReviewReason.UNLOCATED,)),  # no place at all
        ("萧山区的路灯坏了", (ReviewReason.UNLOCATED,)),  # the district only
    ],
)
def test_a_doubtful_place_gets_the_reason_a_person_can_act_on(
    triage: Triage, content: str, expected: tuple[ReviewReason, ...]
) -> None:
    assert reasons_of(triage, content=content) == expected


def test_the_registered_grid_locates_a_message_that_names_no_place(triage: Triage) -> None:
    [result] = triage([Message.of(content="楼下的路灯坏了好几天", grid_id="330109001001-G01")])
    assert result.reasons == ()
    assert result.route is not None and result.route.location.source == "registered_grid"
    assert any("登记网格" in note for note in result.route.location.evidence)


def test_only_unlocated_is_no_task() -> None:
    assert [r for r in ReviewReason if not r.is_task] == [ReviewReason.UNLOCATED]
    assert (
        ReviewReason.UNLOCATED in LOCATION_REASONS and ReviewReason.CATEGORY not in LOCATION_REASONS
    )
    assert all(reason.label and reason.label.isascii() is False for reason in ReviewReason)


def test_an_unknown_registered_grid_is_noted_and_the_text_decides(triage: Triage) -> None:
    [result] = triage([Message.of(content="楼下的路灯坏了好几天", grid_id="G-404")])
    assert result.reasons == (ReviewReason.UNLOCATED,)
    assert result.route is not None
    assert result.route.location.evidence == ["登记网格 G-404 不在本区网格表中"]
