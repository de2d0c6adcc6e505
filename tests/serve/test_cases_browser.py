"""The duplicate panel and the case view in a real browser (headless Chromium): a reviewer sees
a borderline duplicate side by side, splits its case, merges two cases and undoes the merge;
the case counts, the audit log and the next duplicate decisions follow. Skipped without
Playwright or Chromium. With WANGGE_SCREENSHOTS=DIR it saves review-duplicate.png and
review-case.png there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import live_server, logged_in_page, needs_chromium, tiny_model
from sqlalchemy import select
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.storage import AuditRow, Store

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
PASSWORD = "correct horse battery"
# Ingested in this order with a duplicate threshold of 0.7 (lexical detector): all but LY1006
# make one case, LY1004 joining it with 0.75 (a borderline duplicate: a review task); LY1007
# opens its own case.
MESSAGES = {
    "LY1001": "城厢街道陈公桥社区小区垃圾桶满了没人清理，臭气熏天",
    "LY1002": "陈公桥社区小区垃圾桶满了好几天没人清理，臭气熏天，请处理",
    "LY1003": "城厢街道陈公桥社区的垃圾桶满了，一直没人清理",
    "LY1004": "陈公桥社区门口的垃圾站臭气熏天，垃圾没人清运",
    "LY1005": "陈公桥社区门口垃圾站臭气熏天，垃圾好几天没人清运了",
    "LY1006": "工地晚上施工太吵，影响休息",
    "LY1007": "陈公桥社区门口的垃圾站没人管，气味很大，苍蝇很多",
}


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, dict]]]:
    """The service with reviewer wang and the messages above; yields its URL, the database's
    and the result of each 留言编号 (its case_id, dup_score …)."""
    url = f"sqlite:///{tmp_path / 'wangge.sqlite3'}"
    assert CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    added = CliRunner().invoke(cli, ["users", "add", "wang", "--database-url", url], input=PASSWORD)
    assert added.exit_code == 0, added.output
    model, meta = tiny_model(tmp_path / "model", review_threshold=0.99)
    settings = Settings(database_url=url, encoder_dir=None, route=True, dedup_threshold=0.8)
    with live_server(create_app(settings, model=model, meta=meta)) as base:
        yield base, url, {id_: post(base, id_, text) for id_, text in MESSAGES.items()}


def post(base: str, id_: str, content: str) -> dict:
    response = httpx.post(f"{base}/v1/messages", json={"id": id_, "content": content})
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def reports(base: str, case_id: str) -> int:
    count: int = httpx.get(f"{base}/v1/cases/{case_id}").json()["reports"]
    return count


def test_a_reviewer_splits_and_merges_cases_in_the_browser(
    server: tuple[str, str, dict[str, dict]],
) -> None:
    base, database, results = server
    cases = {id_: result["case_id"] for id_, result in results.items()}
    first, station, other = cases["LY1001"], cases["LY1004"], cases["LY1007"]
    assert station == first != other and reports(base, first) == 5
    shots = os.environ.get("WANGGE_SCREENSHOTS")
    with sync_api.sync_playwright() as playwright:
        page = logged_in_page(playwright, base, PASSWORD, height=1000)
        page.wait_for_selector("#queue li")
        page.select_option("#filters select[name=reason]", "duplicate")
        page.click("#filters button[type=submit]")
        page.locator("#queue li", has_text="垃圾站").first.click()
        panel = page.locator(".dup-panel")
        panel.wait_for()
        # side by side: the message and the one it matched, by 留言编号, the score in words
        mine, closest = page.locator(".dup-card").nth(0), page.locator(".dup-card.closest")
        assert "LY1004" in mine.inner_text() and "LY1002" in closest.inner_text()
        why = page.locator(".dup-why li").all_inner_texts()
        score = results["LY1004"]["dup_score"]  # the shipped weights' probability
        assert "同一社区（陈公桥社区）" in why and f"重复概率 {score:.2f}（阈值 0.80）" in why
        shared = page.locator("mark.shared").all_inner_texts()
        assert "臭气熏天" in shared and all(len(word) > 1 for word in shared)
        assert "{" not in panel.inner_text()  # no raw JSON
        # the other garbage-station case is offered for a merge; the building site is not
        others = page.inner_text(".dup-others")
        assert "LY1007" in others and "LY1006" not in others
        if shots:
            page.screenshot(path=f"{shots}/review-duplicate.png", full_page=True)

        # split the garbage-station reports out of the garbage-bin case
        page.click("#open-this-case")
        page.locator(".case-count", has_text="共 5 条留言").wait_for()
        for id_ in ("LY1004", "LY1005"):
            page.locator(".case-messages tr", has_text=id_).locator("input").check()
        page.click("#case-split")
        page.locator(".case-count", has_text="共 2 条留言").wait_for()
        assert "移出 2 条留言" in page.inner_text(".case-history")
        station = page.get_attribute(".case-view", "data-case") or ""
        assert station != first and reports(base, first) == 3 and reports(base, station) == 2

        # merge the new case into the other garbage-station case, by a 留言编号
        page.fill("#case-target", "LY1007")
        page.click("#case-merge")
        page.locator(".case-count", has_text="共 3 条留言").wait_for()
        assert page.get_attribute(".case-view", "data-case") == other
        history = page.inner_text(".case-history")  # the merged case's own history with it
        assert f"案件 {station} 并入案件 {other}" in history and "移出 2 条留言" in history
        assert reports(base, station) == 0 and reports(base, other) == 3
        if shots:
            page.locator(".case-view").screenshot(path=f"{shots}/review-case.png")
        # the next duplicate decisions follow: a repeat of a split-off, merged message joins
        # the merged case; a repeat of the bins joins the bins' case
        assert post(base, "LY1008", MESSAGES["LY1005"])["case_id"] == other
        assert post(base, "LY1009", MESSAGES["LY1001"])["case_id"] == first

        # undo the merge: the two messages go back, the new repeat stays
        page.click(".case-merged .case-unmerge")
        page.locator(".case-count", has_text="共 2 条留言").wait_for()
        assert page.get_attribute(".case-view", "data-case") == station
        assert reports(base, station) == 2 and reports(base, other) == 2
        assert post(base, "LY1010", MESSAGES["LY1004"])["case_id"] == station

        # and the task itself: the same case, as the detector said
        page.click("#queue li.selected")
        page.locator("#dup-same").click()
        page.locator("#stats", has_text="已完成 1").wait_for()

    with Store(database).session() as session:
        actions = [(row.actor, row.action) for row in session.scalars(
            select(AuditRow).where(AuditRow.actor == "wang").order_by(AuditRow.id))]  # fmt: skip
    assert actions == [("wang", "split"), ("wang", "merge"), ("wang", "unmerge"),
                       ("wang", "claim"), ("wang", "accept")]  # fmt: skip
