"""The 待定位 panel in a real browser: a dispatcher filters the messages that name no
community, selects several and assigns them a grid; an unknown grid is refused in Chinese.
Skipped without Playwright or Chromium. With WANGGE_SCREENSHOTS=DIR it saves a screenshot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import logged_in_page, needs_chromium, staff_server

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
PASSWORD = "correct horse battery"
GRID = "330109001001-G01"  # 陈公桥社区网格, 城厢街道
MESSAGES = (
    ("m1", "城厢街道菜场门口污水横流，气味难闻"),
    ("m2", "城厢街道人民路的窨井盖丢了，晚上很危险"),
    ("m3", "楼下的路灯坏了好几天，晚上出门很不方便"),
    ("m4", "城厢街道陈公桥社区工地夜里施工太吵"),  # located: not listed
)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    with staff_server(tmp_path, MESSAGES, review_threshold=0.0, password=PASSWORD) as base:
        yield base


def test_a_dispatcher_locates_several_messages_at_once(server: str) -> None:
    shots = os.environ.get("WANGGE_SCREENSHOTS")
    with sync_api.sync_playwright() as playwright:
        page = logged_in_page(playwright, server, PASSWORD, height=900)
        page.locator("#locating-count", has_text="（3）").wait_for()
        page.click("#locating summary")
        page.locator("#locating-list li input").first.wait_for()
        assert page.locator("#locating-list li").count() == 3
        assert "待定位 75.0%" in page.inner_text("#queued-shares")
        streets = page.locator("#locating-filter select[name=street] option").all_inner_texts()
        assert streets == ["全部街道", "未写街道（1）", "城厢街道（2）"]
        page.select_option("#locating-filter select[name=street]", label="城厢街道（2）")
        page.click("#locating-filter button[type=submit]")
        page.locator("#locating-range", has_text="共 2 条").wait_for()
        page.check("#locating-all")
        page.fill("#locating-assign input[name=grid_id]", "西河路社区")
        page.click("#locating-assign button[type=submit]")
        page.locator("#locating-message.error", has_text="未知网格“西河路社区”").wait_for()
        if shots:
            page.screenshot(path=f"{shots}/review-locating.png")
        page.fill("#locating-assign input[name=grid_id]", GRID)
        page.click("#locating-assign button[type=submit]")
        page.locator(
            "#locating-message", has_text="已将 2 条留言定位到 城厢街道陈公桥社区"
        ).wait_for()
        assert page.locator("#locating-count").inner_text() == "（1）"
        page.select_option("#locating-filter select[name=street]", value="")
        page.click("#locating-filter button[type=submit]")
        page.locator("#locating-range", has_text="共 1 条").wait_for()
        assert "楼下的路灯" in page.inner_text("#locating-list")
        page.context.browser.close()
