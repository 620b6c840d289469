"""Schools get a search key: folded names, pinyin and region names (data.search), filled in for
the schools already stored.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data.schema import School
from data.search import school_key

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("schools", sa.Column("search_key", sa.Text(), nullable=True))
    table = sa.table("schools", sa.column("id"), sa.column("profile", sa.JSON()), sa.column("search_key"))
    conn = op.get_bind()
    keys = [
        {"key": row.id, "search_key": school_key(School.model_validate(row.profile))}
        for row in conn.execute(sa.select(table.c.id, table.c.profile))
    ]
    if keys:
        conn.execute(
            table.update().where(table.c.id == sa.bindparam("key")).values(search_key=sa.bindparam("search_key")),
            keys,
        )


def downgrade() -> None:
    op.drop_column("schools", "search_key")
