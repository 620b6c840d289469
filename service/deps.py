"""FastAPI dependencies: the service state, the caller behind the API key, role gates, and the
error responses each route documents.

Dependencies that only read memory are ``async``: FastAPI runs them on the event loop instead of
handing each to the thread pool. The key lookup reads the database only when the key cache misses,
and only then goes to the thread pool."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from data.schema import refused_text, string_values
from data.store import Store
from service.auth import Guard, Principal, Role
from service.errors import ApiError
from service.metrics import Metrics
from service.models import ErrorBody
from service.state import ServiceState

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from `partnermatch keys create`")
_bearer = HTTPBearer(auto_error=False, description="The same API key, as Authorization: Bearer <key>")

_ERROR_TEXT = {
    400: "The body could not be read (not UTF-8, or a broken upload)",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role may not do this",
    404: "No such id",
    409: "Conflicts with what is stored (duplicate, already answered, a hard rule the pair breaks now)",
    412: "If-Match names a version that is no longer the current one: read again and redo the edit",
    413: "Request body too large",
    429: "Too many requests (failed sign-ins, or expensive calls): see Retry-After",
    422: "Invalid input: every problem, each naming its field",
    503: "The index is still loading or being built (the detail says how far)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses a route can give, all shaped as ErrorBody. A route
    that checks keys (401) may also refuse with 429, after too many failed sign-ins, and with 503
    while the first start builds the index."""
    codes = (*codes, 429, 503) if 401 in codes else codes
    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


def links(status: int, **operations: tuple[str, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from a created item to the operations that take its id ({name: (operationId,
    parameter)}), so a client (and the stateful schemathesis test) can follow them."""
    targets = {
        name: {"operationId": operation, "parameters": {parameter: "$response.body#/id"}}
        for name, (operation, parameter) in operations.items()
    }
    return {status: {"links": targets}}


def state_of(request: Request) -> ServiceState:
    """The app's service state. Routes on the hot path read it (and metrics_of) from the request
    they take: each FastAPI dependency costs a request some 10-25 us to resolve, even cached."""
    return request.app.state.service


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_state(request: Request) -> ServiceState:
    return state_of(request)


async def get_metrics(request: Request) -> Metrics:
    return metrics_of(request)


async def storable_text(request: Request) -> None:
    """Refuse, as invalid input naming the field, text no database stores (NUL, unpaired
    surrogates) in any path or query parameter, JSON body or form field: one check for every
    route, run before any route touches the store, so SQLite and PostgreSQL answer alike."""
    texts: list[tuple[tuple[str, ...], str]] = [(("path", name), value) for name, value in request.path_params.items()]
    for name, value in request.query_params.multi_items():
        texts += [(("query", name), name), (("query", name), value)]
    headers = request.headers
    content_type = headers.get("content-type", "")
    body: Any = None
    # HTTP/1.1 (what uvicorn speaks): a request with neither header has no body to read (a GET).
    sent = "content-length" in headers or "transfer-encoding" in headers
    if sent and content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        body = {name: value for name, value in (await request.form()).multi_items() if isinstance(value, str)}
    elif sent and await request.body():
        try:
            body = await request.json()  # FastAPI parsed it already: this is its cached copy
        except ValueError:
            body = None
    texts += [(("body", *filter(None, path.split("."))), text) for path, text in string_values(body)]
    problems = {loc: reason for loc, text in texts if (reason := refused_text(text))}
    if problems:
        raise RequestValidationError(
            [{"loc": loc, "msg": reason, "type": "value_error"} for loc, reason in problems.items()]
        )


State = Annotated[ServiceState, Depends(get_state)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


# Routes whose every call costs far more than a read: rate limited per key and per address.
EXPENSIVE_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/rounds"): "round",
    ("POST", "/v1/schools/import"): "import",
    ("POST", "/v1/suggestions"): "ad-hoc suggestion",
}


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def verified(request: Request, store: Store, key: str) -> Principal | None:
    """The caller a key names through the app's Guard (key cache, failed sign-in limits); for the
    API and the staff page alike."""
    guard: Guard = request.app.state.guard
    return guard.authenticate(store, key, client_address(request))


async def caller(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    """The caller behind the key, once the index is ready (every API route needs both). A key the
    Guard's cache trusts is answered on the event loop; only a miss reads the store, in the
    thread pool."""
    state = state_of(request)
    if not state.ready:  # until the first start has built the index, every API route says how far it is
        raise state.not_ready()
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        raise ApiError(
            401,
            "X-API-Key: no API key; send one in the X-API-Key header or as Authorization: Bearer <key>",
            field="X-API-Key",
        )
    guard: Guard = request.app.state.guard
    found = guard.cached(key, client_address(request)) or await run_in_threadpool(verified, request, state.store, key)
    if found is None:
        raise ApiError(401, "X-API-Key: unknown or revoked API key", field="X-API-Key")
    request.state.key_id = found.key_id  # for the request log
    route = getattr(request.scope.get("route"), "path", "")
    work = EXPENSIVE_ROUTES.get((request.method, route))
    if work is not None:
        request.app.state.guard.spend(found, client_address(request), work)
    return found


Caller = Annotated[Principal, Depends(caller)]


async def staff(who: Caller) -> Principal:
    who.require(Role.STAFF)
    return who


async def staff_or_portal(who: Caller) -> Principal:
    who.require(Role.STAFF, Role.PORTAL)
    return who


Staff = Annotated[Principal, Depends(staff)]
StaffOrPortal = Annotated[Principal, Depends(staff_or_portal)]
