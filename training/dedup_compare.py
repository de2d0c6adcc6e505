"""Comparing pair models by the cross-validation ``wangge dedup fit`` chooses thresholds by.

For each fold, each model is fitted on the other folds' labelled pairs and builds the cases of
all messages (:func:`~wangge.training.dedup_fit.cross_validate`'s protocol); the fold's pairs
are judged by whether both messages got one case. The models:

- ``baseline``: the logistic regression of the features before :mod:`wangge.nlp.places`
  (any tagged name in common counts as overlap, town names included);
- ``places``: the same features, but only specific places as overlap or conflict evidence:
  the logistic regression ``wangge dedup fit`` fits (:data:`FEATURES`);
- ``logistic``: a logistic regression that adds the titles' sketch cosine, the time gap and
  whether a broad place is shared (:data:`EXTENDED`);
- ``boosting``: scikit-learn's ``HistGradientBoostingClassifier`` on those features.

A build meets the same (message, candidate) pairs whatever the model, so they are recorded
once by the detector (:func:`record_pairs`), each model's probabilities computed for all of
them at once, and the cases built from them as the detector builds them
(:mod:`wangge.training.dedup_replay`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from wangge.training.dedup_fit import (
    FEATURES,
    FOLD_SEED,
    REGULARISATION,
    THRESHOLDS,
    Mode,
    prf,
)
from wangge.training.dedup_replay import labelled_rows, record_pairs

BASELINE = ["jaccard", "title_jaccard", "lexical_cosine", "cosine", "close_cosine",
            "same_reporter", "any_conflict", "any_overlap"]  # fmt: skip
PLACES = FEATURES["encoder"]  # the baseline's, with only specific places as evidence
EXTENDED = [*PLACES, "title_lexical_cosine", "log_days", "broad_places"]
MODELS = ("baseline", "places", "logistic", "boosting")


def make_model(name: str, seed: int = FOLD_SEED) -> tuple[list[str], Any]:
    """The features and the (unfitted) scikit-learn estimator of a model of :data:`MODELS`."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "baseline":
        return BASELINE, LogisticRegression(C=REGULARISATION, max_iter=1000)
    if name == "places":
        return PLACES, LogisticRegression(C=REGULARISATION, max_iter=1000)
    if name == "logistic":
        return EXTENDED, LogisticRegression(C=REGULARISATION, max_iter=1000)
    if name == "boosting":
        return EXTENDED, HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10,
            l2_regularization=1.0, random_state=seed,
        )  # fmt: skip
    raise ValueError(f"unknown model {name!r} (known: {MODELS})")


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

    recorded = record_pairs(mode.encoder, mode.messages, mode.features)
    progress(f"{len(recorded.x)} candidate pairs recorded")
    x = labelled_rows(mode.encoder, mode.messages, mode.features, pairs)
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
