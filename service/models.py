"""Request and response bodies of the API. Profiles reuse data.schema.School, so a field means
the same thing (and is validated the same way) in a file import, the store and the API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import cache, lru_cache
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model

from data.schema import PRIVATE_FIELDS, Invitation, Partnership, RoundStatus, School, SchoolId, StoredRound
from data.taxonomies import country_name
from embeddings import profile_hints
from matching.constraints import SuggestionFilters
from matching.results import Suggestion, SuggestionResult
from matching.rounds import BlockingPair, RoundComparison, RoundOptions, RoundPair, RoundResult
from matching.settings import RequestOverrides

SCHOOL_EXAMPLE: dict[str, Any] = {
    "id": "tw-999001",
    "name_local": "臺東縣立海濱國民小學",
    "name_en": "Haibin Primary School",
    "country": "TW",
    "region": "TW-TTT",
    "levels": ["primary"],
    "languages_instruction": ["zh"],
    "languages_exchange": ["zh", "en"],
    "sdgs": [4, 13, 14],
    "target_countries": ["MY", "TH"],
    "exchange_modes": ["virtual", "hosting"],
    "capacity": 3,
    "remoteness": "remote",
    "description": "A small school by the sea; our pupils study ocean life and climate.",
    "contact_email": "office@haibin.example.tw",
}
# Fields a client never sets: the store stamps them.
_STAMPS = ("created_at", "updated_at")
_STRICT_SCALARS = (bool, int, float)


# --------------------------------------------------------------------------- strict request bodies


def _strict(annotation: Any) -> Any:
    """The annotation with every bool, int and float in it strict (and nested models made strict
    bodies): JSON `false` is not 0, `true` is not 1, `10.0` is not the integer 10, "5" is not 5.
    Enums, dates and other text stay as JSON carries them."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return Annotated[(_strict(args[0]), *annotation.__metadata__)]
    if origin in (Union, UnionType):
        return Union[tuple(_strict(arg) for arg in args)]  # noqa: UP007 (built from a tuple)
    if origin is list:
        return list[_strict(args[0])]  # type: ignore[misc]
    if annotation in _STRICT_SCALARS:
        return Annotated[annotation, Strict()]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return strict_body(annotation)
    return annotation


@cache
def strict_body(model: type[BaseModel]) -> type[BaseModel]:
    """A request body model whose scalar fields are strict (see _strict). Pydantic's strict mode
    cannot be used as is: FastAPI validates a parsed body in Python mode, where strict also
    refuses an enum's or a date's JSON text. Imports stay lax: a CSV cell is text."""
    fields = {name: (_strict(info.annotation), info) for name, info in model.model_fields.items()}
    return create_model(model.__name__, __base__=model, __module__=model.__module__, __doc__=model.__doc__, **fields)


# --------------------------------------------------------------------------- errors


class FieldError(BaseModel):
    field: str = Field(description="the field (dotted path) or column the problem is in")
    reason: str
    line: int | None = Field(None, description="line of an uploaded file, for import errors")


class ErrorBody(BaseModel):
    """Every error the API returns."""

    detail: str = Field(examples=["k: Input should be less than or equal to 50"])
    field: str | None = Field(None, description="the field the error is about, when one is", examples=["k"])
    errors: list[FieldError] | None = Field(None, description="every problem, for validation and import errors")
    rules: list[str] | None = Field(None, description="hard rules a pair breaks, for invitation refusals")


# --------------------------------------------------------------------------- schools


class SchoolOut(School):
    """A profile as a caller may see it: private fields (contact, address, exact size) are null
    unless the caller is staff or the school itself, and `hints` say how to get better matches."""

    hints: list[str] = Field(default_factory=list, description="how the school could improve its matches")
    private_fields_shown: bool = Field(description="false when contact details and other private fields are hidden")

    @classmethod
    def of(cls, school: School, *, private: bool) -> SchoolOut:
        data = school.model_dump()
        if not private:
            data.update(dict.fromkeys(PRIVATE_FIELDS & data.keys()))
        return cls.model_construct(**data, hints=profile_hints(school), private_fields_shown=private)


class SchoolCard(BaseModel):
    """The public facts shown beside a suggestion or an invitation: never contact details."""

    id: str
    name: str = Field(description="English name if known, else the local one")
    name_local: str | None
    name_en: str | None
    country: str
    country_name: str
    region: str | None
    levels: list[str]
    languages_exchange: list[str]
    sdgs: list[int]
    exchange_modes: list[str]
    remoteness: str
    student_count: int | None
    website: str | None
    active: bool

    @classmethod
    def of(cls, school: School) -> SchoolCard:
        return cls(**card_fields(school))


@lru_cache(maxsize=512)
def _country_name(code: str) -> str:
    return country_name(code)  # a pycountry lookup; a list names the same few countries


def card_fields(school: School) -> dict[str, Any]:
    """A SchoolCard's fields in its order, from a validated School: what the card holds, and the
    dict the suggestions routes write as JSON without building the model."""
    return {
        "id": school.id,
        "name": school.display_name,
        "name_local": school.name_local,
        "name_en": school.name_en,
        "country": school.country,
        "country_name": _country_name(school.country),
        "region": school.region,
        "levels": list(school.levels),
        "languages_exchange": list(school.languages_exchange),
        "sdgs": list(school.sdgs),
        "exchange_modes": list(school.exchange_modes),
        "remoteness": school.remoteness.value,
        "student_count": school.student_count,
        "website": school.website,
        "active": school.active,
    }


def _school_fields(*, optional: bool) -> dict[str, Any]:
    """School's fields but id and the stamps, for a derived body model. With optional, each may be
    left out, and sent as null only where a School may have no value (the schema says which);
    the constraints stay on the value, so a value sent is still checked."""
    fields: dict[str, Any] = {}
    for name, info in School.model_fields.items():
        if name in ("id", *_STAMPS):
            continue
        if optional:
            annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            nullable = type(None) in get_args(info.annotation)
            fields[name] = (
                annotation,
                Field(
                    None,
                    description=info.description,
                    examples=info.examples,
                    json_schema_extra=None if nullable else _no_default,
                ),
            )
        else:
            fields[name] = (info.annotation, info)
    return fields


def _no_default(schema: dict[str, Any]) -> None:
    """A field that may be left out but not sent as null: its schema shows no null default."""
    schema.pop("default", None)


SchoolPatch = strict_body(
    create_model(  # type: ignore[call-overload]
        "SchoolPatch",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"capacity": 5, "sdgs": [4, 13, 14, 17]}]}
        ),
        __doc__="Fields to change; the others stay. The whole profile is checked again after the change.",
        **_school_fields(optional=True),
    )
)

ProfileDraft = strict_body(
    create_model(  # type: ignore[call-overload]
        "ProfileDraft",
        __config__=ConfigDict(extra="forbid"),
        __doc__="A profile that is not stored, e.g. a school deciding whether to join: a School without id.",
        **_school_fields(optional=False),
    )
)


@strict_body
class SchoolCreate(School):
    """A new school; created_at and updated_at are set by the service, whatever is sent."""

    model_config = ConfigDict(json_schema_extra={"examples": [SCHOOL_EXAMPLE]})


class SchoolPage(BaseModel):
    items: list[SchoolOut]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; null on the last page")


class ImportReportOut(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int


# --------------------------------------------------------------------------- suggestions


class SuggestionOut(Suggestion):
    school: SchoolCard


class SuggestionsOut(SuggestionResult):
    suggestions: list[SuggestionOut]  # type: ignore[assignment]


@strict_body
class AdHocSuggestionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "profile": {k: v for k, v in SCHOOL_EXAMPLE.items() if k not in ("id", "contact_email")},
                    "k": 5,
                    "filters": {"countries": ["MY"]},
                    "overrides": {"diversity": False},
                }
            ]
        },
    )

    profile: ProfileDraft  # type: ignore[valid-type]
    k: int = Field(10, ge=1, description="how many suggestions (at most the service's max k)")
    filters: SuggestionFilters = Field(default_factory=SuggestionFilters)
    overrides: RequestOverrides = Field(default_factory=RequestOverrides)


# --------------------------------------------------------------------------- invitations


@strict_body
class InvitationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"from_school": "tw-999001", "to_school": "my-000123", "message": "Hello!"}]},
    )

    from_school: SchoolId
    to_school: SchoolId
    message: str | None = Field(None, max_length=2000)


@strict_body
class DeclineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "No room this year"}]})

    reason: str | None = Field(None, max_length=1000)


class InvitationOut(Invitation):
    from_card: SchoolCard | None = Field(None, description="the inviting school's public card")
    to_card: SchoolCard | None = Field(None, description="the invited school's public card")

    @classmethod
    def of(cls, invitation: Invitation, schools: dict[str, School]) -> InvitationOut:
        cards = {
            f"{side}_card": SchoolCard.of(schools[getattr(invitation, f"{side}_school")])
            for side in ("from", "to")
            if getattr(invitation, f"{side}_school") in schools
        }
        return cls.model_construct(**invitation.model_dump(), **cards)


class InvitationPage(BaseModel):
    items: list[InvitationOut]
    next_cursor: str | None = None


class AcceptedOut(BaseModel):
    invitation: InvitationOut
    partnership: Partnership


# --------------------------------------------------------------------------- partnerships


PartnershipCreate = strict_body(
    create_model(  # type: ignore[call-overload]
        "PartnershipCreate",
        __config__=ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {
                        "school_a": "tw-999001",
                        "school_b": "my-000123",
                        "start_date": "2026-09-01",
                        "modes": ["virtual"],
                        "sdgs": [13],
                    }
                ]
            },
        ),
        __doc__="A partnership staff record. Both schools need a free place unless override_capacity is true; "
        "the override is recorded with the staff key that made it.",
        override_capacity=(bool, Field(False, description="record it even where a school is at capacity")),
        **{
            name: (info.annotation, info)
            for name, info in Partnership.model_fields.items()
            if name != "capacity_override"
        },
    )
)


@strict_body
class EndRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    end_date: date | None = Field(None, description="default: today")


# --------------------------------------------------------------------------- stats, health, keys


class ClusterOut(BaseModel):
    size: int
    countries: dict[str, int]
    members: list[str]


class GraphSummaryOut(BaseModel):
    schools: int
    active_schools: int
    partnerships: int
    components: int
    largest_component: int
    share_with_partner: float
    degree_gini: float
    countries: dict[str, int]
    cross_border_clusters: int


class StatsOut(BaseModel):
    schools: int
    active_schools: int
    schools_by_country: dict[str, int]
    schools_by_level: dict[str, int]
    schools_by_remoteness: dict[str, int]
    partnerships: int
    active_partnerships: int
    active_partnerships_by_country_pair: dict[str, int]
    graph: GraphSummaryOut
    largest_clusters: list[ClusterOut]


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    indexed: dict[str, int] = Field(description="active schools in each index partition")
    change_seq: int
    index_origin: str | None = Field(description="loaded (from a saved snapshot) or built")
    ranking: Literal["trained", "hand-weighted"] = Field(
        description="trained: a ranker saved by `partnermatch train` ranks candidates; hand-weighted: the "
        "reciprocal score (no ranker saved, or too little partnership history to train one)"
    )


class NotReady(BaseModel):
    """/readyz while the index is loaded or built: how far it is."""

    status: Literal["loading", "indexing", "failed"] = Field(
        examples=["indexing"],
        description="loading: a saved index is read; indexing: profiles are encoded (first start); failed: see detail",
    )
    encoded: int = Field(0, description="profiles encoded so far (indexing)", examples=[1234])
    total: int = Field(0, description="active profiles the index will hold (indexing)", examples=[5000])
    detail: str = Field(examples=["index: still being built, 1,234 of 5,000 profiles encoded; try again in a moment"])
    field: str = "index"


# --------------------------------------------------------------------------- rounds


@strict_body
class RoundCreate(BaseModel):
    """A round to run: the cohort (omitted: every active school with a free place) and its options."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"cohort": None, "options": {"coverage_first": True, "nsp_priority": True}}]},
    )

    cohort: list[SchoolId] | None = Field(
        None,
        min_length=1,
        max_length=200_000,
        description="school ids; omit for every active school with spare capacity",
    )
    options: RoundOptions = Field(default_factory=RoundOptions)


class PairRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    school_a: SchoolId
    school_b: SchoolId


@strict_body
class RoundAccept(BaseModel):
    """Accepting a round: when its partnerships start, and pairs staff left out."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"start_date": "2026-09-01"}]})

    start_date: date | None = Field(None, description="default: today")
    exclude: list[PairRef] = Field(default_factory=list, max_length=100_000, description="pairs not to start")
    note: str | None = Field(None, max_length=1000)


class RoundSummary(BaseModel):
    """The figures a list of rounds shows."""

    cohort_size: int
    candidate_edges: int
    method: str
    pairs: int
    unmatched: int
    matched_schools: int
    total_score: float
    greedy_total_score: float
    blocking_pairs: int

    @classmethod
    def of(cls, result: RoundResult) -> RoundSummary:
        optimal = result.comparison.optimal
        return cls(
            cohort_size=result.cohort_size,
            candidate_edges=result.candidate_edges,
            method=result.method,
            pairs=len(result.pairs),
            unmatched=len(result.unmatched),
            matched_schools=optimal.matched_schools,
            total_score=optimal.total_score,
            greedy_total_score=result.comparison.greedy.total_score,
            blocking_pairs=optimal.blocking_pairs,
        )


class RoundListItem(BaseModel):
    id: str
    created_at: datetime
    created_by: str | None
    status: RoundStatus
    accepted_at: datetime | None
    summary: RoundSummary

    @classmethod
    def of(cls, stored: StoredRound) -> RoundListItem:
        return cls(
            id=stored.id,
            created_at=stored.created_at,
            created_by=stored.created_by,
            status=stored.status,
            accepted_at=stored.accepted_at,
            summary=RoundSummary.model_validate(stored.summary),
        )


# How many of a round's pairs GET /v1/rounds/{id} shows when not told, and at most.
ROUND_PAIRS_DEFAULT = 100
ROUND_PAIRS_MAX = 1000


class RoundPairPage(BaseModel):
    """One page of a round's pairs, in the round's order, after the country/region filter."""

    items: list[RoundPair]
    total: int = Field(ge=0, description="pairs matching the filter, over all pages")
    offset: int = Field(ge=0, description="how many matching pairs come before this page")
    limit: int = Field(ge=1, le=ROUND_PAIRS_MAX, description="the page size asked for")


class RoundOut(RoundListItem):
    """A stored round: its summary, options, comparison with greedy and blocking pairs, and one
    page of its pairs. A round over thousands of schools is megabytes, so pairs come a page at a
    time (offset, limit); the unmatched schools are in the staff page and the round's export."""

    accepted_by: str | None
    options: RoundOptions
    partnership_ids: list[str] = Field(description="partnerships that accepting the round started")
    scope: Literal["home", "any"]
    home_country: str
    comparison: RoundComparison
    blocking_pairs: list[BlockingPair] = Field(
        description="blocking pairs of the chosen assignment (listed up to options.max_blocking_listed)"
    )
    pairs: RoundPairPage

    @classmethod
    def of(cls, stored: StoredRound, result: Mapping[str, Any], pairs: RoundPairPage) -> RoundOut:  # type: ignore[override]
        """`stored` may come without its result: its stored JSON `result` is passed apart (it is
        kept per process), and only the parts shown here are validated."""
        return cls(
            id=stored.id,
            created_at=stored.created_at,
            created_by=stored.created_by,
            status=stored.status,
            accepted_at=stored.accepted_at,
            accepted_by=stored.accepted_by,
            summary=RoundSummary.model_validate(stored.summary),
            options=RoundOptions.model_validate(stored.options),
            partnership_ids=stored.partnership_ids,
            scope=result["scope"],
            home_country=result["home_country"],
            comparison=RoundComparison.model_validate(result["comparison"]),
            blocking_pairs=[BlockingPair.model_validate(b) for b in result["blocking_pairs"]],
            pairs=pairs,
        )


class RoundJobOut(BaseModel):
    """A round run in the background: queued, running (with its stage and progress), done (with
    the round and a page of its pairs) or failed (with why)."""

    id: str = Field(description="the job's id, which the stored round keeps")
    status: Literal["queued", "running", "done", "failed"]
    stage: str = Field(description="what the job is doing now")
    progress: float = Field(ge=0, le=1, description="rough fraction done")
    error: str | None = Field(None, description="why a failed job failed")
    created_at: datetime
    round: RoundOut | None = Field(None, description="the stored round, once done")


class RoundPage(BaseModel):
    items: list[RoundListItem]
    next_cursor: str | None = None


class RoundAccepted(BaseModel):
    round: RoundOut
    partnerships: list[Partnership]
