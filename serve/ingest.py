"""Ingesting messages: classify, route, deduplicate, store — what ``POST /v1/messages`` does.

One :class:`Ingestor` per app, built by its lifespan, holds the store and the duplicate detector
rebuilt from the database (so a restart keeps every case). Ingestion is serialised by a lock:
each message is decided against everything committed before it, and it is committed (message and
case) before it is indexed and answered. A message whose ``id`` was ingested already is not
stored again: the stored result comes back with ``replayed: true``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from wangge.models.dedup import DuplicateDetector
from wangge.models.router import MessageRouter
from wangge.pipeline.triage import load_encoder
from wangge.serve.config import Settings
from wangge.serve.review import enqueue, priority, review_reasons
from wangge.serve.schemas import IngestMessage, IngestResult
from wangge.serve.service import LoadedModel, triage_messages
from wangge.serve.storage import (
    CaseRow,
    MessageRow,
    Store,
    dedup_message,
    load_detector,
    stored_features,
)

logger = logging.getLogger(__name__)


class Ingestor:
    """The store and the duplicate detector of one service."""

    def __init__(
        self, store: Store, detector: DuplicateDetector, snapshot: Path | None = None
    ) -> None:
        self.store = store
        self.detector = detector
        self.snapshot = snapshot
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, store: Store) -> Ingestor:
        """``store`` with its duplicate detector rebuilt from what is stored."""
        encoder = None
        encoder_dir = settings.encoder_dir
        if encoder_dir is not None and Path(encoder_dir).is_dir():
            encoder = load_encoder(encoder_dir)
        else:
            logger.warning(
                "no sentence encoder at %s: duplicates by lexical similarity", encoder_dir
            )
        detector = DuplicateDetector(
            encoder, threshold=settings.dedup_threshold, window_days=settings.dedup_window_days
        )
        snapshot = settings.ann_snapshot_path()
        count, restored = load_detector(store, detector, snapshot)
        logger.info(
            "duplicate index rebuilt from %d stored messages (%d with the saved HNSW graph)",
            count,
            restored,
        )
        return cls(store, detector, snapshot)

    def close(self) -> None:
        """Save the HNSW graph, so that the next start need not rebuild it."""
        if self.snapshot is not None:
            with self._lock:
                self.detector.save_ann(self.snapshot)

    def move(self, message_id: str, case_id: str) -> None:
        """Record a reviewer's correction in the index: later repeats of the message join
        ``case_id``."""
        with self._lock:
            self.detector.move(message_id, case_id)

    def ingest(
        self,
        loaded: LoadedModel,
        router: MessageRouter | None,
        messages: Sequence[IngestMessage],
        *,
        top_k: int,
    ) -> list[IngestResult]:
        with self._lock:
            predictions = triage_messages(loaded, messages, top_k=top_k, router=router)
            return [
                self._ingest_one(message, prediction.model_dump())
                for message, prediction in zip(messages, predictions, strict=True)
            ]

    def _ingest_one(self, message: IngestMessage, prediction: dict) -> IngestResult:
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
                created_at=(message.created_at or datetime.now()).replace(tzinfo=None),
                reporter=message.reporter,
                likes=message.likes,
                dislikes=message.dislikes,
                result=_jsonable(prediction),
            )
            session.add(row)
            session.flush()  # the row's id names the message (and its case, if it opens one)
            dedup = dedup_message(row)
            features = self.detector.features([dedup])[0]
            decision = self.detector.query(dedup, features)
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
                case = session.get(CaseRow, int(decision.case_id))
                assert case is not None  # the detector only knows committed cases
                case.reports += 1
                reports = case.reports
                case.last_at = max(case.last_at, row.created_at)
                case.first_at = min(case.first_at, row.created_at)
            row.case_id = int(decision.case_id)
            row.duplicate_of = int(decision.duplicate_of) if decision.duplicate_of else None
            row.dup_score = decision.score
            row.result = row.result | {"dup_evidence": decision.evidence}
            for name, value in stored_features(features).items():
                setattr(row, name, value)
            reasons = review_reasons(prediction, decision, self.detector.threshold)
            if reasons:  # in the same transaction: no doubtful message escapes the queue
                enqueue(session, row, reasons, priority(prediction, reports, reasons))
        # Committed: only now does the index learn of it, so a failed commit leaves no trace.
        self.detector.index([dedup], [decision.case_id], [features])
        return _result(row, replayed=False)


def _jsonable(prediction: dict) -> dict:
    """The prediction as stored: JSON types only, the caller's metadata left out."""
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder({k: v for k, v in prediction.items() if k != "metadata"})


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
