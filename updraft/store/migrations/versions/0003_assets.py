"""Assets: their definitions, aliases, what DAGs do with them, events and deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10

``asset_event`` rows get an id that grows with every event; ``asset_delivery`` holds one row
per (consuming DAG, event), written in the event's transaction, whose ``run_id`` the
consuming run sets once (ADR 10: every event is consumed by exactly one run of each DAG
scheduled on its asset). Column types are spelled out here, as in 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def id_string(length: int) -> sa.types.TypeEngine:
    variant = mysql.VARCHAR(length, charset="utf8mb3", collation="utf8mb3_bin")
    return sa.String(length).with_variant(variant, "mysql").with_variant(variant, "mariadb")


def utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql") \
        .with_variant(mysql.DATETIME(fsp=6), "mariadb") \
        .with_variant(sa.DateTime(timezone=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", id_string(1000), nullable=False),
        sa.Column("uri", id_string(1000), nullable=False),
        sa.Column("asset_group", sa.String(length=1000), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("watchers", sa.JSON(), nullable=True),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("updated_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset")),
        sa.UniqueConstraint("name", name=op.f("uq_asset_name")),
    )
    op.create_index(op.f("ix_asset_uri"), "asset", ["uri"])
    op.create_table(
        "asset_alias",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", id_string(1000), nullable=False),
        sa.Column("alias_group", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_alias")),
        sa.UniqueConstraint("name", name=op.f("uq_asset_alias_name")),
    )
    op.create_table(
        "asset_alias_asset",
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("alias_id", "asset_id", name=op.f("pk_asset_alias_asset")),
    )
    op.create_index(op.f("ix_asset_alias_asset_asset_id"), "asset_alias_asset", ["asset_id"])
    op.create_table(
        "asset_reference",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", id_string(250), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("task_id", id_string(250), nullable=False),
        sa.Column("target_type", sa.String(length=20), nullable=False),
        sa.Column("target", id_string(1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_reference")),
    )
    op.create_index(op.f("ix_asset_reference_target"), "asset_reference", ["target"])
    op.create_index(op.f("ix_asset_reference_dag_id"), "asset_reference", ["dag_id"])
    op.create_table(
        "asset_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_dag_id", id_string(250), nullable=True),
        sa.Column("source_run_id", id_string(250), nullable=True),
        sa.Column("source_task_id", id_string(250), nullable=True),
        sa.Column("source_map_index", sa.Integer(), nullable=True),
        sa.Column("source_try_number", sa.Integer(), nullable=True),
        sa.Column("source_aliases", sa.JSON(), nullable=True),
        sa.Column("msg_id", sa.String(length=250), nullable=True),
        sa.Column("timestamp", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_event")),
        sa.UniqueConstraint("msg_id", name=op.f("uq_asset_event_msg_id")),
    )
    op.create_index(op.f("ix_asset_event_asset_id_id"), "asset_event", ["asset_id", "id"])
    op.create_index(op.f("ix_asset_event_source_dag_id_source_run_id"), "asset_event",
                    ["source_dag_id", "source_run_id"])
    op.create_table(
        "asset_delivery",
        sa.Column("dag_id", id_string(250), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("run_id", id_string(250), nullable=True),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", "event_id", name=op.f("pk_asset_delivery")),
    )
    op.create_index(op.f("ix_asset_delivery_dag_id_run_id_event_id"), "asset_delivery",
                    ["dag_id", "run_id", "event_id"])
    op.create_index(op.f("ix_asset_delivery_event_id"), "asset_delivery", ["event_id"])


def downgrade() -> None:
    for table in ("asset_delivery", "asset_event", "asset_reference", "asset_alias_asset",
                  "asset_alias", "asset"):
        op.drop_table(table)
