"""API keys and roles.

A key is ``pm_`` + 43 characters of ``secrets.token_urlsafe(32)`` (256 bits): guessing one is
hopeless, so a plain sha256 of it is a safe thing to store and look up (no salt or slow hash
needed, unlike passwords). The key is shown once, when it is made; afterwards only its prefix
identifies it.

Roles:

* ``staff``: everything.
* ``portal``: public profile fields of every school, suggestions for any school, invitations on
  any school's behalf.
* ``school``: its own profile (private fields included) and its own suggestions; invites from,
  and answers for, itself only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from data.store import ApiKeyRecord, Store

KEY_PREFIX = "pm_"
SHOWN_PREFIX_LENGTH = 10


class Role(StrEnum):
    STAFF = "staff"
    PORTAL = "portal"
    SCHOOL = "school"


class Forbidden(PermissionError):
    """The key is valid but its role may not do this."""


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is shown once and never stored."""

    record: ApiKeyRecord
    key: str


@dataclass(frozen=True)
class Principal:
    """Who is calling, as their key says."""

    key_id: str
    role: Role
    school_id: str | None = None

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise Forbidden(f"role: a {self.role.value} key may not do this (needs {allowed})")

    def require_school(self, school_id: str, field: str = "school_id") -> None:
        """Staff and portal act for any school; a school key only for its own."""
        if self.role == Role.SCHOOL and school_id != self.school_id:
            raise Forbidden(f"{field}: this key belongs to school {self.school_id!r}, not {school_id!r}")

    def sees_private_fields_of(self, school_id: str) -> bool:
        return self.role == Role.STAFF or (self.role == Role.SCHOOL and school_id == self.school_id)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Store, role: Role | str, *, school_id: str | None = None, name: str | None = None) -> NewKey:
    role = _role(role)
    if role == Role.SCHOOL and not school_id:
        raise ValueError("school: a school key needs the school it belongs to")
    if role != Role.SCHOOL and school_id:
        raise ValueError(f"school: only school keys belong to a school, not {role.value} keys")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = store.create_api_key(
        key_id=f"key-{secrets.token_hex(4)}",
        prefix=key[:SHOWN_PREFIX_LENGTH],
        key_hash=hash_key(key),
        role=role.value,
        school_id=school_id,
        name=name,
    )
    return NewKey(record, key)


def authenticate(store: Store, key: str) -> Principal | None:
    """The caller a key names, or None for an unknown or revoked key."""
    record = store.find_api_key(hash_key(key.strip()))
    if record is None or not record.active:
        return None
    return Principal(key_id=record.id, role=Role(record.role), school_id=record.school_id)


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValueError(f"role: {value!r} is not one of {', '.join(r.value for r in Role)}") from None
