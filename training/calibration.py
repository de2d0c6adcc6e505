"""Calibrated auto-accept: which category predictions may skip review.

A prediction is auto-accepted when its confidence reaches the review threshold of its predicted
category. The thresholds are chosen so that the auto-accepted messages are at least
``target`` right:

- **Per category, where the data allows.** A category predicted for at least
  ``min_messages`` calibration messages gets a threshold of its own, chosen on those messages
  alone (its auto-accepted messages must reach the target by themselves). Every other category
  falls back to the **global** threshold, chosen on all calibration messages together.
- **With a margin.** Choosing the threshold where the accuracy just reaches the target on the
  calibration messages overfits them: on new messages it falls short. The accuracy above a
  threshold must instead reach the target at its Wilson lower bound with ``z`` standard errors
  (``z = 0``: the plain accuracy; ``z = 1``: a one-sided 84 % bound), which asks more of small
  categories than of large ones.

:func:`cross_fit` measures what the rule gives on messages it has not seen: the calibration
messages are split into K folds; each fold is decided by the thresholds chosen on the other K-1
folds, so no message calibrates the thresholds that decide it. The pooled out-of-fold accuracy
of the auto-accepted messages and the review share are the honest estimate; the thresholds that
are saved come from all calibration messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from wangge.errors import TrainingError
from wangge.training.evaluate import choose_review_threshold

DEFAULT_FOLDS = 5
#: A category needs this many calibration messages predicted as it for a threshold of its own.
MIN_CATEGORY_MESSAGES = 50


@dataclass(frozen=True)
class ReviewThresholds:
    """The global review threshold and the categories' own ones."""

    global_threshold: float
    per_category: dict[str, float] = field(default_factory=dict)

    def of(self, predicted: Sequence[str]) -> np.ndarray:
        """The threshold that applies to each predicted category."""
        return np.array([self.per_category.get(str(c), self.global_threshold) for c in predicted])

    def accepts(self, confidences: Sequence[float], predicted: Sequence[str]) -> np.ndarray:
        """Which predictions skip review (confidence at or above their threshold)."""
        return np.asarray(confidences, dtype=float) >= self.of(predicted)

    def as_dict(self) -> dict[str, Any]:
        return {"global": self.global_threshold, "per_category": dict(self.per_category)}


@dataclass(frozen=True)
class ThresholdRule:
    """How thresholds are chosen (the module docstring): the target accuracy, the Wilson
    margin ``z`` and the messages a category needs for its own (None: global only)."""

    target: float
    z: float = 0.0
    min_messages: int | None = MIN_CATEGORY_MESSAGES


def choose_thresholds(
    confidences: Sequence[float],
    predicted: Sequence[str],
    correct: Sequence[bool],
    rule: ThresholdRule,
) -> ReviewThresholds:
    """The thresholds ``rule`` chooses on these predictions."""
    target, z, min_messages = rule.target, rule.z, rule.min_messages
    conf = np.asarray(confidences, dtype=float)
    pred = np.asarray([str(c) for c in predicted], dtype=object)
    ok = np.asarray(correct, dtype=bool)
    if not conf.shape == pred.shape == ok.shape:
        raise TrainingError("confidences, predictions and correctness differ in length")
    global_threshold, _ = choose_review_threshold(conf, ok, target_accuracy=target, z=z)
    per_category = {}
    for category in sorted(set(pred)):
        mine = pred == category
        if min_messages is not None and mine.sum() >= min_messages:
            threshold, _ = choose_review_threshold(
                conf[mine], ok[mine], target_accuracy=target, z=z
            )
            per_category[category] = threshold
    return ReviewThresholds(global_threshold, per_category)


@dataclass(frozen=True)
class AutoAccept:
    """What a set of thresholds does to labelled messages."""

    messages: int
    accepted: int
    accepted_correct: int

    @property
    def accuracy(self) -> float | None:
        """Share of the auto-accepted messages that are right (None: none accepted)."""
        return self.accepted_correct / self.accepted if self.accepted else None

    @property
    def review_share(self) -> float:
        return 1 - self.accepted / self.messages if self.messages else 0.0

    def as_dict(self) -> dict[str, Any]:
        accuracy = self.accuracy
        return {
            "messages": self.messages,
            "accepted": self.accepted,
            "accepted_correct": self.accepted_correct,
            "accuracy": None if accuracy is None else round(accuracy, 4),
            "review_share": round(self.review_share, 4),
        }

    def describe(self) -> str:
        accuracy = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        return (
            f"auto-accepted {self.accepted} of {self.messages} messages, {accuracy} right "
            f"({self.accepted_correct}); review share {self.review_share:.1%}"
        )


def auto_accept(
    accepted: Sequence[bool] | np.ndarray, correct: Sequence[bool] | np.ndarray
) -> AutoAccept:
    taken = np.asarray(accepted, dtype=bool)
    ok = np.asarray(correct, dtype=bool)
    return AutoAccept(int(taken.size), int(taken.sum()), int((taken & ok).sum()))


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold decisions: ``fold[i]`` is message i's fold, decided by ``thresholds[fold]``
    (chosen without that fold)."""

    accepted: np.ndarray
    fold: np.ndarray
    thresholds: list[ReviewThresholds]
    figures: AutoAccept


def cross_fit(
    confidences: Sequence[float],
    predicted: Sequence[str],
    gold: Sequence[str],
    rule: ThresholdRule,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> CrossFit:
    """Each of ``folds`` folds (stratified by gold label when every label allows it) decided
    by the thresholds chosen on the others; see the module docstring."""
    conf = np.asarray(confidences, dtype=float)
    pred = np.asarray([str(c) for c in predicted], dtype=object)
    gold_array = np.asarray([str(c) for c in gold], dtype=object)
    ok = pred == gold_array
    if folds < 2 or len(conf) < folds:
        raise TrainingError(f"cross-fitting needs at least {max(folds, 2)} messages and 2 folds")
    _, counts = np.unique(gold_array, return_counts=True)
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if counts.min() >= folds
        else KFold(folds, shuffle=True, random_state=seed)
    )
    accepted = np.zeros(len(conf), dtype=bool)
    fold_of = np.zeros(len(conf), dtype=int)
    chosen = []
    for k, (fit_idx, test_idx) in enumerate(splitter.split(conf, gold_array)):
        thresholds = choose_thresholds(conf[fit_idx], pred[fit_idx], ok[fit_idx], rule)
        accepted[test_idx] = thresholds.accepts(conf[test_idx], pred[test_idx])
        fold_of[test_idx] = k
        chosen.append(thresholds)
    return CrossFit(accepted, fold_of, chosen, auto_accept(accepted, ok))


def coverage_curve(
    confidences: Sequence[float], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (share of messages accepted, most confident first) and the accuracy of those
    accepted, one point per message."""
    conf = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    n = np.arange(1, conf.size + 1)
    return n / max(conf.size, 1), np.cumsum(ok[order]) / n


def save_coverage_png(
    confidences: Sequence[float],
    correct: Sequence[bool],
    path: str | Path,
    *,
    target: float | None = None,
    operating: AutoAccept | None = None,
    operating_label: str = "model's review thresholds",
    title: str = "",
) -> Path:
    """Draw the coverage-accuracy curve (ranked by confidence), the target accuracy and the
    point the model's thresholds reach (``operating``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coverage, accuracy = coverage_curve(confidences, correct)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(coverage, accuracy, label="single threshold on confidence")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", label=f"target {target:.2f}")
    if operating is not None and operating.accuracy is not None:
        ax.plot(
            [1 - operating.review_share], [operating.accuracy], "o", color="C3",
            label=operating_label,
        )  # fmt: skip
    ax.set_xlabel("coverage (share auto-accepted)")
    ax.set_ylabel("accuracy of auto-accepted")
    ax.set_xlim(0, 1)
    low = float(np.min(accuracy[len(accuracy) // 10 :])) if accuracy.size else 0.0
    ax.set_ylim(max(0.0, min(low, target or 1.0) - 0.02), 1.005)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def thresholds_from(metrics: Mapping[str, Any]) -> ReviewThresholds | None:
    """The thresholds a ``meta.json``'s metrics record, if any."""
    review = metrics.get("review")
    if not isinstance(review, dict) or "thresholds" not in review:
        return None
    recorded = review["thresholds"]
    return ReviewThresholds(float(recorded["global"]), dict(recorded.get("per_category", {})))
