"""the 待定位 list: messages that name no community, until a dispatcher assigns a grid

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unlocated",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("street_code", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=True),
        sa.Column("located_by", sa.String(length=64), nullable=True),
        sa.Column("located_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )
    with op.batch_alter_table("unlocated", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unlocated_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_unlocated_street_code"), ["street_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unlocated", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unlocated_street_code"))
        batch_op.drop_index(batch_op.f("ix_unlocated_status"))
    op.drop_table("unlocated")
