"""Alembic environment: migrates the connection the Store hands over, or, when run from the
alembic command line, the database the settings point to."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from data.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from data.settings import StorageSettings
    from data.store import normalize_url

    engine = create_engine(normalize_url(StorageSettings().url))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
