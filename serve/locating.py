"""The 待定位 list: messages that name no community, located by a dispatcher in bulk.

A message whose place the pipeline calls ``unlocated`` (no community named: at most a street,
or places the registry does not know; see :mod:`wangge.pipeline.reasons`) is not a review task
of its own: nobody can decide its place from the message alone, one at a time. It goes on the
待定位 list of its street, or of the district when it names no street (a message with the
reporter's registered grid never does: the grid locates it). A dispatcher who knows the area
filters the list (by street, by a word such as a compound's name), selects many messages and
assigns them one grid: :func:`assign`, all or nothing, each message checked against the
version it was listed with, each written to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from wangge.errors import WanggeError
from wangge.pipeline.reasons import ReviewReason
from wangge.serve.storage import (
    AuditRow,
    CaseRow,
    MessageRow,
    ReviewTaskRow,
    UnlocatedRow,
)

MAX_ASSIGN = 500  # messages one assignment may locate
TASK_REASONS = tuple(reason for reason in ReviewReason if reason.is_task)
DISTRICT = ""  # the street code of the district's own list (messages naming no street)


class LocatingError(WanggeError):
    """An assignment that cannot be done as asked (an unknown grid)."""


class LocatingConflict(LocatingError):
    """Some of the messages were located or changed since the list was loaded."""


@dataclass(frozen=True)
class UnlocatedFilter:
    """Which open entries to list: of one street (:data:`DISTRICT` for those naming no
    street; ``None``: all), whose title or text contains ``text``."""

    street_code: str | None = None
    text: str | None = None


def add_unlocated(session: Session, message: MessageRow) -> UnlocatedRow:
    """Put ``message`` on its street's 待定位 list (the district's without a street)."""
    street = (message.result or {}).get("street_code") or None
    entry = UnlocatedRow(message_id=message.id, street_code=street, status="open",
                         created_at=message.created_at, version=1)  # fmt: skip
    session.add(entry)
    return entry


def list_unlocated(
    session: Session, where: UnlocatedFilter, offset: int = 0, limit: int = 50
) -> tuple[int, list[tuple[UnlocatedRow, MessageRow]]]:
    """The open entries matching ``where``, oldest first, a page of them: (how many match,
    the page with the messages)."""
    query = select(UnlocatedRow, MessageRow).join(
        MessageRow, MessageRow.id == UnlocatedRow.message_id
    )
    query = query.where(UnlocatedRow.status == "open")
    if where.street_code is not None:
        street = where.street_code or None
        query = query.where(
            UnlocatedRow.street_code.is_(None) if street is None
            else UnlocatedRow.street_code == street
        )  # fmt: skip
    if where.text:
        pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        query = query.where(or_(MessageRow.title.like(pattern, escape="\\"),
                                MessageRow.content.like(pattern, escape="\\")))  # fmt: skip
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(UnlocatedRow.created_at, UnlocatedRow.message_id)
    rows = session.execute(page.offset(offset).limit(limit))
    return total, [(entry, message) for entry, message in rows]


def open_by_street(session: Session) -> dict[str, int]:
    """How many messages each street's list holds (:data:`DISTRICT`: the district's own)."""
    counts = session.execute(
        select(UnlocatedRow.street_code, func.count())
        .where(UnlocatedRow.status == "open")
        .group_by(UnlocatedRow.street_code)
    )
    return {street or DISTRICT: count for street, count in counts}


def assign(
    session: Session,
    entries: Sequence[tuple[int, int]],
    grid_id: str,
    place: Mapping[str, str] | None,
    actor: str,
) -> list[UnlocatedRow]:
    """Locate the messages of ``entries`` ((message id, version listed) pairs) in grid
    ``grid_id``, whose place columns are ``place`` (``None``: the district has no such grid,
    refused). All or nothing: if any message left its list or changed since it was listed,
    none is located (:class:`LocatingConflict`, naming them). Each message's stored result
    takes the grid, its street and community, and the audit log records who, when, before
    and after; an open review task of the message moves to the grid's street."""
    if place is None:
        raise LocatingError(f"未知网格“{grid_id}”：请从网格列表中选择")
    ids = list(dict.fromkeys(message_id for message_id, _ in entries))
    wanted = dict(entries)
    rows = {row.message_id: row for row in session.scalars(
        select(UnlocatedRow).where(UnlocatedRow.message_id.in_(ids)).with_for_update()
    )}  # fmt: skip
    stale = [i for i in ids if i not in rows or rows[i].status != "open"
             or rows[i].version != wanted[i]]  # fmt: skip
    if stale:
        raise LocatingConflict(_stale_text(stale))
    now = datetime.now()
    fields = {"grid_id": grid_id, **{k: v for k, v in place.items() if k != "grid_name"}}
    for message_id in ids:
        _locate(session, rows[message_id], fields, actor, now)
    try:
        session.flush()
    except StaleDataError as error:  # a concurrent assignment won the race
        raise LocatingConflict(_stale_text(ids)) from error
    return [rows[i] for i in ids]


def _stale_text(ids: Sequence[int]) -> str:
    shown = "、".join(str(i) for i in ids[:10]) + ("等" if len(ids) > 10 else "")
    return f"有 {len(ids)} 条留言已被他人定位或已变化（留言 {shown}）：请刷新列表后重新选择"


def _locate(
    session: Session, entry: UnlocatedRow, fields: dict[str, str], actor: str, now: datetime
) -> None:
    message = session.get(MessageRow, entry.message_id)
    assert message is not None  # a foreign key
    result = dict(message.result or {})
    before = {name: result.get(name) or "" for name in fields}
    note = f"人工定位：{fields.get('street_name', '')}{fields.get('community_name', '')} " \
           f"网格 {fields['grid_id']}（{actor}）"  # fmt: skip
    result |= fields | {"located": {"by": actor, "at": now.isoformat(timespec="seconds")}}
    result["route_evidence"] = [*(result.get("route_evidence") or []), note]
    message.result = result
    entry.status, entry.grid_id, entry.located_by, entry.located_at = (
        "located",
        fields["grid_id"],
        actor,
        now,
    )
    entry.version += 1
    task = session.scalar(select(ReviewTaskRow).where(ReviewTaskRow.message_id == message.id))
    if task is not None and task.status in ("open", "claimed"):
        task.street_code = fields.get("street_code") or None  # the queue's street filter
    case = session.get(CaseRow, message.case_id) if message.case_id is not None else None
    if case is not None and not case.street_code:
        case.street_code = fields.get("street_code") or None
        case.community_code = fields.get("community_code") or None
    session.add(AuditRow(at=now, actor=actor, action="locate", task_id=task.id if task else None,
                         message_id=message.id, before=before, after=dict(fields)))  # fmt: skip


def settle(session: Session, message: MessageRow, actor: str) -> None:
    """Take ``message`` off its 待定位 list when a reviewer gave it a grid in a review task."""
    entry = session.get(UnlocatedRow, message.id)
    grid = (message.result or {}).get("grid_id")
    if entry is not None and entry.status == "open" and grid:
        entry.status, entry.grid_id, entry.located_by = "located", grid, actor
        entry.located_at = datetime.now()
        entry.version += 1


def unlocated_out(
    entry: UnlocatedRow, message: MessageRow, streets: Mapping[str, str]
) -> dict[str, Any]:
    """An entry as the API lists it: the message and the place hints of its evidence."""
    result = message.result or {}
    return {
        "message_id": message.id, "version": entry.version, "title": message.title,
        "content": message.content, "created_at": message.created_at,
        "street_code": entry.street_code or DISTRICT,
        "street_name": streets.get(entry.street_code or "", ""),
        "category": result.get("category") or "", "case_id": message.case_id,
        "hints": list(result.get("route_evidence") or []),
    }  # fmt: skip


def queued_shares(session: Session) -> dict[str, Any]:
    """What share of the ingested messages the review queue and the 待定位 lists took: tasks
    per reason (a task holds the reasons of the messages linked to it), the messages linked
    to another's task, the 待定位 entries (all, and still open)."""
    messages = session.scalar(select(func.count()).select_from(MessageRow)) or 0
    text = cast(ReviewTaskRow.reasons, String)
    counts = session.execute(
        select(func.count(), *(func.sum(case((text.like(f'%"{r.value}"%'), 1), else_=0))
                               for r in TASK_REASONS)).select_from(ReviewTaskRow)
    ).one()  # fmt: skip
    tasks, by_reason = counts[0], dict(zip(TASK_REASONS, counts[1:], strict=True))
    linked = session.scalar(select(func.count()).where(AuditRow.action == "link")) or 0
    by_status = select(UnlocatedRow.status, func.count()).group_by(UnlocatedRow.status)
    unlocated: dict[str, int] = {status: count for status, count in session.execute(by_status)}
    listed = sum(unlocated.values())

    def share(count: int) -> float | None:
        return round(count / messages, 4) if messages else None

    return {
        "messages": messages, "tasks": tasks, "task_share": share(tasks), "linked": linked,
        "by_reason": {reason.value: {"tasks": int(by_reason[reason] or 0),
                                     "share": share(int(by_reason[reason] or 0))}
                      for reason in TASK_REASONS},
        "unlocated": {"listed": listed, "open": unlocated.get("open", 0), "share": share(listed)},
    }  # fmt: skip
