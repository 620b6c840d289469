"""Matching rounds (staff): run one over a cohort, read it back, accept it; and cross-border
school groups for one school on one SDG theme."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from data.errors import NotFound
from data.schema import StoredRound
from matching.groups import GroupOptions, GroupResult, propose_groups
from service import rounds
from service.deps import Caller, Staff, State, errors
from service.models import (
    ROUND_PAIRS_DEFAULT,
    ROUND_PAIRS_MAX,
    RoundAccept,
    RoundAccepted,
    RoundCreate,
    RoundJobOut,
    RoundListItem,
    RoundOut,
    RoundPage,
)
from service.routes.listing import decode_cursor, page
from service.state import ServiceState

router = APIRouter(tags=["rounds"], responses=errors(401, 403, 422))

RoundIdPath = Annotated[str, Field(max_length=64)]


@router.post(
    "/v1/rounds",
    status_code=202,
    response_model=RoundJobOut,
    responses=errors(400) | {202: {"headers": {"Location": {"schema": {"type": "string"}}}}},
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
def read_round(
    round_id: RoundIdPath,
    _: Staff,
    state: State,
    offset: Annotated[int, Query(ge=0, description="matching pairs to skip")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=ROUND_PAIRS_MAX, description=f"pairs on the page (default {ROUND_PAIRS_DEFAULT})")
    ] = ROUND_PAIRS_DEFAULT,
    country: Annotated[
        str | None, Query(pattern="^[A-Z]{2}$", description="only pairs with a school in this country (ISO code)")
    ] = None,
    region: Annotated[
        str | None, Query(min_length=1, max_length=100, description="only pairs with a school in this region")
    ] = None,
) -> RoundJobOut:
    """A round job's status and progress; once done, the round's summary, comparison with greedy
    and one page of its pairs (`round.pairs`: offset, limit, total), filtered by a school's
    country or region. The unmatched schools are on the staff page and in the round's export."""
    try:
        stored = state.store.get_round(round_id, result=False)
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
    shown = _round_out(state, stored, offset=offset, limit=limit, country=country, region=region)
    return RoundJobOut(
        id=stored.id, status="done", stage="done", progress=1.0, created_at=stored.created_at, round=shown
    )


@router.post("/v1/rounds/{round_id}/accept", response_model=RoundAccepted, responses=errors(400, 404, 409))
def accept_round(round_id: RoundIdPath, who: Staff, state: State, body: RoundAccept | None = None) -> RoundAccepted:
    """Start every pair (but `exclude`) as a partnership, origin "suggested", in one transaction
    with the round's new status. Every pair is checked again first; if any is no longer possible
    (a school inactive or full, already partners) nothing is written and 409 names them. The
    round comes back with the first page of its pairs."""
    body = body or RoundAccept()
    stored, started = rounds.accept_round(
        state, round_id, start_date=body.start_date, exclude=body.exclude, note=body.note, accepted_by=who.key_id
    )
    return RoundAccepted(round=_round_out(state, stored, limit=ROUND_PAIRS_DEFAULT), partnerships=started)


def _round_out(
    state: ServiceState,
    stored: StoredRound,
    *,
    offset: int = 0,
    limit: int,
    country: str | None = None,
    region: str | None = None,
) -> RoundOut:
    """The round with one page of its pairs. Filtering looks schools up in the live index (in
    memory), so only a filtered read needs it ready."""
    result = rounds.stored_result(state.store, stored.id)
    if country or region:
        with state.reading() as matcher:
            pairs = rounds.pairs_page(
                result["pairs"], matcher.schools, country=country, region=region, offset=offset, limit=limit
            )
    else:
        pairs = rounds.pairs_page(result["pairs"], {}, offset=offset, limit=limit)
    return RoundOut.of(stored, result, pairs)


@router.get("/v1/schools/{school_id}/groups", tags=["groups"], response_model=GroupResult, responses=errors(404))
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
