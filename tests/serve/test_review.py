"""The review queue: doubtful messages enter it at ingest; claims, versions and the audit log
keep two reviewers from overwriting each other. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from conftest import tiny_model
from fastapi.testclient import TestClient
from sqlalchemy import select

from wangge.models.classifier import MessageClassifier
from wangge.models.dedup import Decision
from wangge.pipeline.artifact import ModelMeta
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.review import (
    QueueFilter,
    ReviewConflict,
    ReviewError,
    claim,
    decide,
    list_tasks,
    priority,
    review_reasons,
)
from wangge.serve.storage import AuditRow, MessageRow, ReviewTaskRow, Store

CLEAR = "小区垃圾桶满了好几天没人清理，垃圾没人清理，臭气熏天"
UNCLEAR = "请问这个事情到底归哪个部门管"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MessageClassifier, ModelMeta]:
    return tiny_model(tmp_path_factory.mktemp("model"), review_threshold=0.7)


@pytest.fixture()
def store(database_url: str, model: tuple[MessageClassifier, ModelMeta]) -> Iterator[Store]:
    """A store after ingesting a clear and an unclear message through the API."""
    settings = Settings(database_url=database_url, encoder_dir=None, route=False)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as client:
        for id_, content in (("clear", CLEAR), ("unclear", UNCLEAR)):
            response = client.post("/v1/messages", json={"id": id_, "content": content})
            assert response.status_code == 200, response.text
        yield client.app.state.ingestor.store  # type: ignore[attr-defined]


def test_only_doubtful_messages_enter_the_queue(store: Store) -> None:
    with store.session() as session:
        tasks = list_tasks(session)
        assert [m.external_id for _, m in tasks] == ["unclear"]
        task, message = tasks[0]
        assert task.reasons == ["category"] and message.result["review_reasons"][0].startswith(
            "category"
        )
        assert task.status == "open" and task.version == 1
        assert list_tasks(session, QueueFilter(reason="location")) == []
        assert list_tasks(session, QueueFilter(status="done")) == []


def test_claims_and_versions_stop_silent_overwrites(store: Store) -> None:
    with store.session() as session:
        [(task, _)] = list_tasks(session)
        task_id = task.id
    with store.session() as session:
        assert claim(session, task_id, "wang", 1).version == 2
    with store.session() as session, pytest.raises(ReviewConflict, match="在您打开后已有改动"):
        claim(session, task_id, "li", 1)  # li loaded version 1
    with store.session() as session, pytest.raises(ReviewConflict, match="已被 wang 认领"):
        claim(session, task_id, "li", 2)
    with store.session() as session, pytest.raises(ReviewConflict, match="请先认领任务"):
        decide(session, task_id, "li", 2, "accept")
    with store.session() as session, pytest.raises(ReviewError, match="更正须修改"):
        decide(session, task_id, "wang", 2, "correct", {"probability": 1.0})
    with store.session() as session:
        done = decide(session, task_id, "wang", 2, "correct", {"category": "环境卫生"})
        assert (done.status, done.version) == ("done", 3)
    with store.session() as session:
        message = session.get(MessageRow, session.get(ReviewTaskRow, task_id).message_id)  # type: ignore[union-attr]
        assert message is not None and message.result["category"] == "环境卫生"
        assert message.result["review"]["by"] == "wang"
        audit = session.scalars(
            select(AuditRow).where(AuditRow.task_id == task_id).order_by(AuditRow.id)
        ).all()
        assert [(a.actor, a.action) for a in audit] == [
            ("wangge", "enqueue"),
            ("wang", "claim"),
            ("wang", "correct"),
        ]
        assert (
            audit[-1].before["category"] != "环境卫生" and audit[-1].after["category"] == "环境卫生"
        )
        assert list_tasks(session, QueueFilter(status="done"))[0][0].id == task_id


def test_a_lapsed_claim_can_be_taken_over(store: Store) -> None:
    with store.session() as session:
        [(task, _)] = list_tasks(session)
        claim(session, task.id, "wang", 1)
        task.claimed_at = datetime.now() - timedelta(hours=1)
    with store.session() as session:
        assert claim(session, task.id, "li", 2).claimed_by == "li"


def test_borderline_duplicates_and_priority() -> None:
    prediction = {"review_reasons": [], "probability": 0.9}
    close = Decision("b", "a", "a", 0.6, {})
    assert review_reasons(prediction, close, threshold=0.55) == ["duplicate"]
    assert review_reasons(prediction, Decision("b", "a", "a", 0.9, {}), threshold=0.55) == []
    assert review_reasons(prediction, Decision("b", "b", None, 0.0, {}), threshold=0.55) == []
    assert (
        priority({"probability": 0.4}, ["category"], reports=10)
        > priority({"probability": 0.4}, ["category"])
        > priority(prediction, ["category"])
    )
    unplaced = {"probability": 0.99, "route_confidence": 0.2}
    assert priority(unplaced, ["location"]) == 0.8 > priority(unplaced, [])
    assert priority(prediction, ["duplicate"]) == 0.5
