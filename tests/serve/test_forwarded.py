"""The login throttle behind a reverse proxy: the client address is the one X-Forwarded-For
names only when the request comes from a proxy of WANGGE_FORWARDED_ALLOW_IPS.

The app is wrapped as ``wangge serve`` has uvicorn wrap it (:func:`~wangge.serve.server.
proxy_options` given to :class:`uvicorn.Config`), and called from chosen peer addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import uvicorn
from conftest import tiny_model
from fastapi.testclient import TestClient
from pydantic import ValidationError

from wangge.models.classifier import MessageClassifier
from wangge.pipeline.artifact import ModelMeta
from wangge.serve.app import create_app
from wangge.serve.auth import MAX_FAILURES
from wangge.serve.config import Settings
from wangge.serve.server import proxy_options

PROXY = "10.0.0.2"
Login = Callable[..., int]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture()
def serve(
    tmp_path_factory: pytest.TempPathFactory, model: tuple[MessageClassifier, ModelMeta]
) -> Iterator[Callable[[str | None], Login]]:
    """Starts the app with ``forwarded_allow_ips`` (``None``: the default) and gives a function
    that logs in with a wrong password from a peer, with an X-Forwarded-For header or none."""
    started: list[TestClient] = []

    def start(allow: str | None) -> Login:
        database = tmp_path_factory.mktemp("db") / "wangge.sqlite3"
        options = {} if allow is None else {"forwarded_allow_ips": allow}
        settings = Settings(
            database_url=f"sqlite:///{database}", encoder_dir=None, route=False, **options
        )
        config = uvicorn.Config(
            create_app(settings, model=model[0], meta=model[1]), **proxy_options(settings)
        )
        config.load()
        client = TestClient(config.loaded_app)
        client.__enter__()  # the app's lifespan: the store is opened
        started.append(client)

        def log_in(name: str, peer: str, forwarded_for: str | None = None) -> int:
            headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
            body = {"username": name, "password": "wrong password!"}
            caller = TestClient(config.loaded_app, client=(peer, 40000))
            return caller.post("/review/api/login", json=body, headers=headers).status_code

        return log_in

    yield start
    for client in started:
        client.__exit__(None, None, None)


def lock_out(log_in: Login, peer: str, forwarded_for: Callable[[int], str | None]) -> None:
    """MAX_FAILURES failed logins from ``peer``, each for another name."""
    failures = [log_in(f"name{i}", peer, forwarded_for(i)) for i in range(MAX_FAILURES)]
    assert failures == [401] * MAX_FAILURES


def test_a_trusted_proxy_s_clients_are_throttled_one_by_one(
    serve: Callable[[str | None], Login],
) -> None:
    log_in = serve(f"{PROXY},10.1.0.0/16")
    lock_out(log_in, PROXY, lambda _: "203.0.113.7")
    assert log_in("wang", PROXY, "203.0.113.7") == 429  # that client, whatever the name
    assert log_in("wang", PROXY, "203.0.113.8") == 401  # another client of the proxy
    assert log_in("wang", "10.1.4.5", "203.0.113.7") == 429  # a proxy of the trusted network
    # A client's own X-Forwarded-For, passed on by the proxy, is not believed: the proxy
    # appends the address it saw, and that is the client's.
    assert log_in("wang", PROXY, "203.0.113.8, 203.0.113.7") == 429
    assert log_in("wang", PROXY, "203.0.113.7, 203.0.113.8") == 401


def test_an_untrusted_peer_s_forwarded_for_is_ignored(
    serve: Callable[[str | None], Login],
) -> None:
    log_in = serve(PROXY)
    lock_out(log_in, "198.51.100.9", lambda i: f"203.0.113.{i}")  # a new address each time
    assert log_in("wang", "198.51.100.9", "203.0.113.99") == 429  # the peer's own address
    assert log_in("wang", "198.51.100.9") == 429
    assert log_in("wang", PROXY, "198.51.100.9") == 429  # the same client through the proxy
    assert log_in("wang", "198.51.100.10", "203.0.113.1") == 401


def test_by_default_only_a_proxy_on_loopback_is_believed(
    serve: Callable[[str | None], Login],
) -> None:
    log_in = serve(None)
    lock_out(log_in, "127.0.0.1", lambda _: "203.0.113.7")
    assert log_in("wang", "127.0.0.1", "203.0.113.8") == 401
    assert log_in("wang", "::1", "203.0.113.7") == 429
    lock_out(log_in, PROXY, lambda i: f"203.0.113.{i + 10}")
    assert log_in("wang", PROXY, "203.0.113.50") == 429


def test_an_empty_list_believes_no_one(serve: Callable[[str | None], Login]) -> None:
    log_in = serve("")
    lock_out(log_in, "127.0.0.1", lambda i: f"203.0.113.{i}")
    assert log_in("wang", "127.0.0.1", "203.0.113.99") == 429


def test_the_setting_takes_addresses_and_networks_only() -> None:
    assert Settings(forwarded_allow_ips=" 10.0.0.2, fd00::/8 ,").trusted_proxies() == [
        "10.0.0.2",
        "fd00::/8",
    ]
    assert Settings(forwarded_allow_ips="*").trusted_proxies() == ["*"]
    assert proxy_options(Settings(forwarded_allow_ips="")) == {
        "proxy_headers": False,
        "forwarded_allow_ips": [],
    }
    for bad in ("proxy.internal", "10.0.0.300", "10.0.0.0/33", "*,10.0.0.2"):
        with pytest.raises(ValidationError, match="not an IP address or network"):
            Settings(forwarded_allow_ips=bad)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANGGE_FORWARDED_ALLOW_IPS", "192.0.2.1,192.0.2.2")
    assert Settings().trusted_proxies() == ["192.0.2.1", "192.0.2.2"]
