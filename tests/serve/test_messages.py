"""POST /v1/messages, GET /v1/cases/{id} and GET /v1/hot-issues, persistence across restarts;
the ingest lock held only for what must be serial, the duplicate index built once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient

from wangge.models.classifier import MessageClassifier, Prediction
from wangge.pipeline.artifact import ModelMeta
from wangge.serve import ingest as ingest_module
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.ingest import Ingestor
from wangge.serve.migrate import open_store
from wangge.serve.schemas import IngestMessage
from wangge.serve.service import LoadedModel
from wangge.serve.storage import MessageRow

GARBAGE = "金城花园小区东门口的垃圾堆了好几天没人清理，天热了臭气熏天，请尽快处理。"
NOISE = "银河家园旁边的工地每天晚上施工到凌晨两点，噪音太大，附近居民根本睡不着。"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"))


def app_client(database_url: str, model: tuple[MessageClassifier, ModelMeta]) -> TestClient:
    settings = Settings(database_url=database_url, encoder_dir=None, route=False)
    return TestClient(create_app(settings, model=model[0], meta=model[1]))


@pytest.fixture()
def client(database_url: str, model: tuple[MessageClassifier, ModelMeta]) -> Iterator[TestClient]:
    """The API on an empty database, SQLite and (when configured) PostgreSQL."""
    with app_client(database_url, model) as test_client:
        yield test_client


def ingest(client: TestClient, body: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_a_repeat_joins_the_case_of_the_first_report(client: TestClient) -> None:
    [first] = ingest(client, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE,
                              "created_at": "2024-05-01T09:00:00", "reporter": "u1"})  # fmt: skip
    assert first["case_id"] == first["message_id"] and first["duplicate_of"] is None
    assert first["category"] == "环境卫生" and first["replayed"] is False
    [second] = ingest(client, {"id": "b", "title": "垃圾没人清理", "content": GARBAGE,
                               "created_at": "2024-05-02T09:00:00", "reporter": "u2"})  # fmt: skip
    assert second["case_id"] == first["case_id"]
    assert second["duplicate_of"] == first["message_id"] and second["dup_score"] == 1.0
    assert second["dup_evidence"]["closest"] == first["message_id"]
    [other] = ingest(client, {"id": "c", "title": "工地噪音", "content": NOISE})
    assert other["case_id"] != first["case_id"]
    case = client.get(f"/v1/cases/{first['case_id']}").json()
    assert case["reports"] == 2 and case["reporters"] == 2
    assert [m["id"] for m in case["messages"]] == ["a", "b"]


def test_the_same_message_twice_never_makes_two_cases_or_two_rows(client: TestClient) -> None:
    body = {"id": "x-1", "title": "垃圾没人清理", "content": GARBAGE}
    [first] = ingest(client, body)
    [again] = ingest(client, body)
    assert again["replayed"] is True
    assert (again["message_id"], again["case_id"]) == (first["message_id"], first["case_id"])
    [no_id_1, no_id_2] = ingest(client, {"messages": [{"content": GARBAGE}, {"content": GARBAGE}]})
    assert no_id_1["case_id"] == no_id_2["case_id"] == first["case_id"]
    assert client.get(f"/v1/cases/{first['case_id']}").json()["reports"] == 3


def test_cases_survive_a_restart(
    database_url: str, model: tuple[MessageClassifier, ModelMeta]
) -> None:
    with app_client(database_url, model) as client:
        [first] = ingest(client, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE})
    with app_client(database_url, model) as restarted:
        [repeat] = ingest(restarted, {"id": "b", "title": "垃圾又没人清理", "content": GARBAGE})
        [replay] = ingest(restarted, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE})
        case = restarted.get(f"/v1/cases/{first['case_id']}").json()
    assert repeat["case_id"] == first["case_id"] and replay["replayed"] is True
    assert case["reports"] == 2


def test_hot_issues_rank_by_heat_within_the_window(client: TestClient) -> None:
    for index in range(3):
        ingest(client, {"title": "垃圾没人清理", "content": GARBAGE, "reporter": f"u{index}",
                        "created_at": f"2024-05-0{index + 1}T09:00:00", "likes": 2})  # fmt: skip
    ingest(client, {"title": "工地噪音", "content": NOISE, "created_at": "2024-05-02T09:00:00"})
    old = "幸福路与人民路交叉口的红绿灯坏了三天，早晚高峰非常堵，请尽快派人维修。"
    ingest(client, {"title": "红绿灯坏了", "content": old, "created_at": "2023-01-01"})
    response = client.get("/v1/hot-issues", params={"since": "2024-04-01", "until": "2024-05-10"})
    assert response.status_code == 200, response.text
    cases = response.json()["cases"]
    assert [c["reports"] for c in cases] == [3, 1]
    assert cases[0]["heat"] > cases[1]["heat"] and cases[0]["likes"] == 6
    assert len(client.get("/v1/hot-issues", params={"limit": 1}).json()["cases"]) == 1


def test_errors(client: TestClient) -> None:
    assert client.get("/v1/cases/999").status_code == 404
    bad_time = client.post("/v1/messages", json={"content": GARBAGE, "created_at": "上周三"})
    assert bad_time.status_code == 422 and "created_at" in bad_time.text
    assert client.post("/v1/messages", json={"content": " "}).status_code == 422
    assert client.get("/v1/hot-issues", params={"limit": 0}).status_code == 422
    backwards = client.get("/v1/hot-issues", params={"since": "2024-05-10", "until": "2024-05-01"})
    assert backwards.status_code == 422


def test_embeddings_are_stored_and_reused_after_a_restart(
    database_url: str, model: tuple[MessageClassifier, ModelMeta], tiny_bert_dir: Path
) -> None:
    settings = Settings(database_url=database_url, encoder_dir=tiny_bert_dir, route=False)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as client:
        [first] = ingest(client, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE})
        ingestor = client.app.state.ingestor  # type: ignore[attr-defined]
        with ingestor.store.session() as session:
            row = session.get(MessageRow, int(first["message_id"]))
            assert row is not None and row.embedding is not None
            stored = np.frombuffer(row.embedding, np.float32)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as client:
        [repeat] = ingest(client, {"id": "b", "title": "垃圾没人清理", "content": GARBAGE})
        detector = client.app.state.ingestor.detector  # type: ignore[attr-defined]
        restored = detector.vector(first["message_id"])
    assert repeat["case_id"] == first["case_id"] and repeat["dup_evidence"]["cosine"] is not None
    np.testing.assert_array_equal(restored, stored)  # reloaded, not recomputed


def test_the_hnsw_graph_is_saved_at_shutdown_and_restored_at_start(
    tmp_path: Path,
    model: tuple[MessageClassifier, ModelMeta],
    tiny_bert_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = tmp_path / "wangge.sqlite3"
    settings = Settings(
        database_url=f"sqlite:///{database}", encoder_dir=tiny_bert_dir, route=False
    )
    assert settings.ann_snapshot_path() == Path(f"{database}.hnsw")
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as client:
        [first] = ingest(client, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE})
    assert Path(f"{database}.hnsw").is_file()
    with (
        caplog.at_level("INFO"),
        TestClient(create_app(settings, model=model[0], meta=model[1])) as client,
    ):
        [repeat] = ingest(client, {"id": "b", "title": "垃圾没人清理", "content": GARBAGE})
    assert "from 1 stored messages (1 with the saved HNSW graph)" in caplog.text
    assert repeat["case_id"] == first["case_id"]


class FirstCallBlocks:
    """The tiny model, whose first call waits until ``release`` is set: a slow message."""

    def __init__(self, model: MessageClassifier) -> None:
        self.model, self.calls = model, 0
        self.entered, self.release = threading.Event(), threading.Event()

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(30)
        return self.model.predict_explained(texts, top_k=top_k)


def test_the_ingest_lock_is_not_held_while_the_models_run(
    database_url: str, model: tuple[MessageClassifier, ModelMeta], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=database_url, encoder_dir=None)
    ingestor = Ingestor.open(settings, open_store(database_url, upgrade=True))
    slow = FirstCallBlocks(model[0])
    loaded = LoadedModel(slow, model[1])

    def ingest(id_: str) -> list[Any]:
        message = IngestMessage(id=id_, title="垃圾没人清理", content=GARBAGE)
        return ingestor.ingest(loaded, None, [message], top_k=3)

    slow_results: list[Any] = []
    slow_thread = threading.Thread(target=lambda: slow_results.extend(ingest("slow")))
    slow_thread.start()
    assert slow.entered.wait(30)  # the slow message is in its model
    started = time.perf_counter()
    [quick] = ingest("quick")  # ingested meanwhile, not stalled behind it
    assert time.perf_counter() - started < 10 and not slow_results
    slow.release.set()
    slow_thread.join(30)
    [late] = slow_results
    # Its model ran first, but it is decided against what was committed before it.
    assert late.duplicate_of == quick.message_id and late.case_id == quick.case_id
    assert len(ingestor.lock_holds) == 2 and max(ingestor.lock_holds) < 10
    with caplog.at_level("INFO"):
        ingestor.close()
    assert "ingest lock held 2 times: p50" in caplog.text
    ingestor.store.engine.dispose()


def test_the_duplicate_index_is_built_once_and_read_endpoints_only_read_the_store(
    database_url: str,
    model: tuple[MessageClassifier, ModelMeta],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds: list[int] = []
    load_detector = ingest_module.load_detector

    def counted(*args: Any, **kwargs: Any) -> tuple[int, int]:
        builds.append(1)
        return load_detector(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "load_detector", counted)
    with app_client(database_url, model) as client:
        assert builds == [1]  # by the lifespan, before any request
        assert client.get("/v1/cases/1").status_code == 404
        assert client.get("/v1/hot-issues").json()["cases"] == []
        [first] = ingest(client, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE})
        assert client.get(f"/v1/cases/{first['case_id']}").json()["reports"] == 1
        [replay] = ingest(client, {"id": "a", "title": "垃圾没人清理", "content": GARBAGE})
        assert replay["replayed"] is True and replay["message_id"] == first["message_id"]
    assert builds == [1]


def test_an_encoder_directory_without_its_graph_means_lexical_duplicates(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An interrupted `wangge models fetch-e5` leaves a directory without encoder.onnx: the
    service compares texts lexically (and says so) instead of failing to start."""
    half_built = tmp_path / "e5-small"
    half_built.mkdir()
    settings = Settings(database_url=database_url, encoder_dir=half_built)
    ingestor = Ingestor.open(settings, open_store(database_url, upgrade=True))
    assert ingestor.detector.encoder is None
    assert "no sentence encoder" in caplog.text
