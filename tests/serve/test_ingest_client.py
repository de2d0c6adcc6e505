"""`wangge ingest`: a file's rows become stored messages of a running service, batch by
batch; sending it again stores nothing twice; a refused row is named by file, row and column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from wangge.cli import app as cli
from wangge.errors import DataError
from wangge.serve.app import create_app
from wangge.serve.client import ServiceError, ingest_file
from wangge.serve.config import Settings


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    model, meta = tiny_model(tmp_path / "model", review_threshold=0.9)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'wangge.sqlite3'}", encoder_dir=None, route=False,
        max_text_chars=200,
    )  # fmt: skip
    with TestClient(create_app(settings, model=model, meta=meta)) as test_client:
        yield test_client


def write_messages(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    frame = pd.DataFrame(rows, columns=["留言编号", "留言主题", "留言详情", "留言时间"])
    frame["点赞数"] = "3"
    frame.to_csv(path, index=False)
    return path


ROWS = [
    ("a1", "垃圾没人清理", "小区垃圾桶满了好几天没人清理", "2026-11-01 09:00:00"),
    ("a2", "垃圾又没人清理", "小区垃圾桶满了好几天没人清理", "2026-11-02 09:00:00"),
    ("a3", "晚上施工太吵", "工地晚上施工噪音太大", "2026-11-03 22:00:00"),
]


def test_a_file_is_stored_once_with_its_fields(client: TestClient, tmp_path: Path) -> None:
    path = write_messages(tmp_path / "messages.csv", ROWS)
    progress: list[tuple[int, int]] = []
    summary = ingest_file(path, client, batch_size=2, progress=lambda *a: progress.append(a))
    assert (summary.stored, summary.replayed) == (3, 0) and progress == [(2, 3), (3, 3)]
    assert summary.new_cases == 2  # a2 repeats a1
    again = ingest_file(path, client)
    assert (again.stored, again.replayed) == (0, 3)
    hot = client.get("/v1/hot-issues", params={"since": "2026-10-01T00:00:00",
                                                "until": "2026-12-01T00:00:00"}).json()  # fmt: skip
    top = hot["cases"][0]
    assert (top["reports"], top["likes"]) == (2, 6)
    # a time without offset is the server's local time, answered with its offset
    assert datetime.fromisoformat(top["first_at"]) == datetime(2026, 11, 1, 9).astimezone()


def test_a_refused_row_is_named(client: TestClient, tmp_path: Path) -> None:
    rows = [*ROWS[:2], ("a9", "太长", "长" * 500, "2026-11-04 09:00:00")]
    path = write_messages(tmp_path / "long.csv", rows)
    with pytest.raises(DataError) as raised:
        ingest_file(path, client, batch_size=2)
    assert raised.value.row == 4  # title and body together are too long: no one column
    assert "the limit is 200" in str(raised.value)  # the service's words
    bad_likes = write_messages(tmp_path / "likes.csv", ROWS)
    frame = pd.read_csv(bad_likes, dtype=str)
    frame.loc[1, "点赞数"] = "many"
    frame.to_csv(bad_likes, index=False)
    with pytest.raises(DataError, match="whole number") as raised:
        ingest_file(bad_likes, client)
    assert (raised.value.row, raised.value.column) == (3, "点赞数")


def test_a_batch_over_the_services_character_limit_is_sent_in_halves(
    tmp_path: Path,
) -> None:
    model, meta = tiny_model(tmp_path / "model", review_threshold=0.9)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'wangge.sqlite3'}", encoder_dir=None, route=False,
        max_text_chars=40, max_request_chars=60,
    )  # fmt: skip
    rows = [(f"b{i}", "路灯不亮", f"第{i}个路口的路灯坏了" * 2, f"2026-11-0{i} 09:00:00")
            for i in range(1, 6)]  # fmt: skip
    path = write_messages(tmp_path / "messages.csv", rows)  # 5 messages of 24 characters
    with TestClient(create_app(settings, model=model, meta=meta)) as client:
        sizes: list[int] = []
        client.event_hooks["request"].append(
            lambda request: sizes.append(len(json.loads(request.content)["messages"]))
        )
        progress: list[tuple[int, int]] = []
        summary = ingest_file(path, client, batch_size=5, progress=lambda *a: progress.append(a))
    assert summary.stored == 5 and progress == [(5, 5)]
    assert sizes == [5, 2, 3, 1, 2]  # 120 and 72 characters refused, then 48, 24 and 48


def test_rows_without_text_are_counted_not_sent(client: TestClient, tmp_path: Path) -> None:
    rows = [ROWS[0], ("e1", " ", "", "2026-11-02 09:00:00"), ROWS[2]]
    path = write_messages(tmp_path / "messages.csv", rows)
    progress: list[tuple[int, int]] = []
    summary = ingest_file(path, client, batch_size=1, progress=lambda *a: progress.append(a))
    assert (summary.stored, progress) == (2, [(1, 2), (2, 2)])
    assert [(e.path, e.row) for e in summary.empty] == [(str(path), 3)]
    with pytest.raises(DataError, match="are all empty") as raised:
        ingest_file(path, client, strict=True)
    assert raised.value.row == 3


def test_the_command_names_rows_without_text(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    rows = [ROWS[0], ("e1", "", " ", "2026-11-02 09:00:00")]
    path = write_messages(tmp_path / "messages.csv", rows)
    # the command's own httpx client, sent to the test app
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, json=client.post(request.url.path, content=request.content,
                                  headers={"content-type": "application/json"}).json()
        )
    )  # fmt: skip
    original = httpx.Client

    def patched(**kwargs: object) -> httpx.Client:
        return original(transport=transport, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx, "Client", patched)
    result = CliRunner().invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 messages stored" in result.stdout and "1 without text not sent" in result.stdout
    assert f"file {path}, row 3: no text" in result.stderr
    assert "sent: 1/1 (100%)" in result.stderr


def test_the_command_reports_an_unreachable_service(tmp_path: Path) -> None:
    path = write_messages(tmp_path / "messages.csv", ROWS)
    args = ["ingest", str(path), "--url", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "cannot reach the service" in result.output


def test_a_wrong_key_is_explained(client: TestClient, tmp_path: Path) -> None:
    client.app.state.settings.api_keys = True  # type: ignore[attr-defined]
    path = write_messages(tmp_path / "messages.csv", ROWS)
    client.headers["X-API-Key"] = "wg_wrong"
    with pytest.raises(ServiceError, match="wangge keys create"):
        ingest_file(path, client)
