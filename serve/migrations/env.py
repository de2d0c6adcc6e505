"""Alembic's environment: migrations run on the connection :mod:`wangge.serve.migrate` passes."""

from __future__ import annotations

from alembic import context

from wangge.serve.storage import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through wangge.serve.migrate (wangge db upgrade)")
# Batch mode rebuilds SQLite tables for the ALTERs SQLite cannot do in place.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
