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

from sqlalchemy import Connection, func, insert, select, update

from data.store.engine import upsert
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


def add(conn: Connection, shown: Mapping[str, tuple[str, float]], *, now: float, half_life: float) -> None:
    """Add appearances (school id -> (side, decayed count as of `now`, a unix time)) to the
    shared counts. `half_life` in seconds."""
    version = _next_version(conn)
    origin = _origin(conn, now, half_life, version)
    scale = 2.0 ** ((now - origin) / half_life)
    rows = [
        {"school_id": school_id, "side": side, "weight": count * scale, "version": version}
        for school_id, (side, count) in shown.items()
    ]
    if not rows:
        return
    # One statement with bound parameters, run once per row by the driver (executemany): a
    # statement with the rows inlined as VALUES would be compiled anew on every turn.
    statement = upsert(conn.dialect.name, exposure)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[exposure.c.school_id],
            set_={
                "side": statement.excluded.side,
                "weight": exposure.c.weight + statement.excluded.weight,
                "version": statement.excluded.version,
            },
        ),
        rows,
    )


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
    counts: dict[str, tuple[str, float]] = {}
    newest = since
    for row in conn.execute(select(exposure).where(exposure.c.version > since)):
        counts[row.school_id] = (row.side, row.weight / scale)
        newest = max(newest, row.version)
    return ExposureChanges(counts, origin, max(newest, 0))


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
