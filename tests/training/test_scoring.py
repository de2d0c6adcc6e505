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

    get_context = multiprocessing.get_context

    def no_fork(method: str | None = None) -> object:
        if method == "fork":
            raise AssertionError(f"forked worker processes for {len(texts)} messages")
        return get_context(method)

    monkeypatch.setattr(multiprocessing, "get_context", no_fork)
    assert predict_in_batches(model, texts, jobs=8) == model.predict_explained(texts)
