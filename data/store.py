"""Where schools and partnerships live: SQLite by default, PostgreSQL for several API replicas.

Every write runs in one transaction that holds the database's write lock from its first
statement (BEGIN IMMEDIATE on SQLite, a transaction-scoped advisory lock on PostgreSQL). Writers
therefore never interleave, a read-then-write can't act on a stale read, and change-log sequence
numbers become visible in the order they were handed out, so a reader that remembers the last
seq it applied never skips a change that commits later with a smaller number.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from data.errors import Conflict, ImportRejected, NotFound, RowError
from data.schema import (
    Invitation,
    InvitationStatus,
    Partnership,
    PartnershipOrigin,
    RoundStatus,
    School,
    StoredRound,
    utcnow,
)
from data.search import query_key, school_key
from data.settings import StorageSettings
from data.tables import (
    api_keys,
    change_log,
    exposure,
    invitations,
    meta,
    partnerships,
    round_jobs,
    rounds,
    schools,
)
from data.taxonomies import (
    LEVEL_GRADES,
    ExchangeMode,
    Level,
    Remoteness,
    derive_timezone,
    normalize_country,
    normalize_language,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# What changes_since reports for schools; "delete" only comes from clear().
SCHOOL_OPS = ("create", "update", "deactivate", "delete")
# What partnership_changes_since reports.
PARTNERSHIP_OPS = ("add", "update", "end", "delete")
# What invitation changes log (kind "invitation" in all_changes_since).
INVITATION_OPS = ("create", "accept", "decline", "expire", "delete")

_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
_WRITE = "partnermatch_write"


@dataclass(frozen=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


@dataclass(frozen=True)
class InvitationTally:
    """One school's invitations at a moment. Open ones (sent or received) hold a place in its
    capacity; received/answered/expired are its answer record (graph.InvitationCounts)."""

    open_sent: int = 0
    open_received: int = 0
    received: int = 0
    answered: int = 0
    expired: int = 0

    @property
    def open(self) -> int:
        return self.open_sent + self.open_received


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


@dataclass(frozen=True)
class RoundJob:
    """A matching round run in the background: queued -> running -> done | failed. Once done, the
    stored round has the job's id."""

    id: str
    created_at: datetime
    created_by: str | None
    status: str
    stage: str
    progress: float
    error: str | None
    updated_at: datetime


EXPOSURE_ORIGIN_KEY = "exposure_origin"
# Half-lives after which the stored exposure weights are rescaled, long before floats overflow.
_EXPOSURE_REBASE_AFTER = 64.0


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL whatever the URL says (postgres://, postgresql://)."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _delimited(values: Iterable[Any]) -> str:
    """["primary", "junior_high"] -> "|primary|junior_high|", found by LIKE '%|primary|%' on any backend."""
    return "".join(f"|{v}" for v in values) + "|"


def _undelimited(value: str) -> list[str]:
    return [v for v in value.split("|") if v]


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _school_row(school: School) -> dict[str, Any]:
    return {
        "id": school.id,
        "country": school.country,
        "region": school.region,
        "active": school.active,
        "remoteness": school.remoteness.value,
        "name_local": school.name_local,
        "name_en": school.name_en,
        "search_key": school_key(school),
        "levels": _delimited(school.levels),
        "sdgs": _delimited(school.sdgs),
        "exchange_modes": _delimited(school.exchange_modes),
        "target_countries": _delimited(school.target_countries),
        "languages_exchange": _delimited(school.languages_exchange),
        "content_hash": school.content_hash(),
        "created_at": _as_utc(school.created_at),
        "updated_at": _as_utc(school.updated_at),
        "profile": school.model_dump(mode="json"),
    }


def _partnership_row(p: Partnership) -> dict[str, Any]:
    return {
        "id": p.id,
        "school_a": p.school_a,
        "school_b": p.school_b,
        "start_date": p.start_date,
        "end_date": p.end_date,
        "modes": _delimited(p.modes),
        "sdgs": _delimited(p.sdgs),
        "origin": p.origin.value,
        "note": p.note,
        "capacity_override": p.capacity_override,
    }


def _partnership_from_row(row: Any) -> Partnership:
    return Partnership(
        id=row.id,
        school_a=row.school_a,
        school_b=row.school_b,
        start_date=row.start_date,
        end_date=row.end_date,
        modes=_undelimited(row.modes),
        sdgs=[int(g) for g in _undelimited(row.sdgs)],
        origin=row.origin,
        note=row.note,
        capacity_override=row.capacity_override,
    )


def _rederive(current: School, changes: dict[str, Any], merged: dict[str, Any]) -> None:
    """Grades and time zone that were derived (not given) follow the fields they came from."""
    if "levels" in changes and "grades" not in changes:
        derived = sorted({g for level in current.levels for g in LEVEL_GRADES[level]})
        if current.grades == derived:
            merged["grades"] = []
    place = {"country", "region", "latitude", "longitude"}
    if place & changes.keys() and "timezone" not in changes:
        derived_zone = derive_timezone(current.country, current.region, current.latitude, current.longitude)
        if current.timezone == derived_zone:
            merged["timezone"] = None


def _values(given: str | int | Collection[Any] | None, check: Callable[[Any], str]) -> list[str] | None:
    """A filter argument as a checked list ("any of these"), or None when the filter is off."""
    if given is None:
        return None
    return [check(v) for v in ([given] if isinstance(given, str | int) else given)]


class SchoolFilters(TypedDict, total=False):
    """Filters of :meth:`Store.list_schools` and :meth:`Store.count_schools`, all optional.

    A collection means "any of these"; level, sdg, mode, target_country and language match
    schools whose list contains the value; q searches both names; active defaults to True
    (None: active and inactive)."""

    country: str | Collection[str] | None
    region: str | Collection[str] | None
    level: str | Collection[str] | None
    sdg: int | Collection[int] | None
    mode: str | Collection[str] | None
    remoteness: str | Collection[str] | None
    target_country: str | Collection[str] | None
    language: str | Collection[str] | None
    active: bool | None
    q: str | None


class Store:
    """All reads and writes of schools, partnerships, the change log and meta values."""

    def __init__(self, url: str | None = None) -> None:
        self.url = normalize_url(url or StorageSettings().url)
        self._engine = _create_engine(self.url)
        self.dialect = self._engine.dialect.name
        try:
            self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: StorageSettings | None = None) -> Store:
        return cls((settings or StorageSettings()).url)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction holding the database's write lock from its start. Later tables
        (invitations, api keys, rounds) should be written through this too, so their writes
        serialise with everything else and commit in change-log order."""
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('partnermatch:' || current_schema()))"))
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot for the statements run inside it."""
        with self._engine.connect() as conn:
            yield conn

    def _migrate(self) -> None:
        """Bring the schema to the newest revision; concurrent openers wait on the write lock."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def _log(self, conn: Connection, kind: str, entries: Iterable[tuple[str, str]]) -> None:
        at = utcnow()
        rows = [{"kind": kind, "entity_id": entity_id, "op": op, "at": at} for entity_id, op in entries]
        if rows:
            conn.execute(insert(change_log), rows)

    # ----------------------------------------------------------------- schools: reads

    def get_school(self, school_id: str) -> School:
        with self.read() as conn:
            profile = conn.execute(select(schools.c.profile).where(schools.c.id == school_id)).scalar_one_or_none()
        if profile is None:
            raise NotFound("school", school_id)
        return School.model_validate(profile)

    def get_schools(self, ids: Iterable[str]) -> dict[str, School]:
        """The schools among ids that exist; unknown ids are simply absent from the result."""
        with self.read() as conn:
            return self._get_schools(conn, ids)

    @staticmethod
    def _get_schools(conn: Connection, ids: Iterable[str]) -> dict[str, School]:
        found: dict[str, School] = {}
        for chunk in _chunks(sorted(set(ids))):
            for profile in conn.execute(select(schools.c.profile).where(schools.c.id.in_(chunk))).scalars():
                school = School.model_validate(profile)
                found[school.id] = school
        return found

    def list_schools(
        self, *, after: str | None = None, limit: int = 100, **filters: Unpack[SchoolFilters]
    ) -> list[School]:
        """Schools matching every given filter (see :class:`SchoolFilters`), ordered by id.
        Page on with after=<last id of the previous page>."""
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        where = _school_filters(filters)
        if after is not None:
            where.append(schools.c.id > after)
        query = select(schools.c.profile).where(*where).order_by(schools.c.id).limit(limit)
        with self.read() as conn:
            return [School.model_validate(p) for p in conn.execute(query).scalars()]

    def count_schools(self, **filters: Unpack[SchoolFilters]) -> int:
        """How many schools match every given filter (see :class:`SchoolFilters`)."""
        where = _school_filters(filters)
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(schools).where(*where)).scalar_one()

    def iter_schools(self, active: bool | None = None, batch: int = 1000) -> Iterator[School]:
        """Every school (or every active/inactive one), by id, a batch per short read so a long
        walk over 100k schools never holds a transaction open."""
        after: str | None = None
        while True:
            page = self.list_schools(active=active, after=after, limit=batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].id

    # ----------------------------------------------------------------- schools: writes

    def create_school(self, school: School) -> School:
        with self.write() as conn:
            exists = conn.execute(select(schools.c.id).where(schools.c.id == school.id)).first()
            if exists is not None:
                raise Conflict(f"id: school {school.id!r} already exists")
            conn.execute(insert(schools), [_school_row(school)])
            self._log(conn, "school", [(school.id, "create")])
        return school

    def update_school(self, school_id: str, changes: dict[str, Any]) -> School:
        """Apply changes and re-validate the whole profile. Nothing is written (and updated_at
        stays) when the profile says the same as before."""
        if "id" in changes and changes["id"] != school_id:
            raise ValueError(f"id: a school's id cannot change ({school_id!r} -> {changes['id']!r})")
        for field in ("created_at", "updated_at"):
            if field in changes:
                raise ValueError(f"{field}: set by the store, not by an update")
        with self.write() as conn:
            profile = conn.execute(select(schools.c.profile).where(schools.c.id == school_id)).scalar_one_or_none()
            if profile is None:
                raise NotFound("school", school_id)
            current = School.model_validate(profile)
            merged = current.model_dump() | changes
            _rederive(current, changes, merged)
            changed = School.model_validate(merged)
            if changed.content_hash() == current.content_hash():
                return current
            changed = changed.model_copy(update={"created_at": current.created_at, "updated_at": utcnow()})
            row = _school_row(changed)
            conn.execute(update(schools).where(schools.c.id == school_id).values(row))
            op = "deactivate" if current.active and not changed.active else "update"
            self._log(conn, "school", [(school_id, op)])
        return changed

    def deactivate_school(self, school_id: str) -> School:
        """Inactive schools keep their record and history but are no longer suggested."""
        return self.update_school(school_id, {"active": False})

    def upsert_schools(
        self, new_schools: Iterable[School], progress: Callable[[int], None] | None = None
    ) -> UpsertCounts:
        """Create or update many schools in one transaction: all are written or none is.
        A school whose content is unchanged is not rewritten and keeps its timestamps.
        progress, if given, is called with the number of schools handled after each chunk."""
        batch = list(new_schools)
        seen: set[str] = set()
        for school in batch:
            if school.id in seen:
                raise ValueError(f"id: {school.id!r} appears more than once in one upsert")
            seen.add(school.id)
        created = updated = unchanged = 0
        now = utcnow()
        with self.write() as conn:
            for chunk in _chunks(batch):
                existing = {
                    row.id: row
                    for row in conn.execute(
                        select(schools.c.id, schools.c.content_hash, schools.c.active, schools.c.created_at).where(
                            schools.c.id.in_([s.id for s in chunk])
                        )
                    )
                }
                inserts: list[dict[str, Any]] = []
                updates: list[dict[str, Any]] = []
                log: list[tuple[str, str]] = []
                for school in chunk:
                    old = existing.get(school.id)
                    if old is None:
                        inserts.append(_school_row(school))
                        log.append((school.id, "create"))
                        continue
                    if old.content_hash == school.content_hash():
                        unchanged += 1
                        continue
                    stamped = school.model_copy(update={"created_at": _as_utc(old.created_at), "updated_at": now})
                    updates.append({"key": school.id} | _school_row(stamped))
                    log.append((school.id, "deactivate" if old.active and not school.active else "update"))
                if inserts:
                    conn.execute(insert(schools), inserts)
                if updates:
                    values = {c.name: bindparam(c.name) for c in schools.columns}
                    conn.execute(update(schools).where(schools.c.id == bindparam("key")).values(values), updates)
                self._log(conn, "school", log)
                created += len(inserts)
                updated += len(updates)
                if progress is not None:
                    progress(len(chunk))
        return UpsertCounts(created=created, updated=updated, unchanged=unchanged)

    def clear(self) -> None:
        """Delete every school, partnership and invitation (meta values and API keys stay). The
        change log records a "delete" for each, so whatever was built from them knows to drop them."""
        with self.write() as conn:
            invitation_ids = conn.execute(select(invitations.c.id)).scalars().all()
            partnership_ids = conn.execute(select(partnerships.c.id)).scalars().all()
            school_ids = conn.execute(select(schools.c.id)).scalars().all()
            conn.execute(delete(invitations))
            conn.execute(delete(partnerships))
            conn.execute(delete(schools))
            conn.execute(delete(exposure))
            self._log(conn, "invitation", [(iid, "delete") for iid in invitation_ids])
            self._log(conn, "partnership", [(pid, "delete") for pid in partnership_ids])
            self._log(conn, "school", [(sid, "delete") for sid in school_ids])

    # ----------------------------------------------------------------- change tracking

    def latest_change_seq(self) -> int:
        """The newest change's seq (schools and partnerships share one sequence); 0 if none."""
        with self.read() as conn:
            return conn.execute(select(func.max(change_log.c.seq))).scalar_one() or 0

    def changes_since(self, seq: int) -> list[tuple[int, str, str]]:
        """School changes after seq as (seq, school_id, op), op in SCHOOL_OPS, oldest first."""
        return self._changes_since("school", seq)

    def partnership_changes_since(self, seq: int) -> list[tuple[int, str, str]]:
        """Partnership changes after seq as (seq, partnership_id, op), op in PARTNERSHIP_OPS."""
        return self._changes_since("partnership", seq)

    def all_changes_since(self, seq: int) -> list[tuple[int, str, str, str]]:
        """Changes of every kind after seq as (seq, kind, entity_id, op), oldest first, read in one
        snapshot: a follower that applies them and keeps the last seq misses nothing across kinds.
        kind is "school", "partnership" or "invitation"; op is in SCHOOL_OPS, PARTNERSHIP_OPS or
        INVITATION_OPS."""
        query = (
            select(change_log.c.seq, change_log.c.kind, change_log.c.entity_id, change_log.c.op)
            .where(change_log.c.seq > seq)
            .order_by(change_log.c.seq)
        )
        with self.read() as conn:
            return [(row.seq, row.kind, row.entity_id, row.op) for row in conn.execute(query)]

    def _changes_since(self, kind: str, seq: int) -> list[tuple[int, str, str]]:
        query = (
            select(change_log.c.seq, change_log.c.entity_id, change_log.c.op)
            .where(change_log.c.kind == kind, change_log.c.seq > seq)
            .order_by(change_log.c.seq)
        )
        with self.read() as conn:
            return [(row.seq, row.entity_id, row.op) for row in conn.execute(query)]

    # ----------------------------------------------------------------- partnerships

    def add_partnerships(self, new: Iterable[Partnership]) -> list[Partnership]:
        """Add partnerships in one transaction, or none if any is bad (ImportRejected lists every
        bad one by its 1-based position). The same pair and start date again updates the stored
        one. Returned with ids and the pair in canonical order (school_a < school_b)."""
        stored, _ = self._write_partnerships(list(new))
        return stored

    def upsert_partnerships(self, new: Iterable[Partnership]) -> UpsertCounts:
        """add_partnerships, reporting what was created, updated or already so."""
        _, counts = self._write_partnerships(list(new))
        return counts

    def _write_partnerships(self, batch: list[Partnership]) -> tuple[list[Partnership], UpsertCounts]:
        with self.write() as conn:
            return self._write_partnerships_in(conn, batch)

    def _write_partnerships_in(
        self, conn: Connection, batch: list[Partnership]
    ) -> tuple[list[Partnership], UpsertCounts]:
        """The partnership writes of add/upsert, inside a write transaction the caller holds (so an
        accepted invitation and the partnership it starts commit together)."""
        canonical = [p.model_copy(update=dict(zip(("school_a", "school_b"), p.pair, strict=True))) for p in batch]
        known = self._get_schools(conn, (i for p in canonical for i in p.pair))
        by_key = self._partnerships_by_key(conn, {p.pair for p in canonical})
        given_ids = {p.id for p in canonical if p.id}
        owner_of_id = {
            row.id: (row.school_a, row.school_b, row.start_date)
            for chunk in _chunks(sorted(given_ids))
            for row in conn.execute(select(partnerships).where(partnerships.c.id.in_(chunk)))
        }
        errors: list[RowError] = []
        for position, (p, as_given) in enumerate(zip(canonical, batch, strict=True), start=1):
            try:
                as_given.check_schools(known)
            except ValueError as exc:
                field, _, reason = str(exc).partition(": ")
                errors.append(RowError(position, field, reason))
            key = (p.school_a, p.school_b, p.start_date)
            if p.id is None:
                continue
            current = by_key.get(key)
            if current is not None and current.id != p.id:
                errors.append(RowError(position, "id", f"this pair and start date is already {current.id!r}"))
            elif current is None and owner_of_id.get(p.id, key) != key:
                errors.append(RowError(position, "id", f"{p.id!r} is another partnership's id"))
            owner_of_id[p.id] = key
        if errors:
            raise ImportRejected("partnerships", errors)

        stored: list[Partnership] = []
        created = updated = unchanged = 0
        for p in canonical:
            key = (p.school_a, p.school_b, p.start_date)
            current = by_key.get(key)
            if current is None:
                fresh = p if p.id else p.model_copy(update={"id": f"p-{uuid.uuid4().hex[:12]}"})
                conn.execute(insert(partnerships), [_partnership_row(fresh)])
                self._log(conn, "partnership", [(fresh.id, "add")])
                created += 1
            elif p.model_copy(update={"id": current.id}) == current:
                fresh = current
                unchanged += 1
            else:
                fresh = p.model_copy(update={"id": current.id})
                row = _partnership_row(fresh)
                conn.execute(update(partnerships).where(partnerships.c.id == current.id).values(row))
                op = "end" if current.end_date is None and fresh.end_date is not None else "update"
                self._log(conn, "partnership", [(current.id, op)])
                updated += 1
            by_key[key] = fresh
            stored.append(fresh)
        return stored, UpsertCounts(created=created, updated=updated, unchanged=unchanged)

    @staticmethod
    def _partnerships_by_key(conn: Connection, pairs: set[tuple[str, str]]) -> dict[tuple[str, str, date], Partnership]:
        found: dict[tuple[str, str, date], Partnership] = {}
        for chunk in _chunks(sorted(pairs)):
            query = select(partnerships).where(tuple_(partnerships.c.school_a, partnerships.c.school_b).in_(chunk))
            for row in conn.execute(query):
                p = _partnership_from_row(row)
                found[(p.school_a, p.school_b, p.start_date)] = p
        return found

    def end_partnership(self, partnership_id: str, end_date: date) -> Partnership:
        with self.write() as conn:
            row = conn.execute(select(partnerships).where(partnerships.c.id == partnership_id)).first()
            if row is None:
                raise NotFound("partnership", partnership_id)
            current = _partnership_from_row(row)
            if current.end_date is not None:
                raise Conflict(f"end_date: partnership {partnership_id!r} already ended on {current.end_date}")
            ended = Partnership.model_validate(current.model_dump() | {"end_date": end_date})
            conn.execute(update(partnerships).where(partnerships.c.id == partnership_id).values(end_date=end_date))
            self._log(conn, "partnership", [(partnership_id, "end")])
        return ended

    def get_partnership(self, partnership_id: str) -> Partnership:
        with self.read() as conn:
            row = conn.execute(select(partnerships).where(partnerships.c.id == partnership_id)).first()
        if row is None:
            raise NotFound("partnership", partnership_id)
        return _partnership_from_row(row)

    def list_partnerships(self, *, school_id: str | None = None, active: bool | None = None) -> list[Partnership]:
        """Partnerships (of one school, if given), oldest start first."""
        query = (
            select(partnerships)
            .where(*_partnership_filters(school_id, active))
            .order_by(partnerships.c.start_date, partnerships.c.id)
        )
        with self.read() as conn:
            return [_partnership_from_row(row) for row in conn.execute(query)]

    def count_partnerships(self, *, school_id: str | None = None, active: bool | None = None) -> int:
        query = select(func.count()).select_from(partnerships).where(*_partnership_filters(school_id, active))
        with self.read() as conn:
            return conn.execute(query).scalar_one()

    # ----------------------------------------------------------------- invitations

    def create_invitation(
        self,
        from_school: str,
        to_school: str,
        message: str | None,
        *,
        expires_at: datetime,
        now: datetime | None = None,
    ) -> Invitation:
        """Store a new pending invitation. Refused while another is open between the same two
        schools, in either direction: one conversation per pair at a time."""
        now = _as_utc(now or utcnow())
        invitation = Invitation(
            id=f"inv-{int(now.timestamp() * 1000):012x}-{secrets.token_hex(3)}",
            from_school=from_school,
            to_school=to_school,
            message=message or None,
            created_at=now,
            expires_at=_as_utc(expires_at),
        )
        with self.write() as conn:
            found = set(conn.execute(select(schools.c.id).where(schools.c.id.in_([from_school, to_school]))).scalars())
            for school_id in (from_school, to_school):
                if school_id not in found:
                    raise NotFound("school", school_id)
            pair = or_(
                (invitations.c.from_school == from_school) & (invitations.c.to_school == to_school),
                (invitations.c.from_school == to_school) & (invitations.c.to_school == from_school),
            )
            open_one = conn.execute(select(invitations.c.id).where(pair, *_open_invitation(now))).scalar()
            if open_one is not None:
                raise Conflict(
                    f"to_school: invitation {open_one!r} between {from_school} and {to_school} is still pending"
                )
            conn.execute(insert(invitations), [_invitation_row(invitation)])
            self._log(conn, "invitation", [(invitation.id, "create")])
        return invitation

    def get_invitation(self, invitation_id: str) -> Invitation:
        with self.read() as conn:
            return self._invitation(conn, invitation_id)

    @staticmethod
    def _invitation(conn: Connection, invitation_id: str) -> Invitation:
        row = conn.execute(select(invitations).where(invitations.c.id == invitation_id)).first()
        if row is None:
            raise NotFound("invitation", invitation_id)
        return _invitation_from_row(row)

    def list_invitations(
        self,
        *,
        school_id: str | None = None,
        direction: str | None = None,
        status: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Invitation]:
        """Invitations oldest first (ids sort by creation), of one school if given: sent, received
        or both (direction None). Page on with after=<last id of the previous page>."""
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        if direction not in (None, "sent", "received"):
            raise ValueError(f"direction: {direction!r} is not one of sent, received")
        where: list[ColumnElement[bool]] = []
        if school_id is not None:
            sides = {"sent": [invitations.c.from_school], "received": [invitations.c.to_school]}.get(
                direction or "", [invitations.c.from_school, invitations.c.to_school]
            )
            where.append(or_(*(side == school_id for side in sides)))
        if status is not None:
            where.append(invitations.c.status == _checked("status", InvitationStatus, status))
        if after is not None:
            where.append(invitations.c.id > after)
        query = select(invitations).where(*where).order_by(invitations.c.id).limit(limit)
        with self.read() as conn:
            return [_invitation_from_row(row) for row in conn.execute(query)]

    def accept_invitation(
        self,
        invitation_id: str,
        *,
        modes: Collection[str] = (),
        sdgs: Collection[int] = (),
        now: datetime | None = None,
    ) -> tuple[Invitation, Partnership]:
        """Accept an open invitation and start the partnership it asked for, in one transaction:
        both are written or neither is. An overdue one is marked expired instead (Conflict)."""
        now = _as_utc(now or utcnow())
        with self.write() as conn:
            current = self._open_for_answer(conn, invitation_id, now)
            if current is not None:
                partnership = Partnership(
                    school_a=current.from_school,
                    school_b=current.to_school,
                    start_date=now.date(),
                    modes=list(modes),
                    sdgs=list(sdgs),
                    origin=PartnershipOrigin.SUGGESTED,
                    note=f"started by accepting invitation {invitation_id}",
                )
                (stored,), _ = self._write_partnerships_in(conn, [partnership])
                accepted = Invitation.model_validate(
                    current.model_dump()
                    | {"status": InvitationStatus.ACCEPTED, "answered_at": now, "partnership_id": stored.id}
                )
                self._save_answer(conn, accepted, "accept")
                return accepted, stored
        raise self._expired_conflict(invitation_id)

    def decline_invitation(
        self, invitation_id: str, reason: str | None = None, *, now: datetime | None = None
    ) -> Invitation:
        now = _as_utc(now or utcnow())
        with self.write() as conn:
            current = self._open_for_answer(conn, invitation_id, now)
            if current is not None:
                declined = Invitation.model_validate(
                    current.model_dump()
                    | {"status": InvitationStatus.DECLINED, "answered_at": now, "decline_reason": reason or None}
                )
                self._save_answer(conn, declined, "decline")
                return declined
        raise self._expired_conflict(invitation_id)

    def _open_for_answer(self, conn: Connection, invitation_id: str, now: datetime) -> Invitation | None:
        """The invitation if it can still be answered; None after marking an overdue one expired
        (the caller lets that commit, then reports it). Already answered: Conflict."""
        current = self._invitation(conn, invitation_id)
        if current.status != InvitationStatus.PENDING:
            raise Conflict(f"status: invitation {invitation_id!r} is already {current.status.value}")
        if current.is_open(now):
            return current
        self._expire(conn, [invitation_id])
        return None

    def _expired_conflict(self, invitation_id: str) -> Conflict:
        expired = self.get_invitation(invitation_id)
        return Conflict(
            f"expires_at: invitation {invitation_id!r} expired at {expired.expires_at:%Y-%m-%d %H:%M} UTC unanswered"
        )

    def _save_answer(self, conn: Connection, answered: Invitation, op: str) -> None:
        values = {k: v for k, v in _invitation_row(answered).items() if k != "id"}
        conn.execute(update(invitations).where(invitations.c.id == answered.id).values(values))
        self._log(conn, "invitation", [(answered.id, op)])

    def _expire(self, conn: Connection, ids: Sequence[str]) -> None:
        for chunk in _chunks(ids):
            conn.execute(
                update(invitations).where(invitations.c.id.in_(chunk)).values(status=InvitationStatus.EXPIRED.value)
            )
        self._log(conn, "invitation", [(iid, "expire") for iid in ids])

    def expire_invitations(self, now: datetime | None = None) -> int:
        """Mark every pending invitation past its deadline as expired; returns how many. Takes the
        write lock only when there is something to expire, so calling it on each read is cheap."""
        now = _as_utc(now or utcnow())
        overdue = select(invitations.c.id).where(
            invitations.c.status == InvitationStatus.PENDING.value, invitations.c.expires_at <= now
        )
        with self.read() as conn:
            if conn.execute(overdue.limit(1)).first() is None:
                return 0
        with self.write() as conn:
            ids = list(conn.execute(overdue.order_by(invitations.c.id)).scalars())
            if ids:
                self._expire(conn, ids)
        return len(ids)

    def invitation_tallies(self, now: datetime | None = None) -> dict[str, InvitationTally]:
        """Every school's invitation figures at `now`; an overdue pending invitation counts as
        expired whether or not the sweep has marked it yet."""
        now = _as_utc(now or utcnow())
        is_open = (invitations.c.status == InvitationStatus.PENDING.value) & (invitations.c.expires_at > now)
        lapsed = (invitations.c.status == InvitationStatus.EXPIRED.value) | (
            (invitations.c.status == InvitationStatus.PENDING.value) & (invitations.c.expires_at <= now)
        )
        answered = invitations.c.status.in_([InvitationStatus.ACCEPTED.value, InvitationStatus.DECLINED.value])

        def total(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        received = select(
            invitations.c.to_school, total(is_open), func.count(), total(answered), total(lapsed)
        ).group_by(invitations.c.to_school)
        sent = select(invitations.c.from_school, total(is_open)).group_by(invitations.c.from_school)
        figures: dict[str, dict[str, int]] = {}
        with self.read() as conn:
            for school_id, open_received, count, answered_count, expired in conn.execute(received):
                figures[school_id] = {
                    "open_received": int(open_received),
                    "received": int(count),
                    "answered": int(answered_count),
                    "expired": int(expired),
                }
            for school_id, open_sent in conn.execute(sent):
                figures.setdefault(school_id, {})["open_sent"] = int(open_sent)
        return {school_id: InvitationTally(**values) for school_id, values in figures.items()}

    # ----------------------------------------------------------------- API keys

    def create_api_key(
        self,
        *,
        key_id: str,
        prefix: str,
        key_hash: str,
        role: str,
        school_id: str | None = None,
        name: str | None = None,
    ) -> ApiKeyRecord:
        """Keep a new key's hash; the caller made the key and shows it once."""
        record = ApiKeyRecord(
            id=key_id, prefix=prefix, role=role, school_id=school_id, name=name, created_at=utcnow(), revoked_at=None
        )
        with self.write() as conn:
            known = conn.execute(select(schools.c.id).where(schools.c.id == school_id)).first()
            if school_id is not None and known is None:
                raise NotFound("school", school_id)
            if conn.execute(select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)).first() is not None:
                raise Conflict("key_hash: this key is already stored")
            conn.execute(insert(api_keys).values(key_hash=key_hash, **_api_key_row(record)))
        return record

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not; None when no key has it."""
        with self.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
        return None if row is None else _api_key_from_row(row)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        with self.read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)).all()
        return [_api_key_from_row(row) for row in rows]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        with self.write() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise NotFound("api key", key_id)
            current = _api_key_from_row(row)
            if not current.active:
                raise Conflict(f"id: key {key_id!r} was already revoked on {current.revoked_at:%Y-%m-%d}")
            revoked = ApiKeyRecord(**{**current.__dict__, "revoked_at": utcnow()})
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=revoked.revoked_at))
        return revoked

    # ----------------------------------------------------------------- matching rounds

    def create_round(
        self,
        *,
        options: dict[str, Any],
        summary: dict[str, Any],
        result: dict[str, Any],
        created_by: str | None = None,
        now: datetime | None = None,
        round_id: str | None = None,
    ) -> StoredRound:
        """Keep a proposed round. Ids sort by creation time, so newest first is id descending; a
        round run as a job is given its job's id."""
        now = _as_utc(now or utcnow())
        stored = StoredRound(
            id=round_id or f"round-{int(now.timestamp() * 1000):012x}-{secrets.token_hex(3)}",
            created_at=now,
            created_by=created_by,
            options=options,
            summary=summary,
            result=result,
        )
        row = _round_row(stored)
        for column in ("options", "summary", "result"):  # megabytes for a big round: dumped before the lock
            row[column] = JsonText(_dumps(row[column]))
        with self.write() as conn:
            conn.execute(insert(rounds), [row])
        return stored

    def get_round(self, round_id: str) -> StoredRound:
        with self.read() as conn:
            return self._round(conn, round_id)

    @staticmethod
    def _round(conn: Connection, round_id: str) -> StoredRound:
        row = conn.execute(select(rounds).where(rounds.c.id == round_id)).first()
        if row is None:
            raise NotFound("round", round_id)
        return _round_from_row(row._mapping)

    def list_rounds(self, *, before: str | None = None, limit: int = 50) -> list[StoredRound]:
        """Rounds newest first, without their (possibly large) results: result is None. Page on
        with before=<last id of the previous page>."""
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        columns = [c for c in rounds.c if c.name != "result"]
        query = select(*columns).order_by(rounds.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(rounds.c.id < before)
        with self.read() as conn:
            return [_round_from_row(row._mapping) for row in conn.execute(query)]

    def accept_round(
        self,
        round_id: str,
        new: Sequence[Partnership],
        *,
        accepted_by: str | None = None,
        now: datetime | None = None,
    ) -> tuple[StoredRound, list[Partnership]]:
        """Start the round's partnerships and mark it accepted, in one transaction: all of it is
        written or none. Refused (Conflict) when the round was accepted already, or when a pair's
        school is gone or inactive or the two are partners by now (the caller checks the full
        rules first; these are re-read here under the write lock, so another replica's write in
        between cannot slip past)."""
        now = _as_utc(now or utcnow())
        with self.write() as conn:
            current = self._round(conn, round_id)
            if current.status != RoundStatus.PROPOSED:
                raise Conflict(f"status: round {round_id!r} was already accepted on {current.accepted_at:%Y-%m-%d}")
            pairs = [p.pair for p in new]
            known = self._get_schools(conn, (i for pair in pairs for i in pair))
            partnered = {
                (row.school_a, row.school_b)
                for chunk in _chunks(sorted(set(pairs)))
                for row in conn.execute(
                    select(partnerships.c.school_a, partnerships.c.school_b).where(
                        tuple_(partnerships.c.school_a, partnerships.c.school_b).in_(chunk),
                        partnerships.c.end_date.is_(None),
                    )
                )
            }
            stale = []
            for a, b in pairs:
                why = [
                    f"{i} is unknown" if i not in known else f"{i} is inactive"
                    for i in (a, b)
                    if i not in known or not known[i].active
                ]
                if (a, b) in partnered:
                    why.append("already partners")
                if why:
                    stale.append(f"{a}–{b} ({', '.join(why)})")
            if stale:
                raise Conflict(f"pairs: no longer possible: {'; '.join(stale)}")
            stored, _ = self._write_partnerships_in(conn, list(new))
            accepted = current.model_copy(
                update={
                    "status": RoundStatus.ACCEPTED,
                    "accepted_at": now,
                    "accepted_by": accepted_by,
                    "partnership_ids": [p.id for p in stored if p.id],
                }
            )
            conn.execute(
                update(rounds)
                .where(rounds.c.id == round_id)
                .values(
                    status=accepted.status.value,
                    accepted_at=now,
                    accepted_by=accepted_by,
                    partnership_ids=accepted.partnership_ids,
                )
            )
        return accepted, stored

    # ----------------------------------------------------------------- round jobs

    def create_round_job(self, *, created_by: str | None = None, now: datetime | None = None) -> RoundJob:
        """A queued round job. Its id sorts by creation time like a round's, and becomes the round's."""
        now = _as_utc(now or utcnow())
        job = RoundJob(
            id=f"round-{int(now.timestamp() * 1000):012x}-{secrets.token_hex(3)}",
            created_at=now,
            created_by=created_by,
            status="queued",
            stage="queued",
            progress=0.0,
            error=None,
            updated_at=now,
        )
        with self.write() as conn:
            conn.execute(insert(round_jobs), [job.__dict__])
        return job

    def update_round_job(
        self, job_id: str, *, status: str, stage: str, progress: float, error: str | None = None
    ) -> None:
        with self.write() as conn:
            done = conn.execute(
                update(round_jobs)
                .where(round_jobs.c.id == job_id)
                .values(status=status, stage=stage, progress=progress, error=error, updated_at=utcnow())
            )
            if done.rowcount == 0:
                raise NotFound("round job", job_id)

    def get_round_job(self, job_id: str) -> RoundJob:
        with self.read() as conn:
            row = conn.execute(select(round_jobs).where(round_jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound("round", job_id)
        values = dict(row._mapping)
        values["created_at"] = _as_utc(values["created_at"])
        values["updated_at"] = _as_utc(values["updated_at"])
        return RoundJob(**values)

    def fail_unfinished_round_jobs(self, reason: str) -> int:
        """Mark queued and running jobs failed (their process is gone); returns how many."""
        with self.write() as conn:
            return conn.execute(
                update(round_jobs)
                .where(round_jobs.c.status.in_(("queued", "running")))
                .values(status="failed", error=reason, updated_at=utcnow())
            ).rowcount

    # ----------------------------------------------------------------- exposure

    def add_exposure(self, shown: Mapping[str, tuple[str, float]], *, now: float, half_life: float) -> None:
        """Add appearances (school id -> (side, decayed count as of `now`, a unix time)) to the
        shared counts, in one transaction with every other writer. `half_life` in seconds."""
        if not shown:
            return
        with self.write() as conn:
            origin = self._exposure_origin(conn, now, half_life)
            scale = 2.0 ** ((now - origin) / half_life)
            rows = [{"school_id": k, "side": side, "weight": count * scale} for k, (side, count) in shown.items()]
            for chunk in _chunks(rows):
                statement = _upsert(self.dialect, exposure).values(list(chunk))
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=[exposure.c.school_id],
                        set_={"side": statement.excluded.side, "weight": exposure.c.weight + statement.excluded.weight},
                    )
                )

    def exposure_counts(self, *, now: float, half_life: float) -> dict[str, tuple[str, float]]:
        """Every replica's appearances per school, decayed to `now`: school id -> (side, count)."""
        with self.read() as conn:
            origin = conn.execute(select(meta.c.value).where(meta.c.key == EXPOSURE_ORIGIN_KEY)).scalar_one_or_none()
            if origin is None:
                return {}
            scale = 2.0 ** ((now - float(origin)) / half_life)
            return {row.school_id: (row.side, row.weight / scale) for row in conn.execute(select(exposure))}

    @staticmethod
    def _exposure_origin(conn: Connection, now: float, half_life: float) -> float:
        """The stored weights' origin, set on first use and moved to `now` (the weights rescaled)
        once it lies many half-lives back."""
        found = conn.execute(select(meta.c.value).where(meta.c.key == EXPOSURE_ORIGIN_KEY)).scalar_one_or_none()
        if found is None:
            conn.execute(insert(meta).values(key=EXPOSURE_ORIGIN_KEY, value=repr(now)))
            return now
        origin = float(found)
        if (now - origin) / half_life > _EXPOSURE_REBASE_AFTER:
            conn.execute(update(exposure).values(weight=exposure.c.weight / 2.0 ** ((now - origin) / half_life)))
            conn.execute(update(meta).where(meta.c.key == EXPOSURE_ORIGIN_KEY).values(value=repr(now)))
            return now
        return origin

    # ----------------------------------------------------------------- meta and stats

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.read() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as conn:
            done = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
            if done.rowcount == 0:
                conn.execute(insert(meta).values(key=key, value=value))

    def stats(self) -> dict[str, Any]:
        """Counts for `partnermatch stats`; the breakdowns are over active schools and partnerships."""
        active = schools.c.active == true()
        a, b = schools.alias("a"), schools.alias("b")
        with self.read() as conn:
            total = conn.execute(select(func.count()).select_from(schools)).scalar_one()
            by_country = dict(
                conn.execute(select(schools.c.country, func.count()).where(active).group_by(schools.c.country)).all()
            )
            by_remoteness = dict(
                conn.execute(
                    select(schools.c.remoteness, func.count()).where(active).group_by(schools.c.remoteness)
                ).all()
            )
            by_level = {
                level.value: conn.execute(
                    select(func.count()).select_from(schools).where(active, _contains(schools.c.levels, level.value))
                ).scalar_one()
                for level in Level
            }
            partnership_total = conn.execute(select(func.count()).select_from(partnerships)).scalar_one()
            pairs = conn.execute(
                select(a.c.country, b.c.country, func.count())
                .select_from(
                    partnerships.join(a, partnerships.c.school_a == a.c.id).join(b, partnerships.c.school_b == b.c.id)
                )
                .where(partnerships.c.end_date.is_(None))
                .group_by(a.c.country, b.c.country)
            ).all()
        by_pair: dict[str, int] = {}
        for country_a, country_b, count in pairs:
            key = "-".join(sorted((country_a, country_b)))
            by_pair[key] = by_pair.get(key, 0) + count
        return {
            "schools": total,
            "active_schools": sum(by_country.values()),
            "schools_by_country": dict(sorted(by_country.items(), key=lambda kv: (-kv[1], kv[0]))),
            "schools_by_level": {k: v for k, v in by_level.items() if v},
            "schools_by_remoteness": {r.value: by_remoteness[r.value] for r in Remoteness if r.value in by_remoteness},
            "partnerships": partnership_total,
            "active_partnerships": sum(by_pair.values()),
            "active_partnerships_by_country_pair": dict(sorted(by_pair.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def _contains(column: Any, value: str) -> ColumnElement[bool]:
    return column.contains(f"|{value}|", autoescape=True)


def _school_filters(filters: SchoolFilters) -> list[ColumnElement[bool]]:
    """WHERE clauses for list/count; values are checked so a typo is an error, not an empty page."""
    unknown = sorted(set(filters) - set(SchoolFilters.__annotations__))
    if unknown:
        raise TypeError(f"unknown school filter(s): {', '.join(unknown)}")
    get = filters.get
    active, q = get("active", True), get("q")
    where: list[ColumnElement[bool]] = []
    if active is not None:
        where.append(schools.c.active == (true() if active else false()))
    for column, values in (
        (schools.c.country, _values(get("country"), normalize_country)),
        (schools.c.region, _values(get("region"), str)),
        (schools.c.remoteness, _values(get("remoteness"), lambda v: _checked("remoteness", Remoteness, v))),
    ):
        if values is not None:
            where.append(column.in_(values))
    for column, values in (
        (schools.c.levels, _values(get("level"), lambda v: _checked("level", Level, v))),
        (schools.c.sdgs, _values(get("sdg"), lambda g: str(_sdg(g)))),
        (schools.c.exchange_modes, _values(get("mode"), lambda v: _checked("mode", ExchangeMode, v))),
        (schools.c.target_countries, _values(get("target_country"), normalize_country)),
        (schools.c.languages_exchange, _values(get("language"), normalize_language)),
    ):
        if values is not None:
            where.append(or_(false(), *(_contains(column, v) for v in values)))
    if q is not None and query_key(q):
        where.append(schools.c.search_key.contains(query_key(q), autoescape=True))
    return where


def _checked(field: str, enum: type[Level] | type[ExchangeMode] | type[Remoteness], value: str) -> str:
    try:
        return enum(value).value
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"{field}: {value!r} is not one of {allowed}") from None


def _sdg(goal: int | str) -> int:
    try:
        number = int(goal)
    except ValueError:
        number = 0
    if not 1 <= number <= 17:
        raise ValueError(f"sdg: {goal!r} is not a goal number 1-17")
    return number


def _open_invitation(now: datetime) -> list[ColumnElement[bool]]:
    return [invitations.c.status == InvitationStatus.PENDING.value, invitations.c.expires_at > now]


def _invitation_row(invitation: Invitation) -> dict[str, Any]:
    row = invitation.model_dump()
    row["status"] = invitation.status.value
    for field in ("created_at", "expires_at", "answered_at"):
        if row[field] is not None:
            row[field] = _as_utc(row[field])
    return row


def _invitation_from_row(row: Any) -> Invitation:
    values = dict(row._mapping)
    for field in ("created_at", "expires_at", "answered_at"):
        if values[field] is not None:
            values[field] = _as_utc(values[field])
    return Invitation.model_validate(values)


def _round_row(stored: StoredRound) -> dict[str, Any]:
    row = stored.model_dump(mode="json")
    row["created_at"] = _as_utc(stored.created_at)
    row["accepted_at"] = _as_utc(stored.accepted_at) if stored.accepted_at else None
    return row


def _round_from_row(values: Any) -> StoredRound:
    data = dict(values)
    data["created_at"] = _as_utc(data["created_at"])
    if data.get("accepted_at") is not None:
        data["accepted_at"] = _as_utc(data["accepted_at"])
    data["partnership_ids"] = data.get("partnership_ids") or []
    return StoredRound.model_validate(data)


def _api_key_row(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "role": record.role,
        "school_id": record.school_id,
        "name": record.name,
        "created_at": _as_utc(record.created_at),
        "revoked_at": _as_utc(record.revoked_at) if record.revoked_at else None,
    }


def _api_key_from_row(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        prefix=row.prefix,
        role=row.role,
        school_id=row.school_id,
        name=row.name,
        created_at=_as_utc(row.created_at),
        revoked_at=_as_utc(row.revoked_at) if row.revoked_at else None,
    )


def _partnership_filters(school_id: str | None, active: bool | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if school_id is not None:
        where.append(or_(partnerships.c.school_a == school_id, partnerships.c.school_b == school_id))
    if active is True:
        where.append(partnerships.c.end_date.is_(None))
    elif active is False:
        where.append(partnerships.c.end_date.is_not(None))
    return where


def _upsert(dialect: str, table: Any) -> Any:
    """INSERT ... ON CONFLICT for the store's two backends."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class JsonText(str):
    """A JSON column's value serialised already, so a big one is not dumped inside a transaction
    that holds the database's write lock (every other writer would wait for it)."""


def _dumps(value: Any) -> str:
    """How JSON columns are written: readable (non-ASCII kept), as-is when already JsonText."""
    return value if isinstance(value, JsonText) else json.dumps(value, ensure_ascii=False)


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    serializer = _dumps
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, json_serializer=serializer)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=serializer)

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
