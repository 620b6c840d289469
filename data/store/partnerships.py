"""The partnerships table: one row per partnership, the pair kept in canonical order
(school_a < school_b), the same pair and start date being one partnership.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, or_, select, tuple_, update

from data.errors import Conflict, ImportRejected, NotFound, RowError
from data.schema import Partnership, School
from data.store import changes, schools
from data.store.engine import chunks, delimited, undelimited
from data.store.schools import UpsertCounts
from data.tables import partnerships

StoredPairs = tuple[dict[str, School], dict[tuple[str, str, date], Partnership]]
"""What :func:`write` checks a batch against: its schools, and the partnerships stored for its
pairs by (school_a, school_b, start_date), ended ones included."""


def stored_for(conn: Connection, pairs: Iterable[tuple[str, str]]) -> StoredPairs:
    """The :data:`StoredPairs` state of these canonical pairs, read in the caller's transaction."""
    wanted = set(pairs)
    return schools.get_many(conn, (i for pair in wanted for i in pair)), _by_key(conn, wanted)


def write(
    conn: Connection, batch: list[Partnership], stored_state: StoredPairs | None = None
) -> tuple[list[Partnership], UpsertCounts]:
    """Add or update partnerships inside the caller's write transaction (so an accepted
    invitation and the partnership it starts commit together), or none if any is bad
    (ImportRejected lists every bad one by its 1-based position). The same pair and start date
    again updates the stored one. `stored_state` is :func:`stored_for` the batch's pairs when the
    caller read it already in this transaction (a round's accept checks the pairs with it first)."""
    canonical = [p.model_copy(update=dict(zip(("school_a", "school_b"), p.pair, strict=True))) for p in batch]
    known, found = stored_state or stored_for(conn, (p.pair for p in canonical))
    by_key = dict(found)
    given_ids = {p.id for p in canonical if p.id}
    owner_of_id = {
        row.id: (row.school_a, row.school_b, row.start_date)
        for chunk in chunks(sorted(given_ids))
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
            conn.execute(insert(partnerships), [_row(fresh)])
            changes.log(conn, "partnership", [(fresh.id, "add")])
            created += 1
        elif p.model_copy(update={"id": current.id}) == current:
            fresh = current
            unchanged += 1
        else:
            fresh = p.model_copy(update={"id": current.id})
            conn.execute(update(partnerships).where(partnerships.c.id == current.id).values(_row(fresh)))
            op = "end" if current.end_date is None and fresh.end_date is not None else "update"
            changes.log(conn, "partnership", [(current.id, op)])
            updated += 1
        by_key[key] = fresh
        stored.append(fresh)
    return stored, UpsertCounts(created=created, updated=updated, unchanged=unchanged)


def end(conn: Connection, partnership_id: str, end_date: date) -> Partnership:
    current = get(conn, partnership_id)
    if current.end_date is not None:
        raise Conflict(f"end_date: partnership {partnership_id!r} already ended on {current.end_date}")
    ended = Partnership.model_validate(current.model_dump() | {"end_date": end_date})
    conn.execute(update(partnerships).where(partnerships.c.id == partnership_id).values(end_date=end_date))
    changes.log(conn, "partnership", [(partnership_id, "end")])
    return ended


def get(conn: Connection, partnership_id: str) -> Partnership:
    row = conn.execute(select(partnerships).where(partnerships.c.id == partnership_id)).first()
    if row is None:
        raise NotFound("partnership", partnership_id)
    return _from_row(row)


def list_(conn: Connection, *, school_id: str | None, active: bool | None) -> list[Partnership]:
    """Partnerships (of one school, if given), oldest start first."""
    query = (
        select(partnerships).where(*_filters(school_id, active)).order_by(partnerships.c.start_date, partnerships.c.id)
    )
    return [_from_row(row) for row in conn.execute(query)]


def _by_key(conn: Connection, pairs: set[tuple[str, str]]) -> dict[tuple[str, str, date], Partnership]:
    found: dict[tuple[str, str, date], Partnership] = {}
    for chunk in chunks(sorted(pairs)):
        query = select(partnerships).where(tuple_(partnerships.c.school_a, partnerships.c.school_b).in_(chunk))
        for row in conn.execute(query):
            p = _from_row(row)
            found[(p.school_a, p.school_b, p.start_date)] = p
    return found


def _row(p: Partnership) -> dict[str, Any]:
    return {
        "id": p.id,
        "school_a": p.school_a,
        "school_b": p.school_b,
        "start_date": p.start_date,
        "end_date": p.end_date,
        "modes": delimited(p.modes),
        "sdgs": delimited(p.sdgs),
        "origin": p.origin.value,
        "note": p.note,
        "capacity_override": p.capacity_override,
    }


def _from_row(row: Any) -> Partnership:
    return Partnership(
        id=row.id,
        school_a=row.school_a,
        school_b=row.school_b,
        start_date=row.start_date,
        end_date=row.end_date,
        modes=undelimited(row.modes),
        sdgs=[int(g) for g in undelimited(row.sdgs)],
        origin=row.origin,
        note=row.note,
        capacity_override=row.capacity_override,
    )


def _filters(school_id: str | None, active: bool | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if school_id is not None:
        where.append(or_(partnerships.c.school_a == school_id, partnerships.c.school_b == school_id))
    if active is True:
        where.append(partnerships.c.end_date.is_(None))
    elif active is False:
        where.append(partnerships.c.end_date.is_not(None))
    return where
