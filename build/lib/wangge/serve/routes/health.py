"""``GET /healthz``: liveness and which model is being served."""

from __future__ import annotations

from fastapi import APIRouter

from wangge.serve.dependencies import LoadedModelDep
from wangge.serve.schemas import HealthResponse

router = APIRouter(tags=["health"])


# async: it does no work, and on the event loop it keeps answering while every threadpool
# thread is busy scoring, so a load balancer does not take a busy instance for a dead one.
@router.get("/healthz", summary="Service health and the model in use")
async def healthz(loaded: LoadedModelDep) -> HealthResponse:
    return HealthResponse(
        status="ok", model_name=loaded.meta.name, model_version=loaded.meta.version
    )
