"""Health probes: ``GET /healthz`` (which model is served), ``GET /healthz/live`` (the process
answers) and ``GET /healthz/ready`` (the database answers and a model is loaded)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wangge.serve.dependencies import LoadedModelDep
from wangge.serve.schemas import HealthResponse, LivenessResponse, ReadinessResponse
from wangge.serve.storage import Store

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


# async: it does no work, and on the event loop it keeps answering while every threadpool
# thread is busy scoring, so a load balancer does not take a busy instance for a dead one.
@router.get("/healthz", summary="Service health and the model in use")
async def healthz(loaded: LoadedModelDep) -> HealthResponse:
    return HealthResponse(
        status="ok", model_name=loaded.meta.name, model_version=loaded.meta.version
    )


@router.get("/healthz/live", summary="Liveness: the process answers")
async def live() -> LivenessResponse:
    return LivenessResponse(status="ok")


# A plain def: the database query runs in the threadpool, not on the event loop.
@router.get(
    "/healthz/ready",
    summary="Readiness: the database answers and a model is loaded",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "A check failed."}},
)
def ready(request: Request) -> ReadinessResponse | JSONResponse:
    state = request.app.state
    failed: list[Literal["database", "model"]] = []
    if not _database_answers(getattr(state, "store", None)):
        failed.append("database")
    if getattr(state, "loaded_model", None) is None:
        failed.append("model")
    if failed:
        body = ReadinessResponse(status="unavailable", failed=failed)
        return JSONResponse(status_code=503, content=body.model_dump())
    return ReadinessResponse(status="ready", failed=[])


def _database_answers(store: Store | None) -> bool:
    if store is None:
        return False
    problem = store.unavailable()
    if problem is not None:
        logger.warning("readiness: %s", problem)
    return problem is None
