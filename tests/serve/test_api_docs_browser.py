"""The API docs in a real browser with no network: /docs (Swagger UI) and /redoc render the
operations from files the service serves itself. Headless Chromium (Playwright) aborts every
request that does not go to the service, so a page that needs a CDN shows no operation.
Skipped without Playwright or Chromium; CI has both."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from conftest import CHROMIUM, live_server, needs_chromium, tiny_model

from wangge.serve.app import create_app
from wangge.serve.config import Settings

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("docs")
    model, meta = tiny_model(directory / "model")
    settings = Settings(database_url=f"sqlite:///{directory / 'db.sqlite3'}", route=False)
    with live_server(create_app(settings, model=model, meta=meta)) as base:
        yield base


def open_offline(server: str, path: str, ready: str) -> tuple[str, list[str]]:
    """Load ``path`` with every request to another host aborted; wait for the ``ready``
    selector. Returns the page's text and the URLs that were blocked."""
    blocked: list[str] = []

    def only_the_service(route: sync_api.Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.route("**/*", only_the_service)
        page.goto(f"{server}{path}")
        page.wait_for_selector(ready, timeout=20_000)
        text = page.inner_text("body")
        browser.close()
    return text, blocked


def test_swagger_ui_renders_the_operations_offline(server: str) -> None:
    text, blocked = open_offline(server, "/docs", ".opblock-summary-path[data-path='/v1/classify']")
    assert "Classify messages" in text and "/v1/model" in text
    assert blocked == []


# ReDoc's sidebar credit ("API docs by Redocly") always asks Redocly's CDN for this logo;
# offline the image fails and ReDoc leaves it out. Nothing else may leave the service.
REDOC_CREDIT_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_redoc_renders_the_operations_offline(server: str) -> None:
    text, blocked = open_offline(server, "/redoc", 'text="/v1/classify"')
    assert "Classify messages" in text
    assert set(blocked) <= {REDOC_CREDIT_LOGO}
