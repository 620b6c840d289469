"""Partnerships staff recorded beyond a school's capacity say who did so.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partnerships") as batch:
        batch.add_column(sa.Column("capacity_override", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partnerships") as batch:
        batch.drop_column("capacity_override")
