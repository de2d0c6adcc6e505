"""The review queue over HTTP: reviewers log in, list, claim and decide; conflicts are 409."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO_LABELS, tiny_model
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.models.artifact import ModelMeta
from wangge.models.classifier import MessageClassifier
from wangge.serve.app import create_app
from wangge.serve.config import Settings

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"), review_threshold=0.99)


@pytest.fixture()
def client(database_url: str, model: tuple[MessageClassifier, ModelMeta]) -> Iterator[TestClient]:
    for name in ("wang", "li"):
        added = CliRunner().invoke(cli, ["users", "add", name, "--database-url", database_url],
                                   input=PASSWORD + "\n")  # fmt: skip
        assert added.exit_code == 0, added.output
    settings = Settings(database_url=database_url, encoder_dir=None, route=False)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as test_client:
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
    assert stale.status_code == 409 and "changed since" in stale.json()["detail"]
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
    missing = client.post("/review/api/tasks/999/claim", json={"version": 1}, headers=wang)
    assert missing.status_code == 404


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
    body = {"id": "m2", "content": "工地晚上施工太吵，我的电话13812345678"}
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
    assert "[手机号]" in rows["留言详情"][0] and "13812345678" not in exported.read_text()

    model_dir = tmp_path / "retrained"
    args = ["train", "--data", str(demo_csv), "--model-dir", str(model_dir)]
    trained = CliRunner().invoke(cli, [*args, "--include-reviews", str(exported)])
    assert trained.exit_code == 0, trained.output
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["training_data"]["rows"] == len(pd.read_csv(demo_csv)) + 1
    assert meta["config"]["reviews"] == str(exported)


def test_the_staff_page_its_assets_labels_and_dashboard(client: TestClient) -> None:
    page = client.get("/review")
    assert page.status_code == 200 and "人工复核" in page.text
    assert '<script src="/review/static/review.js">' in page.text
    script = client.get("/review/static/review.js")
    assert script.status_code == 200 and "/review/api/login" in script.text
    assert client.get("/review/static/review.css").status_code == 200
    assert client.get("/review/api/stats").status_code == 401
    wang = log_in(client, "wang")
    assert client.get("/review/api/labels", headers=wang).json()["labels"] == ["噪音", "环境卫生"]
    before = client.get("/review/api/stats", headers=wang).json()
    assert (before["open"], before["done"], before["agreement"]) == (1, 0, None)
    [task] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    url = f"/review/api/tasks/{task['task_id']}"
    version = client.post(f"{url}/claim", json={"version": task["version"]}, headers=wang).json()[
        "version"
    ]
    client.post(f"{url}/decision", json={"version": version, "action": "accept"}, headers=wang)
    after = client.get("/review/api/stats", headers=wang).json()
    assert (after["open"], after["done"], after["done_today"], after["agreement"]) == (0, 1, 1, 1.0)
