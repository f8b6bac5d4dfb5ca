"""Why a task instance is held back, as the scheduler recorded it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

``task_instance.waiting_reason`` is what the scheduler found when it last decided not to
move the task instance on (a full pool, the DAG's max_active_tasks, a task limit, a busy
executor, unmet upstream tasks, depends_on_past, a retry or reschedule time), as JSON
``{"state", "checks": [{"check", "reason"}]}``; ``waiting_since`` is when it first recorded
that check. Both are written only when the reason changes and cleared by the UPDATE that
queues the task instance; readers ignore them once the task instance left that state.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql") \
        .with_variant(mysql.DATETIME(fsp=6), "mariadb") \
        .with_variant(sa.DateTime(timezone=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("waiting_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("waiting_since", utc_datetime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("waiting_since")
        batch.drop_column("waiting_reason")
