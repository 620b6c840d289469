"""Exposure rows carry the number of the write that last touched them, so a replica reads back
only what changed since its last turn instead of every row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("exposure", sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_exposure_version", "exposure", ["version"])


def downgrade() -> None:
    op.drop_index("ix_exposure_version", table_name="exposure")
    with op.batch_alter_table("exposure") as batch:
        batch.drop_column("version")
