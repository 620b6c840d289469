"""Invitations: send, list, read, accept, decline. Expiry is lazy: reads mark overdue ones first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from data.schema import InvitationStatus
from service import invitations
from service.auth import Forbidden, Role
from service.deps import Caller, State, errors, links
from service.models import AcceptedOut, DeclineRequest, InvitationCreate, InvitationOut, InvitationPage
from service.routes.listing import QueryInt, decode_cursor, page

router = APIRouter(prefix="/v1/invitations", tags=["invitations"], responses=errors(401, 403, 422))

InvitationIdPath = Annotated[str, Field(max_length=64)]


_INVITATION_LINKS = links(
    201,
    ReadInvitation=("getInvitation", "invitation_id"),
    AcceptInvitation=("acceptInvitation", "invitation_id"),
    DeclineInvitation=("declineInvitation", "invitation_id"),
)


@router.post("", status_code=201, response_model=InvitationOut, responses=errors(400, 404, 409) | _INVITATION_LINKS)
def send(body: InvitationCreate, who: Caller, state: State) -> InvitationOut:
    """Invite a school; the pair must pass the hard rules now (409/422 name the rules broken).
    A school key invites only on its own behalf."""
    who.require_school(body.from_school, field="from_school")
    invitation = invitations.invite(state, body.from_school, body.to_school, body.message)
    return InvitationOut.of(invitation, invitations.visible_schools(state, [invitation]))


@router.get("", response_model=InvitationPage)
def list_invitations(
    who: Caller,
    state: State,
    school_id: Annotated[str | None, Query(max_length=64, description="sent or received by this school")] = None,
    direction: Annotated[Literal["sent", "received"] | None, Query(description="with school_id")] = None,
    status: Annotated[InvitationStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[QueryInt, Query(ge=1, le=500)] = 50,
) -> InvitationPage:
    """Oldest first. A school key lists its own invitations only."""
    if who.role == Role.SCHOOL:
        school_id = school_id or who.school_id
    if school_id is not None:
        who.require_school(school_id)
    state.store.expire_invitations()
    found = state.store.list_invitations(
        school_id=school_id, direction=direction, status=status, after=decode_cursor(cursor), limit=limit + 1
    )
    shown, next_cursor = page(found, limit, lambda i: i.id)
    schools = invitations.visible_schools(state, shown)
    return InvitationPage(items=[InvitationOut.of(i, schools) for i in shown], next_cursor=next_cursor)


@router.get("/{invitation_id}", response_model=InvitationOut, responses=errors(404))
def read(invitation_id: InvitationIdPath, who: Caller, state: State) -> InvitationOut:
    invitation = invitations.existing(state, invitation_id)
    if who.role == Role.SCHOOL and who.school_id not in (invitation.from_school, invitation.to_school):
        raise Forbidden(f"invitation_id: school {who.school_id!r} is neither side of invitation {invitation_id!r}")
    return InvitationOut.of(invitation, invitations.visible_schools(state, [invitation]))


@router.post("/{invitation_id}/accept", response_model=AcceptedOut, responses=errors(404, 409))
def accept(invitation_id: InvitationIdPath, who: Caller, state: State) -> AcceptedOut:
    """Start the partnership. Only the invited school (or staff / the portal for it) accepts."""
    invitation = invitations.existing(state, invitation_id)
    who.require_school(invitation.to_school, field="invitation_id")
    accepted, partnership = invitations.accept(state, invitation_id)
    return AcceptedOut(
        invitation=InvitationOut.of(accepted, invitations.visible_schools(state, [accepted])), partnership=partnership
    )


@router.post("/{invitation_id}/decline", response_model=InvitationOut, responses=errors(400, 404, 409))
def decline(
    invitation_id: InvitationIdPath, who: Caller, state: State, body: DeclineRequest | None = None
) -> InvitationOut:
    invitation = invitations.existing(state, invitation_id)
    who.require_school(invitation.to_school, field="invitation_id")
    declined = invitations.decline(state, invitation_id, body.reason if body else None)
    return InvitationOut.of(declined, invitations.visible_schools(state, [declined]))
