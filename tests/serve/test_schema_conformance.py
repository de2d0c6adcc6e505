"""What the schema fuzz test (test_schema_fuzz.py) found, each kept by a plain test: times
answered with their UTC offset and converted (not stripped) on the way in, no Unix-time numbers
for times, refusals in the documented shape, every status code declared, and fields bounded by
their database columns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient

from wangge.pipeline.store import promote
from wangge.serve import auth
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.migrate import open_store

PASSWORD = "correct horse battery"
JSON = {"Content-Type": "application/json"}


@pytest.fixture()
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A model store of one version, an administrator (boss) and no API keys."""
    models = tmp_path / "models"
    tiny_model(models / "v1", review_threshold=0.99)  # every message goes to review
    promote(models, "v1")
    store = open_store(database_url, upgrade=True)
    auth.add_user(store, "boss", PASSWORD, "admin")
    store.engine.dispose()
    settings = Settings(database_url=database_url, model_store=models, encoder_dir=None,
                        route=False, api_keys=False)  # fmt: skip
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def boss(client: TestClient) -> dict[str, str]:
    response = client.post("/review/api/login", json={"username": "boss", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def refusal(response: Any) -> list[dict[str, Any]]:
    """The ``detail`` of a 422, checked to be the documented list of ``{loc, msg, type}``."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    assert all({"loc", "msg", "type"} <= set(error) for error in detail), detail
    return detail


def instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"{text} has no UTC offset"
    return moment


def test_times_keep_their_instant_and_are_answered_with_an_offset(client: TestClient) -> None:
    sent = {"content": "垃圾没人清理", "created_at": "2024-05-01T09:00:00+08:00"}
    [stored] = client.post("/v1/messages", json=sent).json()["results"]
    case = client.get(f"/v1/cases/{stored['case_id']}").json()
    reported = datetime(2024, 5, 1, 1, tzinfo=UTC)  # 09:00 at +08:00
    assert instant(case["first_at"]) == reported and instant(case["last_at"]) == reported
    assert instant(case["messages"][0]["created_at"]) == reported
    # the window is compared in instants too: 01:30 UTC is after the report
    window = {"since": "2024-05-01T00:30:00Z", "until": "2024-05-01T01:30:00Z"}
    hot = client.get("/v1/hot-issues", params=window).json()
    assert [c["case_id"] for c in hot["cases"]] == [stored["case_id"]]
    assert instant(hot["until"]) == datetime(2024, 5, 1, 1, 30, tzinfo=UTC)
    before = {"since": "2024-05-01T08:30:00+08:00", "until": "2024-05-01T08:59:00+08:00"}
    assert client.get("/v1/hot-issues", params=before).json()["cases"] == []
    [task] = client.get("/review/api/tasks", headers=boss(client)).json()["tasks"]
    instant(task["created_at"])


def test_times_are_iso_text_not_numbers(client: TestClient) -> None:
    for created_at in (0, 1714550400, "1714550400", "2024-05-01T09:00"):
        response = client.post("/v1/messages", json={"content": "垃圾", "created_at": created_at})
        assert refusal(response)[0]["loc"][-1] == "created_at", created_at
    refusal(client.get("/v1/hot-issues", params={"until": "0.5"}))
    day = client.post("/v1/messages", json={"content": "垃圾没人清理", "created_at": "2024-05-01"})
    assert day.status_code == 200, day.text  # a date alone is its midnight
    far = client.post(
        "/v1/messages", json={"content": "垃圾", "created_at": "0001-01-01T00:00:00+01:00"}
    )
    refusal(far)  # before year 1 in UTC: out of range, not a server error


def test_refusals_are_lists_of_loc_msg_type(client: TestClient) -> None:
    backwards = client.get("/v1/hot-issues", params={"since": "2024-05-10", "until": "2024-05-01"})
    assert refusal(backwards)[0]["loc"] == ["query", "since"]
    admin = boss(client)
    unknown = client.post("/review/api/admin/models/promote", json={"version": "v9"}, headers=admin)
    [error] = refusal(unknown)
    assert error["loc"] == ["body", "version"] and "does not exist" in error["msg"]
    not_utf8 = client.post("/v1/classify", content=b'{"title": "\xff\xfe"}', headers=JSON)
    assert refusal(not_utf8)[0]["type"] == "json_invalid"
    # nothing to roll back to is a conflict with the store's state, not a malformed request
    rollback = client.post("/review/api/admin/models/rollback", headers=admin)
    assert rollback.status_code == 409 and "nothing to roll back to" in rollback.json()["detail"]
    assert (
        client.post("/v1/messages", json={"id": "m1", "content": "垃圾没人清理"}).status_code == 200
    )
    [task] = client.get("/review/api/tasks", headers=admin).json()["tasks"]
    url = f"/review/api/tasks/{task['task_id']}"
    claimed = client.post(f"{url}/claim", json={"version": task["version"]}, headers=admin).json()
    body = {"version": claimed["version"], "action": "accept", "corrections": {"category": "噪音"}}
    [error] = refusal(client.post(f"{url}/decision", json=body, headers=admin))
    assert error["loc"] == ["body", "corrections"] and "只有更正可以修改" in error["msg"]


def test_the_schema_declares_every_status_code_a_route_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def codes(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    for path, method in (("/v1/classify", "post"), ("/v1/messages", "post"),
                         ("/v1/hot-issues", "get"), ("/v1/model", "get")):  # fmt: skip
        assert {"401", "403", "503"} <= codes(path, method), path
    assert {"401", "403", "404"} <= codes("/v1/cases/{case_id}", "get")
    assert "413" in codes("/v1/messages", "post") and "413" in codes("/review/api/login", "post")
    for action in ("claim", "decision"):
        assert {"401", "404", "409", "422"} <= codes(
            f"/review/api/tasks/{{task_id}}/{action}", "post"
        )
    assert {"401", "403", "409", "422"} <= codes("/review/api/admin/models/promote", "post")
    assert {"401", "403", "409"} <= codes("/review/api/admin/models/rollback", "post")


def test_login_fields_are_storable_text(client: TestClient) -> None:
    for username, password in (
        ("bo\x00ss", PASSWORD),
        ("boss", "pass\ud800word"),
        ("b" * 65, PASSWORD),
    ):
        # \u-escaped, as JSON carries a lone surrogate
        body = json.dumps({"username": username, "password": password})
        response = client.post("/review/api/login", content=body, headers=JSON)
        refusal(response)  # not 500 (NUL on PostgreSQL; scrypt cannot encode a surrogate)


def test_queue_filters_are_bounded_by_their_columns(client: TestClient) -> None:
    admin = boss(client)
    for params in ({"street": "33\x00"}, {"street": "3" * 33}, {"category": "噪\x00音"},
                   {"category": "噪" * 65}):  # fmt: skip
        refusal(client.get("/review/api/tasks", params=params, headers=admin))
    fine = client.get(
        "/review/api/tasks", params={"street": "3" * 32, "category": "噪音"}, headers=admin
    )
    assert fine.status_code == 200 and fine.json() == {"tasks": []}


def test_review_requests_are_strictly_typed(client: TestClient) -> None:
    """``false`` or ``"0"`` is no version, as a number is no title on /v1/."""
    admin = boss(client)
    assert (
        client.post("/v1/messages", json={"id": "m1", "content": "垃圾没人清理"}).status_code == 200
    )
    [task] = client.get("/review/api/tasks", headers=admin).json()["tasks"]
    url = f"/review/api/tasks/{task['task_id']}"
    for version in (False, "1", 1.0):
        refusal(client.post(f"{url}/claim", json={"version": version}, headers=admin))
        body = {"version": version, "action": "accept"}
        refusal(client.post(f"{url}/decision", json=body, headers=admin))
    refusal(client.post("/review/api/admin/models/promote", json={"version": 1}, headers=admin))
    refusal(client.post("/review/api/login", json={"username": "boss", "password": 12345678}))


def test_metadata_is_json_without_nan_or_infinity(client: TestClient) -> None:
    """Python's JSON parser reads NaN, Infinity and 1e400 (infinite); they were echoed as null."""
    for number in ("NaN", "Infinity", "-Infinity", "1e400"):
        body = f'{{"title": "路灯不亮", "metadata": {{"reading": {number}}}}}'.encode()
        [error] = refusal(client.post("/v1/classify", content=body, headers=JSON))
        assert error["loc"][-1] == "metadata" and "NaN" in error["msg"], number
    big = b'{"title": "\xe8\xb7\xaf\xe7\x81\xaf", "metadata": {"reading": 1e300}}'
    assert client.post("/v1/classify", content=big, headers=JSON).status_code == 200
