"""The change log: one sequence over schools, partnerships and invitations, written in the same
transaction as the change itself, read by whatever derives state from the store (the service's
Matcher, other replicas) to catch up from the last seq it applied."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, insert, select

from data.schema import utcnow
from data.tables import change_log

# Ops logged for kind "school"; "delete" only comes from clearing the store.
SCHOOL_OPS = ("create", "update", "deactivate", "delete")
# Ops logged for kind "partnership".
PARTNERSHIP_OPS = ("add", "update", "end", "delete")
# Ops logged for kind "invitation".
INVITATION_OPS = ("create", "accept", "decline", "expire", "delete")

Change = tuple[int, str, str, str]


def log(conn: Connection, kind: str, entries: Iterable[tuple[str, str]]) -> None:
    """Record (entity id, op) changes of one kind, inside the caller's write transaction."""
    at = utcnow()
    rows = [{"kind": kind, "entity_id": entity_id, "op": op, "at": at} for entity_id, op in entries]
    if rows:
        conn.execute(insert(change_log), rows)


def latest_seq(conn: Connection) -> int:
    return conn.execute(select(func.max(change_log.c.seq))).scalar_one() or 0


def since(conn: Connection, seq: int) -> list[Change]:
    """Changes after seq as (seq, kind, entity_id, op), oldest first."""
    query = (
        select(change_log.c.seq, change_log.c.kind, change_log.c.entity_id, change_log.c.op)
        .where(change_log.c.seq > seq)
        .order_by(change_log.c.seq)
    )
    return [(row.seq, row.kind, row.entity_id, row.op) for row in conn.execute(query)]
