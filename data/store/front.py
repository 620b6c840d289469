"""`Store`: the one object callers hold. Each method opens the right transaction (a read, or a
write holding the database's write lock) and calls the table module's functions in it; big
values are prepared before a write opens."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Unpack

from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from data.schema import Invitation, Partnership, School, StoredRound, utcnow
from data.settings import StorageSettings
from data.store import changes, engine, exposure, invitations, keys, partnerships, rounds, schools, stats
from data.store.changes import Change
from data.store.engine import as_utc
from data.store.invitations import InvitationTally
from data.store.keys import ApiKeyRecord
from data.store.rounds import RoundJob
from data.store.schools import SchoolFilters, UpsertCounts


class Store:
    """All reads and writes of schools, partnerships, invitations, keys, rounds, the change log,
    exposure counts and meta values."""

    def __init__(self, url: str | None = None) -> None:
        self.url = engine.normalize_url(url or StorageSettings().url)
        self._engine = engine.open_engine(self.url)
        try:
            engine.migrate(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: StorageSettings | None = None) -> Store:
        return cls((settings or StorageSettings()).url)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"

    def _write(self) -> AbstractContextManager[Connection]:
        return engine.write(self._engine)

    def _read(self) -> AbstractContextManager[Connection]:
        return engine.read(self._engine)

    # ----------------------------------------------------------------- schools

    def get_school(self, school_id: str) -> School:
        with self._read() as conn:
            return schools.get(conn, school_id)

    def get_schools(self, ids: Iterable[str]) -> dict[str, School]:
        """The schools among ids that exist; unknown ids are simply absent from the result."""
        with self._read() as conn:
            return schools.get_many(conn, ids)

    def list_schools(
        self, *, after: str | None = None, limit: int = 100, **filters: Unpack[SchoolFilters]
    ) -> list[School]:
        """Schools matching every given filter (see :class:`SchoolFilters`), ordered by id.
        Page on with after=<last id of the previous page>."""
        with self._read() as conn:
            return schools.list_(conn, filters, after=after, limit=limit)

    def count_schools(self, **filters: Unpack[SchoolFilters]) -> int:
        """How many schools match every given filter (see :class:`SchoolFilters`)."""
        with self._read() as conn:
            return schools.count(conn, filters)

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

    def create_school(self, school: School) -> School:
        with self._write() as conn:
            return schools.create(conn, school)

    def update_school(self, school_id: str, changes: dict[str, Any]) -> School:
        """Apply changes and re-validate the whole profile. Nothing is written (and updated_at
        stays) when the profile says the same as before."""
        schools.check_update(school_id, changes)
        with self._write() as conn:
            return schools.update_(conn, school_id, changes)

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
        schools.check_unique(batch)
        with self._write() as conn:
            return schools.upsert(conn, batch, progress)

    def clear(self) -> None:
        """Delete every school, partnership and invitation (meta values and API keys stay). The
        change log records a "delete" for each, so whatever was built from them knows to drop them."""
        with self._write() as conn:
            schools.clear(conn)

    # ----------------------------------------------------------------- change log

    def latest_change_seq(self) -> int:
        """The newest change's seq (every kind shares one sequence); 0 if none."""
        with self._read() as conn:
            return changes.latest_seq(conn)

    def all_changes_since(self, seq: int) -> list[Change]:
        """Changes of every kind after seq as (seq, kind, entity_id, op), oldest first, read in one
        snapshot: a follower that applies them and keeps the last seq misses nothing across kinds.
        kind is "school", "partnership" or "invitation"; op is in SCHOOL_OPS, PARTNERSHIP_OPS or
        INVITATION_OPS."""
        with self._read() as conn:
            return changes.since(conn, seq)

    # ----------------------------------------------------------------- partnerships

    def add_partnerships(self, new: Iterable[Partnership]) -> list[Partnership]:
        """Add partnerships in one transaction, or none if any is bad (ImportRejected lists every
        bad one by its 1-based position). The same pair and start date again updates the stored
        one. Returned with ids and the pair in canonical order (school_a < school_b)."""
        with self._write() as conn:
            stored, _ = partnerships.write(conn, list(new))
        return stored

    def upsert_partnerships(self, new: Iterable[Partnership]) -> UpsertCounts:
        """add_partnerships, reporting what was created, updated or already so."""
        with self._write() as conn:
            _, counts = partnerships.write(conn, list(new))
        return counts

    def end_partnership(self, partnership_id: str, end_date: date) -> Partnership:
        with self._write() as conn:
            return partnerships.end(conn, partnership_id, end_date)

    def get_partnership(self, partnership_id: str) -> Partnership:
        with self._read() as conn:
            return partnerships.get(conn, partnership_id)

    def list_partnerships(self, *, school_id: str | None = None, active: bool | None = None) -> list[Partnership]:
        """Partnerships (of one school, if given), oldest start first."""
        with self._read() as conn:
            return partnerships.list_(conn, school_id=school_id, active=active)

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
        now = as_utc(now or utcnow())
        invitation = Invitation(
            id=_sortable_id("inv", now),
            from_school=from_school,
            to_school=to_school,
            message=message or None,
            created_at=now,
            expires_at=as_utc(expires_at),
        )
        with self._write() as conn:
            return invitations.create(conn, invitation)

    def get_invitation(self, invitation_id: str) -> Invitation:
        with self._read() as conn:
            return invitations.get(conn, invitation_id)

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
        with self._read() as conn:
            return invitations.list_(
                conn, school_id=school_id, direction=direction, status=status, after=after, limit=limit
            )

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
        now = as_utc(now or utcnow())
        with self._write() as conn:
            answered = invitations.accept(conn, invitation_id, modes=modes, sdgs=sdgs, now=now)
        if answered is None:
            raise invitations.expired_conflict(self.get_invitation(invitation_id))
        return answered

    def decline_invitation(
        self, invitation_id: str, reason: str | None = None, *, now: datetime | None = None
    ) -> Invitation:
        now = as_utc(now or utcnow())
        with self._write() as conn:
            declined = invitations.decline(conn, invitation_id, reason, now=now)
        if declined is None:
            raise invitations.expired_conflict(self.get_invitation(invitation_id))
        return declined

    def expire_invitations(self, now: datetime | None = None) -> int:
        """Mark every pending invitation past its deadline as expired; returns how many. Takes the
        write lock only when there is something to expire, so calling it on each read is cheap."""
        now = as_utc(now or utcnow())
        with self._read() as conn:
            if not invitations.any_overdue(conn, now):
                return 0
        with self._write() as conn:
            return invitations.expire_overdue(conn, now)

    def invitation_tallies(self, now: datetime | None = None) -> dict[str, InvitationTally]:
        """Every school's invitation figures at `now`; an overdue pending invitation counts as
        expired whether or not the sweep has marked it yet."""
        with self._read() as conn:
            return invitations.tallies(conn, as_utc(now or utcnow()))

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
        with self._write() as conn:
            return keys.create(conn, record, key_hash)

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not; None when no key has it."""
        with self._read() as conn:
            return keys.find(conn, key_hash)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        with self._read() as conn:
            return keys.list_(conn)

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        with self._write() as conn:
            return keys.revoke(conn, key_id)

    # ----------------------------------------------------------------- matching rounds

    @staticmethod
    def prepare_round(
        *,
        options: dict[str, Any],
        summary: dict[str, Any],
        result: dict[str, Any],
        created_by: str | None = None,
        now: datetime | None = None,
        round_id: str | None = None,
    ) -> tuple[StoredRound, dict[str, Any]]:
        """A proposed round and its row for :meth:`insert_round`, JSON serialised already: seconds
        of CPU for a big round, spent with no lock held and in whichever process solved it, while
        the write itself can be left to a process that runs at full priority. Ids sort by
        creation time, so newest first is id descending; a round run as a job is given its job's id."""
        now = as_utc(now or utcnow())
        stored = StoredRound(
            id=round_id or _sortable_id("round", now),
            created_at=now,
            created_by=created_by,
            options=options,
            summary=summary,
            result=result,
        )
        return stored, rounds.row(stored)

    def insert_round(self, row: dict[str, Any]) -> None:
        """Write a :meth:`prepare_round` row: the write lock is held only while its bytes are written."""
        with self._write() as conn:
            rounds.create(conn, row)

    def get_round(self, round_id: str, *, result: bool = True) -> StoredRound:
        """The round; result=False leaves out its result (None), megabytes for a big cohort."""
        with self._read() as conn:
            return rounds.get(conn, round_id, result=result)

    def get_round_result_text(self, round_id: str) -> str:
        """The round's result as stored JSON text (a result never changes once stored)."""
        with self._read() as conn:
            return rounds.result_text(conn, round_id)

    def list_rounds(self, *, before: str | None = None, limit: int = 50) -> list[StoredRound]:
        """Rounds newest first, without their (possibly large) results: result is None. Page on
        with before=<last id of the previous page>."""
        with self._read() as conn:
            return rounds.list_(conn, before=before, limit=limit)

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
        rules first; these are re-read here under the write lock). The accepted round comes back
        without its result (None)."""
        with self._write() as conn:
            return rounds.accept(conn, round_id, new, accepted_by=accepted_by, now=as_utc(now or utcnow()))

    def create_round_job(self, *, created_by: str | None = None, now: datetime | None = None) -> RoundJob:
        """A queued round job. Its id sorts by creation time like a round's, and becomes the round's."""
        now = as_utc(now or utcnow())
        job = RoundJob(
            id=_sortable_id("round", now),
            created_at=now,
            created_by=created_by,
            status="queued",
            stage="queued",
            progress=0.0,
            error=None,
            updated_at=now,
        )
        with self._write() as conn:
            return rounds.create_job(conn, job)

    def update_round_job(
        self, job_id: str, *, status: str, stage: str, progress: float, error: str | None = None
    ) -> None:
        with self._write() as conn:
            rounds.update_job(conn, job_id, status=status, stage=stage, progress=progress, error=error)

    def get_round_job(self, job_id: str) -> RoundJob:
        with self._read() as conn:
            return rounds.get_job(conn, job_id)

    def fail_unfinished_round_jobs(self, reason: str) -> int:
        """Mark queued and running jobs failed (their process is gone); returns how many."""
        with self._write() as conn:
            return rounds.fail_unfinished_jobs(conn, reason)

    # ----------------------------------------------------------------- exposure

    def add_exposure(self, shown: Mapping[str, tuple[str, float]], *, now: float, half_life: float) -> None:
        """Add appearances (school id -> (side, decayed count as of `now`, a unix time)) to the
        shared counts, in one transaction with every other writer. `half_life` in seconds."""
        if not shown:
            return
        with self._write() as conn:
            exposure.add(conn, shown, now=now, half_life=half_life)

    def exposure_changes(
        self, *, since: int, seen_origin: float | None, now: float, half_life: float
    ) -> exposure.ExposureChanges:
        """Every replica's appearances per school written after version `since` (every school's
        when the weights' origin is no longer `seen_origin`), decayed to `now`."""
        with self._read() as conn:
            return exposure.changed(conn, since=since, seen_origin=seen_origin, now=now, half_life=half_life)

    # ----------------------------------------------------------------- meta and stats

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._read() as conn:
            value = stats.get_meta(conn, key)
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            stats.set_meta(conn, key, value)

    def stats(self) -> dict[str, Any]:
        """Counts for `partnermatch stats`; the breakdowns are over active schools and partnerships."""
        with self._read() as conn:
            return stats.summary(conn)


_CREATED = itertools.count()
"""This process's creation order: it breaks ties between ids made in the same millisecond."""


def _sortable_id(prefix: str, now: datetime) -> str:
    """An id that sorts by creation time (milliseconds, fixed-width hex), then by this process's
    creation order, and is unique with a random tail, e.g. round-018f3a2b4c5d-00002a9e1f2a: newest
    first is id descending, oldest first ascending, also for two made in one millisecond."""
    return f"{prefix}-{int(now.timestamp() * 1000):012x}-{next(_CREATED) % 16**6:06x}{secrets.token_hex(3)}"
