"""The review queue over HTTP: reviewers log in, list, claim and decide; conflicts are 409."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO_LABELS, SEEDED_PII, tiny_model
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.models.classifier import MessageClassifier
from wangge.pipeline.artifact import ModelMeta
from wangge.pipeline.reasons import ReviewReason
from wangge.serve.app import create_app
from wangge.serve.config import Settings

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"), review_threshold=0.99)


@contextmanager
def reviewing_service(
    database_url: str, model: tuple[MessageClassifier, ModelMeta], *, route: bool
) -> Iterator[TestClient]:
    """The service with reviewers wang and li, routing messages or not."""
    upgraded = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", database_url])
    assert upgraded.exit_code == 0, upgraded.output
    for name in ("wang", "li"):
        added = CliRunner().invoke(cli, ["users", "add", name, "--database-url", database_url],
                                   input=PASSWORD + "\n")  # fmt: skip
        assert added.exit_code == 0, added.output
    settings = Settings(database_url=database_url, encoder_dir=None, route=route)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as test_client:
        yield test_client


@pytest.fixture()
def client(database_url: str, model: tuple[MessageClassifier, ModelMeta]) -> Iterator[TestClient]:
    """Without routing, after one doubtful message."""
    with reviewing_service(database_url, model, route=False) as test_client:
        response = test_client.post("/v1/messages", json={"id": "m1", "content": "垃圾没人清理"})
        assert response.status_code == 200, response.text
        yield test_client


def log_in(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/review/api/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_login_is_needed_and_checked(client: TestClient) -> None:
    assert client.get("/review/api/tasks").status_code == 401
    wrong = client.post("/review/api/login", json={"username": "wang", "password": "nope-nope"})
    assert wrong.status_code == 401
    bad_token = client.get("/review/api/tasks", headers={"Authorization": "Bearer forged"})
    assert bad_token.status_code == 401


def test_two_reviewers_cannot_overwrite_each_other(client: TestClient) -> None:
    wang, li = log_in(client, "wang"), log_in(client, "li")
    [task] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    assert task["reasons"] == ["category"] and task["prediction"]["category"] in (
        "环境卫生",
        "噪音",
    )
    url = f"/review/api/tasks/{task['task_id']}"
    claimed = client.post(f"{url}/claim", json={"version": task["version"]}, headers=wang)
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "wang"
    stale = client.post(f"{url}/claim", json={"version": task["version"]}, headers=li)
    assert stale.status_code == 409 and "请刷新后重试" in stale.json()["detail"]
    version = claimed.json()["version"]
    taken = client.post(
        f"{url}/decision", json={"version": version, "action": "accept"}, headers=li
    )
    assert taken.status_code == 409
    bad = {"version": version, "action": "correct", "corrections": {"probability": 1}}
    assert client.post(f"{url}/decision", json=bad, headers=wang).status_code == 422
    fix = {"version": version, "action": "correct", "corrections": {"category": "噪音"}}
    decided = client.post(f"{url}/decision", json=fix, headers=wang)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "done" and decided.json()["prediction"]["category"] == "噪音"
    assert client.get("/review/api/tasks", headers=li).json()["tasks"] == []
    done = client.get("/review/api/tasks", params={"status": "done"}, headers=li).json()["tasks"]
    assert done[0]["prediction"]["review"]["by"] == "wang"
    unknown = client.get("/review/api/tasks", params={"reason": "%"}, headers=li)
    assert unknown.status_code == 422  # reasons are a fixed set, not a pattern
    missing = client.post("/review/api/tasks/999/claim", json={"version": 1}, headers=wang)
    assert missing.status_code == 404
    for task_id, version in ((2**63, 1), (1, 2**63)):  # beyond the database's INTEGER
        huge = client.post(f"/review/api/tasks/{task_id}/claim", json={"version": version},
                           headers=wang)  # fmt: skip
        assert huge.status_code == 422, huge.text


def test_a_disabled_account_loses_its_session(client: TestClient, database_url: str) -> None:
    wang = log_in(client, "wang")
    disabled = CliRunner().invoke(cli, ["users", "disable", "wang", "--database-url", database_url])
    assert disabled.exit_code == 0, disabled.output
    assert client.get("/review/api/tasks", headers=wang).status_code == 401
    weak = CliRunner().invoke(cli, ["users", "add", "zhao", "--database-url", database_url],
                              input="short\n")  # fmt: skip
    assert weak.exit_code == 2 and "at least 8 characters" in weak.output


def test_reviews_are_exported_masked_and_trained_on(
    client: TestClient, database_url: str, demo_csv: Path, tmp_path: Path
) -> None:
    body = {
        "id": "m2",
        "content": "工地晚上施工太吵，我的电话、证件、车牌、邮箱：" + "，".join(SEEDED_PII),
    }
    assert client.post("/v1/messages", json=body).status_code == 200
    wang = log_in(client, "wang")
    tasks = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    [task] = [t for t in tasks if "施工" in t["content"]]
    url = f"/review/api/tasks/{task['task_id']}"
    version = client.post(f"{url}/claim", json={"version": task["version"]}, headers=wang).json()[
        "version"
    ]
    # Corrected to a category of the demo data, which the retraining below adds it to.
    fix = {"version": version, "action": "correct", "corrections": {"category": DEMO_LABELS[0]}}
    assert client.post(f"{url}/decision", json=fix, headers=wang).status_code == 200

    exported = tmp_path / "reviews.csv"
    result = CliRunner().invoke(
        cli, ["export-reviews", "-o", str(exported), "--database-url", database_url]
    )
    assert result.exit_code == 0 and "1 reviewed messages" in result.output, result.output
    rows = pd.read_csv(exported)
    assert rows["一级标签"].tolist() == [DEMO_LABELS[0]] and rows["reviewed_by"].tolist() == [
        "wang"
    ]
    assert "[手机号]" in rows["留言详情"][0]
    assert not [value for value in SEEDED_PII if value in exported.read_text()]

    model_dir = tmp_path / "retrained"
    args = ["train", "--data", str(demo_csv), "--model-dir", str(model_dir)]
    trained = CliRunner().invoke(cli, [*args, "--include-reviews", str(exported)])
    assert trained.exit_code == 0, trained.output
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["training_data"]["rows"] == len(pd.read_csv(demo_csv)) + 1
    assert meta["config"]["reviews"] == str(exported)


def claimed(client: TestClient, headers: dict[str, str], task: dict) -> tuple[str, int]:
    """Claim ``task``: its URL and the version to decide it with."""
    url = f"/review/api/tasks/{task['task_id']}"
    response = client.post(f"{url}/claim", json={"version": task["version"]}, headers=headers)
    assert response.status_code == 200, response.text
    return url, response.json()["version"]


def test_the_staff_page_its_assets_choices_and_dashboard(client: TestClient) -> None:
    page = client.get("/review")
    assert page.status_code == 200 and "人工复核" in page.text
    assert '<script src="/review/static/review.js">' in page.text
    script = client.get("/review/static/review.js")
    assert script.status_code == 200 and "/review/api/login" in script.text
    assert client.get("/review/static/review.css").status_code == 200
    assert client.get("/review/api/stats").status_code == 401
    wang, li = log_in(client, "wang"), log_in(client, "li")
    choices = client.get("/review/api/choices", headers=wang).json()
    # the model's labels first, then the taxonomy's other categories; no routing, no grids
    assert choices["categories"][:2] == ["噪音", "环境卫生"] and "城乡建设" in choices["categories"]
    assert (choices["departments"], choices["streets"]) == ([], [])
    grids = client.get("/review/api/grids", params={"q": "社区"}, headers=wang).json()
    assert grids == {"grids": [], "total": 0}
    # the page's reason labels come from the pipeline's enum, the one place they are written
    assert choices["reasons"] == {reason.value: reason.label for reason in ReviewReason}
    assert choices["reasons"]["location"] == "位置存疑"
    before = client.get("/review/api/stats", headers=wang).json()
    assert (before["open"], before["done"], before["agreement"]) == (1, 0, None)
    assert (before["reviewers"], before["hot_issues"]) == ([], [])
    # a repeat of m1 (a case of 2 reports: it joins m1's task, one task per case) and two
    # other doubtful ones
    for id_, content in (("m1-again", "垃圾没人清理"), ("m3", "路灯坏了"), ("m4", "楼道灯不亮")):
        assert client.post("/v1/messages", json={"id": id_, "content": content}).status_code == 200
    first, second, third = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    url, version = claimed(client, wang, first)
    client.post(f"{url}/decision", json={"version": version, "action": "accept"}, headers=wang)
    url, version = claimed(client, li, second)
    fix = {"version": version, "action": "correct", "corrections": {"category": "城乡建设"}}
    assert client.post(f"{url}/decision", json=fix, headers=li).status_code == 200
    after = client.get("/review/api/stats", headers=wang).json()
    assert (after["open"], after["done"], after["done_today"], after["done_last_hour"]) == (
        1, 2, 2, 2)  # fmt: skip
    assert after["agreement"] == 0.5
    by_reviewer = {
        r["reviewer"]: (r["accept"], r["correct"], r["invalid"]) for r in after["reviewers"]
    }
    assert by_reviewer == {"wang": (1, 0, 0), "li": (0, 1, 0)}
    [hot] = after["hot_issues"]
    assert hot["reports"] == 2 and hot["title"] == "垃圾没人清理"


def test_corrections_must_name_known_values(client: TestClient) -> None:
    wang = log_in(client, "wang")
    [task] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    url, version = claimed(client, wang, task)
    wrong = (
        ({"category": "没有这个分类"}, "没有这个分类"),
        ({"duplicate_of": 999}, "没有编号为此的其他留言"),
        ({"duplicate_of": "m1"}, "valid integer"),
        ({"duplicate_of": 2**31}, "less than or equal to 2147483647"),
        ({"department": "x" * 129}, "at most 128 characters"),
        ({"category": "\x00"}, "NUL"),
    )
    for corrections, why in wrong:
        body = {"version": version, "action": "correct", "corrections": corrections}
        response = client.post(f"{url}/decision", json=body, headers=wang)
        assert response.status_code == 422, corrections
        assert why in " ".join(error["msg"] for error in response.json()["detail"]), corrections


def test_a_corrected_duplicate_link_moves_the_message_between_cases(client: TestClient) -> None:
    wang = log_in(client, "wang")
    assert client.post("/v1/messages", json={"id": "m2", "content": "路灯坏了"}).status_code == 200
    tasks = {t["content"]: t for t in client.get("/review/api/tasks", headers=wang).json()["tasks"]}
    lamp, rubbish = tasks["路灯坏了"], tasks["垃圾没人清理"]
    assert lamp["prediction"]["case_id"] != rubbish["prediction"]["case_id"]
    url, version = claimed(client, wang, lamp)
    link = {"duplicate_of": rubbish["message_id"]}
    body = {"version": version, "action": "correct", "corrections": link}
    moved = client.post(f"{url}/decision", json=body, headers=wang).json()
    assert moved["prediction"]["case_id"] == rubbish["prediction"]["case_id"]
    assert moved["prediction"]["duplicate_of"] == rubbish["message_id"]
    case = client.get(f"/v1/cases/{rubbish['prediction']['case_id']}").json()
    assert case["reports"] == 2
    # a new report like the moved one joins the case the reviewer chose
    again = client.post("/v1/messages", json={"id": "m2-again", "content": "路灯坏了"}).json()
    assert again["results"][0]["case_id"] == str(rubbish["prediction"]["case_id"])


@pytest.fixture()
def routed_client(
    database_url: str, model: tuple[MessageClassifier, ModelMeta]
) -> Iterator[TestClient]:
    with reviewing_service(database_url, model, route=True) as test_client:
        yield test_client


def test_grids_departments_and_streets_come_from_the_district(routed_client: TestClient) -> None:
    client, wang = routed_client, log_in(routed_client, "wang")
    choices = client.get("/review/api/choices", headers=wang).json()
    assert "区住建局" in choices["departments"] and len(choices["streets"]) >= 20
    found = client.get("/review/api/grids", params={"q": "陈公桥"}, headers=wang).json()
    assert found["total"] >= 1 and found["grids"][0]["matched"] == "陈公桥"  # its bare name
    grid = next(g for g in found["grids"] if g["community_name"] == "陈公桥社区")
    body = {"id": "g1", "content": "路灯坏了好几天"}
    assert client.post("/v1/messages", json=body).status_code == 200
    [task] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    url, version = claimed(client, wang, task)
    bad = {"version": version, "action": "correct", "corrections": {"grid_id": "nowhere"}}
    assert client.post(f"{url}/decision", json=bad, headers=wang).status_code == 422
    fix = {"version": version, "action": "correct",
           "corrections": {"grid_id": grid["id"], "department": "区住建局"}}  # fmt: skip
    decided = client.post(f"{url}/decision", json=fix, headers=wang).json()["prediction"]
    assert (decided["grid_id"], decided["community_name"], decided["street_name"]) == (
        grid["id"], "陈公桥社区", grid["street_name"])  # fmt: skip
    street = next(s["code"] for s in choices["streets"] if s["name"] == grid["street_name"])
    done = {"status": "done", "street": street}
    assert len(client.get("/review/api/tasks", params=done, headers=wang).json()["tasks"]) == 1
    elsewhere = {"status": "done", "street": "330109999"}
    assert client.get("/review/api/tasks", params=elsewhere, headers=wang).json()["tasks"] == []
