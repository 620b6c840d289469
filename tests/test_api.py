"""The API through FastAPI's TestClient on a generated world of 300 schools, with the real model,
FAISS and SQLite: roles, private fields, live updates, bad input, imports, the invitation loop,
partnerships, statistics and metrics."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from data.io import MAPPINGS_DIR
from data.schema import PRIVATE_FIELDS, School, utcnow
from data.settings import StorageSettings
from embeddings import EmbeddingSettings
from matching.constraints import SuggestionFilters
from matching.settings import MatchSettings, RequestOverrides
from service.app import create_app
from service.auth import Role, create_key
from service.invitations import pair_check
from service.models import SchoolCard, SuggestionOut, SuggestionsOut
from service.routes import suggestions as suggestions_module
from service.routes.suggestions import AD_HOC_ID, suggestions_json
from service.settings import ServiceSettings
from service.state import ServiceState
from tests.serving import load_world

UPLOAD_LIMIT = 64 * 1024
SJKC_CSV = (
    "NEGERI,PPD,KODSEKOLAH,NAMASEKOLAH,NAMASEKOLAH_C,ALAMATSURAT,POSKODSURAT,BANDARSURAT,ENROLMEN,"
    "KOORDINATXX,KOORDINATYY\n"
    "PERAK,PPD KINTA,ABC1,SEKOLAH JENIS KEBANGSAAN (CINA) AAA,甲华小,JALAN 1,30000,IPOH,300,101.1,4.6\n"
    "JOHOR,PPD MUAR,JBC2,SEKOLAH JENIS KEBANGSAAN (CINA) BBB,乙华小,JALAN 2,84000,MUAR,120,102.6,2.0\n"
)


def open_state(data_dir: Path, cache_dir: Path, **service: Any) -> ServiceState:
    return ServiceState.open(
        StorageSettings(data_dir=data_dir),
        ServiceSettings(change_poll_seconds=0, max_upload_bytes=UPLOAD_LIMIT, **service),
        embedding=EmbeddingSettings(show_progress=False),
        match=MatchSettings(reference_date=datetime(2026, 3, 2).date()),
        embedding_cache_dir=cache_dir,
    )


@dataclass
class Api:
    client: TestClient
    state: ServiceState
    keys: dict[str, str]
    home: str  # the school the "school" key belongs to
    other: str  # the school the "other_school" key belongs to
    taiwanese: list[str]  # more Taiwanese schools with room and a full suggestion list, for tests to share out

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Response:
        headers = {"X-API-Key": self.keys[who]} if who else {}
        return self.client.request(method, path, headers=headers | kwargs.pop("headers", {}), **kwargs)

    def suggested(self, school_id: str, k: int = 10, who: str = "staff", **params: Any) -> list[str]:
        response = self.call(who, "GET", f"/v1/schools/{school_id}/suggestions", params={"k": k} | params)
        assert response.status_code == 200, response.text
        return [s["school_id"] for s in response.json()["suggestions"]]

    def school(self, school_id: str) -> School:
        return self.state.store.get_school(school_id)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path, small_world: Any) -> Iterator[Api]:
    state = load_world(open_state(tmp_path_factory.mktemp("api"), embedding_cache_dir), small_world)
    with state.reading() as matcher:
        partners = matcher.context().partners
        taiwanese = [
            s.id
            for s in sorted(matcher.schools.values(), key=lambda s: s.id)
            if s.country == "TW"
            and s.active
            and len(partners(s.id)) + 2 <= s.capacity
            and len(matcher.suggest(s.id, 10).suggestions) == 10
        ]
    home, other = taiwanese[0], taiwanese[1]
    keys = {
        role.value: create_key(state.store, role, school_id=home if role == Role.SCHOOL else None).key for role in Role
    }
    keys["other_school"] = create_key(state.store, Role.SCHOOL, school_id=other).key
    revoked = create_key(state.store, Role.STAFF)
    state.store.revoke_api_key(revoked.record.id)
    keys["revoked"] = revoked.key
    keys["bogus"] = "pm_" + "x" * 43
    with TestClient(create_app(state)) as client:
        yield Api(client, state, keys, home, other, taiwanese[2:])
    state.close()


def _foreign(api: Api) -> str:
    return next(s.id for s in api.state.store.iter_schools(active=True) if s.country != "TW")


def indexed(api: Api) -> set[str]:
    with api.state.reading() as matcher:
        return {school_id for index in matcher.indexes.values() for school_id in index.ids()}


# --------------------------------------------------------------------------- roles


ROLE_CASES = [
    # who, method, path, json body, expected status
    (None, "GET", "/v1/schools/{home}", None, 401),
    ("bogus", "GET", "/v1/schools/{home}", None, 401),
    ("revoked", "GET", "/v1/schools/{home}", None, 401),
    ("staff", "GET", "/v1/schools", None, 200),
    ("staff", "GET", "/v1/stats", None, 200),
    ("staff", "GET", "/v1/schools/{other}", None, 200),
    ("portal", "GET", "/v1/schools", None, 200),
    ("portal", "GET", "/v1/schools/{other}", None, 200),
    ("portal", "GET", "/v1/schools/{other}/suggestions", None, 200),
    ("portal", "POST", "/v1/suggestions", {"profile": {"country": "MY", "levels": ["primary"], "name_en": "X"}}, 200),
    ("portal", "GET", "/v1/invitations", None, 200),
    ("portal", "GET", "/v1/partnerships?school_id={other}", None, 200),
    ("portal", "POST", "/v1/schools", {"id": "my-p", "name_en": "P", "country": "MY", "levels": ["primary"]}, 403),
    ("portal", "PATCH", "/v1/schools/{other}", {"capacity": 3}, 403),
    ("portal", "POST", "/v1/schools/{other}/deactivate", None, 403),
    ("portal", "GET", "/v1/stats", None, 403),
    (
        "portal",
        "POST",
        "/v1/partnerships",
        {"school_a": "{home}", "school_b": "{foreign}", "start_date": "2026-01-01"},
        403,
    ),
    ("school", "GET", "/v1/schools/{home}", None, 200),
    ("school", "GET", "/v1/schools/{home}/suggestions", None, 200),
    ("school", "GET", "/v1/invitations", None, 200),
    ("school", "GET", "/v1/partnerships", None, 200),
    ("school", "GET", "/v1/schools/{other}", None, 403),
    ("school", "GET", "/v1/schools/{other}/suggestions", None, 403),
    ("school", "GET", "/v1/schools", None, 403),
    ("school", "POST", "/v1/suggestions", {"profile": {"country": "MY", "levels": ["primary"], "name_en": "X"}}, 403),
    ("school", "GET", "/v1/stats", None, 403),
    ("school", "PATCH", "/v1/schools/{home}", {"active": False}, 403),
    ("school", "PATCH", "/v1/schools/{other}", {"capacity": 3}, 403),
    ("school", "GET", "/v1/partnerships?school_id={other}", None, 403),
    ("school", "GET", "/v1/invitations?school_id={other}", None, 403),
    ("school", "POST", "/v1/invitations", {"from_school": "{other}", "to_school": "{foreign}"}, 403),
    ("school", "POST", "/v1/schools/import", None, 403),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "expected"), ROLE_CASES)
def test_roles_are_enforced(api: Api, who: str | None, method: str, path: str, body: Any, expected: int) -> None:
    ids = {"home": api.home, "other": api.other, "foreign": _foreign(api)}
    if body is not None:
        text = json.dumps(body)
        for name, school_id in ids.items():
            text = text.replace("{" + name + "}", school_id)
        body = json.loads(text)
    before = api.state.store.latest_change_seq()
    response = api.call(who, method, path.format(**ids), json=body)
    assert response.status_code == expected, response.text
    if expected >= 400:
        error = response.json()
        assert error["detail"] and {"detail", "field"} <= set(error) <= {"detail", "field", "errors", "rules"}
        assert api.state.store.latest_change_seq() == before, "a refused request wrote nothing"
    if expected == 401:
        assert error["field"] == "X-API-Key" and response.headers["WWW-Authenticate"] == "Bearer"
    if expected == 403:
        assert "may not" in error["detail"] or "belongs to school" in error["detail"] or "only staff" in error["detail"]


def test_bearer_authorization_is_accepted(api: Api) -> None:
    bearer = {"Authorization": f"Bearer {api.keys['staff']}"}
    response = api.call(None, "GET", f"/v1/schools/{api.home}", headers=bearer)
    assert response.status_code == 200
    assert api.call(None, "GET", "/v1/stats", headers={"Authorization": "Basic abc"}).status_code == 401


# --------------------------------------------------------------------------- private fields


def test_private_fields_never_leave_through_suggestions_or_other_schools_profiles(api: Api) -> None:
    emails = {s.contact_email for s in api.state.store.iter_schools() if s.contact_email}
    assert len(emails) > 100

    staff_page = api.call("staff", "GET", "/v1/schools", params={"limit": 500}).json()["items"]
    assert sum(1 for item in staff_page if item["contact_email"]) > 100
    assert all(item["private_fields_shown"] for item in staff_page)
    portal_page = api.call("portal", "GET", "/v1/schools", params={"limit": 500}).json()["items"]
    assert len(portal_page) == len(staff_page)
    assert all(item.get(field) is None for item in portal_page for field in PRIVATE_FIELDS)
    assert not any(i["private_fields_shown"] for i in portal_page)

    own = api.call("school", "GET", f"/v1/schools/{api.home}").json()
    assert own["contact_email"] == api.school(api.home).contact_email and own["private_fields_shown"]

    for who, school_id in (("staff", api.home), ("portal", api.home), ("school", api.home)):
        text = api.call(who, "GET", f"/v1/schools/{school_id}/suggestions", params={"k": 20}).text
        assert not any(email in text for email in emails), f"a contact address in {who}'s suggestions"
        for suggestion in json.loads(text)["suggestions"]:
            assert not PRIVATE_FIELDS & set(suggestion["school"]), "suggestion cards carry public fields only"
            assert suggestion["school"]["id"] == suggestion["school_id"] and suggestion["reasons"]


# --------------------------------------------------------------------------- schools


def test_create_read_update_deactivate_and_paginate(api: Api) -> None:
    body = {
        "id": "my-api-new",
        "name_en": "Api New School",
        "country": "Malaysia",
        "region": "Pulau Pinang",
        "levels": ["primary"],
        "languages_exchange": ["en", "zh"],
        "sdgs": [4],
        "exchange_modes": ["virtual"],
        "target_countries": ["TW"],
        "contact_email": "office@new.example.my",
        "created_at": "2000-01-01T00:00:00Z",
    }
    created = api.call("staff", "POST", "/v1/schools", json=body)
    assert created.status_code == 201, created.text
    made = created.json()
    assert made["country"] == "MY" and made["region"] == "MY-07" and made["timezone"] == "Asia/Kuala_Lumpur"
    assert made["created_at"] > "2026" and isinstance(made["hints"], list)
    again = api.call("staff", "POST", "/v1/schools", json=body)
    assert again.status_code == 409 and again.json()["field"] == "id"

    patched = api.call("staff", "PATCH", "/v1/schools/my-api-new", json={"capacity": 5, "website": None})
    assert patched.status_code == 200 and patched.json()["capacity"] == 5
    assert patched.json()["updated_at"] > made["updated_at"]
    assert api.call("staff", "GET", "/v1/schools/my-api-new").json()["capacity"] == 5

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"country": "MY", "limit": 7} | ({"cursor": cursor} if cursor else {})
        page = api.call("portal", "GET", "/v1/schools", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        assert all(item["country"] == "MY" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen)) and len(seen) == api.state.store.count_schools(country="MY")
    assert "my-api-new" in seen

    filtered = api.call("staff", "GET", "/v1/schools", params={"sdg": [14, 15], "level": "primary", "limit": 500})
    assert filtered.json()["items"]
    assert all({14, 15} & set(i["sdgs"]) and "primary" in i["levels"] for i in filtered.json()["items"])

    gone = api.call("staff", "POST", "/v1/schools/my-api-new/deactivate")
    assert gone.status_code == 200 and gone.json()["active"] is False
    active_ids = {i["id"] for i in api.call("staff", "GET", "/v1/schools", params={"limit": 500}).json()["items"]}
    all_ids = {
        i["id"] for i in api.call("staff", "GET", "/v1/schools", params={"limit": 500, "active": "all"}).json()["items"]
    }
    assert "my-api-new" not in active_ids and "my-api-new" in all_ids
    assert "my-api-new" not in indexed(api)


def test_a_profile_edit_or_a_new_school_changes_the_next_suggestion(api: Api) -> None:
    source = api.taiwanese[0]
    top = api.suggested(source)[0]
    original = api.school(top)
    edit = api.call("staff", "PATCH", f"/v1/schools/{top}", json={"languages_exchange": ["ko"]})
    assert edit.status_code == 200, edit.text
    # Among the candidates of its own country (the list's order also moves with what was shown).
    of_its_country = {"k": 50, "country": original.country}
    assert top not in api.suggested(source, **of_its_country), "no shared language any more"

    restore = api.call("staff", "PATCH", f"/v1/schools/{top}", json={"languages_exchange": original.languages_exchange})
    assert restore.status_code == 200 and top in api.suggested(source, **of_its_country)

    twin = original.model_dump(mode="json", exclude={"created_at", "updated_at"}) | {"id": "twin-of-top"}
    assert api.call("staff", "POST", "/v1/schools", json=twin).status_code == 201
    assert "twin-of-top" in api.suggested(source, diversity="false"), "a new school is suggested without a restart"


def test_a_school_edits_its_own_profile(api: Api) -> None:
    home = api.school(api.home)
    response = api.call("school", "PATCH", f"/v1/schools/{api.home}", json={"description": home.description + " Hi."})
    assert response.status_code == 200 and response.json()["description"].endswith(" Hi.")
    assert response.json()["contact_email"] == home.contact_email


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_field_and_writes_nothing(api: Api) -> None:
    before = api.state.store.latest_change_seq()
    bad = api.call(
        "staff",
        "POST",
        "/v1/schools",
        json={
            "id": "my-bad",
            "name_en": "Bad",
            "country": "Narnia",
            "levels": [],
            "contact_email": "nope",
        },
    )
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"country", "levels", "contact_email"} <= fields
    assert bad.json()["detail"].startswith(bad.json()["errors"][0]["field"] + ": ")

    own_country = api.call(
        "staff",
        "POST",
        "/v1/schools",
        json={
            "id": "my-bad",
            "name_en": "Bad",
            "country": "MY",
            "levels": ["primary"],
            "target_countries": ["MY"],
        },
    )
    assert own_country.status_code == 422 and own_country.json()["field"] == "target_countries"
    unknown_field = api.call(
        "staff",
        "POST",
        "/v1/schools",
        json={
            "id": "my-bad",
            "name_en": "Bad",
            "country": "MY",
            "levels": ["primary"],
            "colour": "blue",
        },
    )
    assert unknown_field.status_code == 422 and unknown_field.json()["field"] == "colour"
    json_type = {"Content-Type": "application/json"}
    not_json = api.call("staff", "POST", "/v1/schools", content=b"{not json", headers=json_type)
    assert not_json.status_code == 422 and not_json.json()["field"] == "body"
    assert not_json.json()["detail"].startswith("body: not valid JSON at character 1")

    target = api.taiwanese[1]
    stamp = api.school(target).updated_at
    bad_region = api.call("staff", "PATCH", f"/v1/schools/{target}", json={"region": "Atlantis", "capacity": 4})
    assert bad_region.status_code == 422 and bad_region.json()["field"] == "region"
    assert api.school(target).updated_at == stamp

    for params, field in (({"k": 0}, "k"), ({"k": 51}, "k"), ({"sdg": 18}, "sdg.0"), ({"country": "XX"}, "country.0")):
        response = api.call("staff", "GET", f"/v1/schools/{target}/suggestions", params=params)
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert api.call("staff", "GET", "/v1/schools", params={"cursor": "%%%"}).json()["field"] == "cursor"
    assert api.call("staff", "GET", "/v1/schools/nowhere/suggestions").status_code == 404
    assert api.call("staff", "GET", "/v1/schools/nowhere").json() == {
        "detail": "school 'nowhere' not found",
        "field": "school_id",
    }
    assert api.call("staff", "GET", "/v1/invitations/inv-none").status_code == 404
    assert api.call("staff", "POST", "/v1/partnerships/p-none/end").status_code == 404
    assert api.call("staff", "GET", "/v1/nothing-here").json()["detail"] == "Not Found"
    assert api.state.store.latest_change_seq() == before
    assert api.state.store.get_schools(["my-bad"]) == {}


def test_imports_are_all_or_nothing_and_bounded_in_size(api: Api) -> None:
    before = api.state.store.count_schools(active=None)
    bad_csv = (
        "id,name_en,country,levels\n"
        "my-imp-1,Good One,MY,primary\n"
        "my-imp-2,Bad Country,Narnia,primary\n"
        "my-imp-3,Bad Level,MY,kindergarten\n"
    )
    rejected = api.call("staff", "POST", "/v1/schools/import", files={"file": ("schools.csv", bad_csv, "text/csv")})
    assert rejected.status_code == 422
    assert sorted((e["line"], e["field"]) for e in rejected.json()["errors"]) == [(3, "country"), (4, "levels")]
    assert api.state.store.count_schools(active=None) == before

    too_big = "x" * (UPLOAD_LIMIT + 1)
    declared = api.call("staff", "POST", "/v1/schools/import", files={"file": ("big.csv", too_big, "text/csv")})
    assert declared.status_code == 413 and declared.json()["field"] == "body"
    streamed = api.call(
        "staff",
        "POST",
        "/v1/schools/import",
        content=iter([b"x" * 40_000, b"x" * 40_000]),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413
    assert api.state.store.count_schools(active=None) == before

    jsonl = "\n".join(
        json.dumps(row)
        for row in (
            {
                "id": "my-imp-j1",
                "name_en": "Jsonl One",
                "country": "MY",
                "levels": ["primary"],
                "languages_exchange": ["en"],
                "exchange_modes": ["virtual"],
                "target_countries": ["TW"],
            },
            {"id": "th-imp-j2", "name_en": "Jsonl Two", "country": "TH", "levels": ["primary"]},
        )
    )
    done = api.call("staff", "POST", "/v1/schools/import", files={"file": ("new.jsonl", jsonl, "application/x-ndjson")})
    assert done.status_code == 200 and done.json() == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0}
    assert {"my-imp-j1", "th-imp-j2"} <= indexed(api), "imported schools are indexed right away"

    mapped = api.call(
        "staff",
        "POST",
        "/v1/schools/import",
        data={"mapping": "my_sjkc_schools"},
        files={"file": ("sjkc.csv", SJKC_CSV, "text/csv")},
    )
    assert mapped.status_code == 200 and mapped.json()["created"] == 2
    yaml_text = (MAPPINGS_DIR / "my_sjkc_schools.yaml").read_text(encoding="utf-8")
    uploaded = api.call(
        "staff",
        "POST",
        "/v1/schools/import",
        files={"file": ("sjkc.csv", SJKC_CSV, "text/csv"), "mapping_file": ("m.yaml", yaml_text)},
    )
    assert uploaded.status_code == 200 and uploaded.json()["unchanged"] == 2
    unknown = api.call(
        "staff",
        "POST",
        "/v1/schools/import",
        data={"mapping": "no_such_mapping"},
        files={"file": ("sjkc.csv", SJKC_CSV, "text/csv")},
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "mapping"


# --------------------------------------------------------------------------- suggestions


def test_ad_hoc_profiles_get_suggestions_and_are_not_stored(api: Api) -> None:
    model = api.school(api.taiwanese[2]).model_dump(mode="json", exclude={"id", "created_at", "updated_at"})
    before = api.state.store.latest_change_seq()
    response = api.call("portal", "POST", "/v1/suggestions", json={"profile": model, "k": 5, "filters": {}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["school_id"] is None and len(result["suggestions"]) == 5
    assert all(s["school"]["country"] != "TW" for s in result["suggestions"])
    assert api.state.store.latest_change_seq() == before

    filtered = api.call(
        "portal", "POST", "/v1/suggestions", json={"profile": model, "k": 5, "filters": {"countries": ["MY"]}}
    ).json()
    assert filtered["suggestions"] and all(s["school"]["country"] == "MY" for s in filtered["suggestions"])
    wrong = api.call("portal", "POST", "/v1/suggestions", json={"profile": model | {"target_countries": ["TW"]}})
    assert wrong.status_code == 422 and wrong.json()["field"] == "target_countries"
    too_many = api.call("portal", "POST", "/v1/suggestions", json={"profile": model, "k": 51})
    assert too_many.status_code == 422 and too_many.json()["field"] == "k"


def test_suggestion_filters_and_diversity_switch(api: Api) -> None:
    source = api.taiwanese[3]
    response = api.call(
        "staff",
        "GET",
        f"/v1/schools/{source}/suggestions",
        params={"k": 5, "country": ["MY", "TH"], "diversity": "false"},
    )
    assert response.status_code == 200
    suggestions = response.json()["suggestions"]
    assert suggestions and all(s["school"]["country"] in ("MY", "TH") for s in suggestions)
    assert [s["score"] for s in suggestions] == sorted((s["score"] for s in suggestions), reverse=True)


def test_suggestions_json_is_what_pydantic_writes_for_the_response_model(api: Api) -> None:
    """The routes write their answer with orjson from the result's fields: byte for byte the JSON of
    the validated SuggestionsOut, for every school, with and without filters, wishes, diversity,
    an ad-hoc profile (no school id) and an empty list (eliminations and hints only)."""
    with api.state.reading() as matcher:
        sources: list[str | School] = sorted(s for s in matcher.schools if matcher.schools[s].active)
        sources.append(api.school(api.taiwanese[2]).model_copy(update={"id": AD_HOC_ID}))
        cases = [
            (10, SuggestionFilters(), RequestOverrides()),
            (3, SuggestionFilters(countries=["MY", "TH"]), RequestOverrides(diversity=False, wishes="soft")),
            (50, SuggestionFilters(remote_only=True), RequestOverrides(wishes="hard")),
            (5, SuggestionFilters(countries=["ZW"]), RequestOverrides()),
        ]
        shapes = set()
        for n, source in enumerate(sources):
            k, filters, overrides = cases[n % len(cases)]
            with matcher.embedder.transient():
                result = matcher.suggest(source, k, filters=filters, overrides=overrides)
            suggestions = [
                SuggestionOut(**dict(s), school=SchoolCard.of(matcher.schools[s.school_id])) for s in result.suggestions
            ]
            expected = SuggestionsOut(**dict(result) | {"suggestions": suggestions}).model_dump_json()
            assert suggestions_json(result, matcher).body.decode() == expected
            shapes.add((result.school_id is None, bool(result.suggestions), bool(result.eliminated)))
    assert {(True, True, True), (False, False, True), (False, True, True)} <= shapes


def test_a_written_card_follows_its_profile(api: Api) -> None:
    """Cards are written once per profile object: an edited profile (a new object) gets its own."""
    school = api.school(api.taiwanese[3])
    before = json.loads(orjson.dumps(suggestions_module._card(school)))
    edited = school.model_copy(update={"name_en": "Renamed Primary School", "sdgs": [4]})
    after = json.loads(orjson.dumps(suggestions_module._card(edited)))
    assert before == json.loads(SchoolCard.of(school).model_dump_json()) and before["sdgs"] != [4]
    assert after == json.loads(SchoolCard.of(edited).model_dump_json()) and after["sdgs"] == [4]
    assert suggestions_module._card(edited) is suggestions_module._card(edited)


def test_wishes_soft_turns_the_wished_country_floor_off(api: Api) -> None:
    """wishes=soft: the list is the ranking's own; by default (and with wishes=hard) at least half
    comes from the wished countries where that many are eligible."""
    with api.state.reading() as matcher:
        wishing = [s.id for s in matcher.schools.values() if s.country == "TW" and s.active and s.target_countries]
        wanted = {i: set(matcher.schools[i].target_countries) for i in wishing}

    def listed(source: str, **params: str) -> list[str]:
        response = api.call("staff", "GET", f"/v1/schools/{source}/suggestions", params={"k": 10, **params})
        assert response.status_code == 200, response.text
        return [s["school"]["country"] for s in response.json()["suggestions"]]

    differs = 0
    for source in wishing[:40]:
        hard, soft = listed(source, wishes="hard"), listed(source, wishes="soft")
        in_hard, in_soft = (sum(c in wanted[source] for c in countries) for countries in (hard, soft))
        assert in_hard >= min(5, in_soft)  # each list shown damps its schools a little: not exactly equal
        differs += in_hard > in_soft
    assert differs > 0, "no school's list changed: the floor was never exercised"
    bad = api.call("staff", "GET", f"/v1/schools/{wishing[0]}/suggestions", params={"wishes": "maybe"})
    assert bad.status_code == 422 and bad.json()["field"] == "wishes"


# --------------------------------------------------------------------------- invitations


def test_the_invitation_loop_ends_in_a_partnership(api: Api) -> None:
    source = api.taiwanese[4]
    partner = api.suggested(source, 10, who="portal")[0]
    partner_key = create_key(api.state.store, Role.SCHOOL, school_id=partner).key
    api.keys["partner"] = partner_key

    sent = api.call(
        "portal", "POST", "/v1/invitations", json={"from_school": source, "to_school": partner, "message": "Shall we?"}
    )
    assert sent.status_code == 201, sent.text
    invitation = sent.json()
    assert invitation["status"] == "pending" and invitation["from_card"]["id"] == source
    assert not PRIVATE_FIELDS & set(invitation["to_card"])
    expires = datetime.fromisoformat(invitation["expires_at"]) - datetime.fromisoformat(invitation["created_at"])
    assert expires == timedelta(days=14)
    twice = api.call("portal", "POST", "/v1/invitations", json={"from_school": partner, "to_school": source})
    assert twice.status_code == 409 and twice.json()["field"] == "to_school"

    received = api.call("partner", "GET", "/v1/invitations", params={"direction": "received"}).json()["items"]
    assert [i["id"] for i in received] == [invitation["id"]]
    assert api.call("school", "POST", f"/v1/invitations/{invitation['id']}/accept").status_code == 403

    accepted = api.call("partner", "POST", f"/v1/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    partnership = accepted.json()["partnership"]
    assert partnership["origin"] == "suggested" and {partnership["school_a"], partnership["school_b"]} == {
        source,
        partner,
    }
    assert accepted.json()["invitation"]["partnership_id"] == partnership["id"]
    listed = api.call("portal", "GET", "/v1/partnerships", params={"school_id": source, "active": "true"}).json()
    assert partnership["id"] in [p["id"] for p in listed]
    assert partner not in api.suggested(source, 10), "partners are not suggested again"
    assert api.call("partner", "POST", f"/v1/invitations/{invitation['id']}/accept").status_code == 409


def test_invitations_hold_capacity_and_obey_the_hard_rules(api: Api) -> None:
    first = api.taiwanese[5]
    candidate = api.school(api.suggested(first)[0])
    narrow = candidate.model_dump(mode="json", exclude={"created_at", "updated_at"}) | {
        "id": "narrow-cap",
        "capacity": 1,
    }
    assert api.call("staff", "POST", "/v1/schools", json=narrow).status_code == 201
    with api.state.reading() as matcher:  # another school the same candidate suits
        second = next(
            school_id
            for school_id in api.taiwanese[6:]
            if not pair_check(matcher, matcher.schools[school_id], matcher.schools["narrow-cap"])[0]
        )

    one = api.call("portal", "POST", "/v1/invitations", json={"from_school": first, "to_school": "narrow-cap"})
    assert one.status_code == 201, one.text
    full = api.call("portal", "POST", "/v1/invitations", json={"from_school": second, "to_school": "narrow-cap"})
    assert full.status_code == 409 and full.json()["rules"] == ["at_capacity"]
    assert "narrow-cap" not in api.suggested(second, 50), "a pending invitation fills the last place"

    declined = api.call("portal", "POST", f"/v1/invitations/{one.json()['id']}/decline", json={"reason": "Full"})
    assert declined.status_code == 200 and declined.json()["decline_reason"] == "Full"
    retry = api.call("portal", "POST", "/v1/invitations", json={"from_school": second, "to_school": "narrow-cap"})
    assert retry.status_code == 201, retry.text

    same_country = api.call("staff", "POST", "/v1/invitations", json={"from_school": first, "to_school": api.home})
    assert same_country.status_code == 422 and "same_country" in same_country.json()["rules"]
    unknown = api.call("staff", "POST", "/v1/invitations", json={"from_school": first, "to_school": "nowhere"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "to_school"
    myself = api.call("staff", "POST", "/v1/invitations", json={"from_school": first, "to_school": first})
    assert myself.status_code == 422 and "same_school" in myself.json()["rules"]


def test_unanswered_invitations_expire_and_count_against_responsiveness(api: Api) -> None:
    source = api.taiwanese[7]
    partner = api.suggested(source)[0]
    long_ago = utcnow() - timedelta(days=20)
    stale = api.state.store.create_invitation(
        source, partner, None, expires_at=long_ago + timedelta(days=14), now=long_ago
    )
    shown = api.call("staff", "GET", f"/v1/invitations/{stale.id}")
    assert shown.json()["status"] == "expired", "expired when read, sweep or not"
    late = api.call("staff", "POST", f"/v1/invitations/{stale.id}/accept")
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    with api.state.reading() as matcher:
        assert matcher.history[partner].expired >= 1
        assert matcher.pending.get(partner, 0) == 0
    listed = api.call("staff", "GET", "/v1/invitations", params={"school_id": partner, "status": "expired"}).json()
    assert stale.id in [i["id"] for i in listed["items"]]


# --------------------------------------------------------------------------- partnerships


def test_staff_record_and_end_partnerships(api: Api) -> None:
    source = api.taiwanese[8]
    partner = api.suggested(source)[0]
    created = api.call(
        "staff",
        "POST",
        "/v1/partnerships",
        json={"school_a": partner, "school_b": source, "start_date": "2026-02-01", "modes": ["virtual"]},
    )
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["origin"] == "existing" and stored["school_a"] == min(source, partner)
    assert partner not in api.suggested(source)

    ended = api.call("staff", "POST", f"/v1/partnerships/{stored['id']}/end", json={"end_date": "2026-03-01"})
    assert ended.status_code == 200 and ended.json()["end_date"] == "2026-03-01"
    assert partner in api.suggested(source)
    again = api.call("staff", "POST", f"/v1/partnerships/{stored['id']}/end")
    assert again.status_code == 409 and again.json()["field"] == "end_date"

    domestic = api.call(
        "staff",
        "POST",
        "/v1/partnerships",
        json={"school_a": source, "school_b": api.taiwanese[9], "start_date": "2026-02-01"},
    )
    assert domestic.status_code == 422 and domestic.json()["errors"][0]["field"] == "school_b"


# --------------------------------------------------------------------------- stats, metrics, readiness


def test_stats_and_metrics(api: Api) -> None:
    stats = api.call("staff", "GET", "/v1/stats", params={"clusters": 3}).json()
    assert stats["graph"]["active_schools"] == stats["active_schools"]
    assert stats["graph"]["partnerships"] == stats["active_partnerships"]
    assert sum(stats["schools_by_country"].values()) == stats["active_schools"]
    sizes = [c["size"] for c in stats["largest_clusters"]]
    assert 0 < len(sizes) <= 3 and sizes == sorted(sizes, reverse=True)
    assert all(len(c["countries"]) >= 2 for c in stats["largest_clusters"])

    api.suggested(api.home)
    metrics = api.client.get("/metrics").text
    route = re.escape('route="/v1/schools/{school_id}/suggestions"')
    assert re.search(r'partnermatch_http_requests_total\{method="GET",' + route + r',status="200"\} [1-9]', metrics)
    assert 'route="/v1/schools/tw' not in metrics, "routes are counted by template, not by id"
    home_size = api.state.index_size()["home"]
    assert f'partnermatch_index_schools{{partition="home"}} {float(home_size)}' in metrics
    assert re.search(r'partnermatch_suggestion_duration_seconds_count\{kind="stored"\} [1-9]', metrics)


def test_readyz_is_503_until_the_index_is_loaded(tmp_path: Path, embedding_cache_dir: Path, small_world: Any) -> None:
    state = open_state(tmp_path, embedding_cache_dir)
    state.store.upsert_schools(small_world.schools[:60])
    key = create_key(state.store, Role.STAFF).key
    school = small_world.schools[0].id
    stall = ExitStack()
    stall.enter_context(state.changing())  # the app's loader waits for this lock: the index cannot load yet
    try:
        with TestClient(create_app(state)) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            waiting = client.get("/readyz")
            assert waiting.status_code == 503 and waiting.json()["field"] == "index"
            early = client.get(f"/v1/schools/{school}/suggestions", headers={"X-API-Key": key})
            assert early.status_code == 503 and early.headers["Retry-After"] == "5"
            read = client.get(f"/v1/schools/{school}", headers={"X-API-Key": key})  # every API route waits
            assert read.status_code == 503 and read.json()["detail"] == "index: still loading; try again in a moment"

            stall.close()
            deadline = time.monotonic() + 120
            while (ready := client.get("/readyz")).status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ready.status_code == 200 and sum(ready.json()["indexed"].values()) == 60
            assert client.get(f"/v1/schools/{school}/suggestions", headers={"X-API-Key": key}).status_code == 200
    finally:
        stall.close()
        state.close()
