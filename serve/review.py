"""The review queue: stored messages whose predictions a person should check.

A message enters the queue when it is ingested with any reason to doubt it: the reasons of its
prediction (``category``: low confidence; a place a person can settle: ``ambiguous_place``,
``conflicting_places``, ``out_of_area``, ``location``) and ``duplicate`` when it joined a case
with a score close to the threshold; one that names no community (``unlocated``) goes on a
待定位 list instead (:mod:`wangge.serve.locating`). A case has one open task at a time
(:func:`queue_message`). The queue is ordered by :func:`priority`, the expected value of a
look (the oldest first among equals).

A reviewer claims a task, then accepts the predictions, corrects them or marks the message
invalid (spam, a test). Every task carries a version that each change bumps: an action sent
with an older version fails with :class:`ReviewConflict` instead of overwriting a colleague's
work, and a task claimed by someone else cannot be decided (a claim lapses after
``CLAIM_MINUTES``). The version is checked in the UPDATE itself (``WHERE version = ...``), so
of two concurrent actions on one task exactly one wins, on SQLite as on PostgreSQL. Each action
is written to the audit log with who, when, before and after.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from wangge.errors import WanggeError
from wangge.models.dedup import Decision
from wangge.models.router import MessageRouter
from wangge.models.taxonomy import load_taxonomy
from wangge.nlp.locate import AMBIGUOUS_NOTE
from wangge.nlp.pii import mask_pii
from wangge.pipeline import ReviewReason
from wangge.serve.dashboard import hot_window
from wangge.serve.locating import queued_shares, settle
from wangge.serve.storage import (
    AuditRow,
    CaseRow,
    MessageRow,
    ReviewTaskRow,
    hot_cases,
    recount_reports,
)

BORDERLINE_DUPLICATE = 0.1  # a match scoring less than this above the threshold is doubtful
CLAIM_MINUTES = 30
CORRECTABLE = ("category", "department", "grid_id", "duplicate_of")
DECISIONS = ("accept", "correct", "invalid")
HOT_ISSUE_DAYS = 7
AGREEMENT_DAYS = 30
SYSTEM = "wangge"  # the actor of what the service itself records

Action = Literal["accept", "correct", "invalid"]
# the words of the review page, for the errors a reviewer reads (the API answers in Chinese)
STATUS_NAMES = {"open": "待复核", "claimed": "认领", "done": "完成", "invalid": "标为无效"}
ACTION_NAMES = {"accept": "确认", "correct": "更正", "invalid": "无效"}
FIELD_NAMES = {
    "category": "分类",
    "department": "部门",
    "grid_id": "网格",
    "duplicate_of": "重复于",
}


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


@dataclass(frozen=True)
class Choices:
    """What a correction may set: categories and, when the service routes, its district's
    departments and grids (``grids`` maps a grid id to the place columns a
    message of that grid has: street and community codes and names)."""

    categories: tuple[str, ...]
    departments: tuple[str, ...] = ()
    grids: Mapping[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, labels: Sequence[str], router: MessageRouter | None) -> Choices:
        """The model's labels first, then the taxonomy's other first-level categories (a
        reviewer may name one the model does not know yet: the next model will)."""
        others = sorted({node.level1 for node in load_taxonomy()} - set(labels))
        categories = (*labels, *others)
        if router is None:
            return cls(categories)
        registry, grids = router.registry, {}
        for grid in sorted(registry.of_level("grid"), key=lambda unit: unit.id):
            street = registry.ancestor(grid.id, "street")
            community = registry.ancestor(grid.id, "community")
            grids[grid.id] = {
                "grid_name": grid.name,
                "street_code": street.id if street else "",
                "street_name": street.name if street else "",
                "community_code": community.id if community else "",
                "community_name": community.name if community else "",
            }  # fmt: skip
        return cls(categories, tuple(sorted(router.table.departments)), grids)

    def streets(self) -> list[dict[str, str]]:
        """The streets that have grids, by code: for the queue's street filter."""
        streets = {
            g["street_code"]: g["street_name"] for g in self.grids.values() if g["street_code"]
        }
        return [{"code": code, "name": name} for code, name in sorted(streets.items())]

    def resolve(self, corrections: Mapping[str, Any]) -> dict[str, Any]:
        """The result fields a correction sets, checked: an unknown category, department or
        grid is an error (a typo would otherwise become a training label). A corrected grid
        also moves the message's street and community."""
        fields = dict(corrections)
        checks = (("category", self.categories), ("department", self.departments),
                  ("grid_id", self.grids))  # fmt: skip
        for name, allowed in checks:
            if name in fields and allowed and fields[name] not in allowed:
                raise ReviewError(f"没有这个{FIELD_NAMES[name]}：{fields[name]}")
        if "grid_id" in fields and fields["grid_id"] in self.grids:
            place = self.grids[fields["grid_id"]]
            fields |= {key: value for key, value in place.items() if key != "grid_name"}
        return fields


def review_reasons(prediction: dict[str, Any], decision: Decision, threshold: float) -> list[str]:
    """Why a person should check this message: the pipeline's reason codes
    (:class:`~wangge.pipeline.ReviewReason`), plus ``duplicate`` for a borderline match."""
    reasons = list(prediction.get("review_reasons") or [])
    joined = decision.duplicate_of is not None
    if joined and decision.score < min(1.0, threshold + BORDERLINE_DUPLICATE):
        reasons.append(ReviewReason.DUPLICATE.value)
    return reasons


#: How likely a look changes something, per place doubt without a score of its own.
PLACE_DOUBT = {"conflicting_places": 0.5, "out_of_area": 0.5}
LINKABLE = frozenset(reason.value for reason in ReviewReason) - {"duplicate", "empty"}


def uncertainty(
    prediction: dict[str, Any], reasons: Sequence[str], dup_margin: float | None = None
) -> float:
    """How likely a person's look finds something wrong, 0 to 1: per reason, ``category``
    1 − the category's probability, ``location`` 1 − the location's confidence,
    ``ambiguous_place`` 1 − 1/(the candidates), a conflict or a possibly out-of-area place
    0.5, a borderline ``duplicate`` 0.5 at the threshold down to 0.05 at
    :data:`BORDERLINE_DUPLICATE` above it (``dup_margin``: score − threshold), ``empty`` 1;
    combined as the chance that at least one is wrong."""
    doubts = []
    for reason in reasons:
        if reason == "category":
            doubts.append(1.0 - float(prediction.get("probability") or 0.0))
        elif reason == "location":
            doubts.append(1.0 - float(prediction.get("route_confidence") or 0.0))
        elif reason == "ambiguous_place":
            doubts.append(1.0 - 1.0 / _candidates(prediction.get("route_evidence") or []))
        elif reason == "duplicate":
            margin = 0.0 if dup_margin is None else max(0.0, dup_margin)
            doubts.append(max(0.05, 0.5 * (1.0 - margin / BORDERLINE_DUPLICATE)))
        elif reason == "empty":
            doubts.append(1.0)
        else:
            doubts.append(PLACE_DOUBT.get(reason, 0.5))
    return 1.0 - math.prod(1.0 - min(1.0, max(0.0, doubt)) for doubt in doubts)


def _candidates(evidence: Sequence[str]) -> int:
    """How many communities an ambiguous name may be (``同名社区/村: A(x)、B(y)，…``)."""
    notes = [note for note in evidence if note.startswith(AMBIGUOUS_NOTE)]
    return max([note.count("、") + 1 for note in notes] or [2])


def impact(reports: int, reporters: int | None = None) -> float:
    """What the case weighs: 1 + ln(its reporters) + ½·ln(its reports per reporter), so that
    ten people reporting a problem count more than one person reporting it ten times."""
    reports = max(1, reports)
    reporters = min(reports, max(1, reporters if reporters is not None else reports))
    return 1.0 + math.log(reporters) + 0.5 * math.log(reports / reporters)


def priority(
    prediction: dict[str, Any],
    reasons: Sequence[str],
    *,
    reports: int = 1,
    reporters: int | None = None,
    dup_margin: float | None = None,
) -> float:
    """The expected value of a person's look: :func:`uncertainty` × :func:`impact` of the
    message's case (the oldest first among equals)."""
    return round(uncertainty(prediction, reasons, dup_margin) * impact(reports, reporters), 4)


def enqueue(
    session: Session, message: MessageRow, reasons: Sequence[str], task_priority: float
) -> ReviewTaskRow:
    now = datetime.now()
    result = message.result or {}
    task = ReviewTaskRow(
        message_id=message.id, reasons=list(reasons), priority=task_priority, status="open",
        version=1, created_at=now, category=result.get("category") or None,
        street_code=result.get("street_code") or None,
    )  # fmt: skip
    session.add(task)
    session.flush()
    _audit(session, SYSTEM, "enqueue", task, {}, {"reasons": list(reasons)})
    return task


def queue_message(
    session: Session, message: MessageRow, reasons: Sequence[str], task_priority: float
) -> ReviewTaskRow:
    """One open task per case: a doubtful message whose case has an open (or claimed) task
    joins it, adding its reasons and raising the task's priority to its own if higher, and
    is recorded as linked (audit action ``link``; its result names the task); otherwise it
    gets a task of its own. A borderline duplicate or an empty message always does: whether
    it belongs to the case is a question about it alone. A link changes no version: the
    reviewer's decision stays valid, the linked message is evidence for it."""
    task = None
    if message.case_id is not None and set(reasons) <= LINKABLE:
        task = session.scalar(
            select(ReviewTaskRow)
            .join(MessageRow, MessageRow.id == ReviewTaskRow.message_id)
            .where(MessageRow.case_id == message.case_id, MessageRow.id != message.id)
            .where(ReviewTaskRow.status.in_(("open", "claimed")))
            .order_by(ReviewTaskRow.id)
            .limit(1)
            .with_for_update()
        )
    if task is None:
        return enqueue(session, message, reasons, task_priority)
    before = {"reasons": list(task.reasons), "priority": task.priority}
    task.reasons = list(dict.fromkeys([*task.reasons, *reasons]))
    task.priority = max(task.priority, task_priority)
    message.result = (message.result or {}) | {"review_task": task.id}
    after = {"reasons": task.reasons, "priority": task.priority, "linked": message.id}
    session.add(AuditRow(at=datetime.now(), actor=SYSTEM, action="link", task_id=task.id,
                         message_id=message.id, before=before, after=after))  # fmt: skip
    return task


def joined_messages(session: Session, task_ids: Sequence[int]) -> dict[int, list[MessageRow]]:
    """The messages that joined each of these tasks instead of getting their own (audit action
    ``link``, written by :func:`queue_message`), oldest first: one query for a page of tasks."""
    rows = session.execute(
        select(AuditRow.task_id, MessageRow)
        .join(MessageRow, MessageRow.id == AuditRow.message_id)
        .where(AuditRow.action == "link", AuditRow.task_id.in_(list(task_ids)))
        .order_by(AuditRow.id)
    )
    joined: dict[int, list[MessageRow]] = {}
    for task_id, message in rows:
        joined.setdefault(task_id, []).append(message)
    return joined


def list_tasks(
    session: Session, where: QueueFilter | None = None, limit: int = 50
) -> list[tuple[ReviewTaskRow, MessageRow]]:
    """Tasks in queue order with their messages, filtered by status, reason, street and
    category."""
    where = where or QueueFilter()
    query = (
        select(ReviewTaskRow, MessageRow)
        .join(MessageRow, MessageRow.id == ReviewTaskRow.message_id)
        .where(ReviewTaskRow.status == where.status)
        .order_by(ReviewTaskRow.priority.desc(), ReviewTaskRow.created_at, ReviewTaskRow.id)
        .limit(limit)
    )
    if where.reason is not None:  # reasons are a JSON list of plain words: match '"word"'
        query = query.where(cast(ReviewTaskRow.reasons, String).like(f'%"{where.reason}"%'))
    if where.street_code is not None:
        query = query.where(ReviewTaskRow.street_code == where.street_code)
    if where.category is not None:
        query = query.where(ReviewTaskRow.category == where.category)
    return [(task, message) for task, message in session.execute(query)]


def claim(session: Session, task_id: int, reviewer: str, version: int) -> ReviewTaskRow:
    """Take a task for ``reviewer``; fails if it changed or someone else holds it."""
    task = _current(session, task_id, version)
    now = datetime.now()
    if task.status not in ("open", "claimed"):
        raise ReviewConflict(
            f"任务 {task_id} 已{STATUS_NAMES.get(task.status, task.status)}，不能再认领"
        )
    if task.claimed_by not in (None, reviewer) and not _lapsed(task, now):
        raise ReviewConflict(f"任务 {task_id} 已被 {task.claimed_by} 认领")
    before = {"status": task.status, "claimed_by": task.claimed_by}
    task.status, task.claimed_by, task.claimed_at = "claimed", reviewer, now
    task.version += 1
    _audit(session, reviewer, "claim", task, before, {"status": "claimed", "claimed_by": reviewer})
    _save(session, task)
    return task


def decide(
    session: Session,
    task_id: int,
    reviewer: str,
    version: int,
    action: Action,
    corrections: dict[str, Any] | None = None,
    choices: Choices | None = None,
) -> ReviewTaskRow:
    """Accept, correct (``corrections``: some of :data:`CORRECTABLE`, checked against
    ``choices``) or invalidate the message of a task the reviewer holds; the message's stored
    result records the review. A corrected ``duplicate_of`` (a message id, or ``None`` for
    "not a repeat") moves the message to that message's case, or to a case of its own."""
    task = _current(session, task_id, version)
    if task.status != "claimed" or task.claimed_by != reviewer:
        raise ReviewConflict(f"请先认领任务 {task_id}，再作决定")
    corrections = dict(corrections or {})
    unknown = sorted(set(corrections) - set(CORRECTABLE))
    if unknown or (action == "correct") != bool(corrections):
        raise ReviewError(
            "更正须修改分类、部门、网格或重复于中的至少一项（只有更正可以修改）；"
            f"收到的是{ACTION_NAMES.get(action, action)}，修改了"
            f"{'、'.join(FIELD_NAMES.get(name, name) for name in sorted(corrections)) or '无'}"
        )
    message = session.get(MessageRow, task.message_id)
    assert message is not None  # a foreign key
    result = dict(message.result or {})
    fields = (choices or Choices(())).resolve(corrections)
    before = {name: result.get(name) for name in fields}
    if "duplicate_of" in fields:
        before["duplicate_of"] = message.duplicate_of
        _relink(session, message, fields["duplicate_of"])
    now = datetime.now()
    result.update(fields)
    result["review"] = {"by": reviewer, "at": now.isoformat(timespec="seconds"), "action": action,
                        "corrected": sorted(corrections)}  # fmt: skip
    message.result = result
    if "grid_id" in fields:
        settle(session, message, reviewer)  # located: off the 待定位 list
    task.category, task.street_code = result.get("category"), result.get("street_code") or None
    task.status = "invalid" if action == "invalid" else "done"
    task.resolved_at = now
    task.version += 1
    _audit(session, reviewer, action, task, before, fields | {"status": task.status})
    _save(session, task)
    return task


def _relink(session: Session, message: MessageRow, duplicate_of: Any) -> None:
    """Move ``message`` to the case of message ``duplicate_of`` (``None``: a case of its own);
    both cases' reports are counted again from their messages (:func:`recount_reports`), so
    concurrent corrections cannot leave a count that no longer matches."""
    if duplicate_of is None:
        target_case = message.id
        if session.get(CaseRow, target_case) is None:
            title = message.title or message.content[:40]
            category = (message.result or {}).get("category")
            at = message.created_at
            session.add(CaseRow(id=message.id, title=title, first_at=at, last_at=at, reports=0,
                                category=category))  # fmt: skip
            session.flush()
    else:
        if not isinstance(duplicate_of, int) or isinstance(duplicate_of, bool):
            raise ReviewError(f"重复于须为留言编号或空，而不是 {duplicate_of!r}")
        original = session.get(MessageRow, duplicate_of)
        if original is None or original.id == message.id or original.case_id is None:
            raise ReviewError(f"重复于 {duplicate_of}：没有编号为此的其他留言")
        target_case = original.case_id
    if target_case == message.case_id:
        message.duplicate_of = duplicate_of
        return
    old_case = message.case_id
    message.case_id, message.duplicate_of = target_case, duplicate_of
    recount_reports(session, [case for case in (old_case, target_case) if case is not None])
    new = session.get(CaseRow, target_case)
    assert new is not None
    new.last_at = max(new.last_at, message.created_at)


def _current(session: Session, task_id: int, version: int) -> ReviewTaskRow:
    task = session.get(ReviewTaskRow, task_id, with_for_update=True)
    if task is None:
        raise ReviewNotFound(f"没有复核任务 {task_id}")
    if task.version != version:
        raise ReviewConflict(
            f"任务 {task_id} 在您打开后已有改动（版本 {task.version}，不是 {version}），"
            "请刷新后重试"
        )
    return task


def _save(session: Session, task: ReviewTaskRow) -> None:
    """Write the task's change now: its UPDATE holds the version read, so if a concurrent
    action changed the task in between, it matches no row and this one fails (the failed
    flush rolls the transaction back, so nothing of the task may be read after it)."""
    task_id = task.id
    try:
        session.flush()
    except StaleDataError as error:
        raise ReviewConflict(f"任务 {task_id} 同时被他人修改，请刷新后重试") from error


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


def queue_stats(
    session: Session, now: datetime | None = None, hot_days: int = HOT_ISSUE_DAYS
) -> dict[str, Any]:
    """The dashboard: tasks by status; decisions today and in the last hour; per reviewer
    today, accepted / corrected / invalid; the agreement rate (share of the accept/correct
    decisions of the last :data:`AGREEMENT_DAYS` days that accepted the models' predictions,
    ``None`` without any); and the hot issues: the cases most reported in the ``hot_days``
    days up to the newest message (:func:`wangge.serve.dashboard.hot_window`: a window ending
    "now" is empty for data not from this week). The decisions are read in one grouped query
    over a time range of the audit log (indexed by time), not over the whole log."""
    now = now or datetime.now()
    counts: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(ReviewTaskRow.status, func.count()).group_by(ReviewTaskRow.status)
        )
    }
    since, until = hot_window(session, hot_days, now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hour_ago = now - timedelta(hours=1)
    is_today, in_last_hour = AuditRow.at >= today, AuditRow.at >= hour_ago
    decisions = (
        select(AuditRow.actor, AuditRow.action, is_today, in_last_hour, func.count())
        .where(AuditRow.at >= now - timedelta(days=AGREEMENT_DAYS))
        .where(AuditRow.action.in_(DECISIONS))
        .group_by(AuditRow.actor, AuditRow.action, is_today, in_last_hour)
    )
    recent: dict[str, int] = dict.fromkeys(DECISIONS, 0)
    reviewers: dict[str, dict[str, Any]] = {}
    last_hour = 0
    for actor, action, on_day, in_hour, count in session.execute(decisions):
        recent[action] += count
        last_hour += count if in_hour else 0
        if on_day:
            row = reviewers.setdefault(actor, {"reviewer": actor, **dict.fromkeys(DECISIONS, 0)})
            row[action] += count
    decided = recent["accept"] + recent["correct"]
    return {
        **{status: counts.get(status, 0) for status in ("open", "claimed", "done", "invalid")},
        "done_today": sum(sum(r[a] for a in DECISIONS) for r in reviewers.values()),
        "done_last_hour": last_hour,
        "agreement": round(recent["accept"] / decided, 3) if decided else None,
        "reviewers": sorted(reviewers.values(), key=lambda r: -sum(r[a] for a in DECISIONS)),
        "hot_issues": hot_issues(session, since, until),
        "hot_days": hot_days,
        "hot_until": until.isoformat(timespec="minutes"),
        "queued": queued_shares(session),  # shares of the ingested messages, per reason
    }


def hot_issues(
    session: Session, since: datetime, until: datetime, limit: int = 5
) -> list[dict[str, Any]]:
    """The ``limit`` hottest cases reported more than once between ``since`` and ``until``:
    ``GET /v1/hot-issues`` of the same window (:func:`~wangge.serve.storage.hot_cases`, ranked
    by heat) without the cases of a single report."""
    repeated = [case for case in hot_cases(session, since, until) if case["reports"] > 1]
    return [{key: case[key] for key in ("case_id", "title", "category", "reports", "reporters",
                                        "heat")} for case in repeated[:limit]]  # fmt: skip
