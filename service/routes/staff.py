"""The staff review page: server-rendered HTML (Jinja2), plain forms, no JavaScript needed.

Staff sign in with a staff API key, checked by the same key store as the API; the key is kept in
an HttpOnly, SameSite=Strict cookie (so no other site can make the browser post a form with it)
and checked again on every request, so revoking the key ends the session. Every action calls the
same service functions as the API (service.invitations, service.rounds), and every POST answers
with a redirect (POST, redirect, GET) carrying a one-time message in a cookie.

English or Traditional Chinese: `?lang=zh-TW` or the switch link, remembered in a cookie.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError

from data.errors import Conflict, NotFound
from data.io import MEDIA_TYPES, ROUND_COLUMNS, round_rows, table_bytes
from data.schema import Invitation, InvitationStatus, RoundStatus
from data.search import query_key, school_key
from data.settings import StorageSettings
from data.taxonomies import normalize_country
from matching.groups import GroupOptions, propose_groups
from matching.rounds import RoundComparison, RoundOptions, UnmatchedSchool, remaining_capacity
from service import invitations, rounds
from service.auth import Principal, Role
from service.deps import State, verified
from service.errors import ApiError, error_text
from service.i18n import (
    DEFAULT_LANG,
    LANGS,
    Lang,
    current_lang,
    gettext,
    helpers,
    hint_text,
    install,
    negotiate,
    rule_text,
)
from service.invitations import PairRefused
from service.models import PairRef
from service.state import IndexNotReady, ServiceState

KEY_COOKIE = "pm_staff"
LANG_COOKIE = "pm_lang"
FLASH_COOKIE = "pm_flash"
SEARCH_LIMIT = 50
SUGGESTIONS = 10
ROWS_SHOWN = 500
INDEXING_PAGE = "/staff/indexing"
# How often a progress page (a running round, a first start's indexing) reloads itself.
PROGRESS_REFRESH_SECONDS = 1
_SCHOOL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_IDS = re.compile(r"[\s,;]+")

router = APIRouter(prefix="/staff", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
install(templates.env)


# --------------------------------------------------------------------------- session, language, messages


def page_lang(request: Request) -> Lang:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked  # type: ignore[return-value]
    kept = request.cookies.get(LANG_COOKIE)
    if kept in LANGS:
        return kept  # type: ignore[return-value]
    return negotiate(request.headers.get("accept-language")) or DEFAULT_LANG


def signed_in(request: Request, state: State) -> Principal:
    """The staff member behind the session cookie; anyone else is sent to the sign-in form."""
    key = request.cookies.get(KEY_COOKIE)
    who = verified(request, state.store, key) if key else None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if who is None or who.role != Role.STAFF:
        raise HTTPException(303, "staff: sign in first", headers={"Location": f"/staff/login?next={quote(target)}"})
    if not state.ready and request.url.path != INDEXING_PAGE:  # a first start: say how far it is
        raise HTTPException(303, "index: not ready", headers={"Location": f"{INDEXING_PAGE}?next={quote(target)}"})
    return who


StaffUser = Annotated[Principal, Depends(signed_in)]
PageLang = Annotated[Lang, Depends(page_lang)]


def render(request: Request, lang: Lang, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    flash = _read_flash(request)
    other: Lang = "en" if lang == "zh-TW" else "zh-TW"
    switch = request.url.path + "?" + urlencode({**request.query_params, "lang": other})
    current_lang.set(lang)
    service: ServiceState = request.app.state.service
    response = templates.TemplateResponse(
        request,
        name,
        {
            "lang": lang,
            "flash": flash_text(lang, flash),
            "flash_kind": flash["kind"] if flash else None,
            "switch_url": switch,
            "signed_in": KEY_COOKIE in request.cookies,
            "starting": None if service.ready else service.progress(),
            **helpers(lang),
            **context,
        },
        status_code=status_code,
    )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", path="/staff")
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/staff")
    return response


def redirect(location: str, message: tuple[str, str] | None = None) -> RedirectResponse:
    """303 to a page, with a one-time message ("ok" or "error", text) shown there."""
    response = RedirectResponse(location, status_code=303)
    if message is not None:
        kind, said = message
        value = base64.urlsafe_b64encode(json.dumps([kind, said[:1500]]).encode()).decode()
        response.set_cookie(FLASH_COOKIE, value, httponly=True, samesite="strict", path="/staff")
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    try:
        kind, said = json.loads(base64.urlsafe_b64decode(value.encode()))
    except (ValueError, TypeError):
        return None
    return {"kind": "error" if kind == "error" else "ok", "text": str(said)}


def _problem(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, PairRefused):
        return "error", f"refused:{','.join(exc.rules or [])}"
    if isinstance(exc, ApiError):
        return "error", exc.detail
    if isinstance(exc, ValidationError):
        return "error", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return "error", str(exc)


# Errors a staff action can meet: shown on the page it returns to, never as a JSON error page.
ACTION_ERRORS = (ApiError, Conflict, NotFound, ValueError, IndexNotReady)


def _school_path(school_id: str) -> str:
    if not _SCHOOL_ID.match(school_id):
        raise HTTPException(404, "school_id: not a school id")
    return f"/staff/schools/{quote(school_id)}"


# --------------------------------------------------------------------------- sign in and out


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, lang: PageLang, next: str = "/staff") -> HTMLResponse:
    return render(request, lang, "login.html", next=_safe_next(next), problem=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    state: State,
    lang: PageLang,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/staff",
) -> Response:
    who = verified(request, state.store, key)  # rate limits failed sign-ins
    if who is None:
        problem = gettext(lang, "Unknown or revoked key.")
        return render(request, lang, "login.html", 401, next=_safe_next(next), problem=problem)
    if who.role != Role.STAFF:
        problem = gettext(lang, "This is a %(role)s key; the staff page needs a staff key.", role=who.role.value)
        return render(request, lang, "login.html", 403, next=_safe_next(next), problem=problem)
    response = redirect(_safe_next(next))
    response.set_cookie(
        KEY_COOKIE,
        key.strip(),
        httponly=True,
        samesite="strict",
        path="/staff",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = redirect("/staff/login")
    response.delete_cookie(KEY_COOKIE, path="/staff")
    return response


def _safe_next(target: str) -> str:
    """Only a path of this page: never another site (//evil.example) or another part of the app."""
    plain = target.startswith("/staff") and "\\" not in target and ".." not in target
    return target if plain else "/staff"


@router.get("/indexing", response_class=HTMLResponse, response_model=None)
def indexing(
    request: Request, _: StaffUser, state: State, lang: PageLang, next: str = "/staff"
) -> HTMLResponse | RedirectResponse:
    """Where pages that need the index wait on a first start: how many profiles are encoded,
    reloading itself until the index is ready, then the page staff asked for."""
    if state.ready:
        return redirect(_safe_next(next))
    return render(request, lang, "indexing.html", refresh=PROGRESS_REFRESH_SECONDS * 2)


# --------------------------------------------------------------------------- dashboard

DASHBOARD_ROWS = 10
EXPIRING_DAYS = 7
REMOTE_FIRST = {"extremely_remote": 0, "remote": 1}


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, _: StaffUser, state: State, lang: PageLang) -> HTMLResponse:
    """What needs staff first: schools still without a partner (remote first), invitations about
    to expire, schools that let every invitation lapse, who joined lately, the latest evaluation."""
    state.store.expire_invitations()
    now = datetime.now(UTC)
    invites = _all_invitations(state)
    expiring = sorted(
        (i for i in invites if i.status == InvitationStatus.PENDING and i.expires_at - now < timedelta(EXPIRING_DAYS)),
        key=lambda i: i.expires_at,
    )
    answered = {i.to_school for i in invites if i.answered_at is not None}
    lapsed = Counter(i.to_school for i in invites if i.status == InvitationStatus.EXPIRED)
    silent = sorted(((n, sid) for sid, n in lapsed.items() if sid not in answered), reverse=True)
    with state.reading() as matcher:
        active = [s for s in matcher.schools.values() if s.active]
        alone = sorted(
            (s for s in active if not matcher.partners(s.id)),
            key=lambda s: (REMOTE_FIRST.get(s.remoteness.value, 2), s.id),
        )
        recent = sorted(active, key=lambda s: s.created_at, reverse=True)[:DASHBOARD_ROWS]
    named = {i.from_school for i in expiring} | {i.to_school for i in expiring} | {sid for _, sid in silent}
    return render(
        request,
        lang,
        "dashboard.html",
        alone=alone[:DASHBOARD_ROWS],
        alone_total=len(alone),
        alone_remote=sum(1 for s in alone if s.remoteness.value in REMOTE_FIRST),
        expiring=expiring[:DASHBOARD_ROWS],
        expiring_total=len(expiring),
        silent=silent[:DASHBOARD_ROWS],
        silent_total=len(silent),
        recent=recent,
        others=state.store.get_schools(named),
        evaluation=evaluation_sentence(lang, state),
        days=EXPIRING_DAYS,
    )


def _all_invitations(state: ServiceState, page: int = 1000) -> list[Invitation]:
    found: list[Invitation] = []
    after: str | None = None
    while True:
        batch = state.store.list_invitations(after=after, limit=page)
        found += batch
        if len(batch) < page:
            return found
        after = batch[-1].id


# --------------------------------------------------------------------------- search


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request,
    _: StaffUser,
    state: State,
    lang: PageLang,
    q: str = "",
    country: str = "",
    after: str = "",
    start: int = 1,
) -> HTMLResponse:
    """Schools by name (any script, 台/臺, pinyin, English: data.search) or id, a page at a time
    with the true total; the next page starts after the last id shown."""
    q, country, after = q.strip()[:200], country.strip()[:100], after.strip()[:64]
    problem, found, total = None, [], 0
    if q or country:
        try:
            code = normalize_country(country) if country else None
            exact = state.store.get_schools([q]) if q and _SCHOOL_ID.match(q) and not after else {}
            exact = {i: s for i, s in exact.items() if code is None or s.country == code}
            filters: dict[str, Any] = {"q": q or None, "country": code, "active": None}
            total = state.store.count_schools(**filters)
            found = list(exact.values()) + [
                s
                for s in state.store.list_schools(after=after or None, limit=SEARCH_LIMIT, **filters)
                if s.id not in exact
            ]
            total += sum(1 for s in exact.values() if not _matches_name(s, q))
        except ValueError as exc:
            problem = str(exc)
    start = max(1, start)
    next_url = None
    if found and start - 1 + len(found) < total:
        next_url = "/staff/search?" + urlencode(
            {"q": q, "country": country, "after": found[-1].id, "start": start + len(found)}
        )
    return render(
        request,
        lang,
        "search.html",
        q=q,
        country_q=country,
        problem=problem,
        schools=found,
        total=total,
        first=start,
        last=start - 1 + len(found),
        next_url=next_url,
        searched=bool(q or country),
    )


def _matches_name(school: Any, q: str) -> bool:
    """Whether the name search itself finds the school asked for by id (so it is not counted twice)."""
    return query_key(q) in school_key(school)


# --------------------------------------------------------------------------- one school


@router.get("/schools/{school_id}", response_class=HTMLResponse)
def school_page(request: Request, school_id: str, _: StaffUser, state: State, lang: PageLang) -> HTMLResponse:
    _school_path(school_id)
    school = state.store.get_schools([school_id]).get(school_id)
    if school is None:
        return render(request, lang, "missing.html", 404, what=school_id)
    partnerships = state.store.list_partnerships(school_id=school_id, active=True)
    state.store.expire_invitations()
    pending = state.store.list_invitations(school_id=school_id, status=InvitationStatus.PENDING.value, limit=500)
    result, free, room = None, 0, {}
    with state.reading() as matcher:  # not recorded as shown: staff looking is not the school seeing them
        free = remaining_capacity(matcher, school)
        if school_id in matcher.schools and school.active:
            result = matcher.suggest(school_id, SUGGESTIONS)
            room = {
                s.school_id: remaining_capacity(matcher, matcher.schools[s.school_id])
                for s in result.suggestions
                if s.school_id in matcher.schools
            }
    scores = [s.score for s in result.suggestions] if result else []
    codes = [{r.code for r in s.reasons} for s in result.suggestions] if result else []
    named = {p.school_a for p in partnerships} | {p.school_b for p in partnerships}
    named |= {i.from_school for i in pending} | {i.to_school for i in pending}
    named |= {s.school_id for s in result.suggestions} if result else set()
    others = state.store.get_schools(named)
    return render(
        request,
        lang,
        "school.html",
        school=school,
        partnerships=partnerships,
        pending=pending,
        result=result,
        others=others,
        free=free,
        holding=sum(1 for i in pending if i.from_school == school_id)
        + sum(1 for i in pending if i.to_school == school_id),
        room=room,
        reordered=scores != sorted(scores, reverse=True),
        hints=[said for said in (hint_text(lang, h) for h in (result.hints if result else [])) if said],
        common=set.intersection(*codes) if len(codes) > 1 else set(),
    )


@router.post("/schools/{school_id}/invite")
def invite(
    school_id: str,
    _: StaffUser,
    state: State,
    to_school: Annotated[str, Form(max_length=64)],
    message: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    back = _school_path(school_id)
    try:
        sent = invitations.invite(state, school_id, to_school, message.strip() or None)
    except ACTION_ERRORS as exc:
        return redirect(back, _problem(exc))
    return redirect(back, ("ok", f"invited:{sent.id}"))


@router.post("/invitations/{invitation_id}/accept")
def accept_invitation(
    invitation_id: str, _: StaffUser, state: State, back: Annotated[str, Form(max_length=64)]
) -> RedirectResponse:
    page = _school_path(back)
    try:
        _, partnership = invitations.accept(state, invitation_id)
    except ACTION_ERRORS as exc:
        return redirect(page, _problem(exc))
    return redirect(page, ("ok", f"accepted:{partnership.id}"))


@router.post("/invitations/{invitation_id}/decline")
def decline_invitation(
    invitation_id: str,
    _: StaffUser,
    state: State,
    back: Annotated[str, Form(max_length=64)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> RedirectResponse:
    page = _school_path(back)
    try:
        declined = invitations.decline(state, invitation_id, reason.strip() or None)
    except ACTION_ERRORS as exc:
        return redirect(page, _problem(exc))
    return redirect(page, ("ok", f"declined:{declined.id}"))


@router.get("/schools/{school_id}/groups", response_class=HTMLResponse)
def groups_page(
    request: Request,
    school_id: str,
    _: StaffUser,
    state: State,
    lang: PageLang,
    sdg: int | None = None,
    size: int | None = None,
) -> HTMLResponse:
    _school_path(school_id)
    school = state.store.get_schools([school_id]).get(school_id)
    if school is None:
        return render(request, lang, "missing.html", 404, what=school_id)
    result, problem = None, None
    sdg = sdg if sdg is not None else (school.sdgs[0] if school.sdgs else 4)
    try:
        options = GroupOptions(**({"min_size": size, "max_size": size} if size else {}))
        with state.reading() as matcher:
            if school_id in matcher.schools:
                result = propose_groups(matcher, school_id, sdg, options)
    except (ValueError, ValidationError) as exc:
        problem = _problem(exc)[1]
    return render(
        request, lang, "groups.html", school=school, sdg_chosen=sdg, size=size, result=result, problem=problem
    )


# --------------------------------------------------------------------------- rounds


@router.get("/rounds", response_class=HTMLResponse)
def rounds_page(request: Request, _: StaffUser, state: State, lang: PageLang) -> HTMLResponse:
    return render(request, lang, "rounds.html", rounds=state.store.list_rounds(limit=100), defaults=RoundOptions())


@router.post("/rounds")
def start_round(
    who: StaffUser,
    state: State,
    cohort: Annotated[str, Form(max_length=2_000_000)] = "all",
    ids: Annotated[str, Form(max_length=2_000_000)] = "",
    coverage_first: Annotated[bool, Form()] = False,
    nsp_priority: Annotated[bool, Form()] = False,
    per_school: Annotated[int, Form()] = RoundOptions().per_school,
) -> RedirectResponse:
    chosen = [i for i in _IDS.split(ids) if i] if cohort == "ids" else None
    try:
        if chosen is not None and not chosen:
            raise ApiError(422, "cohort: no school id given", field="cohort")
        options = RoundOptions(coverage_first=coverage_first, nsp_priority=nsp_priority, per_school=per_school)
        job = rounds.submit(state, chosen, options, created_by=who.key_id)
    except (*ACTION_ERRORS, ValidationError) as exc:
        return redirect("/staff/rounds", _problem(exc))
    return redirect(f"/staff/rounds/{quote(job.id)}/progress")


@router.get("/rounds/{round_id}/progress", response_class=HTMLResponse, response_model=None)
def round_progress(
    request: Request, round_id: str, _: StaffUser, state: State, lang: PageLang
) -> HTMLResponse | RedirectResponse:
    """A running round's stage and progress, reloading itself (a meta refresh, no script) until the
    round is stored; then the review page, with how many pairs it proposes."""
    try:
        stored = state.store.get_round(round_id, result=False)
    except NotFound:
        try:
            job = state.store.get_round_job(round_id)
        except NotFound:
            return render(request, lang, "missing.html", 404, what=round_id)
        return render(
            request,
            lang,
            "round_progress.html",
            job=job,
            job_error=error_text(lang, job.error or ""),
            refresh=PROGRESS_REFRESH_SECONDS,
        )
    pairs = stored.summary.get("pairs", 0)
    return redirect(f"/staff/rounds/{quote(stored.id)}", ("ok", f"round_started:{stored.id}:{pairs}"))


ROUND_PAGE = 50


def _pair_key(a: str, b: str) -> str:
    return f"{a}|{b}" if a < b else f"{b}|{a}"


def _dropped(values: list[str]) -> set[str]:
    """Pairs staff dropped while reviewing, kept in the page's address ("a|b", either order)."""
    return {_pair_key(*v.split("|", 1)) for v in values if v.count("|") == 1}


@dataclass(frozen=True)
class RoundReview:
    """What the review page reads of a stored round. Only what it shows is validated into models
    (the comparison here, a page of pairs and the first unmatched rows where they are shown):
    validating a whole big round takes a worker's CPU for seconds on every view."""

    cohort_size: int
    method: str
    comparison: RoundComparison
    pairs: Sequence[Mapping[str, Any]]
    unmatched: Sequence[Mapping[str, Any]]

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> RoundReview:
        """From :func:`rounds.stored_result`'s plain values."""
        return cls(
            cohort_size=result["cohort_size"],
            method=result["method"],
            comparison=RoundComparison.model_validate(result["comparison"]),
            pairs=result["pairs"],
            unmatched=result["unmatched"],
        )


@router.get("/rounds/{round_id}", response_class=HTMLResponse, response_model=None)
def round_page(
    request: Request,
    round_id: str,
    _: StaffUser,
    state: State,
    lang: PageLang,
    country: str = "",
    region: str = "",
    page: int = 1,
    drop: Annotated[list[str] | None, Query(max_length=5000)] = None,
) -> HTMLResponse | RedirectResponse:
    """A round to review: a plain summary, pairs a page at a time, filtered by a partner's country
    or region; staff drop single pairs (kept in the address until they accept) and accept the rest."""
    try:
        stored = state.store.get_round(round_id, result=False)
    except NotFound:
        try:
            state.store.get_round_job(round_id)
        except NotFound:
            return render(request, lang, "missing.html", 404, what=round_id)
        return redirect(f"/staff/rounds/{quote(round_id)}/progress")  # still running, or failed
    result = RoundReview.of(rounds.stored_result(state.store, round_id))
    dropped = _dropped(drop or [])
    ids = {p[side] for p in result.pairs for side in ("school_a", "school_b")} | {
        u["school_id"] for u in result.unmatched
    }
    names = state.store.get_schools(ids)
    matching = rounds.matching_pairs(result.pairs, names, country=country, region=region)
    pages = max(1, -(-len(matching) // ROUND_PAGE))
    page = min(max(1, page), pages)
    shown = rounds.pairs_page(matching, names, offset=(page - 1) * ROUND_PAGE, limit=ROUND_PAGE)
    kept = [p for p in result.pairs if _pair_key(p["school_a"], p["school_b"]) not in dropped]
    countries = sorted({s.country for s in names.values()})
    regions = sorted({s.region for s in names.values() if s.region and (not country or s.country == country)})

    def link(**change: Any) -> str:
        """This review page with some of its filters, page or dropped pairs changed."""
        values = {"country": country, "region": region, "page": page, "drop": sorted(dropped)} | change
        return f"/staff/rounds/{quote(round_id)}?" + urlencode(values, doseq=True)

    return render(
        request,
        lang,
        "round.html",
        stored=stored,
        result=result,
        pairs=shown.items,
        matching_total=shown.total,
        page=page,
        pages=pages,
        unmatched=[UnmatchedSchool.model_validate(u) for u in result.unmatched[:ROWS_SHOWN]],
        rows_shown=ROWS_SHOWN,
        names=names,
        proposed=stored.status == RoundStatus.PROPOSED,
        dropped=dropped,
        kept=len(kept),
        kept_schools=len({p[side] for p in kept for side in ("school_a", "school_b")}),
        countries=countries,
        regions=regions,
        country_chosen=country,
        region_chosen=region,
        pair_key=_pair_key,
        link=link,
    )


@router.get("/rounds/{round_id}/export.{fmt}")
def export_round_pairs(
    round_id: str,
    fmt: str,
    _: StaffUser,
    state: State,
    drop: Annotated[list[str] | None, Query(max_length=5000)] = None,
) -> Response:
    """The pairs still kept (dropped ones left out) as CSV (with a BOM, for Excel) or XLSX."""
    if fmt not in ("csv", "xlsx"):
        raise HTTPException(404, "format: csv or xlsx")
    try:
        rows = round_rows(state.store, round_id, [tuple(k.split("|")) for k in _dropped(drop or [])])
    except NotFound:
        raise HTTPException(404, f"round {round_id!r} not found") from None
    body = table_bytes(fmt, ROUND_COLUMNS, rows)  # type: ignore[arg-type]
    headers = {"Content-Disposition": f'attachment; filename="{round_id}.{fmt}"'}
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)  # type: ignore[index]


@router.post("/rounds/{round_id}/accept")
def accept_round(
    round_id: str,
    who: StaffUser,
    state: State,
    start_date: Annotated[str, Form(max_length=20)] = "",
    drop: Annotated[list[str] | None, Form(max_length=5000)] = None,
) -> RedirectResponse:
    """Start the round's pairs less those staff dropped while reviewing."""
    page = f"/staff/rounds/{quote(round_id)}"
    try:
        start = date.fromisoformat(start_date) if start_date.strip() else None
        exclude = [PairRef(school_a=a, school_b=b) for a, b in (k.split("|") for k in _dropped(drop or []))]
        _, started = rounds.accept_round(state, round_id, start_date=start, exclude=exclude, accepted_by=who.key_id)
    except ACTION_ERRORS as exc:
        return redirect(page, _problem(exc))
    return redirect(page, ("ok", f"round_accepted:{len(started)}"))


# --------------------------------------------------------------------------- evaluation


def data_dir(state: ServiceState) -> Path:
    """Where reports are written: the data dir, which holds the index unless that was moved."""
    return state.index_dir.parent if state.settings.index_dir is None else StorageSettings().data_dir


def _report_folder(state: ServiceState) -> Path | None:
    from evaluation.report import latest_report  # matplotlib and the evaluation code load only when asked

    return latest_report(data_dir(state))


def _latest_metrics(state: ServiceState) -> tuple[Path, dict[str, Any]] | None:
    from evaluation.report import METRICS_FILE

    folder = _report_folder(state)
    if folder is None or not (folder / METRICS_FILE).is_file():
        return None
    return folder, json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))


def evaluation_sentence(lang: Lang, state: ServiceState) -> str | None:
    """The latest evaluation in one sentence staff can repeat: how often a real partner is among
    the first ten suggestions, against a random order, and how evenly schools are shown."""
    latest = _latest_metrics(state)
    if latest is None:
        return None
    _, payload = latest
    return evaluation_summary(lang, payload)


def evaluation_summary(lang: Lang, payload: dict[str, Any]) -> str | None:
    from evaluation.report import TARGET_SPLIT

    splits = payload.get("splits") or {}
    split = splits.get(TARGET_SPLIT) or next(iter(splits.values()), None)
    if not split:
        return None
    k = int((payload.get("settings") or {}).get("exposure_k", 10))
    table = split["metrics"]
    full, plain = table.get("full", {}), table.get("random", {})
    recall, baseline = full.get(f"recall@{k}"), plain.get(f"recall@{k}")
    gini, coverage = full.get(f"gini@{k}"), full.get(f"coverage@{k}")
    if recall is None or baseline is None or gini is None or coverage is None:
        return None
    when = str(payload.get("generated_at", ""))[:10]
    return gettext(
        lang,
        "The evaluation of %(when)s hid some real partnerships and asked for suggestions: the product put a "
        "hidden partner among the first %(k)s suggestions for %(recall)s of schools (a random order of "
        "allowed partners: %(baseline)s). It showed %(coverage)s of schools in someone's list; the "
        "unevenness of attention was %(gini)s (0: every school shown equally often, 1: one school shown to all).",
        when=when,
        k=k,
        recall=f"{recall:.0%}",
        baseline=f"{baseline:.0%}",
        coverage=f"{coverage:.0%}",
        gini=f"{gini:.2f}",
    )


EVALUATION_LOG = "evaluation-run.log"


@router.get("/evaluation", response_class=HTMLResponse)
def evaluation_page(request: Request, _: StaffUser, state: State, lang: PageLang) -> HTMLResponse:
    """The latest evaluation in the staff's words first; the full report (tables, plots) folded."""
    from evaluation.report import REPORT_FILE

    running = _evaluation_running(state)
    folder = _report_folder(state)
    if folder is None:
        return render(request, lang, "evaluation.html", folder=None, report=None, plots=[], running=running)
    plots = sorted(p.name for p in folder.glob("*.png"))
    source = _STORE_MENTION.sub("", (folder / REPORT_FILE).read_text(encoding="utf-8"))
    report, shown = _markdown(source, plots)
    latest = _latest_metrics(state)
    return render(
        request,
        lang,
        "evaluation.html",
        folder=folder.name,
        report=report,
        summary=evaluation_summary(lang, latest[1]) if latest else None,
        plots=[name for name in plots if name not in shown],
        running=running,
    )


# "on the store `sqlite:////home/.../partnermatch.db`": where the data lives is no business of the page.
_STORE_MENTION = re.compile(r",? on the store `[^`]*`")


def _evaluation_running(state: ServiceState) -> bool:
    process = _RUNS.get(str(data_dir(state)))
    return process is not None and process.poll() is None


_RUNS: dict[str, subprocess.Popen[bytes]] = {}


@router.post("/evaluation/run")
def start_evaluation(_: StaffUser, state: State) -> RedirectResponse:
    """`partnermatch evaluate` in a background process on this data dir; the page shows it running
    and the new report once it is written (its output goes to evaluation-run.log there)."""
    if _evaluation_running(state):
        return redirect("/staff/evaluation", ("ok", "evaluation_running"))
    folder = data_dir(state)
    with (folder / EVALUATION_LOG).open("ab") as log:
        _RUNS[str(folder)] = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "evaluate", "--data-dir", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return redirect("/staff/evaluation", ("ok", "evaluation_started"))


@router.get("/evaluation/files/{name}")
def evaluation_file(name: str, _: StaffUser, state: State) -> FileResponse:
    """A PNG of the latest report, by its bare file name: nothing outside that folder is served."""
    folder = _report_folder(state)
    if folder is None or "/" in name or "\\" in name or not name.endswith(".png") or name.startswith("."):
        raise HTTPException(404, "name: no such plot in the latest report")
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or not path.is_file():
        raise HTTPException(404, "name: no such plot in the latest report")
    return FileResponse(path, media_type="image/png")


def _markdown(source: str, plots: list[str]) -> tuple[Markup, set[str]]:
    """report.md as HTML (raw HTML in it is escaped, not passed through) and the plots it shows:
    images that name a plot of the folder point at the plot route, any other source is dropped."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(source)
    shown: set[str] = set()
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                src = str(child.attrGet("src") or "")
                child.attrSet("src", f"/staff/evaluation/files/{quote(src)}" if src in plots else "")
                shown.add(src)
    return Markup(parser.renderer.render(tokens, parser.options, {})), shown  # html off: raw HTML in it was escaped


def flash_text(lang: Lang, flash: dict[str, str] | None) -> str | None:
    """A message saved by a redirect, in the page's language (codes like "invited:<id>")."""
    if flash is None:
        return None
    code, _, rest = flash["text"].partition(":")
    if flash["kind"] == "ok":
        if code == "invited":
            return gettext(lang, "Invitation %(id)s sent.", id=rest)
        if code == "accepted":
            return gettext(lang, "Invitation accepted: partnership %(id)s started.", id=rest)
        if code == "declined":
            return gettext(lang, "Invitation %(id)s declined.", id=rest)
        if code == "round_started":
            round_id, _, pairs = rest.partition(":")
            return gettext(lang, "Round %(id)s proposed %(n)s pair(s).", id=round_id, n=pairs)
        if code == "round_accepted":
            return gettext(lang, "Round accepted: %(n)s partnership(s) started.", n=rest)
        if code == "evaluation_started":
            return gettext(lang, "The evaluation started; its report appears here when it is done (a few minutes).")
        if code == "evaluation_running":
            return gettext(lang, "An evaluation is already running.")
    if code == "refused":
        return gettext(lang, "These two schools cannot be paired: %(why)s", why=rule_text(lang, rest.split(",")))
    return gettext(lang, "Could not do that") + ("：" if lang == "zh-TW" else ": ") + error_text(lang, flash["text"])
