"""Versioned DAG bundles, and which scheduler queued each try.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``dag_bundle`` holds each content-addressed version of the DAGs folder (ADR 12): its
``version`` (the SHA-256 of its manifest), the manifest (each file's path and SHA-256) and
the files themselves as one zip archive, which workers with no DAGs folder fetch by version
and verify. ``dag_run.bundle_version`` pins a run to the version it was created with;
``serialized_dag.bundle_version`` says which version a serialized DAG came from.

``task_instance.queued_by`` is the scheduler node that queued the current try: a surviving
scheduler puts the queued tries of a scheduler that stopped heartbeating back to scheduled
(compare-and-set), instead of only when a scheduler starts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql") \
        .with_variant(mysql.DATETIME(fsp=6), "mariadb") \
        .with_variant(sa.DateTime(timezone=True), "postgresql")


def long_binary() -> sa.types.TypeEngine:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql") \
        .with_variant(mysql.LONGBLOB(), "mariadb")


def upgrade() -> None:
    op.create_table(
        "dag_bundle",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("archive", long_binary(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_dag_bundle")),
    )
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(sa.Column("bundle_version", sa.String(64), nullable=True))
    with op.batch_alter_table("serialized_dag") as batch:
        batch.add_column(sa.Column("bundle_version", sa.String(64), nullable=True))
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("queued_by", sa.String(250), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("queued_by")
    with op.batch_alter_table("serialized_dag") as batch:
        batch.drop_column("bundle_version")
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_column("bundle_version")
    op.drop_table("dag_bundle")
