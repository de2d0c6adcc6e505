"""``POST /v1/messages`` (ingest), ``GET /v1/cases/{id}``, ``GET /v1/hot-issues``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from wangge.models.dedup import heat
from wangge.serve.dependencies import (
    LIMIT_RESPONSES,
    CheckedIngestMessages,
    IngestorDep,
    LoadedModelDep,
    RouterDep,
    SettingsDep,
    StoreDep,
    refused,
)
from wangge.serve.schemas import (
    CaseOut,
    HotIssuesResponse,
    IngestResponse,
    InputTime,
    RowId,
    error_responses,
)
from wangge.serve.storage import CaseRow, case_summary, hot_cases

router = APIRouter(tags=["messages and cases"])


@router.post(
    "/v1/messages",
    summary="Ingest messages",
    description=(
        "Classifies, routes, deduplicates and stores each message (committed before the "
        "answer). A message joins the case of an earlier one it repeats or opens its own; "
        "sending a message with an `id` already stored returns the stored result "
        "(`replayed: true`) and stores nothing."
    ),
    responses=LIMIT_RESPONSES | error_responses(413),
)
def ingest(
    messages: CheckedIngestMessages,
    loaded: LoadedModelDep,
    settings: SettingsDep,
    routing: RouterDep,
    ingestor: IngestorDep,
) -> IngestResponse:
    results = ingestor.ingest(loaded, routing, messages, top_k=settings.top_k)
    return IngestResponse(model_version=loaded.meta.version, results=results)


def _case_out(summary: dict, now: datetime) -> CaseOut:
    age = (now - summary["last_at"]).total_seconds() / 86400
    score = heat(
        summary["reports"], summary["reporters"], summary["likes"], summary["dislikes"], age
    )
    return CaseOut(**summary, heat=round(score, 4))


@router.get(
    "/v1/cases/{case_id}", summary="A case with its messages", responses=error_responses(404)
)
def get_case(case_id: Annotated[RowId, Path()], store: StoreDep) -> CaseOut:
    with store.session() as session:
        case = session.get(CaseRow, case_id)
        if case is None:
            raise HTTPException(status_code=404, detail=f"no case {case_id}")
        return _case_out(case_summary(session, case), datetime.now())


@router.get(
    "/v1/hot-issues",
    summary="Cases ranked by heat",
    description=(
        "Cases with a report between `since` and `until` (default: now), ranked by heat "
        "over the reports in that window: (ln(1+reports) + ln(1+distinct reporters) + "
        "0.5·ln(1+max(0, likes−dislikes))) halved for every 30 days between the case's last "
        "report in the window and `until`. Counts and likes in the answer are the window's."
    ),
)
def hot_issues(
    store: StoreDep,
    since: InputTime | None = None,
    until: InputTime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> HotIssuesResponse:
    until = until or datetime.now()
    if since is not None and since > until:
        raise refused("since_after_until", ("query", "since"), "since is after until")
    with store.session() as session:
        ranked = hot_cases(session, since, until)[:limit]
    cases = [CaseOut(**case | {"case_id": str(case["case_id"])}) for case in ranked]
    return HotIssuesResponse(since=since, until=until, cases=cases)
