"""A fine-tuned transformer classifier run on ONNX Runtime, and its ensemble with the linear
model.

:class:`TransformerScorer` reads ``<model_dir>/transformer/`` (``model.onnx``, int8; the
tokenizer and the checkpoint's ``config.json``), written by
:func:`wangge.training.train.train` with ``backend="transformer"``: no torch at run time.

:class:`EnsembleClassifier` is what such a model directory serves: the linear
:class:`~wangge.models.classifier.MessageClassifier` and the transformer see the same content
tokens (the transformer as :func:`~wangge.training.finetune.transformer_text`), and their
probabilities are mixed, ``w · softmax(logits / T) + (1 − w) · linear``, with ``w`` and the
temperature ``T`` fitted on a validation split. ``w = 1`` serves the transformer alone. It
answers the same calls as the linear model (``predict_explained`` …), so the service, the CLI
and the review queue need not know which one they hold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from wangge.models.classifier import MessageClassifier, Prediction
from wangge.nlp.embeddings import OnnxTextModel

TRANSFORMER_DIR = "transformer"
ONNX_FILE = "model.onnx"


def transformer_text(tokens: Sequence[str]) -> str:
    """What the transformer reads: the message's content tokens, space-separated."""
    return " ".join(tokens)


class TransformerScorer(OnnxTextModel):
    """Logits of the exported classifier in ``directory`` (``model.onnx`` by default)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_length: int,
        onnx_file: str = ONNX_FILE,
        batch_size: int = 16,  # 5-10 % faster than 8 or 32 (6 layers, 64 sub-words)
        threads: int | None = None,
    ) -> None:
        super().__init__(
            directory, onnx_file, max_length=max_length, batch_size=batch_size, threads=threads
        )
        id2label = self.config["id2label"]
        self.labels = [id2label[str(i)] for i in range(len(id2label))]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.run(texts)


class EnsembleClassifier:
    """The linear model and a fine-tuned transformer, mixed (see the module docstring).

    Pickled without the ONNX session: :func:`wangge.pipeline.artifact.load_model` calls
    :meth:`attach` with the model directory, and each process opens its own session on first
    use (``wangge classify`` forks workers).
    """

    def __init__(
        self,
        linear: MessageClassifier,
        *,
        transformer_weight: float,
        temperature: float,
        max_length: int,
        review_threshold: float = 0.5,
        review_thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.linear = linear
        self.transformer_weight = transformer_weight
        self.temperature = temperature
        self.max_length = max_length
        self.review_threshold = review_threshold
        self.review_thresholds = review_thresholds  # per category, as the linear model's
        self.classes_ = linear.classes_
        self._directory: Path | None = None
        self._scorer: TransformerScorer | None = None
        self._pid = 0

    def attach(self, model_dir: str | Path) -> None:
        self._directory = Path(model_dir) / TRANSFORMER_DIR
        self._scorer = None

    @property
    def scorer(self) -> TransformerScorer:
        if self._directory is None:
            raise RuntimeError("EnsembleClassifier used before attach(model_dir)")
        if self._scorer is None or self._pid != os.getpid():
            self._scorer = TransformerScorer(self._directory, max_length=self.max_length)
            self._pid = os.getpid()
        return self._scorer

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        return self.linear.tokenize(texts)

    def transformer_proba_tokens(self, tokens: Sequence[Sequence[str]]) -> np.ndarray:
        logits = self.scorer.logits([transformer_text(t) for t in tokens])
        return softmax(logits / self.temperature, axis=1)

    def predict_proba_tokens(self, tokens: Sequence[Sequence[str]]) -> np.ndarray:
        return self._mix(tokens, self.linear.predict_proba_tokens(tokens))

    def _mix(self, tokens: Sequence[Sequence[str]], linear: np.ndarray) -> np.ndarray:
        w = self.transformer_weight
        if w == 0:
            return linear
        return w * self.transformer_proba_tokens(tokens) + (1 - w) * linear

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_tokens(self.tokenize(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]

    def predict_explained(
        self, texts: Sequence[str], *, top_k: int = 3, evidence: int = 5
    ) -> list[Prediction]:
        """As :meth:`MessageClassifier.predict_explained`; the evidence words are the linear
        model's for the category the ensemble chose."""
        tokens = self.tokenize(texts)
        matrix = self.linear.features_.transform(tokens).tocsr()
        probabilities = self._mix(tokens, self.linear.probabilities_of(matrix))
        predictions = self.linear.explain(
            probabilities,
            top_k=top_k,
            threshold=self.review_threshold,
            per_category=self.review_thresholds,
        )
        if evidence > 0:
            self.linear.add_evidence(predictions, matrix, probabilities.argmax(axis=1), evidence)
        return predictions

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"review_thresholds": None} | state)  # older pickles lack it

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_directory": None, "_scorer": None, "_pid": 0}
