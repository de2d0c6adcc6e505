"""Alembic migrations: a new database is built by them, on SQLite and PostgreSQL, and the
SQLAlchemy models never drift from what the migrations build."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from wangge.serve.migrate import SchemaError, current_revision, head_revision, upgrade_database
from wangge.serve.storage import Base, Store


def test_a_new_database_is_migrated_to_the_newest_revision(database_url: str) -> None:
    store = Store(database_url)
    assert current_revision(store.engine) == head_revision()
    assert {"messages", "cases"} <= set(inspect(store.engine).get_table_names())
    upgrade_database(store.engine)  # at head already: nothing to do, nothing fails
    assert current_revision(store.engine) == head_revision()


def test_the_models_match_what_the_migrations_build(database_url: str) -> None:
    store = Store(database_url)
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
