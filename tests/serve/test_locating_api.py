"""The 待定位 list over HTTP and the queue it spares: messages that name no community are
listed by street and located in bulk; one task per case; the queued shares in the stats."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_review_api import log_in, reviewing_service

from wangge.models.classifier import MessageClassifier
from wangge.pipeline.artifact import ModelMeta
from wangge.serve.migrate import open_store
from wangge.serve.storage import AuditRow, MessageRow

CHENGXIANG = "330109001"
GRID = "330109001001-G01"  # 陈公桥社区网格, in 城厢街道
MESSAGES = [
    {"id": "none", "content": "楼下的路灯坏了好几天，晚上出门很不方便"},
    {"id": "street", "content": "城厢街道菜场门口污水横流，气味难闻"},
    {"id": "registered", "content": "小区垃圾桶满了一周没人清理", "grid_id": GRID},
    {"id": "placed", "content": "城厢街道陈公桥社区工地夜里施工太吵"},
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"), review_threshold=0.0)  # no category doubt


@pytest.fixture()
def client(database_url: str, model: tuple[MessageClassifier, ModelMeta]) -> Iterator[TestClient]:
    with reviewing_service(database_url, model, route=True) as test_client:
        response = test_client.post("/v1/messages", json={"messages": MESSAGES})
        assert response.status_code == 200, response.text
        yield test_client


def test_messages_naming_no_community_are_listed_by_street_not_queued(client: TestClient) -> None:
    assert client.get("/review/api/locating").status_code == 401
    wang = log_in(client, "wang")
    assert client.get("/review/api/tasks", headers=wang).json()["tasks"] == []
    listed = client.get("/review/api/locating", headers=wang).json()
    assert listed["total"] == 2 and [item["title"] or item["content"][:5] for item in
                                     listed["items"]] == ["楼下的路灯", "城厢街道菜"]  # fmt: skip
    street = client.get("/review/api/locating", params={"street": CHENGXIANG}, headers=wang).json()
    assert [(i["street_code"], i["street_name"]) for i in street["items"]] == [
        (CHENGXIANG, "城厢街道")
    ]
    district = client.get("/review/api/locating", params={"street": ""}, headers=wang).json()
    assert [i["street_code"] for i in district["items"]] == [""]
    found = client.get("/review/api/locating", params={"q": "菜场"}, headers=wang).json()
    assert found["total"] == 1
    page = client.get("/review/api/locating", params={"offset": 1, "limit": 1}, headers=wang)
    assert page.json()["total"] == 2 and len(page.json()["items"]) == 1
    streets = client.get("/review/api/locating/streets", headers=wang).json()
    assert streets["total"] == 2 and streets["streets"] == [
        {"code": "", "name": "未写街道", "open": 1},
        {"code": CHENGXIANG, "name": "城厢街道", "open": 1},
    ]
    stats = client.get("/review/api/stats", headers=wang).json()["queued"]
    assert (stats["messages"], stats["tasks"], stats["unlocated"]["listed"]) == (4, 0, 2)
    assert stats["unlocated"]["share"] == 0.5 and stats["by_reason"]["category"]["tasks"] == 0


def test_a_grid_is_assigned_to_many_at_once_audited_and_version_safe(
    client: TestClient, database_url: str
) -> None:
    wang, li = log_in(client, "wang"), log_in(client, "li")
    items = client.get("/review/api/locating", headers=wang).json()["items"]
    chosen = [{"message_id": i["message_id"], "version": i["version"]} for i in items]
    unknown = client.post("/review/api/locating/assign", headers=wang,
                          json={"grid_id": "西河路社区", "messages": chosen})  # fmt: skip
    assert unknown.status_code == 422 and "未知网格“西河路社区”" in unknown.text
    empty = client.post("/review/api/locating/assign", headers=wang,
                        json={"grid_id": GRID, "messages": []})  # fmt: skip
    assert empty.status_code == 422
    done = client.post("/review/api/locating/assign", headers=wang,
                       json={"grid_id": GRID, "messages": chosen})  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json() == {"located": 2, "grid_id": GRID, "grid_name": "陈公桥社区网格",
                           "street_name": "城厢街道", "community_name": "陈公桥社区"}  # fmt: skip
    again = client.post("/review/api/locating/assign", headers=li,
                        json={"grid_id": GRID, "messages": chosen})  # fmt: skip
    assert again.status_code == 409 and "已被他人定位" in again.json()["detail"]
    assert client.get("/review/api/locating", headers=wang).json()["total"] == 0
    store = open_store(database_url)
    with store.session() as session:
        audit = session.scalars(select(AuditRow).where(AuditRow.action == "locate")).all()
        assert [(a.actor, a.after["grid_id"], a.before["grid_id"]) for a in audit] == [
            ("wang", GRID, ""), ("wang", GRID, "")]  # fmt: skip
        located = session.get(MessageRow, audit[0].message_id)
        assert located is not None and located.result["community_name"] == "陈公桥社区"
        assert located.result["located"]["by"] == "wang"
        assert any("人工定位" in note for note in located.result["route_evidence"])
    store.engine.dispose()
    stats = client.get("/review/api/stats", headers=wang).json()["queued"]["unlocated"]
    assert (stats["listed"], stats["open"]) == (2, 0)


def test_a_repeat_of_a_doubtful_case_joins_its_task(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    unsure = tiny_model(tmp_path_factory.mktemp("unsure"), review_threshold=0.99)
    with reviewing_service(database_url, unsure, route=False) as client:
        wang = log_in(client, "wang")
        client.post("/v1/messages", json={"id": "a", "content": "垃圾没人清理", "reporter": "u1"})
        [first] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
        for id_, reporter in (("b", "u2"), ("c", "u3")):
            body = {"id": id_, "content": "垃圾没人清理", "reporter": reporter}
            [joined] = client.post("/v1/messages", json=body).json()["results"]
            assert joined["case_id"] == str(first["prediction"]["case_id"])
        [task] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
        assert task["task_id"] == first["task_id"] and task["version"] == first["version"]
        assert task["priority"] > first["priority"]  # three people report it now
        assert first["joined"] == [] and task["joined_total"] == 2
        assert [m["external_id"] for m in task["joined"]] == ["b", "c"]  # shown with the task
        queued = client.get("/review/api/stats", headers=wang).json()["queued"]
        assert (queued["messages"], queued["tasks"], queued["linked"]) == (3, 1, 2)
        assert queued["by_reason"]["category"] == {"tasks": 1, "share": 0.3333}
