"""Drop two tables nothing ever used: ``lease`` and ``role``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``lease`` was meant for named, time-limited claims between schedulers; they coordinate
through row locks instead (ADR 4). ``role`` was meant to list roles; a user's role is a
name in ``user.role`` and its permissions a fixed table in ``web/auth``. Neither table was
ever read or written. The downgrade creates them again, empty, as 0001 did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def utc_datetime() -> sa.types.TypeEngine:
    """The column type of 0001's datetimes."""
    return (sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mysql")
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(sa.DateTime(timezone=True), "postgresql"))


def upgrade() -> None:
    op.drop_table("lease")
    op.drop_table("role")


def downgrade() -> None:
    op.create_table(
        "role",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role")),
        sa.UniqueConstraint("name", name=op.f("uq_role_name")),
    )
    op.create_table(
        "lease",
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("holder", sa.String(length=250), nullable=False),
        sa.Column("expires_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lease")),
    )
