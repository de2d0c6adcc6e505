"""Duplicates side by side and case actions over HTTP, for logged-in reviewers (``/review/api``).

See :mod:`wangge.serve.cases`. An unknown task or case answers 404, a task changed since it was
loaded (or held by someone else) or a case not in a state for the action 409, a request that
cannot be done as asked 422; every ``detail`` is in Chinese, for staff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from wangge.serve.cases import (
    CaseError,
    Move,
    case_of_message,
    case_view,
    duplicate_view,
    merge,
    resolve_task,
    split,
    task_message,
    unmerge,
)
from wangge.serve.dependencies import IngestorDep, StoreDep, refused
from wangge.serve.ingest import Ingestor
from wangge.serve.review import ReviewConflict, ReviewError, ReviewNotFound
from wangge.serve.routes.review import ReviewerDep, task_out
from wangge.serve.schemas import MAX_INT, ReviewTaskOut, RowId, ShortText, error_responses
from wangge.serve.storage import MessageRow, Store

router = APIRouter(prefix="/review/api", tags=["review"])
RESPONSES = error_responses(404, 409, 413)
T = TypeVar("T")


class _Input(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class DuplicateDecision(_Input):
    version: int = Field(ge=0, le=MAX_INT)
    action: Literal["same", "own", "move"] = Field(
        description="`same`: the case it joined is right; `own`: not a repeat (a case of its "
        "own); `move`: to the case of `to_message` (a 留言编号) or `to_case`."
    )
    to_message: ShortText | None = None
    to_case: RowId | None = None


class MergeRequest(_Input):
    into_case: RowId | None = None
    into_message: ShortText | None = Field(
        default=None, description="A 留言编号: the case of that message."
    )

    @model_validator(mode="after")
    def _one_target(self) -> MergeRequest:
        if (self.into_case is None) == (self.into_message is None):
            raise PydanticCustomError("one_target", "请填写目标案件编号或目标留言编号（二选一）")
        return self


class SplitRequest(_Input):
    messages: list[RowId] = Field(min_length=1, max_length=1000, description="Message ids.")


def _chinese(error: ReviewError) -> HTTPException | Exception:
    """The HTTP error of a refused action, its text in Chinese."""
    own = error.message if isinstance(error, CaseError) else None
    if isinstance(error, ReviewNotFound):
        return HTTPException(404, own or "没有这条复核任务")
    if isinstance(error, ReviewConflict):
        return HTTPException(409, own or "任务已被他人认领或已有改动：请刷新后再试")
    return refused("case_refused", ("body",), own or "无法按要求修改案件")


def _run(ingestor: Ingestor, store: Store, change: Callable[[Session], list[Move]]) -> None:
    """``change`` in a transaction, committed and reflected in the duplicate index under the
    ingest lock."""

    def committed() -> list[Move]:
        with store.session() as session:
            return change(session)

    try:
        ingestor.reassign(committed)
    except ReviewError as error:
        raise _chinese(error) from error


def _read(store: Store, read: Callable[[Session], T]) -> T:
    try:
        with store.session() as session:
            return read(session)
    except ReviewError as error:
        raise _chinese(error) from error


TaskId = Annotated[RowId, PathParameter()]
CaseId = Annotated[RowId, PathParameter()]


@router.get("/tasks/{task_id}/duplicate", responses=error_responses(404))
def duplicate(
    task_id: TaskId, store: StoreDep, ingestor: IngestorDep, _: ReviewerDep
) -> dict[str, Any]:
    """The task's message next to its case's closest messages (留言编号, text, time, places,
    reporter masked), the words they share and the duplicate score explained in Chinese; the
    other cases it resembles most, to merge."""
    threshold = ingestor.detector.threshold
    message_id = _read(store, lambda session: task_message(session, task_id).id)
    others = ingestor.other_cases(message_id)
    return _read(store, lambda session: duplicate_view(session, task_id, threshold, others))


@router.post("/tasks/{task_id}/duplicate/decision", responses=RESPONSES)
def decide_duplicate(
    task_id: TaskId, body: DuplicateDecision, store: StoreDep, ingestor: IngestorDep,
    user: ReviewerDep,
) -> ReviewTaskOut:  # fmt: skip
    """Same case, not a repeat, or move to another case (claiming an open task first); the
    duplicate index follows at once."""
    decided: dict[str, Any] = {}

    def change(session: Session) -> list[Move]:
        task, moved = resolve_task(session, task_id, user.username, body.version, body.action,
                                   to_message=body.to_message, to_case=body.to_case)  # fmt: skip
        message = session.get(MessageRow, task.message_id)
        assert message is not None
        decided["task"] = task_out(session, task, message)
        return moved

    _run(ingestor, store, change)
    out: ReviewTaskOut = decided["task"]
    return out


@router.get("/cases/{case_id}", responses=error_responses(404))
def case(case_id: CaseId, store: StoreDep, _: ReviewerDep) -> dict[str, Any]:
    """A case: its messages, the cases merged into it and its history (audit log)."""
    return _read(store, lambda session: case_view(session, case_id))


@router.get("/cases", responses=error_responses(404))
def case_by_message(message: ShortText, store: StoreDep, _: ReviewerDep) -> dict[str, Any]:
    """The case of the message with this 留言编号."""
    return _read(store, lambda session: case_view(session, case_of_message(session, message)))


def _case_change(
    ingestor: Ingestor, store: Store, change: Callable[[Session], tuple[int, list[Move]]]
) -> dict[str, Any]:
    """:func:`_run` a case action returning the case to show and the messages moved; answers
    that case's view."""
    shown: list[int] = []

    def moves(session: Session) -> list[Move]:
        case_id, moved = change(session)
        shown.append(case_id)
        return moved

    _run(ingestor, store, moves)
    return _read(store, lambda session: case_view(session, shown[0]))


@router.post("/cases/{case_id}/merge", responses=RESPONSES)
def merge_case(
    case_id: CaseId, body: MergeRequest, store: StoreDep, ingestor: IngestorDep,
    user: ReviewerDep,
) -> dict[str, Any]:  # fmt: skip
    """Merge this case into another (by case id or a 留言编号); answers the merged case."""

    def change(session: Session) -> tuple[int, list[Move]]:
        target = body.into_case or case_of_message(session, body.into_message or "")
        return target, merge(session, user.username, case_id, target)

    return _case_change(ingestor, store, change)


@router.post("/cases/{case_id}/unmerge", responses=RESPONSES)
def unmerge_case(
    case_id: CaseId, store: StoreDep, ingestor: IngestorDep, user: ReviewerDep
) -> dict[str, Any]:
    """Undo this case's merge: its messages come back; answers the case."""
    return _case_change(
        ingestor, store, lambda session: (case_id, unmerge(session, user.username, case_id))
    )


@router.post("/cases/{case_id}/split", responses=RESPONSES)
def split_case(
    case_id: CaseId, body: SplitRequest, store: StoreDep, ingestor: IngestorDep,
    user: ReviewerDep,
) -> dict[str, Any]:  # fmt: skip
    """Move the chosen messages into a new case; answers the case the chosen messages are in."""
    return _case_change(
        ingestor, store, lambda session: split(session, user.username, case_id, body.messages)
    )
