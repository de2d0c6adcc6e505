"""The review queue over HTTP, for reviewers logged in with their accounts (``/review/api``).

Conflicts (a task changed since it was loaded, claimed by someone else) answer 409, an unknown
task 404, a malformed decision 422; see :mod:`wangge.serve.review` for the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParameter
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from wangge.errors import WanggeError
from wangge.models.router import MessageRouter
from wangge.nlp.segment import default_stopwords
from wangge.pipeline.reasons import ReviewReason
from wangge.pipeline.store import VersionError, promote, rollback
from wangge.serve.auth import (
    SESSION_HOURS,
    LoginThrottle,
    User,
    log_in,
    log_out,
    session_user,
)
from wangge.serve.dashboard import series
from wangge.serve.dependencies import (
    IngestorDep,
    LoadedModelDep,
    RouterDep,
    StoreDep,
    refused,
    store_of,
)
from wangge.serve.grid_search import GridIndex
from wangge.serve.review import (
    HOT_ISSUE_DAYS,
    Choices,
    QueueFilter,
    ReviewConflict,
    ReviewError,
    ReviewNotFound,
    claim,
    decide,
    joined_messages,
    list_tasks,
    queue_stats,
)
from wangge.serve.schemas import (
    JOINED_SHOWN,
    ClaimRequest,
    Code,
    DecisionRequest,
    ErrorResponse,
    JoinedMessage,
    LoginRequest,
    LoginResponse,
    Name,
    PromoteRequest,
    PromoteResponse,
    ReviewChoices,
    ReviewGridList,
    ReviewTaskList,
    ReviewTaskOut,
    RowId,
    error_responses,
)
from wangge.serve.storage import MessageRow, ReviewTaskRow, Store

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/review/api", tags=["review"])
SHOWN = ("category", "probability", "top_k", "evidence", "review_reasons", "department",
         "departments", "street_name", "community_name", "grid_id", "route_evidence",
         "dup_evidence", "review")  # fmt: skip


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer TOKEN``, or ``""``."""
    authorization = request.headers.get("authorization", "")
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""


def reviewer(request: Request) -> User:
    """The logged-in reviewer of ``Authorization: Bearer TOKEN``; 401 otherwise."""
    token = bearer_token(request)
    user = session_user(store_of(request), token) if token else None
    if user is None:
        challenge = {"WWW-Authenticate": 'Bearer realm="wangge review"'}
        raise HTTPException(401, "请先登录（POST /review/api/login）", headers=challenge)
    return user


ReviewerDep = Annotated[User, Depends(reviewer)]


def highlights(evidence: list[str]) -> list[str]:
    """The evidence words worth marking in a message: not single characters (店, or 道 inside
    街道 and 通道) and not stop words (难道)."""
    stop = default_stopwords()
    return [word for word in evidence if len(word) > 1 and word not in stop
            and not any(c.isspace() for c in word)]  # fmt: skip


def task_out(
    session: Session,
    task: ReviewTaskRow,
    message: MessageRow,
    joined: Sequence[MessageRow] | None = None,
) -> ReviewTaskOut:
    """A task as the page shows it; messages named by their 留言编号 where they have one.
    ``joined``: the messages that joined the task (read here when not given)."""
    if joined is None:
        joined = joined_messages(session, [task.id]).get(task.id, [])
    result = message.result or {}
    prediction = {key: result[key] for key in SHOWN if key in result}
    original = session.get(MessageRow, message.duplicate_of) if message.duplicate_of else None
    prediction |= {"case_id": message.case_id, "duplicate_of": message.duplicate_of,
                   "duplicate_of_external": original.external_id if original else None,
                   "dup_score": message.dup_score,
                   "highlights": highlights(result.get("evidence") or [])}  # fmt: skip
    return ReviewTaskOut(
        task_id=task.id, version=task.version, status=task.status, reasons=task.reasons,
        priority=task.priority, claimed_by=task.claimed_by, message_id=message.id,
        external_id=message.external_id, title=message.title, content=message.content,
        created_at=message.created_at, prediction=prediction, joined_total=len(joined),
        joined=[JoinedMessage(message_id=m.id, external_id=m.external_id, title=m.title or
                              m.content[:40], created_at=m.created_at)
                for m in joined[:JOINED_SHOWN]],
    )  # fmt: skip


@router.post(
    "/login",
    responses={
        401: {"model": ErrorResponse, "description": "A wrong name or password."},
        **error_responses(413),
        429: {
            "model": ErrorResponse,
            "description": "Too many failed logins for this name or from this address; "
            "`Retry-After` gives the seconds to wait.",
        },
    },
)
def login(body: LoginRequest, request: Request, store: StoreDep) -> LoginResponse:
    """A session token; see :class:`wangge.serve.auth.LoginThrottle` for the lockout."""
    throttle: LoginThrottle = request.app.state.login_throttle
    account = f"user:{body.username}"
    keys = [account, f"addr:{request.client.host if request.client else ''}"]
    wait = throttle.retry_after(keys)
    if wait:
        raise HTTPException(429, "登录失败次数过多，请稍后再试",
                            headers={"Retry-After": str(wait)})  # fmt: skip
    token = log_in(store, body.username, body.password)
    if token is None:
        throttle.failed(keys)
        raise HTTPException(401, "用户名或密码错误，或账号已停用")
    throttle.succeeded(account)
    user = session_user(store, token)
    assert user is not None
    return LoginResponse(token=token, username=user.username, role=user.role,
                         expires_in_s=SESSION_HOURS * 3600)  # fmt: skip


@router.post("/logout", status_code=204)
def logout(request: Request, store: StoreDep, _: ReviewerDep) -> None:
    """End this session: its token is refused from now on."""
    log_out(store, bearer_token(request))


@router.get("/tasks")
def tasks(
    store: StoreDep,
    _: ReviewerDep,
    status: Annotated[str, Query(pattern="^(open|claimed|done|invalid)$")] = "open",
    reason: Annotated[ReviewReason | None, Query(description="a reason for review")] = None,
    street: Annotated[Code | None, Query(description="street code")] = None,
    category: Name | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReviewTaskList:
    """The queue, most in need of a person first."""
    where = QueueFilter(status=status, reason=reason, street_code=street, category=category)
    with store.session() as session:
        listed = list_tasks(session, where, limit)
        joined = joined_messages(session, [task.id for task, _ in listed])
        # the messages repeated, loaded at once: task_out's session.get then finds them loaded
        originals = {m.duplicate_of for _, m in listed if m.duplicate_of is not None}
        session.scalars(select(MessageRow).where(MessageRow.id.in_(originals))).all()
        return ReviewTaskList(
            tasks=[task_out(session, t, m, joined.get(t.id, [])) for t, m in listed]
        )


def _act(store: Store, act: Callable[[Session], ReviewTaskRow]) -> ReviewTaskOut:
    try:
        with store.session() as session:
            task = act(session)
            message = session.get(MessageRow, task.message_id)
            assert message is not None  # a foreign key
            return task_out(session, task, message)
    except ReviewNotFound as error:  # the message only: "[W000]" means nothing to a reviewer
        raise HTTPException(404, error.message) from error
    except ReviewConflict as error:
        raise HTTPException(409, error.message) from error
    except ReviewError as error:
        raise refused("review_refused", ("body", "corrections"), error.message) from error


def _choices(request: Request, labels: list[str], district: MessageRouter | None) -> Choices:
    """:class:`Choices` of the served model and district, built once per model version."""
    key = (tuple(labels), id(district))
    cached = getattr(request.app.state, "review_choices", None)
    if cached is None or cached[0] != key:
        cached = (key, Choices.of(labels, district))
        request.app.state.review_choices = cached
    return cached[1]


@router.get("/choices")
def choices(
    request: Request, loaded: LoadedModelDep, district: RouterDep, _: ReviewerDep
) -> ReviewChoices:
    """What a correction may set (the served model's categories, the district's departments
    and grids) and the streets the queue can be filtered by."""
    allowed = _choices(request, loaded.meta.labels, district)
    return ReviewChoices(categories=list(allowed.categories), departments=list(allowed.departments),
                         streets=allowed.streets())  # fmt: skip


def _grid_index(request: Request, district: MessageRouter | None) -> GridIndex:
    """The district's :class:`GridIndex`, built once per district."""
    cached = getattr(request.app.state, "grid_index", None)
    if cached is None or cached[0] != id(district):
        cached = (id(district), GridIndex.of(district.registry if district else None))
        request.app.state.grid_index = cached
    return cached[1]


@router.get("/grids")
def grids(
    request: Request,
    district: RouterDep,
    _: ReviewerDep,
    q: Annotated[str, Query(min_length=1, max_length=50, description="part of a name")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ReviewGridList:
    """The grids a name may mean: part of a grid's, community's or street's name or alias
    (e.g. ``西河路`` gives the grids of 西河路社区), best match first; ``total`` counts all
    matches. Empty when the service does not route."""
    hits, total = _grid_index(request, district).search(q, limit)
    return ReviewGridList(grids=[hit.as_dict() for hit in hits], total=total)


WindowDays = Annotated[int, Query(ge=1, le=3660, description="days up to the newest record")]


@router.get("/stats")
def stats(store: StoreDep, _: ReviewerDep, hot_days: WindowDays = HOT_ISSUE_DAYS) -> dict[str, Any]:
    """The dashboard: tasks by status, decided today, agreement with the models, and the hot
    issues of the ``hot_days`` days up to the newest message."""
    with store.session() as session:
        return queue_stats(session, hot_days=hot_days)


@router.get("/stats/series")
def stats_series(store: StoreDep, _: ReviewerDep, days: WindowDays = 30) -> dict[str, Any]:
    """The dashboard's pictures (:func:`wangge.serve.dashboard.series`): messages, queued
    and auto-accepted, categories, decisions per day, and messages per street."""
    with store.session() as session:
        return series(session, days)


TASK_RESPONSES = error_responses(404, 409, 413)


@router.post("/tasks/{task_id}/claim", responses=TASK_RESPONSES)
def claim_task(
    task_id: Annotated[RowId, PathParameter()],
    body: ClaimRequest,
    store: StoreDep,
    user: ReviewerDep,
) -> ReviewTaskOut:
    """Take the task: others get 409 until it is decided or the claim lapses."""
    return _act(store, lambda session: claim(session, task_id, user.username, body.version))


@router.post("/tasks/{task_id}/decision", responses=TASK_RESPONSES)
def decide_task(
    task_id: Annotated[RowId, PathParameter()],
    body: DecisionRequest,
    request: Request,
    store: StoreDep,
    user: ReviewerDep,
    loaded: LoadedModelDep,
    district: RouterDep,
    ingestor: IngestorDep,
) -> ReviewTaskOut:
    """Accept, correct or invalidate the message of a task you hold. Corrected values must be
    among ``GET /review/api/choices``; a corrected duplicate link moves the message's case."""
    allowed = _choices(request, loaded.meta.labels, district)
    corrections = body.corrections.changes()
    decided = _act(store, lambda session: decide(
        session, task_id, user.username, body.version, body.action, corrections, allowed
    ))  # fmt: skip
    if "duplicate_of" in corrections:
        ingestor.move(str(decided.message_id), str(decided.prediction["case_id"]))
    return decided


def admin(user: ReviewerDep) -> User:
    """The logged-in user if an administrator; 403 for a reviewer."""
    if user.role != "admin":
        raise HTTPException(403, "仅限管理员")
    return user


AdminDep = Annotated[User, Depends(admin)]


@router.post("/admin/models/promote", responses=error_responses(403, 409, 413))
def promote_model(body: PromoteRequest, request: Request, user: AdminDep) -> PromoteResponse:
    """Serve another version of the model store; the next request swaps to it. A version
    not in the store, or one that does not load, is refused with 422."""
    store = _model_store(request)
    try:
        promote(store, body.version, by=user.username)
    except WanggeError as error:
        reason = _refusal("promotion", error)
        raise refused("version_refused", ("body", "version"), reason) from error
    return PromoteResponse(version=body.version)


@router.post("/admin/models/rollback", responses=error_responses(403, 409))
def rollback_model(request: Request, user: AdminDep) -> PromoteResponse:
    """Serve again the version promoted before the current one; 409 when there is none, or
    it no longer loads."""
    try:
        version = rollback(_model_store(request), by=user.username)
    except WanggeError as error:
        raise HTTPException(409, _refusal("rollback", error)) from error
    return PromoteResponse(version=version)


def _refusal(action: str, error: WanggeError) -> str:
    """Why ``action`` was refused, as the admin can act on it; a broken version's details,
    which name server paths, go to the server log only."""
    message = str(error)
    if not isinstance(error, VersionError):
        logger.warning("model %s refused: %s", action, message)
        message = "the version does not load (details in the server log)"
    return f"{action} refused: {message}"


def _model_store(request: Request) -> Path:
    store: Path | None = request.app.state.settings.model_store
    if store is None:
        raise HTTPException(409, "the service runs without a model store (WANGGE_MODEL_STORE)")
    return store


STATIC = Path(__file__).resolve().parent.parent / "static"
page = APIRouter(tags=["review"])


@page.get("/review", include_in_schema=False)
def review_page() -> FileResponse:
    """The staff page (plain HTML and JavaScript over /review/api; no build step)."""
    return FileResponse(STATIC / "review.html")
