"""The database engine and its transactions, and the column encodings the table modules share.

Every write runs in one transaction that holds the database's write lock from its first
statement (BEGIN IMMEDIATE on SQLite, a transaction-scoped advisory lock on PostgreSQL). Writers
therefore never interleave, a read-then-write can't act on a stale read, and change-log sequence
numbers become visible in the order they were handed out, so a reader that remembers the last
seq it applied never skips a change that commits later with a smaller number.

Work that takes long (serialising a big JSON value) is done before a write transaction opens:
every other writer waits while one holds the lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
_WRITE = "partnermatch_write"


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL whatever the URL says (postgres://, postgresql://)."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class JsonText(str):
    """A JSON column's value serialised already, so a big one is not dumped inside a transaction
    that holds the database's write lock (every other writer would wait for it)."""


def dumps(value: Any) -> str:
    """How JSON columns are written: readable (non-ASCII kept), as-is when already JsonText."""
    return value if isinstance(value, JsonText) else json.dumps(value, ensure_ascii=False)


def open_engine(url: str) -> Engine:
    """An engine for `url`; on SQLite with WAL, a busy timeout and foreign keys on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, json_serializer=dumps)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=dumps)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the sqlite3 module, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: upgrading a read lock later fails with
        # SQLITE_BUSY instead of waiting when another writer got there first.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction holding the database's write lock from its start; every table is
    written through this, so writes serialise and commit in change-log order."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('partnermatch:' || current_schema()))"))
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read transaction: one consistent snapshot for the statements run inside it."""
    with engine.connect() as conn:
        yield conn


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; concurrent openers wait on the write lock."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with write(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def upsert(dialect: str, table: Any) -> Any:
    """INSERT ... ON CONFLICT for the store's two backends."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def delimited(values: Iterable[Any]) -> str:
    """["primary", "junior_high"] -> "|primary|junior_high|", found by LIKE '%|primary|%' on any backend."""
    return "".join(f"|{v}" for v in values) + "|"


def undelimited(value: str) -> list[str]:
    return [v for v in value.split("|") if v]


def contains(column: Any, value: str) -> ColumnElement[bool]:
    """The delimited list in `column` holds `value`."""
    return column.contains(f"|{value}|", autoescape=True)
