"""``POST /v1/classify``: categories for one message or a batch."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request

from wangge.serve.dependencies import (
    LIMIT_RESPONSES,
    CheckedMessages,
    LoadedModelDep,
    RouterDep,
    SettingsDep,
)
from wangge.serve.schemas import ClassifyResponse, ErrorResponse, error_responses
from wangge.serve.service import triage_messages
from wangge.serve.shutdown import ShuttingDown

logger = logging.getLogger(__name__)

router = APIRouter(tags=["classify"])


# A plain ``def``: scoring is CPU-bound, so FastAPI runs it in the threadpool and the event
# loop stays free to parse other requests and answer /healthz. Measured under uvicorn, a
# one-message request takes about 9 ms either way: the thread hop (about 0.2 ms) is within the
# noise, while an ``async def`` would stall every other request for as long as it scores.
@router.post(
    "/v1/classify",
    summary="Classify messages",
    description=(
        'Send one message object or `{"messages": [...]}`. Each message needs a non-blank '
        "`title` or `content`; `address`, `latitude`/`longitude` and `grid_id` help routing. "
        "Results come back in input order with the ids echoed, each with its category, "
        "place (street, community, grid), departments and review reasons."
    ),
    responses={
        500: {"model": ErrorResponse, "description": "A server bug; it is logged."},
        **LIMIT_RESPONSES,
        **error_responses(413),
    },
)
def classify(
    request: Request,
    messages: CheckedMessages,
    loaded: LoadedModelDep,
    settings: SettingsDep,
    router: RouterDep,
) -> ClassifyResponse:
    try:
        results = triage_messages(
            loaded, messages, top_k=settings.top_k, router=router,
            stopping=request.app.state.stopping,
        )  # fmt: skip
    except ShuttingDown:
        raise  # 503 (the app's handler)
    except Exception:
        # The input was validated, so whatever fails here is a bug in the model or the service.
        logger.exception(
            "classifying %d messages with model %s %s failed",
            len(messages),
            loaded.meta.name,
            loaded.meta.version,
        )
        raise HTTPException(
            status_code=500, detail="internal error while classifying; the server logged it"
        ) from None
    return ClassifyResponse(model_version=loaded.meta.version, results=results)
