"""Comparing pair models by the cross-validation ``wangge dedup fit`` chooses thresholds by.

For each fold, each model is fitted on the other folds' labelled pairs and builds the cases of
all messages (:func:`~wangge.training.dedup_fit.cross_validate`'s protocol); the fold's pairs
are judged by whether both messages got one case. The models:

- ``baseline``: the logistic regression of the features before :mod:`wangge.nlp.places`
  (any tagged name in common counts as overlap, town names included);
- ``logistic``: the logistic regression ``wangge dedup fit`` fits (:data:`FEATURES`);
- ``boosting``: scikit-learn's ``HistGradientBoostingClassifier`` on the same features.

A build meets the same (message, candidate) pairs whatever the model, so they are recorded
once by the detector (:func:`record_pairs`), each model's probabilities computed for all of
them at once, and the cases built from them as the detector builds them
(:meth:`Recorded.cases`, well under a second rather than ~12 s a build;
:func:`replay_matches` checks that it gives the detector's cases).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from wangge.models.dedup import (
    Decision,
    DedupMessage,
    DuplicateDetector,
    MessageFeatures,
    PairFeatures,
    _name_trigrams,
)
from wangge.training.dedup_fit import (
    FEATURES,
    FOLD_SEED,
    REGULARISATION,
    THRESHOLDS,
    Mode,
    feature_row,
    prf,
)

BASELINE = ["jaccard", "title_jaccard", "lexical_cosine", "cosine", "close_cosine",
            "same_reporter", "any_conflict", "any_overlap"]  # fmt: skip
MODELS = ("baseline", "logistic", "boosting")


def any_relation(a: frozenset[str], b: frozenset[str]) -> int:
    """The entity relation before broad places were told apart: any tagged names."""
    if not a or not b:
        return 0
    if any(x == y or x in y or y in x for x in a for y in b):
        return 1
    return 1 if _name_trigrams(a) & _name_trigrams(b) else -1


def full_row(detector: DuplicateDetector, pair: PairFeatures, mine: MessageFeatures,
             theirs: MessageFeatures) -> dict[str, float]:  # fmt: skip
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
        super().__init__(encoder, weights=_Everything(), threshold=0.5)  # type: ignore[arg-type]
        self.candidates: list[list[Candidate]] = []
        self.rows: list[dict[str, float]] = []
        self._mine: MessageFeatures | None = None

    def _decide(self, message: DedupMessage, features: MessageFeatures) -> Decision:
        self._mine = features
        self.candidates.append([])
        return super()._decide(message, features)

    def _blocked(self, message: DedupMessage, other: Any, pair: PairFeatures) -> str | None:
        assert self._mine is not None
        self._case_last[other.case_id] = message.time  # the window is checked on replay
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


def record_pairs(mode: Mode) -> Recorded:
    """Every pair a case build of ``mode``'s messages compares, with its features."""
    recorder = _Recorder(mode.encoder)
    recorder.add_many(mode.messages, mode.features)
    frame = pd.DataFrame(recorder.rows).astype(float)
    return Recorded(mode.messages, recorder.candidates, frame, recorder.window)


def make_model(name: str, seed: int = FOLD_SEED) -> tuple[list[str], Any]:
    """The features and the (unfitted) scikit-learn estimator of a model of :data:`MODELS`."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "baseline":
        return BASELINE, LogisticRegression(C=REGULARISATION, max_iter=1000)
    if name == "logistic":
        return FEATURES["encoder"], LogisticRegression(C=REGULARISATION, max_iter=1000)
    if name == "boosting":
        return FEATURES["encoder"], HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10,
            l2_regularization=1.0, random_state=seed,
        )  # fmt: skip
    raise ValueError(f"unknown model {name!r} (known: {MODELS})")


def labelled_rows(mode: Mode, pairs: pd.DataFrame) -> pd.DataFrame:
    """The labelled pairs' features with the baseline's entity relation."""
    detector = DuplicateDetector(mode.encoder)
    by_id = {m.id: (m, f) for m, f in zip(mode.messages, mode.features, strict=True)}
    rows = []
    for a, b in pairs[["id_a", "id_b"]].values:
        (ma, fa), (mb, fb) = by_id[str(a)], by_id[str(b)]
        rows.append(full_row(detector, detector.pair_features(ma, fa, mb, fb), fa, fb))
    return pd.DataFrame(rows).astype(float)


def compare(
    mode: Mode,
    pairs: pd.DataFrame,
    *,
    models: tuple[str, ...] = MODELS,
    folds: int = 10,
    progress: Callable[[str], None] = print,
) -> dict[str, dict[float, np.ndarray]]:
    """For each model and threshold, whether each pair was put in one case in ``folds``-fold
    cross-validation (stratified, shuffled with :data:`FOLD_SEED`)."""
    from sklearn.model_selection import StratifiedKFold

    recorded = record_pairs(mode)
    progress(f"{len(recorded.x)} candidate pairs recorded")
    x = labelled_rows(mode, pairs)
    y = pairs["same_case"].to_numpy() == 1
    ids = pairs[["id_a", "id_b"]].astype(str).to_numpy()
    position = {m.id: i for i, m in enumerate(recorded.messages)}
    a, b = (np.array([position[i] for i in ids[:, k]]) for k in (0, 1))
    predicted = {m: {t: np.zeros(len(y), dtype=bool) for t in THRESHOLDS} for m in models}
    splits = StratifiedKFold(folds, shuffle=True, random_state=FOLD_SEED).split(x, y)
    for fold, (train, test) in enumerate(splits, 1):
        for name in models:
            columns, estimator = make_model(name)
            estimator.fit(x[columns].to_numpy()[train], y[train])
            scores = estimator.predict_proba(recorded.x[columns].to_numpy())[:, 1]
            for threshold in THRESHOLDS:
                case_of = np.array(recorded.cases(scores, threshold))
                predicted[name][threshold][test] = (case_of[a] == case_of[b])[test]
        progress(f"fold {fold} of {folds}")
    return predicted


def bootstrap_difference(
    a: np.ndarray, b: np.ndarray, gold: np.ndarray, *, samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """F1(a) − F1(b) on the pairs, with its 95 % interval over bootstrap resamples of the
    pairs (paired: both models judged on the same resample)."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(samples):
        pick = rng.integers(0, len(gold), len(gold))
        differences.append(prf(a[pick], gold[pick])[2] - prf(b[pick], gold[pick])[2])
    low, high = np.percentile(differences, [2.5, 97.5])
    return prf(a, gold)[2] - prf(b, gold)[2], float(low), float(high)


def replay_matches(mode: Mode, recorded: Recorded, weights: Any, threshold: float) -> bool:
    """Whether :meth:`Recorded.cases` gives the cases of the detector itself under
    ``weights`` (a :class:`~wangge.models.dedup.PairWeights`)."""
    logits = weights.bias + sum(
        getattr(weights, column) * recorded.x[column].to_numpy() for column in FEATURES["encoder"]
    )
    scores = 1 / (1 + np.exp(-logits))
    detector = DuplicateDetector(mode.encoder, weights=weights, threshold=threshold)
    built = [d.case_id for d in detector.add_many(mode.messages, mode.features)]
    return built == recorded.cases(scores, threshold)
