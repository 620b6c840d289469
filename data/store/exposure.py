"""The exposure table: how often each school was shown, summed over every replica. Weights are
stored scaled to a moving origin (a meta value) so adding decayed counts is one UPSERT.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, insert, select, update

from data.store.engine import chunks, upsert
from data.tables import exposure, meta

ORIGIN_KEY = "exposure_origin"
# Half-lives after which the stored weights are rescaled, long before floats overflow.
_REBASE_AFTER = 64.0


def add(conn: Connection, shown: Mapping[str, tuple[str, float]], *, now: float, half_life: float) -> None:
    """Add appearances (school id -> (side, decayed count as of `now`, a unix time)) to the
    shared counts. `half_life` in seconds."""
    origin = _origin(conn, now, half_life)
    scale = 2.0 ** ((now - origin) / half_life)
    rows = [{"school_id": k, "side": side, "weight": count * scale} for k, (side, count) in shown.items()]
    for chunk in chunks(rows):
        statement = upsert(conn.dialect.name, exposure).values(list(chunk))
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[exposure.c.school_id],
                set_={"side": statement.excluded.side, "weight": exposure.c.weight + statement.excluded.weight},
            )
        )


def counts(conn: Connection, *, now: float, half_life: float) -> dict[str, tuple[str, float]]:
    """Every replica's appearances per school, decayed to `now`: school id -> (side, count)."""
    origin = conn.execute(select(meta.c.value).where(meta.c.key == ORIGIN_KEY)).scalar_one_or_none()
    if origin is None:
        return {}
    scale = 2.0 ** ((now - float(origin)) / half_life)
    return {row.school_id: (row.side, row.weight / scale) for row in conn.execute(select(exposure))}


def _origin(conn: Connection, now: float, half_life: float) -> float:
    """The stored weights' origin, set on first use and moved to `now` (the weights rescaled)
    once it lies many half-lives back."""
    found = conn.execute(select(meta.c.value).where(meta.c.key == ORIGIN_KEY)).scalar_one_or_none()
    if found is None:
        conn.execute(insert(meta).values(key=ORIGIN_KEY, value=repr(now)))
        return now
    origin = float(found)
    if (now - origin) / half_life > _REBASE_AFTER:
        conn.execute(update(exposure).values(weight=exposure.c.weight / 2.0 ** ((now - origin) / half_life)))
        conn.execute(update(meta).where(meta.c.key == ORIGIN_KEY).values(value=repr(now)))
        return now
    return origin
