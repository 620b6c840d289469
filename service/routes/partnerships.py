"""Partnerships: staff record existing ones and end them; anyone may list (a school key its own)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from data.errors import Conflict
from data.schema import Partnership
from service.auth import Role
from service.deps import Caller, Staff, State, errors, links
from service.invitations import full_schools
from service.models import EndRequest, PartnershipCreate
from service.routes.listing import ACTIVE, Active
from service.state import ServiceState

router = APIRouter(prefix="/v1/partnerships", tags=["partnerships"], responses=errors(401, 403, 422))


@router.post(
    "",
    status_code=201,
    response_model=Partnership,
    responses=errors(400, 409) | links(201, EndPartnership=("endPartnership", "partnership_id")),
)
def create(body: PartnershipCreate, who: Staff, state: State) -> Partnership:  # type: ignore[valid-type]
    """Record a partnership (origin "existing" unless said otherwise). The same pair and start
    date again updates the stored one. A new active partnership needs a free place at both
    schools (409 names the full one) unless override_capacity is true, which is recorded."""
    fields = body.model_dump(exclude={"override_capacity"})
    partnership = Partnership.model_validate(fields)
    with state.changing() as store:
        if partnership.active:
            full = _full(state, partnership)
            if full and not body.override_capacity:
                raise Conflict(
                    f"{full[0][0]}: {' and '.join(i for _, i in full)} at capacity; "
                    "send override_capacity: true to record the partnership anyway"
                )
            if full:
                partnership = partnership.model_copy(update={"capacity_override": who.key_id})
        (stored,) = store.add_partnerships([partnership])
    return stored


def _full(state: ServiceState, partnership: Partnership) -> list[tuple[str, str]]:
    """(field, id) of each school with no free place for a new partnership with the other; none
    when the two are partners already (the write updates that partnership)."""
    with state.reading() as matcher:
        a, b = (matcher.schools.get(i) for i in (partnership.school_a, partnership.school_b))
        if a is None or b is None or b.id in matcher.context().partners(a.id):
            return []  # the store names an unknown school
        full = set(full_schools(matcher, a, b))
    return [(field, i) for field, i in (("school_a", a.id), ("school_b", b.id)) if i in full]


@router.post("/{partnership_id}/end", response_model=Partnership, responses=errors(400, 404, 409))
def end(
    partnership_id: Annotated[str, Field(max_length=64)], _: Staff, state: State, body: EndRequest | None = None
) -> Partnership:
    end_date = (body.end_date if body else None) or date.today()
    with state.changing() as store:
        return store.end_partnership(partnership_id, end_date)


@router.get("", response_model=list[Partnership])
def list_partnerships(
    who: Caller,
    state: State,
    school_id: Annotated[str | None, Query(max_length=64)] = None,
    active: Annotated[Active, Query()] = "all",
) -> list[Partnership]:
    """Oldest start first."""
    if who.role == Role.SCHOOL:
        school_id = school_id or who.school_id
    if school_id is not None:
        who.require_school(school_id)
    return state.store.list_partnerships(school_id=school_id, active=ACTIVE[active])
