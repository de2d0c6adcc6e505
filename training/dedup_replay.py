"""Case builds replayed: what a build compares, recorded once, rebuilt under any pair model.

A case build of messages (:meth:`~wangge.models.dedup.DuplicateDetector.add_many`) compares
the same (message, candidate) pairs whatever the pair model: the candidates come from the
indexes, which hold every earlier message whatever its case. :func:`record_pairs` runs the
detector once, recording each pair it compares with its features and whether a constraint
other than the time window blocks it; :meth:`Recorded.cases` then builds the cases as the
detector does (each message joins the case of its most probable unblocked candidate at or
above the threshold, within the window) from any model's probabilities of those pairs, in
well under a second where the detector takes ~12 s. :func:`replay_matches` checks that the
replay still gives the detector's cases (it must be kept in step with the detector's
decisions).

This is the former case rule (:data:`~wangge.models.cases.BEST_MEMBER`: the case of the single
best candidate). The case-level rule compares pairs that depend on the cases already built
(a case's first message), so it cannot be replayed: ``wangge dedup fit`` rebuilds the cases
with the detector unless the shipped rule is the former one, and the replay serves comparing
pair models quickly (``benchmarks/compare_dedup_models.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from wangge.models.cases import BEST_MEMBER
from wangge.models.dedup import (
    CLOSE_COSINE,
    DEFAULT_WINDOW_DAYS,
    Decision,
    DedupMessage,
    DuplicateDetector,
    Encoder,
    MessageFeatures,
    PairFeatures,
    PairWeights,
    _name_trigrams,
)

# The features a PairWeights weighs, by their names in PairWeights (and feature_row).
WEIGHED = ["jaccard", "title_jaccard", "cosine", "close_cosine", "lexical_cosine",
           "title_lexical_cosine", "same_reporter", "log_days", "entities_conflict",
           "entities_overlap", "broad_places"]  # fmt: skip


def feature_row(f: PairFeatures) -> dict[str, float]:
    """A pair's features as :class:`~wangge.models.dedup.PairWeights` weighs them."""
    cosine = f.cosine or 0.0
    return {"jaccard": f.jaccard, "title_jaccard": f.title_jaccard, "cosine": cosine,
            "close_cosine": max(0.0, cosine - CLOSE_COSINE) / (1 - CLOSE_COSINE),
            "lexical_cosine": f.lexical_cosine, "title_lexical_cosine": f.title_lexical_cosine,
            "same_reporter": float(f.same_reporter), "log_days": f.log_days,
            "entities_conflict": float(f.entities == -1),
            "entities_overlap": float(f.entities == 1),
            "broad_places": float(f.broad_places)}  # fmt: skip


def any_relation(a: frozenset[str], b: frozenset[str]) -> int:
    """The entity relation before broad places were told apart: any tagged names."""
    if not a or not b:
        return 0
    if any(x == y or x in y or y in x for x in a for y in b):
        return 1
    return 1 if _name_trigrams(a) & _name_trigrams(b) else -1


def full_row(detector: DuplicateDetector, pair: PairFeatures, mine: MessageFeatures,
             theirs: MessageFeatures) -> dict[str, float]:  # fmt: skip
    """:func:`feature_row` with the relation of all tagged names (``any_conflict``,
    ``any_overlap``: before broad places were told apart), the baseline's."""
    relation = any_relation(detector.tagged(mine), detector.tagged(theirs))
    return feature_row(pair) | {"any_conflict": float(relation == -1),
                                "any_overlap": float(relation == 1)}  # fmt: skip


class _Everything:
    """A model under which every candidate is tagged and passes the threshold."""

    def probability(self, features: PairFeatures) -> float:
        return 1.0

    def most_probable(self, features: PairFeatures) -> float:
        return 1.0


@dataclass(frozen=True)
class Candidate:
    """A (message, candidate) pair a case build compares: the candidate's row, the pair's
    row in the recorded features, whether its texts are one (probability 1 whatever the model)
    and whether a constraint other than the time window blocks it."""

    row: int
    features: int
    identical: bool
    blocked: bool


class _Recorder(DuplicateDetector):
    """A detector that records every (message, candidate) pair it compares, and joins none."""

    def __init__(self, encoder: Any) -> None:
        super().__init__(
            encoder,
            weights=_Everything(),  # type: ignore[arg-type]
            threshold=0.5,
            case_rule=BEST_MEMBER,
        )
        self.replayed_window = timedelta(days=DEFAULT_WINDOW_DAYS)
        self.window = timedelta.max  # the window is checked on replay
        self.candidates: list[list[Candidate]] = []
        self.rows: list[dict[str, float]] = []
        self._mine: MessageFeatures | None = None

    def _decide(self, message: DedupMessage, features: MessageFeatures) -> Decision:
        self._mine = features
        self.candidates.append([])
        return super()._decide(message, features)

    def _blocked(self, message: DedupMessage, other: Any, pair: PairFeatures) -> str | None:
        assert self._mine is not None
        blocked = super()._blocked(message, other, pair) is not None
        self.candidates[-1].append(
            Candidate(other.row, len(self.rows), pair.jaccard == 1.0, blocked)
        )
        self.rows.append(full_row(self, pair, self._mine, other.features))
        return "recorded"


@dataclass(frozen=True)
class Recorded:
    """What a case build of a mode's messages compares (:func:`record_pairs`)."""

    messages: list[DedupMessage]
    candidates: list[list[Candidate]]
    x: pd.DataFrame  # the features of the pairs, one row per pair
    window: timedelta

    def cases(self, scores: np.ndarray, threshold: float) -> list[str]:
        """The case of each message, built as :meth:`DuplicateDetector.add_many` builds them
        when the pairs' same-case probabilities are ``scores``."""
        case_of: list[str] = []
        last: dict[str, datetime] = {}
        for message, candidates in zip(self.messages, self.candidates, strict=True):
            best: tuple[float, int] | None = None
            for c in candidates:
                probability = 1.0 if c.identical else float(scores[c.features])
                if probability < threshold or c.blocked:
                    continue
                if message.time - last[case_of[c.row]] > self.window:
                    continue
                if best is None or probability > best[0]:
                    best = (probability, c.row)
            case = message.id if best is None else case_of[best[1]]
            case_of.append(case)
            last[case] = max(last.get(case, message.time), message.time)
        return case_of


def record_pairs(
    encoder: Encoder | None, messages: list[DedupMessage], features: list[MessageFeatures]
) -> Recorded:
    """Every pair a case build of ``messages`` compares, with its features."""
    recorder = _Recorder(encoder)
    recorder.add_many(messages, features)
    frame = pd.DataFrame(recorder.rows).astype(float)
    return Recorded(messages, recorder.candidates, frame, recorder.replayed_window)


def labelled_rows(
    encoder: Encoder | None,
    messages: list[DedupMessage],
    features: list[MessageFeatures],
    pairs: pd.DataFrame,
) -> pd.DataFrame:
    """The labelled pairs' features (:func:`full_row`), as the detector computes them."""
    detector = DuplicateDetector(encoder)
    by_id = {m.id: (m, f) for m, f in zip(messages, features, strict=True)}
    rows = []
    for a, b in pairs[["id_a", "id_b"]].values:
        (ma, fa), (mb, fb) = by_id[str(a)], by_id[str(b)]
        rows.append(full_row(detector, detector.pair_features(ma, fa, mb, fb), fa, fb))
    return pd.DataFrame(rows).astype(float)


def logistic_scores(recorded: Recorded, weights: PairWeights) -> np.ndarray:
    """The same-case probabilities of the recorded pairs under logistic ``weights``."""
    logits = weights.bias + sum(
        getattr(weights, column) * recorded.x[column].to_numpy() for column in WEIGHED
    )
    return 1 / (1 + np.exp(-logits))


def replay_matches(
    encoder: Encoder | None,
    features: list[MessageFeatures],
    recorded: Recorded,
    weights: PairWeights,
    threshold: float,
) -> bool:
    """Whether :meth:`Recorded.cases` gives the cases of the detector itself under
    ``weights``: the check that replaying is still the detector's protocol."""
    detector = DuplicateDetector(
        encoder, weights=weights, threshold=threshold, case_rule=BEST_MEMBER
    )
    built = [d.case_id for d in detector.add_many(recorded.messages, features)]
    return built == recorded.cases(logistic_scores(recorded, weights), threshold)
