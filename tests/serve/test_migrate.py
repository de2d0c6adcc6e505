"""Alembic migrations: a new database is built by them, on SQLite and PostgreSQL, and the
SQLAlchemy models never drift from what the migrations build; only an upgrade migrates,
opening a store does not."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, column, create_engine, inspect, table, text

from wangge.serve.migrate import (
    SchemaError,
    current_revision,
    head_revision,
    open_store,
    upgrade_database,
)
from wangge.serve.storage import Base, Store


def test_a_new_database_is_migrated_to_the_newest_revision(database_url: str) -> None:
    store = open_store(database_url, upgrade=True)
    assert current_revision(store.engine) == head_revision()
    assert {"messages", "cases"} <= set(inspect(store.engine).get_table_names())
    upgrade_database(store.engine)  # at head already: nothing to do, nothing fails
    assert current_revision(store.engine) == head_revision()


def test_opening_a_store_migrates_nothing_and_an_old_schema_is_refused(
    database_url: str,
) -> None:
    store = Store(database_url)
    assert current_revision(store.engine) is None
    assert "messages" not in inspect(store.engine).get_table_names()
    with pytest.raises(SchemaError, match=r"has no wangge schema.*run `wangge db upgrade`"):
        open_store(database_url)
    upgrade_database(store.engine, "0004")
    with pytest.raises(SchemaError, match=f"is at revision 0004, .* needs {head_revision()}"):
        open_store(database_url)
    upgrade_database(store.engine)
    assert current_revision(open_store(database_url).engine) == head_revision()
    store.engine.dispose()


def test_the_models_match_what_the_migrations_build(database_url: str) -> None:
    store = open_store(database_url, upgrade=True)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "the models changed: write a migration (wangge db revision)"


def test_tables_from_before_migrations_are_refused_with_a_clear_error(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE messages (id INTEGER PRIMARY KEY)"))
    with pytest.raises(SchemaError, match="version without migrations"):
        upgrade_database(engine)
    engine.dispose()


def test_review_tasks_from_before_0005_get_their_category_and_street(database_url: str) -> None:
    engine = create_engine(database_url)
    upgrade_database(engine, "0004")
    created = datetime(2026, 11, 27, 10)
    names = ("id", "title", "content", "created_at", "likes", "dislikes", "dup_score")
    messages = table("messages", *(column(name) for name in names), column("result", JSON))
    tasks = table("review_tasks", *(column(name) for name in ("id", "message_id", "priority",
                  "status", "version", "created_at")), column("reasons", JSON))  # fmt: skip
    with engine.begin() as connection:
        connection.execute(messages.insert().values(
            id=1, title="", content="工地太吵", created_at=created, likes=0, dislikes=0,
            dup_score=0.0, result={"category": "噪音", "street_code": "330109001"}))  # fmt: skip
        connection.execute(tasks.insert().values(
            id=1, message_id=1, priority=0.5, status="open", version=1, created_at=created,
            reasons=["category"]))  # fmt: skip
    upgrade_database(engine)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT category, street_code FROM review_tasks")).one()
    assert tuple(row) == ("噪音", "330109001")
    engine.dispose()
