"""Partnerships: staff record existing ones and end them; anyone may list (a school key its own)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from data.schema import Partnership
from service.auth import Role
from service.deps import Caller, Staff, State, errors
from service.models import EndRequest, PartnershipCreate
from service.routes.listing import ACTIVE, Active

router = APIRouter(prefix="/v1/partnerships", tags=["partnerships"], responses=errors(401, 403, 422))


@router.post("", status_code=201, response_model=Partnership, responses=errors(400, 409))
def create(body: PartnershipCreate, _: Staff, state: State) -> Partnership:
    """Record a partnership (origin "existing" unless said otherwise). The same pair and start
    date again updates the stored one."""
    with state.changing() as store:
        (stored,) = store.add_partnerships([Partnership.model_validate(body.model_dump())])
    return stored


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
