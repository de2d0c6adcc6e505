"""Case-level decisions: a message joins a case only when it fits the case, not one member.

:class:`~wangge.models.dedup.DuplicateDetector` scores a message against its candidates (the
same-case probability of each pair, and the constraints that block a pair). Joining the case
of the single best candidate lets one loose link chain unrelated messages into one case (a
36-message bucket of complaints around one town). Here a case is judged as a whole:

- **what is known of a case** (:class:`CaseState`): its first message, its members, its last
  report, and (when the rule uses it) the sum of its members' vectors for a centroid;
- **the rule** (:class:`CaseRule`): a case with a passing candidate fits the message when the
  pair with the case's *first* message passes, or when at least ``k`` of the members compared
  pass (or one member whose text it repeats, near-identical),
  ``k`` = ⌈``support`` × the members compared⌉, the members compared being the first and
  the closest ``MAX_COMPARED - 1`` members among the candidates (at most :data:`MAX_COMPARED`
  pairs a case: a lookup stays bounded at a million messages), or when the cosine of the
  message with the case's centroid reaches ``centroid``. ``support`` 0 is the former rule (one
  passing member is enough); :data:`CASE_RULE` is the rule chosen by cross-validation
  (``benchmarks/bench_cases.py``, figures in ``docs/benchmarks.md``);
- **automatic merges**: when a message fits two or more cases, they are one case: the message
  joins the oldest (earliest first report), and the younger ones are merged into it
  (:attr:`~wangge.models.dedup.Decision.merged`), which the service records as a merge by
  :data:`AUTO_ACTOR`, reversible as any reviewer's merge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

MAX_COMPARED = 5  # of a case: its first message and at most 4 closest members among candidates
AUTO_ACTOR = "system"  # the audit actor of the merges the detector decides (not a reviewer)


@dataclass(frozen=True)
class CaseRule:
    """When a case with a passing candidate fits a message (see the module's description).

    ``first``: the pair with the case's first message passing is enough; ``support``: the
    share of the compared members that must pass (0: any one, the former rule); ``centroid``:
    the cosine with the case's centroid that is enough (``None``: not used); ``merge``: of
    the other cases the message fits, merge those whose first message's pair with the joined
    case's first passes too.
    """

    support: float = 0.0
    first: bool = False
    centroid: float | None = None
    merge: bool = True

    def needed(self, size: int) -> int:
        """How many of the compared members of a case of ``size`` messages must pass."""
        compared = min(size, MAX_COMPARED)
        return max(1, math.ceil(self.support * compared - 1e-9))

    @property
    def former(self) -> bool:
        """The former rule: the case of the best passing candidate, whatever the others."""
        return self.support == 0 and not self.first and self.centroid is None

    def describe(self) -> str:
        parts = [f"support {self.support:g}"]
        if self.first:
            parts.append("first")
        if self.centroid is not None:
            parts.append(f"centroid {self.centroid:g}")
        parts.append("merges" if self.merge else "no merge")
        return ", ".join(parts)


BEST_MEMBER = CaseRule()  # the former rule, kept for comparison
# Chosen by 10-fold cross-validation of the cases built over the 4,326 hot-issue messages on
# the 689 labelled pairs (benchmarks/bench_cases.py; docs/benchmarks.md "Deduplication"): of
# the case-level rules tried, the best F1 (encoder: P 0.946, R 0.924, F1 0.935 against the
# former rule's 0.941 / 0.951 / 0.946, whose largest cases were 70, 58 and 41 messages, now
# 58, 53 and 39). k = 1 of a case of 1-2 messages, 2 from 3.
CASE_RULE = CaseRule(support=0.34, first=True)


@dataclass(slots=True)
class CaseState:
    """What the detector knows of a case: its members (index rows), the first of them, the
    time of its first and last report, and the sum of its members' vectors (with a centroid
    rule only). The members' report times are the book's (:attr:`CaseBook.times`)."""

    members: list[int] = field(default_factory=list)
    first: int = -1
    first_at: datetime = datetime.max
    last_at: datetime = datetime.min
    vector_sum: np.ndarray | None = None

    def add(self, row: int, time: datetime, vector: np.ndarray | None) -> None:
        self.members.append(row)
        if self.first < 0 or (time, row) < (self.first_at, self.first):
            self.first, self.first_at = row, time
        self.last_at = max(self.last_at, time)
        if vector is not None:
            v = np.asarray(vector, dtype=np.float32)
            self.vector_sum = v.copy() if self.vector_sum is None else self.vector_sum + v

    def remove(self, row: int, times: list[datetime], vector: np.ndarray | None) -> None:
        """Take a member out; the first and last report are those of the members left."""
        if row in self.members:
            self.members.remove(row)
        if vector is not None and self.vector_sum is not None:
            self.vector_sum = self.vector_sum - np.asarray(vector, dtype=np.float32)
        if self.members:
            self.first = min(self.members, key=lambda member: (times[member], member))
            self.first_at = times[self.first]
            self.last_at = max(times[member] for member in self.members)

    def centroid_cosine(self, vector: np.ndarray | None) -> float | None:
        if vector is None or self.vector_sum is None:
            return None
        norm = float(np.linalg.norm(self.vector_sum))
        return float(np.dot(vector, self.vector_sum) / norm) if norm > 0 else None


@dataclass(frozen=True)
class Passing:
    """A candidate that passed: its index row, its case and the same-case probability."""

    row: int
    case_id: str
    probability: float
    identical: bool = False  # near-identical texts: a repeat of that member whatever the rest


@dataclass(frozen=True)
class CaseChoice:
    """The case-level outcome: the case joined (``None``: a case of its own), the member it
    repeats most closely with the probability, the younger cases merged into it, and for the
    cases with a passing candidate that did not fit, why."""

    case_id: str | None
    closest: Passing | None
    merged: tuple[str, ...] = ()
    unfit: dict[str, str] = field(default_factory=dict)


# Whether the pair of the message with an indexed row passes (the threshold, no constraint).
PairPasses = Callable[[int], bool]
# Whether the pair of two indexed rows (the first messages of two cases) passes.
RowsPass = Callable[[int, int], bool]


class CaseBook:
    """The cases of a detector, kept as messages are indexed, moved and merged."""

    def __init__(self, rule: CaseRule = CASE_RULE) -> None:
        self.rule = rule
        self.cases: dict[str, CaseState] = {}
        self.times: list[datetime] = []  # the report time of each row added, by row

    def __contains__(self, case_id: str) -> bool:
        return case_id in self.cases

    def last_at(self, case_id: str) -> datetime:
        return self.cases[case_id].last_at

    def add(self, case_id: str, row: int, time: datetime, vector: np.ndarray | None) -> None:
        if row >= len(self.times):
            self.times.extend([time] * (row + 1 - len(self.times)))
        self.times[row] = time
        state = self.cases.get(case_id)
        if state is None:
            state = self.cases[case_id] = CaseState()
        state.add(row, time, vector if self.rule.centroid is not None else None)

    def move(
        self, row: int, time: datetime, source: str, target: str, vector: np.ndarray | None
    ) -> None:
        """A member moves from case ``source`` to ``target`` (a case left empty is gone)."""
        kept = vector if self.rule.centroid is not None else None
        state = self.cases.get(source)
        if state is not None:
            state.remove(row, self.times, kept)
            if not state.members:
                del self.cases[source]
        self.add(target, row, time, kept)

    def members(self, case_id: str) -> list[int]:
        state = self.cases.get(case_id)
        return sorted(state.members) if state is not None else []

    def choose(
        self,
        passing: Iterable[Passing],
        passes: PairPasses,
        vector: np.ndarray | None,
        linked: RowsPass | None = None,
    ) -> CaseChoice:
        """The case a message joins given its passing candidates (``passes`` judges its pair
        with a case's first message when that is no candidate; ``vector``: what a centroid
        is compared with; ``linked`` judges the pair of two cases' first messages), and the
        cases it merges: the message joins the fitting case of its best candidate, merged
        with the other fitting cases whose first messages pass with its first, all into the
        oldest of them."""
        by_case: dict[str, list[Passing]] = {}
        for candidate in sorted(passing, key=lambda p: -p.probability):
            by_case.setdefault(candidate.case_id, []).append(candidate)
        if not by_case:
            return CaseChoice(None, None)
        if self.rule.former:  # the best candidate's case, as before: no merge
            best = next(iter(by_case.values()))[0]
            return CaseChoice(best.case_id, best)
        fitting, unfit = [], {}
        for case_id, members in by_case.items():
            reason = self._unfit(self.cases[case_id], members, passes, vector)
            if reason is None:
                fitting.append(case_id)
            else:
                unfit[case_id] = reason
        if not fitting:
            return CaseChoice(None, None, unfit=unfit)
        joined = fitting[0]  # by_case, hence fitting, runs from the best candidate down
        first = self.cases[joined].first
        one = [joined] + [
            case_id
            for case_id in fitting[1:]
            if self.rule.merge and linked is not None and linked(first, self.cases[case_id].first)
        ]
        one.sort(key=lambda c: (self.cases[c].first_at, self.cases[c].first))
        return CaseChoice(one[0], by_case[joined][0], tuple(one[1:]), unfit)

    def _unfit(
        self,
        case: CaseState,
        members: list[Passing],
        passes: PairPasses,
        vector: np.ndarray | None,
    ) -> str | None:
        """Why a case with passing candidates (``members``, best first) does not fit, or None."""
        rule = self.rule
        if len(case.members) == 1 or any(m.identical for m in members):
            return None  # its only message passed, or a member's text is repeated
        closest = [m.row for m in members if m.row != case.first][: MAX_COMPARED - 1]
        first_passes = any(m.row == case.first for m in members)
        needed = rule.needed(len(case.members))
        if len(closest) + first_passes >= needed:
            return None
        if not first_passes and (rule.first or len(closest) + 1 >= needed):
            first_passes = passes(case.first)
        if first_passes and (rule.first or len(closest) + 1 >= needed):
            return None
        if rule.centroid is not None:
            cosine = case.centroid_cosine(vector)
            if cosine is not None and cosine >= rule.centroid:
                return None
        passed = len(closest) + first_passes
        return f"fits {passed} of the {needed} members needed of a case of {len(case.members)}"
