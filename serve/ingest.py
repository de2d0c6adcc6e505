"""Ingesting messages: classify, route, deduplicate, store — what ``POST /v1/messages`` does.

One :class:`Ingestor` per app, built by its lifespan, holds the store and the duplicate
detector rebuilt from the database (so a restart keeps every case).

The models run outside any lock, in parallel across requests: the triage pipeline (category,
place, departments) and what the duplicate detector compares (embedding, MinHash, sketch, and
the places and organisations LAC tags, which a pair may need).
Only what must be serial holds the ingest lock, one message at a time and briefly: the check
for a replayed ``id``, the decision against the duplicate index, the case assignment, the
commit and the indexing. So each message is decided against everything committed before it,
and it is committed (message and case) before it is indexed and answered. A message that fits
two cases merges them (:mod:`wangge.models.cases`): the merge is committed with the message,
recorded as automatic (:func:`~wangge.serve.cases.auto_merge`, undone by a reviewer's unmerge),
and then made in the index. A message whose
``id`` was ingested already is not stored again: the stored result comes back with
``replayed: true``. Each hold of the lock is timed (:attr:`Ingestor.lock_holds`); their
percentiles are logged when the ingestor closes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.encoders import jsonable_encoder
from sqlalchemy import select
from sqlalchemy.orm import Session

from wangge.home import has_encoder
from wangge.models.dedup import (
    SHIPPED_WEIGHTS,
    Decision,
    DedupMessage,
    DedupWeights,
    DuplicateDetector,
    MessageFeatures,
)
from wangge.models.router import MessageRouter
from wangge.pipeline import ReviewReason, TriageResult
from wangge.pipeline.triage import load_encoder
from wangge.serve.cases import auto_merge, kept_apart
from wangge.serve.config import Settings
from wangge.serve.locating import add_unlocated
from wangge.serve.review import priority, queue_message, review_reasons
from wangge.serve.schemas import IngestMessage, IngestResult, local_time
from wangge.serve.service import (
    LoadedModel,
    message_result,
    pipeline_message,
    triage_in_chunks,
)
from wangge.serve.storage import (
    CaseRow,
    MessageRow,
    Store,
    case_reporters,
    load_detector,
    recount_reports,
    stored_features,
)

logger = logging.getLogger(__name__)

UNLOCATED, EMPTY = ReviewReason.UNLOCATED.value, ReviewReason.EMPTY.value

CLOSE_LOCK_TIMEOUT = 1.0  # seconds the shutdown waits for the ingest lock to save the index
LOCK_HOLDS_KEPT = 100_000  # the most recent holds of the ingest lock, for their percentiles


class Ingestor:
    """The store and the duplicate detector of one service."""

    def __init__(
        self,
        store: Store,
        detector: DuplicateDetector,
        snapshot: Path | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.detector = detector
        self.snapshot = snapshot
        #: Set when the server stops: a batch still being scored is refused (ShuttingDown).
        self.stopping = stopping if stopping is not None else threading.Event()
        self._lock = threading.Lock()
        #: How long each recent hold of the ingest lock lasted, in seconds.
        self.lock_holds: deque[float] = deque(maxlen=LOCK_HOLDS_KEPT)

    @classmethod
    def open(
        cls,
        settings: Settings,
        store: Store,
        weights: DedupWeights | None = None,
        stopping: threading.Event | None = None,
    ) -> Ingestor:
        """``store`` with its duplicate detector rebuilt from what is stored, comparing pairs
        with ``weights`` (those of the served model's directory; default: the shipped ones)
        unless ``settings.dedup_threshold`` sets the threshold."""
        encoder = None
        encoder_dir = settings.encoder_dir
        if has_encoder(encoder_dir):
            encoder = load_encoder(encoder_dir)
        else:
            logger.warning(
                "no sentence encoder at %s: duplicates by lexical similarity", encoder_dir
            )
        mode = (weights or SHIPPED_WEIGHTS).mode(lexical=encoder is None)
        threshold = settings.dedup_threshold
        detector = DuplicateDetector(
            encoder,
            threshold=mode.threshold if threshold is None else threshold,
            window_days=settings.dedup_window_days,
            weights=mode.weights,
        )
        snapshot = settings.ann_snapshot_path()
        count, restored = load_detector(store, detector, snapshot)
        logger.info(
            "duplicate index rebuilt from %d stored messages (%d with the saved HNSW graph)",
            count,
            restored,
        )
        return cls(store, detector, snapshot, stopping)

    def use_weights(self, weights: DedupWeights | None, threshold: float | None) -> None:
        """Compare pairs with ``weights`` from now on (a promoted model's; None: the shipped
        ones), with their threshold unless ``threshold`` (``WANGGE_DEDUP_THRESHOLD``) is set.
        The index is unchanged: weights only score the pairs it proposes."""
        mode = (weights or SHIPPED_WEIGHTS).mode(lexical=self.detector.encoder is None)
        with self._lock:
            self.detector.weights = mode.weights
            self.detector.threshold = mode.threshold if threshold is None else threshold

    def close(self) -> None:
        """Log how long the ingest lock was held; save the HNSW graph, so that the next start
        need not rebuild it."""
        if self.lock_holds:
            p50, p99 = np.percentile(np.array(self.lock_holds), [50, 99]) * 1000
            logger.info(
                "ingest lock held %d times: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                len(self.lock_holds), p50, p99, max(self.lock_holds) * 1000,
            )  # fmt: skip
        if self.snapshot is None:
            return
        # A request cancelled by the shutdown may still hold the lock (a commit waiting for a
        # locked database): then the graph is not saved, and the next start adds to the one
        # saved before (or rebuilds it) the messages stored since.
        if not self._lock.acquire(timeout=CLOSE_LOCK_TIMEOUT):
            logger.warning("ingest still busy at shutdown: the HNSW graph was not saved")
            return
        try:
            self.detector.save_ann(self.snapshot)
        finally:
            self._lock.release()

    @contextmanager
    def _serial(self) -> Iterator[None]:
        """The ingest lock, its hold timed."""
        with self._lock:
            started = time.perf_counter()
            try:
                yield
            finally:
                self.lock_holds.append(time.perf_counter() - started)

    def move(self, message_id: str, case_id: str) -> None:
        """Record a reviewer's correction in the index: later repeats of the message join
        ``case_id``."""
        with self._serial():
            self.detector.move(message_id, case_id)

    def reassign(self, change: Callable[[], list[tuple[int, int]]]) -> list[tuple[int, int]]:
        """Run ``change`` (a reviewer's committed change of cases, returning the messages it
        moved with their new cases) under the ingest lock, then move them in the index: no
        message is decided between the commit and the index update."""
        with self._serial():
            moved = change()
            for message_id, case_id in moved:
                self.detector.move(str(message_id), str(case_id))
        return moved

    def other_cases(self, message_id: int, limit: int = 3) -> list[tuple[str, str, float]]:
        """:meth:`DuplicateDetector.other_cases`, read under the ingest lock."""
        with self._serial():
            return self.detector.other_cases(str(message_id), limit)

    def ingest(
        self,
        loaded: LoadedModel,
        router: MessageRouter | None,
        messages: Sequence[IngestMessage],
        *,
        top_k: int,
    ) -> list[IngestResult]:
        """Triage, deduplicate and store ``messages``; results follow the input order."""
        results: dict[int, IngestResult] = self._replays(messages)
        fresh = [i for i in range(len(messages)) if i not in results]
        times = {i: local_time(messages[i].created_at or datetime.now()) for i in fresh}
        triage = loaded.triage(router, top_k=top_k, detector=self.detector)
        pending = [replace(pipeline_message(messages[i]), time=times[i]) for i in fresh]
        triaged = triage_in_chunks(triage, pending, self.stopping)  # all scored, then stored
        for i, result in zip(fresh, triaged, strict=True):
            prediction = _jsonable(message_result(messages[i], result).model_dump())
            dedup, features = self._dedup(result, messages[i].reporter, times[i])
            results[i] = self._commit(messages[i], prediction, dedup, features)
        return [results[i] for i in range(len(messages))]

    def _replays(self, messages: Sequence[IngestMessage]) -> dict[int, IngestResult]:
        """The stored results of messages whose ``id`` is stored already, by position: they
        need no model (:meth:`_commit` checks again, under the lock)."""
        ids = {m.id for m in messages if m.id is not None}
        if not ids:
            return {}
        with self.store.session() as session:
            rows = session.scalars(select(MessageRow).where(MessageRow.external_id.in_(ids)))
            stored = {row.external_id: _result(row, replayed=True) for row in rows}
        return {i: stored[m.id] for i, m in enumerate(messages) if m.id in stored}

    def _dedup(
        self, result: TriageResult, reporter: str | None, created: datetime
    ) -> tuple[DedupMessage, MessageFeatures]:
        """What the detector compares of a triaged message: the pipeline's, or for a message
        without text after normalisation (which the pipeline leaves out) its empty fields'."""
        if result.dedup is not None and result.features is not None:
            dedup, features = result.dedup, result.features
        else:
            message = result.message
            dedup = DedupMessage("", message.title, message.content, created, reporter)
            features = self.detector.features([dedup])[0]
        self.detector.tagged(features)  # LAC now, not under the lock if a pair needs it
        return dedup, features

    def _commit(
        self,
        message: IngestMessage,
        prediction: dict[str, Any],
        dedup: DedupMessage,
        features: MessageFeatures,
    ) -> IngestResult:
        """Decide the message's case against everything committed before it, commit it, then
        index it; or return the stored result of its ``id``."""
        with self._serial():
            with self.store.session() as session:
                if message.id is not None:
                    stored = session.scalar(
                        select(MessageRow).where(MessageRow.external_id == message.id)
                    )
                    if stored is not None:
                        return _result(stored, replayed=True)
                row = MessageRow(
                    external_id=message.id,
                    title=message.title or "",
                    content=message.content or "",
                    created_at=dedup.time,
                    reporter=message.reporter,
                    likes=message.likes,
                    dislikes=message.dislikes,
                    result=prediction,
                )
                session.add(row)
                session.flush()  # the row's id names the message (and its case, if it opens one)
                dedup = replace(dedup, id=str(row.id))
                decision = self._unless_kept_apart(session, self.detector.query(dedup, features))
                self._assign(session, row, decision, features)
            # Committed: only now does the index learn of it, so a failed commit leaves no trace.
            for younger in decision.merged:
                self.detector.merge(younger, decision.case_id)
            self.detector.index([dedup], [decision.case_id], [features])
        return _result(row, replayed=False)

    def _unless_kept_apart(self, session: Session, decision: Decision) -> Decision:
        """The decision without its automatic merges when a reviewer split or unmerged two of
        the cases: the message then joins the case of its closest match alone."""
        if not decision.merged or decision.duplicate_of is None:
            return decision
        if not kept_apart(session, map(int, (decision.case_id, *decision.merged))):
            return decision
        evidence = {k: v for k, v in decision.evidence.items() if k != "merged"}
        evidence["merge_refused"] = list(decision.merged)  # a reviewer kept them apart
        case_id = self.detector.case_of(decision.duplicate_of)
        return replace(decision, case_id=case_id, merged=(), evidence=evidence)

    def _assign(
        self, session: Session, row: MessageRow, decision: Decision, features: MessageFeatures
    ) -> None:
        """Open the message's case or add it to the one it repeats; queue it for review when
        in doubt (in the same transaction: no doubtful message escapes the queue)."""
        prediction = row.result
        row.case_id = int(decision.case_id)
        if decision.duplicate_of is None:
            session.add(
                CaseRow(
                    id=row.id,
                    title=row.title or row.content[:40],
                    first_at=row.created_at,
                    last_at=row.created_at,
                    reports=1,
                    category=prediction.get("category"),
                    street_code=prediction.get("street_code") or None,
                    community_code=prediction.get("community_code") or None,
                )
            )
            session.flush()
            reports = 1
        else:
            case = session.get(CaseRow, row.case_id)
            assert case is not None  # the detector only knows committed cases
            case.last_at = max(case.last_at, row.created_at)
            case.first_at = min(case.first_at, row.created_at)
            for younger in decision.merged:
                auto_merge(session, int(younger), row.case_id, row.id)
            # Counted, not incremented: a reviewer may move a message of this case meanwhile.
            reports = recount_reports(session, [row.case_id])[row.case_id]
        row.duplicate_of = int(decision.duplicate_of) if decision.duplicate_of else None
        row.dup_score = decision.score
        row.result = prediction | {"dup_evidence": decision.evidence}
        for name, value in stored_features(features).items():
            setattr(row, name, value)
        self._queue(session, row, decision, reports)

    def _queue(self, session: Session, row: MessageRow, decision: Decision, reports: int) -> None:
        """A message naming no community goes on the 待定位 list (not when it is empty:
        nothing to locate it by); any other doubt to the review queue, one task per case
        (:func:`~wangge.serve.review.queue_message`), ranked by the expected value of a look."""
        prediction = row.result
        reasons = review_reasons(prediction, decision, self.detector.threshold)
        if UNLOCATED in reasons and EMPTY not in reasons:
            add_unlocated(session, row)
        tasked = [reason for reason in reasons if reason != UNLOCATED]
        if not tasked:
            return
        reporters = case_reporters(session, row.case_id) if reports > 1 and row.case_id else 1
        margin = decision.score - self.detector.threshold
        task_priority = priority(prediction, tasked, reports=reports, reporters=reporters,
                                 dup_margin=margin)  # fmt: skip
        queue_message(session, row, tasked, task_priority)


def _jsonable(prediction: dict[str, Any]) -> dict[str, Any]:
    """The prediction as stored: JSON types only, the caller's metadata left out."""
    stored: dict[str, Any] = jsonable_encoder(
        {k: v for k, v in prediction.items() if k != "metadata"}
    )
    return stored


def _result(row: MessageRow, *, replayed: bool) -> IngestResult:
    result = dict(row.result)
    return IngestResult(
        **{k: v for k, v in result.items() if k in IngestResult.model_fields},
        message_id=str(row.id),
        case_id=str(row.case_id),
        duplicate_of=None if row.duplicate_of is None else str(row.duplicate_of),
        dup_score=row.dup_score,
        replayed=replayed,
        metadata=None,
    )
