"""Security headers on every response, added by a pure ASGI middleware (no per-request task).

- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``X-Frame-Options: DENY`` everywhere;
- a Content-Security-Policy without inline script and ``frame-ancestors 'none'`` everywhere
  but the interactive API docs (``/docs``, ``/redoc``), whose pages are inline scripts;
- ``Cache-Control: no-store`` on the API's answers (``/v1/``, ``/review/api/``), which carry
  residents' messages and, at login, a session token.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EVERYWHERE = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
INLINE_SCRIPT_PAGES = ("/docs", "/redoc")
NOT_STORED = ("/v1/", "/review/api/")


def headers_for(path: str) -> list[tuple[str, str]]:
    """The security headers of a response to ``path``."""
    headers = list(EVERYWHERE)
    if not path.startswith(INLINE_SCRIPT_PAGES):
        headers.append(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
    if path.startswith(NOT_STORED):
        headers.append(("Cache-Control", "no-store"))
    return headers


class SecurityHeaders:
    """ASGI middleware setting :func:`headers_for` on each HTTP response (a header the route set
    itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
