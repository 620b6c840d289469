"""Every error as JSON {"detail", "field", ...}, with a message that names the field and the reason.

Errors raised below the API (the store's NotFound, Conflict, ImportRejected and field-prefixed
ValueErrors, pydantic's ValidationError, the roles' Forbidden) map to status codes here, so
route functions stay thin and nothing half written is reported as success.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data.errors import Conflict, ImportRejected, NotFound
from service.auth import Forbidden, TooManyRequests
from service.models import ErrorBody, FieldError
from service.state import IndexNotReady

log = logging.getLogger("partnermatch.service")

# Where FastAPI says a value came from; the field is what follows.
_SOURCES = {"body", "query", "path", "header", "cookie", "form"}
_FIELD_PREFIX = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*(?: and [a-z_]+)?): (.+)", re.DOTALL)
SHOWN_ERRORS = 20


class ApiError(Exception):
    """An error a route raises on purpose, with its status and the field it is about."""

    def __init__(self, status: int, detail: str, *, field: str | None = None, rules: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.rules = rules


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing passes it on instead of calling it a parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than the {limit} bytes this service accepts")


def split_field(message: str) -> tuple[str | None, str]:
    """ "k: must be at least 1" -> ("k", "must be at least 1"); messages without a field -> (None, message)."""
    match = _FIELD_PREFIX.fullmatch(message)
    return (match[1], match[2]) if match else (None, message)


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """pydantic/FastAPI error dicts as FieldErrors: location without its source, clean message."""
    found: list[FieldError] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":  # loc is ("body", character position)
            problem = (error.get("ctx") or {}).get("error", "")
            found.append(FieldError(field="body", reason=f"not valid JSON at character {loc[-1]}: {problem}"))
            continue
        if loc and loc[0] in _SOURCES and len(loc) > 1:
            loc = loc[1:]
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        field = ".".join(loc)
        if not field or field == "body":
            named, rest = split_field(reason)
            field, reason = (named, rest) if named else (field or "body", reason)
        found.append(FieldError(field=field, reason=reason))
    return found


def _response(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    """detail and field always (field null when no one field is to blame); errors and rules when given."""
    content = body.model_dump(exclude={name for name in ("errors", "rules") if getattr(body, name) is None})
    return JSONResponse(status_code=status, content=content, headers=headers)


def _invalid(errors: list[FieldError]) -> JSONResponse:
    shown = "; ".join(f"{e.field}: {e.reason}" for e in errors[:SHOWN_ERRORS])
    more = f"; and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
    field = errors[0].field if errors else None
    return _response(422, ErrorBody(detail=shown + more, field=field, errors=errors))


def _plain(status: int, exc: BaseException) -> JSONResponse:
    field, _ = split_field(str(exc))
    return _response(status, ErrorBody(detail=str(exc), field=field))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(exc.status, ErrorBody(detail=exc.detail, field=exc.field, rules=exc.rules), headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(field_errors(exc.errors()))

    @app.exception_handler(ValidationError)
    async def model_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return _invalid(field_errors(exc.errors()))

    @app.exception_handler(ImportRejected)
    async def import_rejected(_: Request, exc: ImportRejected) -> JSONResponse:
        errors = [FieldError(field=e.field, reason=e.reason, line=e.line) for e in exc.errors]
        return _response(422, ErrorBody(detail=str(exc), field=errors[0].field if errors else None, errors=errors))

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        # The id that named nothing is the path's {school_id}, {invitation_id} or {partnership_id}.
        return _response(404, ErrorBody(detail=str(exc), field=f"{exc.kind.replace(' ', '_')}_id"))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _plain(409, exc)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, exc: ValueError) -> JSONResponse:
        return _plain(422, exc)

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return _plain(403, exc)

    @app.exception_handler(TooManyRequests)
    async def too_many(_: Request, exc: TooManyRequests) -> JSONResponse:
        return _response(429, ErrorBody(detail=exc.detail, field=exc.field), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(IndexNotReady)
    async def not_ready(_: Request, exc: IndexNotReady) -> JSONResponse:
        return _response(503, ErrorBody(detail=str(exc), field="index"), {"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field, _ = split_field(str(exc.detail))
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, a broken upload)
            field = field or "body"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _response(exc.status_code, ErrorBody(detail=str(exc.detail), field=field), headers or None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _response(500, ErrorBody(detail=f"internal error ({type(exc).__name__}); it has been logged"))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (FastAPI makes one route per method)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


class BodyLimit:
    """Refuse request bodies over a limit with 413, before they are read whole: by the declared
    Content-Length when there is one, else while the body streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            refused = BodyTooLarge(self.max_bytes)
            await _response(413, ErrorBody(detail=refused.detail, field="body"))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)
