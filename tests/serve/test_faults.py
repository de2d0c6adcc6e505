"""Faults: a database that cannot be opened or written answers 503 with ``Retry-After`` and a
short JSON message; the liveness and readiness probes; requests caught by the shutdown are
answered 503 (the real server's shutdown: tests/serve/test_shutdown.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.types import Message, Receive, Scope, Send

from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.service import TRIAGE_CHUNK
from wangge.serve.shutdown import AnswerCancelled
from wangge.serve.storage import MessageRow, Store


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    classifier, meta = tiny_model(tmp_path / "model")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wangge.sqlite3'}", route=False,
                        encoder_dir=None)  # fmt: skip
    with TestClient(create_app(settings, model=classifier, meta=meta)) as test_client:
        yield test_client


@pytest.fixture()
def broken_database(client: TestClient, tmp_path: Path) -> Iterator[None]:
    """The app's store replaced by one whose SQLite file cannot be opened (its directory is
    missing): every query fails with sqlite3's OperationalError."""
    app = client.app
    healthy = app.state.store  # type: ignore[attr-defined]
    broken = Store(f"sqlite:///{tmp_path / 'missing' / 'wangge.sqlite3'}")
    app.state.store = broken  # type: ignore[attr-defined]
    yield
    app.state.store = healthy  # type: ignore[attr-defined]
    broken.engine.dispose()


def test_a_route_on_a_broken_database_answers_503_with_retry_after(
    client: TestClient, broken_database: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for path in ("/v1/hot-issues", "/v1/cases/1"):
        response = client.get(path)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json() == {"detail": "the database is unavailable; retry later"}
        assert str(tmp_path) not in response.text and "SELECT" not in response.text
    assert "database unavailable on GET /v1/hot-issues" in caplog.text
    assert "unable to open database file" in caplog.text  # the traceback is logged


def test_a_full_disk_on_ingest_answers_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Store) -> None:
        error = sqlite3.OperationalError("database or disk is full")
        raise OperationalError("INSERT INTO messages ...", None, error)

    monkeypatch.setattr(Store, "session", full)
    response = client.post("/v1/messages", json={"title": "垃圾没人清理"})
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "INSERT" not in response.text and "disk" not in response.text


def test_an_integrity_error_is_not_taken_for_an_outage(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflict(self: Store) -> None:
        raise IntegrityError("INSERT ...", None, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(Store, "session", conflict)
    with pytest.raises(IntegrityError):  # TestClient re-raises what no handler answered
        client.get("/v1/hot-issues")


def test_ready_answers_503_naming_the_database_when_it_fails(
    client: TestClient, broken_database: None
) -> None:
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["database"]}
    assert client.get("/healthz/live").status_code == 200


def test_ready_and_live_answer_200_on_a_healthy_service(client: TestClient) -> None:
    assert client.get("/healthz/ready").json() == {"status": "ready", "failed": []}
    assert client.get("/healthz/live").json() == {"status": "ok"}
    assert client.get("/healthz").json()["status"] == "ok"


def test_ready_names_the_model_when_none_is_loaded(client: TestClient) -> None:
    loaded = client.app.state.loaded_model  # type: ignore[attr-defined]
    client.app.state.loaded_model = None  # type: ignore[attr-defined]
    try:
        response = client.get("/healthz/ready")
    finally:
        client.app.state.loaded_model = loaded  # type: ignore[attr-defined]
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["model"]}


def test_the_schema_documents_the_503s(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "503" in paths["/healthz/ready"]["get"]["responses"]
    assert "503" in paths["/v1/hot-issues"]["get"]["responses"]
    assert "503" not in paths["/healthz/live"]["get"]["responses"]


def _chattr(flag: str, paths: list[Path]) -> None:
    """``chattr flag`` on ``paths``; skips the test where that cannot be done (not root, a file
    system without the immutable attribute)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("no chattr (e2fsprogs)")
    done = subprocess.run([chattr, flag, *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} failed: {done.stderr.strip()} (needs root and ext4/xfs/btrfs)")


def test_immutable_database_files_answer_503_and_make_the_service_unready(
    client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe that killed the server with SIGBUS (a write through WAL's memory-mapped index
    once the files were immutable): now every write is a system call whose refusal is an
    OperationalError, so the answer is 503, the log says so, and readiness fails."""
    assert client.post("/v1/messages", json={"title": "垃圾没人清理"}).status_code == 200
    files = sorted(tmp_path.glob("wangge.sqlite3*"))
    _chattr("+i", files)
    try:
        assert client.get("/healthz/ready").json() == {"status": "unavailable",
                                                       "failed": ["database"]}  # fmt: skip
        response = client.post("/v1/messages", json={"title": "楼道垃圾很臭"})
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": "the database is unavailable; retry later"}
        assert client.get("/healthz/ready").status_code == 503
    finally:
        _chattr("-i", files)
    assert "database unavailable on POST /v1/messages" in caplog.text
    assert "cannot be written" in caplog.text or "does not answer" in caplog.text
    assert client.get("/healthz/ready").status_code == 200  # writable again: ready again
    assert client.post("/v1/messages", json={"title": "楼道垃圾很臭"}).status_code == 200


def test_sqlite_keeps_no_shared_memory_index(tmp_path: Path) -> None:
    """No WAL (whose ``-shm`` index is written through a memory mapping: SIGBUS when it cannot
    be written) and no memory-mapped I/O; a database left in WAL mode is switched back."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE t (x)")
    old.close()
    store = Store(f"sqlite:///{path}")
    try:
        with store.session() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "delete"
            assert session.execute(text("PRAGMA mmap_size")).scalar() == 0
        assert not Path(f"{path}-shm").exists() and not Path(f"{path}-wal").exists()
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/classify"])
def test_once_stopping_a_batch_is_refused_with_503_after_its_first_chunk(
    client: TestClient, path: str
) -> None:
    client.app.state.stopping.set()  # type: ignore[attr-defined]  # what SIGTERM does
    batch = [{"id": f"m{i}", "title": "垃圾没人清理"} for i in range(TRIAGE_CHUNK + 1)]
    response = client.post(path, json={"messages": batch})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert "shutting down" in response.json()["detail"]
    one_chunk = client.post(path, json={"messages": batch[:TRIAGE_CHUNK]})
    assert one_chunk.status_code == 200  # a request of one chunk finishes
    if path == "/v1/messages":
        with client.app.state.store.session() as session:  # type: ignore[attr-defined]
            stored = set(session.scalars(select(MessageRow.external_id)))
        assert stored == {f"m{i}" for i in range(TRIAGE_CHUNK)}  # the refused batch: none


def test_a_request_cancelled_by_the_shutdown_is_answered_503() -> None:
    async def cancelled(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    async def nothing() -> Message:
        return {"type": "http.request"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    stopping = threading.Event()
    with pytest.raises(asyncio.CancelledError):  # not stopping: not ours to answer
        asyncio.run(AnswerCancelled(cancelled, stopping)({"type": "http"}, nothing, send))
    stopping.set()
    asyncio.run(AnswerCancelled(cancelled, stopping)({"type": "http"}, nothing, send))
    assert sent[0]["status"] == 503 and (b"retry-after", b"5") in sent[0]["headers"]
    assert "did not finish" in json.loads(sent[1]["body"])["detail"]
