"""Suggestions for a stored school, or for a profile that is not stored.

No `from __future__ import annotations` here: the routes are made inside a function, and FastAPI
must resolve their local annotations (K, AdHocRequest) when the routes are created."""

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field, create_model
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from data.errors import NotFound
from data.schema import CountryCode, School
from data.taxonomies import ExchangeMode, Level
from matching.constraints import SuggestionFilters
from matching.engine import Matcher
from matching.reasons import Reason
from matching.results import Elimination, SuggestionResult
from matching.settings import RequestOverrides
from service.deps import Caller, MetricsDep, StaffOrPortal, State, errors, metrics_of, state_of
from service.models import AdHocSuggestionRequest, SuggestionsOut, card_fields, strict_body
from service.routes.listing import QueryBool, QueryInt

# The id an ad-hoc profile is matched under; the index never holds it.
AD_HOC_ID = "adhoc:profile"


async def filter_params(
    country: Annotated[list[CountryCode] | None, Query(description="partner in one of these countries")] = None,
    region: Annotated[list[str] | None, Query(description="partner's region, e.g. TW-TPE")] = None,
    sdg: Annotated[
        list[Annotated[QueryInt, Field(ge=1, le=17)]] | None, Query(description="shares one of these")
    ] = None,
    mode: Annotated[list[ExchangeMode] | None, Query(description="the pair can use one of these modes")] = None,
    level: Annotated[list[Level] | None, Query(description="partner teaches one of these levels")] = None,
    new_southbound_only: Annotated[QueryBool, Query(description="partner in a New Southbound country")] = False,
    remote_only: Annotated[QueryBool, Query(description="partner is a remote school")] = False,
) -> SuggestionFilters:
    return SuggestionFilters(
        countries=country or [],
        regions=region or [],
        sdgs=sdg or [],
        modes=mode or [],
        levels=level or [],
        new_southbound_only=new_southbound_only,
        remote_only=remote_only,
    )


# Models written as their fields in order: none has aliases, serializers or computed fields (a
# test holds the written JSON to pydantic's, byte for byte). Anything else goes through pydantic.
_PLAIN_MODELS = (Reason, Elimination)
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS


def _jsonable(value: Any) -> Any:
    return value.__dict__ if type(value) in _PLAIN_MODELS else to_jsonable_python(value)


_CARDS: dict[str, tuple[School, orjson.Fragment]] = {}
"""Each suggested school's card as written JSON, kept with the very profile it was written from:
a profile edit makes a new School object, so a card is never older than the profile the index
holds. At most one entry a school id (the world's size)."""


def _card(school: School) -> orjson.Fragment:
    """The school's card, written once per profile object (the same bytes card_fields gives)."""
    found = _CARDS.get(school.id)
    if found is not None and found[0] is school:
        return found[1]
    card = orjson.Fragment(orjson.dumps(card_fields(school), default=_jsonable, option=_ORJSON_OPTIONS))
    _CARDS[school.id] = (school, card)
    return card


_REASONS: dict[int, tuple[Reason, orjson.Fragment]] = {}
"""Reasons as written JSON by object: matching.explain shares one Reason object among every list
that gives it (frozen), so most of a list's reasons were written before. The entry keeps its
reason alive, so its id is not reused while cached. Emptied when full: the profile similarity
reason is new per pair and would fill it."""
_REASONS_KEPT = 20_000


def _reason(reason: Reason) -> orjson.Fragment:
    """A reason written once per reason object (the same bytes as its fields written in order)."""
    found = _REASONS.get(id(reason))
    if found is not None and found[0] is reason:
        return found[1]
    written = orjson.Fragment(orjson.dumps(reason.__dict__, default=_jsonable, option=_ORJSON_OPTIONS))
    if len(_REASONS) >= _REASONS_KEPT:
        _REASONS.clear()
    _REASONS[id(reason)] = (reason, written)
    return written


def suggestions_json(result: SuggestionResult, matcher: Matcher) -> Response:
    """The result with each suggested school's public card (never its contact details), written
    as SuggestionsOut would be, by orjson from the models' fields: building SuggestionsOut and
    having pydantic write it took a sixth of a suggestion request's server CPU in the load test,
    its ~90 reasons' free-form ``data`` above all. The routes keep ``response_model`` for the
    schema."""
    body = dict(result.__dict__)
    body["suggestions"] = [
        s.__dict__ | {"reasons": [_reason(r) for r in s.reasons], "school": _card(matcher.schools[s.school_id])}
        for s in result.suggestions
    ]
    return Response(orjson.dumps(body, default=_jsonable, option=_ORJSON_OPTIONS), media_type="application/json")


def suggestions_router(max_k: int) -> APIRouter:
    """Routes whose k is bounded by the service's max_k, in the schema as well as in the check."""
    router = APIRouter(tags=["suggestions"], responses=errors(401, 403, 422))
    K = Annotated[QueryInt, Query(ge=1, le=max_k, description=f"how many suggestions, 1-{max_k}")]
    AdHocRequest = strict_body(
        create_model(
            "AdHocSuggestionRequest",
            __base__=AdHocSuggestionRequest,
            k=(int, Field(10, ge=1, le=max_k, description=f"how many suggestions, 1-{max_k}")),
        )
    )

    @router.get("/v1/schools/{school_id}/suggestions", response_model=SuggestionsOut, responses=errors(404))
    async def school_suggestions(
        school_id: Annotated[str, Field(max_length=64)],
        who: Caller,
        request: Request,
        filters: Annotated[SuggestionFilters, Depends(filter_params)],
        k: K = 10,
        diversity: Annotated[QueryBool | None, Query(description="MMR re-ranking on/off (default: settings)")] = None,
        wishes: Annotated[
            Literal["hard", "soft"] | None,
            Query(
                description="hard: at least half the list from the school's wished countries when any is eligible; "
                "soft: the wished country is one fit component only (default: settings)"
            ),
        ] = None,
    ) -> Response:
        """The k best partners for a school, with reasons, from both schools' points of view."""
        who.require_school(school_id)
        state, metrics = state_of(request), metrics_of(request)
        overrides = RequestOverrides(diversity=diversity, wishes=wishes)

        def answer() -> Response:
            with metrics.suggestion_latency.labels("stored").time(), state.reading() as matcher:
                if school_id not in matcher.schools:
                    raise NotFound("school", school_id)
                result = matcher.suggest(school_id, k, filters=filters, overrides=overrides)
                matcher.record_shown(result)
                return suggestions_json(result, matcher)

        # An indexed school is answered on the event loop: the work reads memory only and holds
        # the GIL throughout, so a worker thread would add two hand-offs and make the loop wait
        # for the GIL before it could read or answer the other connections (under load that wait,
        # not the work, made the tail). A school the index does not hold (inactive) needs its
        # vector from the embedding cache or the model: the thread pool, then.
        return answer() if state.indexed(school_id) else await run_in_threadpool(answer)

    @router.post("/v1/suggestions", response_model=SuggestionsOut, responses=errors(400))
    def ad_hoc_suggestions(body: AdHocRequest, _: StaffOrPortal, state: State, metrics: MetricsDep) -> Response:  # type: ignore[valid-type]
        """Suggestions for a profile that is not stored (nothing is written, not even its vector:
        that stays in a bounded in-memory cache)."""
        profile = School.model_validate(body.profile.model_dump(exclude_unset=True) | {"id": AD_HOC_ID})
        with (
            metrics.suggestion_latency.labels("ad_hoc").time(),
            state.reading() as matcher,
            matcher.embedder.transient(),
        ):
            result = matcher.suggest(profile, body.k, filters=body.filters, overrides=body.overrides)
            return suggestions_json(result, matcher)

    return router
