"""The exposure table: how often each school was shown, summed over every replica. Weights are
stored scaled to a moving origin (a meta value) so adding decayed counts is one UPSERT.

Every write stamps the rows it touches with the next version number. Writes serialise and commit
in order (data.store.engine), so once a reader has seen version v it has seen every write up to
v: :func:`changed` returns only the rows written since the newest version a reader holds, and a
replica's follower reads what the others showed since its last turn, not the whole table.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, func, insert, select, text, update

from data.store.stats import get_meta
from data.tables import exposure, meta

ORIGIN_KEY = "exposure_origin"
# Half-lives after which the stored weights are rescaled, long before floats overflow.
_REBASE_AFTER = 64.0


@dataclass(frozen=True)
class ExposureChanges:
    """Rows written after a version, decayed to `now`: school id -> (side, count). `origin` is
    the stored weights' origin; when it differs from the one a reader saw last, every row was
    rescaled and `counts` holds them all. `version` is the newest version read: pass it next time."""

    counts: dict[str, tuple[str, float]]
    origin: float | None
    version: int


# One statement adds every school's appearances, the rows handed over as one JSON object
# {school id: [side, decayed count]}: the database unpacks and upserts them in one step. Row by row
# (executemany) cost the follower about 4 us of Python a row, holding the GIL, every turn: ~50 ms a
# turn at 3,000 schools shown, a stall of every request the process was answering meanwhile.
# (The counts reach the database exactly: orjson writes the shortest text that reads back as the
# same double, and both databases read it back as that double; a test holds them to the bit.)
_ADD_SELECT = {
    "sqlite": "SELECT key, value ->> 0, (value ->> 1) * :scale, :version FROM json_each(:shown) WHERE true",
    "postgresql": "SELECT key, value ->> 0, CAST(value ->> 1 AS double precision) * :scale, :version "
    "FROM jsonb_each(CAST(:shown AS jsonb))",
}
_ADD = (
    "INSERT INTO exposure (school_id, side, weight, version) {select} "
    "ON CONFLICT (school_id) DO UPDATE SET side = excluded.side, weight = exposure.weight + excluded.weight, "
    "version = excluded.version"
)


def add(conn: Connection, shown: Mapping[str, tuple[str, float]], *, now: float, half_life: float) -> None:
    """Add appearances (school id -> (side, decayed count as of `now`, a unix time)) to the
    shared counts. `half_life` in seconds."""
    if not shown:
        return
    version = _next_version(conn)
    origin = _origin(conn, now, half_life, version)
    scale = 2.0 ** ((now - origin) / half_life)
    statement = text(_ADD.format(select=_ADD_SELECT[conn.dialect.name]))
    conn.execute(statement, {"shown": orjson.dumps(shown).decode(), "scale": scale, "version": version})


# The rows written after a version, decayed (divided by the scale, as a reader would), read as one
# JSON object {school id: [side, count]} and the newest version: one row, so the database works in
# one step. Row by row, SQLite's driver lets go of the GIL and takes it back for every row; under
# load each take waited for the thread answering requests (up to the 5 ms switch interval), so a
# turn reading 4,000 rows could take seconds. SQLite writes a double as JSON with 15 digits, which
# loses bits: printf's 17 digits read back as the same double (tested), PostgreSQL's json as well.
_CHANGED = {
    "sqlite": "SELECT json_group_object(school_id, json_array(side, json(printf('%!.17g', weight / :scale)))), "
    "max(version) FROM exposure WHERE version > :since",
    "postgresql": "SELECT CAST(json_object_agg(school_id, json_build_array(side, weight / :scale)) AS text), "
    "max(version) FROM exposure WHERE version > :since",
}


def changed(
    conn: Connection, *, since: int, seen_origin: float | None, now: float, half_life: float
) -> ExposureChanges:
    """Every replica's appearances per school written after version `since` (all of them when
    the origin is no longer `seen_origin`), decayed to `now`."""
    found = get_meta(conn, ORIGIN_KEY)
    if found is None:
        return ExposureChanges({}, None, since)
    origin = float(found)
    if origin != seen_origin:
        since = -1
    scale = 2.0 ** ((now - origin) / half_life)
    rows, newest = conn.execute(text(_CHANGED[conn.dialect.name]), {"scale": scale, "since": since}).one()
    counts = {school_id: (side, count) for school_id, (side, count) in orjson.loads(rows or "{}").items()}
    return ExposureChanges(counts, origin, max(since if newest is None else newest, 0))


def _next_version(conn: Connection) -> int:
    """One more than any stored version (the caller holds the write lock, so nobody else takes it)."""
    return int(conn.execute(select(func.coalesce(func.max(exposure.c.version), 0))).scalar_one()) + 1


def _origin(conn: Connection, now: float, half_life: float, version: int) -> float:
    """The stored weights' origin, set on first use and moved to `now` (the weights rescaled and
    stamped with `version`) once it lies many half-lives back."""
    found = get_meta(conn, ORIGIN_KEY)
    if found is None:
        conn.execute(insert(meta).values(key=ORIGIN_KEY, value=repr(now)))
        return now
    origin = float(found)
    if (now - origin) / half_life > _REBASE_AFTER:
        conn.execute(
            update(exposure).values(weight=exposure.c.weight / 2.0 ** ((now - origin) / half_life), version=version)
        )
        conn.execute(update(meta).where(meta.c.key == ORIGIN_KEY).values(value=repr(now)))
        return now
    return origin
