"""The invitations table: the two-sided loop. An open invitation (pending, before its deadline)
holds a place of both schools' capacity; one conversation per pair at a time; accepting one
starts its partnership in the same transaction.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, insert, or_, select, update

from data.errors import Conflict, NotFound
from data.schema import Invitation, InvitationStatus, Partnership, PartnershipOrigin
from data.store import changes, partnerships, schools
from data.store.engine import as_utc, chunks
from data.tables import invitations

_PENDING = invitations.c.status == InvitationStatus.PENDING.value


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


def create(conn: Connection, invitation: Invitation) -> Invitation:
    """Store a new pending invitation. Refused while another is open between the same two
    schools, in either direction."""
    from_school, to_school = invitation.from_school, invitation.to_school
    found = schools.existing_ids(conn, [from_school, to_school])
    for school_id in (from_school, to_school):
        if school_id not in found:
            raise NotFound("school", school_id)
    pair = or_(
        (invitations.c.from_school == from_school) & (invitations.c.to_school == to_school),
        (invitations.c.from_school == to_school) & (invitations.c.to_school == from_school),
    )
    open_one = conn.execute(select(invitations.c.id).where(pair, _is_open(invitation.created_at))).scalar()
    if open_one is not None:
        raise Conflict(f"to_school: invitation {open_one!r} between {from_school} and {to_school} is still pending")
    conn.execute(insert(invitations), [_row(invitation)])
    changes.log(conn, "invitation", [(invitation.id, "create")])
    return invitation


def get(conn: Connection, invitation_id: str) -> Invitation:
    row = conn.execute(select(invitations).where(invitations.c.id == invitation_id)).first()
    if row is None:
        raise NotFound("invitation", invitation_id)
    return _from_row(row)


def list_(
    conn: Connection,
    *,
    school_id: str | None,
    direction: str | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> list[Invitation]:
    """Invitations oldest first (ids sort by creation), of one school if given: sent, received
    or both (direction None), after the id `after`."""
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
        where.append(invitations.c.status == schools.checked("status", InvitationStatus, status))
    if after is not None:
        where.append(invitations.c.id > after)
    query = select(invitations).where(*where).order_by(invitations.c.id).limit(limit)
    return [_from_row(row) for row in conn.execute(query)]


def accept(
    conn: Connection, invitation_id: str, *, modes: Collection[str], sdgs: Collection[int], now: datetime
) -> tuple[Invitation, Partnership] | None:
    """Accept an open invitation and start the partnership it asked for; None when it was overdue
    (marked expired instead: the caller lets that commit, then reports it)."""
    current = _open_for_answer(conn, invitation_id, now)
    if current is None:
        return None
    partnership = Partnership(
        school_a=current.from_school,
        school_b=current.to_school,
        start_date=now.date(),
        modes=list(modes),
        sdgs=list(sdgs),
        origin=PartnershipOrigin.SUGGESTED,
        note=f"started by accepting invitation {invitation_id}",
    )
    (stored,), _ = partnerships.write(conn, [partnership])
    accepted = Invitation.model_validate(
        current.model_dump() | {"status": InvitationStatus.ACCEPTED, "answered_at": now, "partnership_id": stored.id}
    )
    _save_answer(conn, accepted, "accept")
    return accepted, stored


def decline(conn: Connection, invitation_id: str, reason: str | None, *, now: datetime) -> Invitation | None:
    """Decline an open invitation; None when it was overdue (marked expired instead)."""
    current = _open_for_answer(conn, invitation_id, now)
    if current is None:
        return None
    declined = Invitation.model_validate(
        current.model_dump()
        | {"status": InvitationStatus.DECLINED, "answered_at": now, "decline_reason": reason or None}
    )
    _save_answer(conn, declined, "decline")
    return declined


def expired_conflict(invitation: Invitation) -> Conflict:
    """What answering an invitation that expired unanswered says."""
    return Conflict(
        f"expires_at: invitation {invitation.id!r} expired at {invitation.expires_at:%Y-%m-%d %H:%M} UTC unanswered"
    )


def any_overdue(conn: Connection, now: datetime) -> bool:
    """A pending invitation is past its deadline (a read, so checking on each request is cheap)."""
    return conn.execute(_overdue(now).limit(1)).first() is not None


def expire_overdue(conn: Connection, now: datetime) -> int:
    """Mark every pending invitation past its deadline as expired; returns how many."""
    ids = list(conn.execute(_overdue(now).order_by(invitations.c.id)).scalars())
    if ids:
        _expire(conn, ids)
    return len(ids)


def tallies(conn: Connection, now: datetime) -> dict[str, InvitationTally]:
    """Every school's invitation figures at `now`; an overdue pending invitation counts as
    expired whether or not the sweep has marked it yet."""
    is_open = _is_open(now)
    lapsed = (invitations.c.status == InvitationStatus.EXPIRED.value) | _is_overdue(now)
    answered = invitations.c.status.in_([InvitationStatus.ACCEPTED.value, InvitationStatus.DECLINED.value])

    def total(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    received = select(invitations.c.to_school, total(is_open), func.count(), total(answered), total(lapsed)).group_by(
        invitations.c.to_school
    )
    sent = select(invitations.c.from_school, total(is_open)).group_by(invitations.c.from_school)
    figures: dict[str, dict[str, int]] = {}
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


def _open_for_answer(conn: Connection, invitation_id: str, now: datetime) -> Invitation | None:
    """The invitation if it can still be answered; None after marking an overdue one expired.
    Already answered: Conflict."""
    current = get(conn, invitation_id)
    if current.status != InvitationStatus.PENDING:
        raise Conflict(f"status: invitation {invitation_id!r} is already {current.status.value}")
    if current.is_open(now):
        return current
    _expire(conn, [invitation_id])
    return None


def _save_answer(conn: Connection, answered: Invitation, op: str) -> None:
    values = {k: v for k, v in _row(answered).items() if k != "id"}
    conn.execute(update(invitations).where(invitations.c.id == answered.id).values(values))
    changes.log(conn, "invitation", [(answered.id, op)])


def _expire(conn: Connection, ids: Sequence[str]) -> None:
    for chunk in chunks(ids):
        conn.execute(
            update(invitations).where(invitations.c.id.in_(chunk)).values(status=InvitationStatus.EXPIRED.value)
        )
    changes.log(conn, "invitation", [(iid, "expire") for iid in ids])


def _overdue(now: datetime) -> Any:
    return select(invitations.c.id).where(_is_overdue(now))


def _is_open(now: datetime) -> ColumnElement[bool]:
    """Pending and before its deadline at `now` (Invitation.is_open, as SQL)."""
    return _PENDING & (invitations.c.expires_at > now)


def _is_overdue(now: datetime) -> ColumnElement[bool]:
    """Pending past its deadline at `now`: expired, whether or not the sweep has marked it yet."""
    return _PENDING & (invitations.c.expires_at <= now)


def _row(invitation: Invitation) -> dict[str, Any]:
    row = invitation.model_dump()
    row["status"] = invitation.status.value
    for field in ("created_at", "expires_at", "answered_at"):
        if row[field] is not None:
            row[field] = as_utc(row[field])
    return row


def _from_row(row: Any) -> Invitation:
    values = dict(row._mapping)
    for field in ("created_at", "expires_at", "answered_at"):
        if values[field] is not None:
            values[field] = as_utc(values[field])
    return Invitation.model_validate(values)
