"""What a hostile or careless client must not achieve, on SQLite and on PostgreSQL alike: read a
server file through the import route, break the server with text a database refuses, or loosen a
hard rule through an override. A small world behind the real app, FAISS and both databases."""

from __future__ import annotations

import doctest
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

import data.schema
from data.settings import StorageSettings
from embeddings import EmbeddingSettings
from matching.settings import MatchSettings
from service.app import STALE_UPLOAD_PREFIX, create_app, remove_stale_uploads
from service.auth import Guard, Role, create_key, hash_key
from service.settings import ServiceSettings
from service.state import ServiceState
from tests.conftest import database_url

WORLD_SIZE = 120
SETTINGS = ServiceSettings(change_poll_seconds=0, max_upload_bytes=256 * 1024, expensive_limit="100000/minute")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database URL for the whole module: a SQLite file, or a fresh PostgreSQL schema."""
    yield from database_url(request.param, tmp_path_factory)


def served_state(url: str, data_dir: Path, cache_dir: Path, world: Any, settings: ServiceSettings) -> ServiceState:
    """A started state holding WORLD_SIZE schools of the world, half Taiwanese, and their partnerships."""
    state = ServiceState.open(
        StorageSettings(data_dir=data_dir, database_url=url),
        settings,
        embedding=EmbeddingSettings(show_progress=False),
        match=MatchSettings(reference_date=datetime(2026, 3, 2).date()),
        embedding_cache_dir=cache_dir,
    )
    half = WORLD_SIZE // 2
    schools = [s for s in world.schools if s.country == "TW"][:half] + [s for s in world.schools if s.country != "TW"][
        :half
    ]
    kept = {s.id for s in schools}
    state.store.upsert_schools(schools)
    state.store.upsert_partnerships(p for p in world.partnerships if {p.school_a, p.school_b} <= kept)
    state.start()
    return state


@dataclass
class Served:
    client: TestClient
    state: ServiceState
    keys: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Response:
        headers = {"X-API-Key": self.keys[who]} | kwargs.pop("headers", {})
        return self.client.request(method, path, headers=headers, **kwargs)

    def school_ids(self, country: str | None = None) -> list[str]:
        return sorted(s.id for s in self.state.store.iter_schools(active=True) if country in (None, s.country))


@pytest.fixture(scope="module")
def served(
    module_store_url: str, tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path, small_world: Any
) -> Iterator[Served]:
    state = served_state(
        module_store_url, tmp_path_factory.mktemp("security"), embedding_cache_dir, small_world, SETTINGS
    )
    keys = {role.value: create_key(state.store, role, school_id=None).key for role in (Role.STAFF, Role.PORTAL)}
    with TestClient(create_app(state)) as client:
        yield Served(client, state, keys)
    state.close()


def test_refused_text_doctests() -> None:
    assert doctest.testmod(data.schema).failed == 0


# --------------------------------------------------------------------------- item 1: no server paths


def test_the_import_route_never_reads_a_server_path(served: Served, tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("fields:\n  colour: {value: top-secret-line}\n", encoding="utf-8")
    csv_file = {"file": ("s.csv", "id,name_en,country,levels\nmy-x1,X,MY,primary\n", "text/csv")}
    answers = [
        served.call("staff", "POST", "/v1/schools/import", data={"mapping": path}, files=csv_file)
        for path in (str(secret), "/etc/passwd", str(tmp_path / "missing.yaml"), "../mappings/tw_primary_schools")
    ]
    for answer in answers:
        assert answer.status_code == 422 and answer.json()["field"] == "mapping"
        assert "top-secret-line" not in answer.text and "root:" not in answer.text
        assert "no file" not in answer.text, "the answer does not tell whether a file exists"
    shown = {answer.json()["detail"].split("'")[2] for answer in answers}
    assert len(shown) == 1, "every path gets the same answer: the shipped names"


def test_import_errors_name_the_uploaded_file_never_a_server_path(served: Served) -> None:
    bad = "id,name_en,country,levels\nmy-x2,X,Narnia,primary\n"
    answer = served.call("staff", "POST", "/v1/schools/import", files={"file": ("my list.csv", bad, "text/csv")})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("my list.csv: 1 bad row")
    assert "/tmp" not in answer.text and "partnermatch-import" not in answer.text
    mapping = {"mapping_file": ("ours.yaml", "fields:\n  id: {column: a, template: 'x-{a}'}\n")}
    refused = served.call("staff", "POST", "/v1/schools/import", files={"file": ("s.csv", bad, "text/csv")} | mapping)
    assert refused.status_code == 422 and refused.json()["field"] == "mapping_file"
    assert "ours.yaml" in refused.json()["detail"] and "/tmp" not in refused.text
    assert not served.state.store.get_schools(["my-x2"])


# --------------------------------------------------------------------------- item 2: text databases refuse


def test_nul_and_surrogates_are_refused_at_validation_on_both_databases(served: Served) -> None:
    tw, foreign = served.school_ids("TW")[0], next(i for i in served.school_ids() if not i.startswith("tw-"))
    cases: list[tuple[str, str, str, dict[str, Any], str]] = [
        ("portal", "GET", "/v1/schools", {"params": {"q": "a\x00b"}}, "q"),
        ("portal", "GET", f"/v1/schools/{tw}%00", {}, "school_id"),
        ("portal", "GET", f"/v1/schools/{tw}%00/suggestions", {}, "school_id"),
        ("staff", "GET", "/v1/partnerships", {"params": {"school_id": "x\x00"}}, "school_id"),
        ("staff", "PATCH", f"/v1/schools/{tw}", {"json": {"name_en": "Bad\x00Name"}}, "name_en"),
        ("staff", "PATCH", f"/v1/schools/{tw}", {"content": b'{"description": "half \\ud800"}'}, "description"),
        (
            "portal",
            "POST",
            "/v1/invitations",
            {"json": {"from_school": tw, "to_school": foreign, "message": "hi\x00"}},
            "message",
        ),
        (
            "staff",
            "POST",
            "/v1/partnerships",
            {"json": {"school_a": tw, "school_b": foreign, "start_date": "2026-02-01", "note": "n\x00"}},
            "note",
        ),
    ]
    before = served.state.store.latest_change_seq()
    for who, method, path, kwargs, field in cases:
        answer = served.call(who, method, path, headers={"Content-Type": "application/json"}, **kwargs)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["field"] == field and "cannot be stored" in answer.json()["detail"], answer.text
    assert served.state.store.latest_change_seq() == before, "nothing was written"
    assert served.call("portal", "GET", "/v1/schools", params={"q": "a"}).status_code == 200, "the server still serves"


def test_a_csv_cell_with_a_nul_is_reported_with_its_line(served: Served) -> None:
    rows = "id,name_en,country,levels\nmy-n1,Good,MY,primary\nmy-n2,Bad\x00Name,MY,primary\n"
    answer = served.call("staff", "POST", "/v1/schools/import", files={"file": ("n.csv", rows, "text/csv")})
    assert answer.status_code == 422
    assert [(e["line"], e["field"]) for e in answer.json()["errors"]] == [(3, "name_en")]
    jsonl = json.dumps({"id": "my-n3", "name_en": "J\x00", "country": "MY", "levels": ["primary"]})
    answer = served.call("staff", "POST", "/v1/schools/import", files={"file": ("n.jsonl", jsonl, "text/plain")})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "name_en"
    assert not served.state.store.get_schools(["my-n1", "my-n2", "my-n3"])


# --------------------------------------------------------------------------- item 6: overrides, strict bodies


def test_overrides_only_tighten_hard_rules_and_bodies_are_strict(served: Served) -> None:
    home = served.school_ids("TW")[0]
    profile = served.state.store.get_school(home).model_dump(mode="json", exclude={"id", "created_at", "updated_at"})

    def ad_hoc(**body: Any) -> Response:
        return served.call("portal", "POST", "/v1/suggestions", json={"profile": profile} | body)

    refused = {
        "overrides.min_overlap_hours": [
            {"overrides": {"min_overlap_hours": 0}},
            {"overrides": {"min_overlap_hours": False}},
        ],
        "overrides.diversity": [{"overrides": {"diversity": 1}}, {"overrides": {"diversity": "true"}}],
        "k": [{"k": 10.0}, {"k": True}, {"k": "10"}],
        "filters.remote_only": [{"filters": {"remote_only": 0}}],
        "profile.capacity": [{"profile": profile | {"capacity": 3.0}}],
    }
    for field, bodies in refused.items():
        for body in bodies:
            answer = ad_hoc(**body)
            assert answer.status_code == 422 and answer.json()["field"] == field, (body, answer.text)
    assert "tighten" in ad_hoc(overrides={"min_overlap_hours": 0.5}).json()["detail"]
    tighter = ad_hoc(overrides={"min_overlap_hours": 2, "diversity": False}, k=5)
    assert tighter.status_code == 200, tighter.text

    for params, field in (
        ({"k": "10.0"}, "k"),
        ({"diversity": "1"}, "diversity"),
        ({"remote_only": "yes"}, "remote_only"),
    ):
        answer = served.call("portal", "GET", f"/v1/schools/{home}/suggestions", params=params)
        assert answer.status_code == 422 and answer.json()["field"] == field, answer.text
    assert (
        served.call(
            "portal", "GET", f"/v1/schools/{home}/suggestions", params={"k": "3", "diversity": "false"}
        ).status_code
        == 200
    )
    invite = {"from_school": home, "to_school": home, "message": 5}
    assert served.call("staff", "POST", "/v1/invitations", json=invite).json()["field"] == "message"


# --------------------------------------------------------------------------- item 7: smaller holes


def test_staff_partnerships_respect_capacity_unless_overridden_and_recorded(served: Served) -> None:
    full, other, third = served.school_ids("TW")[1], *[i for i in served.school_ids() if not i.startswith("tw-")][1:3]
    assert served.call("staff", "PATCH", f"/v1/schools/{full}", json={"capacity": 0}).status_code == 200
    pair = {"school_a": other, "school_b": full, "start_date": "2026-02-01"}
    refused = served.call("staff", "POST", "/v1/partnerships", json=pair)
    assert refused.status_code == 409 and full in refused.json()["detail"] and "at capacity" in refused.json()["detail"]
    assert refused.json()["field"] == "school_b"
    assert not served.state.store.list_partnerships(school_id=full, active=True)

    invited = served.call("staff", "POST", "/v1/invitations", json={"from_school": third, "to_school": full})
    assert invited.status_code == 409 and f"{full} has no room" in invited.json()["detail"], invited.text

    forced = served.call("staff", "POST", "/v1/partnerships", json=pair | {"override_capacity": True})
    assert forced.status_code == 201, forced.text
    staff_key_id = served.state.store.find_api_key(hash_key(served.keys["staff"])).id
    assert forced.json()["capacity_override"] == staff_key_id
    spoofed = served.call("staff", "POST", "/v1/partnerships", json=pair | {"capacity_override": "someone"})
    assert spoofed.status_code == 422 and spoofed.json()["field"] == "capacity_override"


def test_websites_are_http_or_https_only(served: Served) -> None:
    home = served.school_ids("TW")[2]
    for address in ("javascript:alert(1)", "data:text/html,hi", "file:///etc/passwd", "https://"):
        answer = served.call("staff", "PATCH", f"/v1/schools/{home}", json={"website": address})
        assert answer.status_code == 422 and answer.json()["field"] == "website", answer.text
    done = served.call("staff", "PATCH", f"/v1/schools/{home}", json={"website": "https://school.example.tw/"})
    assert done.status_code == 200


def test_ad_hoc_profile_vectors_stay_in_a_bounded_memory_cache(served: Served) -> None:
    home = served.school_ids("TW")[3]
    profile = served.state.store.get_school(home).model_dump(mode="json", exclude={"id", "created_at", "updated_at"})
    with served.state.reading() as matcher:
        embedder = matcher.embedder
    on_disk = len(embedder.cache)
    for number in range(3):
        draft = profile | {"description": f"A one-off profile {uuid.uuid4().hex} number {number}"}
        answer = served.call("portal", "POST", "/v1/suggestions", json={"profile": draft, "k": 3})
        assert answer.status_code == 200, answer.text
    assert len(embedder.cache) == on_disk, "no ad-hoc vector was written to the disk cache"
    assert 3 <= len(embedder._transient_vectors) <= embedder.settings.transient_cache_size


def test_patch_null_is_allowed_exactly_where_the_schema_says(served: Served) -> None:
    home = served.school_ids("TW")[4]
    patch = served.client.app.openapi()["components"]["schemas"]["SchoolPatch"]["properties"]
    nullable = {name for name, prop in patch.items() if {"type": "null"} in prop.get("anyOf", [])}
    assert {"website", "district", "contact_email"} <= nullable and not {"levels", "capacity", "country"} & nullable
    for name in ("levels", "capacity", "description", "active"):
        answer = served.call("staff", "PATCH", f"/v1/schools/{home}", json={name: None})
        assert answer.status_code == 422 and answer.json()["field"] == name, answer.text
    assert served.call("staff", "PATCH", f"/v1/schools/{home}", json={"district": None}).status_code == 200


def test_upload_folders_left_by_a_crash_are_removed_on_start(served: Served, tmp_path: Path) -> None:
    left = tmp_path / f"{STALE_UPLOAD_PREFIX}crashed"
    left.mkdir()
    (left / "upload.csv").write_text("id,contact_email\ntw-1,head@school.example\n", encoding="utf-8")
    assert remove_stale_uploads(tmp_path) == [left] and not left.exists()


# --------------------------------------------------------------------------- abuse limits, key cache


@contextmanager
def guarded(served: Served, **limits: Any) -> Iterator[Guard]:
    """The app behind a Guard with these limits for the block; the usual one (and its counts) after."""
    usual = served.client.app.state.guard
    values = {"failed_auth_limit": "100/minute", "expensive_limit": "100/minute", "key_cache_seconds": 60} | limits
    served.client.app.state.guard = Guard(**values)
    try:
        yield served.client.app.state.guard
    finally:
        served.client.app.state.guard = usual


def test_failed_sign_ins_are_rate_limited_per_address_with_retry_after(served: Served) -> None:
    with guarded(served, failed_auth_limit="3/minute"):
        wrong = [served.client.get("/v1/stats", headers={"X-API-Key": f"pm_wrong{n}"}) for n in range(4)]
        assert [r.status_code for r in wrong] == [401, 401, 401, 429]
        assert 1 <= int(wrong[-1].headers["Retry-After"]) <= 60 and wrong[-1].json()["field"] == "X-API-Key"
        assert served.call("staff", "GET", "/v1/stats").status_code == 429, "the address is blocked, key or not"
    with guarded(served, failed_auth_limit="3/minute"):
        page = [served.client.post("/staff/login", data={"key": f"pm_guess{n}"}) for n in range(4)]
        assert [r.status_code for r in page] == [401, 401, 401, 429] and "Retry-After" in page[-1].headers
    assert served.call("staff", "GET", "/v1/stats").status_code == 200


def test_failed_sign_ins_count_only_within_their_window(served: Served) -> None:
    """The Guard reads the limiter only for an address or key that failed within the window: once
    the window has moved past the failures, that address signs in again like one that never failed."""
    with guarded(served, failed_auth_limit="2/second"):
        wrong = [served.client.get("/v1/stats", headers={"X-API-Key": f"pm_wrong{n}"}) for n in range(3)]
        assert [r.status_code for r in wrong] == [401, 401, 429]
        assert served.call("staff", "GET", "/v1/stats").status_code == 429
        time.sleep(1.2)
        assert served.call("staff", "GET", "/v1/stats").status_code == 200
        again = [served.client.get("/v1/stats", headers={"X-API-Key": f"pm_again{n}"}) for n in range(3)]
        assert [r.status_code for r in again] == [401, 401, 429]


def test_expensive_routes_are_rate_limited_per_key(served: Served) -> None:
    home = served.school_ids("TW")[5]
    profile = served.state.store.get_school(home).model_dump(mode="json", exclude={"id", "created_at", "updated_at"})
    with guarded(served, expensive_limit="2/minute"):
        answers = [
            served.call("portal", "POST", "/v1/suggestions", json={"profile": profile, "k": 2}) for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429] and int(answers[-1].headers["Retry-After"]) >= 1
        assert served.call("portal", "GET", f"/v1/schools/{home}/suggestions").status_code == 200, "reads are not"


def test_keys_are_verified_from_a_short_lived_cache(served: Served) -> None:
    key = create_key(served.state.store, Role.PORTAL)
    headers = {"X-API-Key": key.key}
    with guarded(served, key_cache_seconds=60) as guard:
        assert served.client.get("/v1/schools", params={"limit": 1}, headers=headers).status_code == 200
        served.state.store.revoke_api_key(key.record.id)
        assert served.client.get("/v1/schools", params={"limit": 1}, headers=headers).status_code == 200
        assert guard._known is not None
        guard._known.expire(time.monotonic() + 61)  # the cache's clock, a minute on
        assert served.client.get("/v1/schools", params={"limit": 1}, headers=headers).status_code == 401


# --------------------------------------------------------------------------- operations


def test_each_request_has_an_id_and_one_json_log_line_without_the_key(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    home = served.school_ids("TW")[6]
    with caplog.at_level(logging.INFO, logger="partnermatch.requests"):
        given = served.call("staff", "GET", f"/v1/schools/{home}", headers={"X-Request-ID": "trace-42"})
        fresh = served.call("staff", "GET", "/v1/schools", params={"limit": 1}, headers={"X-Request-ID": "bad id\n"})
    assert given.headers["X-Request-ID"] == "trace-42"
    assert len(fresh.headers["X-Request-ID"]) == 32 and fresh.headers["X-Request-ID"] != "bad id"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "partnermatch.requests"]
    assert len(lines) == 2
    staff_key_id = served.state.store.find_api_key(hash_key(served.keys["staff"])).id
    assert lines[0] | {"duration_ms": 0} == {
        "request_id": "trace-42",
        "method": "GET",
        "route": "/v1/schools/{school_id}",
        "status": 200,
        "duration_ms": 0,
        "key_id": staff_key_id,
    }
    assert served.keys["staff"] not in caplog.text


def test_process_metrics_and_cors_only_for_listed_origins(served: Served) -> None:
    scraped = served.client.get("/metrics").text
    assert "process_resident_memory_bytes" in scraped and "python_info" in scraped
    preflight = {"Origin": "https://portal.example", "Access-Control-Request-Method": "GET"}
    assert "access-control-allow-origin" not in served.client.options("/v1/schools", headers=preflight).headers
    allowed = served.state.settings.model_copy(update={"cors_origins": ["https://portal.example"]})
    with TestClient(create_app(served.state, settings=allowed)) as client:
        answer = client.options("/v1/schools", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://portal.example"
        other = client.options("/v1/schools", headers=preflight | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_a_stale_edit_is_refused_with_412(served: Served) -> None:
    home = served.school_ids("TW")[7]
    read = served.call("staff", "GET", f"/v1/schools/{home}")
    tag = read.headers["ETag"]
    first = served.call("staff", "PATCH", f"/v1/schools/{home}", json={"capacity": 4}, headers={"If-Match": tag})
    assert first.status_code == 200 and first.headers["ETag"] != tag
    stale = served.call("staff", "PATCH", f"/v1/schools/{home}", json={"capacity": 6}, headers={"If-Match": tag})
    assert stale.status_code == 412 and stale.json()["field"] == "If-Match"
    assert served.state.store.get_school(home).capacity == 4, "the other edit was not overwritten"
    assert served.call("staff", "GET", f"/v1/schools/{home}").headers["ETag"] == first.headers["ETag"]
