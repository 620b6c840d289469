"""Portal developers: operation ids and summaries from one table, an example on every request body,
Swagger UI and ReDoc from the app's own files (no CDN), and the typed client against a live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from matching.rounds import RoundOptions, remaining_capacity, run_round
from service.app import create_app
from service.auth import Role, create_key
from service.client import ApiProblem, PartnermatchClient
from service.docs import OPERATIONS
from service.models import ROUND_PAIRS_DEFAULT, RoundSummary
from tests.serving import UvicornThread, load_world
from tests.test_api import open_state


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path, small_world: Any) -> Iterator[Any]:
    state = open_state(tmp_path_factory.mktemp("client"), embedding_cache_dir)
    load_world(state, small_world)
    keys = {role: create_key(state.store, role).key for role in (Role.STAFF, Role.PORTAL)}
    server = UvicornThread.start(create_app(state))
    try:
        yield server.base, keys, state
    finally:
        server.stop()
        state.close()


def test_every_operation_has_a_chosen_id_a_summary_and_body_examples(live: Any) -> None:
    base, _, _ = live
    spec = httpx.get(f"{base}/openapi.json").json()
    ids = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert (method.upper(), path) in OPERATIONS, f"{method.upper()} {path} is not in service.docs.OPERATIONS"
            assert re.fullmatch(r"[a-z]+[A-Za-z]*", operation["operationId"]), operation["operationId"]
            assert operation["summary"] == OPERATIONS[method.upper(), path][1]
            ids.append(operation["operationId"])
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                schema = content.get("schema", {})
                ref = schema.get("$ref", "").rsplit("/", 1)[-1]
                model = spec["components"]["schemas"].get(ref, {})
                assert "example" in content or "examples" in content or model.get("examples"), (path, media)
    assert len(ids) == len(set(ids)) and {"listSchools", "getSchoolSuggestions", "sendInvitation"} <= set(ids)
    assert len(OPERATIONS) == len(ids), "the table lists no route that is gone"


def test_docs_pages_use_only_the_apps_own_files(live: Any) -> None:
    base, _, _ = live
    for page in ("/docs", "/redoc"):
        body = httpx.get(f"{base}{page}").text
        assert not re.search(r"(src|href)=['\"]https?://", body), f"{page} loads something from another site"
        assets = re.findall(r"['\"](/docs-assets/[^'\"]+)['\"]", body)
        assert assets, page
        for asset in assets:
            response = httpx.get(f"{base}{asset}")
            assert response.status_code == 200 and len(response.content) > 1000, asset


def test_the_client_against_a_live_server(live: Any) -> None:
    base, keys, state = live
    with PartnermatchClient(base, keys[Role.PORTAL]) as portal:
        assert portal.get_health().status == "ok"
        assert portal.get_readiness().status == "ready"
        page = portal.list_schools(country="TW", limit=5)
        assert len(page.items) == 5 and page.next_cursor and all(s.country == "TW" for s in page.items)
        walked = list(portal.iter_schools(country="TW", limit=100))
        assert len(walked) == state.store.count_schools(country="TW")
        with state.reading() as matcher:
            free = {s.id for s in matcher.schools.values() if remaining_capacity(matcher, s) > 0}
        home = next(s for s in walked if s.id in free)
        suggestions = portal.get_school_suggestions(home.id, k=3)
        assert 0 < len(suggestions.suggestions) <= 3 and suggestions.suggestions[0].reasons
        partner = next(
            s.school_id for s in portal.get_school_suggestions(home.id, k=20).suggestions if s.school_id in free
        )
        sent = portal.send_invitation(home.id, partner, "Shall we?")
        assert portal.get_invitation(sent.id).message == "Shall we?"
        declined = portal.decline_invitation(sent.id, "Not this term")
        assert declined.status.value == "declined"
        with pytest.raises(ApiProblem) as missing:
            portal.get_school("tw-no-such-school")
        assert missing.value.status == 404
        with pytest.raises(ApiProblem) as forbidden:
            portal.get_stats()
        assert forbidden.value.status == 403
    with PartnermatchClient(base, keys[Role.STAFF]) as staff:
        assert staff.get_stats().schools > 0
        assert staff.list_rounds().items == []
        schools_csv = staff.export_table("schools")
        assert schools_csv.startswith("\ufeff".encode())
        assert len(schools_csv.decode("utf-8-sig").strip().splitlines()) == state.store.count_schools(active=None) + 1
        assert staff.export_table("partnerships", format="xlsx")[:2] == b"PK"
        with pytest.raises(ApiProblem) as no_round:
            staff.export_table("round")
        assert no_round.value.status in (400, 422) and no_round.value.field == "round_id"
        with state.reading() as matcher:
            result = run_round(matcher, None, RoundOptions())
        stored, row = state.store.prepare_round(
            options=RoundOptions().model_dump(mode="json"),
            summary=RoundSummary.of(result).model_dump(mode="json"),
            result=result.model_dump(mode="json"),
        )
        state.store.insert_round(row)
        assert len(result.pairs) > 2
        job = staff.get_round(stored.id, offset=1, limit=2)
        assert job.status == "done" and job.round is not None
        assert job.round.pairs.items == result.pairs[1:3] and job.round.pairs.total == len(result.pairs)
        assert staff.get_round(stored.id).round.pairs.limit == ROUND_PAIRS_DEFAULT  # type: ignore[union-attr]
    with PartnermatchClient(base) as nobody, pytest.raises(ApiProblem) as refused:
        nobody.list_schools()
    assert refused.value.status == 401 and refused.value.field
