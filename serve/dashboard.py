"""The review dashboard's pictures: day-by-day series for ``GET /review/api/stats/series``.

Every window ends at the newest record of its kind (the newest message for messages, the
newest decision for decisions), not at "now": a district that loads last year's messages, or
a demo, still sees its data. Each series is one grouped query over an indexed time range.

:func:`series` returns a plain dict; a new series is a new function here and one more key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from wangge.serve.storage import AuditRow, MessageRow, ReviewTaskRow

WINDOWS = (7, 30, 90, 365)  # the page's choices, in days
DECISION_ACTIONS = ("accept", "correct", "invalid")
TOP_CATEGORIES = 6  # more categories are summed as 其他
TOP_STREETS = 10
OTHER = "其他"
UNPLACED = "未定位"


def newest_message_at(session: Session) -> datetime | None:
    return session.scalar(select(func.max(MessageRow.created_at)))


def hot_window(
    session: Session, days: int, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """``(since, until)``: the ``days`` days up to the newest message (``now`` without any)."""
    until = newest_message_at(session) or now or datetime.now()
    return until - timedelta(days=days), until


def _days(until: date, days: int) -> list[date]:
    return [until - timedelta(days=days - 1 - i) for i in range(days)]


def _day(value: Any) -> date:
    """A ``date()`` of SQL: a string on SQLite, a date on PostgreSQL."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _per_day(rows: Iterable[tuple[Any, ...]], axis: list[date]) -> dict[Any, list[int]]:
    """``(day, key, count)`` rows as one list of counts over ``axis`` per key."""
    index = {day: i for i, day in enumerate(axis)}
    out: dict[Any, list[int]] = defaultdict(lambda: [0] * len(axis))
    for day, key, count in rows:
        if _day(day) in index:
            out[key][index[_day(day)]] += int(count)
    return dict(out)


def message_series(session: Session, days: int) -> dict[str, Any]:
    """Messages per day, those that entered the review queue (a task of their own or one they
    joined), the share auto-accepted (not queued), and per day the messages of the top
    categories (the rest as 其他)."""
    newest = newest_message_at(session)
    if newest is None:
        return {"days": [], "messages": [], "queued": [], "auto_share": [], "categories": {}}
    axis = _days(newest.date(), days)
    since = datetime.combine(axis[0], datetime.min.time())
    day = func.date(MessageRow.created_at)
    # queued: the message has a task, or joined its case's open task (``review_task``)
    queued = or_(
        ReviewTaskRow.id.is_not(None), MessageRow.result["review_task"].as_string().is_not(None)
    )
    rows = session.execute(
        select(day, queued, func.count())
        .outerjoin(ReviewTaskRow, ReviewTaskRow.message_id == MessageRow.id)
        .where(MessageRow.created_at >= since)
        .group_by(day, queued)
    )
    counts = _per_day(rows, axis)
    queued_n, direct_n = counts.get(True, [0] * days), counts.get(False, [0] * days)
    messages = [q + d for q, d in zip(queued_n, direct_n, strict=True)]
    category = MessageRow.result["category"].as_string()
    by_category = _per_day(
        session.execute(
            select(day, category, func.count())
            .where(MessageRow.created_at >= since)
            .group_by(day, category)
        ),
        axis,
    )
    return {
        "days": [d.isoformat() for d in axis],
        "messages": messages,
        "queued": queued_n,
        "auto_share": [
            round(d / n, 3) if n else None for d, n in zip(direct_n, messages, strict=True)
        ],
        "categories": _top(by_category, TOP_CATEGORIES),
    }


def _top(by_key: dict[Any, list[int]], limit: int) -> dict[str, list[int]]:
    """The ``limit`` keys of most counts, then the rest summed as 其他."""
    ranked = sorted(by_key.items(), key=lambda item: -sum(item[1]))
    top = {str(key or UNPLACED): counts for key, counts in ranked[:limit]}
    rest = [counts for _, counts in ranked[limit:]]
    if rest:
        top[OTHER] = [sum(column) for column in zip(*rest, strict=True)]
    return top


def decision_series(session: Session, days: int) -> dict[str, Any]:
    """Reviewers' decisions per day and kind (accept, correct, invalid), up to the newest."""
    newest = session.scalar(
        select(func.max(AuditRow.at)).where(AuditRow.action.in_(DECISION_ACTIONS))
    )
    if newest is None:
        return {"days": [], **{action: [] for action in DECISION_ACTIONS}}
    axis = _days(newest.date(), days)
    day = func.date(AuditRow.at)
    rows = session.execute(
        select(day, AuditRow.action, func.count())
        .where(AuditRow.at >= datetime.combine(axis[0], datetime.min.time()))
        .where(AuditRow.action.in_(DECISION_ACTIONS))
        .group_by(day, AuditRow.action)
    )
    counts = _per_day(rows, axis)
    return {
        "days": [d.isoformat() for d in axis],
        **{action: counts.get(action, [0] * days) for action in DECISION_ACTIONS},
    }


def street_counts(session: Session, days: int) -> list[dict[str, Any]]:
    """Per street (the top :data:`TOP_STREETS`), the messages of the window and how many of
    them repeat a case reported more than once in it: where the hot issues are."""
    since, until = hot_window(session, days)
    street = MessageRow.result["street_name"].as_string()
    in_window = (MessageRow.created_at >= since, MessageRow.created_at <= until)
    per_case = (
        select(MessageRow.case_id, func.count().label("reports"))
        .where(*in_window)
        .group_by(MessageRow.case_id)
        .subquery()
    )
    reports = func.coalesce(per_case.c.reports, 1)
    rows = session.execute(
        select(street, reports, func.count())
        .outerjoin(per_case, per_case.c.case_id == MessageRow.case_id)
        .where(*in_window)
        .group_by(street, reports)
    )
    messages: Counter[str] = Counter()
    repeats: Counter[str] = Counter()
    for name, case_reports, count in rows:
        messages[name or UNPLACED] += count
        repeats[name or UNPLACED] += count if case_reports > 1 else 0
    return [{"street": name, "messages": count, "repeated": repeats[name]}
            for name, count in messages.most_common(TOP_STREETS)]  # fmt: skip


def series(session: Session, days: int) -> dict[str, Any]:
    """The dashboard's pictures over ``days`` days (see the functions above)."""
    return {
        "window_days": days,
        "messages": message_series(session, days),
        "decisions": decision_series(session, days),
        "streets": street_counts(session, days),
    }
