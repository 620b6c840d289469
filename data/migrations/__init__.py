"""Alembic migrations for the partnermatch database, run by data.store.Store when it opens."""
