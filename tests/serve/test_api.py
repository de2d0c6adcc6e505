"""The HTTP API end to end, with a tiny real model saved to disk and loaded by the lifespan."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from wangge.batch.files import load_messages
from wangge.errors import ModelLoadError
from wangge.models.classifier import MessageClassifier, Prediction
from wangge.pipeline.artifact import ModelMeta, save_model
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.dependencies import app_settings
from wangge.serve.schemas import MessageIn
from wangge.serve.service import pipeline_message

TRAINING = {
    "照明": ["路灯坏了晚上很黑", "小区路灯不亮", "道路照明故障", "路灯闪烁", "街道路灯损坏",
             "路灯一直不亮"],
    "环卫": ["垃圾没人清理", "小区垃圾堆积", "垃圾桶满了", "楼道垃圾很臭", "垃圾清运不及时",
             "生活垃圾乱扔"],
    "噪音": ["噪音扰民严重", "晚上施工噪音", "广场舞噪音大", "装修噪音太吵", "夜间噪声扰民",
             "酒吧噪音很大"],
}  # fmt: skip


@pytest.fixture(scope="module")
def trained() -> MessageClassifier:
    texts = [text for examples in TRAINING.values() for text in examples]
    labels = [label for label, examples in TRAINING.items() for _ in examples]
    return MessageClassifier(min_df=1).fit(texts, labels)


@pytest.fixture(scope="module")
def model_dir(trained: MessageClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    save_model(
        trained,
        directory,
        name="tiny-test",
        labels=sorted(TRAINING),
        training_data={"rows": 18},
        config={},
        metrics={},
    )
    return directory


@pytest.fixture(scope="module")
def meta(model_dir: Path) -> ModelMeta:
    return ModelMeta.model_validate_json((model_dir / "meta.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def client(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app as served: settings name the model directory, the lifespan loads it."""
    database = tmp_path_factory.mktemp("database") / "wangge.sqlite3"
    settings = Settings(model_dir=model_dir, database_url=f"sqlite:///{database}")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


JSON = {"Content-Type": "application/json"}


def classify(client: TestClient, body: Any) -> Any:
    return client.post("/v1/classify", json=body)


def error_messages(response: Any) -> str:
    """All ``msg`` of a 422 joined, after checking the error format."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and all({"loc", "msg", "type"} <= set(error) for error in detail)
    assert all("input" not in error for error in detail)  # refused text is not echoed
    return " | ".join(error["msg"] for error in detail)


# -- happy paths --------------------------------------------------------------------------
def test_healthz_names_the_loaded_model(client: TestClient, meta: ModelMeta) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "model_name": "tiny-test",
        "model_version": meta.version,
    }


def test_single_message(client: TestClient, meta: ModelMeta) -> None:
    response = classify(
        client,
        {
            "id": "m-1",
            "title": "路灯不亮",
            "content": "城厢街道陈公桥社区小区路灯坏了",
            "metadata": {"a": 1},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == meta.version
    [result] = body["results"]
    assert result["id"] == "m-1"
    assert result["category"] == "照明"
    assert result["metadata"] == {"a": 1}
    assert len(result["top_k"]) == 3
    assert result["top_k"][0]["category"] == "照明"
    assert "路灯" in result["evidence"]  # the word that makes it a lighting complaint
    assert result["probability"] == result["top_k"][0]["probability"]
    probabilities = [s["probability"] for s in result["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1, abs=1e-3)
    assert result["needs_review"] is False and result["review_reasons"] == []


def test_batch_preserves_order_ids_and_metadata(client: TestClient) -> None:
    messages = [
        {"id": "a", "content": "垃圾桶满了没人清理", "metadata": {"n": 0}},
        {"title": "路灯一直不亮"},
        {"id": "c", "content": "晚上施工噪音扰民", "metadata": {"n": 2}},
    ]
    response = classify(client, {"messages": messages})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == ["a", None, "c"]
    assert [r["category"] for r in results] == ["环卫", "照明", "噪音"]
    assert [r["metadata"] for r in results] == [{"n": 0}, None, {"n": 2}]


@pytest.mark.parametrize(
    "message",
    [
        {"title": "路灯一直不亮"},
        {"content": "路灯一直不亮"},
        {"title": "  ", "content": "路灯一直不亮"},
    ],
)
def test_title_or_content_alone_is_enough(client: TestClient, message: dict[str, str]) -> None:
    response = classify(client, message)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["category"] == "照明"


def test_text_without_known_words_is_scored_not_refused(client: TestClient) -> None:
    response = classify(client, {"content": "。。。！！"})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["category"] in TRAINING


@pytest.mark.parametrize(
    ("title", "content"), [("标题", "正文"), ("", "正文"), ("标题", "  "), ("标题", "")]
)
def test_api_builds_the_same_text_as_training(title: str, content: str, tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    pd.DataFrame({"留言主题": [title], "留言详情": [content]}).to_csv(path, index=False)
    [training_text] = load_messages(path).texts
    message = MessageIn(title=title or None, content=content)
    assert pipeline_message(message).text == training_text


def test_needs_review_when_threshold_above_every_probability(
    trained: MessageClassifier, meta: ModelMeta
) -> None:
    strict = copy.deepcopy(trained)
    strict.review_threshold = 0.99
    with TestClient(create_app(Settings(route=False), model=strict, meta=meta)) as test_client:
        response = classify(test_client, {"messages": [{"title": "路灯一直不亮"}]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["needs_review"] is True
    assert result["review_reasons"] == ["category"]  # a code, not a sentence


def test_top_k_comes_from_settings(trained: MessageClassifier, meta: ModelMeta) -> None:
    with TestClient(
        create_app(Settings(top_k=2, route=False), model=trained, meta=meta)
    ) as test_client:
        response = classify(test_client, {"title": "路灯一直不亮"})
    assert len(response.json()["results"][0]["top_k"]) == 2


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "wangge message triage"
    assert "/v1/classify" in schema["paths"] and "/healthz" in schema["paths"]


# -- refused input ------------------------------------------------------------------------
@pytest.mark.parametrize("message", [{}, {"title": "", "content": ""}, {"title": None}])
def test_single_message_without_text_is_refused(client: TestClient, message: dict) -> None:
    response = classify(client, message)
    assert "the message has no text" in error_messages(response)
    assert response.json()["detail"][0]["type"] == "empty_text"


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        ('{"title": "\\ud800 路灯"}', "title", "lone surrogate"),
        ('{"content": "a\\u0000b"}', "content", "NUL character"),
        ('{"address": "%s"}' % ("城厢街道萧山" * 100), "address", "at most 500 characters"),
        ('{"title": "路灯", "id": "%s"}' % ("x" * 129), "id", "at most 128 characters"),
        ('{"title": "路灯", "grid_id": "%s"}' % ("g" * 129), "grid_id", "at most 128"),
    ],
)
def test_unstorable_or_oversized_fields_are_refused(
    client: TestClient, raw: str, field: str, expected: str
) -> None:
    """Refused with 422 naming the field, before any model or database sees them."""
    for path in ("/v1/classify", "/v1/messages"):
        headers = {"Content-Type": "application/json"}
        response = client.post(path, content=raw.encode(), headers=headers)
        assert expected in error_messages(response), path
        assert response.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize("count", ["likes", "dislikes"])
def test_counts_beyond_the_database_integer_are_refused(client: TestClient, count: str) -> None:
    response = client.post("/v1/messages", json={"title": "路灯不亮", count: 2**31})
    assert "less than or equal to 2147483647" in error_messages(response)


def test_whitespace_only_message_in_batch_names_its_index(client: TestClient) -> None:
    messages = [{"title": "路灯不亮"}, {"title": " \t", "content": "\u3000\n"}]
    response = classify(client, {"messages": messages})
    assert "message 1 has no text" in error_messages(response)
    assert response.json()["detail"][0]["loc"] == ["body", "batch", "messages", 1]


def test_every_bad_message_is_reported(client: TestClient) -> None:
    messages = [{"content": ""}, {"title": "路灯"}, {"content": "x" * 20_001}]
    messages_text = error_messages(classify(client, {"messages": messages}))
    assert "message 0 has no text" in messages_text
    assert "message 2 is too long" in messages_text


def test_over_long_text_names_the_limit(client: TestClient) -> None:
    response = classify(client, {"title": "路灯" * 5_000, "content": "坏" * 10_001})
    assert "20001 characters together, the limit is 20000" in error_messages(response)
    at_limit = classify(client, {"title": "路灯" * 5_000, "content": "坏" * 10_000})
    assert at_limit.status_code == 200


def test_batch_over_the_limit_names_it(client: TestClient) -> None:
    response = classify(client, {"messages": [{"title": "路灯"}] * 257})
    assert "the batch has 257 messages, the limit is 256" in error_messages(response)


def test_empty_batch_is_refused(client: TestClient) -> None:
    response = classify(client, {"messages": []})
    assert "the batch is empty: send 1 to 256 messages" in error_messages(response)


def test_limits_are_read_from_settings_at_runtime(client: TestClient) -> None:
    app = client.app
    app.dependency_overrides[app_settings] = lambda: Settings(max_batch_size=2, max_text_chars=5)
    try:
        batch = classify(client, {"messages": [{"title": "路灯"}] * 3})
        text = classify(client, {"title": "路灯一直不亮"})
    finally:
        app.dependency_overrides.clear()
    assert "the limit is 2" in error_messages(batch)
    assert "6 characters together, the limit is 5" in error_messages(text)


@pytest.mark.parametrize("endpoint", ["/v1/classify", "/v1/messages"])
def test_request_over_the_character_budget_is_refused_before_any_model_runs(
    client: TestClient, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client.app
    settings = Settings(max_text_chars=10, max_request_chars=20, database_url="sqlite://")
    app.dependency_overrides[app_settings] = lambda: settings
    within = [{"title": "路灯不亮", "content": "坏了"}] * 2 + [{"content": "路灯" * 4}]
    over = [*within[:2], {"content": "路灯" * 4 + "坏"}]
    try:
        accepted = client.post(endpoint, json={"messages": within})  # 6 + 6 + 8 = 20
        monkeypatch.setattr("wangge.serve.routes.classify.triage_messages", _must_not_run)
        monkeypatch.setattr("wangge.serve.ingest.Ingestor.ingest", _must_not_run)
        refused = client.post(endpoint, json={"messages": over})  # 6 + 6 + 9 = 21
    finally:
        app.dependency_overrides.clear()
    assert accepted.status_code == 200, accepted.text
    assert "the batch has 21 characters in all, the limit is 20: split it into several " \
        "requests" in error_messages(refused)  # fmt: skip
    assert refused.json()["detail"][0]["loc"] == ["body", "batch", "messages"]
    assert refused.json()["detail"][0]["type"] == "request_too_large"


def test_openapi_documents_the_limits_of_both_endpoints(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/v1/classify", "/v1/messages"):
        refused = schema["paths"][path]["post"]["responses"]["422"]
        assert "WANGGE_MAX_REQUEST_CHARS" in refused["description"]
        reference = refused["content"]["application/json"]["schema"]["$ref"]
        assert reference.rsplit("/", 1)[-1] in schema["components"]["schemas"]


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("a refused request reached the models")


def test_character_budget_holds_the_longest_message() -> None:
    with pytest.raises(ValueError, match="max_request_chars .* is below max_text_chars"):
        Settings(max_text_chars=100, max_request_chars=99)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"title": 123}, ["body", "single", "title"]),
        ({"title": ["路灯"]}, ["body", "single", "title"]),
        ({"id": 7, "title": "路灯"}, ["body", "single", "id"]),
        ({"messages": "x"}, ["body", "batch", "messages"]),
        ({"messages": [{"content": {"a": 1}}]}, ["body", "batch", "messages", 0, "content"]),
        ({"metadata": "x", "title": "路灯"}, ["body", "single", "metadata"]),
    ],
)
def test_wrong_types_are_refused(client: TestClient, body: Any, loc: list) -> None:
    response = classify(client, body)
    assert "valid" in error_messages(response)
    assert response.json()["detail"][0]["loc"] == loc


def test_unknown_field_is_refused_not_ignored(client: TestClient) -> None:
    response = classify(client, {"title": "路灯", "contnet": "坏了"})
    assert "Extra inputs are not permitted" in error_messages(response)
    assert response.json()["detail"][0]["loc"] == ["body", "single", "contnet"]


@pytest.mark.parametrize("body", [["路灯不亮"], "路灯不亮", 42])
def test_body_that_is_not_an_object_is_refused(client: TestClient, body: Any) -> None:
    assert "expected a JSON object" in error_messages(classify(client, body))


def test_malformed_json_is_refused(client: TestClient) -> None:
    response = client.post(
        "/v1/classify",
        content='{"title": "路灯'.encode(),
        headers={"content-type": "application/json"},
    )
    assert "the body is not valid JSON" in error_messages(response)
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_missing_body_is_refused(client: TestClient) -> None:
    assert "the request has no body" in error_messages(client.post("/v1/classify"))


# -- startup and server errors ------------------------------------------------------------
def test_unknown_model_dir_stops_startup(tmp_path: Path) -> None:
    app = create_app(Settings(model_dir=tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="does not exist"), TestClient(app):
        pass


def test_no_model_dir_stops_startup() -> None:
    with (
        pytest.raises(ModelLoadError, match="WANGGE_MODEL_DIR"),
        TestClient(create_app(Settings())),
    ):
        pass


def test_model_and_meta_go_together(trained: MessageClassifier) -> None:
    with pytest.raises(ValueError, match="both"):
        create_app(Settings(), model=trained)


class FailsOnRequest:
    """Scores the startup test text, then fails as a buggy model would."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_explained(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("secret internal state")
        return [Prediction("照明", 1.0, [("照明", 1.0)], False, None) for _ in texts]


def test_model_failure_is_a_logged_generic_500(
    meta: ModelMeta, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(), model=FailsOnRequest(), meta=meta)
    with TestClient(app) as test_client, caplog.at_level(logging.ERROR, logger="wangge.serve"):
        response = classify(test_client, {"title": "路灯不亮"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error while classifying; the server logged it"}
    assert "secret" not in response.text
    assert any("secret internal state" in r.exc_text for r in caplog.records if r.exc_text)


def test_model_info_lists_labels_and_version(client: TestClient, meta: ModelMeta) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == meta.version
    assert body["labels"] == meta.labels
    assert set(body["labels"]) == set(TRAINING)


# -- routing ------------------------------------------------------------------------------
def test_results_carry_place_grid_and_departments(client: TestClient) -> None:
    response = classify(
        client,
        {
            "messages": [
                {"id": "a", "content": "城厢街道陈公桥社区路灯坏了"},
                {"id": "b", "content": "路灯坏了", "address": "萧山区北干街道荣庄村8号"},
                {"id": "c", "content": "滨江区长河街道的路灯坏了"},
                {"id": "d", "content": "路灯坏了", "grid_id": "330109002207-G01"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    a, b, c, d = response.json()["results"]
    assert (a["street_name"], a["community_name"], a["grid_id"]) == (
        "城厢街道",
        "陈公桥社区",
        "330109001001-G01",
    )
    assert a["community_code"] == "330109001001" and a["route_confidence"] >= 0.9
    assert any("陈公桥社区" in e for e in a["route_evidence"])
    assert a["department"] == a["departments"][0]["department"] == "区城管局"
    assert a["departments"][0]["reasons"] and len(a["departments"]) <= 3
    assert b["community_name"] == "荣庄村" and d["community_name"] == "荣庄村"
    assert c["out_of_area"] is True and c["community_code"] == ""
    assert "location" not in c["review_reasons"]  # confidently elsewhere: forward, no review


def test_unresolved_location_needs_review(client: TestClient) -> None:
    [result] = classify(client, {"title": "路灯不亮", "content": "小区路灯坏了"}).json()["results"]
    assert result["street_code"] == "" and result["needs_review"] is True
    assert result["review_reasons"] == ["unlocated"]  # no place named: to the 待定位 list


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"latitude": 30.2}, "only one of latitude and longitude"),
        ({"latitude": 95.0, "longitude": 120.2}, "less than or equal to 90"),
        ({"latitude": "30.2", "longitude": 120.2}, "valid number"),
    ],
)
def test_bad_coordinates_are_refused(client: TestClient, extra: dict, message: str) -> None:
    response = classify(client, {"content": "路灯坏了", **extra})
    assert message in error_messages(response)


def test_routing_can_be_switched_off(trained: MessageClassifier, meta: ModelMeta) -> None:
    app = create_app(Settings(route=False), model=trained, meta=meta)
    with TestClient(app) as test_client:
        [result] = classify(test_client, {"content": "城厢街道路灯坏了"}).json()["results"]
    assert result["street_code"] == "" and result["departments"] == []


@pytest.mark.parametrize("case_id", [0, 2**31, 2**63, 2**64])
def test_case_ids_out_of_the_database_range_are_refused(client: TestClient, case_id: int) -> None:
    response = client.get(f"/v1/cases/{case_id}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", "case_id"]


def test_security_headers(client: TestClient) -> None:
    """No framing, no sniffing, no referrer anywhere; no inline script but on the API docs;
    answers carrying messages or a session token are not stored by caches."""
    for path in ("/review", "/review/static/review.js", "/healthz", "/openapi.json"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy
    assert "Content-Security-Policy" not in client.get("/docs").headers  # Swagger UI is inline
    assert client.get("/docs").headers["X-Frame-Options"] == "DENY"
    classified = client.post("/v1/classify", json={"title": "路灯不亮"})
    login = client.post("/review/api/login", json={"username": "nobody", "password": "x" * 12})
    for response in (classified, login):
        assert response.headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.get("/review/static/review.css").headers


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        model_dir=model_dir, database_url=f"sqlite:///{tmp_path / 'w.sqlite3'}", max_body_bytes=2048
    )
    body = json.dumps({"title": "路灯不亮", "content": "灯" * 1000}).encode()  # 3 KB
    with TestClient(create_app(settings)) as small:
        declared = small.post("/v1/classify", content=body, headers=JSON)
        chunked = small.post("/v1/classify", content=iter([body[:1500], body[1500:]]), headers=JSON)
        within = small.post("/v1/classify", json={"title": "路灯不亮"})
    for response in (declared, chunked):  # with Content-Length, and streamed without one
        assert response.status_code == 413, response.text
        assert response.json()["detail"] == "the request body is larger than 2048 bytes"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert within.status_code == 200


def test_metadata_is_bounded(client: TestClient) -> None:
    response = classify(client, {"title": "路灯不亮", "metadata": {"note": "x" * 10_001}})
    assert "at most 10000" in error_messages(response)
    echoed = classify(client, {"title": "路灯不亮", "metadata": {"ticket": "T-1"}})
    assert echoed.json()["results"][0]["metadata"] == {"ticket": "T-1"}
