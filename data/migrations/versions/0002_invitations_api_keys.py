"""Invitations between schools and hashed API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", _id(), nullable=False),
        sa.Column("from_school", _id(), nullable=False),
        sa.Column("to_school", _id(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("partnership_id", _id(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.ForeignKeyConstraint(["from_school"], ["schools.id"], name="fk_invitations_from_school_schools"),
        sa.ForeignKeyConstraint(["to_school"], ["schools.id"], name="fk_invitations_to_school_schools"),
        sa.ForeignKeyConstraint(
            ["partnership_id"], ["partnerships.id"], name="fk_invitations_partnership_id_partnerships"
        ),
        sa.CheckConstraint("from_school <> to_school", name="ck_invitations_distinct_schools"),
    )
    op.create_index("ix_invitations_from_school", "invitations", ["from_school"])
    op.create_index("ix_invitations_to_school", "invitations", ["to_school"])
    op.create_index("ix_invitations_status_expires_at", "invitations", ["status", "expires_at"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("school_id", _id(), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_invitations_status_expires_at", table_name="invitations")
    op.drop_index("ix_invitations_to_school", table_name="invitations")
    op.drop_index("ix_invitations_from_school", table_name="invitations")
    op.drop_table("invitations")
