"""Scoring files with a saved model: ``wangge classify`` and ``wangge evaluate``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from wangge.models.artifact import load_model
from wangge.models.classifier import MessageClassifier, Prediction
from wangge.training.evaluate import EvaluationReport, evaluate_predictions
from wangge.training.loaders import load_messages, write_table
from wangge.training.train import write_report

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("category", "confidence", "top3", "needs_review", "review_reason")
BATCH_SIZE = 2048


def predict_in_batches(model: MessageClassifier, texts: list[str]) -> list[Prediction]:
    """Predictions for ``texts``, scored in batches to bound memory on large files."""
    predictions: list[Prediction] = []
    for start in range(0, len(texts), BATCH_SIZE):
        predictions.extend(model.predict_explained(texts[start : start + BATCH_SIZE], top_k=3))
    return predictions


def prediction_columns(predictions: list[Prediction]) -> dict[str, list[Any]]:
    """The columns ``wangge classify`` adds, one value per message."""
    return {
        "category": [p.category for p in predictions],
        "confidence": [p.confidence for p in predictions],
        "top3": [[{"category": c, "probability": s} for c, s in p.top] for p in predictions],
        "needs_review": [p.needs_review for p in predictions],
        "review_reason": [p.review_reason or "" for p in predictions],
    }


def classify_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_columns: list[str] | None = None,
) -> int:
    """Score every message of ``input_path`` and write the input plus predictions.

    Every input column is kept. Should the input already have a column with one of the output
    names, the prediction column is written as ``predicted_<name>`` instead of overwriting it.
    Returns the number of messages scored.
    """
    model, _meta = load_model(model_dir)
    data = load_messages(input_path, text_columns=text_columns or None)
    predictions = predict_in_batches(model, data.texts)
    frame: pd.DataFrame = data.frame.copy()
    for name, values in prediction_columns(predictions).items():
        column = name if name not in data.frame.columns else f"predicted_{name}"
        if column != name:
            logger.warning("input already has a %r column: predictions go to %r", name, column)
        frame[column] = values
    write_table(frame, output_path)
    return len(frame)


def evaluate_file(
    model_dir: str | Path,
    data_path: str | Path,
    *,
    text_columns: list[str] | None = None,
    label_column: str | None = None,
    output_dir: str | Path | None = None,
) -> EvaluationReport:
    """Evaluate a saved model on a labelled file; optionally write the report files."""
    model, meta = load_model(model_dir)
    data = load_messages(
        data_path, text_columns=text_columns or None, label_column=label_column, require_label=True
    )
    assert data.labels is not None  # require_label=True guarantees it
    predictions = predict_in_batches(model, data.texts)
    report = evaluate_predictions(
        data.labels, [p.category for p in predictions], labels=meta.labels
    )
    if output_dir is not None:
        write_report(
            report, output_dir, extra={"model_version": meta.version, "data": str(data_path)}
        )
    return report
