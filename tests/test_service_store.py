"""The store's invitation and API-key tables, on SQLite and PostgreSQL: every step timestamped,
acceptance and its partnership written together, expiry lazy and swept, counts per school."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from data.errors import Conflict, NotFound
from data.schema import InvitationStatus, PartnershipOrigin, School, utcnow
from data.store import InvitationTally, Store
from data.tables import metadata
from service.auth import Role, authenticate, create_key, hash_key
from tests.conftest import connection

MakeSchool = Callable[..., School]
DAY = timedelta(days=1)


@pytest.fixture
def trio(store: Store, make_school: MakeSchool) -> tuple[str, str, str]:
    store.upsert_schools(
        [make_school(id="tw-inv1"), make_school(id="my-inv1", country="MY"), make_school(id="th-inv1", country="TH")]
    )
    return "tw-inv1", "my-inv1", "th-inv1"


def test_new_tables_match_the_migrations(store: Store) -> None:
    with connection(store) as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_accept_writes_the_answer_and_the_partnership_together(store: Store, trio: tuple[str, str, str]) -> None:
    tw, my, _ = trio
    now = utcnow()
    sent = store.create_invitation(tw, my, "Hello", expires_at=now + 14 * DAY, now=now)
    assert sent.status == InvitationStatus.PENDING and sent.created_at == now
    with pytest.raises(Conflict, match="still pending"):
        store.create_invitation(my, tw, None, expires_at=now + DAY)  # either direction counts

    accepted, partnership = store.accept_invitation(sent.id, modes=["virtual"], sdgs=[4], now=now + DAY)
    assert accepted.status == InvitationStatus.ACCEPTED and accepted.answered_at == now + DAY
    assert accepted.partnership_id == partnership.id
    assert partnership.origin == PartnershipOrigin.SUGGESTED and partnership.active
    assert {partnership.school_a, partnership.school_b} == {tw, my} and partnership.modes == ["virtual"]
    assert store.get_invitation(sent.id) == accepted
    assert [p.id for p in store.list_partnerships(school_id=tw)] == [partnership.id]
    with pytest.raises(Conflict, match="already accepted"):
        store.accept_invitation(sent.id)
    ops = [(kind, op) for _, kind, _, op in store.all_changes_since(0) if kind != "school"]
    assert ops == [("invitation", "create"), ("partnership", "add"), ("invitation", "accept")]


def test_a_failed_acceptance_writes_nothing(store: Store, make_school: MakeSchool) -> None:
    """Two schools that have since both become Taiwanese cannot partner: neither the partnership
    nor the answer is written, and the invitation stays open."""
    store.upsert_schools([make_school(id="tw-f1"), make_school(id="my-f1", country="MY")])
    sent = store.create_invitation("tw-f1", "my-f1", None, expires_at=utcnow() + DAY)
    store.update_school("my-f1", {"country": "TW", "region": "TW-TPE", "target_countries": ["MY"]})
    with pytest.raises(ValueError, match="cross a border"):
        store.accept_invitation(sent.id)
    assert store.get_invitation(sent.id).status == InvitationStatus.PENDING
    assert len(store.list_partnerships()) == 0


def test_expiry_is_lazy_and_swept(store: Store, trio: tuple[str, str, str]) -> None:
    tw, my, th = trio
    then = utcnow() - 20 * DAY
    overdue = store.create_invitation(tw, my, None, expires_at=then + 14 * DAY, now=then)
    fresh = store.create_invitation(tw, th, None, expires_at=utcnow() + DAY)
    tallies = store.invitation_tallies()
    assert tallies[my] == InvitationTally(open_sent=0, open_received=0, received=1, answered=0, expired=1)
    assert tallies[tw].open == 1 and tallies[th].open_received == 1, "an overdue invitation holds no place"

    with pytest.raises(Conflict, match="expired"):
        store.decline_invitation(overdue.id, "too late")
    assert store.get_invitation(overdue.id).status == InvitationStatus.EXPIRED, "marked, though the answer failed"
    assert store.expire_invitations() == 0
    assert store.get_invitation(fresh.id).status == InvitationStatus.PENDING
    assert store.expire_invitations(now=utcnow() + 2 * DAY) == 1
    assert [i.id for i in store.list_invitations(status="expired")] == [overdue.id, fresh.id]
    # The pair may try again once nothing is open between them.
    store.create_invitation(my, tw, None, expires_at=utcnow() + DAY)


def test_decline_and_listing(store: Store, trio: tuple[str, str, str]) -> None:
    tw, my, th = trio
    first = store.create_invitation(tw, my, None, expires_at=utcnow() + DAY)
    second = store.create_invitation(th, tw, None, expires_at=utcnow() + DAY)
    declined = store.decline_invitation(first.id, "No room this year")
    assert declined.status == InvitationStatus.DECLINED and declined.decline_reason == "No room this year"
    assert [i.id for i in store.list_invitations(school_id=tw)] == [first.id, second.id]
    assert [i.id for i in store.list_invitations(school_id=tw, direction="sent")] == [first.id]
    assert [i.id for i in store.list_invitations(school_id=tw, direction="received")] == [second.id]
    assert [i.id for i in store.list_invitations(after=first.id)] == [second.id]
    assert store.invitation_tallies()[my] == InvitationTally(received=1, answered=1)
    with pytest.raises(ValueError, match="status: 'maybe'"):
        store.list_invitations(status="maybe")
    with pytest.raises(NotFound):
        store.decline_invitation("inv-none")
    with pytest.raises(NotFound, match="nowhere"):
        store.create_invitation(tw, "nowhere", None, expires_at=utcnow() + DAY)


def test_clear_removes_invitations_but_keeps_keys(store: Store, trio: tuple[str, str, str]) -> None:
    tw, my, _ = trio
    store.create_invitation(tw, my, None, expires_at=utcnow() + DAY)
    made = create_key(store, Role.STAFF)
    store.clear()
    assert store.list_invitations() == []
    assert authenticate(store, made.key) is not None


def test_api_keys_are_stored_hashed_and_revocable(store: Store, trio: tuple[str, str, str]) -> None:
    tw, _, _ = trio
    made = create_key(store, Role.SCHOOL, school_id=tw, name="tw office")
    assert made.key.startswith("pm_") and len(made.key) > 40
    with connection(store) as conn:
        stored = conn.exec_driver_sql("SELECT * FROM api_keys").all()
    assert made.key not in repr(stored) and hash_key(made.key) in repr(stored)
    caller = authenticate(store, made.key)
    assert caller is not None and caller.role == Role.SCHOOL and caller.school_id == tw
    assert authenticate(store, made.key + "x") is None
    assert [k.prefix for k in store.list_api_keys()] == [made.key[:10]]

    store.revoke_api_key(made.record.id)
    assert authenticate(store, made.key) is None
    with pytest.raises(Conflict, match="already revoked"):
        store.revoke_api_key(made.record.id)
    with pytest.raises(ValueError, match="school: a school key needs"):
        create_key(store, Role.SCHOOL)
    with pytest.raises(ValueError, match="role: 'admin'"):
        create_key(store, "admin")
    with pytest.raises(NotFound, match="nowhere"):
        create_key(store, Role.SCHOOL, school_id="nowhere")
