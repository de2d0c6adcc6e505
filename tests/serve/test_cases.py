"""Duplicates side by side and case actions (merge, unmerge, split, move) over HTTP, on SQLite
and PostgreSQL: every action is audited, the case counts follow, and so does the duplicate
index — the next message is decided against the cases as the reviewer left them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_review_api import log_in, model, reviewing_service  # noqa: F401 (a fixture)

from wangge.models.classifier import MessageClassifier
from wangge.pipeline.artifact import ModelMeta
from wangge.serve.app import create_app
from wangge.serve.cases import (
    CaseConflict,
    Move,
    explain,
    masked_reporter,
    merge,
    shared_words,
)
from wangge.serve.config import Settings
from wangge.serve.storage import AuditRow, Store

RUBBISH = "小区垃圾桶满了没人清理，臭气熏天，请尽快处理"
NOISE = "工地晚上施工噪音太吵，影响居民休息，请管一管"
LAMP = "路灯坏了好几个月，晚上走路很危险，希望维修"


@pytest.fixture()
def client(
    database_url: str,
    model: tuple[MessageClassifier, ModelMeta],  # noqa: F811
) -> Iterator[TestClient]:
    with reviewing_service(database_url, model, route=False) as test_client:
        yield test_client


def ingest(client: TestClient, id_: str, content: str, reporter: str | None = None) -> dict:
    body: dict[str, Any] = {"id": id_, "content": content}
    if reporter:
        body["reporter"] = reporter
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def audit(database_url: str, action: str) -> list[AuditRow]:
    with Store(database_url).session() as session:
        rows = select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)
        return list(session.scalars(rows))


def task_of(client: TestClient, headers: dict[str, str], message_id: str) -> dict:
    tasks = client.get("/review/api/tasks", params={"limit": 500}, headers=headers).json()
    return next(t for t in tasks["tasks"] if str(t["message_id"]) == message_id)


def accept_task(client: TestClient, headers: dict[str, str], message_id: str) -> None:
    """Decide a message's open task, so that the case's next doubtful message gets a task of
    its own (while a case has an open task, its new messages join that task)."""
    task = task_of(client, headers, message_id)
    url = f"/review/api/tasks/{task['task_id']}"
    claimed = client.post(f"{url}/claim", json={"version": task["version"]}, headers=headers)
    assert claimed.status_code == 200, claimed.text
    decision = {"version": claimed.json()["version"], "action": "accept"}
    assert client.post(f"{url}/decision", json=decision, headers=headers).status_code == 200


def test_the_words_and_the_explanation_are_chinese() -> None:
    words = shared_words("街道通道的路灯坏了", "路灯坏了，通道很黑")
    assert "路灯" in words and all(len(word) > 1 for word in words)
    assert "的" not in words
    evidence = {"closest": "3", "jaccard": 0.41, "title_jaccard": 0.93, "cosine": None,
                "lexical_cosine": 0.8, "same_reporter": True, "entities": "overlap",
                "blocked": ["7: different places (a vs b)"]}  # fmt: skip
    mine = {"community_code": "c1", "community_name": "陈公桥社区"}
    said = explain(evidence, 0.91, 0.8, mine, dict(mine), names={7: "LY7"})
    assert said[0] == "标题高度相似（0.93）"
    assert "同一社区（陈公桥社区）" in said and "同一反映人" in said
    assert "重复概率 0.91（阈值 0.80）" in said and "未并入留言 LY7 的案件：地点不同" in said
    assert explain({}, 0.0, 0.8, {}, {}) == ["未找到足够相似的留言，单独立案"]
    assert masked_reporter("13812345678") != "13812345678"
    assert masked_reporter("张三") == "张*" and masked_reporter(None) == "匿名"


def test_the_duplicate_panel_shows_the_case_side_by_side(client: TestClient) -> None:
    wang = log_in(client, "wang")
    first = ingest(client, "A-1", RUBBISH, reporter="13812345678")
    accept_task(client, wang, first["message_id"])
    second = ingest(client, "A-2", RUBBISH + "，谢谢")
    assert second["case_id"] == first["case_id"] and second["duplicate_of"] == first["message_id"]
    task = task_of(client, wang, second["message_id"])
    view = client.get(f"/review/api/tasks/{task['task_id']}/duplicate", headers=wang)
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["message"]["external_id"] == "A-2"
    [closest] = body["closest"]
    assert closest["external_id"] == "A-1" and closest["closest"] is True
    assert closest["reporter"] != "13812345678" and "垃圾桶" in closest["shared_words"]
    assert all(len(word) > 1 for word in closest["shared_words"])
    assert body["case"]["reports"] == 2 and any("重复概率" in w for w in body["explanation"])
    assert all(o["case"]["case_id"] != body["case"]["case_id"] for o in body["other_cases"])
    missing = client.get("/review/api/tasks/9999/duplicate", headers=wang)
    assert missing.status_code == 404 and missing.json()["detail"] == "没有编号为 9999 的复核任务"
    assert client.get(f"/review/api/tasks/{task['task_id']}/duplicate").status_code == 401


def test_same_own_and_move_decide_the_task_and_the_index_follows(
    client: TestClient, database_url: str
) -> None:
    wang, li = log_in(client, "wang"), log_in(client, "li")
    rubbish = ingest(client, "A-1", RUBBISH)
    lamp = ingest(client, "L-1", LAMP)
    task = task_of(client, wang, lamp["message_id"])
    url = f"/review/api/tasks/{task['task_id']}/duplicate/decision"
    move = {"version": task["version"], "action": "move", "to_message": "A-1"}
    moved = client.post(url, json=move, headers=wang)  # claims the open task, then decides it
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "done"
    assert moved.json()["prediction"]["case_id"] == int(rubbish["case_id"])
    stale = client.post(url, json=move, headers=li)
    assert stale.status_code == 409 and stale.json()["detail"] == "这条任务已经处理完毕，不能再改"
    # the next report like the moved message joins the case the reviewer chose
    assert ingest(client, "L-2", LAMP)["case_id"] == rubbish["case_id"]
    [correct] = [row for row in audit(database_url, "correct")]
    assert correct.actor == "wang" and correct.after["duplicate_of"] == int(rubbish["message_id"])

    accept_task(client, wang, rubbish["message_id"])  # L-2 joined its task
    repeat = task_of(client, wang, ingest(client, "A-2", RUBBISH + "，谢谢")["message_id"])
    url = f"/review/api/tasks/{repeat['task_id']}/duplicate/decision"
    wrong_version = {"version": repeat["version"] + 5, "action": "same"}
    assert client.post(url, json=wrong_version, headers=wang).status_code == 409
    own = client.post(url, json={"version": repeat["version"], "action": "own"}, headers=wang)
    assert own.status_code == 200, own.text
    assert own.json()["prediction"]["case_id"] == repeat["message_id"]
    case = client.get(f"/review/api/cases/{rubbish['case_id']}", headers=wang).json()
    assert case["reports"] == 3  # A-1, L-1, L-2
    [moved_history] = [h for h in case["history"] if h["action_name"] == "更正"]
    assert moved_history["actor"] == "wang"
    assert moved_history["text"] == "留言 L-1 更正：改为重复于留言 A-1"
    other = task_of(client, wang, ingest(client, "N-1", NOISE)["message_id"])
    nowhere = {"version": other["version"], "action": "move", "to_message": "nope"}
    url = f"/review/api/tasks/{other['task_id']}/duplicate/decision"
    refused = client.post(url, json=nowhere, headers=wang)
    assert refused.status_code == 404
    assert refused.json()["detail"] == "没有留言编号为 nope 的留言"


def test_merge_moves_a_case_and_unmerge_restores_it(client: TestClient, database_url: str) -> None:
    wang = log_in(client, "wang")
    a = ingest(client, "A-1", RUBBISH)
    assert ingest(client, "A-2", RUBBISH + "，谢谢")["case_id"] == a["case_id"]
    b = ingest(client, "B-1", NOISE)
    assert b["case_id"] != a["case_id"]
    merged = client.post(f"/review/api/cases/{b['case_id']}/merge",
                         json={"into_message": "A-1"}, headers=wang)  # fmt: skip
    assert merged.status_code == 200, merged.text
    assert merged.json()["reports"] == 3 and merged.json()["case_id"] == int(a["case_id"])
    assert merged.json()["merged_from"][0]["case_id"] == int(b["case_id"])
    assert merged.json()["history"][0]["action_name"] == "合并"
    away = client.get(f"/review/api/cases/{b['case_id']}", headers=wang).json()
    assert away["reports"] == 0 and away["merged_into"] == int(a["case_id"])
    assert client.get(f"/v1/cases/{a['case_id']}").json()["reports"] == 3
    [record] = audit(database_url, "merge")
    assert record.actor == "wang" and record.after["messages"] == [int(b["message_id"])]
    # a new message close to the merged-away case's joins the merged case
    assert ingest(client, "B-2", NOISE + "。")["case_id"] == a["case_id"]
    again = client.post(f"/review/api/cases/{b['case_id']}/merge", json={"into_case": 1},
                        headers=wang)  # fmt: skip
    assert again.status_code == 409 and "已并入案件" in again.json()["detail"]
    itself = client.post(f"/review/api/cases/{a['case_id']}/merge",
                         json={"into_case": int(a["case_id"])}, headers=wang)  # fmt: skip
    assert itself.status_code == 422
    assert itself.json()["detail"][0]["msg"] == "不能把案件合并到它自己"
    both = {"into_case": 1, "into_message": "A-1"}
    ambiguous = client.post(f"/review/api/cases/{a['case_id']}/merge", json=both, headers=wang)
    assert ambiguous.status_code == 422
    assert ambiguous.json()["detail"][0]["msg"] == "请填写目标案件编号或目标留言编号（二选一）"

    restored = client.post(f"/review/api/cases/{b['case_id']}/unmerge", headers=wang)
    assert restored.status_code == 200, restored.text
    assert restored.json()["reports"] == 1 and restored.json()["merged_into"] is None
    assert client.get(f"/v1/cases/{a['case_id']}").json()["reports"] == 3  # B-2
    [undone] = audit(database_url, "unmerge")
    assert undone.after["messages"] == [int(b["message_id"])]
    twice = client.post(f"/review/api/cases/{b['case_id']}/unmerge", headers=wang)
    assert twice.status_code == 409 and "无需撤销" in twice.json()["detail"]
    # the index follows the unmerge too: a copy of B-1 joins B-1's case again
    assert ingest(client, "B-3", NOISE)["case_id"] == b["case_id"]


def test_split_moves_chosen_messages_to_a_new_case(client: TestClient, database_url: str) -> None:
    wang = log_in(client, "wang")
    first = ingest(client, "S-1", RUBBISH)
    second = ingest(client, "S-2", RUBBISH + "，谢谢")
    third = ingest(client, "S-3", RUBBISH + "，拜托了")
    case_id = first["case_id"]
    assert second["case_id"] == third["case_id"] == case_id
    url = f"/review/api/cases/{case_id}/split"
    split = client.post(url, json={"messages": [int(second["message_id"])]}, headers=wang)
    assert split.status_code == 200, split.text
    new = split.json()
    assert new["case_id"] == int(second["message_id"]) and new["reports"] == 1
    assert [m["external_id"] for m in new["messages"]] == ["S-2"]
    assert new["messages"][0]["duplicate_of"] is None
    assert client.get(f"/v1/cases/{case_id}").json()["reports"] == 2
    [record] = audit(database_url, "split")
    assert record.after == {"case_id": int(case_id), "new_case_id": new["case_id"],
                            "messages": [int(second["message_id"])],
                            "chosen": [int(second["message_id"])],
                            "reports": {case_id: 2, second["message_id"]: 1}}  # fmt: skip
    assert new["history"][0]["action_name"] == "拆分"
    # a new message close to the split-off message joins the new case
    assert ingest(client, "S-4", RUBBISH + "，谢谢")["case_id"] == second["message_id"]
    # the case's own first message split off: the others make the new case
    whole = client.post(url, json={"messages": [int(first["message_id"])]}, headers=wang)
    assert whole.status_code == 200, whole.text
    assert whole.json()["case_id"] == int(case_id) and whole.json()["reports"] == 1
    assert client.get(f"/v1/cases/{third['message_id']}").json()["reports"] == 1
    swapped = audit(database_url, "split")[-1].after
    assert swapped["chosen"] == [int(first["message_id"])]
    assert swapped["messages"] == [int(third["message_id"])]  # the others moved out
    assert swapped["new_case_id"] == int(third["message_id"])
    for body, why in (({"messages": [int(first["message_id"])]}, "请至少选一条留言拆出"),
                      ({"messages": [int(second["message_id"])]}, "不在案件")):  # fmt: skip
        refused = client.post(url, json=body, headers=wang)
        assert refused.status_code == 422 and why in refused.json()["detail"][0]["msg"]
    assert client.get("/review/api/cases/99999", headers=wang).status_code == 404
    by_number = client.get("/review/api/cases", params={"message": "S-3"}, headers=wang)
    assert by_number.json()["case_id"] == int(third["message_id"])


def test_crossing_merges_do_not_both_win(client: TestClient, database_url: str) -> None:
    """Two reviewers merging A into B and B into A at once: the second waits, then is refused.
    In one service the ingest lock serialises case actions; across services (PostgreSQL) the
    row locks on the cases do."""
    a = int(ingest(client, "A-1", RUBBISH)["case_id"])
    b = int(ingest(client, "B-1", NOISE)["case_id"])
    store, ingestor = Store(database_url), client.app.state.ingestor
    across_services = database_url.startswith("postgresql")
    outcome: dict[str, Any] = {}

    def li_merges() -> list[Move]:
        with store.session() as session:
            return merge(session, "li", b, a)

    def crossing() -> None:
        try:
            li_merges() if across_services else ingestor.reassign(li_merges)
        except CaseConflict as error:
            outcome["li"] = error.message

    def wang_merges() -> list[Move]:
        with store.session() as session:
            moved = merge(session, "wang", a, b)
            session.flush()
            other.start()
            time.sleep(0.5)  # li's merge waits for the lock
            assert other.is_alive()
        return moved

    other = threading.Thread(target=crossing)
    ingestor.reassign(wang_merges)
    other.join(timeout=10)
    assert outcome["li"] == f"案件 {a} 已并入案件 {b}：请并入后者"
    assert [row.actor for row in audit(database_url, "merge")] == ["wang"]


def test_a_restarted_service_keeps_the_merged_and_split_cases(
    client: TestClient,
    database_url: str,
    model: tuple[MessageClassifier, ModelMeta],  # noqa: F811
) -> None:
    """The duplicate index is rebuilt from the stored cases: a merge and a split survive."""
    wang = log_in(client, "wang")
    a = ingest(client, "A-1", RUBBISH)
    b = ingest(client, "B-1", NOISE)
    lamp = ingest(client, "L-1", LAMP)
    lamp_too = ingest(client, "L-2", LAMP + "，谢谢")
    assert lamp_too["case_id"] == lamp["case_id"]
    merged = client.post(f"/review/api/cases/{b['case_id']}/merge",
                         json={"into_case": int(a["case_id"])}, headers=wang)  # fmt: skip
    assert merged.status_code == 200, merged.text
    split = client.post(f"/review/api/cases/{lamp['case_id']}/split",
                        json={"messages": [int(lamp_too["message_id"])]}, headers=wang)  # fmt: skip
    assert split.status_code == 200, split.text
    settings = Settings(database_url=database_url, encoder_dir=None, route=False)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as restarted:
        assert ingest(restarted, "B-2", NOISE)["case_id"] == a["case_id"]
        assert ingest(restarted, "L-3", LAMP + "，谢谢")["case_id"] == lamp_too["message_id"]
