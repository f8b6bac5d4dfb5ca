"""Each queued try gets an identity; each running try records the worker that runs it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

``task_instance.try_id`` is set when a try is queued and named by the request a worker
receives: the claim and the outcome compare-and-set on it, so a stale request for an
earlier queueing of the same try number is refused (ADR 2). ``task_instance.worker`` is the
executor slot's node (a Dask worker's name, an ``updraft worker``'s node id): when that node
is lost, its running tries are failed at once instead of at the zombie threshold.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("try_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("worker", sa.String(length=250), nullable=True))
        batch.create_index("ix_task_instance_state_worker", ["state", "worker"])


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_index("ix_task_instance_state_worker")
        batch.drop_column("worker")
        batch.drop_column("try_id")
