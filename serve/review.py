"""The review queue: stored messages whose predictions a person should check.

A message enters the queue when it is ingested with any reason to doubt it: the reasons of its
prediction (``category``: low confidence; ``location``: an unresolved place) and ``duplicate``
when it joined a case with a score close to the threshold. The queue is ordered by
:func:`priority` (the most uncertain, most reported first; the oldest first among equals).

A reviewer claims a task, then accepts the predictions, corrects them or marks the message
invalid (spam, a test). Every task carries a version that each change bumps: an action sent
with an older version fails with :class:`ReviewConflict` instead of overwriting a colleague's
work, and a task claimed by someone else cannot be decided (a claim lapses after
``CLAIM_MINUTES``). Each action is written to the audit log with who, when, before and after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wangge.errors import WanggeError
from wangge.models.dedup import Decision
from wangge.serve.storage import AuditRow, MessageRow, ReviewTaskRow

BORDERLINE_DUPLICATE = 0.1  # a match scoring less than this above the threshold is doubtful
CLAIM_MINUTES = 30
CORRECTABLE = ("category", "department", "grid_id", "duplicate_of")
SYSTEM = "wangge"  # the actor of what the service itself records

Action = Literal["accept", "correct", "invalid"]


class ReviewError(WanggeError):
    """A review action that cannot be done as asked (unknown task, field or value)."""


class ReviewNotFound(ReviewError):
    """No such task."""


class ReviewConflict(ReviewError):
    """The task changed since the reviewer loaded it, or someone else holds it."""


@dataclass(frozen=True)
class QueueFilter:
    status: str = "open"
    reason: str | None = None
    street_code: str | None = None
    category: str | None = None


def review_reasons(prediction: dict[str, Any], decision: Decision, threshold: float) -> list[str]:
    """Why a person should check this message: ``category``, ``location``, ``duplicate``."""
    # A prediction's reasons begin with their kind: "category confidence 0.52 below 0.70".
    reasons = [reason.split(" ", 1)[0] for reason in prediction.get("review_reasons") or []]
    joined = decision.duplicate_of is not None
    if joined and decision.score < min(1.0, threshold + BORDERLINE_DUPLICATE):
        reasons.append("duplicate")
    return reasons


def priority(prediction: dict[str, Any], case_reports: int) -> float:
    """Uncertainty of the category (1 − its probability) plus ¼·ln(reports of the case): a
    doubtful message about a problem many people report comes first."""
    uncertainty = 1.0 - float(prediction.get("probability") or 0.0)
    return round(uncertainty + 0.25 * math.log(max(1, case_reports)), 4)


def enqueue(
    session: Session, message: MessageRow, reasons: Sequence[str], task_priority: float
) -> ReviewTaskRow:
    now = datetime.now()
    task = ReviewTaskRow(
        message_id=message.id, reasons=list(reasons), priority=task_priority, status="open",
        version=1, created_at=now,
    )  # fmt: skip
    session.add(task)
    session.flush()
    _audit(session, SYSTEM, "enqueue", task, {}, {"reasons": list(reasons)})
    return task


def list_tasks(
    session: Session, where: QueueFilter | None = None, limit: int = 50
) -> list[tuple[ReviewTaskRow, MessageRow]]:
    """Tasks in queue order with their messages, filtered by status, reason, street and
    category (the last three read from JSON, so they are checked here rather than in SQL)."""
    where = where or QueueFilter()
    rows = session.execute(
        select(ReviewTaskRow, MessageRow)
        .join(MessageRow, MessageRow.id == ReviewTaskRow.message_id)
        .where(ReviewTaskRow.status == where.status)
        .order_by(ReviewTaskRow.priority.desc(), ReviewTaskRow.created_at, ReviewTaskRow.id)
    )
    found = []
    for task, message in rows:
        result = message.result or {}
        if where.reason is not None and where.reason not in task.reasons:
            continue
        if where.street_code is not None and result.get("street_code") != where.street_code:
            continue
        if where.category is not None and result.get("category") != where.category:
            continue
        found.append((task, message))
        if len(found) == limit:
            break
    return found


def claim(session: Session, task_id: int, reviewer: str, version: int) -> ReviewTaskRow:
    """Take a task for ``reviewer``; fails if it changed or someone else holds it."""
    task = _current(session, task_id, version)
    now = datetime.now()
    if task.status not in ("open", "claimed"):
        raise ReviewConflict(f"task {task_id} is already {task.status}")
    if task.claimed_by not in (None, reviewer) and not _lapsed(task, now):
        raise ReviewConflict(f"task {task_id} is claimed by {task.claimed_by}")
    before = {"status": task.status, "claimed_by": task.claimed_by}
    task.status, task.claimed_by, task.claimed_at = "claimed", reviewer, now
    task.version += 1
    _audit(session, reviewer, "claim", task, before, {"status": "claimed", "claimed_by": reviewer})
    return task


def decide(
    session: Session,
    task_id: int,
    reviewer: str,
    version: int,
    action: Action,
    corrections: dict[str, Any] | None = None,
) -> ReviewTaskRow:
    """Accept, correct (``corrections``: some of :data:`CORRECTABLE`) or invalidate the
    message of a task the reviewer holds; the message's stored result records the review."""
    task = _current(session, task_id, version)
    if task.status != "claimed" or task.claimed_by != reviewer:
        raise ReviewConflict(f"claim task {task_id} before deciding it")
    corrections = dict(corrections or {})
    unknown = sorted(set(corrections) - set(CORRECTABLE))
    if unknown or (action == "correct") != bool(corrections):
        raise ReviewError(
            f"a correction changes some of {', '.join(CORRECTABLE)} (and only a correction "
            f"does); got {action} with {sorted(corrections) or 'nothing'}"
        )
    message = session.get(MessageRow, task.message_id)
    assert message is not None  # a foreign key
    result = dict(message.result or {})
    before = {field: result.get(field) for field in corrections}
    now = datetime.now()
    result.update(corrections)
    result["review"] = {"by": reviewer, "at": now.isoformat(timespec="seconds"), "action": action,
                        "corrected": sorted(corrections)}  # fmt: skip
    message.result = result
    task.status = "invalid" if action == "invalid" else "done"
    task.resolved_at = now
    task.version += 1
    _audit(session, reviewer, action, task, before, corrections | {"status": task.status})
    return task


def _current(session: Session, task_id: int, version: int) -> ReviewTaskRow:
    task = session.get(ReviewTaskRow, task_id, with_for_update=True)
    if task is None:
        raise ReviewNotFound(f"no review task {task_id}")
    if task.version != version:
        raise ReviewConflict(
            f"task {task_id} changed since you loaded it (version {task.version}, not {version}): "
            "reload it"
        )
    return task


def _lapsed(task: ReviewTaskRow, now: datetime) -> bool:
    return task.claimed_at is None or now - task.claimed_at > timedelta(minutes=CLAIM_MINUTES)


def _audit(
    session: Session,
    actor: str,
    action: str,
    task: ReviewTaskRow,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    session.add(AuditRow(at=datetime.now(), actor=actor, action=action, task_id=task.id,
                         message_id=task.message_id, before=before, after=after))  # fmt: skip


def reviewed_examples(session: Session) -> list[dict[str, Any]]:
    """The messages reviewers accepted or corrected, as training rows (留言主题, 留言详情,
    一级标签 = the category after review, department, grid_id), personal data masked;
    messages marked invalid are left out."""
    from wangge.nlp.pii import mask_pii

    messages = session.scalars(
        select(MessageRow)
        .join(ReviewTaskRow, MessageRow.id == ReviewTaskRow.message_id)
        .where(ReviewTaskRow.status == "done")
        .order_by(ReviewTaskRow.resolved_at, ReviewTaskRow.id)
    )
    examples = []
    for message in messages:
        result = message.result or {}
        review = result.get("review") or {}
        examples.append({
            "留言主题": mask_pii(message.title), "留言详情": mask_pii(message.content),
            "一级标签": result.get("category"), "department": result.get("department") or "",
            "grid_id": result.get("grid_id") or "", "review_action": review.get("action"),
            "reviewed_by": review.get("by"), "reviewed_at": review.get("at"),
            "message_id": message.id,
        })  # fmt: skip
    return examples


def queue_stats(session: Session) -> dict[str, Any]:
    """Tasks by status, decided today, and the agreement rate: the share of decisions that
    accepted the models' predictions rather than correcting them (``None`` before any)."""
    counts: dict[str, int] = dict(
        session.execute(select(ReviewTaskRow.status, func.count()).group_by(ReviewTaskRow.status))
        .tuples()
        .all()
    )
    today = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    done_today = session.scalar(
        select(func.count()).select_from(ReviewTaskRow).where(ReviewTaskRow.resolved_at >= today)
    )
    actions: dict[str, int] = dict(
        session.execute(
            select(AuditRow.action, func.count())
            .where(AuditRow.action.in_(("accept", "correct")))
            .group_by(AuditRow.action)
        )
        .tuples()
        .all()
    )
    decided = actions.get("accept", 0) + actions.get("correct", 0)
    return {
        **{status: counts.get(status, 0) for status in ("open", "claimed", "done", "invalid")},
        "done_today": done_today or 0,
        "agreement": round(actions.get("accept", 0) / decided, 3) if decided else None,
    }
