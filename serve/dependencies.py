"""FastAPI dependencies: what the app's lifespan built (the model, the store, the ingestor)
from ``app.state``, the settings, checked input and the caller's API key.

Those that only read memory are ``async def`` on purpose: FastAPI runs a plain ``def``
dependency in the threadpool, which would add a thread hop to every request for nothing.
Those that query the database (:func:`api_key`) are plain ``def``, so that they do not block
the event loop. Nothing here opens a database or builds an index: the lifespan did, once.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Body, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from wangge.errors import WanggeError
from wangge.models.router import MessageRouter
from wangge.pipeline.store import current_version
from wangge.serve.auth import key_status
from wangge.serve.config import Settings
from wangge.serve.ingest import Ingestor
from wangge.serve.schemas import (
    CLASSIFY_EXAMPLES,
    ClassifyRequest,
    IngestMessage,
    IngestRequest,
    MessageIn,
    OneOrBatch,
)
from wangge.serve.service import LoadedModel, prepare_model
from wangge.serve.storage import Store

logger = logging.getLogger(__name__)


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def started(request: Request, name: str) -> Any:
    """What the app's lifespan put on ``app.state`` under ``name``."""
    value = getattr(request.app.state, name, None)
    if value is None:
        raise RuntimeError(
            f"no {name} on app.state: the app's lifespan has not run "
            "(in tests, use TestClient as a context manager)"
        )
    return value


async def loaded_model(request: Request) -> LoadedModel:
    """The model to score with: with a model store, the version promoted now (a promotion
    is picked up here, by the first request after it; requests in flight keep the model
    they started with)."""
    state = request.app.state
    loaded: LoadedModel = started(request, "loaded_model")
    store = state.settings.model_store
    if store is not None and current_version(store) != loaded.store_version:
        loaded = await run_in_threadpool(_swap_model, request.app)
    return loaded


def _swap_model(app: Any) -> LoadedModel:
    """Load the promoted version and serve it from now on; on failure keep the old one."""
    state = app.state
    with state.model_swap_lock:
        loaded: LoadedModel = state.loaded_model
        if current_version(state.settings.model_store) == loaded.store_version:
            return loaded  # another request swapped it meanwhile
        try:
            fresh = prepare_model(state.settings)
        except WanggeError:
            logger.exception(
                "the promoted model cannot serve: still serving %s", loaded.meta.version
            )
            return loaded
        logger.info("now serving model store version %s", fresh.store_version)
        state.ingestor.use_weights(fresh.dedup_weights, state.settings.dedup_threshold)
        state.loaded_model = fresh
        return fresh


async def app_router(request: Request) -> MessageRouter | None:
    return getattr(request.app.state, "router", None)


SettingsDep = Annotated[Settings, Depends(app_settings)]
RouterDep = Annotated[MessageRouter | None, Depends(app_router)]
LoadedModelDep = Annotated[LoadedModel, Depends(loaded_model)]


# The 422 of the endpoints that take messages, with the limits it enforces. The body is
# FastAPI's HTTPValidationError (``detail``: a list of ``{loc, msg, type}``).
LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Refused input, nothing scored or stored: a field of the wrong type or "
        "unknown; a message without text or over `WANGGE_MAX_TEXT_CHARS` characters (type "
        "`text_too_long`); a batch empty or over `WANGGE_MAX_BATCH_SIZE` messages "
        "(`batch_too_large`) or over `WANGGE_MAX_REQUEST_CHARS` characters of title and "
        "content in all (`request_too_large`: split it into several requests). `detail` "
        "lists `{loc, msg, type}` for each problem.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
}


def input_errors(body: OneOrBatch, settings: Settings) -> list[dict[str, Any]]:
    """What is wrong with a parsed body under ``settings``' limits, as validation errors.

    The errors have the shape of pydantic's (``type``, ``loc``, ``msg``) so that a client sees
    one format for every 422, whether the parser or this check refused the body.
    """
    messages = body.messages
    if not body.is_batch:
        return _message_errors(messages[0], ("body", "single"), "the message", settings)
    loc = ("body", "batch", "messages")
    limit = settings.max_batch_size
    if not messages:
        return [_error("batch_empty", loc, f"the batch is empty: send 1 to {limit} messages")]
    if len(messages) > limit:
        return [
            _error(
                "batch_too_large",
                loc,
                f"the batch has {len(messages)} messages, the limit is {limit}: "
                "split it into several requests",
            )
        ]
    errors = [
        error
        for index, message in enumerate(messages)
        for error in _message_errors(message, (*loc, index), f"message {index}", settings)
    ]
    chars = sum(len(message.title or "") + len(message.content or "") for message in messages)
    if not errors and chars > settings.max_request_chars:
        errors.append(
            _error(
                "request_too_large",
                loc,
                f"the batch has {chars} characters in all, the limit is "
                f"{settings.max_request_chars}: split it into several requests",
            )
        )
    return errors


def _message_errors(
    message: MessageIn, loc: tuple[str | int, ...], name: str, settings: Settings
) -> list[dict[str, Any]]:
    title, content = message.title or "", message.content or ""
    if not title.strip() and not content.strip():
        return [
            _error(
                "empty_text",
                loc,
                f"{name} has no text: title and content are both missing or blank; "
                "give at least one",
            )
        ]
    if (message.latitude is None) != (message.longitude is None):
        return [
            _error(
                "incomplete_coordinates",
                loc,
                f"{name} has only one of latitude and longitude: give both or neither",
            )
        ]
    length = len(title) + len(content)
    if length > settings.max_text_chars:
        return [
            _error(
                "text_too_long",
                loc,
                f"{name} is too long: title and content have {length} characters together, "
                f"the limit is {settings.max_text_chars}",
            )
        ]
    return []


def _error(kind: str, loc: tuple[str | int, ...], msg: str) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg}


def refused(kind: str, loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    """A 422 in the documented shape (``detail``: a list of ``{loc, msg, type}``), for what a
    route refuses after parsing."""
    return RequestValidationError([_error(kind, loc, msg)])


def _within_limits(body: OneOrBatch, settings: Settings) -> list[Any]:
    """The request's messages, once they are within ``settings``' limits (else 422)."""
    errors = input_errors(body, settings)
    if errors:
        raise RequestValidationError(errors)
    return body.messages


async def checked_messages(
    body: Annotated[ClassifyRequest, Body(openapi_examples=CLASSIFY_EXAMPLES)],
    settings: SettingsDep,
) -> list[MessageIn]:
    return _within_limits(body, settings)


CheckedMessages = Annotated[list[MessageIn], Depends(checked_messages)]


async def checked_ingest_messages(
    body: Annotated[IngestRequest, Body(openapi_examples=CLASSIFY_EXAMPLES)],
    settings: SettingsDep,
) -> list[IngestMessage]:
    return _within_limits(body, settings)


CheckedIngestMessages = Annotated[list[IngestMessage], Depends(checked_ingest_messages)]


async def ingestor(request: Request) -> Ingestor:
    """The app's ingestor: its store and duplicate index, built by the lifespan."""
    built: Ingestor = started(request, "ingestor")
    return built


IngestorDep = Annotated[Ingestor, Depends(ingestor)]


def store_of(request: Request) -> Store:
    """The service's database (messages, cases, API keys, accounts, the review queue)."""
    store: Store = started(request, "store")
    return store


async def app_store(request: Request) -> Store:
    return store_of(request)


StoreDep = Annotated[Store, Depends(app_store)]


def api_key(request: Request) -> str | None:
    """The caller's name when ``/v1/`` needs a key (``WANGGE_API_KEYS``), else ``None``.

    401 when the key is missing or unknown, 403 when it was revoked. Neither answer names the
    key's owner or prefix: whoever holds a key learns nothing from the answer about whose it is.
    """
    if not request.app.state.settings.api_keys:
        return None
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if key is None and authorization.lower().startswith("bearer "):
        key = authorization[len("bearer ") :].strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="wangge"'}
    if not key:
        raise HTTPException(401, "an API key is needed: send X-API-Key: KEY", headers=challenge)
    name, revoked = key_status(store_of(request), key)
    if name is None:
        raise HTTPException(401, "unknown API key", headers=challenge)
    if revoked:
        raise HTTPException(
            403, "this API key was revoked: ask the service's operator for a new one"
        )
    return name


ApiKeyDep = Depends(api_key)
