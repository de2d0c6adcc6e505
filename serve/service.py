"""The service's side of the triage pipeline: the model it serves, request messages in,
response records out.

:func:`prepare_model` loads (and test-scores) the model the service runs;
:func:`triage_messages` is what ``POST /v1/classify`` runs, and ``POST /v1/messages`` runs the
same pipeline with its duplicate detector (:mod:`wangge.serve.ingest`). The work is
:class:`~wangge.pipeline.Triage`'s: this module only translates between HTTP bodies and
pipeline records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from wangge.errors import ModelLoadError
from wangge.home import has_encoder
from wangge.models.dedup import DedupWeights, DuplicateDetector
from wangge.models.router import MessageRouter
from wangge.nlp.registry import default_district_dir
from wangge.pipeline import Message, Triage, TriageResult
from wangge.pipeline.artifact import ModelMeta
from wangge.pipeline.directory import load_pipeline
from wangge.pipeline.store import current_version, served_dir
from wangge.pipeline.triage import Classifier
from wangge.serve.config import Settings
from wangge.serve.schemas import IngestMessage, MessageIn, MessageResult
from wangge.serve.shutdown import ShuttingDown

logger = logging.getLogger(__name__)

# Messages of a batch scored between two looks at whether the server is stopping (see
# ShuttingDown): a chunk is at most WANGGE_MAX_REQUEST_CHARS of text, under a second on one core
# by default. 256 dev messages took 8 % longer in chunks of 16 than whole; in chunks of 64, 1-5 %.
TRIAGE_CHUNK = 64


@dataclass(frozen=True)
class LoadedModel:
    """A model with the metadata it was saved with, kept together so they cannot diverge.

    ``department_model`` is the model directory's department classifier, if it has one;
    ``store_version`` the model store version it was loaded as (``WANGGE_MODEL_STORE``);
    ``dedup_weights`` the duplicate detector's weights saved with it (None: the shipped ones).
    """

    model: Classifier
    meta: ModelMeta
    department_model: Classifier | None = None
    store_version: str | None = None
    dedup_weights: DedupWeights | None = None

    def triage(
        self,
        router: MessageRouter | None,
        *,
        top_k: int,
        detector: DuplicateDetector | None = None,
    ) -> Triage:
        """The pipeline of this model with the service's router (and duplicate detector)."""
        return Triage(self.model, self.department_model, router, detector, top_k)


def prepare_model(
    settings: Settings,
    *,
    model: Classifier | None = None,
    meta: ModelMeta | None = None,
    department_model: Classifier | None = None,
) -> LoadedModel:
    """The model to serve: ``model`` and ``meta`` if given, else loaded from ``model_dir``
    (refused unless the district tables and the encoder configured are those it was built
    with: :func:`~wangge.pipeline.directory.load_pipeline`).

    It scores one text before it is returned, which also builds the segmenter's dictionary now
    instead of on the first request. Raises :class:`~wangge.errors.ModelLoadError`.
    """
    store_version = None
    model_dir = settings.model_dir
    if settings.model_store is not None:
        store_version = current_version(settings.model_store)
        model_dir = served_dir(settings.model_store)
    if model is not None and meta is not None:
        loaded = LoadedModel(model, meta, department_model, store_version)
    elif model_dir is None:
        raise ModelLoadError("no model configured: set WANGGE_MODEL_DIR or WANGGE_MODEL_STORE")
    else:
        district = (settings.district_dir or default_district_dir()) if settings.route else None
        encoder = settings.encoder_dir if has_encoder(settings.encoder_dir) else None
        saved = load_pipeline(model_dir, district_dir=district, encoder_dir=encoder)
        loaded = LoadedModel(
            saved.classifier, saved.meta, saved.department_model, store_version, saved.dedup_weights
        )
    try:
        loaded.model.predict_explained(["路灯不亮"], top_k=settings.top_k)
    except Exception as exc:  # any failure means the model cannot serve
        raise ModelLoadError(
            f"model {loaded.meta.name} {loaded.meta.version} failed a test prediction: {exc!r}"
        ) from exc
    logger.info("serving model %s version %s", loaded.meta.name, loaded.meta.version)
    return loaded


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
    stopping: threading.Event | None = None,
) -> list[MessageResult]:
    """Score (and route, with a ``router``) ``messages``; results follow the input order.
    Raises :class:`ShuttingDown` once ``stopping`` is set (:func:`triage_in_chunks`)."""
    triage = loaded.triage(router, top_k=top_k)
    results = triage_in_chunks(triage, [pipeline_message(m) for m in messages], stopping)
    return [message_result(m, r) for m, r in zip(messages, results, strict=True)]


def triage_in_chunks(
    triage: Triage, messages: Sequence[Message], stopping: threading.Event | None
) -> list[TriageResult]:
    """``triage(messages)``, :data:`TRIAGE_CHUNK` messages at a time; raises
    :class:`ShuttingDown` before any chunk but the first once ``stopping`` is set, so that a
    request of one chunk always finishes."""
    results: list[TriageResult] = []
    for start in range(0, len(messages), TRIAGE_CHUNK):
        if start and stopping is not None and stopping.is_set():
            raise ShuttingDown(f"stopped after scoring {start} of {len(messages)} messages")
        results += triage(messages[start : start + TRIAGE_CHUNK])
    return results
