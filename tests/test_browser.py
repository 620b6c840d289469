"""The staff page in a real browser: Debian's Chromium, headless, driven by Playwright, against the
app served by uvicorn on a loopback port over a generated world. Sign in, the dashboard, search by
台東 and "Taitung", a school page in both languages, invite and accept, invite disabled at capacity,
a round reviewed (one pair dropped, the rest accepted and exported) and the evaluation page.
Assertions are on the page's text; each page's screenshot is saved (PARTNERMATCH_SCREENSHOTS, else
pytest's tmp dir) for a person to look at, in both languages where the test visits both.

Skips when /usr/bin/chromium is missing (CI installs it with fonts-noto-cjk; `playwright install`
is never used)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from matching.rounds import remaining_capacity
from service.app import create_app
from service.auth import Role, create_key
from service.state import ServiceState
from tests.serving import UvicornThread, load_world
from tests.test_api import open_state

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Latin words a Chinese page may show besides names and ids: units, acronyms, file formats.
ALLOWED_LATIN = {"partnermatch", "UTC", "SDG", "SDGs", "CSV", "XLSX", "API", "h", "A", "B", "English"}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
)


@dataclass
class Served:
    base: str
    staff_key: str
    portal_key: str
    school: str
    state: ServiceState
    shots: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path, small_world: Any) -> Iterator[Served]:
    state = open_state(tmp_path_factory.mktemp("browser"), embedding_cache_dir)
    load_world(state, small_world)
    with state.reading() as matcher:
        school = next(
            s.id
            for s in sorted(matcher.schools.values(), key=lambda s: s.id)
            if s.country == "TW"
            and s.active
            and remaining_capacity(matcher, s) >= 2
            and len(matcher.suggest(s.id, 10).suggestions) == 10
        )
    staff_key = create_key(state.store, Role.STAFF).key
    portal_key = create_key(state.store, Role.PORTAL).key
    shots = Path(os.environ.get("PARTNERMATCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    server = UvicornThread.start(create_app(state))
    try:
        yield Served(server.base, staff_key, portal_key, school, state, shots)
    finally:
        server.stop()
        state.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        opened = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def page(served: Served, browser: Any) -> Iterator[Any]:
    """A signed-in staff page (English, 1280 px wide)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.goto(f"{served.base}/staff/login?lang=en")
    opened.fill("input[name=key]", served.staff_key)
    opened.click("main button[type=submit]")
    opened.wait_for_url(f"{served.base}/staff")
    yield opened
    context.close()


def shot(served: Served, page: Any, name: str) -> None:
    page.screenshot(path=str(served.shots / f"{name}.png"), full_page=True)
    assert (served.shots / f"{name}.png").stat().st_size > 0


def english_beyond_names(page: Any) -> list[str]:
    """Latin words in the page's main text once school names and ids (links, .muted, inputs) and
    the full English report are set aside: on the zh page there should be none."""
    text = page.evaluate(
        """() => { const main = document.querySelector('main').cloneNode(true);
        main.querySelectorAll('a, .muted, input, textarea, select, #full-report, h1 span, [data-names]')
            .forEach(e => e.remove());
        return main.innerText; }"""
    )
    return sorted({w for w in re.findall(r"[A-Za-z][A-Za-z'’]+", text) if w not in ALLOWED_LATIN})


def test_sign_in_and_the_dashboard(served: Served, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{served.base}/staff")
    assert page.url.startswith(f"{served.base}/staff/login")
    page.fill("input[name=key]", served.portal_key)
    page.click("main button[type=submit]")
    assert "This is a portal key" in page.inner_text("main")
    page.fill("input[name=key]", served.staff_key)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{served.base}/staff")
    text = page.inner_text("main")
    assert "No partner yet" in text and "Joined lately" in text and "Schools that never answer" in text
    shot(served, page, "dashboard-en")
    page.click("#switch-lang")
    page.wait_for_selector("text=尚無合作夥伴")
    assert english_beyond_names(page) == []
    shot(served, page, "dashboard-zh")
    page.close()


def test_search_by_either_script_and_by_english_name(served: Served, page: Any) -> None:
    taitung = served.state.store.count_schools(region="TW-TTT", active=None)
    assert taitung > 0
    for q in ("台東", "Taitung"):
        page.goto(f"{served.base}/staff/search")
        page.fill("main input[name=q]", q)
        page.click("main button[type=submit]")
        page.wait_for_selector("#results")
        assert f"of {taitung} school(s)" in page.inner_text("#found"), q
        assert "臺東縣" in page.inner_text("#results") or "Taitung County" in page.inner_text("#results")
        shot(served, page, f"search-{'zh' if q == '台東' else 'en'}-query")


def test_a_school_page_in_both_languages_invite_and_accept(served: Served, page: Any) -> None:
    page.goto(f"{served.base}/staff/schools/{served.school}")
    assert "place(s) free" in page.inner_text("#capacity")
    rows = page.locator("tr.suggestion")
    assert rows.count() == 10
    first = rows.first.get_attribute("data-school")
    assert first and rows.first.locator("ul.reasons li").count() >= 1
    shot(served, page, "school-en")

    rows.first.locator("button", has_text="Invite on the school's behalf").click()
    page.wait_for_selector("div.ok")
    assert "sent." in page.inner_text("div.ok") and first in page.inner_text("#invitations")
    page.locator("#invitations button", has_text="Accept").first.click()
    page.wait_for_selector("div.ok")
    assert "partnership" in page.inner_text("div.ok") and first in page.inner_text("#partners")

    page.click("#switch-lang")
    page.wait_for_selector("text=目前的合作夥伴")
    main = page.inner_text("main")
    assert "建議的合作學校" in main and "名額" in main and "Taipei" not in main
    assert english_beyond_names(page) == []
    shot(served, page, "school-zh")
    page.goto(f"{served.base}/staff/search?lang=en")


def test_invite_is_disabled_when_the_school_is_full(served: Served, page: Any) -> None:
    store = served.state.store
    with served.state.reading() as matcher:
        full = next(
            s
            for s in sorted(matcher.schools.values(), key=lambda s: s.id)
            if s.active and s.country == "TW" and remaining_capacity(matcher, s) == 0 and s.id != served.school
        )
    page.goto(f"{served.base}/staff/schools/{full.id}")
    assert "Full" in page.inner_text("#capacity")
    buttons = page.locator("tr.suggestion button.invite")
    assert buttons.count() > 0 and all(buttons.nth(i).is_disabled() for i in range(buttons.count()))
    assert "This school has no free place." in page.inner_text("#suggestions")
    assert page.locator("tr.suggestion form").count() == 0
    assert store.get_school(full.id).capacity >= 1
    shot(served, page, "school-full-en")


def test_a_round_reviewed_one_pair_dropped_the_rest_accepted_and_exported(served: Served, page: Any) -> None:
    with served.state.reading() as matcher:
        free = [s for s in sorted(matcher.schools.values(), key=lambda s: s.id) if s.active]
        free = [s for s in free if remaining_capacity(matcher, s) > 0]
    cohort = [s.id for s in free if s.country == "TW"][:15] + [s.id for s in free if s.country != "TW"][:30]
    page.goto(f"{served.base}/staff/rounds")
    page.check("input[name=cohort][value=ids]")
    page.fill("textarea[name=ids]", "\n".join(cohort))
    page.click("#new-round button[type=submit]")
    page.wait_for_selector("#round-progress")  # at once: the round runs in the background
    assert "The round is running" in page.inner_text("#round-progress")
    shot(served, page, "round-progress-en")
    page.wait_for_selector("#plain-summary", timeout=180_000)  # the page reloads itself until it is done
    assert "Compared with first come" in page.inner_text("#plain-summary") or "First come" in page.inner_text(
        "#plain-summary"
    )
    pairs = page.locator("tr.pair").count()
    assert pairs > 1
    shot(served, page, "round-en")

    dropped = page.locator("tr.pair").first.get_attribute("data-pair")
    page.locator("tr.pair a.drop").first.click()
    page.wait_for_selector("tr.pair.dropped")
    assert "1 pair(s) dropped" in page.inner_text("#accept")
    with page.expect_download() as download:
        page.click("#export-csv")
    saved = served.shots / "round-kept.csv"
    download.value.save_as(saved)
    raw = saved.read_bytes()
    assert raw.startswith("\ufeff".encode())
    lines = raw.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == pairs  # header + every pair but the dropped one
    a, b = dropped.split("|")
    assert not any(a in line and b in line for line in lines[1:])

    page.click("#accept-kept")
    page.wait_for_selector("div.ok")
    assert f"Round accepted: {pairs - 1} partnership(s) started." in page.inner_text("div.ok")
    assert page.inner_text("#round-status") == "accepted"
    started = {tuple(sorted(p.pair)) for p in served.state.store.list_partnerships(active=True)}
    assert (min(a, b), max(a, b)) not in started
    page.click("#switch-lang")
    page.wait_for_selector("text=摘要")
    assert english_beyond_names(page) == []
    shot(served, page, "round-zh")


def test_the_evaluation_page(served: Served, page: Any) -> None:
    page.goto(f"{served.base}/staff/evaluation")
    assert "No evaluation report yet" in page.inner_text("main")
    assert page.locator("#run-evaluation button").count() == 1
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, "the page fits the window"
    shot(served, page, "evaluation-en")
    page.click("#switch-lang")
    page.wait_for_selector("text=最新成效評估")
    shot(served, page, "evaluation-zh")
