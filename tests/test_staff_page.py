"""The staff review page through TestClient, on a generated world of 300 schools with the real model
and FAISS: sign-in, roles, search, a school's suggestions with their reasons in English and
Chinese, inviting and answering on a school's behalf, groups, rounds and the evaluation report."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from data.schema import InvitationStatus, PartnershipOrigin
from evaluation.report import LATEST, REPORT_FILE, REPORTS_FOLDER, point_latest
from matching.rounds import remaining_capacity
from service.app import create_app
from service.auth import Role, create_key
from service.state import ServiceState
from tests.serving import load_world
from tests.test_api import open_state

# The smallest valid PNG (1x1, transparent).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6300010000000500010d0a2db4"
    "0000000049454e44ae426082"
)


@dataclass
class Page:
    client: TestClient
    state: ServiceState
    data_dir: Path
    keys: dict[str, str]
    school: str  # a Taiwanese school with room and suggestions

    def login(self, who: str = "staff") -> None:
        response = self.client.post("/staff/login", data={"key": self.keys[who], "next": "/staff"})
        assert response.status_code == 200 and response.url.path == "/staff", response.text


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path, small_world: Any) -> Iterator[Page]:
    data_dir = tmp_path_factory.mktemp("staff-page")
    state = open_state(data_dir, embedding_cache_dir)
    load_world(state, small_world)
    with state.reading() as matcher:
        school = next(
            s.id
            for s in sorted(matcher.schools.values(), key=lambda s: s.id)
            if s.country == "TW"
            and s.active
            and remaining_capacity(matcher, s) >= 2
            and s.sdgs
            and "virtual" in s.exchange_modes
            and len(matcher.suggest(s.id, 10).suggestions) == 10
        )
    keys = {
        role.value: create_key(state.store, role, school_id=school if role == Role.SCHOOL else None).key
        for role in Role
    }
    with TestClient(create_app(state)) as client:
        yield Page(client, state, data_dir, keys, school)
    state.close()


@pytest.fixture
def staff(page: Page) -> Iterator[Page]:
    """The page with a staff member signed in (English); signed out afterwards."""
    page.client.cookies.clear()
    page.login()
    yield page
    page.client.cookies.clear()


def _text(body: str) -> str:
    """The page's text without tags, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_every_page_needs_a_staff_sign_in(page: Page) -> None:
    page.client.cookies.clear()
    for path in (
        "/staff",
        f"/staff/schools/{page.school}",
        "/staff/rounds",
        "/staff/evaluation",
        "/staff/evaluation/files/x.png",
        f"/staff/schools/{page.school}/groups?sdg=4",
    ):
        response = page.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/staff/login?next="), path
    posted = page.client.post(f"/staff/schools/{page.school}/invite", data={"to_school": "x"}, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"].startswith("/staff/login")
    followed = page.client.get("/staff/rounds")
    assert followed.url.path == "/staff/login" and "Staff sign-in" in followed.text
    assert 'name="next" value="/staff/rounds"' in followed.text


def test_wrong_keys_and_roles_are_refused(page: Page) -> None:
    page.client.cookies.clear()
    for who, status, message in (("portal", 403, "This is a portal key"), ("school", 403, "This is a school key")):
        response = page.client.post("/staff/login", data={"key": page.keys[who]})
        assert response.status_code == status and message in response.text
        assert "pm_staff" not in response.headers.get("set-cookie", "")
    unknown = page.client.post("/staff/login", data={"key": "pm_" + "x" * 43})
    assert unknown.status_code == 401 and "Unknown or revoked key" in unknown.text
    page.client.cookies.set("pm_staff", page.keys["portal"], path="/staff")
    refused = page.client.get("/staff", follow_redirects=False)
    assert refused.status_code == 303, "a portal key in the cookie is no session"
    page.client.cookies.clear()


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(page: Page) -> None:
    page.client.cookies.clear()
    response = page.client.post(
        "/staff/login", data={"key": page.keys["staff"], "next": "/staff/rounds"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/staff/rounds"
    cookie = response.headers["set-cookie"].lower()
    assert "pm_staff=" in cookie and "httponly" in cookie and "samesite=strict" in cookie and "path=/staff" in cookie
    for elsewhere in ("//evil.example/x", "https://evil.example/staff", "/staff/../v1/stats", "/v1/stats"):
        escape = page.client.post(
            "/staff/login", data={"key": page.keys["staff"], "next": elsewhere}, follow_redirects=False
        )
        assert escape.headers["location"] == "/staff", f"never redirected off the staff page: {elsewhere}"
    assert page.client.get("/staff", follow_redirects=False).status_code == 200
    page.client.post("/staff/logout")
    assert page.client.get("/staff", follow_redirects=False).status_code == 303


def test_search_finds_schools_by_name_id_and_country(staff: Page) -> None:
    school = staff.state.store.get_school(staff.school)
    by_name = staff.client.get("/staff/search", params={"q": school.name_local[:4]})
    assert by_name.status_code == 200 and f"/staff/schools/{school.id}" in by_name.text
    by_id = staff.client.get("/staff/search", params={"q": school.id})
    assert f"/staff/schools/{school.id}" in by_id.text and "1–1 of 1 school(s)" in _text(by_id.text)
    by_country = _text(staff.client.get("/staff/search", params={"country": "Malaysia"}).text)
    assert "Malaysia" in by_country and "Taiwan" not in by_country.split("school(s)")[1]
    nothing = staff.client.get("/staff/search", params={"q": "no such school anywhere"})
    assert "No school matches." in nothing.text
    bad = staff.client.get("/staff/search", params={"country": "Atlantis"})
    assert bad.status_code == 200 and "country" in _text(bad.text).lower() and "Atlantis" in bad.text


def test_search_folds_scripts_and_romanisation_and_pages_with_a_true_total(staff: Page) -> None:
    store = staff.state.store
    taitung = store.count_schools(region="TW-TTT", active=None)
    assert taitung > 0, "the small world has schools in Taitung"
    for q in ("台東", "臺東", "台东", "Taitung", "taidong"):
        text = _text(staff.client.get("/staff/search", params={"q": q}).text)
        assert f"of {taitung} school(s)" in text or f"of {taitung + 0} school(s)" in text, q
    everyone = store.count_schools(active=None)
    first = staff.client.get("/staff/search", params={"country": "TW"})
    tw_total = store.count_schools(country="TW", active=None)
    assert f"1–50 of {tw_total} school(s)" in _text(first.text) and tw_total > 50 and everyone > tw_total
    following = re.search(r'id="next-page" href="([^"]+)"', first.text)
    assert following is not None
    second = staff.client.get(html.unescape(following.group(1)))
    assert f"51–{min(100, tw_total)} of {tw_total} school(s)" in _text(second.text)
    shown_first = set(re.findall(r'href="/staff/schools/([^"]+)"', first.text))
    shown_second = set(re.findall(r'href="/staff/schools/([^"]+)"', second.text))
    assert shown_first and shown_second and not shown_first & shown_second


def test_suggestions_and_reasons_in_both_languages(staff: Page) -> None:
    with staff.state.reading() as matcher:
        expected = matcher.suggest(staff.school, 10).suggestions
    english = staff.client.get(f"/staff/schools/{staff.school}")
    assert english.status_code == 200
    text = _text(english.text)
    assert "Suggested partners" in text and "Fit for the partner" in text and "shared SDGs" in text
    assert english.text.count('class="suggestion"') == 10
    for suggestion in expected[:3]:
        assert f'data-school="{suggestion.school_id}"' in english.text
        assert all(reason.text_en in text for reason in suggestion.reasons if reason.code != "school_hours")
        assert f"{suggestion.score:.3f}" in text and f"{suggestion.fit_backward:.3f}" in text

    chinese = staff.client.get(f"/staff/schools/{staff.school}", params={"lang": "zh-TW"})
    assert "pm_lang=zh-TW" in chinese.headers["set-cookie"]
    text = _text(chinese.text)
    assert "建議的合作學校" in text and "對夥伴的契合度" in text and "共同永續目標" in text
    assert all(reason.text_zh in text for reason in expected[0].reasons if reason.code != "school_hours")
    assert "Suggested partners" not in text and "Taipei" not in text
    remembered = _text(staff.client.get("/staff/search").text)
    assert "搜尋學校" in remembered, "the language is kept in a cookie"
    staff.client.get("/staff/search", params={"lang": "en"})
    assert "Find a school" in staff.client.get("/staff/search").text


def test_invite_accept_and_decline_on_the_schools_behalf(staff: Page) -> None:
    store = staff.state.store
    with staff.state.reading() as matcher:
        first, second = (s.school_id for s in matcher.suggest(staff.school, 2).suggestions)
    sent = staff.client.post(f"/staff/schools/{staff.school}/invite", data={"to_school": first, "message": "Hi!"})
    assert sent.status_code == 200 and sent.url.path == f"/staff/schools/{staff.school}"
    pending = store.list_invitations(school_id=staff.school, status="pending")
    invitation = next(i for i in pending if i.to_school == first)
    assert f"Invitation {invitation.id} sent." in sent.text and invitation.message == "Hi!"
    assert f"/staff/invitations/{invitation.id}/accept" in sent.text

    again = staff.client.post(f"/staff/schools/{staff.school}/invite", data={"to_school": first})
    assert 'class="error"' in again.text and "These two schools cannot be paired: a school " in _text(again.text)
    assert len([i for i in store.list_invitations(school_id=staff.school) if i.to_school == first]) == 1

    accepted = staff.client.post(f"/staff/invitations/{invitation.id}/accept", data={"back": staff.school})
    assert accepted.status_code == 200 and "partnership" in _text(accepted.text)
    partners_section = accepted.text.split('id="partners"')[1].split("</section>")[0]
    assert f"/staff/schools/{first}" in partners_section
    started = [p for p in store.list_partnerships(school_id=staff.school, active=True) if first in p.pair]
    assert len(started) == 1 and started[0].origin == PartnershipOrigin.SUGGESTED
    suggestions = accepted.text.split('id="suggestions"')[1]
    assert f'data-school="{first}"' not in suggestions, "a new partner is no longer suggested"

    staff.client.post(f"/staff/schools/{staff.school}/invite", data={"to_school": second})
    pending = next(i for i in store.list_invitations(school_id=staff.school, status="pending") if i.to_school == second)
    declined = staff.client.post(
        f"/staff/invitations/{pending.id}/decline", data={"back": staff.school, "reason": "No room this term"}
    )
    assert f"Invitation {pending.id} declined." in declined.text
    answered = store.get_invitation(pending.id)
    assert answered.status == InvitationStatus.DECLINED and answered.decline_reason == "No room this term"


def test_groups_page_shows_groups_with_reasons(staff: Page) -> None:
    school = staff.state.store.get_school(staff.school)
    response = staff.client.get(f"/staff/schools/{school.id}/groups", params={"sdg": school.sdgs[0]})
    assert response.status_code == 200
    assert response.text.count('class="group"') >= 1
    text = _text(response.text)
    assert "Shared school hours" in text and school.display_name in text
    chinese = _text(
        staff.client.get(f"/staff/schools/{school.id}/groups", params={"sdg": school.sdgs[0], "lang": "zh-TW"}).text
    )
    assert "跨境學校群組" in chinese and "共同上課時段" in chinese
    staff.client.get("/staff", params={"lang": "en"})


def _finished(staff: Page, progress: Any, seconds: float = 180) -> Any:
    """Follow a round's progress page as the browser's refresh would, until it leads elsewhere."""
    deadline = time.monotonic() + seconds
    while progress.url.path.endswith("/progress") and "round-failed" not in progress.text:
        assert time.monotonic() < deadline, "the round did not finish"
        time.sleep(0.2)
        progress = staff.client.get(progress.url.path)
    return progress


def test_a_round_is_started_reviewed_and_accepted_from_the_page(staff: Page) -> None:
    with staff.state.reading() as matcher:
        free = [
            s
            for s in sorted(matcher.schools.values(), key=lambda s: s.id)
            if s.active and remaining_capacity(matcher, s) > 0
        ]
    cohort = [s.id for s in free if s.country == "TW"][:20] + [s.id for s in free if s.country != "TW"][:40]
    refused = staff.client.post("/staff/rounds", data={"cohort": "ids", "ids": "tw-ghost, " + cohort[0]})
    assert refused.url.path == "/staff/rounds" and "unknown school(s) tw-ghost" in refused.text

    running = staff.client.post(
        "/staff/rounds", data={"cohort": "ids", "ids": "\n".join(cohort), "coverage_first": "true", "per_school": "10"}
    )
    # the page answers at once with the job's progress, reloading itself until the round is stored
    assert running.status_code == 200 and running.url.path.endswith("/progress"), running.url
    assert '<meta http-equiv="refresh"' in running.text and 'id="progress-stage"' in running.text
    job_id = running.url.path.split("/")[-2]
    chinese = _text(staff.client.get(running.url.path, params={"lang": "zh-TW"}).text)
    staff.client.get("/staff", params={"lang": "en"})
    assert "配對輪次" in chinese and "正在執行" in chinese
    started = _finished(staff, running)
    assert started.status_code == 200 and started.url.path == f"/staff/rounds/{job_id}"
    round_id = job_id
    stored = staff.state.store.get_round(round_id)
    assert stored.options["coverage_first"] is True and stored.options["per_school"] == 10
    assert stored.result is not None
    pairs = stored.result["pairs"]
    text = _text(started.text)
    assert f"Round {round_id} proposed {len(pairs)} pair(s)." in text
    assert started.text.count('class="pair"') == min(len(pairs), 50) > 0
    assert "Compared with first come, first served" in text or "First come, first served would" in text
    assert f'id="blocking-count">{stored.summary["blocking_pairs"]}<' in started.text
    assert all(r["text_en"] in text for r in pairs[0]["reasons"] if r["code"] != "school_hours")
    assert round_id in staff.client.get("/staff/rounds").text

    # drop one pair: it is kept out of the export and of the accepted partnerships
    dropped = pairs[0]
    drop_link = re.search(r'class="drop" href="([^"]+)"', started.text)
    assert drop_link is not None
    reviewed = staff.client.get(html.unescape(drop_link.group(1)))
    assert f"Accept the {len(pairs) - 1} kept pairs" in _text(reviewed.text) and "1 pair(s) dropped" in _text(
        reviewed.text
    )
    csv_link = html.unescape(re.search(r'id="export-csv" href="([^"]+)"', reviewed.text).group(1))
    exported = staff.client.get(csv_link)
    assert exported.status_code == 200 and exported.content.startswith("\ufeff".encode())
    lines = exported.content.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == len(pairs) and lines[0].startswith("school_a,")
    assert not any(line.startswith(f"{dropped['school_a']},") and dropped["school_b"] in line for line in lines)
    xlsx = staff.client.get(csv_link.replace("export.csv", "export.xlsx"))
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

    key = "|".join(sorted((dropped["school_a"], dropped["school_b"])))
    accepted = staff.client.post(f"/staff/rounds/{round_id}/accept", data={"start_date": "", "drop": [key]})
    assert f"Round accepted: {len(pairs) - 1} partnership(s) started." in _text(accepted.text)
    assert staff.state.store.get_round(round_id).status.value == "accepted"
    started_pairs = {tuple(sorted(p.pair)) for p in staff.state.store.list_partnerships(active=True)}
    assert tuple(sorted((dropped["school_a"], dropped["school_b"]))) not in started_pairs
    assert 'id="round-status">accepted<' in accepted.text and "/accept" not in accepted.text
    twice = staff.client.post(f"/staff/rounds/{round_id}/accept", data={})
    assert 'class="error"' in twice.text and "already accepted" in twice.text


def test_evaluation_page_shows_the_latest_report_and_serves_only_its_plots(staff: Page) -> None:
    missing = staff.client.get("/staff/evaluation")
    assert missing.status_code == 200 and "<code>partnermatch evaluate</code>" in missing.text

    folder = staff.data_dir / REPORTS_FOLDER / "20260101T000000Z"
    folder.mkdir(parents=True)
    (folder / REPORT_FILE).write_text(
        "# Evaluation\n\nGenerated today, on the store `sqlite:////secret/place.db`: 300 schools.\n\n"
        "| method | recall@10 |\n| --- | --- |\n| full | 0.4210 |\n\n"
        "![Recall](recall_at_k.png)\n\n<script>alert(1)</script>\n",
        encoding="utf-8",
    )
    (folder / "recall_at_k.png").write_bytes(PNG)
    (folder / "extra.png").write_bytes(PNG)
    point_latest(folder)
    assert (staff.data_dir / REPORTS_FOLDER / LATEST).is_symlink()
    (staff.data_dir / "secret.png").write_bytes(b"not for the page")

    shown = staff.client.get("/staff/evaluation")
    assert "<table>" in shown.text and "<td>0.4210</td>" in shown.text
    assert 'src="/staff/evaluation/files/recall_at_k.png"' in shown.text
    assert 'src="/staff/evaluation/files/extra.png"' in shown.text, "plots the report does not show are listed"
    assert "<script>" not in shown.text and "&lt;script&gt;" in shown.text
    assert "secret/place.db" not in shown.text and "300 schools" in shown.text, "the store's address is not shown"

    plot = staff.client.get("/staff/evaluation/files/recall_at_k.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png" and plot.content == PNG
    for name in ("..%2Fsecret.png", "..%2F..%2Fsecret.png", REPORT_FILE, "nope.png", ".hidden.png"):
        assert staff.client.get(f"/staff/evaluation/files/{name}").status_code == 404, name


class _PageWords(HTMLParser):
    """The words a reader sees on a page, less names and ids: links, .muted notes, form fields,
    [data-names] cells and the full (English) evaluation report are set aside."""

    SKIPPED: ClassVar[set[str]] = {"a", "code", "script", "style", "title", "textarea", "select", "option", "input"}
    VOID: ClassVar[set[str]] = {"input", "br", "meta", "link", "img"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        found = dict(attrs)
        skip = (
            tag in self.SKIPPED
            or "muted" in (found.get("class") or "").split()
            or "data-names" in found
            or found.get("id") == "full-report"
        )
        self.stack.append(skip or (bool(self.stack) and self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self.stack and self.stack[-1]):
            self.words += re.findall(r"[A-Za-z][A-Za-z'’]+", data)


def test_chinese_pages_show_no_english_beyond_names(staff: Page) -> None:
    allowed = {"partnermatch", "UTC", "SDG", "SDGs", "CSV", "XLSX", "API", "English"}
    for school in staff.state.store.iter_schools(active=None):  # names may appear inside a reason
        allowed |= set(re.findall(r"[A-Za-z][A-Za-z'’]+", f"{school.name_en or ''} {school.name_local or ''}"))
    for path in (
        "/staff",
        "/staff/search?q=台東",
        f"/staff/schools/{staff.school}",
        "/staff/rounds",
        "/staff/evaluation",
    ):
        body = staff.client.get(path, params={"lang": "zh-TW"}).text
        reader = _PageWords()
        reader.feed(body.split("<body>", 1)[1])
        assert not set(reader.words) - allowed, f"{path}: {sorted(set(reader.words) - allowed)}"
    staff.client.get("/staff", params={"lang": "en"})
