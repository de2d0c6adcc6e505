"""Batch scoring of many messages, sequentially and in forked worker processes."""

from __future__ import annotations

import multiprocessing

import pytest

from wangge.models.classifier import MessageClassifier
from wangge.training.scoring import MIN_MESSAGES_PER_JOB, predict_in_batches


@pytest.fixture(scope="module")
def model(corpus: tuple[list[str], list[str]]) -> MessageClassifier:
    texts, labels = corpus
    return MessageClassifier().fit(texts, labels)


def test_scoring_in_two_processes_matches_sequential(
    model: MessageClassifier, corpus: tuple[list[str], list[str]]
) -> None:
    texts, _ = corpus
    many = (texts * (2 * MIN_MESSAGES_PER_JOB // len(texts) + 1))[: 2 * MIN_MESSAGES_PER_JOB]
    sequential = predict_in_batches(model, many, jobs=1)
    parallel = predict_in_batches(model, many, jobs=2)
    assert len(parallel) == len(many)
    assert parallel == sequential


def test_scoring_small_input_stays_in_process(
    model: MessageClassifier, corpus: tuple[list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, _ = corpus

    def no_processes(method: str) -> None:
        raise AssertionError(f"started {method} worker processes for {len(texts)} messages")

    monkeypatch.setattr(multiprocessing, "get_context", no_processes)
    assert predict_in_batches(model, texts, jobs=8) == model.predict_explained(texts)
