"""The database tables, as SQLAlchemy Core sees them today.

Alembic revisions in data/migrations/versions create and change these tables; this module is
what queries are written against. tests/test_store.py checks that the two agree, so a new table
(invitations, api keys, matching rounds) means: add it here, then add a revision that creates it.

List fields that filters need (levels, SDGs, modes...) are kept as delimited text such as
"|primary|junior_high|": a LIKE '%|primary|%' finds them the same way on SQLite and PostgreSQL,
where JSON operators would differ. The full profile is kept as JSON and is what a School is read
back from.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

# Constraint names fixed by convention, so later revisions can drop or alter them by name.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def id_type() -> TypeEngine[str]:
    """Ids compare byte by byte on both backends ("C" collation on PostgreSQL), so cursor
    pagination and ORDER BY id give the same order everywhere."""
    return String(64).with_variant(String(64, collation="C"), "postgresql")


def json_type() -> TypeEngine[object]:
    return JSON().with_variant(JSONB(), "postgresql")


schools = Table(
    "schools",
    metadata,
    Column("id", id_type(), primary_key=True),
    Column("country", String(2), nullable=False, index=True),
    Column("region", Text, nullable=True, index=True),
    Column("active", Boolean, nullable=False, index=True),
    Column("remoteness", String(20), nullable=False),
    Column("name_local", String(200), nullable=True),
    Column("name_en", String(200), nullable=True),
    # Folded names, pinyin and region names (data.search): what a name search matches.
    Column("search_key", Text, nullable=True),
    Column("levels", Text, nullable=False),
    Column("sdgs", Text, nullable=False),
    Column("exchange_modes", Text, nullable=False),
    Column("target_countries", Text, nullable=False),
    Column("languages_exchange", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("profile", json_type(), nullable=False),
)

partnerships = Table(
    "partnerships",
    metadata,
    Column("id", id_type(), primary_key=True),
    Column("school_a", id_type(), ForeignKey("schools.id"), nullable=False, index=True),
    Column("school_b", id_type(), ForeignKey("schools.id"), nullable=False, index=True),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=True),
    Column("modes", Text, nullable=False),
    Column("sdgs", Text, nullable=False),
    Column("origin", String(20), nullable=False),
    Column("note", Text, nullable=True),
    Column("capacity_override", String(64), nullable=True),
    UniqueConstraint("school_a", "school_b", "start_date", name="uq_partnerships_pair_start"),
    CheckConstraint("school_a < school_b", name="canonical_pair"),
)

# One row per write that matters to a derived structure (the vector index for schools, the
# partnership graph for partnerships). seq only grows; readers keep the last seq they applied.
change_log = Table(
    "change_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("entity_id", id_type(), nullable=False),
    Column("op", String(20), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_change_log_kind_seq", "kind", "seq"),
    sqlite_autoincrement=True,
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# Invitations between schools. Rows are never deleted except by Store.clear(); the status moves
# pending -> accepted | declined | expired, each step timestamped.
invitations = Table(
    "invitations",
    metadata,
    Column("id", id_type(), primary_key=True),
    Column("from_school", id_type(), ForeignKey("schools.id"), nullable=False, index=True),
    Column("to_school", id_type(), ForeignKey("schools.id"), nullable=False, index=True),
    Column("message", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("decline_reason", Text, nullable=True),
    Column("partnership_id", id_type(), ForeignKey("partnerships.id"), nullable=True),
    Index("ix_invitations_status_expires_at", "status", "expires_at"),
    CheckConstraint("from_school <> to_school", name="distinct_schools"),
)

# API keys: only the sha256 of the key is kept; the prefix lets people tell their keys apart.
# school_id is not a foreign key: a key outlives Store.clear() and then simply finds no school.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("school_id", id_type(), nullable=True),
    Column("name", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Matching rounds: a proposal staff review, then accept (its partnerships are written in the same
# transaction that marks it accepted). options, summary and result are JSON the service reads back
# as matching.rounds models; summary holds the few figures a list shows, so listing rounds never
# loads every round's full result.
rounds = Table(
    "rounds",
    metadata,
    Column("id", id_type(), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(32), nullable=True),
    Column("status", String(20), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=True),
    Column("accepted_by", String(32), nullable=True),
    Column("options", json_type(), nullable=False),
    Column("summary", json_type(), nullable=False),
    Column("result", json_type(), nullable=False),
    Column("partnership_ids", json_type(), nullable=True),
    CheckConstraint("status IN ('proposed', 'accepted')", name="status"),
)

# A matching round run as a background job: POST /v1/rounds answers with the job's id at once, and
# the round, when stored, gets the same id. Any worker process can report it, since it is here.
ROUND_JOB_STATUSES = ("queued", "running", "done", "failed")
round_jobs = Table(
    "round_jobs",
    metadata,
    Column("id", id_type(), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(32), nullable=True),
    Column("status", String(20), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("progress", Double, nullable=False),
    Column("error", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
)

# How often each school was shown in suggestion lists, shared by every replica: weight is the
# sum of appearances each scaled by 2 ** ((shown_at - origin) / half_life), origin kept in meta,
# so adding is one atomic increment and decay needs no sweep (graph/exposure.py). version is the
# number of the last write that touched the row (writes serialise, so numbers commit in order): a
# replica reads back only the rows written since the newest version it has seen.
exposure = Table(
    "exposure",
    metadata,
    Column("school_id", id_type(), primary_key=True),
    Column("side", String(20), nullable=False),
    Column("weight", Double, nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0", index=True),
)
