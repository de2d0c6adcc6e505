"""Cases as reviewers judge them: a duplicate side by side, and merging, splitting and moving.

:func:`duplicate_view` shows a task's message next to the closest messages of its case (text,
time, place names, the reporter masked, each with its 留言编号), the words they share and the
duplicate score explained in Chinese (:func:`explain`). The actions change which messages make
up a case:

- on a task (version-checked like :func:`wangge.serve.review.decide`, whose audit rows and
  relinking they reuse): the same case (accept), not a repeat (a case of its own), or move to
  another case named by a 留言编号 or a case id (:func:`resolve_task`);
- on cases: :func:`merge` one case into another (the merged case keeps ``merged_into`` and the
  audit row lists the messages moved, so :func:`unmerge` puts them back), :func:`split` chosen
  messages out into a new case.

The ingest merges cases too, when a message fits two cases (:mod:`wangge.models.cases`):
:func:`auto_merge` is :func:`merge` by :data:`~wangge.models.cases.AUTO_ACTOR` with
``automatic`` and the message in its audit row, shown to staff as 自动合并 and undone by the
same :func:`unmerge`.

Each action writes an :class:`~wangge.serve.storage.AuditRow`, counts the cases' reports again
(:func:`~wangge.serve.storage.recount_reports`) and returns the messages it moved with their new
cases, which the caller hands to the duplicate index in the same hold of the ingest lock
(:meth:`wangge.serve.ingest.Ingestor.reassign`): the next message is decided against the cases
as the reviewer left them. Errors speak Chinese: staff read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wangge.models.cases import AUTO_ACTOR
from wangge.models.dedup import dedup_text, jaccard, shingles
from wangge.nlp.fields import normalized
from wangge.nlp.pii import mask_pii
from wangge.nlp.segment import Tokenizer
from wangge.serve.review import ReviewConflict, ReviewError, ReviewNotFound, claim, decide
from wangge.serve.storage import AuditRow, CaseRow, MessageRow, ReviewTaskRow, recount_reports

CASE_ACTIONS = ("merge", "unmerge", "split")
CLOSEST_SHOWN = 5
OTHER_CASE_SHOWN = 0.2  # the least same-case probability of another case offered to merge
CASE_MESSAGES_SHOWN = 1000  # of a case's messages, the latest shown in its view
HISTORY_SCANNED = 2000  # the most recent case actions looked through for a case's history
Move = tuple[int, int]  # a message id and the case id it now belongs to
TaskAction = Literal["same", "own", "move"]
ACTION_NAMES = {"merge": "合并", "unmerge": "撤销合并", "split": "拆分", "accept": "确认",
                "correct": "更正", "invalid": "无效"}  # fmt: skip
BLOCKED = {
    "they name different places or organisations": "提到的地点或单位不同",
    "its case has had no report within the time window": "该案件已超出时间窗口",
    "different places": "地点不同",
    "different categories": "分类不同",
}


class CaseError(ReviewError):
    """A case action that cannot be done as asked; the message is for staff (Chinese)."""


class CaseNotFound(CaseError, ReviewNotFound):
    """No such case, message or task."""


class CaseConflict(CaseError, ReviewConflict):
    """The case or task is not in a state that allows the action."""


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer()


def masked_reporter(reporter: str | None) -> str:
    """A reporter as staff may see it: personal data masked, a name cut to its first character
    (张三 → 张*)."""
    if not reporter:
        return "匿名"
    masked = mask_pii(reporter)
    if masked != reporter:
        return masked
    return reporter[:1] + "*" * min(len(reporter) - 1, 6) if len(reporter) > 1 else "*"


def shared_words(text: str, other: str) -> list[str]:
    """The words of ``text`` also in ``other``, in order: no single characters, no stop
    words (the tokenizer drops those of ``data/stopwords_zh.txt``)."""
    theirs = {word for word in _tokenizer()(other) if len(word) > 1}
    seen: dict[str, None] = {}
    for word in _tokenizer()(text):
        if len(word) > 1 and word in theirs:
            seen.setdefault(word, None)
    return list(seen)


def _level(value: float | None, high: float, some: float, strong: str, weak: str) -> list[str]:
    if value is None or value < some:
        return []
    return [f"{strong if value >= high else weak}（{value:.2f}）"]


def explain(
    evidence: dict[str, Any], score: float, threshold: float, mine: dict[str, Any],
    theirs: dict[str, Any], names: dict[int, str] | None = None,
) -> list[str]:  # fmt: skip
    """The duplicate decision in Chinese words, strongest signals first: e.g. ["标题高度相似
    （0.93）", "同一社区", "重复概率 0.91（阈值 0.80）"]. ``mine`` and ``theirs`` are the two
    messages' stored results (for their places); ``names`` the 留言编号 of message ids."""
    words: list[str] = []
    if evidence.get("closest") is not None:
        words += _level(evidence.get("title_jaccard"), 0.6, 0.3, "标题高度相似", "标题部分相似")
        words += _level(evidence.get("cosine"), 0.93, 0.85, "语义高度相似", "语义相近")
        words += _level(evidence.get("jaccard"), 0.5, 0.2, "正文高度重合", "正文部分重合")
        words += _level(evidence.get("lexical_cosine"), 0.7, 0.4, "用词高度相近", "用词相近")
        relation = evidence.get("entities")
        if relation == "overlap":
            words.append("提到相同的地点或单位")
        elif relation == "conflict":
            words.append("提到的地点或单位不同")
        if evidence.get("same_reporter"):
            words.append("同一反映人")
        words += _same_place(mine, theirs)
        words.append(f"重复概率 {score:.2f}（阈值 {threshold:.2f}）")
    else:
        words.append("未找到足够相似的留言，单独立案")
    for entry in evidence.get("blocked") or []:
        other, _, reason = str(entry).partition(": ")
        other = (names or {}).get(_int(other) or 0) or other
        reason = next((zh for en, zh in BLOCKED.items() if reason.startswith(en)), "其他约束")
        words.append(f"未并入留言 {other} 的案件：{reason}")
    return words


def _same_place(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    for code, name, label in (("community_code", "community_name", "社区"),
                              ("street_code", "street_name", "街道")):  # fmt: skip
        if mine.get(code) and theirs.get(code):
            if mine[code] == theirs[code]:
                return [f"同一{label}（{mine.get(name) or mine[code]}）"]
            return [f"{label}不同"]
    return []


def message_view(row: MessageRow, shared_with: str | None = None) -> dict[str, Any]:
    """A message for the panel: its 留言编号 (``external_id``), text, time, place names and
    masked reporter; with ``shared_with`` (another message's text), the words they share."""
    result = row.result or {}
    view = {
        "message_id": row.id, "external_id": row.external_id, "case_id": row.case_id,
        "title": row.title, "content": row.content, "created_at": row.created_at,
        "reporter": masked_reporter(row.reporter), "street_name": result.get("street_name") or "",
        "community_name": result.get("community_name") or "",
        "grid_id": result.get("grid_id") or "", "category": result.get("category"),
        "duplicate_of": row.duplicate_of,
    }  # fmt: skip
    if shared_with is not None:
        view["shared_words"] = shared_words(_text(row), shared_with)
    return view


def _text(row: MessageRow) -> str:
    return f"{row.title}\n{row.content}"


def _grams(row: MessageRow) -> frozenset[str]:
    return shingles(dedup_text(normalized(row.title), normalized(row.content)))


def task_message(session: Session, task_id: int) -> MessageRow:
    """The message of a review task."""
    task = session.get(ReviewTaskRow, task_id)
    if task is None:
        raise CaseNotFound(f"没有编号为 {task_id} 的复核任务")
    message = session.get(MessageRow, task.message_id)
    assert message is not None  # a foreign key
    return message


def duplicate_view(
    session: Session, task_id: int, threshold: float,
    others: Sequence[tuple[str, str, float]] = (), limit: int = CLOSEST_SHOWN,
) -> dict[str, Any]:  # fmt: skip
    """A task's message, its case and the case's ``limit`` messages closest to it (the one
    the detector matched first, then by shared 3-grams), with the score explained; and the
    other cases it resembles (``others``: :meth:`DuplicateDetector.other_cases`), to merge."""
    message = task_message(session, task_id)
    task = session.get(ReviewTaskRow, task_id)
    assert task is not None
    evidence = dict((message.result or {}).get("dup_evidence") or {})
    closest_id = _int(evidence.get("closest"))
    members = session.scalars(
        select(MessageRow).where(MessageRow.case_id == message.case_id, MessageRow.id != message.id)
    ).all()
    mine = _grams(message)
    ranked = sorted(members, key=lambda row: (row.id != closest_id, -jaccard(mine, _grams(row))))
    closest = session.get(MessageRow, closest_id) if closest_id is not None else None
    if closest is not None and closest.case_id != message.case_id:
        ranked.insert(0, closest)  # moved away since: still shown, as what the detector matched
    text = _text(message)
    shown = []
    for row in ranked[:limit]:
        view = message_view(row, shared_with=text)
        view |= {"overlap": round(jaccard(mine, _grams(row)), 2), "closest": row.id == closest_id}
        shown.append(view)
    words = {word for view in shown for word in view["shared_words"]}
    matched = (closest.result or {}) if closest is not None else {}
    return {
        "task_id": task.id, "version": task.version, "status": task.status,
        "message": message_view(message) | {"shared_words": sorted(words, key=text.find)},
        "case": _case_head(session, message.case_id), "closest": shown,
        "other_cases": _other_cases(session, others, text),
        "score": message.dup_score,
        "explanation": explain(evidence, message.dup_score, threshold, message.result or {},
                               matched, _names(session, _blocked_ids(evidence))),
    }  # fmt: skip


def _other_cases(
    session: Session, others: Sequence[tuple[str, str, float]], text: str
) -> list[dict[str, Any]]:
    shown = []
    for message_id, case_id, probability in others:
        row, case = session.get(MessageRow, int(message_id)), _case_head(session, int(case_id))
        if probability >= OTHER_CASE_SHOWN and row is not None and case is not None:
            shown.append({"case": case, "message": message_view(row, shared_with=text),
                          "probability": probability})  # fmt: skip
    return shown


def _blocked_ids(evidence: dict[str, Any]) -> list[int]:
    ids = (_int(str(entry).partition(": ")[0]) for entry in evidence.get("blocked") or [])
    return [i for i in ids if i is not None]


def _names(session: Session, message_ids: Iterable[int]) -> dict[int, str]:
    """The 留言编号 of these messages (those that have one)."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(MessageRow.id, MessageRow.external_id).where(MessageRow.id.in_(ids))
    ).all()
    return {row_id: external for row_id, external in rows if external}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _case_head(session: Session, case_id: int | None) -> dict[str, Any] | None:
    case = session.get(CaseRow, case_id) if case_id is not None else None
    if case is None:
        return None
    return {"case_id": case.id, "title": case.title, "reports": case.reports,
            "first_at": case.first_at, "last_at": case.last_at, "category": case.category,
            "merged_into": case.merged_into}  # fmt: skip


def case_view(session: Session, case_id: int) -> dict[str, Any]:
    """A case with its messages (the latest :data:`CASE_MESSAGES_SHOWN`), the cases merged
    into it, and its history."""
    case = session.get(CaseRow, case_id)
    if case is None:
        raise CaseNotFound(f"没有编号为 {case_id} 的案件")
    latest = session.scalars(
        select(MessageRow).where(MessageRow.case_id == case_id)
        .order_by(MessageRow.created_at.desc(), MessageRow.id.desc()).limit(CASE_MESSAGES_SHOWN)
    ).all()  # fmt: skip
    messages = latest[::-1]
    merged = session.scalars(select(CaseRow).where(CaseRow.merged_into == case_id)).all()
    return {
        **(_case_head(session, case_id) or {}),
        "messages": [message_view(row) for row in messages],
        "merged_from": [{"case_id": row.id, "title": row.title} for row in merged],
        "history": case_history(
            session, {case_id, *(row.id for row in merged)}, [row.id for row in messages]
        ),
    }


def case_history(
    session: Session, case_ids: set[int], message_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The audit rows about these cases (a case and those merged into it), newest first:
    their merges, unmerges and splits, and the decisions on the messages."""
    case_rows = session.scalars(
        select(AuditRow).where(AuditRow.action.in_(CASE_ACTIONS))
        .order_by(AuditRow.id.desc()).limit(HISTORY_SCANNED)
    ).all()  # fmt: skip
    rows = [row for row in case_rows if case_ids & _cases_named(row)]
    tasks = select(ReviewTaskRow.id).where(ReviewTaskRow.message_id.in_(message_ids))
    rows += session.scalars(
        select(AuditRow).where(AuditRow.task_id.in_(tasks),  # indexed, unlike message_id
                               AuditRow.action.in_(("accept", "correct", "invalid")))
    ).all()  # fmt: skip
    rows.sort(key=lambda row: -row.id)
    linked = [row.after.get("duplicate_of") or row.after.get("by_message") for row in rows]
    names = _names(session, [i for i in (*linked, *(row.message_id for row in rows))
                             if isinstance(i, int)])  # fmt: skip
    return [{"at": row.at, "actor": row.actor, "action": row.action,
             "action_name": ACTION_NAMES.get(row.action, row.action),
             "text": _describe(row, names)} for row in rows]  # fmt: skip


def _cases_named(row: AuditRow) -> set[int]:
    named = {row.before.get("case_id"), row.after.get("merged_into"), row.before.get("merged_into"),
             row.after.get("new_case_id")}  # fmt: skip
    return {value for value in named if isinstance(value, int)}


def _describe(row: AuditRow, names: dict[int, str]) -> str:
    """An audit row in Chinese, messages named by their 留言编号 when they have one."""
    before, after = row.before, row.after
    count = len(after.get("messages") or [])
    if row.action == "merge":
        how = "自动并入" if after.get("automatic") else "并入"
        text = f"案件 {before['case_id']} {how}案件 {after['merged_into']}（{count} 条留言）"
        if after.get("by_message") is not None:
            by = after["by_message"]
            text += f"：留言 {names.get(by, by)} 与两个案件都相符"
        return text
    if row.action == "unmerge":
        return (
            f"案件 {before['case_id']} 撤销并入案件 {before['merged_into']}（{count} 条留言移回）"
        )
    if row.action == "split":
        return f"从案件 {before['case_id']} 移出 {count} 条留言，成为案件 {after['new_case_id']}"
    text = f"留言 {names.get(row.message_id or 0, row.message_id)} "
    text += ACTION_NAMES.get(row.action, row.action)
    if "duplicate_of" in after:
        link = after["duplicate_of"]
        text += (
            "：不是重复，单独立案" if link is None else f"：改为重复于留言 {names.get(link, link)}"
        )
    return text


# -- actions on a task ----------------------------------------------------------------------
def resolve_task(
    session: Session, task_id: int, reviewer: str, version: int, action: TaskAction, *,
    to_message: str | None = None, to_case: int | None = None,
) -> tuple[ReviewTaskRow, list[Move]]:  # fmt: skip
    """Decide a duplicate task: ``same`` (accept its case), ``own`` (not a repeat: a case of its
    own) or ``move`` (to the case of the message with 留言编号 ``to_message``, or case
    ``to_case``). An open task is claimed first, in the same transaction."""
    task = session.get(ReviewTaskRow, task_id)
    if task is None:
        raise CaseNotFound(f"没有编号为 {task_id} 的复核任务")
    if task.status in ("done", "invalid"):
        raise CaseConflict("这条任务已经处理完毕，不能再改")
    if task.status == "open" or task.claimed_by != reviewer:
        version = claim(session, task_id, reviewer, version).version
    message = session.get(MessageRow, task.message_id)
    assert message is not None  # a foreign key
    if action == "same":
        task = decide(session, task_id, reviewer, version, "accept")
    else:
        link = None if action == "own" else _target_message(session, message, to_message, to_case)
        task = decide(session, task_id, reviewer, version, "correct", {"duplicate_of": link})
    case = session.get(CaseRow, message.case_id)
    if case is not None and case.merged_into is not None:
        case.merged_into = None  # a message back in its own, merged case reopens it
    return task, [(message.id, message.case_id)] if message.case_id is not None else []


def _target_message(
    session: Session, message: MessageRow, to_message: str | None, to_case: int | None
) -> int:
    """The message whose case ``message`` moves to: the one with 留言编号 ``to_message``, or
    the first of case ``to_case`` (followed to the case it was merged into)."""
    if (to_message is None) == (to_case is None):
        raise CaseError("请填写目标留言编号或目标案件编号（二选一）")
    if to_message is not None:
        target = session.scalar(select(MessageRow).where(MessageRow.external_id == to_message))
        if target is None:
            raise CaseNotFound(f"没有留言编号为 {to_message} 的留言")
        if target.id == message.id:
            raise CaseError("不能移到本条留言自己的案件：请选“不是重复”")
        return target.id
    case = _live_case(session, _case(session, to_case))
    first = session.scalar(
        select(MessageRow).where(MessageRow.case_id == case.id, MessageRow.id != message.id)
        .order_by(MessageRow.created_at, MessageRow.id).limit(1)
    )  # fmt: skip
    if first is None:
        raise CaseError(f"案件 {case.id} 没有其他留言，无法移入")
    return first.id


def _case(session: Session, case_id: int | None) -> CaseRow:
    case = session.get(CaseRow, case_id) if case_id is not None else None
    if case is None:
        raise CaseNotFound(f"没有编号为 {case_id} 的案件")
    return case


def _live_case(session: Session, case: CaseRow) -> CaseRow:
    """The case ``case`` was merged into, followed to one that is not merged."""
    seen = {case.id}
    while case.merged_into is not None:
        case = _case(session, case.merged_into)
        if case.id in seen:
            raise CaseConflict(f"案件 {case.id} 的合并记录成环，请联系管理员")
        seen.add(case.id)
    return case


# -- actions on cases -----------------------------------------------------------------------
def case_of_message(session: Session, external_id: str) -> int:
    """The case of the message with 留言编号 ``external_id``."""
    row = session.scalar(select(MessageRow).where(MessageRow.external_id == external_id))
    if row is None or row.case_id is None:
        raise CaseNotFound(f"没有留言编号为 {external_id} 的留言")
    return row.case_id


def _locked(session: Session, case_ids: Iterable[int]) -> dict[int, CaseRow]:
    """The cases, locked in id order (PostgreSQL), so that two reviewers merging the same
    cases at once wait for each other instead of crossing."""
    ids = sorted(set(case_ids))
    rows = session.scalars(
        select(CaseRow).where(CaseRow.id.in_(ids)).order_by(CaseRow.id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    ).all()  # fmt: skip
    found = {row.id: row for row in rows}
    for case_id in ids:
        if case_id not in found:
            raise CaseNotFound(f"没有编号为 {case_id} 的案件")
    return found


def _members(session: Session, case_id: int) -> list[MessageRow]:
    return list(
        session.scalars(
            select(MessageRow).where(MessageRow.case_id == case_id)
            .order_by(MessageRow.created_at, MessageRow.id)
        )
    )  # fmt: skip


def _refresh_times(session: Session, case_ids: Iterable[int]) -> None:
    """Each case's first and last report, from its messages (a case left empty keeps its)."""
    ids = list(case_ids)
    spans = select(MessageRow.case_id, func.min(MessageRow.created_at),
                   func.max(MessageRow.created_at)).where(MessageRow.case_id.in_(ids))  # fmt: skip
    for case_id, first, last in session.execute(spans.group_by(MessageRow.case_id)).all():
        case = session.get(CaseRow, case_id)
        assert case is not None
        case.first_at, case.last_at = first, last


def _audit(
    session: Session, actor: str, action: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    session.add(AuditRow(at=datetime.now(), actor=actor, action=action, task_id=None,
                         message_id=None, before=before, after=after))  # fmt: skip


def auto_merge(session: Session, case_id: int, into: int, message_id: int) -> list[Move]:
    """The ingest's merge of case ``case_id`` into ``into``, which message ``message_id``
    showed to be one case: :func:`merge` by :data:`AUTO_ACTOR`, marked ``automatic``."""
    return merge(session, AUTO_ACTOR, case_id, into,
                 recorded={"automatic": True, "by_message": message_id})  # fmt: skip


def kept_apart(session: Session, case_ids: Iterable[int]) -> bool:
    """Whether a reviewer kept apart what these cases hold (among the last
    :data:`HISTORY_SCANNED` such actions): messages split off, or moved back by an unmerge,
    now in one of them while the case they left is another (wherever the reviewers took them
    since), or one of them a case of its own by a task's "not a repeat". Then no automatic
    merge joins them again."""
    ids = set(case_ids)
    rows = session.scalars(
        select(AuditRow).where(AuditRow.action.in_(("split", "unmerge", "correct")))
        .order_by(AuditRow.id.desc()).limit(HISTORY_SCANNED)
    ).all()  # fmt: skip
    separations = [row for row in rows if row.action != "correct"]
    moved = {int(i) for row in separations for i in row.after.get("messages") or []}
    now: dict[int, int | None] = {
        message_id: case_id
        for message_id, case_id in session.execute(
            select(MessageRow.id, MessageRow.case_id).where(MessageRow.id.in_(moved))
        )
    } if moved else {}  # fmt: skip
    for row in rows:
        if row.action == "correct":
            if row.after.get("duplicate_of", 0) is None and row.message_id in ids:
                return True  # its own case, whose id is the message's
            continue
        left = row.before.get("merged_into" if row.action == "unmerge" else "case_id")
        sides = {now.get(int(i)) for i in row.after.get("messages") or []} & ids
        there = _followed(session, left) & ids
        if any(a != b for a in sides for b in there):
            return True
    return False


def _followed(session: Session, case_id: Any) -> set[int]:
    """A case and those it was merged into since, in turn."""
    found: set[int] = set()
    while isinstance(case_id, int) and case_id not in found:
        found.add(case_id)
        case = session.get(CaseRow, case_id)
        case_id = case.merged_into if case is not None else None
    return found


def merge(
    session: Session, reviewer: str, case_id: int, into: int,
    recorded: dict[str, Any] | None = None,
) -> list[Move]:  # fmt: skip
    """Move every message of case ``case_id`` into case ``into``; the merged case keeps
    ``merged_into`` and the audit row the messages moved, for :func:`unmerge` (and
    ``recorded``, what else the audit row says)."""
    if case_id == into:
        raise CaseError("不能把案件合并到它自己")
    cases = _locked(session, (case_id, into))
    source, target = cases[case_id], cases[into]
    if source.merged_into is not None:
        raise CaseConflict(f"案件 {case_id} 已并入案件 {source.merged_into}")
    if target.merged_into is not None:
        raise CaseConflict(f"案件 {into} 已并入案件 {target.merged_into}：请并入后者")
    moved = _members(session, case_id)
    if not moved:
        raise CaseError(f"案件 {case_id} 没有留言，无需合并")
    before = {"case_id": case_id, "merged_into": None,
              "reports": {str(case_id): source.reports, str(into): target.reports}}  # fmt: skip
    for row in moved:
        row.case_id = into
    source.merged_into = into
    counts = recount_reports(session, (case_id, into))
    _refresh_times(session, [into])
    _audit(session, reviewer, "merge", before, {
        "case_id": case_id, "merged_into": into, "messages": [row.id for row in moved],
        "reports": {str(key): value for key, value in counts.items()}, **(recorded or {}),
    })  # fmt: skip
    return [(row.id, into) for row in moved]


def unmerge(session: Session, reviewer: str, case_id: int) -> list[Move]:
    """Undo the last merge of case ``case_id``: the messages it moved that are still in the
    case they went to (or in a case that one was merged into since) come back."""
    case = _locked(session, (case_id,))[case_id]
    if case.merged_into is None:
        raise CaseConflict(f"案件 {case_id} 没有并入其他案件，无需撤销")
    record = next(
        (row for row in session.scalars(
            select(AuditRow).where(AuditRow.action == "merge").order_by(AuditRow.id.desc()))
         if row.after.get("case_id") == case_id),
        None,
    )  # fmt: skip
    if record is None:
        raise CaseConflict(f"找不到案件 {case_id} 的合并记录，无法撤销")
    chain, where = [], case
    while where.merged_into is not None and where.merged_into not in chain:
        chain.append(where.merged_into)
        where = _case(session, where.merged_into)
    recorded = [int(i) for i in record.after.get("messages") or []]
    back = session.scalars(
        select(MessageRow).where(MessageRow.id.in_(recorded), MessageRow.case_id.in_(chain))
    ).all()
    before = {"case_id": case_id, "merged_into": case.merged_into}
    for row in back:
        row.case_id = case_id
    case.merged_into = None
    counts = recount_reports(session, [case_id, *chain])
    _refresh_times(session, [case_id, *chain])
    _audit(session, reviewer, "unmerge", before, {
        "case_id": case_id, "merged_into": None, "messages": sorted(row.id for row in back),
        "reports": {str(key): value for key, value in counts.items()},
    })  # fmt: skip
    return [(row.id, case_id) for row in back]


def split(
    session: Session, reviewer: str, case_id: int, message_ids: Sequence[int]
) -> tuple[int, list[Move]]:
    """Move the chosen messages of case ``case_id`` into a new case; returns its id. A case's
    id is one of its messages' ids: the first chosen message's, unless that id names a case
    with messages already, when the next one's (or, failing all, the chosen messages keep the
    case and the others move)."""
    case = _locked(session, (case_id,))[case_id]
    if case.merged_into is not None:
        raise CaseConflict(f"案件 {case_id} 已并入案件 {case.merged_into}，不能拆分")
    members = _members(session, case_id)
    chosen_ids = set(message_ids)
    missing = sorted(chosen_ids - {row.id for row in members})
    if missing:
        raise CaseError(f"留言 {'、'.join(map(str, missing))} 不在案件 {case_id} 中")
    chosen = [row for row in members if row.id in chosen_ids]
    rest = [row for row in members if row.id not in chosen_ids]
    if not chosen or not rest:
        raise CaseError("请至少选一条留言拆出，并至少留下一条")
    new_id, moving = _new_case_id(session, chosen), chosen
    if new_id is None:
        new_id, moving = _new_case_id(session, rest), rest
    if new_id is None:
        raise CaseConflict("这些留言的编号都已被其他案件占用，无法拆分")
    _open_case(session, new_id, moving)
    for row in moving:
        row.case_id = new_id
    _relink_within(moving)
    _relink_within(chosen if moving is rest else rest)
    counts = recount_reports(session, (case_id, new_id))
    _refresh_times(session, (case_id, new_id))
    _audit(session, reviewer, "split", {"case_id": case_id, "reports": case.reports}, {
        "case_id": case_id, "new_case_id": new_id, "messages": sorted(r.id for r in moving),
        "chosen": sorted(chosen_ids), "reports": {str(k): v for k, v in counts.items()},
    })  # fmt: skip
    return (new_id if moving is chosen else case_id), [(row.id, new_id) for row in moving]


def _new_case_id(session: Session, rows: Sequence[MessageRow]) -> int | None:
    """The first of these messages' ids that names no case, or an empty, unmerged one."""
    for row in sorted(rows, key=lambda r: r.id):
        case = session.get(CaseRow, row.id)
        if case is None:
            return row.id
        has_messages = session.scalar(
            select(MessageRow.id).where(MessageRow.case_id == row.id).limit(1)
        )
        if has_messages is None and case.merged_into is None:
            return row.id
    return None


def _open_case(session: Session, case_id: int, rows: Sequence[MessageRow]) -> None:
    first = min(rows, key=lambda r: (r.created_at, r.id))
    result = first.result or {}
    fields = {"title": first.title or first.content[:40], "first_at": first.created_at,
              "last_at": max(r.created_at for r in rows), "reports": 0,
              "category": result.get("category"),
              "street_code": result.get("street_code") or None,
              "community_code": result.get("community_code") or None}  # fmt: skip
    case = session.get(CaseRow, case_id)
    if case is None:
        session.add(CaseRow(id=case_id, **fields))
    else:
        for name, value in fields.items():
            setattr(case, name, value)
    session.flush()


def _relink_within(rows: Sequence[MessageRow]) -> None:
    """Messages of one case whose ``duplicate_of`` points outside it repeat its first message."""
    ids = {row.id for row in rows}
    first = min(rows, key=lambda r: (r.created_at, r.id))
    for row in rows:
        if row.duplicate_of is not None and row.duplicate_of not in ids:
            row.duplicate_of = None if row is first else first.id
        elif row is first:
            row.duplicate_of = None
