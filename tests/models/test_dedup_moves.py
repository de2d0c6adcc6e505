"""Reviewers' changes of cases reach the duplicate detector: a message moved to another case
(a merge, a split, a correction) takes its later repeats with it."""

from __future__ import annotations

from datetime import datetime, timedelta

from wangge.models.dedup import DedupMessage, DuplicateDetector

START = datetime(2026, 12, 1, 9)
RUBBISH = "小区垃圾桶满了没人清理，臭气熏天，请尽快处理"
NOISE = "工地晚上施工噪音太吵，影响居民休息，请管一管"


def message(id_: str, content: str, day: int = 0) -> DedupMessage:
    return DedupMessage(id_, "", content, START + timedelta(days=day))


def test_moved_messages_take_their_repeats_along() -> None:
    detector = DuplicateDetector(None, entities=False)
    first, second = detector.add_many([message("a", RUBBISH), message("b", NOISE, 1)])
    assert (first.case_id, second.case_id) == ("a", "b")
    detector.move("b", "a")  # case b merged into case a
    assert detector.query(message("x", NOISE, 2)).case_id == "a"
    detector.move("b", "s")  # split out into a new case s
    decision = detector.query(message("y", NOISE, 3))
    assert (decision.case_id, decision.duplicate_of) == ("s", "b")
    assert detector.query(message("z", RUBBISH, 3)).case_id == "a"
    detector.move("unknown", "a")  # a message the index does not hold: nothing to move


def test_a_merge_into_a_silent_case_keeps_it_open() -> None:
    """The window counts from the case's last report, the merged messages included."""
    detector = DuplicateDetector(None, entities=False, window_days=30)
    detector.add_many([message("a", RUBBISH), message("b", NOISE, 100)])
    detector.move("b", "a")
    assert detector.query(message("x", RUBBISH, 110)).case_id == "a"


def test_other_cases_offers_the_cases_a_message_resembles() -> None:
    detector = DuplicateDetector(None, entities=False)
    messages = [message("a", RUBBISH), message("b", NOISE, 1), message("c", RUBBISH + "谢谢", 2)]
    detector.index(messages, ["A", "B", "C"], detector.features(messages))  # kept apart
    offered = detector.other_cases("a")
    assert offered[0][:2] == ("c", "C") and offered[0][2] > detector.threshold
    assert all(case != "A" for _, case, _ in offered)
    assert [p for *_, p in offered] == sorted((p for *_, p in offered), reverse=True)
    detector.move("c", "A")  # merged: no longer another case
    assert all(case != "C" for _, case, _ in detector.other_cases("a"))
    assert detector.other_cases("unknown") == []
