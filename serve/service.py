"""The service's side of the triage pipeline: request messages in, response records out.

:func:`triage_messages` is what ``POST /v1/classify`` and ``POST /v1/messages`` run; the work
is :class:`~wangge.pipeline.Triage`'s, this module only translates between HTTP bodies and
pipeline records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wangge.models.dedup import DuplicateDetector
from wangge.models.router import MessageRouter
from wangge.pipeline import Message, Triage, TriageResult
from wangge.pipeline.artifact import ModelMeta
from wangge.pipeline.triage import Classifier
from wangge.serve.schemas import IngestMessage, MessageIn, MessageResult


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

    def triage(
        self,
        router: MessageRouter | None,
        *,
        top_k: int,
        detector: DuplicateDetector | None = None,
    ) -> Triage:
        """The pipeline of this model with the service's router (and duplicate detector)."""
        return Triage(self.model, self.department_model, router, detector, top_k)


def pipeline_message(message: MessageIn) -> Message:
    """A request's message as the pipeline reads it."""
    fields = message.model_dump(
        include={"id", "title", "content", "address", "latitude", "longitude", "grid_id"}
    )
    if isinstance(message, IngestMessage):
        fields |= {"time": message.created_at, "reporter": message.reporter}
    return Message.of(**fields)


def message_result(message: MessageIn, result: TriageResult) -> MessageResult:
    """What the API answers for one message."""
    return MessageResult(
        id=message.id,
        **result.category_columns(top_k=len(result.prediction.top) if result.prediction else 0),
        needs_review=result.needs_review,
        review_reasons=list(result.reasons),
        metadata=message.metadata,
        **(result.route.as_columns() if result.route is not None else {}),
    )


def triage_messages(
    loaded: LoadedModel,
    messages: Sequence[MessageIn],
    *,
    top_k: int,
    router: MessageRouter | None = None,
) -> list[MessageResult]:
    """Score (and route, with a ``router``) ``messages``; results follow the input order."""
    results = loaded.triage(router, top_k=top_k)([pipeline_message(m) for m in messages])
    return [message_result(m, r) for m, r in zip(messages, results, strict=True)]
