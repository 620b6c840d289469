"""Fixtures everyone's tests share: a Store on each backend, and valid schools to put in it.

PostgreSQL tests each get a fresh, uniquely named schema in the shared `test` database, because
other test runs use that database at the same time.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import Connection, create_engine

from data.schema import School
from data.store import Store

PG_HOST, PG_PORT, PG_DATABASE = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")
REAL_DATA_DIR_PARTS = ("shared", "data", "real")


def _pg_connect() -> tuple[str, psycopg.Connection]:
    """Connect as the first user the server accepts; skip the test if no server answers."""
    failures: list[str] = []
    for user in PG_USERS:
        try:
            conn = psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, autocommit=True, connect_timeout=5
            )
        except psycopg.OperationalError as exc:
            failures.append(f"{user}: {str(exc).strip()}")
            continue
        return user, conn
    pytest.skip(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}: " + "; ".join(failures))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database URL for an empty database: a SQLite file, or a fresh PostgreSQL schema that is
    dropped afterwards (search_path set through the URL, so any Store opened on it stays there)."""
    yield from database_url(request.param, tmp_path_factory)


def database_url(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database of this kind, dropped afterwards (also for module-wide fixtures)."""
    if kind == "sqlite":
        yield f"sqlite:///{(tmp_path_factory.mktemp('db') / 'partnermatch.db').as_posix()}"
        return
    user, admin = _pg_connect()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        options = quote(f"-csearch_path={schema}")
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}?options={options}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An empty, migrated Store, on SQLite and on PostgreSQL."""
    with Store(store_url) as opened:
        yield opened


@contextmanager
def connection(store: Store) -> Iterator[Connection]:
    """A plain connection to the store's database, for tests that look at the tables themselves."""
    engine = create_engine(store.url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


_school_numbers = itertools.count(1)


@pytest.fixture
def make_school() -> Callable[..., School]:
    """make_school(**fields) -> a valid School; a Taiwanese primary school unless told otherwise,
    with a fresh id each call."""

    def make(**overrides: Any) -> School:
        number = next(_school_numbers)
        fields: dict[str, Any] = {
            "id": f"tw-t{number:05d}",
            "name_local": f"測試國小{number}",
            "name_en": f"Test Primary School {number}",
            "country": "TW",
            "region": "TW-TPE",
            "levels": ["primary"],
            "languages_instruction": ["zh"],
            "languages_exchange": ["zh", "en"],
            "sdgs": [4, 13],
            "target_countries": ["MY"],
            "exchange_modes": ["virtual"],
            "description": "A school that likes science projects and online exchange.",
        }
        if overrides.get("country", "TW") != "TW":
            fields.update(region=None, target_countries=["TW"])
        fields.update(overrides)
        return School(**fields)

    return make


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder with the real school directories (shared/data/real beside the repo); tests
    that need it skip when it is absent, as on a fresh clone."""
    folder = Path(__file__).resolve().parents[1].parent.joinpath(*REAL_DATA_DIR_PARTS)
    if not folder.is_dir():
        pytest.skip(f"real school directories not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def embedding_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the whole session, so each profile is encoded once per run."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def small_world() -> Any:
    """A generated world of 300 schools (seed 11) with its partnerships; treat it as read-only."""
    from data.generator import generate_world

    return generate_world(300, seed=11)


@pytest.fixture
def embedder(embedding_cache_dir: Path) -> Any:
    """A fresh ProfileEmbedder on the session cache (the model itself loads once per process)."""
    from embeddings import EmbeddingSettings, ProfileEmbedder

    return ProfileEmbedder(EmbeddingSettings(show_progress=False), cache_dir=embedding_cache_dir)
