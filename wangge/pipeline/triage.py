"""The triage pipeline: classify → locate/route → departments → duplicate features.

:class:`Triage` holds the components a deployment has (any may be absent: ``wangge route`` has
only a router, ``wangge dedup`` only a detector) and runs each message through them in that
order. Every component reads the message as :class:`~wangge.pipeline.records.Message` holds
it, normalised once. Assigning a message to a case is not done here: it must be serialised
against everything assigned before (:meth:`~wangge.models.dedup.DuplicateDetector.add_many` for
a file, the service's ingest for a stream), while everything here can run in parallel.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from wangge.errors import DataError
from wangge.models.classifier import Prediction
from wangge.models.dedup import DedupMessage, DuplicateDetector, Encoder
from wangge.models.router import MessageRouter, Route
from wangge.pipeline.directory import load_pipeline
from wangge.pipeline.reasons import ReviewReason
from wangge.pipeline.records import Message, TriageResult

BATCH_SIZE = 2048
# Below this many messages a second process costs more (start-up) than it saves.
MIN_MESSAGES_PER_JOB = 4096
DEDUP_MAX_TOKENS = 32  # titles: longer ones are cut, which costs little for duplicate search
# The most characters of text run through the models at once: every stage's intermediate data
# (tokens, n-gram ids, sparse matrices) grows with the characters it holds. Scored at once,
# 256 messages of 20,000 characters raised the peak memory by 600 MiB; in these chunks, by 23 MiB.
CHUNK_CHARS = 200_000


class Classifier(Protocol):
    """What the pipeline needs of a category or department model: the linear
    :class:`~wangge.models.classifier.MessageClassifier` or the transformer ensemble."""

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]: ...


@dataclass(frozen=True)
class Triage:
    """The components of one deployment, run in order over batches of messages.

    ``classifier`` predicts the category; ``department_model`` (a classifier of departments,
    optional) adds its votes to the router's; ``router`` locates the message and proposes
    departments; ``detector`` computes what duplicate detection compares. ``top_k`` is how many
    categories and departments a result lists; ``chunk_chars`` how many characters of text
    run through the models at once.
    """

    classifier: Classifier | None = None
    department_model: Classifier | None = None
    router: MessageRouter | None = None
    detector: DuplicateDetector | None = None
    top_k: int = 3
    chunk_chars: int = CHUNK_CHARS

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        router: MessageRouter | None = None,
        detector: DuplicateDetector | None = None,
        top_k: int = 3,
    ) -> Triage:
        """The pipeline of a model directory (written by ``wangge train``): its category model,
        and its department model when it has one and a ``router`` is given.

        The router's district tables and the detector's sentence encoder must be those the
        directory was built with (:func:`~wangge.pipeline.directory.load_pipeline`; an
        encoder without a ``directory``, such as a test double, is not checked). Only the
        detector's features are computed here, which its weights do not change; the
        directory's weights are ``load_pipeline(...).dedup_weights``.
        """
        encoder = detector.encoder if detector is not None else None
        district = router.registry.source if router is not None else ""
        saved = load_pipeline(
            model_dir,
            district_dir=district or None,
            encoder_dir=getattr(encoder, "directory", None),
            departments=router is not None,
        )
        return cls(saved.classifier, saved.department_model, router, detector, top_k)

    def __call__(self, messages: Sequence[Message]) -> list[TriageResult]:
        """The result of each message, in input order.

        Messages run through the models in chunks of at most :attr:`chunk_chars` characters
        of text (a longer message alone), which bounds the memory a large batch takes; each
        message's result does not depend on the others'.
        """
        chunks = text_chunks(messages, self.chunk_chars)
        return [result for chunk in chunks for result in self._triage(chunk)]

    def _triage(self, messages: Sequence[Message]) -> list[TriageResult]:
        texted = [i for i, message in enumerate(messages) if message.text]
        predictions: list[Prediction | None] = [None] * len(messages)
        learned: list[dict[str, float] | None] = [None] * len(messages)
        if texted and self.classifier is not None:
            texts = [messages[i].text for i in texted]
            scored = self.classifier.predict_explained(texts, top_k=self.top_k)
            for i, p in zip(texted, scored, strict=True):
                predictions[i] = p
            if self.router is not None and self.department_model is not None:
                scored = self.department_model.predict_explained(texts, top_k=self.top_k)
                for i, p in zip(texted, scored, strict=True):
                    learned[i] = dict(p.top)
        routes = self._route(messages, predictions, learned)
        dedups = self._dedup_messages(messages, predictions, routes, texted)
        features = (
            self.detector.features([dedups[i] for i in texted])  # type: ignore[misc]
            if self.detector is not None and texted
            else []
        )
        feature_of = dict(zip(texted, features, strict=False))
        return [
            TriageResult(
                message,
                predictions[i],
                routes[i],
                review_reasons(message, predictions[i], routes[i]),
                dedups[i],
                feature_of.get(i),
            )  # fmt: skip
            for i, message in enumerate(messages)
        ]

    def _route(
        self,
        messages: Sequence[Message],
        predictions: Sequence[Prediction | None],
        learned: Sequence[dict[str, float] | None],
    ) -> list[Route | None]:
        if self.router is None:
            return [None] * len(messages)
        return list(
            self.router.route_many(
                [message.routing_fields() for message in messages],
                categories=[dict(p.top) if p else None for p in predictions],
                learned=learned,
                top_k=self.top_k,
                normalized=True,
            )
        )

    def _dedup_messages(
        self,
        messages: Sequence[Message],
        predictions: Sequence[Prediction | None],
        routes: Sequence[Route | None],
        texted: Sequence[int],
    ) -> list[DedupMessage | None]:
        """What the detector compares of each message with text: its place (community, else
        street) and its category when the category model is sure of it."""
        if self.detector is None:
            return [None] * len(messages)
        dedups: list[DedupMessage | None] = [None] * len(messages)
        for i in texted:
            message, prediction, route = messages[i], predictions[i], routes[i]
            place = route.location.as_columns() if route is not None else {}
            dedups[i] = DedupMessage(
                id=message.id or "",
                title=message.title,
                content=message.content,
                time=message.time or datetime.now(),
                reporter=message.reporter,
                place=place.get("community_code") or place.get("street_code") or None,
                category=prediction.category if prediction else None,
                category_confident=prediction is not None and not prediction.needs_review,
            )
        return dedups

    def pipe(
        self,
        messages: Sequence[Message],
        *,
        jobs: int = 1,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[TriageResult]:
        """Results of many messages, in batches of ``batch_size`` to bound memory.

        With ``jobs > 1`` and enough messages, batches run in that many forked processes,
        which share the loaded models with the parent instead of unpickling a copy each.
        ``progress(done, total)`` is called after each batch.
        """
        batches = [
            messages[start : start + batch_size] for start in range(0, len(messages), batch_size)
        ]
        jobs = min(jobs, len(messages) // MIN_MESSAGES_PER_JOB)
        results: list[TriageResult] = []

        def done(batch: list[TriageResult]) -> None:
            results.extend(batch)
            if progress is not None:
                progress(len(results), len(messages))

        if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            with context.Pool(jobs, initializer=_init_worker, initargs=(self,)) as pool:
                for triaged in pool.imap(_run_batch, batches):  # in order, as they finish
                    done(triaged)
        else:
            for batch in batches:
                done(self(batch))
        return results


def text_chunks(
    messages: Sequence[Message], max_chars: int = CHUNK_CHARS
) -> list[Sequence[Message]]:
    """``messages`` in consecutive runs of at most ``max_chars`` characters of title and
    content together; a message longer than that is a run of its own."""
    chunks: list[Sequence[Message]] = []
    start, chars = 0, 0
    for end, message in enumerate(messages):
        length = len(message.title) + len(message.content)
        if end > start and chars + length > max_chars:
            chunks.append(messages[start:end])
            start, chars = end, 0
        chars += length
    if start < len(messages):
        chunks.append(messages[start:])
    return chunks


def review_reasons(
    message: Message, prediction: Prediction | None, route: Route | None
) -> tuple[ReviewReason, ...]:
    """Why a person should check a result before any case is assigned."""
    reasons = []
    if not message.text:
        reasons.append(ReviewReason.EMPTY)
    if prediction is not None and prediction.needs_review:
        reasons.append(ReviewReason.CATEGORY)
    if route is not None and route.needs_review:
        reasons.append(location_reason(route))
    return tuple(reasons)


def location_reason(route: Route) -> ReviewReason:
    """What is doubtful about the place of a route that needs review: a name several streets
    have, places that conflict, places elsewhere named beside the district's (an out-of-area
    location below the threshold), no community named at all (``unlocated``: at most a street,
    or places the registry does not know), or else a low confidence."""
    location = route.location
    doubts = location.doubts()
    if "ambiguous" in doubts:
        return ReviewReason.AMBIGUOUS_PLACE
    if "conflict" in doubts:
        return ReviewReason.CONFLICTING_PLACES
    if location.out_of_area:
        return ReviewReason.OUT_OF_AREA
    if location.community is None:
        return ReviewReason.UNLOCATED
    return ReviewReason.LOCATION


_worker_triage: Triage | None = None  # set in each forked worker only


def _init_worker(triage: Triage) -> None:
    global _worker_triage
    _worker_triage = triage


def _run_batch(batch: Sequence[Message]) -> list[TriageResult]:
    assert _worker_triage is not None
    return _worker_triage(batch)


def default_jobs() -> int:
    """Processes for batch work: the CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_encoder(encoder_dir: str | Path | None) -> Encoder | None:
    """The sentence encoder of a local directory for duplicate detection, or ``None``."""
    if encoder_dir is None:
        return None
    from wangge.nlp.embeddings import ENCODER_FILE, SentenceEncoder

    if not (Path(encoder_dir) / ENCODER_FILE).is_file():
        raise DataError(
            f"no {ENCODER_FILE} in this encoder directory (run `wangge models fetch-e5`, or "
            "`wangge models export-encoder DIR` for another Hugging Face encoder)",
            path=encoder_dir,
        )
    return SentenceEncoder(encoder_dir, max_length=DEDUP_MAX_TOKENS)
