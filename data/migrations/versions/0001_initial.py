"""Schools, partnerships, the change log and the meta table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "schools",
        sa.Column("id", _id(), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("remoteness", sa.String(20), nullable=False),
        sa.Column("name_local", sa.String(200), nullable=True),
        sa.Column("name_en", sa.String(200), nullable=True),
        sa.Column("levels", sa.Text(), nullable=False),
        sa.Column("sdgs", sa.Text(), nullable=False),
        sa.Column("exchange_modes", sa.Text(), nullable=False),
        sa.Column("target_countries", sa.Text(), nullable=False),
        sa.Column("languages_exchange", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("profile", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schools"),
    )
    op.create_index("ix_schools_country", "schools", ["country"])
    op.create_index("ix_schools_region", "schools", ["region"])
    op.create_index("ix_schools_active", "schools", ["active"])

    op.create_table(
        "partnerships",
        sa.Column("id", _id(), nullable=False),
        sa.Column("school_a", _id(), nullable=False),
        sa.Column("school_b", _id(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("modes", sa.Text(), nullable=False),
        sa.Column("sdgs", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_partnerships"),
        sa.ForeignKeyConstraint(["school_a"], ["schools.id"], name="fk_partnerships_school_a_schools"),
        sa.ForeignKeyConstraint(["school_b"], ["schools.id"], name="fk_partnerships_school_b_schools"),
        sa.UniqueConstraint("school_a", "school_b", "start_date", name="uq_partnerships_pair_start"),
        sa.CheckConstraint("school_a < school_b", name="ck_partnerships_canonical_pair"),
    )
    op.create_index("ix_partnerships_school_a", "partnerships", ["school_a"])
    op.create_index("ix_partnerships_school_b", "partnerships", ["school_b"])

    op.create_table(
        "change_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("entity_id", _id(), nullable=False),
        sa.Column("op", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_change_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_log_kind_seq", "change_log", ["kind", "seq"])

    op.create_table(
        "meta",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_index("ix_change_log_kind_seq", table_name="change_log")
    op.drop_table("change_log")
    op.drop_index("ix_partnerships_school_b", table_name="partnerships")
    op.drop_index("ix_partnerships_school_a", table_name="partnerships")
    op.drop_table("partnerships")
    op.drop_index("ix_schools_active", table_name="schools")
    op.drop_index("ix_schools_region", table_name="schools")
    op.drop_index("ix_schools_country", table_name="schools")
    op.drop_table("schools")
