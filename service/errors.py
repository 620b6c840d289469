"""Every error as JSON {"detail", "field", ...}, with a message that names the field and the reason,
in the caller's language (Accept-Language: zh-TW gives Traditional Chinese; names, ids, field names
and the values sent stay as they are).

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
from service.i18n import DEFAULT_LANG, N_, Lang, gettext, negotiate, rule_text
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


def field_errors(errors: Sequence[Any], lang: Lang = DEFAULT_LANG) -> list[FieldError]:
    """pydantic/FastAPI error dicts as FieldErrors: location without its source, clean message in `lang`."""
    found: list[FieldError] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":  # loc is ("body", character position)
            problem = (error.get("ctx") or {}).get("error", "")
            reason = reason_text(lang, f"not valid JSON at character {loc[-1]}: {problem}")
            found.append(FieldError(field="body", reason=reason))
            continue
        if loc and loc[0] in _SOURCES and len(loc) > 1:
            loc = loc[1:]
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        field = ".".join(loc)
        if not field or field == "body":
            named, rest = split_field(reason)
            field, reason = (named, rest) if named else (field or "body", reason)
        found.append(FieldError(field=field, reason=validation_text(lang, error, reason)))
    return found


def _response(
    status: int, body: ErrorBody, headers: dict[str, str] | None = None, *, lang: Lang = DEFAULT_LANG
) -> JSONResponse:
    """detail and field always (field null when no one field is to blame); errors and rules when given."""
    content = body.model_dump(exclude={name for name in ("errors", "rules") if getattr(body, name) is None})
    language = {"Content-Language": "zh-Hant-TW" if lang == "zh-TW" else "en"}
    return JSONResponse(status_code=status, content=content, headers=(headers or {}) | language)


def _invalid(errors: list[FieldError], lang: Lang) -> JSONResponse:
    chinese = lang != DEFAULT_LANG
    colon, semicolon = ("：", "；") if chinese else (": ", "; ")
    shown = semicolon.join(f"{e.field}{colon}{e.reason}" for e in errors[:SHOWN_ERRORS])
    if len(errors) > SHOWN_ERRORS:
        shown += semicolon + gettext(lang, "and %(n)s more", n=len(errors) - SHOWN_ERRORS)
    field = errors[0].field if errors else None
    return _response(422, ErrorBody(detail=shown, field=field, errors=errors), lang=lang)


def _plain(status: int, exc: BaseException, lang: Lang) -> JSONResponse:
    field, _ = split_field(str(exc))
    return _response(status, ErrorBody(detail=error_text(lang, str(exc)), field=field), lang=lang)


def request_lang(request: Request) -> Lang:
    """The language the caller's Accept-Language prefers among ours (English otherwise)."""
    return negotiate(request.headers.get("accept-language")) or DEFAULT_LANG


# --------------------------------------------------------------------------- errors in the caller's language

# Every reason an API error gives, as the English template the code raises (its placeholders are
# names, ids, numbers and values the caller sent, kept as they are), marked for the catalog: the
# English text is matched against these and said again from the zh-TW catalog. Placeholders named
# below are words themselves: translated in turn (`why`), as rule codes (`rules`), or by a table.
ERROR_MESSAGES: tuple[str, ...] = (
    # keys, roles, limits
    N_("no API key; send one in the X-API-Key header or as Authorization: Bearer <key>"),
    N_("unknown or revoked API key"),
    N_("a %(role)s key may not do this (needs %(roles)s)"),
    N_("this key belongs to school %(own)s, not %(other)s"),
    N_("only staff activate or deactivate a school"),
    N_("school %(school)s is neither side of invitation %(invitation)s"),
    N_("too many failed sign-ins from this %(who)s (%(limit)s); retry in %(seconds)s s"),
    N_("too many %(work)s requests from this %(who)s (%(limit)s); retry in %(seconds)s s"),
    # ids that name nothing, and conflicts with what is stored
    N_("%(kind)s %(id)s not found"),
    N_("unknown school %(id)s"),
    N_("school %(id)s already exists"),
    N_("%(id)s appears more than once in one upsert"),
    N_("invitation %(id)s is already %(status)s"),
    N_("invitation %(id)s between %(a)s and %(b)s is still pending"),
    N_("round %(id)s was already accepted on %(date)s"),
    N_("round %(id)s was already accepted"),
    N_("partnership %(id)s already ended on %(date)s"),
    N_("%(a)s and %(b)s break hard rule(s): %(rules)s"),
    N_("%(ids)s at capacity; send override_capacity: true to record the partnership anyway"),
    N_("%(n)s pair(s) no longer possible: %(pairs)s"),
    N_("%(school)s has %(free)s free place(s) for %(needed)s pair(s)"),
    N_("%(school)s is unknown"),
    N_("a school cannot partner with itself (%(id)s)"),
    N_("%(a)s and %(b)s are both in %(country)s; partnerships must cross a border"),
    N_("a school cannot invite itself (%(id)s)"),
    N_("%(id)s cannot move to %(country)s; its active partner(s) %(ids)s are there"),
    N_("%(id)s has changed since %(given)s (now %(current)s); read it again and redo the edit"),
    N_("a school's id cannot change (%(old)s -> %(new)s)"),
    N_("set by the store, not by an update"),
    # values
    N_("unknown country %(value)s: use an ISO 3166-1 code such as TW or MY"),
    N_("unknown language %(value)s: use an ISO 639 code such as en, zh or ms"),
    N_("unknown Taiwan county/city %(value)s: use one of the 22, e.g. TW-TPE or 臺北市"),
    N_("unknown region code %(value)s for country %(country)s"),
    N_("unknown IANA time zone %(value)s"),
    N_("%(value)s is not a goal number 1-17"),
    N_("must be a goal number from 1 to 17, got %(value)s"),
    N_("%(country)s is the school's own country"),
    N_("name_local and name_en are both empty: give at least one name"),
    N_("give both or neither"),
    N_("not an e-mail address"),
    N_("must be an http:// or https:// address"),
    N_("before start_date"),
    N_("not after created_at"),
    N_("%(value)s is not one of %(allowed)s"),
    N_("must be a whole number written as digits, e.g. 10 (got %(value)s)"),
    N_("must be true or false (got %(value)s)"),
    N_("not a cursor this service gave out"),
    N_("give a mapping name or a mapping file, not both"),
    N_("%(name)s is not UTF-8 text"),
    N_("no school id given"),
    N_("unknown school(s) %(ids)s"),
    N_("inactive school(s) %(ids)s"),
    N_("not pairs of this round: %(pairs)s"),
    N_("may only tighten the rule, to %(hours)s or more"),
    N_("contains the character %(char)s (NUL), which cannot be stored"),
    N_("contains the character %(char)s (an unpaired surrogate), which cannot be stored"),
    N_("larger than the %(limit)s bytes this service accepts"),
    N_("not valid JSON at character %(position)s: %(problem)s"),
    # the service itself
    N_("still loading; try again in a moment"),
    N_("still being built, %(encoded)s of %(total)s profiles encoded; try again in a moment"),
    N_("could not be loaded or built: %(why)s"),
    N_("internal error (%(type)s); it has been logged"),
    N_("the server stopped before the round was done; start it again"),
    N_("the round's process ended with exit code %(code)s"),
    N_("Not Found"),
    N_("Method Not Allowed"),
    N_("There was an error parsing the body"),
)

# pydantic's errors by type, with its context values as placeholders.
VALIDATION_MESSAGES: dict[str, str] = {
    "missing": N_("required"),
    "extra_forbidden": N_("not a field this accepts"),
    "int_parsing": N_("must be a whole number"),
    "int_type": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"),
    "float_parsing": N_("must be a number"),
    "float_type": N_("must be a number"),
    "bool_parsing": N_("must be true or false"),
    "bool_type": N_("must be true or false"),
    "string_type": N_("must be text"),
    "list_type": N_("must be a list"),
    "dict_type": N_("must be an object"),
    "model_attributes_type": N_("must be an object"),
    "model_type": N_("must be an object"),
    "date_parsing": N_("must be a date such as 2026-03-02"),
    "date_from_datetime_parsing": N_("must be a date such as 2026-03-02"),
    "datetime_parsing": N_("must be a date and time such as 2026-03-02T08:00:00Z"),
    "datetime_from_date_parsing": N_("must be a date and time such as 2026-03-02T08:00:00Z"),
    "greater_than": N_("must be greater than %(gt)s"),
    "greater_than_equal": N_("must be at least %(ge)s"),
    "less_than": N_("must be less than %(lt)s"),
    "less_than_equal": N_("must be at most %(le)s"),
    "string_too_short": N_("must have at least %(min_length)s character(s)"),
    "string_too_long": N_("must have at most %(max_length)s character(s)"),
    "too_short": N_("must have at least %(min_length)s item(s)"),
    "too_long": N_("must have at most %(max_length)s item(s)"),
    "literal_error": N_("must be one of %(expected)s"),
    "enum": N_("must be one of %(expected)s"),
    "string_pattern_mismatch": N_("must match the pattern %(pattern)s"),
    "uuid_parsing": N_("must be a UUID"),
    "url_parsing": N_("must be a web address"),
    "json_invalid": N_("not valid JSON"),
}

# Words placeholders hold, said in the catalog's words.
WORDS = frozenset(
    (
        N_("school"),
        N_("invitation"),
        N_("partnership"),
        N_("round"),
        N_("api key"),
        N_("staff"),
        N_("portal"),
        N_("pending"),
        N_("accepted"),
        N_("declined"),
        N_("expired"),
        N_("address"),
        N_("key"),
        N_("import"),
        N_("ad-hoc suggestion"),
        N_("or"),
        N_("and"),
        N_("second"),
        N_("minute"),
        N_("hour"),
        N_("day"),
    )
)
RECURSIVE = {"why"}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"%\((\w+)\)s", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts)), re.DOTALL)


_PATTERNS = [(_pattern(template), template) for template in ERROR_MESSAGES]


def reason_text(lang: Lang, reason: str) -> str:
    """An error's reason (the part after "field: ") in `lang`; reasons no template matches stay as they are."""
    if lang == DEFAULT_LANG:
        return reason
    for pattern, template in _PATTERNS:
        found = pattern.fullmatch(reason)
        if found is None:
            continue
        values = {name: _value(lang, name, value) for name, value in found.groupdict().items()}
        return gettext(lang, template, **values)
    if "; " in reason:  # several problems in one message
        return "；".join(error_text(lang, part) for part in reason.split("; "))
    return reason


def _value(lang: Lang, name: str, value: str) -> str:
    if name in RECURSIVE:
        return reason_text(lang, value)
    if name == "rules":  # "at_capacity (x has no room for another partner); same_country (...)"
        return rule_text(lang, re.findall(r"(?:^|; )([a-z_]+) \(", value) or value.split(", "))
    if name in ("kind", "status", "role", "who", "work"):
        return gettext(lang, value) if value in WORDS else value
    if name == "pairs":  # "a–b (a has 0 free place(s) for 1 pair(s), same_country); c–d (...)"
        said = re.sub(r" ?\(([^()]*(?:\([^()]*\)[^()]*)*)\)", lambda m: _pair_problems(lang, m[1]), value)
        said = re.sub(r"and (\d+) more$", lambda m: gettext(lang, "and %(n)s more", n=m[1]), said)
        return said.replace("; ", "；")
    if name == "limit":  # "20 per 1 minute"
        return re.sub(
            r"(\d+) per (\d+) (second|minute|hour|day)s?",
            lambda m: gettext(
                lang, "%(amount)s per %(count)s %(unit)s", amount=m[1], count=m[2], unit=gettext(lang, m[3])
            ),
            value,
        )
    if name == "roles":  # "staff or portal"
        return re.sub(r"[a-z]+", lambda m: gettext(lang, m[0]) if m[0] in WORDS else m[0], value)
    if name in ("expected", "allowed"):  # codes the caller sends, joined by words
        joined = re.sub(r"\b(or|and)\b", lambda m: gettext(lang, m[1]), value)
        return joined.replace(", ", "、") if lang == "zh-TW" else joined
    return value


def _pair_problems(lang: Lang, problems: str) -> str:
    """Why one pair of a round is no longer possible: rule codes and free places, in `lang`."""
    said = [
        rule_text(lang, [part]) if re.fullmatch(r"[a-z_]+", part) else reason_text(lang, part)
        for part in re.split(r", (?![^()]*\))", problems)
    ]
    return f"（{'、'.join(said)}）"


def error_text(lang: Lang, message: str) -> str:
    """A whole error message ("field: reason") in `lang`: the field named as the API names it."""
    if lang == DEFAULT_LANG:
        return message
    field, reason = split_field(message)
    said = reason_text(lang, reason)
    return f"{field}：{said}" if field else said


def validation_text(lang: Lang, error: dict[str, Any], reason: str) -> str:
    """A pydantic error's reason in `lang`, by its type and context (our own ValueErrors by their text)."""
    template = VALIDATION_MESSAGES.get(str(error.get("type")))
    if lang == DEFAULT_LANG or template is None:
        return reason_text(lang, reason)
    context = {name: _value(lang, "expected", str(value)) for name, value in (error.get("ctx") or {}).items()}
    return gettext(lang, template, **context)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        lang = request_lang(request)
        body = ErrorBody(detail=error_text(lang, exc.detail), field=exc.field, rules=exc.rules)
        return _response(exc.status, body, headers, lang=lang)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        lang = request_lang(request)
        return _invalid(field_errors(exc.errors(), lang), lang)

    @app.exception_handler(ValidationError)
    async def model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        lang = request_lang(request)
        return _invalid(field_errors(exc.errors(), lang), lang)

    @app.exception_handler(ImportRejected)
    async def import_rejected(request: Request, exc: ImportRejected) -> JSONResponse:
        lang = request_lang(request)
        errors = [FieldError(field=e.field, reason=reason_text(lang, e.reason), line=e.line) for e in exc.errors]
        detail = str(exc)
        if lang != DEFAULT_LANG:
            rows = len({e.line for e in exc.errors})
            said = gettext(
                lang, "%(n)s bad row(s), %(problems)s problem(s), nothing written", n=rows, problems=len(errors)
            )
            shown = "\n".join(
                gettext(lang, "line %(line)s", line=e.line) + f"：{e.field}：{e.reason}" for e in errors[:50]
            )
            detail = f"{exc.source}：{said}：\n{shown}"
        body = ErrorBody(detail=detail, field=errors[0].field if errors else None, errors=errors)
        return _response(422, body, lang=lang)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        # The id that named nothing is the path's {school_id}, {invitation_id} or {partnership_id}.
        lang = request_lang(request)
        body = ErrorBody(detail=error_text(lang, str(exc)), field=f"{exc.kind.replace(' ', '_')}_id")
        return _response(404, body, lang=lang)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return _plain(409, exc, request_lang(request))

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> JSONResponse:
        return _plain(422, exc, request_lang(request))

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return _plain(403, exc, request_lang(request))

    @app.exception_handler(TooManyRequests)
    async def too_many(request: Request, exc: TooManyRequests) -> JSONResponse:
        lang = request_lang(request)
        body = ErrorBody(detail=error_text(lang, exc.detail), field=exc.field)
        return _response(429, body, {"Retry-After": str(exc.retry_after)}, lang=lang)

    @app.exception_handler(IndexNotReady)
    async def not_ready(request: Request, exc: IndexNotReady) -> JSONResponse:
        lang = request_lang(request)
        body = ErrorBody(detail=error_text(lang, str(exc)), field="index")
        return _response(503, body, {"Retry-After": "5"}, lang=lang)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field, _ = split_field(str(exc.detail))
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, a broken upload)
            field = field or "body"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods
            headers["Allow"] = ", ".join(_allowed_methods(request))
        lang = request_lang(request)
        body = ErrorBody(detail=error_text(lang, str(exc.detail)), field=field)
        return _response(exc.status_code, body, headers or None, lang=lang)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        lang = request_lang(request)
        detail = error_text(lang, f"internal error ({type(exc).__name__}); it has been logged")
        return _response(500, ErrorBody(detail=detail), lang=lang)


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
            lang = request_lang(Request(scope))
            body = ErrorBody(detail=error_text(lang, str(refused.detail)), field="body")
            await _response(413, body, lang=lang)(scope, receive, send)
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
