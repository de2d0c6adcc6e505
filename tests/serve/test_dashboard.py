"""The review dashboard's data: grid search over a district's names (also 12,000 grids), the
day-by-day series of ``GET /review/api/stats/series`` and the hot-issue window, each ending at
the newest record rather than "now"."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_review_api import claimed, log_in, model, reviewing_service  # noqa: F401

from wangge.models.classifier import MessageClassifier
from wangge.nlp.registry import Registry
from wangge.pipeline.artifact import ModelMeta
from wangge.serve.grid_search import GridHit, GridIndex

MESSAGES = (  # (id, content, reported): all in 2024
    ("a1", "垃圾桶满了没人清理", "2024-03-10T09:00:00"),
    ("a2", "垃圾桶满了没人清理", "2024-03-09T09:00:00"),  # a case of 2 in the last week
    ("a3", "工地晚上施工太吵", "2024-03-01T22:00:00"),
    ("a4", "装修噪音从早到晚", "2024-01-20T10:00:00"),
    ("a5", "装修噪音从早到晚", "2024-01-21T10:00:00"),  # a case of 2 in January
)


@pytest.fixture()
def client(
    database_url: str,
    model: tuple[MessageClassifier, ModelMeta],  # noqa: F811
) -> Iterator[TestClient]:
    with reviewing_service(database_url, model, route=True) as test_client:
        for id_, content, at in MESSAGES:
            body = {"id": id_, "content": content, "created_at": at}
            assert test_client.post("/v1/messages", json=body).status_code == 200
        yield test_client


def test_a_community_name_offers_its_grids() -> None:
    index = GridIndex.of(Registry.load())
    hits, total = index.search("西河路")
    assert total >= 1 and {hit.community_name for hit in hits} == {"西河路社区"}
    street, street_total = index.search("城厢街道", limit=5)
    assert len(street) == 5 and street_total > 5
    assert all(hit.street_name == "城厢街道" for hit in street)
    assert index.search("世纪城")[1] >= 1  # a street's alias
    assert index.search("  ") == ([], 0) and index.search("没有这个地方")[1] == 0
    exact = index.search("330109001001-G01")[0]
    assert exact[0].id == "330109001001-G01" and exact[0].name == "陈公桥社区网格"


def test_grid_search_answers_quickly_for_twelve_thousand_grids() -> None:
    """20 streets × 50 communities × 12 grids: built once, then each query reads only the
    names sharing its rarest character."""
    entries = []
    for s in range(20):
        for c in range(50):
            for g in range(12):
                grid_id = f"33{s:02d}{c:03d}-G{g:02d}"
                names = (f"第{c}号{s}社区网格{g}", f"第{c}号{s}社区", f"{s}号街道", f"{c}{s}苑")
                entries.append((GridHit(grid_id, names[0], names[1], names[2], ""), names))
    started = time.perf_counter()
    index = GridIndex(entries)
    built = time.perf_counter() - started
    queries = ["第7号3社区", "5号街道", "苑", "17苑", "第49号19社区网格11", "网格"] * 50
    started = time.perf_counter()
    for query in queries:
        index.search(query)
    per_query = (time.perf_counter() - started) / len(queries)
    assert len(index.grids) == 12_000
    assert index.search("第7号3社区")[1] == 12
    assert index.search("5号街道")[1] == 50 * 12 * 2  # 5号街道 and 15号街道
    assert built < 5 and per_query < 0.05, (built, per_query)  # here: 0.1 s, 3 ms


def test_the_series_end_at_the_newest_message(client: TestClient) -> None:
    wang = log_in(client, "wang")
    series = client.get("/review/api/stats/series", params={"days": 7}, headers=wang).json()
    messages = series["messages"]
    assert messages["days"] == [f"2024-03-{day:02d}" for day in range(4, 11)]
    assert messages["messages"] == [0, 0, 0, 0, 0, 1, 1]
    assert messages["queued"] == messages["messages"]  # the tiny model doubts everything
    assert messages["auto_share"] == [None] * 5 + [0.0, 0.0]
    assert messages["categories"] == {"环境卫生": [0, 0, 0, 0, 0, 1, 1]}
    assert series["decisions"]["days"] == []  # no decision yet
    streets = series["streets"]
    assert sum(s["messages"] for s in streets) == 2 and sum(s["repeated"] for s in streets) == 2
    year = client.get("/review/api/stats/series", params={"days": 90}, headers=wang).json()
    assert (
        sum(year["messages"]["messages"]) == len(MESSAGES) and len(year["messages"]["days"]) == 90
    )
    [task, *_] = client.get("/review/api/tasks", headers=wang).json()["tasks"]
    url, version = claimed(client, wang, task)
    accepted = {"version": version, "action": "accept"}
    assert client.post(f"{url}/decision", json=accepted, headers=wang).status_code == 200
    decisions = client.get("/review/api/stats/series", headers=wang).json()["decisions"]
    assert len(decisions["days"]) == 30 and decisions["accept"][-1] == 1
    assert sum(decisions["correct"]) == sum(decisions["invalid"]) == 0
    assert (
        client.get("/review/api/stats/series", params={"days": 0}, headers=wang).status_code == 422
    )


def test_hot_issues_over_a_window_ending_at_the_newest_message(client: TestClient) -> None:
    wang = log_in(client, "wang")
    week = client.get("/review/api/stats", headers=wang).json()  # 7 days by default
    assert (week["hot_days"], week["hot_until"]) == (7, "2024-03-10T09:00")
    assert [hot["title"] for hot in week["hot_issues"]] == ["垃圾桶满了没人清理"]
    quarter = client.get("/review/api/stats", params={"hot_days": 90}, headers=wang).json()
    assert {hot["title"] for hot in quarter["hot_issues"]} == {
        "垃圾桶满了没人清理",
        "装修噪音从早到晚",
    }
