"""A thin, typed Python client for the partnermatch API, for portal developers.

One method per operation, named after its OpenAPI operation id (service.docs: listSchools ->
list_schools), taking and returning the same pydantic models the server uses, so an editor
completes fields and a wrong one fails before it is sent. Errors come back as
:class:`ApiProblem` with the server's status, message and field.

    >>> with PartnermatchClient("http://127.0.0.1:8000", api_key="pm_...") as api:  # doctest: +SKIP
    ...     page = api.list_schools(q="台東", limit=10)
    ...     best = api.get_school_suggestions(page.items[0].id, k=5).suggestions[0]
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from service.models import (
    AcceptedOut,
    DeclineRequest,
    Health,
    InvitationCreate,
    InvitationOut,
    InvitationPage,
    Readiness,
    RoundJobOut,
    RoundPage,
    SchoolOut,
    SchoolPage,
    StatsOut,
    SuggestionsOut,
)

Model = TypeVar("Model", bound=BaseModel)


class ApiProblem(Exception):
    """The server said no: its status code, its message and (when it names one) the field."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.field = status, detail, field


class PartnermatchClient:
    """Calls one partnermatch server with one API key (X-API-Key)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text}
            detail = body.get("detail") if isinstance(body, dict) else None
            field = body.get("field") if isinstance(body, dict) else None
            raise ApiProblem(response.status_code, str(detail or response.reason_phrase), field)
        return model.model_validate(response.json())

    # ---------------------------------------------------------------- health

    def get_health(self) -> Health:
        return self._call(Health, "GET", "/healthz")

    def get_readiness(self) -> Readiness:
        """Ready for suggestions; ApiProblem 503 (with the reason) while the index is loading."""
        return self._call(Readiness, "GET", "/readyz")

    # ---------------------------------------------------------------- schools

    def list_schools(
        self,
        *,
        q: str | None = None,
        country: list[str] | str | None = None,
        region: list[str] | str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> SchoolPage:
        """One page of schools; pass the page's next_cursor for the next one."""
        params = {"q": q, "country": country, "region": region, "cursor": cursor, "limit": limit}
        return self._call(SchoolPage, "GET", "/v1/schools", params=_present(params))

    def iter_schools(self, **filters: Any) -> Iterator[SchoolOut]:
        """Every school the filters match, page after page."""
        cursor = None
        while True:
            page = self.list_schools(cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_school(self, school_id: str) -> SchoolOut:
        return self._call(SchoolOut, "GET", f"/v1/schools/{_segment(school_id)}")

    def get_school_suggestions(self, school_id: str, *, k: int = 10) -> SuggestionsOut:
        return self._call(SuggestionsOut, "GET", f"/v1/schools/{_segment(school_id)}/suggestions", params={"k": k})

    # ---------------------------------------------------------------- invitations

    def send_invitation(self, from_school: str, to_school: str, message: str | None = None) -> InvitationOut:
        body = InvitationCreate(from_school=from_school, to_school=to_school, message=message)
        return self._call(InvitationOut, "POST", "/v1/invitations", json=body.model_dump(mode="json"))

    def list_invitations(
        self, *, school_id: str | None = None, status: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> InvitationPage:
        params = {"school_id": school_id, "status": status, "cursor": cursor, "limit": limit}
        return self._call(InvitationPage, "GET", "/v1/invitations", params=_present(params))

    def get_invitation(self, invitation_id: str) -> InvitationOut:
        return self._call(InvitationOut, "GET", f"/v1/invitations/{_segment(invitation_id)}")

    def accept_invitation(self, invitation_id: str) -> AcceptedOut:
        return self._call(AcceptedOut, "POST", f"/v1/invitations/{_segment(invitation_id)}/accept")

    def decline_invitation(self, invitation_id: str, reason: str | None = None) -> InvitationOut:
        body = DeclineRequest(reason=reason).model_dump(mode="json")
        return self._call(InvitationOut, "POST", f"/v1/invitations/{_segment(invitation_id)}/decline", json=body)

    # ---------------------------------------------------------------- staff: stats and rounds

    def get_stats(self) -> StatsOut:
        return self._call(StatsOut, "GET", "/v1/stats")

    def list_rounds(self, *, cursor: str | None = None, limit: int = 50) -> RoundPage:
        return self._call(RoundPage, "GET", "/v1/rounds", params=_present({"cursor": cursor, "limit": limit}))

    def get_round(
        self,
        round_id: str,
        *,
        offset: int = 0,
        limit: int | None = None,
        country: str | None = None,
        region: str | None = None,
    ) -> RoundJobOut:
        """A round job's status; once done, the round (`.round`) with one page of its pairs
        (`.round.pairs`: items, total, offset, limit; the server's default page size when
        `limit` is None), optionally only pairs with a school in `country` or `region`."""
        params = _present({"offset": offset, "limit": limit, "country": country, "region": region})
        return self._call(RoundJobOut, "GET", f"/v1/rounds/{_segment(round_id)}", params=params)

    def export_table(self, kind: str, *, format: str = "csv", round_id: str | None = None) -> bytes:
        """Schools, partnerships or a round's pairs as a file's bytes: CSV (with a BOM) or XLSX."""
        params = _present({"format": format, "round_id": round_id})
        response = self._http.get(f"/v1/exports/{_segment(kind)}", params=params)
        if response.is_error:
            body = response.json()
            raise ApiProblem(response.status_code, str(body.get("detail")), body.get("field"))
        return response.content


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _segment(value: str) -> str:
    """An id as one path segment: an id with "/" in it cannot reach another route."""
    return quote(value, safe="")
