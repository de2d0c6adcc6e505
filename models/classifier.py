"""The category classifier: TF-IDF over words and characters into a calibrated linear model.

Why this design: on 2 CPU cores the service must score over a thousand messages a second and
retrain in under a minute, which rules out a transformer as the default. Character n-grams make
a model trained on pre-segmented text robust on raw text (where jieba splits a rare word
differently, the characters still match), and the taxonomy keywords carry knowledge that a few
thousand training messages do not hold.

The estimator follows the scikit-learn contract: ``__init__`` stores parameters, ``fit``
validates and returns ``self``, learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion
from sklearn.utils.validation import check_is_fitted

from wangge.errors import TrainingError
from wangge.models.features import CharNgramVectorizer, WordNgramVectorizer
from wangge.models.taxonomy import TaxonomyKeywordFeatures, category_keywords, load_taxonomy
from wangge.nlp.segment import Tokenizer

MIN_CALIBRATION_PER_CLASS = 5


def fit_temperature(scores: np.ndarray, gold: np.ndarray) -> float:
    """The temperature T making ``softmax(scores / T)`` fit the class indices ``gold`` best
    (least log-loss)."""

    def log_loss(log_t: float) -> float:
        log_p = log_softmax(scores / np.exp(log_t), axis=1)
        return float(-log_p[np.arange(len(gold)), gold].mean())

    result = minimize_scalar(log_loss, bounds=(-6.0, 3.0), method="bounded")
    return float(np.exp(result.x))


@dataclass(frozen=True)
class Prediction:
    """One message's category prediction."""

    category: str
    confidence: float
    top: list[tuple[str, float]]
    needs_review: bool  # the confidence is below the review threshold of its category
    evidence: list[str] = field(default_factory=list)


class MessageClassifier(ClassifierMixin, BaseEstimator):
    """Classifies messages (raw or pre-segmented text) into categories with probabilities.

    Features are TF-IDF word unigrams and bigrams, TF-IDF character n-grams within words, and
    one taxonomy-keyword feature per category (:mod:`wangge.models.taxonomy`). The model is a
    ridge classifier with class-balanced weights: on raw messages it generalised better than a
    linear SVM trained on the same segmented corpus (``benchmarks/bench_ablation.py`` and
    docs/benchmarks.md). Its scores become probabilities by temperature scaling, fitted on a
    held-out share of the training data.

    Parameters
    ----------
    tokenizer:
        Turns text into content tokens; ``None`` means a default :class:`Tokenizer`.
    word_ngram_max:
        Longest word n-gram used as a feature.
    char_ngram_range:
        Character n-gram lengths (at most 3), taken within words.
    min_df:
        Minimum number of training messages a word or character n-gram must occur in.
    alpha:
        Regularisation strength of the ridge classifier.
    class_weight:
        ``"balanced"`` re-weights rare categories; ``None`` weighs every message the same.
    taxonomy_path:
        Taxonomy CSV with keywords; ``None`` means the shipped ``data/taxonomy.csv``.
    taxonomy_weight:
        Scale of the taxonomy-keyword features; 0 switches them off.
    calibration_fraction:
        Share of the training messages held out to fit the temperature.
    random_state:
        Seed of the calibration split.
    review_threshold:
        Predictions whose probability is below this are flagged ``needs_review``, unless their
        category has a threshold of its own in ``review_thresholds``; training sets both (see
        :mod:`wangge.training.calibration`).
    review_thresholds:
        Category -> review threshold, for the categories that have their own; ``None`` (and
        models saved before these existed): ``review_threshold`` for every category.
    """

    def __init__(
        self,
        *,
        tokenizer: Tokenizer | None = None,
        word_ngram_max: int = 2,
        char_ngram_range: tuple[int, int] = (1, 3),
        min_df: int = 2,
        alpha: float = 1.0,
        class_weight: str | None = "balanced",
        taxonomy_path: str | Path | None = None,
        taxonomy_weight: float = 0.3,
        calibration_fraction: float = 0.15,
        random_state: int = 0,
        review_threshold: float = 0.5,
        review_thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.word_ngram_max = word_ngram_max
        self.char_ngram_range = char_ngram_range
        self.min_df = min_df
        self.alpha = alpha
        self.class_weight = class_weight
        self.taxonomy_path = taxonomy_path
        self.taxonomy_weight = taxonomy_weight
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state
        self.review_threshold = review_threshold
        self.review_thresholds = review_thresholds

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model pickled before per-category thresholds existed has a single threshold.
        state.setdefault("review_thresholds", None)
        super().__setstate__(state)

    # -- features -------------------------------------------------------------------------
    def _make_features(self, tokenizer: Tokenizer) -> FeatureUnion:
        parts: list[tuple[str, object]] = [
            ("words", WordNgramVectorizer(max_n=self.word_ngram_max, min_df=self.min_df)),
            ("chars", CharNgramVectorizer(ngram_range=self.char_ngram_range, min_df=self.min_df)),
        ]
        if self.taxonomy_weight > 0:
            keywords = category_keywords(load_taxonomy(self.taxonomy_path), tokenizer.engine.cut)
            parts.append(
                (
                    "taxonomy",
                    TaxonomyKeywordFeatures(keywords=keywords, weight=self.taxonomy_weight),
                )
            )
        return FeatureUnion(parts)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Content tokens of each text, exactly as the model sees them."""
        tokenizer = self.tokenizer_ if hasattr(self, "tokenizer_") else self._tokenizer()
        return [tokenizer(text) for text in texts]

    def _tokenizer(self) -> Tokenizer:
        return self.tokenizer if self.tokenizer is not None else Tokenizer()

    # -- estimator API --------------------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> MessageClassifier:
        tokenizer = self._tokenizer()
        return self._fit([tokenizer(text) for text in texts], labels, tokenizer)

    def _check_training_labels(self, texts: Sequence[object], labels: Sequence[str]) -> np.ndarray:
        if len(texts) != len(labels):
            raise TrainingError(f"{len(texts)} texts but {len(labels)} labels")
        y = np.asarray(labels, dtype=object)
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise TrainingError(f"training needs at least two categories; found {list(classes)}")
        too_small = [f"{c} ({n})" for c, n in zip(classes, counts, strict=False) if n < 2]
        if too_small:
            raise TrainingError(
                "every category needs at least 2 examples (one to fit, one to calibrate); "
                f"too few: {', '.join(too_small)}"
            )
        return y

    def fit_tokens(
        self, tokens: Sequence[Sequence[str]], labels: Sequence[str]
    ) -> MessageClassifier:
        """Fit on texts already passed through :meth:`tokenize` (lets training tokenize once).

        The tokens must come from the tokenizer this estimator is configured with; it is the
        one saved with the model and used on every text scored later.
        """
        return self._fit(tokens, labels, self._tokenizer())

    def _fit(
        self, tokens: Sequence[Sequence[str]], labels: Sequence[str], tokenizer: Tokenizer
    ) -> MessageClassifier:
        y = self._check_training_labels(tokens, labels)
        self.tokenizer_ = tokenizer
        self.features_ = self._make_features(tokenizer)
        matrix = self.features_.fit_transform(tokens, y)
        self.temperature_ = self._fit_temperature(matrix, y)
        self.model_ = self._ridge().fit(matrix, y)
        self.classes_ = self.model_.classes_
        # (n_features, n_classes) in C order: ``matrix @ coef_t_`` then needs no copy, whereas
        # RidgeClassifier.decision_function copies its whole transposed coefficient matrix on
        # every call (1.3 ms of a 10 ms single-message prediction). With two classes ridge
        # has one score s for the second class; the columns (-s, s) keep every class a column.
        coef = np.atleast_2d(self.model_.coef_)
        intercept = np.atleast_1d(self.model_.intercept_)
        if coef.shape[0] == 1:
            coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
        self.coef_t_ = np.ascontiguousarray(coef.T)
        self.intercept_ = intercept
        return self

    def _ridge(self) -> RidgeClassifier:
        # lsqr with tol=1e-3 fits in a third of the time of the default tolerance and gave the
        # same predictions on the Teddy Cup dev set.
        return RidgeClassifier(
            alpha=self.alpha, class_weight=self.class_weight, solver="lsqr", tol=1e-3
        )

    def _fit_temperature(self, matrix: sp.csr_matrix, y: np.ndarray) -> float:
        """Temperature that makes softmax(scores / T) fit held-out labels best (least log-loss).

        With fewer than :data:`MIN_CALIBRATION_PER_CLASS` held-out messages per category the
        fit would be noise (a handful of easy examples drive T to zero and every prediction
        to certainty), so the temperature stays at 1, which keeps ridge scores soft.
        """
        n_classes = len(np.unique(y))
        holdout = max(self.calibration_fraction, n_classes / len(y))
        if holdout * len(y) < MIN_CALIBRATION_PER_CLASS * n_classes:
            return 1.0
        try:
            fit_idx, cal_idx = train_test_split(
                np.arange(len(y)), test_size=holdout, random_state=self.random_state, stratify=y
            )
        except ValueError:  # too few examples to stratify: calibrate on a plain split
            fit_idx, cal_idx = train_test_split(
                np.arange(len(y)), test_size=holdout, random_state=self.random_state
            )
        model = self._ridge().fit(matrix[fit_idx], y[fit_idx])
        scores = model.decision_function(matrix[cal_idx])
        if scores.ndim == 1:
            scores = np.column_stack([-scores, scores])
        gold = np.searchsorted(model.classes_, y[cal_idx])
        known = np.isin(y[cal_idx], model.classes_)
        return fit_temperature(scores[known], gold[known])

    def predict_proba_tokens(self, tokens: Sequence[Sequence[str]]) -> np.ndarray:
        """Probabilities for already tokenized texts (rows follow ``classes_``)."""
        check_is_fitted(self, "model_")
        return self.probabilities_of(self.features_.transform(tokens))

    def probabilities_of(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Probabilities for rows of the feature matrix (``features_.transform``)."""
        scores = np.asarray(matrix @ self.coef_t_) + self.intercept_
        return softmax(scores / self.temperature_, axis=1)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_tokens(self.tokenize(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]

    def explain(
        self,
        probabilities: np.ndarray,
        *,
        top_k: int = 3,
        threshold: float | None = None,
        per_category: Mapping[str, float] | None = None,
    ) -> list[Prediction]:
        """Turn a probability matrix into :class:`Prediction` records with review flags: below
        the threshold of the predicted category in ``per_category``, else below ``threshold``
        (by default, the model's own :attr:`review_thresholds` and :attr:`review_threshold`)."""
        check_is_fitted(self, "model_")
        if threshold is None:
            threshold, per_category = self.review_threshold, self.review_thresholds
        own = per_category or {}
        k = min(top_k, len(self.classes_))
        order = np.argsort(-probabilities, axis=1)[:, :k]
        predictions = []
        for row, ranked in zip(probabilities, order, strict=True):
            top = [(str(self.classes_[i]), round(float(row[i]), 4)) for i in ranked]
            category, confidence = top[0]
            low = bool(row[ranked[0]] < own.get(category, threshold))
            predictions.append(
                Prediction(
                    category=category,
                    confidence=confidence,
                    top=top,
                    needs_review=low,
                )
            )
        return predictions

    def predict_explained(
        self, texts: Sequence[str], *, top_k: int = 3, evidence: int = 5
    ) -> list[Prediction]:
        """Category, confidence, top-k, review flag and evidence for each text.

        The evidence is the ``evidence`` words or word pairs of the message that added most to
        the predicted category's score (TF-IDF weight times the model's coefficient): what a
        reviewer should look at to see why the model decided so.
        """
        check_is_fitted(self, "model_")
        matrix = self.features_.transform(self.tokenize(texts)).tocsr()
        probabilities = self.probabilities_of(matrix)
        predictions = self.explain(probabilities, top_k=top_k)
        if evidence > 0:
            self.add_evidence(predictions, matrix, probabilities.argmax(axis=1), evidence)
        return predictions

    def add_evidence(
        self,
        predictions: list[Prediction],
        matrix: sp.csr_matrix,
        predicted: np.ndarray,
        evidence: int,
    ) -> None:
        """Add to each prediction the ``evidence`` words or word pairs of its row of ``matrix``
        that added most to the score of its ``predicted`` class (a column of ``classes_``)."""
        words: WordNgramVectorizer = self.features_.transformer_list[0][1]
        # Contribution of every non-zero feature to its row's predicted category, all rows at
        # once; then per row the largest positive word features, in order.
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        contribution = matrix.data * self.coef_t_[matrix.indices, predicted[rows]]
        keep = (matrix.indices < len(words.vocabulary_)) & (contribution > 0)
        rows, columns, contribution = rows[keep], matrix.indices[keep], contribution[keep]
        order = np.lexsort((-contribution, rows))
        rows, columns = rows[order], columns[order]
        starts = np.searchsorted(rows, np.arange(len(predictions)))
        ends = np.searchsorted(rows, np.arange(len(predictions)), side="right")
        for prediction, start, end in zip(predictions, starts, ends, strict=True):
            best = columns[start : min(end, start + evidence)]
            prediction.evidence.extend(words.ngram_text(int(column)) for column in best)
