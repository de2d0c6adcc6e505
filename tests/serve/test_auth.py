"""API keys (created and revoked by the CLI, stored hashed, required on /v1/) and staff sessions."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import datetime

import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.models.classifier import MessageClassifier
from wangge.pipeline.artifact import ModelMeta
from wangge.serve import auth
from wangge.serve.app import create_app
from wangge.serve.auth import MAX_FAILURES, LoginThrottle, hash_key
from wangge.serve.config import Settings
from wangge.serve.storage import ApiKeyRow, Store, UserRow

BODY = {"title": "垃圾没人清理", "content": "小区门口垃圾堆了三天没人清理"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture()
def setup(
    database_url: str, model: tuple[MessageClassifier, ModelMeta]
) -> Iterator[tuple[TestClient, str]]:
    settings = Settings(database_url=database_url, encoder_dir=None, route=False, api_keys=True)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as client:
        yield client, database_url


def keys(*args: str) -> str:
    result = CliRunner().invoke(cli, ["keys", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_v1_needs_a_valid_key_and_health_does_not(setup: tuple[TestClient, str]) -> None:
    client, url = setup
    assert client.get("/healthz").status_code == 200
    missing = client.post("/v1/classify", json=BODY)
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (
        client.post("/v1/classify", json=BODY, headers={"X-API-Key": "wg_guess"}).status_code == 401
    )
    assert client.get("/v1/model").status_code == 401
    assert client.get("/v1/hot-issues").status_code == 401

    key = keys("create", "hotline-12345", "--database-url", url)
    assert key.startswith("wg_") and len(key) > 40
    assert client.post("/v1/classify", json=BODY, headers={"X-API-Key": key}).status_code == 200
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.post("/v1/messages", json=BODY, headers=bearer).status_code == 200

    keys("revoke", "hotline-12345", "--database-url", url)
    revoked = client.post("/v1/classify", json=BODY, headers={"X-API-Key": key})
    assert revoked.status_code == 403 and "revoked" in revoked.json()["detail"]


def test_a_revoked_keys_answer_does_not_name_the_key(setup: tuple[TestClient, str]) -> None:
    client, url = setup
    key = keys("create", "hotline-12345", "--database-url", url)
    keys("revoke", "hotline-12345", "--database-url", url)
    with Store(url).session() as session:
        prefix = session.scalars(select(ApiKeyRow.prefix)).one()
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        revoked = client.post("/v1/classify", json=BODY, headers=headers)
        assert revoked.status_code == 403
        answer = revoked.text + str(revoked.headers)
        for secret in ("hotline", "12345", prefix, prefix[len(auth.KEY_PREFIX) :], key):
            assert secret not in answer


def test_only_the_hash_is_stored_and_names_are_unique(setup: tuple[TestClient, str]) -> None:
    _, url = setup
    key = keys("create", "grid-app", "--database-url", url)
    with Store(url).session() as session:
        row = session.scalars(select(ApiKeyRow)).one()
        assert row.key_hash == hash_key(key) and key not in (row.key_hash, row.prefix)
    again = CliRunner().invoke(cli, ["keys", "create", "grid-app", "--database-url", url])
    assert again.exit_code == 2 and "exists already" in again.output
    listed = keys("list", "--database-url", url)
    assert "grid-app" in listed and "active" in listed and key not in listed
    unknown = CliRunner().invoke(cli, ["keys", "revoke", "nobody", "--database-url", url])
    assert unknown.exit_code == 2 and "no key named" in unknown.output


PASSWORD = "correct horse battery"


def test_logout_ends_the_session(setup: tuple[TestClient, str]) -> None:
    client, url = setup
    added = CliRunner().invoke(cli, ["users", "add", "wang", "--database-url", url], input=PASSWORD)
    assert added.exit_code == 0, added.output
    login = client.post("/review/api/login", json={"username": "wang", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    assert client.get("/review/api/stats", headers=headers).status_code == 200
    assert client.post("/review/api/logout", headers=headers).status_code == 204
    assert client.get("/review/api/stats", headers=headers).status_code == 401
    assert client.post("/review/api/logout", headers=headers).status_code == 401


def test_an_unknown_name_costs_the_same_password_check(
    setup: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password is checked with scrypt whether the name exists or not, so the time
    of the answer does not tell which names exist."""
    client, url = setup
    CliRunner().invoke(cli, ["users", "add", "li", "--database-url", url], input=PASSWORD)
    checked: list[str] = []
    real = auth.password_matches

    def counting(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    monkeypatch.setattr(auth, "password_matches", counting)
    for name in ("li", "nobody"):
        body = {"username": name, "password": "wrong password!"}
        assert client.post("/review/api/login", json=body).status_code == 401
    assert len(checked) == 2 and all(stored.startswith("scrypt$") for stored in checked)


def add_user(url: str, name: str) -> None:
    added = CliRunner().invoke(cli, ["users", "add", name, "--database-url", url], input=PASSWORD)
    assert added.exit_code == 0, added.output


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> int:
    return client.post(
        "/review/api/login", json={"username": name, "password": password}
    ).status_code


def from_address(client: TestClient, host: str) -> TestClient:
    """Another client of the same (started) app, calling from ``host``."""
    return TestClient(client.app, client=(host, 50000))


def test_failed_logins_lock_the_account_out_with_retry_after(
    setup: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, url = setup
    add_user(url, "wang")
    add_user(url, "li")
    assert [log_in(client, "wang", "wrong password!") for _ in range(MAX_FAILURES)] == [401] * 5
    checked: list[str] = []
    monkeypatch.setattr(auth, "password_matches", lambda _, stored: checked.append(stored))
    locked = client.post("/review/api/login", json={"username": "wang", "password": PASSWORD})
    assert locked.status_code == 429 and "登录失败次数过多" in locked.json()["detail"]
    assert 0 < int(locked.headers["retry-after"]) <= auth.LOCKOUT_S
    assert log_in(from_address(client, "10.0.0.2"), "wang") == 429  # the account, anywhere
    assert log_in(client, "li") == 429  # and this address, for any name
    assert checked == []  # no password was checked while locked out


def test_failures_across_names_lock_the_address_out(setup: tuple[TestClient, str]) -> None:
    client, url = setup
    add_user(url, "wang")
    assert [log_in(client, f"name{i}", "wrong password!") for i in range(5)] == [401] * 5
    assert log_in(client, "wang") == 429
    assert log_in(from_address(client, "10.0.0.3"), "wang") == 200


def test_a_success_clears_the_account_count(setup: tuple[TestClient, str]) -> None:
    client, url = setup
    add_user(url, "wang")
    for host in ("10.0.0.4", "10.0.0.5"):  # 4 failures from each, a success in between
        other = from_address(client, host)
        assert [log_in(other, "wang", "wrong password!") for _ in range(4)] == [401] * 4
        assert log_in(other, "wang") == 200
    assert log_in(from_address(client, "10.0.0.6"), "wang", "wrong password!") == 401


def test_the_lockout_ends_and_the_counts_stay_bounded() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_keys=3, clock=lambda: now[0])
    for _ in range(MAX_FAILURES):
        throttle.failed(["user:wang", "addr:a"])
    assert throttle.retry_after(["user:wang", "addr:b"]) == auth.LOCKOUT_S
    assert throttle.retry_after(["user:li", "addr:b"]) == 0
    now[0] = auth.LOCKOUT_S - 10.5
    assert throttle.retry_after(["user:li", "addr:a"]) == 11
    now[0] = auth.LOCKOUT_S + 1
    assert throttle.retry_after(["user:wang", "addr:a"]) == 0
    for name in ("x", "y", "z"):  # the expired wang and a are dropped first ...
        throttle.failed([f"user:{name}"])
    assert list(throttle._entries) == ["user:x", "user:y", "user:z"]
    throttle.failed(["user:w"])  # ... then the oldest
    assert list(throttle._entries) == ["user:y", "user:z", "user:w"]


@pytest.mark.real_scrypt_cost
def test_new_hashes_use_scrypt_at_owasp_cost() -> None:
    assert auth.SCRYPT_LOG_N == 17
    stored = auth.hash_password(PASSWORD)
    assert stored.startswith("scrypt$17$") and auth.password_matches(PASSWORD, stored)
    assert not auth.needs_rehash(stored)


@pytest.mark.real_scrypt_cost
def test_an_old_hash_is_verified_and_rehashed_at_login(setup: tuple[TestClient, str]) -> None:
    client, url = setup
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1)
    old = f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with Store(url).session() as session:
        session.add(UserRow(username="old", password_hash=old, role="reviewer",
                            created_at=datetime.now()))  # fmt: skip
    assert log_in(client, "old") == 200
    with Store(url).session() as session:
        stored = session.scalars(select(UserRow.password_hash)).one()
    assert stored.startswith("scrypt$17$") and auth.password_matches(PASSWORD, stored)
