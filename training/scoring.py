"""Scoring files with a saved model: ``wangge classify`` and ``wangge evaluate``."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from wangge.models.artifact import department_model_dir, load_model
from wangge.models.classifier import MessageClassifier, Prediction
from wangge.models.router import MessageRouter, Route
from wangge.training.evaluate import EvaluationReport, evaluate_predictions
from wangge.training.loaders import EMPTY_REASON, FileSummary, load_messages, write_table
from wangge.training.routing import add_columns, routing_columns, routing_messages
from wangge.training.train import write_report

logger = logging.getLogger(__name__)

BATCH_SIZE = 2048
# Below this many messages a second process costs more (start-up) than it saves.
MIN_MESSAGES_PER_JOB = 4096
#: What ``wangge classify`` writes for a row without text: no category, flagged for review.
EMPTY_PREDICTION = Prediction("", 0.0, [], True, EMPTY_REASON)


@dataclass(frozen=True)
class Scorer:
    """What scores a batch: the category model, and optionally a router and department model."""

    model: MessageClassifier
    router: MessageRouter | None = None
    department_model: MessageClassifier | None = None

    def score(self, batch: tuple[list[str], list[dict[str, Any]]]) -> Scored:
        texts, messages = batch
        predictions = self.model.predict_explained(texts, top_k=3)
        if self.router is None:
            return predictions, None
        learned = (
            [dict(p.top) for p in self.department_model.predict_explained(texts, top_k=3)]
            if self.department_model is not None
            else None
        )
        routes = self.router.route_many(
            messages, categories=[dict(p.top) for p in predictions], learned=learned
        )
        return predictions, routes


Scored = tuple[list[Prediction], list[Route] | None]
_worker_scorer: Scorer | None = None  # set in each forked worker only


def _init_worker(scorer: Scorer) -> None:
    global _worker_scorer
    _worker_scorer = scorer


def _score_batch(batch: tuple[list[str], list[dict[str, Any]]]) -> Scored:
    assert _worker_scorer is not None
    return _worker_scorer.score(batch)


def default_jobs() -> int:
    """Processes for batch scoring: the CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def score_in_batches(
    scorer: Scorer,
    texts: list[str],
    messages: list[dict[str, Any]] | None = None,
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Prediction], list[Route] | None]:
    """Predictions (and routes, if the scorer routes) in batches, to bound memory.

    With ``jobs > 1`` and enough messages, batches are scored by that many forked processes,
    which share the loaded model and router with the parent instead of unpickling a copy each.
    ``messages`` are the routing fields of each text (:func:`routing_messages`).
    ``progress(scored, total)`` is called after each batch.
    """
    fields = messages if messages is not None else [{"content": text} for text in texts]
    batches = [
        (texts[start : start + BATCH_SIZE], fields[start : start + BATCH_SIZE])
        for start in range(0, len(texts), BATCH_SIZE)
    ]
    jobs = min(jobs, len(texts) // MIN_MESSAGES_PER_JOB)
    scored: list[Scored] = []

    def done(batch: Scored) -> None:
        scored.append(batch)
        if progress is not None:
            progress(min(len(scored) * BATCH_SIZE, len(texts)), len(texts))

    if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
        with context.Pool(jobs, initializer=_init_worker, initargs=(scorer,)) as pool:
            for batch in pool.imap(_score_batch, batches):  # in order, as they finish
                done(batch)
    else:
        for batch in batches:
            done(scorer.score(batch))
    predictions = [p for batch_predictions, _ in scored for p in batch_predictions]
    if scorer.router is None:
        return predictions, None
    return predictions, [route for _, routes in scored for route in routes or []]


def predict_in_batches(
    model: MessageClassifier, texts: list[str], *, jobs: int = 1
) -> list[Prediction]:
    """Predictions for ``texts``; see :func:`score_in_batches`."""
    return score_in_batches(Scorer(model), texts, jobs=jobs)[0]


def prediction_columns(predictions: list[Prediction]) -> dict[str, list[Any]]:
    """The columns ``wangge classify`` adds, one value per message."""
    return {
        "category": [p.category for p in predictions],
        "confidence": [p.confidence for p in predictions],
        "top3": [[{"category": c, "probability": s} for c, s in p.top] for p in predictions],
        "needs_review": [p.needs_review for p in predictions],
        "review_reason": [p.review_reason or "" for p in predictions],
        "evidence": [p.evidence for p in predictions],
    }


def classify_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    router: MessageRouter | None = None,
    text_columns: list[str] | None = None,
    jobs: int = 1,
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> FileSummary:
    """Score every message of ``input_path`` and write the input plus predictions.

    Every input column is kept. Should the input already have a column with one of the output
    names, the prediction column is written as ``predicted_<name>`` instead of overwriting it.
    With a ``router``, the routing columns are added too (street, community, grid, department
    top-3 …) and a doubtful location adds ``location`` to the review reasons. A row without
    text gets no category and ``needs_review`` with the reason ``empty`` (it is still routed
    by its address fields), unless ``strict``: it is then an error. ``progress("scoring",
    done, total)`` follows the scoring.
    """
    model, _meta = load_model(model_dir)
    data = load_messages(input_path, text_columns=text_columns or None, allow_empty=not strict)
    department_dir = department_model_dir(model_dir)
    department_model = (
        load_model(department_dir)[0] if router is not None and department_dir.is_dir() else None
    )
    messages = routing_messages(data) if router is not None else None
    empty = set(data.empty)
    kept = [i for i in range(len(data.texts)) if i not in empty]
    scored, scored_routes = score_in_batches(
        Scorer(model, router, department_model),
        [data.texts[i] for i in kept],
        [messages[i] for i in kept] if messages is not None else None,
        jobs=jobs,
        progress=None if progress is None else partial(progress, "scoring"),
    )
    predictions = [EMPTY_PREDICTION] * len(data.texts)
    for index, prediction in zip(kept, scored, strict=True):
        predictions[index] = prediction
    routes: list[Route] | None = None
    if router is not None and messages is not None:
        assert scored_routes is not None  # the scorer routes when it has a router
        by_row = dict(zip(kept, scored_routes, strict=True))
        unscored = router.route_many([messages[i] for i in data.empty])  # by address fields
        by_row.update(zip(data.empty, unscored, strict=True))
        routes = [by_row[i] for i in range(len(data.texts))]
    columns = prediction_columns(predictions)
    if routes is not None:
        columns |= routing_columns(routes)
        for index, route in enumerate(routes):
            if route.needs_review:
                columns["needs_review"][index] = True
                reasons = [r for r in (columns["review_reason"][index], "location") if r]
                columns["review_reason"][index] = ",".join(reasons)
    add_columns(data.frame, columns)  # the frame is ours to extend: no copy of a large input
    write_table(data.frame, output_path)
    return FileSummary.of(data)


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
