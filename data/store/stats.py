"""Meta values (small named settings the store keeps, e.g. the database's instance id) and the
counts `partnermatch stats` prints.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, true, update

from data.store.engine import contains
from data.tables import meta, partnerships, schools
from data.taxonomies import Level, Remoteness


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()


def set_meta(conn: Connection, key: str, value: str) -> None:
    done = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
    if done.rowcount == 0:
        conn.execute(insert(meta).values(key=key, value=value))


def summary(conn: Connection) -> dict[str, Any]:
    """Counts for `partnermatch stats`; the breakdowns are over active schools and partnerships."""
    active = schools.c.active == true()
    a, b = schools.alias("a"), schools.alias("b")
    total = conn.execute(select(func.count()).select_from(schools)).scalar_one()
    by_country = dict(
        conn.execute(select(schools.c.country, func.count()).where(active).group_by(schools.c.country)).all()
    )
    by_remoteness = dict(
        conn.execute(select(schools.c.remoteness, func.count()).where(active).group_by(schools.c.remoteness)).all()
    )
    by_level = {
        level.value: conn.execute(
            select(func.count()).select_from(schools).where(active, contains(schools.c.levels, level.value))
        ).scalar_one()
        for level in Level
    }
    partnership_total = conn.execute(select(func.count()).select_from(partnerships)).scalar_one()
    pairs = conn.execute(
        select(a.c.country, b.c.country, func.count())
        .select_from(partnerships.join(a, partnerships.c.school_a == a.c.id).join(b, partnerships.c.school_b == b.c.id))
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
