"""``GET /v1/model``: what the served model is, so that intake systems can adapt to it."""

from __future__ import annotations

from fastapi import APIRouter

from wangge.serve.dependencies import LoadedModelDep
from wangge.serve.schemas import ModelInfo

router = APIRouter(tags=["model"])


@router.get("/v1/model", summary="The served model: version, categories, evaluation")
async def model_info(loaded: LoadedModelDep) -> ModelInfo:
    meta = loaded.meta
    return ModelInfo(
        name=meta.name,
        version=meta.version,
        created_at=meta.created_at,
        labels=meta.labels,
        review_threshold=meta.metrics.get("review_threshold"),
        metrics=meta.metrics,
    )
