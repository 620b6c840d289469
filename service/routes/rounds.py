"""Matching rounds (staff): run one over a cohort, read it back, accept it; and cross-border
school groups for one school on one SDG theme."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from data.errors import NotFound
from matching.groups import GroupOptions, GroupResult, propose_groups
from service import rounds
from service.deps import Caller, Staff, State, errors
from service.models import RoundAccept, RoundAccepted, RoundCreate, RoundListItem, RoundOut, RoundPage
from service.routes.listing import decode_cursor, page

router = APIRouter(tags=["rounds"], responses=errors(401, 403, 422))

RoundIdPath = Annotated[str, Field(max_length=64)]


class RoundJobOut(BaseModel):
    """A round run in the background: queued, running (with its stage and progress), done (with
    the round) or failed (with why)."""

    id: str = Field(description="the job's id, which the stored round keeps")
    status: Literal["queued", "running", "done", "failed"]
    stage: str = Field(description="what the job is doing now")
    progress: float = Field(ge=0, le=1, description="rough fraction done")
    error: str | None = Field(None, description="why a failed job failed")
    created_at: datetime
    round: RoundOut | None = Field(None, description="the stored round, once done")


@router.post(
    "/v1/rounds",
    status_code=202,
    response_model=RoundJobOut,
    responses=errors(400, 503) | {202: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
def create_round(body: RoundCreate, who: Staff, state: State, response: Response) -> RoundJobOut:
    """Pair a whole cohort at once (exact maximum-score assignment within every school's free
    places), compared with greedy, and store the proposal. Thousands of schools take seconds to
    minutes, so this answers 202 at once with a job; GET /v1/rounds/{id} (the Location header)
    shows its progress and, when done, the round. Suggestions and edits go on meanwhile."""
    job = rounds.submit(state, body.cohort, body.options, created_by=who.key_id)
    response.headers["Location"] = f"/v1/rounds/{job.id}"
    return RoundJobOut(id=job.id, status="queued", stage=job.stage, progress=job.progress, created_at=job.created_at)


@router.get("/v1/rounds", response_model=RoundPage)
def list_rounds(
    _: Staff,
    state: State,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RoundPage:
    """Newest first, each with its summary figures (the full proposal is at /v1/rounds/{id})."""
    found = state.store.list_rounds(before=decode_cursor(cursor), limit=limit + 1)
    shown, next_cursor = page(found, limit, lambda r: r.id)
    return RoundPage(items=[RoundListItem.of(r) for r in shown], next_cursor=next_cursor)


@router.get("/v1/rounds/{round_id}", response_model=RoundJobOut, responses=errors(404))
def read_round(round_id: RoundIdPath, _: Staff, state: State) -> RoundJobOut:
    """A round job's status and progress, with the round once it is done."""
    try:
        stored = state.store.get_round(round_id)
    except NotFound:
        job = state.store.get_round_job(round_id)
        return RoundJobOut(
            id=job.id,
            status=job.status,  # type: ignore[arg-type]
            stage=job.stage,
            progress=job.progress,
            error=job.error,
            created_at=job.created_at,
        )
    return RoundJobOut(
        id=stored.id, status="done", stage="done", progress=1.0, created_at=stored.created_at, round=RoundOut.of(stored)
    )


@router.post("/v1/rounds/{round_id}/accept", response_model=RoundAccepted, responses=errors(400, 404, 409, 503))
def accept_round(round_id: RoundIdPath, who: Staff, state: State, body: RoundAccept | None = None) -> RoundAccepted:
    """Start every pair (but `exclude`) as a partnership, origin "suggested", in one transaction
    with the round's new status. Every pair is checked again first; if any is no longer possible
    (a school inactive or full, already partners) nothing is written and 409 names them."""
    body = body or RoundAccept()
    stored, started = rounds.accept_round(
        state, round_id, start_date=body.start_date, exclude=body.exclude, note=body.note, accepted_by=who.key_id
    )
    return RoundAccepted(round=RoundOut.of(state.store.get_round(stored.id)), partnerships=started)


@router.get("/v1/schools/{school_id}/groups", tags=["groups"], response_model=GroupResult, responses=errors(404, 503))
def school_groups(
    school_id: Annotated[str, Field(max_length=64)],
    who: Caller,
    state: State,
    sdg: Annotated[int, Query(ge=1, le=17, description="the SDG theme the group works on")],
    size: Annotated[int | None, Query(ge=3, le=5, description="exact group size; default 3 to 5")] = None,
    count: Annotated[int, Query(ge=1, le=20, description="how many distinct groups")] = 5,
) -> GroupResult:
    """Three to five schools in at least three countries, one of them Taiwanese, sharing an
    exchange language and school hours, around this school and theme. Staff, the portal, or the
    school itself."""
    who.require_school(school_id)
    options = GroupOptions(groups=count, **({"min_size": size, "max_size": size} if size else {}))
    with state.reading() as matcher:
        if school_id not in matcher.schools:
            raise NotFound("school", school_id)
        return propose_groups(matcher, school_id, sdg, options)
