"""The api_keys table: never a key itself, only its hash (looked up) and prefix (shown).

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from data.errors import Conflict, NotFound
from data.schema import utcnow
from data.store.engine import as_utc
from data.tables import api_keys, schools


@dataclass(frozen=True)
class ApiKeyRecord:
    """What is kept of an API key: never the key itself, only its hash (looked up) and prefix (shown)."""

    id: str
    prefix: str
    role: str
    school_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def create(conn: Connection, record: ApiKeyRecord, key_hash: str) -> ApiKeyRecord:
    known = conn.execute(select(schools.c.id).where(schools.c.id == record.school_id)).first()
    if record.school_id is not None and known is None:
        raise NotFound("school", record.school_id)
    if conn.execute(select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)).first() is not None:
        raise Conflict("key_hash: this key is already stored")
    conn.execute(insert(api_keys).values(key_hash=key_hash, **_row(record)))
    return record


def find(conn: Connection, key_hash: str) -> ApiKeyRecord | None:
    """The key with this hash, revoked or not; None when no key has it."""
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
    return None if row is None else _from_row(row)


def list_(conn: Connection) -> list[ApiKeyRecord]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)).all()
    return [_from_row(row) for row in rows]


def revoke(conn: Connection, key_id: str) -> ApiKeyRecord:
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound("api key", key_id)
    current = _from_row(row)
    if not current.active:
        raise Conflict(f"id: key {key_id!r} was already revoked on {current.revoked_at:%Y-%m-%d}")
    revoked = ApiKeyRecord(**{**current.__dict__, "revoked_at": utcnow()})
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=revoked.revoked_at))
    return revoked


def _row(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "role": record.role,
        "school_id": record.school_id,
        "name": record.name,
        "created_at": as_utc(record.created_at),
        "revoked_at": as_utc(record.revoked_at) if record.revoked_at else None,
    }


def _from_row(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        prefix=row.prefix,
        role=row.role,
        school_id=row.school_id,
        name=row.name,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )
