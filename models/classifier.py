"""The category classifier: TF-IDF over words and characters into a calibrated linear model.

Why this design: on 2 CPU cores the service must score over a thousand messages a second and
retrain in under a minute, and on the Teddy Cup data a linear model over word and character
n-grams is within a point or two of fine-tuned transformers. Character n-grams are what make a
model trained on pre-segmented text robust on raw text: where jieba splits a rare word
differently, the characters still match.

The estimator follows the scikit-learn contract: ``__init__`` stores parameters, ``fit``
validates and returns ``self``, learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from wangge.errors import TrainingError
from wangge.nlp.segment import Tokenizer


class WordNgrams:
    """Analyzer for a token list: the tokens themselves plus n-grams up to ``n`` words."""

    def __init__(self, n: int = 2) -> None:
        self.n = n

    def __call__(self, tokens: Sequence[str]) -> list[str]:
        features = list(tokens)
        for size in range(2, self.n + 1):
            features.extend(
                " ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)
            )
        return features


def join_tokens(tokens: Sequence[str]) -> str:
    """Preprocessor for the character analyzer: n-grams never cross a word boundary."""
    return " ".join(tokens)


@dataclass(frozen=True)
class Prediction:
    """One message's category prediction."""

    category: str
    confidence: float
    top: list[tuple[str, float]]
    needs_review: bool
    review_reason: str | None


class MessageClassifier(ClassifierMixin, BaseEstimator):
    """Classifies messages (raw or pre-segmented text) into categories with probabilities.

    Parameters
    ----------
    tokenizer:
        Turns text into content tokens; ``None`` means a default :class:`Tokenizer`.
    word_ngram_max:
        Longest word n-gram used as a feature.
    char_ngram_range:
        Character n-gram lengths, taken within words.
    min_df:
        Minimum number of training messages a feature must occur in.
    C:
        Inverse regularisation strength of the linear SVM.
    class_weight:
        ``None`` or ``"balanced"`` (re-weights rare categories).
    calibration_folds:
        Folds of :class:`~sklearn.calibration.CalibratedClassifierCV` (sigmoid): the scores
        of a linear SVM are not probabilities until calibrated.
    review_threshold:
        Predictions whose probability is below this are flagged ``needs_review``; training
        sets it from validation data (see
        :func:`wangge.training.evaluate.choose_review_threshold`).
    """

    def __init__(
        self,
        *,
        tokenizer: Tokenizer | None = None,
        word_ngram_max: int = 2,
        char_ngram_range: tuple[int, int] = (1, 3),
        min_df: int = 2,
        C: float = 0.5,
        class_weight: str | None = "balanced",
        calibration_folds: int = 3,
        review_threshold: float = 0.5,
    ) -> None:
        self.tokenizer = tokenizer
        self.word_ngram_max = word_ngram_max
        self.char_ngram_range = char_ngram_range
        self.min_df = min_df
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds
        self.review_threshold = review_threshold

    # -- features -------------------------------------------------------------------------
    def _make_features(self) -> FeatureUnion:
        words = TfidfVectorizer(
            analyzer=WordNgrams(self.word_ngram_max), min_df=self.min_df, sublinear_tf=True
        )
        chars = TfidfVectorizer(
            analyzer="char_wb",
            preprocessor=join_tokens,
            ngram_range=self.char_ngram_range,
            min_df=self.min_df,
            sublinear_tf=True,
            lowercase=False,
        )
        return FeatureUnion([("words", words), ("chars", chars)])

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Content tokens of each text, exactly as the model sees them."""
        tokenizer = self.tokenizer_ if hasattr(self, "tokenizer_") else self._tokenizer()
        return [tokenizer(text) for text in texts]

    def _tokenizer(self) -> Tokenizer:
        return self.tokenizer if self.tokenizer is not None else Tokenizer()

    # -- estimator API --------------------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> MessageClassifier:
        self.tokenizer_ = self._tokenizer()
        return self.fit_tokens(self.tokenize(texts), labels)

    def _check_training_labels(self, texts: Sequence[object], labels: Sequence[str]) -> None:
        if len(texts) != len(labels):
            raise TrainingError(f"{len(texts)} texts but {len(labels)} labels")
        classes, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
        if len(classes) < 2:
            raise TrainingError("training needs at least two categories; found " f"{classes!r}")
        too_small = [f"{c} ({n})" for c, n in zip(classes, counts) if n < self.calibration_folds]
        if too_small:
            raise TrainingError(
                f"every category needs at least {self.calibration_folds} examples for "
                f"calibration; too few: {', '.join(too_small)}"
            )

    def fit_tokens(
        self, tokens: Sequence[Sequence[str]], labels: Sequence[str]
    ) -> MessageClassifier:
        """Fit on texts already passed through :meth:`tokenize` (lets training tokenize once)."""
        self._check_training_labels(tokens, labels)
        if not hasattr(self, "tokenizer_"):
            self.tokenizer_ = self._tokenizer()
        self.features_ = self._make_features()
        matrix = self.features_.fit_transform(tokens)
        svm = LinearSVC(C=self.C, class_weight=self.class_weight)
        self.model_ = CalibratedClassifierCV(svm, method="sigmoid", cv=self.calibration_folds)
        self.model_.fit(matrix, np.asarray(labels, dtype=object))
        self.classes_ = self.model_.classes_
        return self

    def predict_proba_tokens(self, tokens: Sequence[Sequence[str]]) -> np.ndarray:
        """Probabilities for already tokenized texts (rows follow ``classes_``)."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self.features_.transform(tokens))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_tokens(self.tokenize(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]

    def explain(self, probabilities: np.ndarray, *, top_k: int = 3) -> list[Prediction]:
        """Turn a probability matrix into :class:`Prediction` records with review flags."""
        check_is_fitted(self, "model_")
        k = min(top_k, len(self.classes_))
        order = np.argsort(-probabilities, axis=1)[:, :k]
        predictions = []
        for row, ranked in zip(probabilities, order):
            top = [(str(self.classes_[i]), round(float(row[i]), 4)) for i in ranked]
            category, confidence = top[0]
            low = confidence < self.review_threshold
            predictions.append(
                Prediction(
                    category=category,
                    confidence=confidence,
                    top=top,
                    needs_review=low,
                    review_reason=(
                        f"category confidence {confidence:.2f} below {self.review_threshold:.2f}"
                        if low
                        else None
                    ),
                )
            )
        return predictions

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]:
        """Category, confidence, top-k and review flag for each text."""
        return self.explain(self.predict_proba(texts), top_k=top_k)
