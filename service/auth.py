"""API keys and roles.

A key is ``pm_`` + 43 characters of ``secrets.token_urlsafe(32)`` (256 bits): guessing one is
hopeless, so a plain sha256 of it is a safe thing to store and look up (no salt or slow hash
needed, unlike passwords). The key is shown once, when it is made; afterwards only its prefix
identifies it.

Keys are verified through a Guard: a key the store confirmed is trusted for
``key_cache_seconds`` (so a revoked key stops working within that many seconds), and failed
sign-ins are rate limited per client address and per key, as are the expensive routes.

Roles:

* ``staff``: everything.
* ``portal``: public profile fields of every school, suggestions for any school, invitations on
  any school's behalf.
* ``school``: its own profile (private fields included) and its own suggestions; invites from,
  and answers for, itself only.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from cachetools import TTLCache
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from data.store import ApiKeyRecord, Store

KEY_PREFIX = "pm_"
SHOWN_PREFIX_LENGTH = 10


class Role(StrEnum):
    STAFF = "staff"
    PORTAL = "portal"
    SCHOOL = "school"


class Forbidden(PermissionError):
    """The key is valid but its role may not do this."""


class TooManyRequests(Exception):
    """A rate limit is spent; `retry_after` seconds until the caller may try again."""

    def __init__(self, detail: str, field: str | None, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.retry_after = retry_after


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


class Guard:
    """Who a key names, from a short-lived cache in front of the store, with rate limits on
    failed sign-ins and on expensive work (the `limits` library's moving windows, in memory).

    Both are per process. A revoked key stays trusted at most ``key_cache_seconds`` on any
    worker, since each entry expires on its own. The counts are not shared: with N worker
    processes (or replicas) a client spreading its connections gets up to N x each limit. `limits`
    shares counts only through a Redis, Memcached or MongoDB server, which the service does not
    need; counting failures in the database would turn every wrong key into a queued write."""

    def __init__(self, failed_auth_limit: str, expensive_limit: str, key_cache_seconds: float) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.failed_auth = parse(failed_auth_limit)
        self.expensive = parse(expensive_limit)
        self._known: TTLCache[str, Principal] | None = (
            TTLCache(maxsize=100_000, ttl=key_cache_seconds) if key_cache_seconds > 0 else None
        )
        self._lock = threading.Lock()
        # When each address or key last failed to sign in (time.time(), the limiter's clock): one that never
        # failed within the window cannot have spent it, so a good request skips the limiter's
        # two moving-window reads (most of its key check) and reads this dict instead.
        self._failed_at: dict[tuple[str, str], float] = {}

    def authenticate(self, store: Store, key: str, address: str) -> Principal | None:
        """The caller a key names, or None (counted as a failed sign-in); TooManyRequests once
        the address or the key has failed too often in the window."""
        found = self.cached(key, address)
        if found is not None:
            return found
        key_hash = hash_key(key.strip())
        found = authenticate(store, key)
        if found is not None and self._known is not None:
            with self._lock:
                self._known[key_hash] = found
        if found is None:
            now = time.time()
            with self._lock:
                self._forget_old_failures(now)
                for kind, identity in (("address", address), ("key", key_hash)):
                    self._failed_at[kind, identity] = now
                    self.limiter.hit(self.failed_auth, "failed", kind, identity)
        return found

    def cached(self, key: str, address: str) -> Principal | None:
        """The caller a key names if the cache still trusts it, else None (ask :meth:`authenticate`,
        which reads the store); TooManyRequests as :meth:`authenticate`. Reads memory only, so an
        async route can call it on the event loop and leave the thread pool to the misses."""
        key_hash = hash_key(key.strip())
        if self._failed_at:
            window = self.failed_auth.get_expiry()
            now = time.time()
            for kind, identity in (("address", address), ("key", key_hash)):
                failed = self._failed_at.get((kind, identity))
                if failed is not None and now - failed <= window:
                    self._refuse_if_spent(self.failed_auth, "X-API-Key", "failed sign-ins from this", kind, identity)
        if self._known is None:
            return None
        with self._lock:
            return self._known.get(key_hash)

    def _forget_old_failures(self, now: float) -> None:
        """Drop failures older than the window once the dict grows (the caller holds the lock)."""
        if len(self._failed_at) > 10_000:
            window = self.failed_auth.get_expiry()
            self._failed_at = {k: at for k, at in self._failed_at.items() if now - at <= window}

    def spend(self, who: Principal, address: str, work: str) -> None:
        """Count one expensive request against the key and the address; TooManyRequests when spent."""
        for kind, identity in (("key", who.key_id), ("address", address)):
            if not self.limiter.hit(self.expensive, work, kind, identity):
                retry = self._retry_after(self.expensive, work, kind, identity)
                raise TooManyRequests(
                    f"too many {work} requests from this {kind} ({self.expensive}); retry in {retry} s", None, retry
                )

    def _refuse_if_spent(self, limit: RateLimitItem, field: str, what: str, kind: str, identity: str) -> None:
        if not self.limiter.test(limit, "failed", kind, identity):
            retry = self._retry_after(limit, "failed", kind, identity)
            raise TooManyRequests(f"{field}: too many {what} {kind} ({limit}); retry in {retry} s", field, retry)

    def _retry_after(self, limit: RateLimitItem, *identifiers: str) -> int:
        reset = self.limiter.get_window_stats(limit, *identifiers).reset_time
        return max(1, math.ceil(reset - time.time()))


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValueError(f"role: {value!r} is not one of {', '.join(r.value for r in Role)}") from None
