"""From validated messages to results: what the classify route does, minus HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from wangge.models.artifact import ModelMeta
from wangge.models.classifier import Prediction
from wangge.nlp.fields import message_text
from wangge.serve.schemas import CategoryScore, MessageIn, MessageResult


class Classifier(Protocol):
    """What the service needs of a model (:class:`~wangge.models.classifier.MessageClassifier`)."""

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]: ...


@dataclass(frozen=True)
class LoadedModel:
    """A model with the metadata it was saved with, kept together so they cannot diverge."""

    model: Classifier
    meta: ModelMeta


def texts_of(messages: Sequence[MessageIn]) -> list[str]:
    """The texts the model scores, built exactly as training builds them from a file."""
    return [message_text((message.title, message.content)) for message in messages]


def classify_messages(
    model: Classifier, messages: Sequence[MessageIn], *, top_k: int
) -> list[MessageResult]:
    """Score ``messages`` in one call to the model; results follow the input order."""
    predictions = model.predict_explained(texts_of(messages), top_k=top_k)
    return [
        MessageResult(
            id=message.id,
            category=prediction.category,
            probability=prediction.confidence,
            top_k=[CategoryScore(category=c, probability=p) for c, p in prediction.top],
            needs_review=prediction.needs_review,
            review_reasons=[prediction.review_reason] if prediction.review_reason else [],
            evidence=prediction.evidence,
            metadata=message.metadata,
        )
        for message, prediction in zip(messages, predictions, strict=True)
    ]
