"""The rounds and round_jobs tables: proposed matching rounds (their result is JSON, megabytes
for a big cohort) and the background jobs that compute them.

Functions take a connection; :class:`data.store.Store` opens the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, cast, insert, select, update

from data.errors import Conflict, NotFound
from data.schema import Partnership, RoundStatus, StoredRound, utcnow
from data.store import partnerships
from data.store.engine import JsonText, as_utc, dumps
from data.tables import round_jobs, rounds

_JSON_COLUMNS = ("options", "summary", "result")


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


def row(stored: StoredRound) -> dict[str, Any]:
    """The round's row with its JSON serialised: build it before the write transaction opens."""
    values = stored.model_dump(mode="json")
    values["created_at"] = as_utc(stored.created_at)
    values["accepted_at"] = as_utc(stored.accepted_at) if stored.accepted_at else None
    for column in _JSON_COLUMNS:
        values[column] = JsonText(dumps(values[column]))
    return values


def create(conn: Connection, values: dict[str, Any]) -> None:
    """Insert a round's :func:`row`."""
    conn.execute(insert(rounds), [values])


def get(conn: Connection, round_id: str, *, result: bool = True) -> StoredRound:
    """The round; without its (possibly megabytes of) result when `result` is False."""
    columns = rounds.c if result else [c for c in rounds.c if c.name != "result"]
    found = conn.execute(select(*columns).where(rounds.c.id == round_id)).first()
    if found is None:
        raise NotFound("round", round_id)
    return _from_row(found._mapping)


def result_text(conn: Connection, round_id: str) -> str:
    """The round's result as its stored JSON text, unparsed: the reader parses it once and keeps
    it (a stored result never changes), rather than on every read of the round."""
    found = conn.execute(select(cast(rounds.c.result, Text)).where(rounds.c.id == round_id)).scalar_one_or_none()
    if found is None:
        raise NotFound("round", round_id)
    return str(found)


def list_(conn: Connection, *, before: str | None, limit: int) -> list[StoredRound]:
    """Rounds newest first, without their (possibly large) results: result is None."""
    if limit < 1:
        raise ValueError(f"limit: must be at least 1, got {limit}")
    columns = [c for c in rounds.c if c.name != "result"]
    query = select(*columns).order_by(rounds.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(rounds.c.id < before)
    return [_from_row(found._mapping) for found in conn.execute(query)]


def accept(
    conn: Connection, round_id: str, new: Sequence[Partnership], *, accepted_by: str | None, now: datetime
) -> tuple[StoredRound, list[Partnership]]:
    """Start the round's partnerships and mark it accepted. Refused (Conflict) when the round was
    accepted already, or when a pair's school is gone or inactive or the two are partners by now
    (re-read here under the write lock, so another replica's write in between cannot slip past)."""
    current = get(conn, round_id, result=False)
    if current.status != RoundStatus.PROPOSED:
        raise Conflict(f"status: round {round_id!r} was already accepted on {current.accepted_at:%Y-%m-%d}")
    pairs = [p.pair for p in new]
    stored_state = partnerships.stored_for(conn, pairs)
    known, by_key = stored_state
    partnered = {(a, b) for (a, b, _), p in by_key.items() if p.end_date is None}
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
    stored, _ = partnerships.write(conn, list(new), stored_state)
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


def create_job(conn: Connection, job: RoundJob) -> RoundJob:
    conn.execute(insert(round_jobs), [job.__dict__])
    return job


def update_job(conn: Connection, job_id: str, *, status: str, stage: str, progress: float, error: str | None) -> None:
    done = conn.execute(
        update(round_jobs)
        .where(round_jobs.c.id == job_id)
        .values(status=status, stage=stage, progress=progress, error=error, updated_at=utcnow())
    )
    if done.rowcount == 0:
        raise NotFound("round job", job_id)


def get_job(conn: Connection, job_id: str) -> RoundJob:
    found = conn.execute(select(round_jobs).where(round_jobs.c.id == job_id)).first()
    if found is None:
        raise NotFound("round", job_id)
    values = dict(found._mapping)
    values["created_at"] = as_utc(values["created_at"])
    values["updated_at"] = as_utc(values["updated_at"])
    return RoundJob(**values)


def fail_unfinished_jobs(conn: Connection, reason: str) -> int:
    """Mark queued and running jobs failed (their process is gone); returns how many."""
    return conn.execute(
        update(round_jobs)
        .where(round_jobs.c.status.in_(("queued", "running")))
        .values(status="failed", error=reason, updated_at=utcnow())
    ).rowcount


def _from_row(values: Any) -> StoredRound:
    data = dict(values)
    data["created_at"] = as_utc(data["created_at"])
    if data.get("accepted_at") is not None:
        data["accepted_at"] = as_utc(data["accepted_at"])
    data["partnership_ids"] = data.get("partnership_ids") or []
    return StoredRound.model_validate(data)
