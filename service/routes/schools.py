"""School profiles: create, read, update, deactivate, list with filters, bulk import."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from pydantic import Field

from data.errors import Conflict
from data.io import ColumnMapping, import_schools, parse_mapping, shipped_mapping, shipped_mappings
from data.schema import CountryCode, School, utcnow
from data.store import Store
from data.taxonomies import ExchangeMode, Level, Remoteness
from service.auth import Forbidden, Role
from service.deps import Caller, Staff, StaffOrPortal, State, errors, links
from service.errors import ApiError
from service.models import ImportReportOut, SchoolCreate, SchoolOut, SchoolPage, SchoolPatch
from service.routes.listing import ACTIVE, Active, QueryInt, decode_cursor, page

router = APIRouter(prefix="/v1/schools", tags=["schools"], responses=errors(401, 403, 422))

SchoolIdPath = Annotated[str, Field(max_length=64, examples=["tw-011301"])]
Goal = Annotated[int, Field(ge=1, le=17)]


_SCHOOL_LINKS = links(
    201,
    GetSchool=("getSchool", "school_id"),
    PatchSchool=("updateSchool", "school_id"),
    SchoolSuggestions=("getSchoolSuggestions", "school_id"),
    DeactivateSchool=("deactivateSchool", "school_id"),
)


@router.post("", status_code=201, response_model=SchoolOut, responses=errors(400, 409) | _SCHOOL_LINKS)
def create_school(body: SchoolCreate, _: Staff, state: State) -> SchoolOut:
    now = utcnow()
    school = School.model_validate(body.model_dump() | {"created_at": now, "updated_at": now})
    with state.changing() as store:
        store.create_school(school)
    return SchoolOut.of(school, private=True)


@router.get("", response_model=SchoolPage)
def list_schools(
    who: StaffOrPortal,
    state: State,
    country: Annotated[list[CountryCode] | None, Query(description="ISO code or name; repeat for any of")] = None,
    region: Annotated[list[str] | None, Query(description="ISO 3166-2 code, e.g. TW-TTT")] = None,
    level: Annotated[list[Level] | None, Query()] = None,
    sdg: Annotated[list[Annotated[QueryInt, Goal]] | None, Query(description="goal number 1-17")] = None,
    mode: Annotated[list[ExchangeMode] | None, Query()] = None,
    remoteness: Annotated[list[Remoteness] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="part of the local or English name")] = None,
    active: Annotated[Active, Query()] = "true",
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    limit: Annotated[QueryInt, Query(ge=1, le=500)] = 50,
) -> SchoolPage:
    """Public profiles for portal keys; staff see every field."""
    found = state.store.list_schools(
        country=country,
        region=region,
        level=level,
        sdg=sdg,
        mode=mode,
        remoteness=remoteness,
        q=q,
        active=ACTIVE[active],
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    shown, next_cursor = page(found, limit, lambda s: s.id)
    return SchoolPage(items=[SchoolOut.of(s, private=who.role == Role.STAFF) for s in shown], next_cursor=next_cursor)


@router.post("/import", response_model=ImportReportOut, responses=errors(400, 413))
def import_file(
    _: Staff,
    state: State,
    file: Annotated[UploadFile, File(description="CSV or JSON Lines; .csv / .jsonl name or give format")],
    format: Annotated[Literal["csv", "jsonl"] | None, Form()] = None,
    mapping: Annotated[
        str | None,
        Form(max_length=100, description=f"a shipped column mapping: {', '.join(shipped_mappings())}"),
    ] = None,
    mapping_file: Annotated[UploadFile | None, File(description="a column mapping as YAML")] = None,
) -> ImportReportOut:
    """All or nothing: a file with any bad row is refused (422) with every bad row listed.

    The upload is read where Starlette spooled it (memory, or an unlinked temporary file), so no
    copy of it, contact e-mails included, is left on disk after the request or a crash. A mapping
    is a shipped one by name or an uploaded file: never a path on the server."""
    if mapping and mapping_file is not None:
        raise ApiError(422, "mapping: give a mapping name or a mapping file, not both", field="mapping")
    name = Path(file.filename or "upload").name
    try:
        chosen = shipped_mapping(mapping) if mapping else _uploaded_mapping(mapping_file)
    except FileNotFoundError as exc:
        raise ApiError(422, str(exc), field="mapping") from None
    with state.changing() as store:
        report = import_schools(store, file.file, chosen, fmt=format, name=name)
    return ImportReportOut(rows=report.rows, created=report.created, updated=report.updated, unchanged=report.unchanged)


def _uploaded_mapping(upload: UploadFile | None) -> ColumnMapping | None:
    """An uploaded mapping file; its errors name the file as the caller sent it."""
    if upload is None:
        return None
    name = Path(upload.filename or "mapping.yaml").name
    try:
        text = upload.file.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, f"mapping_file: {name} is not UTF-8 text", field="mapping_file") from None
    try:
        return parse_mapping(text, f"mapping_file: {name}")
    except ValueError as exc:
        raise ApiError(422, str(exc), field="mapping_file") from None


@router.get("/{school_id}", response_model=SchoolOut, responses=errors(404))
def read_school(school_id: SchoolIdPath, who: Caller, state: State, response: Response) -> SchoolOut:
    """A school key reads only its own profile; portal keys see public fields only. The ETag
    names this version of the profile: send it back as If-Match on a PATCH."""
    who.require_school(school_id)
    school = state.store.get_school(school_id)
    response.headers["ETag"] = etag(school)
    return SchoolOut.of(school, private=who.sees_private_fields_of(school_id))


@router.patch("/{school_id}", response_model=SchoolOut, responses=errors(400, 404, 409, 412))
def update_school(
    school_id: SchoolIdPath,
    body: SchoolPatch,  # type: ignore[valid-type]
    who: Caller,
    state: State,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(max_length=200, description="the ETag of the profile read; 412 if it changed since (optional)"),
    ] = None,
) -> SchoolOut:
    """Change some fields; the next suggestions use the new profile. With If-Match, an edit made
    on a version someone else has changed meanwhile is refused (412) instead of overwriting theirs."""
    who.require(Role.STAFF, Role.SCHOOL)
    who.require_school(school_id)
    changes = body.model_dump(exclude_unset=True)
    if "active" in changes and who.role != Role.STAFF:
        raise Forbidden("active: only staff activate or deactivate a school")
    with state.changing() as store:
        if if_match is not None:
            current = etag(store.get_school(school_id))
            if if_match.strip() != "*" and current not in (tag.strip() for tag in if_match.split(",")):
                raise ApiError(
                    412,
                    f"If-Match: {school_id} has changed since {if_match.strip()} (now {current}); "
                    "read it again and redo the edit",
                    field="If-Match",
                )
        if "country" in changes:
            _check_partners_stay_abroad(store, school_id, changes["country"])
        school = store.update_school(school_id, changes)
    response.headers["ETag"] = etag(school)
    return SchoolOut.of(school, private=True)


def etag(school: School) -> str:
    """A strong ETag of the stored profile: it changes whenever any field does."""
    return '"' + hashlib.sha256(school.model_dump_json().encode("utf-8")).hexdigest()[:32] + '"'


@router.post("/{school_id}/deactivate", response_model=SchoolOut, responses=errors(404))
def deactivate_school(school_id: SchoolIdPath, _: Staff, state: State) -> SchoolOut:
    """The school keeps its record and history but is no longer suggested."""
    with state.changing() as store:
        school = store.deactivate_school(school_id)
    return SchoolOut.of(school, private=True)


def _check_partners_stay_abroad(store: Store, school_id: str, country: str | None) -> None:
    """Partnerships cross a border: a school cannot move into a country where an active partner is."""
    partners = {
        p.school_b if p.school_a == school_id else p.school_a
        for p in store.list_partnerships(school_id=school_id, active=True)
    }
    there = sorted(s.id for s in store.get_schools(partners).values() if s.country == country)
    if there:
        raise Conflict(
            f"country: {school_id} cannot move to {country}; its active partner(s) {', '.join(there)} are there"
        )
