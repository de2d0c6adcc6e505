"""The staff page in a real browser (headless Chromium driven by Playwright): log in, open a
task, correct it, see the queue update. Skipped without Playwright or Chromium; CI has both.
With WANGGE_SCREENSHOTS=DIR it saves the page's screenshots there (docs/ holds them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, live_server, needs_chromium, tiny_model
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.serve.app import create_app
from wangge.serve.config import Settings

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
PASSWORD = "correct horse battery"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """The service on a free loopback port, with one reviewer and two messages to review."""
    url = f"sqlite:///{tmp_path / 'wangge.sqlite3'}"
    assert CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    added = CliRunner().invoke(cli, ["users", "add", "wang", "--database-url", url], input=PASSWORD)
    assert added.exit_code == 0, added.output
    model, meta = tiny_model(tmp_path / "model", review_threshold=0.99)
    app = create_app(
        Settings(database_url=url, encoder_dir=None, route=True), model=model, meta=meta
    )
    with live_server(app) as base:
        messages = (
            ("m1", "城厢街道陈公桥社区小区垃圾桶满了没人清理，臭气熏天"),
            ("m2", "工地晚上施工太吵"),
        )
        for id_, content in messages:
            response = httpx.post(f"{base}/v1/messages", json={"id": id_, "content": content})
            assert response.status_code == 200
        yield base


def test_a_reviewer_corrects_a_task_in_the_browser(server: str) -> None:
    shots = os.environ.get("WANGGE_SCREENSHOTS")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        page.goto(f"{server}/review")
        page.fill("input[name=username]", "wang")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#queue li")
        assert page.locator("#queue li").count() == 2
        assert "待复核 2" in page.inner_text("#stats")
        reasons = page.locator("#filters select[name=reason] option").all_inner_texts()
        assert reasons[:3] == ["全部原因", "分类存疑", "位置存疑"] and "待定位" in reasons
        assert "分类存疑" in page.inner_text("#queue")  # codes shown by their labels
        page.click("#queue li:has-text('陈公桥')")
        assert page.locator("mark.place").all_inner_texts() == ["城厢街道", "陈公桥社区"]
        grids = page.locator("#grids option")
        assert grids.count() > 100  # search over the district's grids in the correction form
        grid = page.locator("#grids option", has_text="陈公桥社区").first.get_attribute("value")
        if shots:
            page.screenshot(path=f"{shots}/review-task.png")
        page.keyboard.press("c")  # claim
        # waits by locator: the page's Content-Security-Policy forbids the eval() that
        # wait_for_function needs, which shows the page itself runs without it
        page.locator("#queue li.selected .reasons", has_text="wang").wait_for()
        page.fill("#c-category", "噪音")
        page.fill("#c-grid", grid)
        page.click("#correction button[type=submit]")
        page.locator("#stats", has_text="已完成 1").wait_for()
        assert page.locator("#queue li").count() == 1
        assert "wang" in page.inner_text("#reviewers")  # the dashboard counts the decision
        page.select_option("#filters select[name=status]", "done")
        page.click("#filters button[type=submit]")
        # the decided task, with the corrected grid's community
        page.locator("#task", has_text="状态：done").wait_for()
        assert "陈公桥社区" in page.inner_text("#task")
        if shots:
            page.screenshot(path=f"{shots}/review-queue.png")
        page.click("#logout")  # the session ends: the login form again, the token forgotten
        page.locator("#login-form").wait_for()
        assert page.evaluate("sessionStorage.getItem('wangge-token')") is None
        browser.close()


def test_the_page_says_when_logins_are_locked_out(server: str) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(locale="zh-CN")
        page.goto(f"{server}/review")
        page.fill("input[name=username]", "wang")
        for attempt in range(6):
            page.fill("input[name=password]", f"wrong password {attempt}")
            with page.expect_response("**/review/api/login"):
                page.click("button[type=submit]")
            if attempt == 4:
                assert page.inner_text("#login-error") == "用户名或密码错误"
        page.locator("#login-error", has_text="登录失败次数过多，请 15 分钟后再试").wait_for()
        browser.close()
