"""Case-level decisions (wangge.models.cases): a message joins a case only when it fits the
case, cases it shows to be one are merged into the oldest, and the index follows moves."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from wangge.models.cases import BEST_MEMBER, MAX_COMPARED, CaseBook, CaseRule, Passing
from wangge.models.dedup import DedupMessage, DuplicateDetector

T0 = datetime(2024, 5, 1, 9)


def book(rule: CaseRule, cases: dict[str, list[int]]) -> CaseBook:
    """Cases of index rows, each row reported one hour after the one before."""
    made = CaseBook(rule)
    for case_id, rows in cases.items():
        for row in rows:
            made.add(case_id, row, T0 + timedelta(hours=row), None)
    return made


def never(_row: int) -> bool:
    return False


def test_k_scales_with_the_case_but_stays_bounded() -> None:
    rule = CaseRule(support=0.5, first=True)
    assert [rule.needed(n) for n in (1, 2, 3, 4, 5, 40)] == [1, 1, 2, 2, 3, 3]
    assert BEST_MEMBER.needed(40) == 1 and BEST_MEMBER.former
    assert CaseRule(support=1.0).needed(40) == MAX_COMPARED


def test_one_loose_link_no_longer_chains_a_message_into_a_case() -> None:
    """A message passing with one member of a case of four (not its first) opens its own
    case; the former rule would have put it in."""
    cases = {"0": [0, 1, 2, 3]}
    loose = [Passing(3, "0", 0.7)]
    assert book(BEST_MEMBER, cases).choose(loose, never, None).case_id == "0"
    choice = book(CaseRule(support=0.5, first=True), cases).choose(loose, never, None)
    assert choice.case_id is None and "0" in choice.unfit


def test_the_first_message_or_enough_members_fit() -> None:
    rule = CaseRule(support=0.5, first=True)
    cases = {"0": [0, 1, 2, 3]}
    asked: list[int] = []

    def first_passes(row: int) -> bool:
        asked.append(row)
        return True

    # the first message is no candidate: its pair is scored, and passes
    assert book(rule, cases).choose([Passing(3, "0", 0.7)], first_passes, None).case_id == "0"
    assert asked == [0]
    two = [Passing(2, "0", 0.8), Passing(3, "0", 0.7)]  # 2 of 4 compared: enough
    assert book(rule, cases).choose(two, never, None).case_id == "0"
    # a near-identical repeat of one member fits whatever the others
    same = [Passing(3, "0", 0.99, identical=True)]
    assert book(rule, cases).choose(same, never, None).case_id == "0"


def test_a_message_fitting_two_linked_cases_merges_the_younger_into_the_older() -> None:
    rule = CaseRule(support=0.5, first=True)
    cases = {"0": [0, 1], "5": [5, 6]}
    passing = [Passing(6, "5", 0.9), Passing(1, "0", 0.8)]
    merged = book(rule, cases).choose(passing, never, None, linked=lambda a, b: True)
    assert (merged.case_id, merged.merged, merged.closest) == ("0", ("5",), passing[0])
    apart = book(rule, cases).choose(passing, never, None, linked=lambda a, b: False)
    assert (apart.case_id, apart.merged) == ("5", ())  # the best candidate's case, no merge
    no_merges = CaseRule(support=0.5, first=True, merge=False)
    kept = book(no_merges, cases).choose(passing, never, None, linked=lambda a, b: True)
    assert (kept.case_id, kept.merged) == ("5", ())


def test_a_case_forgets_a_member_that_leaves_it() -> None:
    """After a split the case's first and last report are those of the members left."""
    cases = book(CaseRule(), {"0": [0, 1, 2]})
    cases.move(2, T0 + timedelta(hours=2), "0", "2", None)
    assert cases.last_at("0") == T0 + timedelta(hours=1)
    cases.move(0, T0, "0", "2", None)
    assert cases.cases["0"].first == 1 and cases.members("2") == [0, 2]
    cases.move(1, T0 + timedelta(hours=1), "0", "2", None)
    assert "0" not in cases


RUBBISH = "金城花园小区东门口的垃圾堆了好几天没人清理，臭气熏天，请尽快处理"


def message(id_: str, text: str, hours: int) -> DedupMessage:
    return DedupMessage(id_, "", text, T0 + timedelta(hours=hours))


def test_the_detector_merges_two_cases_a_message_shows_to_be_one() -> None:
    """Two cases of near-identical messages (as a store may hold them) and a third copy: the
    younger case is merged into the older, and every member ends in it."""
    detector = DuplicateDetector(entities=False)
    indexed = [message("a", RUBBISH, 0), message("b", RUBBISH + "谢谢", 1)]
    detector.index(indexed, ["a", "b"], detector.features(indexed))
    [decision] = detector.add_many([message("c", RUBBISH + "拜托", 2)])
    assert (decision.case_id, decision.merged) == ("a", ("b",))
    assert decision.evidence["merged"] == ["b"]
    assert {detector.case_of(m) for m in ("a", "b", "c")} == {"a"}
    assert detector.cases.members("a") == [0, 1, 2] and "b" not in detector.cases


def test_a_move_out_of_a_case_updates_its_last_report() -> None:
    """A reviewer's split: the case left behind is judged by its own last report at once
    (the time window), not by that of the messages that left it."""
    detector = DuplicateDetector(entities=False, window_days=30)
    early, late = message("a", RUBBISH, 0), message("b", RUBBISH + "谢谢", 24 * 40)
    detector.index([early, late], ["a", "a"], detector.features([early, late]))
    assert detector.cases.last_at("a") == late.time
    detector.move("b", "b")
    assert detector.cases.last_at("a") == early.time
    [decision] = detector.add_many([message("c", RUBBISH + "拜托", 24 * 60)])
    assert decision.case_id == "b"  # "a" has been silent for 60 days, "b" for 20


@pytest.mark.parametrize("rule", [BEST_MEMBER, CaseRule(support=0.5, first=True)])
def test_every_rule_keeps_exact_repeats_together(rule: CaseRule) -> None:
    detector = DuplicateDetector(entities=False, case_rule=rule)
    decisions = detector.add_many([message(str(i), RUBBISH, i) for i in range(6)])
    assert {d.case_id for d in decisions} == {"0"}
