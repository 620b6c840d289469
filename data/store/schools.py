"""The schools table: profiles kept whole as JSON, with the columns filters and search need.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, Connection, bindparam, delete, false, func, insert, or_, select, true, update

from data.errors import Conflict, NotFound
from data.schema import School, utcnow
from data.search import query_key, school_key
from data.store import changes
from data.store.engine import as_utc, chunks, contains, delimited
from data.tables import exposure, invitations, partnerships, schools
from data.taxonomies import (
    LEVEL_GRADES,
    ExchangeMode,
    Level,
    Remoteness,
    derive_timezone,
    normalize_country,
    normalize_language,
)


@dataclass(frozen=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


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


# ----------------------------------------------------------------- reads


def get(conn: Connection, school_id: str) -> School:
    profile = conn.execute(select(schools.c.profile).where(schools.c.id == school_id)).scalar_one_or_none()
    if profile is None:
        raise NotFound("school", school_id)
    return School.model_validate(profile)


def get_many(conn: Connection, ids: Iterable[str]) -> dict[str, School]:
    """The schools among ids that exist; unknown ids are simply absent from the result."""
    found: dict[str, School] = {}
    for chunk in chunks(sorted(set(ids))):
        for profile in conn.execute(select(schools.c.profile).where(schools.c.id.in_(chunk))).scalars():
            school = School.model_validate(profile)
            found[school.id] = school
    return found


def existing_ids(conn: Connection, ids: Collection[str]) -> set[str]:
    return set(conn.execute(select(schools.c.id).where(schools.c.id.in_(list(ids)))).scalars())


def list_(conn: Connection, filters: SchoolFilters, *, after: str | None, limit: int) -> list[School]:
    """Schools matching every given filter, ordered by id, after the id `after`."""
    if limit < 1:
        raise ValueError(f"limit: must be at least 1, got {limit}")
    where = _filters(filters)
    if after is not None:
        where.append(schools.c.id > after)
    query = select(schools.c.profile).where(*where).order_by(schools.c.id).limit(limit)
    return [School.model_validate(p) for p in conn.execute(query).scalars()]


def count(conn: Connection, filters: SchoolFilters) -> int:
    return conn.execute(select(func.count()).select_from(schools).where(*_filters(filters))).scalar_one()


# ----------------------------------------------------------------- writes


def create(conn: Connection, school: School) -> School:
    exists = conn.execute(select(schools.c.id).where(schools.c.id == school.id)).first()
    if exists is not None:
        raise Conflict(f"id: school {school.id!r} already exists")
    conn.execute(insert(schools), [_row(school)])
    changes.log(conn, "school", [(school.id, "create")])
    return school


def check_update(school_id: str, changed: dict[str, Any]) -> None:
    """Refuse changes to what the store sets itself (before any transaction opens)."""
    if "id" in changed and changed["id"] != school_id:
        raise ValueError(f"id: a school's id cannot change ({school_id!r} -> {changed['id']!r})")
    for field in ("created_at", "updated_at"):
        if field in changed:
            raise ValueError(f"{field}: set by the store, not by an update")


def update_(conn: Connection, school_id: str, changed: dict[str, Any]) -> School:
    """Apply changes (checked by :func:`check_update`) and re-validate the whole profile. Nothing
    is written (and updated_at stays) when the profile says the same as before."""
    current = get(conn, school_id)
    merged = current.model_dump() | changed
    _rederive(current, changed, merged)
    result = School.model_validate(merged)
    if result.content_hash() == current.content_hash():
        return current
    result = result.model_copy(update={"created_at": current.created_at, "updated_at": utcnow()})
    conn.execute(update(schools).where(schools.c.id == school_id).values(_row(result)))
    op = "deactivate" if current.active and not result.active else "update"
    changes.log(conn, "school", [(school_id, op)])
    return result


def check_unique(batch: Iterable[School]) -> None:
    """One upsert names each school once (checked before any transaction opens)."""
    seen: set[str] = set()
    for school in batch:
        if school.id in seen:
            raise ValueError(f"id: {school.id!r} appears more than once in one upsert")
        seen.add(school.id)


def upsert(conn: Connection, batch: list[School], progress: Callable[[int], None] | None = None) -> UpsertCounts:
    """Create or update many schools (ids checked unique by :func:`check_unique`). A school whose
    content is unchanged is not rewritten and keeps its timestamps. progress, if given, is called
    with the number of schools handled after each chunk."""
    created = updated = unchanged = 0
    now = utcnow()
    for chunk in chunks(batch):
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
                inserts.append(_row(school))
                log.append((school.id, "create"))
                continue
            if old.content_hash == school.content_hash():
                unchanged += 1
                continue
            stamped = school.model_copy(update={"created_at": as_utc(old.created_at), "updated_at": now})
            updates.append({"key": school.id} | _row(stamped))
            log.append((school.id, "deactivate" if old.active and not school.active else "update"))
        if inserts:
            conn.execute(insert(schools), inserts)
        if updates:
            values = {c.name: bindparam(c.name) for c in schools.columns}
            conn.execute(update(schools).where(schools.c.id == bindparam("key")).values(values), updates)
        changes.log(conn, "school", log)
        created += len(inserts)
        updated += len(updates)
        if progress is not None:
            progress(len(chunk))
    return UpsertCounts(created=created, updated=updated, unchanged=unchanged)


def clear(conn: Connection) -> None:
    """Delete every school and what hangs off them: partnerships, invitations, exposure counts.
    The change log records a "delete" for each, so whatever was built from them knows to drop them."""
    invitation_ids = conn.execute(select(invitations.c.id)).scalars().all()
    partnership_ids = conn.execute(select(partnerships.c.id)).scalars().all()
    school_ids = conn.execute(select(schools.c.id)).scalars().all()
    conn.execute(delete(invitations))
    conn.execute(delete(partnerships))
    conn.execute(delete(schools))
    conn.execute(delete(exposure))
    changes.log(conn, "invitation", [(iid, "delete") for iid in invitation_ids])
    changes.log(conn, "partnership", [(pid, "delete") for pid in partnership_ids])
    changes.log(conn, "school", [(sid, "delete") for sid in school_ids])


# ----------------------------------------------------------------- rows and filters


def _row(school: School) -> dict[str, Any]:
    return {
        "id": school.id,
        "country": school.country,
        "region": school.region,
        "active": school.active,
        "remoteness": school.remoteness.value,
        "name_local": school.name_local,
        "name_en": school.name_en,
        "search_key": school_key(school),
        "levels": delimited(school.levels),
        "sdgs": delimited(school.sdgs),
        "exchange_modes": delimited(school.exchange_modes),
        "target_countries": delimited(school.target_countries),
        "languages_exchange": delimited(school.languages_exchange),
        "content_hash": school.content_hash(),
        "created_at": as_utc(school.created_at),
        "updated_at": as_utc(school.updated_at),
        "profile": school.model_dump(mode="json"),
    }


def _rederive(current: School, changed: dict[str, Any], merged: dict[str, Any]) -> None:
    """Grades and time zone that were derived (not given) follow the fields they came from."""
    if "levels" in changed and "grades" not in changed:
        derived = sorted({g for level in current.levels for g in LEVEL_GRADES[level]})
        if current.grades == derived:
            merged["grades"] = []
    place = {"country", "region", "latitude", "longitude"}
    if place & changed.keys() and "timezone" not in changed:
        derived_zone = derive_timezone(current.country, current.region, current.latitude, current.longitude)
        if current.timezone == derived_zone:
            merged["timezone"] = None


def _values(given: str | int | Collection[Any] | None, check: Callable[[Any], str]) -> list[str] | None:
    """A filter argument as a checked list ("any of these"), or None when the filter is off."""
    if given is None:
        return None
    return [check(v) for v in ([given] if isinstance(given, str | int) else given)]


def _filters(filters: SchoolFilters) -> list[ColumnElement[bool]]:
    """WHERE clauses for list/count; values are checked so a typo is an error, not an empty page."""
    unknown = sorted(set(filters) - set(SchoolFilters.__annotations__))
    if unknown:
        raise TypeError(f"unknown school filter(s): {', '.join(unknown)}")
    get_ = filters.get
    active, q = get_("active", True), get_("q")
    where: list[ColumnElement[bool]] = []
    if active is not None:
        where.append(schools.c.active == (true() if active else false()))
    for column, values in (
        (schools.c.country, _values(get_("country"), normalize_country)),
        (schools.c.region, _values(get_("region"), str)),
        (schools.c.remoteness, _values(get_("remoteness"), lambda v: checked("remoteness", Remoteness, v))),
    ):
        if values is not None:
            where.append(column.in_(values))
    for column, values in (
        (schools.c.levels, _values(get_("level"), lambda v: checked("level", Level, v))),
        (schools.c.sdgs, _values(get_("sdg"), lambda g: str(_sdg(g)))),
        (schools.c.exchange_modes, _values(get_("mode"), lambda v: checked("mode", ExchangeMode, v))),
        (schools.c.target_countries, _values(get_("target_country"), normalize_country)),
        (schools.c.languages_exchange, _values(get_("language"), normalize_language)),
    ):
        if values is not None:
            where.append(or_(false(), *(contains(column, v) for v in values)))
    if q is not None and query_key(q):
        where.append(schools.c.search_key.contains(query_key(q), autoescape=True))
    return where


def checked(field: str, enum: Any, value: str) -> str:
    """An enum member's value, or ValueError naming the field and the allowed values."""
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
