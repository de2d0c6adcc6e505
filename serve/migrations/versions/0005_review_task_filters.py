"""review tasks carry their message's category and street, for filtering in SQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 12:40:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("street_code", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_review_tasks_category"), ["category"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_review_tasks_street_code"), ["street_code"], unique=False
        )
    # Existing tasks take the values from their message's stored result (JSON, read here so
    # that the same code serves SQLite and PostgreSQL).
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT review_tasks.id, messages.result FROM review_tasks "
            "JOIN messages ON messages.id = review_tasks.message_id"
        )
    ).all()
    for task_id, result in rows:
        result = json.loads(result) if isinstance(result, str) else (result or {})
        connection.execute(
            sa.text("UPDATE review_tasks SET category = :c, street_code = :s WHERE id = :i"),
            {
                "c": result.get("category") or None,
                "s": result.get("street_code") or None,
                "i": task_id,
            },  # fmt: skip
        )


def downgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_tasks_street_code"))
        batch_op.drop_index(batch_op.f("ix_review_tasks_category"))
        batch_op.drop_column("street_code")
        batch_op.drop_column("category")
