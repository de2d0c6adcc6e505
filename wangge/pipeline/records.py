"""What flows through the triage pipeline: a :class:`Message` in, a :class:`TriageResult` out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wangge.models.classifier import Prediction
from wangge.models.dedup import DedupMessage, MessageFeatures
from wangge.models.router import Route
from wangge.nlp.fields import message_text, normalized
from wangge.pipeline.reasons import ReviewReason


@dataclass(frozen=True, slots=True)
class Message:
    """One resident's message, its text fields normalised once (:func:`~wangge.nlp.fields.
    normalized`): every component reads them as they are here. Build it with :meth:`of`.

    ``time`` and ``reporter`` serve deduplication; ``address``, ``latitude``/``longitude`` and
    ``grid_id`` (the reporter's registered grid) serve routing.
    """

    title: str = ""
    content: str = ""
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    grid_id: str | None = None
    id: str | None = None
    time: datetime | None = None
    reporter: str | None = None

    @classmethod
    def of(cls, *, title: str | None = None, content: str | None = None, **fields: Any) -> Message:
        """A message from raw fields: the text fields normalised, a blank grid left out."""
        return cls.of_normalized(normalized(title), normalized(content), **fields)

    @classmethod
    def of_normalized(
        cls, title: str, content: str, *, address: str | None = None,
        grid_id: str | None = None, **fields: Any,
    ) -> Message:  # fmt: skip
        """:meth:`of` for a title and content normalised already (as
        :func:`~wangge.batch.files.load_messages` reads them): normalising is idempotent, but
        it is the dearest step of reading a file."""
        return cls(
            title=title,
            content=content,
            address=normalized(address),
            grid_id=(grid_id or "").strip() or None,
            **fields,
        )

    @property
    def text(self) -> str:
        """What the category models read: the title and body, one line each."""
        return message_text((self.title, self.content))

    def routing_fields(self) -> dict[str, Any]:
        """The fields the router reads (:data:`~wangge.models.router.ROUTING_FIELDS`)."""
        return {
            "title": self.title or None,
            "content": self.content,
            "address": self.address or None,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "grid_id": self.grid_id,
        }


@dataclass(frozen=True, slots=True)
class TriageResult:
    """What the pipeline decided of one message.

    ``prediction`` is ``None`` without a classifier or text; ``route`` ``None`` without a
    router; ``dedup`` and ``features`` (what the duplicate detector compares) ``None`` without
    a detector or text. Assigning the message to a case happens after, where it is serialised
    (:meth:`~wangge.models.dedup.DuplicateDetector.add_many`, the service's ingest).
    """

    message: Message
    prediction: Prediction | None
    route: Route | None
    reasons: tuple[ReviewReason, ...]
    dedup: DedupMessage | None = None
    features: MessageFeatures | None = None

    @property
    def needs_review(self) -> bool:
        return bool(self.reasons)

    def category_columns(self, top_k: int = 3) -> dict[str, Any]:
        """The category, its probability, the top ``top_k`` and the evidence words."""
        p = self.prediction
        return {
            "category": p.category if p else "",
            "probability": p.confidence if p else 0.0,
            "top_k": [{"category": c, "probability": s} for c, s in p.top[:top_k]] if p else [],
            "evidence": p.evidence if p else [],
        }
