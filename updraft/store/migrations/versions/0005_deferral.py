"""Deferral: the trigger table, a task instance's trigger and where it resumes, pools that
count deferred tasks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A deferred task instance names its ``trigger`` row (``trigger_id``); the row holds the
trigger's class path and kwargs and the lease of the triggerer running it
(``triggerer_id``, ``lease_until``: past it, another triggerer takes the trigger over).
``next_method`` / ``next_kwargs`` say where the resumed try continues, ``trigger_timeout``
when the wait fails the task (ADR 11). ``slot_pool.include_deferred`` makes deferred tasks
hold their pool's slots (Airflow's setting).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def long_text() -> sa.types.TypeEngine:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql").with_variant(mysql.LONGTEXT(),
                                                                          "mariadb")


def utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql") \
        .with_variant(mysql.DATETIME(fsp=6), "mariadb") \
        .with_variant(sa.DateTime(timezone=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "trigger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("classpath", sa.String(1000), nullable=False),
        sa.Column("kwargs", long_text(), nullable=False),
        sa.Column("created_date", utc_datetime(), nullable=False),
        sa.Column("triggerer_id", sa.String(250), nullable=True),
        sa.Column("lease_until", utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger")),
    )
    op.create_index(op.f("ix_trigger_triggerer_id"), "trigger", ["triggerer_id"])
    op.create_index(op.f("ix_trigger_lease_until"), "trigger", ["lease_until"])
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("trigger_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trigger_timeout", utc_datetime(), nullable=True))
        batch.add_column(sa.Column("next_method", sa.String(1000), nullable=True))
        batch.add_column(sa.Column("next_kwargs", long_text(), nullable=True))
        batch.create_index("ix_task_instance_trigger_id", ["trigger_id"])
    with op.batch_alter_table("slot_pool") as batch:
        batch.add_column(sa.Column("include_deferred", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("slot_pool") as batch:
        batch.drop_column("include_deferred")
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_index("ix_task_instance_trigger_id")
        batch.drop_column("next_kwargs")
        batch.drop_column("next_method")
        batch.drop_column("trigger_timeout")
        batch.drop_column("trigger_id")
    op.drop_index(op.f("ix_trigger_lease_until"), table_name="trigger")
    op.drop_index(op.f("ix_trigger_triggerer_id"), table_name="trigger")
    op.drop_table("trigger")
