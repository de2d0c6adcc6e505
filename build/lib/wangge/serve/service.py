"""From validated messages to results: what the classify route does, minus HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from wangge.models.artifact import ModelMeta
from wangge.models.classifier import Prediction
from wangge.serve.schemas import CategoryScore, MessageIn, MessageResult


class Classifier(Protocol):
    """What the service needs of a model (:class:`~wangge.models.classifier.MessageClassifier`)."""

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]: ...


@dataclass(frozen=True)
class LoadedModel:
    """A model with the metadata it was saved with, kept together so they cannot diverge."""

    model: Classifier
    meta: ModelMeta


def message_text(title: str | None, content: str | None) -> str:
    """The text the model scores for a message: its non-blank parts joined with ``"\\n"``.

    This must match how training builds a text from a title and a body column
    (:func:`wangge.training.loaders.load_messages` joins the non-blank text columns with
    ``"\\n"``); a different join would shift the features the model sees at serving time.
    """
    return "\n".join(part for part in (title, content) if part is not None and part.strip())


def classify_messages(
    model: Classifier, messages: Sequence[MessageIn], *, top_k: int
) -> list[MessageResult]:
    """Score ``messages`` in one call to the model; results follow the input order."""
    texts = [message_text(message.title, message.content) for message in messages]
    predictions = model.predict_explained(texts, top_k=top_k)
    return [
        MessageResult(
            id=message.id,
            category=prediction.category,
            probability=prediction.confidence,
            top_k=[CategoryScore(category=c, probability=p) for c, p in prediction.top],
            needs_review=prediction.needs_review,
            review_reasons=[prediction.review_reason] if prediction.review_reason else [],
            metadata=message.metadata,
        )
        for message, prediction in zip(messages, predictions, strict=True)
    ]
