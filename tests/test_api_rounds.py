"""Matching rounds and school groups through the API, on a generated world of 300 schools with the
real model, FAISS and SQLite: a round is run, stored, listed, fetched (also after a restart) and
accepted in one transaction; stale pairs are refused with nothing written; groups obey their rules.
The store's round records are also checked on PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from data.errors import Conflict, NotFound
from data.schema import Partnership, PartnershipOrigin, RoundStatus
from data.store import Store
from matching.rounds import remaining_capacity
from service import rounds
from service.app import create_app
from service.auth import Role, create_key
from service.models import ROUND_PAIRS_DEFAULT, ROUND_PAIRS_MAX
from service.state import ServiceState
from tests.serving import load_world
from tests.test_api import open_state


@dataclass
class Rounds:
    client: TestClient
    state: ServiceState
    data_dir: Path
    keys: dict[str, str]
    home: str

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Response:
        headers = {"X-API-Key": self.keys[who]} if who else {}
        return self.client.request(method, path, headers=headers, **kwargs)

    def run(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a round job and wait for it: the stored round, as GET /v1/rounds/{id} shows it when done."""
        started = self.call("staff", "POST", "/v1/rounds", json=body)
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["status"] == "queued" and job["round"] is None
        assert started.headers["Location"] == f"/v1/rounds/{job['id']}"
        return self.wait(job["id"])["round"]

    def wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while (job := self.call("staff", "GET", f"/v1/rounds/{job_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"round job {job_id} still {job['status']}"
            time.sleep(0.05)
        assert job["status"] == "done", job
        return job

    def pairs(self, round_id: str, limit: int = 7) -> list[dict[str, Any]]:
        """Every pair of a stored round, read a page at a time (small pages, so paging is used)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.call("staff", "GET", f"/v1/rounds/{round_id}", params={"offset": len(found), "limit": limit})
            shown = page.json()["round"]["pairs"]
            assert shown["offset"] == len(found) and shown["limit"] == limit and len(shown["items"]) <= limit
            found += shown["items"]
            if len(found) >= shown["total"]:
                return found

    def with_room(self, country_is_home: bool, count: int, skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Active schools with a free place (home side or foreign), by id."""
        with self.state.reading() as matcher:
            return [
                s.id
                for s in sorted(matcher.schools.values(), key=lambda s: s.id)
                if s.active
                and (s.country == "TW") == country_is_home
                and s.id not in skip
                and remaining_capacity(matcher, s) > 0
            ][:count]


@pytest.fixture(scope="module")
def rounds_api(
    tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path, small_world: Any
) -> Iterator[Rounds]:
    data_dir = tmp_path_factory.mktemp("rounds-api")
    state = open_state(data_dir, embedding_cache_dir)
    load_world(state, small_world)
    with state.reading() as matcher:
        home = next(
            s.id
            for s in sorted(matcher.schools.values(), key=lambda s: s.id)
            if s.country == "TW"
            and s.active
            and "virtual" in s.exchange_modes
            and s.sdgs
            and remaining_capacity(matcher, s) > 0
        )
    keys = {
        role.value: create_key(state.store, role, school_id=home if role == Role.SCHOOL else None).key for role in Role
    }
    with TestClient(create_app(state)) as client:
        yield Rounds(client, state, data_dir, keys, home)
    state.close()


def _active_partner_pairs(store: Store) -> set[tuple[str, str]]:
    return {p.pair for p in store.list_partnerships(active=True)}


# --------------------------------------------------------------------------- groups (before rounds fill places)


def test_groups_endpoint_satisfies_the_group_rules_and_roles(rounds_api: Rounds) -> None:
    home = rounds_api.state.store.get_school(rounds_api.home)
    sdg = home.sdgs[0]
    response = rounds_api.call("school", "GET", f"/v1/schools/{home.id}/groups", params={"sdg": sdg, "count": 3})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["school_id"] == home.id and result["sdg"] == sdg
    assert 1 <= len(result["groups"]) <= 3, result["notes"]
    schools = rounds_api.state.store.get_schools({m["school_id"] for g in result["groups"] for m in g["members"]})
    for group in result["groups"]:
        members = [schools[m["school_id"]] for m in group["members"]]
        assert 3 <= len(members) <= 5 and home.id in {m.id for m in members}
        assert len({m.country for m in members}) >= 3 and len(group["countries"]) >= 3
        assert any(m.country == "TW" for m in members)
        assert group["languages"], "a group shares at least one exchange language"
        assert all(set(group["languages"]) <= set(m.languages_exchange) for m in members)
        assert group["reasons"] and all(r["text_en"] and r["text_zh"] for r in group["reasons"])

    sized = rounds_api.call("staff", "GET", f"/v1/schools/{home.id}/groups", params={"sdg": sdg, "size": 3})
    assert sized.status_code == 200 and all(len(g["members"]) == 3 for g in sized.json()["groups"])
    assert rounds_api.call("portal", "GET", f"/v1/schools/{home.id}/groups", params={"sdg": sdg}).status_code == 200

    other = rounds_api.with_room(True, 2, skip={home.id})[0]
    refused = rounds_api.call("school", "GET", f"/v1/schools/{other}/groups", params={"sdg": sdg})
    assert refused.status_code == 403 and "belongs to school" in refused.json()["detail"]
    missing = rounds_api.call("staff", "GET", "/v1/schools/tw-nowhere/groups", params={"sdg": sdg})
    assert missing.status_code == 404 and missing.json()["field"] == "school_id"
    for bad in (0, 18):
        invalid = rounds_api.call("staff", "GET", f"/v1/schools/{home.id}/groups", params={"sdg": bad})
        assert invalid.status_code == 422 and invalid.json()["field"] == "sdg"
    no_sdg = rounds_api.call("staff", "GET", f"/v1/schools/{home.id}/groups")
    assert no_sdg.status_code == 422 and no_sdg.json()["field"] == "sdg"


# --------------------------------------------------------------------------- rounds


def test_rounds_are_staff_only(rounds_api: Rounds) -> None:
    before = rounds_api.state.store.list_rounds()
    for who in ("portal", "school"):
        assert rounds_api.call(who, "POST", "/v1/rounds", json={}).status_code == 403
        assert rounds_api.call(who, "GET", "/v1/rounds").status_code == 403
    assert rounds_api.call(None, "POST", "/v1/rounds", json={}).status_code == 401
    assert rounds_api.state.store.list_rounds() == before, "a refused request stored no round"


def test_a_round_is_stored_listed_and_fetched(rounds_api: Rounds) -> None:
    cohort = rounds_api.with_room(True, 15) + rounds_api.with_room(False, 30)
    body = rounds_api.run({"cohort": cohort, "options": {"per_school": 10}})
    assert body["status"] == "proposed" and body["accepted_at"] is None and body["partnership_ids"] == []
    pairs = rounds_api.pairs(body["id"])
    assert body["summary"]["cohort_size"] == len(cohort) and pairs, "the round proposes pairs"
    assert body["pairs"]["total"] == len(pairs) == body["summary"]["pairs"] and body["pairs"]["offset"] == 0
    assert body["pairs"]["items"] == pairs[: body["pairs"]["limit"]], "the first page, in the round's order"
    assert {s for p in pairs for s in (p["school_a"], p["school_b"])} <= set(cohort)
    assert all(p["reasons"] and p["reasons"][0]["text_zh"] for p in pairs)
    assert body["comparison"]["optimal"]["total_score"] >= body["comparison"]["greedy"]["total_score"] - 1e-6
    assert body["options"]["per_school"] == 10 and body["scope"] in ("home", "any")
    assert body["created_by"] == rounds_api.state.store.list_api_keys()[0].id  # the staff key made first

    fetched = rounds_api.call("staff", "GET", f"/v1/rounds/{body['id']}")
    assert fetched.status_code == 200 and fetched.json()["round"] == body and fetched.json()["status"] == "done"

    newer = rounds_api.run({"cohort": cohort[:10] + cohort[-10:]})
    listed = rounds_api.call("staff", "GET", "/v1/rounds").json()["items"]
    assert [r["id"] for r in listed[:2]] == [newer["id"], body["id"]], "newest first"
    assert "result" not in listed[0] and listed[1]["summary"] == body["summary"]
    first_page = rounds_api.call("staff", "GET", "/v1/rounds", params={"limit": 1}).json()
    second_page = rounds_api.call(
        "staff", "GET", "/v1/rounds", params={"limit": 1, "cursor": first_page["next_cursor"]}
    )
    assert second_page.json()["items"][0]["id"] == body["id"]

    missing = rounds_api.call("staff", "GET", "/v1/rounds/round-nope")
    assert missing.status_code == 404 and missing.json()["field"] == "round_id"


def test_a_round_is_read_a_page_at_a_time_filtered_and_parsed_once(
    rounds_api: Rounds, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = rounds_api.with_room(True, 15) + rounds_api.with_room(False, 30)
    made = rounds_api.run({"cohort": cohort, "options": {"per_school": 10}})
    pairs = rounds_api.pairs(made["id"])
    assert len(pairs) > 3
    path = f"/v1/rounds/{made['id']}"
    assert made["pairs"]["limit"] == ROUND_PAIRS_DEFAULT
    page = rounds_api.call("staff", "GET", path, params={"offset": 2, "limit": 2}).json()["round"]["pairs"]
    assert page == {"items": pairs[2:4], "total": len(pairs), "offset": 2, "limit": 2}
    beyond = rounds_api.call("staff", "GET", path, params={"offset": len(pairs) + 5}).json()["round"]["pairs"]
    assert beyond["items"] == [] and beyond["total"] == len(pairs)
    for bad in ({"limit": ROUND_PAIRS_MAX + 1}, {"limit": 0}, {"offset": -1}, {"country": "my"}, {"region": ""}):
        refused = rounds_api.call("staff", "GET", path, params=bad)
        assert refused.status_code == 422 and refused.json()["field"] == next(iter(bad)), bad

    schools = rounds_api.state.store.get_schools({s for p in pairs for s in (p["school_a"], p["school_b"])})
    foreign = next(schools[p["school_b"]] for p in pairs if schools[p["school_b"]].country != "TW")
    expected = [p for p in pairs if foreign.country in {schools[p["school_a"]].country, schools[p["school_b"]].country}]
    by_country = rounds_api.call("staff", "GET", path, params={"country": foreign.country, "limit": 1000}).json()
    assert by_country["round"]["pairs"]["items"] == expected and by_country["round"]["pairs"]["total"] == len(expected)
    assert len(expected) < len(pairs) or len({s.country for s in schools.values()}) <= 2
    region = next(s.region for s in schools.values() if s.region)
    by_region = rounds_api.call("staff", "GET", path, params={"region": region, "limit": 1000}).json()
    assert by_region["round"]["pairs"]["items"] == [
        p for p in pairs if region in {schools[p["school_a"]].region, schools[p["school_b"]].region}
    ]
    nowhere = rounds_api.call("staff", "GET", path, params={"country": "ZZ"}).json()["round"]["pairs"]
    assert nowhere["items"] == [] and nowhere["total"] == 0

    # The stored result is parsed once per process: later reads do not fetch its JSON again,
    # yet the round's status is read fresh each time.
    fetched: list[str] = []
    text = Store.get_round_result_text
    monkeypatch.setattr(Store, "get_round_result_text", lambda self, i: fetched.append(i) or text(self, i))
    for _ in range(3):
        assert rounds_api.call("staff", "GET", path).json()["round"]["pairs"]["items"] == pairs[:ROUND_PAIRS_DEFAULT]
    assert fetched == []
    accepted = rounds_api.call("staff", "POST", f"{path}/accept", json={"start_date": "2026-09-01"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["round"]["pairs"]["items"] == pairs[:ROUND_PAIRS_DEFAULT]
    assert rounds_api.call("staff", "GET", path).json()["round"]["status"] == "accepted"
    assert fetched == []


def test_a_cohort_with_unknown_or_inactive_schools_is_refused_by_name(rounds_api: Rounds) -> None:
    inactive = rounds_api.with_room(False, 1)[0]
    assert rounds_api.call("staff", "PATCH", f"/v1/schools/{inactive}", json={"active": False}).status_code == 200
    before = len(rounds_api.state.store.list_rounds())
    response = rounds_api.call("staff", "POST", "/v1/rounds", json={"cohort": [rounds_api.home, "tw-ghost", inactive]})
    assert response.status_code == 422 and response.json()["field"] == "cohort"
    assert "tw-ghost" in response.json()["detail"] and inactive in response.json()["detail"]
    bad_option = rounds_api.call("staff", "POST", "/v1/rounds", json={"options": {"per_school": 0}})
    assert bad_option.status_code == 422 and bad_option.json()["field"] == "options.per_school"
    assert len(rounds_api.state.store.list_rounds()) == before
    assert rounds_api.call("staff", "PATCH", f"/v1/schools/{inactive}", json={"active": True}).status_code == 200


def test_accepting_starts_the_partnerships_and_suggestions_move_on(rounds_api: Rounds) -> None:
    cohort = rounds_api.with_room(True, 12) + rounds_api.with_room(False, 25)
    made = rounds_api.run({"cohort": cohort, "options": {"per_school": 10}})
    pairs = [(p["school_a"], p["school_b"]) for p in rounds_api.pairs(made["id"])]
    assert pairs
    proposed_to = {a: [b for x, b in pairs if x == a] for a, _ in pairs}
    before = _active_partner_pairs(rounds_api.state.store)

    accepted = rounds_api.call("staff", "POST", f"/v1/rounds/{made['id']}/accept", json={"start_date": "2026-09-01"})
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["round"]["status"] == "accepted" and body["round"]["accepted_at"]
    assert len(body["partnerships"]) == len(pairs) == len(body["round"]["partnership_ids"])
    assert all(p["origin"] == "suggested" and p["start_date"] == "2026-09-01" for p in body["partnerships"])
    after = _active_partner_pairs(rounds_api.state.store)
    assert after - before == {tuple(sorted(pair)) for pair in pairs}

    with rounds_api.state.reading() as matcher:
        assert all(matcher.partnerships.has_edge(a, b) for a, b in pairs), "the live graph has the new partnerships"
    for school_a, partners in proposed_to.items():
        response = rounds_api.call("staff", "GET", f"/v1/schools/{school_a}/suggestions", params={"k": 50})
        shown = {s["school_id"] for s in response.json()["suggestions"]}
        assert not shown & set(partners), f"{school_a} is still offered its new partners"

    again = rounds_api.call("staff", "POST", f"/v1/rounds/{made['id']}/accept")
    assert again.status_code == 409 and again.json()["field"] == "status"
    assert _active_partner_pairs(rounds_api.state.store) == after


def test_stale_pairs_are_refused_by_name_and_nothing_is_written(rounds_api: Rounds) -> None:
    cohort = rounds_api.with_room(True, 12) + rounds_api.with_room(False, 25)
    made = rounds_api.run({"cohort": cohort, "options": {"per_school": 10}})
    pairs = [(p["school_a"], p["school_b"]) for p in rounds_api.pairs(made["id"])]
    assert len(pairs) >= 3
    (a1, b1), (a2, b2) = pairs[0], next(p for p in pairs[1:] if not {*p} & {*pairs[0]})
    # Meanwhile: one pair became partners outside the round, one school was deactivated.
    direct = rounds_api.call(
        "staff", "POST", "/v1/partnerships", json={"school_a": a1, "school_b": b1, "start_date": "2026-03-01"}
    )
    assert direct.status_code == 201, direct.text
    assert rounds_api.call("staff", "PATCH", f"/v1/schools/{b2}", json={"active": False}).status_code == 200
    before = _active_partner_pairs(rounds_api.state.store)
    seq = rounds_api.state.store.latest_change_seq()

    refused = rounds_api.call("staff", "POST", f"/v1/rounds/{made['id']}/accept")
    assert refused.status_code == 409 and refused.json()["field"] == "pairs"
    listed = refused.json()["detail"].split("no longer possible: ", 1)[1]
    named = dict(part.split(" (", 1) for part in listed.split("); "))
    assert "already_partners" in named[f"{a1}–{b1}"] and "free place(s)" in named[f"{a1}–{b1}"]
    assert "inactive" in named[f"{a2}–{b2}"]
    assert all(set(pair.split("–")) & {a1, b1, b2} for pair in named), "only pairs touching the changes"
    assert _active_partner_pairs(rounds_api.state.store) == before
    assert rounds_api.state.store.latest_change_seq() == seq, "nothing written"
    assert rounds_api.state.store.get_round(made["id"]).status == RoundStatus.PROPOSED

    stale_out = {"exclude": [{"school_a": a, "school_b": b} for a, b in pairs if {a, b} & {a1, b1, b2}]}
    unknown = rounds_api.call(
        "staff", "POST", f"/v1/rounds/{made['id']}/accept", json={"exclude": [{"school_a": "tw-x", "school_b": "my-y"}]}
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "exclude"
    accepted = rounds_api.call("staff", "POST", f"/v1/rounds/{made['id']}/accept", json=stale_out)
    assert accepted.status_code == 200, accepted.text
    assert len(accepted.json()["partnerships"]) == len(pairs) - len(stale_out["exclude"])
    rounds_api.call("staff", "PATCH", f"/v1/schools/{b2}", json={"active": True})


def test_a_restarted_service_still_returns_its_rounds(rounds_api: Rounds, embedding_cache_dir: Path) -> None:
    listed = rounds_api.call("staff", "GET", "/v1/rounds").json()["items"]
    assert listed
    expected = {r["id"]: rounds_api.call("staff", "GET", f"/v1/rounds/{r['id']}").json() for r in listed}
    restarted = open_state(rounds_api.data_dir, embedding_cache_dir)
    restarted.start()
    try:
        with TestClient(create_app(restarted)) as client:
            headers = {"X-API-Key": rounds_api.keys["staff"]}
            assert [r["id"] for r in client.get("/v1/rounds", headers=headers).json()["items"]] == list(expected)
            for round_id, body in expected.items():
                assert client.get(f"/v1/rounds/{round_id}", headers=headers).json() == body
    finally:
        restarted.close()


# --------------------------------------------------------------------------- the store, on both backends


def test_store_keeps_rounds_and_accepts_them_once(store: Store, make_school: Any) -> None:
    tw, my, th = make_school(), make_school(country="MY"), make_school(country="TH", active=False)
    for school in (tw, my, th):
        store.create_school(school)
    first, row = store.prepare_round(  # serialised before the write lock: it must read back the same
        options={"per_school": 5}, summary={"pairs": 1}, result={"pairs": [], "note": "臺東 ✓"}, created_by="k1"
    )
    store.insert_round(row)
    second, row = store.prepare_round(options={}, summary={"pairs": 0}, result={"pairs": []})
    store.insert_round(row)
    assert [r.id for r in store.list_rounds()] == [second.id, first.id]
    assert store.list_rounds()[0].result is None and store.get_round(first.id) == first
    assert store.get_round(first.id, result=False) == first.model_copy(update={"result": None})
    assert json.loads(store.get_round_result_text(first.id)) == first.result, "the stored JSON text, unparsed"
    assert [r.id for r in store.list_rounds(before=second.id)] == [first.id]

    suggested = Partnership(
        school_a=tw.id, school_b=my.id, start_date=date(2026, 9, 1), origin=PartnershipOrigin.SUGGESTED
    )
    with pytest.raises(Conflict, match=f"{th.id} is inactive"):
        store.accept_round(first.id, [suggested, suggested.model_copy(update={"school_b": th.id})])
    assert store.list_partnerships() == [] and store.get_round(first.id).status == RoundStatus.PROPOSED

    accepted, started = store.accept_round(first.id, [suggested], accepted_by="k2")
    assert accepted.status == RoundStatus.ACCEPTED and accepted.partnership_ids == [started[0].id]
    assert store.get_round(first.id, result=False) == accepted and store.get_round(first.id).accepted_by == "k2"
    with pytest.raises(Conflict, match="already accepted"):
        store.accept_round(first.id, [])
    with pytest.raises(Conflict, match="already partners"):
        store.accept_round(second.id, [suggested.model_copy(update={"start_date": date(2026, 10, 1)})])
    with pytest.raises(NotFound):
        store.get_round("round-nope")
    with pytest.raises(NotFound):
        store.get_round_result_text("round-nope")


def _report_priority(queue: Any) -> None:
    queue.put(os.getpriority(os.PRIO_PROCESS, 0))


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value, inherited by its children, is Linux's")
def test_a_round_process_runs_below_the_server_from_its_start_and_the_server_keeps_its_priority() -> None:
    """Its imports alone are seconds of CPU: they must yield to the server's requests too."""
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    server = os.getpriority(os.PRIO_PROCESS, 0)
    lowered = min(server + rounds.ROUND_NICENESS, rounds.LOWEST_PRIORITY)
    child = spawn.Process(target=_report_priority, args=(queue,))
    rounds._start_below_the_server(child, lowered)
    child.join(120)
    assert queue.get(timeout=10) == lowered
    assert os.getpriority(os.PRIO_PROCESS, 0) == server


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"pairs": [{"school_a": "tw-1", "reasons": ["同語言", 1.5]}, {}], "unmatched": [], "method": "x"}),
        json.dumps({"pairs": [[1, [2]], None, "a"], "comparison": {"pairs": [3]}}, indent=2, ensure_ascii=False),
        ' { "a" : [ ] , "b" : { } } ',
        "{}",
        "[1, 2]",
    ],
)
def test_a_stored_result_parses_as_json_loads_would(text: str) -> None:
    assert rounds._loads_yielding(text) == json.loads(text)


@pytest.mark.parametrize("text", ['{"pairs": [1, 2', '{"pairs" [1]}', '{"pairs": [1 2]}', '{"a": 1 "b": 2}', '{"a": 1'])
def test_a_malformed_stored_result_is_refused(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        rounds._loads_yielding(text)
