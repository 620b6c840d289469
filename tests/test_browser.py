"""The staff page in a real browser: Debian's Chromium, headless, driven by Playwright, against the
app served by uvicorn on a loopback port over a generated world. Sign in, search a school, open it,
read its suggestions, invite the first on its behalf, accept, and see the new partner listed.
Assertions are on the page's text, never on pixels; a screenshot is kept in pytest's tmp dir.

Skips when /usr/bin/chromium is missing (CI installs it; `playwright install` is never used)."""

from __future__ import annotations

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
    server = UvicornThread.start(create_app(state))
    try:
        yield Served(server.base, staff_key, portal_key, school, state)
    finally:
        server.stop()
        state.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        opened = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield opened
        finally:
            opened.close()


def test_staff_signs_in_invites_and_accepts_in_a_browser(served: Served, browser: Any, tmp_path: Path) -> None:
    school = served.state.store.get_school(served.school)
    page = browser.new_page()
    page.set_default_timeout(30_000)

    page.goto(f"{served.base}/staff")
    assert page.url.startswith(f"{served.base}/staff/login")
    page.fill("input[name=key]", served.portal_key)
    page.click("button[type=submit]")
    assert "This is a portal key" in page.inner_text("main")

    page.fill("input[name=key]", served.staff_key)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{served.base}/staff")
    assert "Find a school" in page.inner_text("main")

    page.fill("input[name=q]", school.id)
    page.click("main button[type=submit]")
    page.wait_for_selector("#results")
    page.click(f"#results a[href='/staff/schools/{school.id}']")
    page.wait_for_url(f"{served.base}/staff/schools/{school.id}")
    rows = page.locator("tr.suggestion")
    assert rows.count() == 10
    first = rows.first.get_attribute("data-school")
    assert first
    assert "No partner yet." in page.inner_text("#partners") or first not in page.inner_text("#partners")
    assert rows.first.locator("ul.reasons li").count() >= 1

    rows.first.locator("button", has_text="Invite on the school's behalf").click()
    page.wait_for_selector("div.ok")
    assert "sent." in page.inner_text("div.ok")
    invitations = page.inner_text("#invitations")
    assert "sent to" in invitations and first in invitations

    page.locator("#invitations button", has_text="Accept").first.click()
    page.wait_for_selector("div.ok")
    assert "partnership" in page.inner_text("div.ok")
    assert first in page.inner_text("#partners"), "the new partner is listed"
    assert "No pending invitation." in page.inner_text("#invitations")

    page.click("#switch-lang")
    page.wait_for_selector("text=目前的合作夥伴")
    assert "建議的合作學校" in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "staff-school.png"), full_page=True)
    assert (tmp_path / "staff-school.png").stat().st_size > 0

    started = [p for p in served.state.store.list_partnerships(school_id=school.id, active=True) if first in p.pair]
    assert len(started) == 1 and started[0].origin.value == "suggested"
