"""From validated messages to results: what the classify route does, minus HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wangge.models.artifact import ModelMeta
from wangge.models.classifier import Prediction
from wangge.models.router import ROUTING_FIELDS, MessageRouter
from wangge.nlp.fields import message_text
from wangge.serve.schemas import CategoryScore, MessageIn, MessageResult


class Classifier(Protocol):
    """What the service needs of a model (:class:`~wangge.models.classifier.MessageClassifier`)."""

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]: ...


@dataclass(frozen=True)
class LoadedModel:
    """A model with the metadata it was saved with, kept together so they cannot diverge.

    ``department_model`` is the model directory's department classifier, if it has one;
    ``store_version`` the model store version it was loaded as (``WANGGE_MODEL_STORE``).
    """

    model: Classifier
    meta: ModelMeta
    department_model: Classifier | None = None
    store_version: str | None = None


def texts_of(messages: Sequence[MessageIn]) -> list[str]:
    """The texts the model scores, built exactly as training builds them from a file."""
    return [message_text((message.title, message.content)) for message in messages]


def classify_messages(
    loaded: LoadedModel,
    messages: Sequence[MessageIn],
    *,
    top_k: int,
    router: MessageRouter | None = None,
) -> list[MessageResult]:
    """Score (and route, with a ``router``) ``messages``; results follow the input order."""
    texts = texts_of(messages)
    predictions = loaded.model.predict_explained(texts, top_k=top_k)
    routing: list[dict[str, Any]] = [{} for _ in messages]
    route_review = [False] * len(messages)
    if router is not None:
        learned = (
            [dict(p.top) for p in loaded.department_model.predict_explained(texts, top_k=3)]
            if loaded.department_model is not None
            else None
        )
        routes = router.route_many(
            [message.model_dump(include=set(ROUTING_FIELDS)) for message in messages],
            categories=[dict(p.top) for p in predictions],
            learned=learned,
        )
        routing = [route.as_columns() for route in routes]
        route_review = [route.needs_review for route in routes]
    results = []
    for message, prediction, columns, location_review in zip(
        messages, predictions, routing, route_review, strict=True
    ):
        reasons = [prediction.review_reason] if prediction.review_reason else []
        if location_review:
            reasons.append("location")
        results.append(
            MessageResult(
                id=message.id,
                category=prediction.category,
                probability=prediction.confidence,
                top_k=[CategoryScore(category=c, probability=p) for c, p in prediction.top],
                needs_review=bool(reasons),
                review_reasons=reasons,
                evidence=prediction.evidence,
                metadata=message.metadata,
                **columns,
            )
        )
    return results
