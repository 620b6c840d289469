"""Property-based requests generated from the app's own OpenAPI schema (schemathesis), sent with a
staff key to an app serving a small generated world, on SQLite and on PostgreSQL: no request may
make it fail with a 5xx, and every answer must match the schema it documents (status codes,
content types, bodies)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.auth import Role, create_key
from service.settings import ServiceSettings
from tests.conftest import database_url
from tests.test_security import served_state

MAX_EXAMPLES = 15  # per operation and database
SETTINGS = ServiceSettings(change_poll_seconds=0, max_upload_bytes=256 * 1024, expensive_limit="100000/minute")
# Every check but the two that judge validation by the schema alone. A schema-valid request may
# still be refused (422) for what OpenAPI cannot say: a real ISO country code, a known Taiwan
# county, at least one name, a school not targeting its own country. And pydantic's lax mode
# accepts some schema-invalid values by converting them (false -> 0 for a number, "5" -> 5).
EXCLUDED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]


class ServedApp:
    """The ASGI app schemathesis talks to. Its schema is loaded at import, when nothing should be
    opened yet, so until the fixture starts a service this only serves the OpenAPI document; then
    it forwards everything (lifespan included) to an app serving a started state."""

    def __init__(self) -> None:
        document = create_app(settings=SETTINGS).openapi()
        self.target: ASGIApp = Starlette(routes=[Route("/openapi.json", lambda _: JSONResponse(document))])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.target(scope, receive, send)


served_app = ServedApp()
schema = schemathesis.openapi.from_asgi("/openapi.json", served_app)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def staff_key(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embedding_cache_dir: Path,
    small_world: Any,
) -> Iterator[str]:
    for url in database_url(request.param, tmp_path_factory):
        state = served_state(url, tmp_path_factory.mktemp("schemathesis"), embedding_cache_dir, small_world, SETTINGS)
        served_app.target = create_app(state)
        served_app.target.state.service = state  # what its lifespan sets, for callers that skip the lifespan
        yield create_key(state.store, Role.STAFF).key
        state.close()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_breaks_the_api(case: Any, staff_key: str) -> None:
    response = case.call_and_validate(headers={"X-API-Key": staff_key}, excluded_checks=EXCLUDED)
    assert response.status_code != 401, "the staff key is accepted: the cases reach the routes"


STATEFUL_STEPS = 8


def test_following_the_links_never_breaks_the_api(staff_key: str) -> None:
    """Sequences of calls along the OpenAPI links (create a school, then read, edit, ask for its
    suggestions, deactivate it; send an invitation, then accept or decline it; record a
    partnership, then end it), with ids the earlier answers gave."""

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"X-API-Key": staff_key}}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=EXCLUDED)

    Scenario.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
