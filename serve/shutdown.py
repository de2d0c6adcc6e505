"""Requests caught by the server's shutdown (SIGTERM; see :mod:`wangge.serve.server`) are
answered 503 with ``Retry-After`` and a JSON ``detail``, never left without an answer or
given a bare 500.

Two cases: a batch still being scored when the signal comes is refused at its next chunk
(:class:`ShuttingDown`, raised by :func:`wangge.serve.service.triage_in_chunks`, before
anything of it is stored); a request still running when the graceful shutdown times out is
cancelled by uvicorn, and :class:`AnswerCancelled` answers it.
"""

from __future__ import annotations

import asyncio
import json
import threading

from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER_SECONDS = 5  # also for a database that is unavailable (serve/app.py)
REFUSED = "the server is shutting down; nothing of this request was stored: send it again"
CANCELLED = (
    "the server is shutting down and this request did not finish: send it again "
    "(a message with an id is not stored twice)"
)


class ShuttingDown(Exception):
    """The server is stopping: a batch still being scored is refused, nothing of it stored."""


def unavailable_body(detail: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of a 503 with ``Retry-After``."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ]
    return body, headers


class AnswerCancelled:
    """Answer 503 to a request that uvicorn cancels at the end of its graceful shutdown, if
    nothing was sent yet (uvicorn itself would log a traceback and send a plain-text 500)."""

    def __init__(self, app: ASGIApp, stopping: threading.Event) -> None:
        self.app = app
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if started or not self.stopping.is_set():
                raise
            # Cancelled by the shutdown, which awaits this task no more: answer and end.
            body, headers = unavailable_body(CANCELLED)
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
