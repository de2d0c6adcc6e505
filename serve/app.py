"""The FastAPI application: :func:`create_app` builds it; its lifespan loads the model and opens
the store and the duplicate index."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from wangge.models.router import MessageRouter
from wangge.pipeline.artifact import ModelMeta
from wangge.pipeline.triage import Classifier
from wangge.serve.auth import LoginThrottle
from wangge.serve.config import Settings, get_settings
from wangge.serve.dependencies import ApiKeyDep
from wangge.serve.headers import SecurityHeaders
from wangge.serve.ingest import Ingestor
from wangge.serve.limits import BodyLimit
from wangge.serve.migrate import open_store
from wangge.serve.routes import cases, classify, health, locating, messages, model_info, review
from wangge.serve.schemas import ErrorResponse, error_responses
from wangge.serve.service import prepare_model
from wangge.serve.shutdown import (
    REFUSED,
    RETRY_AFTER_SECONDS,
    AnswerCancelled,
    ShuttingDown,
    unavailable_body,
)

logger = logging.getLogger(__name__)

# The database cannot be reached or cannot do its work now (down, locked, disk full, connection
# pool exhausted): worth retrying. Other database errors (integrity, data, programming) are
# handled where they can happen or are bugs, and stay 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
DATABASE_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorResponse,
        "description": f"The database is unavailable, or the server is shutting down; retry "
        f"after `Retry-After` seconds ({RETRY_AFTER_SECONDS}).",
    }
}

DESCRIPTION = """\
Classifies residents' messages for grid management into categories, with calibrated
probabilities, the top categories and a flag for messages a person should review; routes each
to its street, community and grid (or out of the district) and proposes the departments that
must handle it, with the evidence behind each.

Errors: every refused request gets **422** with `detail`, a list of `{loc, msg, type}` saying
where the problem is (`loc`, e.g. `["body", "batch", "messages", 2]`) and what it is (`msg`).
Other errors have a `detail` sentence: **401**/**403** for a missing, unknown or revoked
credential, **404** for an unknown case or task, **409** for a conflict with the current state,
**413** for a body over the size limit; when the database is unavailable, or the server is
shutting down, the answer is **503** with `Retry-After`. Times are ISO 8601 with their UTC
offset; a time sent without one is the server's local time.
"""


def create_app(
    settings: Settings | None = None,
    *,
    model: Classifier | None = None,
    meta: ModelMeta | None = None,
    department_model: Classifier | None = None,
    router: MessageRouter | None = None,
) -> FastAPI:
    """Build the app; when it starts, its lifespan loads the model and the router, brings the
    database's schema to the newest revision and rebuilds the duplicate index from it (once:
    requests only use what the lifespan built).

    Passing ``model`` and ``meta`` serves that model instead (tests, embedding) and skips the
    disk; likewise ``router`` replaces the router of ``settings.district_dir``. Either way a
    test prediction runs at startup, so that a model which cannot score stops the service
    before it accepts requests rather than failing each of them.
    """
    settings = settings if settings is not None else get_settings()
    if (model is None) != (meta is None):
        raise ValueError("pass both model and meta, or neither")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loaded_model = prepare_model(
            settings, model=model, meta=meta, department_model=department_model
        )
        app.state.router = router if router is not None else prepare_router(settings)
        store = open_store(settings.database_url, upgrade=True)
        try:
            app.state.store = store
            app.state.ingestor = Ingestor.open(
                settings, store, app.state.loaded_model.dedup_weights, app.state.stopping
            )
            yield
            app.state.ingestor.close()
        finally:
            store.engine.dispose()

    # /docs (Swagger UI) and /redoc load their scripts from the app, not from a CDN:
    # intranets without internet still get the API docs.
    app = FastAPIOffline(
        title="wangge message triage",
        description=DESCRIPTION,
        version=version("wangge"),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.model_swap_lock = threading.Lock()
    app.state.stopping = threading.Event()  # set by the server on SIGTERM (serve/server.py)
    app.state.login_throttle = LoginThrottle()
    app.add_exception_handler(RequestValidationError, _validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    for error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, _database_error_handler)
    app.add_exception_handler(ShuttingDown, _shutting_down_handler)
    app.include_router(health.router)
    for routes in (classify, model_info, messages):  # /v1/: API key when settings.api_keys
        app.include_router(routes.router, dependencies=[ApiKeyDep],
                           responses=DATABASE_RESPONSES | error_responses(401, 403))  # fmt: skip
    # reviewers' accounts
    app.include_router(review.router, responses=DATABASE_RESPONSES | error_responses(401))
    app.include_router(cases.router, responses=DATABASE_RESPONSES | error_responses(401))
    app.include_router(locating.router, responses=DATABASE_RESPONSES | error_responses(401))
    app.include_router(review.page)
    app.mount("/review/static", StaticFiles(directory=review.STATIC), name="review-static")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AnswerCancelled, stopping=app.state.stopping)
    return app


def prepare_router(settings: Settings) -> MessageRouter | None:
    """The district's router, or ``None`` when routing is switched off."""
    if not settings.route:
        return None
    router = MessageRouter.load(
        settings.district_dir,
        grid_file=settings.grid_file,
        ner=settings.location_ner,
        review_threshold=settings.location_review_threshold,
    )
    router.route_many([{"title": "城厢街道路灯不亮"}])  # loads LAC now, not on a request
    logger.info(
        "routing for %s loaded in %.1fs", router.registry.district.name, router.load_seconds
    )
    return router


async def _validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with ``detail``: ``{loc, msg, type}`` per problem.

    Unlike FastAPI's default it leaves out ``input``, which would echo a refused message (up to
    the whole text, personal data included) back to the client and into proxies' logs.
    """
    return JSONResponse(
        status_code=422, content={"detail": [_readable(error) for error in exc.errors()]}
    )


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's answer, except for a JSON body that is not UTF-8 text: FastAPI answers 400
    "There was an error parsing the body"; like any other malformed JSON it is a 422 here."""
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        msg = f"the body is not valid JSON: not UTF-8 text ({exc.__cause__.reason})"
        error = {"type": "json_invalid", "loc": ["body"], "msg": msg}
        return JSONResponse(status_code=422, content={"detail": [error]})
    return await http_exception_handler(request, exc)


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 with ``Retry-After`` and a short message: no statement, parameters or paths."""
    logger.error("database unavailable on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=503,
        content={"detail": "the database is unavailable; retry later"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _shutting_down_handler(request: Request, exc: Exception) -> Response:
    """503 with ``Retry-After`` for a batch refused because the server is stopping."""
    logger.warning("%s %s refused: the server is stopping (%s)", request.method,
                   request.url.path, exc)  # fmt: skip
    body, headers = unavailable_body(REFUSED)
    return Response(body, status_code=503, headers={k.decode(): v.decode() for k, v in headers})


def _readable(error: dict[str, Any]) -> dict[str, Any]:
    loc, msg = list(error["loc"]), error["msg"]
    if error["type"] == "json_invalid":
        # FastAPI puts the character offset where the field name would be: ["body", 17].
        reason = error.get("ctx", {}).get("error", msg)
        msg = f"the body is not valid JSON: {reason} (at character {loc[-1]})"
        loc = ["body"]
    elif error["type"] == "missing" and loc == ["body"]:
        msg = 'the request has no body: send a message object or {"messages": [...]} as JSON'
    return {"type": error["type"], "loc": loc, "msg": msg}
