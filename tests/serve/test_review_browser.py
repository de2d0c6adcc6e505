"""The staff page in a real browser (headless Chromium driven by Playwright): log in, open a
task, correct it, see the queue update; the page in Chinese only, read-only decided tasks,
grid search, the hot-issue window and the dashboard's charts. Skipped without Playwright or
Chromium; CI has both. With WANGGE_SCREENSHOTS=DIR it saves the page's screenshots there
(docs/ holds them).

The page's Content-Security-Policy forbids the eval() that ``wait_for_function`` needs (which
shows the page itself runs without it): the tests wait by locator instead."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
# Latin words the page may show: product names, and the test reviewer's login name (user data)
ALLOWED_LATIN = {"wang"}
MESSAGES = (  # (id, content, reported): old data, so that a window ending "now" would be empty
    ("m1", "城厢街道陈公桥社区小区垃圾桶满了没人清理，臭气熏天", "2024-03-10T09:00:00"),
    ("m2", "工地晚上施工太吵", "2024-03-10T22:00:00"),
    ("m3", "楼道垃圾很臭，难道没人管吗", "2024-03-09T08:00:00"),
    ("m4", "楼道垃圾很臭，难道没人管吗", "2024-03-08T08:00:00"),  # a case of two reports
    ("m5", "装修噪音从早到晚", "2024-01-20T10:00:00"),
    ("m6", "装修噪音从早到晚", "2024-01-21T10:00:00"),  # a hot issue of January only
)
TASKS = 4  # one open task per case: m4 joins m3's task, m6 m5's


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """The service on a free loopback port, with one reviewer and messages to review (all of
    them: the model's review threshold is 0.99)."""
    url = f"sqlite:///{tmp_path / 'wangge.sqlite3'}"
    assert CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    added = CliRunner().invoke(cli, ["users", "add", "wang", "--database-url", url], input=PASSWORD)
    assert added.exit_code == 0, added.output
    model, meta = tiny_model(tmp_path / "model", review_threshold=0.99)
    app = create_app(
        Settings(database_url=url, encoder_dir=None, route=True), model=model, meta=meta
    )
    with live_server(app) as base:
        for id_, content, at in MESSAGES:
            body = {"id": id_, "content": content, "created_at": at}
            response = httpx.post(f"{base}/v1/messages", json=body)
            assert response.status_code == 200, response.text
        yield base


@pytest.fixture()
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def logged_in(browser: Any, server: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page.goto(f"{server}/review")
    page.fill("input[name=username]", "wang")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#queue li")
    return page


def latin_words(text: str) -> set[str]:
    """Words of two or more Latin letters (single letters are the keyboard shortcuts)."""
    return set(re.findall(r"[A-Za-z]{2,}", text)) - ALLOWED_LATIN


def eventually(page: Any, expression: str, seconds: float = 5) -> Any:
    """``expression``'s value once truthy (polled: the page's CSP rules out
    ``wait_for_function``), or its last value."""
    for _ in range(int(seconds * 10)):
        value = page.evaluate(expression)
        if value:
            return value
        page.wait_for_timeout(100)
    return value


def open_task(page: Any, text: str) -> None:
    page.click(f"#queue li:has-text('{text}')")
    page.locator("#task-text", has_text=text).wait_for()


def test_a_reviewer_corrects_a_task_in_the_browser(server: str, browser: Any) -> None:
    shots = os.environ.get("WANGGE_SCREENSHOTS")
    page = logged_in(browser, server)
    assert page.locator("#queue li").count() == TASKS
    assert f"待复核 {TASKS}" in page.inner_text("#stats")
    reasons = page.locator("#filters select[name=reason] option").all_inner_texts()
    assert reasons[:3] == ["全部原因", "分类存疑", "位置存疑"] and "待定位" not in reasons
    assert "分类存疑" in page.inner_text("#queue")  # codes shown by their labels
    open_task(page, "陈公桥")
    assert page.locator("mark.place").all_inner_texts() == ["城厢街道", "陈公桥社区"]
    assert "状态：待复核" in page.inner_text("#task")
    page.fill("#c-grid", "陈公桥")  # a community's bare name offers its grids, from the server
    option = page.locator("#grid-options li[data-id]", has_text="陈公桥社区").first
    option.wait_for()
    grid = option.get_attribute("data-id")
    if shots:
        page.screenshot(path=f"{shots}/review-task.png")
    option.click()
    assert page.input_value("#c-grid") == grid
    assert "陈公桥社区" in page.inner_text("#grid-chosen")
    page.locator("#task-text").click()  # leave the form: the page's shortcuts work again
    page.keyboard.press("c")  # claim
    page.locator("#queue li.selected .reasons", has_text="wang").wait_for()
    page.fill("#c-category", "噪音")
    page.fill("#c-grid", grid or "")
    page.click("#correction button[type=submit]")
    page.locator("#stats", has_text="已完成 1").wait_for()
    assert page.locator("#queue li").count() == TASKS - 1
    assert "wang" in page.inner_text("#reviewers")  # the dashboard counts the decision
    page.select_option("#filters select[name=status]", "done")
    page.click("#filters button[type=submit]")
    # the decided task, with the corrected grid's community, read-only
    page.locator("#task", has_text="状态：已完成").wait_for()
    assert "陈公桥社区" in page.inner_text("#task")
    assert page.locator("#claim, #accept, #invalid, #correction").count() == 0
    assert "只读" in page.inner_text("#task")
    if shots:
        page.screenshot(path=f"{shots}/review-queue.png")
    page.click("#logout")  # the session ends: the login form again, the token forgotten
    page.locator("#login-form").wait_for()
    assert page.evaluate("sessionStorage.getItem('wangge-token')") is None


def test_the_login_page_shows_only_the_form(server: str, browser: Any) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{server}/review")
    page.locator("#login-form").wait_for()
    assert not page.locator("#work").is_visible()
    assert not page.locator("#queue").is_visible() and not page.locator("#dashboard").is_visible()
    assert latin_words(page.inner_text("body")) == set()
    if os.environ.get("WANGGE_SCREENSHOTS"):
        page.screenshot(path=f"{os.environ['WANGGE_SCREENSHOTS']}/review-login.png")


def test_api_errors_are_shown_in_chinese(server: str, browser: Any) -> None:
    page = logged_in(browser, server)
    open_task(page, "工地晚上")
    page.click("#accept")  # not claimed: 409 with a Chinese sentence from the server
    page.locator("#task-error", has_text="请先认领任务").wait_for()
    page.click("#claim")
    page.locator("#task", has_text="状态：已认领").wait_for()
    page.fill("#c-grid", "nowhere")  # an unknown grid: the server's 422 names the Latin input
    page.click("#correction button[type=submit]")
    error = page.locator("#task-error")
    error.filter(has_text="取值无效").wait_for()
    assert latin_words(error.inner_text()) == set()
    page.fill("#c-grid", "西河路")  # a name, not a grid picked from the search: refused on the page
    page.click("#correction button[type=submit]")
    page.locator("#task-error", has_text="请从搜索结果中选择一个网格").wait_for()
    page.fill("#c-grid", "")
    # a request the server refuses with an English pydantic message, mapped to Chinese
    message = page.evaluate(
        "wanggeReview.api('/tasks?limit=0').then(() => '', (error) => error.message)"
    )
    assert message == "数量：数值过小"
    message = page.evaluate("wanggeReview.errorText(503, 'the database is unavailable')")
    assert message == "服务暂时不可用，请稍后重试"


def test_highlights_skip_single_characters_and_stop_words(server: str, browser: Any) -> None:
    page = logged_in(browser, server)
    open_task(page, "楼道垃圾")
    assert "留言编号 m4" in page.inner_text("#task-joined")  # the repeat joined this task
    evidence = page.evaluate(
        "wanggeReview.state.tasks[wanggeReview.state.index].prediction.evidence"
    )
    assert any(len(word) == 1 for word in evidence), evidence  # the model's, unfiltered
    marked = page.locator("#task-text mark").all_inner_texts()
    assert marked and all(len(word) > 1 for word in marked), marked
    assert "难道" not in marked  # a stop word


def test_decided_tasks_are_read_only(server: str, browser: Any) -> None:
    page = logged_in(browser, server)
    open_task(page, "工地晚上")
    page.keyboard.press("c")
    page.locator("#task", has_text="状态：已认领").wait_for()
    page.keyboard.press("x")  # invalid
    page.locator("#queue li").nth(TASKS - 1).wait_for(state="detached")
    page.select_option("#filters select[name=status]", "invalid")
    page.click("#filters button[type=submit]")
    page.locator("#task", has_text="状态：无效").wait_for()
    assert page.locator("#claim, #accept, #invalid, #correction").count() == 0
    with page.expect_request("**/review/api/**", timeout=1000) as request:
        page.keyboard.press("c")
        page.keyboard.press("a")
        page.keyboard.press("j")  # moves, but changes nothing: no request at all
        page.locator("#filters button[type=submit]").click()  # the one request of this block
    assert "/tasks?" in request.value.url


def test_the_hot_issues_window_ends_at_the_newest_message(server: str, browser: Any) -> None:
    page = logged_in(browser, server)
    page.locator("#window-days").select_option("7")
    page.locator("#hot-title", has_text="截至 2024-03-10 的近7天").wait_for()
    assert "楼道垃圾很臭" in page.inner_text("#hot")
    assert "装修噪音" not in page.inner_text("#hot")
    page.locator("#window-days").select_option("90")
    page.locator("#hot", has_text="装修噪音").wait_for()
    assert "楼道垃圾很臭" in page.inner_text("#hot")


def test_the_dashboard_draws_its_charts_and_the_page_speaks_chinese(
    server: str, browser: Any
) -> None:
    page = logged_in(browser, server)
    open_task(page, "工地晚上")
    page.keyboard.press("c")
    page.locator("#task", has_text="状态：已认领").wait_for()
    page.keyboard.press("a")  # a decision for the decisions' chart
    page.locator("#stats", has_text="已完成 1").wait_for()
    open_task(page, "陈公桥")
    page.locator("#window-note", has_text="截至最新留言 2024-03-10").wait_for()
    for chart in ("messages", "decisions", "categories", "streets"):
        drawn = page.evaluate(f"Chart.getChart('chart-{chart}') !== undefined")
        assert drawn, chart
    counted = page.evaluate("Chart.getChart('chart-messages').data.datasets[1].data")
    assert sum(counted) == 4  # the 30 days up to 2024-03-10, all queued (threshold 0.99)
    decisions = "Chart.getChart('chart-decisions').data.datasets[0].data.at(-1)"
    assert eventually(page, decisions) == 1  # accepted today: the decisions' window ends today
    streets = page.evaluate("Chart.getChart('chart-streets').data.labels")
    assert "城厢街道" in streets
    page.locator("#dashboard").scroll_into_view_if_needed()
    text = page.inner_text("body")
    assert "看板" in text and "待复核" in text
    assert latin_words(text) == set(), text
    shots = os.environ.get("WANGGE_SCREENSHOTS")
    if shots:
        page.screenshot(path=f"{shots}/review-dashboard.png", full_page=True)


def test_the_page_says_when_logins_are_locked_out(server: str, browser: Any) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{server}/review")
    page.fill("input[name=username]", "wang")
    for attempt in range(6):
        page.fill("input[name=password]", f"wrong password {attempt}")
        with page.expect_response("**/review/api/login"):
            page.click("#login-form button[type=submit]")
        if attempt == 4:
            assert page.inner_text("#login-error") == "用户名或密码错误"
    page.locator("#login-error", has_text="登录失败次数过多，请 15 分钟后再试").wait_for()
