"""Concurrent review actions on SQLite (a file, WAL) and PostgreSQL: of two reviewers acting on
one task at the same moment exactly one wins and the other gets a conflict (409 over HTTP), and
concurrent duplicate corrections leave every case's ``reports`` equal to its messages.

Each race starts its threads on a barrier; every thread has its own session and calls the
functions the routes call (:func:`claim`, :func:`decide`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wangge.serve.migrate import open_store
from wangge.serve.review import Action, ReviewConflict, claim, decide, enqueue
from wangge.serve.storage import AuditRow, CaseRow, MessageRow, ReviewTaskRow, Store

RACES = 20
Act = Callable[[Session], object]


@pytest.fixture()
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url, upgrade=True)
    yield store
    store.engine.dispose()


def race(store: Store, acts: list[Act]) -> list[str]:
    """Run ``acts`` at once, each in its own thread and session: "won", or "conflict" for a
    :class:`ReviewConflict`; any other error fails the test."""
    barrier = threading.Barrier(len(acts))
    outcomes: list[str] = [""] * len(acts)

    def run(i: int) -> None:
        barrier.wait()
        try:
            with store.session() as session:
                acts[i](session)
            outcomes[i] = "won"
        except ReviewConflict:
            outcomes[i] = "conflict"
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcomes[i] = f"{type(error).__name__}: {error}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(acts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(outcome in ("won", "conflict") for outcome in outcomes), outcomes
    return outcomes


def add_case(session: Session, size: int, tasks: int = 0) -> list[MessageRow]:
    """A case of ``size`` messages, the first ``tasks`` of them with an open review task."""
    now = datetime.now()
    messages = [MessageRow(title=f"路灯不亮 {i}", content="路灯不亮", created_at=now,
                           result={"category": "城乡建设"}) for i in range(size)]  # fmt: skip
    session.add_all(messages)
    session.flush()
    case = CaseRow(id=messages[0].id, title="路灯不亮", first_at=now, last_at=now, reports=size)
    session.add(case)
    session.flush()
    for message in messages:
        message.case_id = case.id
    for message in messages[:tasks]:
        enqueue(session, message, ["category"], 0.5)
    return messages


def task_of(session: Session, message: MessageRow) -> int:
    task_id = session.scalar(select(ReviewTaskRow.id).where(ReviewTaskRow.message_id == message.id))
    assert task_id is not None
    return task_id


def claiming(task_id: int, reviewer: str) -> Act:
    return lambda session: claim(session, task_id, reviewer, 1)


def deciding(task_id: int, reviewer: str, action: Action, corrections: dict[str, int]) -> Act:
    return lambda session: decide(session, task_id, reviewer, 2, action, corrections)


def test_one_of_two_simultaneous_claims_wins(store: Store) -> None:
    for _ in range(RACES):
        with store.session() as session:
            task_id = task_of(session, add_case(session, 1, tasks=1)[0])
        outcomes = race(store, [claiming(task_id, "wang"), claiming(task_id, "li")])
        assert sorted(outcomes) == ["conflict", "won"]
        with store.session() as session:
            task = session.get(ReviewTaskRow, task_id)
            assert task is not None and (task.status, task.version) == ("claimed", 2)
            assert task.claimed_by == ("wang", "li")[outcomes.index("won")]
            claims = session.scalar(
                select(func.count()).where(AuditRow.task_id == task_id, AuditRow.action == "claim")
            )
            assert claims == 1


def test_one_of_two_simultaneous_decisions_is_applied(store: Store) -> None:
    for _ in range(RACES):
        with store.session() as session:
            task_id = task_of(session, add_case(session, 1, tasks=1)[0])
            claim(session, task_id, "wang", 1)
        actions: tuple[Action, Action] = ("accept", "invalid")
        outcomes = race(store, [deciding(task_id, "wang", action, {}) for action in actions])
        assert sorted(outcomes) == ["conflict", "won"]
        with store.session() as session:
            task = session.get(ReviewTaskRow, task_id)
            assert task is not None and task.version == 3
            assert task.status == ("done", "invalid")[outcomes.index("won")]
            decided = session.scalars(
                select(AuditRow.action).where(AuditRow.task_id == task_id)
            ).all()
            assert [a for a in decided if a in actions] == [actions[outcomes.index("won")]]


def test_simultaneous_duplicate_corrections_keep_the_counts(store: Store) -> None:
    """Per race, three corrections at once: the two reviewers' tasks in case C, one of them
    twice (to case A and to case B: one wins), the other to case A."""
    for _ in range(RACES):
        with store.session() as session:
            a, b = add_case(session, 1)[0], add_case(session, 1)[0]
            first, second = add_case(session, 3, tasks=2)[:2]
            tasks = task_of(session, first), task_of(session, second)
            claim(session, tasks[0], "wang", 1)
            claim(session, tasks[1], "li", 1)
            targets = a.id, b.id

        outcomes = race(store, [
            deciding(tasks[0], "wang", "correct", {"duplicate_of": targets[0]}),
            deciding(tasks[0], "wang", "correct", {"duplicate_of": targets[1]}),
            deciding(tasks[1], "li", "correct", {"duplicate_of": targets[0]}),
        ])  # fmt: skip
        assert sorted(outcomes[:2]) == ["conflict", "won"] and outcomes[2] == "won"
        with store.session() as session:
            moved = session.get(MessageRow, first.id)
            assert moved is not None and moved.duplicate_of == targets[outcomes.index("won")]
            counted = dict(
                session.execute(
                    select(MessageRow.case_id, func.count()).group_by(MessageRow.case_id)
                ).all()
            )
            reports = dict(session.execute(select(CaseRow.id, CaseRow.reports)).all())
            assert reports == {case_id: counted.get(case_id, 0) for case_id in reports}
