"""Model versions: listed, promoted and rolled back by CLI or admin API, swapped in a running
service without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.serve.app import create_app
from wangge.serve.config import Settings

BODY = {"content": "小区垃圾桶满了没人清理"}
PASSWORD = "correct horse battery"


def cli_ok(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    tiny_model(store / "v1")
    tiny_model(store / "v2", review_threshold=0.9)
    return store


def test_promote_list_and_rollback_by_cli(store: Path) -> None:
    failed = CliRunner().invoke(cli, ["models", "promote", "v9", "--store", str(store)])
    assert failed.exit_code == 2 and "does not exist" in failed.output
    tiny_model(store.parent / "elsewhere")
    (store / "v3").symlink_to(store.parent / "elsewhere")  # a link out of the store
    for version in ("../elsewhere", "v3", "v1/../v2"):
        refused = CliRunner().invoke(cli, ["models", "promote", version, "--store", str(store)])
        assert refused.exit_code == 2, version
    assert not (store / "CURRENT").exists()
    cli_ok("models", "promote", "v1", "--store", str(store))
    cli_ok("models", "promote", "v2", "--store", str(store))
    listed = cli_ok("models", "list", "--store", str(store)).splitlines()
    assert listed[0].startswith("* v2\t") and listed[1].startswith("  v1\t")
    assert "rolled back to v1" in cli_ok("models", "rollback", "--store", str(store))
    assert cli_ok("models", "list", "--store", str(store)).startswith("  v2")


def test_a_running_service_swaps_to_the_promoted_version(store: Path, database_url: str) -> None:
    cli_ok("models", "promote", "v1", "--store", str(store))
    cli_ok("db", "upgrade", "--database-url", database_url)
    cli_ok(
        "users", "add", "boss", "--role", "admin", "--database-url", database_url, input=PASSWORD
    )
    cli_ok("users", "add", "wang", "--database-url", database_url, input=PASSWORD)
    settings = Settings(model_store=store, database_url=database_url, route=False)

    # v2 sends every message to review (threshold 0.9), v1 does not: that tells them apart.
    def reviewed(client: TestClient) -> bool:
        return bool(client.post("/v1/classify", json=BODY).json()["results"][0]["needs_review"])

    with TestClient(create_app(settings)) as client:
        assert not reviewed(client)
        cli_ok("models", "promote", "v2", "--store", str(store))
        assert reviewed(client)  # swapped on this request, no restart

        def token(name: str) -> dict[str, str]:
            body = {"username": name, "password": PASSWORD}
            return {
                "Authorization": "Bearer "
                + client.post("/review/api/login", json=body).json()["token"]
            }

        rollback = client.post("/review/api/admin/models/rollback", headers=token("boss"))
        assert rollback.status_code == 200 and rollback.json()["version"] == "v1"
        assert not reviewed(client)
        denied = client.post(
            "/review/api/admin/models/promote", json={"version": "v2"}, headers=token("wang")
        )
        assert denied.status_code == 403
        bad = client.post(
            "/review/api/admin/models/promote", json={"version": "v9"}, headers=token("boss")
        )
        assert bad.status_code == 422
        # a version is a directory right inside the store: no path escapes it
        outside = store.parent / "model"
        tiny_model(outside)
        for version in ("../model", str(outside), "v1/../v2", "v1/", ".", "..", ""):
            escaped = client.post(
                "/review/api/admin/models/promote",
                json={"version": version},
                headers=token("boss"),
            )
            assert escaped.status_code == 422, version
            assert str(store.parent) not in escaped.text  # no server path in the answer
            if version:  # "" is refused by the request schema already
                assert "not a version name" in escaped.text or "does not exist" in escaped.text
        assert (store / "CURRENT").read_text().strip() == "v1"
