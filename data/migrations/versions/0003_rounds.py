"""Matching rounds: the proposal staff review and, once accepted, the partnerships it started.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("id", _id(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.String(32), nullable=True),
        sa.Column("options", _json(), nullable=False),
        sa.Column("summary", _json(), nullable=False),
        sa.Column("result", _json(), nullable=False),
        sa.Column("partnership_ids", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rounds"),
        sa.CheckConstraint("status IN ('proposed', 'accepted')", name="ck_rounds_status"),
    )


def downgrade() -> None:
    op.drop_table("rounds")
