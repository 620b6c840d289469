"""What portal developers read: the OpenAPI document's names and examples, and the docs pages.

Operation ids are the names a generated client gives its methods, so they are chosen here, once,
in one table (listSchools, getSchoolSuggestions, ...) with a one-line summary each, instead of
FastAPI's generated "send_v1_invitations_post". A route missing from the table fails the tests.

Swagger UI and ReDoc are served from the app itself (their files ship in the fastapi-offline
package), so /docs and /redoc work on a network without internet access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"

# (method, path) -> (operation id, summary)
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/healthz"): ("getHealth", "Is the process up"),
    ("GET", "/readyz"): ("getReadiness", "Is the index loaded and the service ready for suggestions"),
    ("GET", "/metrics"): ("getMetrics", "Prometheus metrics"),
    ("POST", "/v1/schools"): ("createSchool", "Add a school"),
    ("GET", "/v1/schools"): ("listSchools", "List and search schools, a page at a time"),
    ("POST", "/v1/schools/import"): ("importSchools", "Import a CSV or JSON Lines directory of schools"),
    ("GET", "/v1/schools/{school_id}"): ("getSchool", "Read one school's profile"),
    ("PATCH", "/v1/schools/{school_id}"): ("updateSchool", "Change some fields of a school's profile"),
    ("POST", "/v1/schools/{school_id}/deactivate"): (
        "deactivateSchool",
        "Stop suggesting a school (kept)",
    ),
    ("GET", "/v1/schools/{school_id}/suggestions"): (
        "getSchoolSuggestions",
        "A school's suggested partners",
    ),
    ("POST", "/v1/suggestions"): ("suggestForProfile", "Suggested partners for a profile that is not stored"),
    ("POST", "/v1/invitations"): ("sendInvitation", "Invite a school to partner"),
    ("GET", "/v1/invitations"): ("listInvitations", "List invitations, sent or received"),
    ("GET", "/v1/invitations/{invitation_id}"): ("getInvitation", "Read one invitation"),
    ("POST", "/v1/invitations/{invitation_id}/accept"): (
        "acceptInvitation",
        "Accept an invitation",
    ),
    ("POST", "/v1/invitations/{invitation_id}/decline"): ("declineInvitation", "Decline an invitation, with a reason"),
    ("POST", "/v1/partnerships"): ("createPartnership", "Record a partnership"),
    ("GET", "/v1/partnerships"): ("listPartnerships", "List partnerships"),
    ("POST", "/v1/partnerships/{partnership_id}/end"): ("endPartnership", "End a partnership"),
    ("GET", "/v1/stats"): ("getStats", "Counts of schools, partnerships and invitations"),
    ("POST", "/v1/rounds"): ("createRound", "Run a matching round over a cohort"),
    ("GET", "/v1/rounds"): ("listRounds", "List matching rounds"),
    ("GET", "/v1/rounds/{round_id}"): (
        "getRound",
        "Read a round job: progress, or the round and a page of pairs",
    ),
    ("POST", "/v1/rounds/{round_id}/accept"): ("acceptRound", "Accept a round's pairs: the partnerships start"),
    ("GET", "/v1/schools/{school_id}/groups"): ("getSchoolGroups", "Cross-border groups of 3-5 schools on a theme"),
    ("GET", "/v1/exports/{kind}"): ("exportTable", "Schools, partnerships or a round's pairs as CSV or XLSX"),
}

# Request bodies whose schema is optional (Model | None) or a form, where FastAPI shows no example.
BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "importSchools": {"file": "schools.csv", "mapping": "tw_primary_schools"},
    "endPartnership": {"end_date": "2027-06-30"},
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def operation_id(route: APIRoute) -> str:
    """The table's id for a route; any route not in it (the tests catch those) gets its camelCased name."""
    for method in sorted(route.methods or ()):
        known = OPERATIONS.get((method, route.path_format))
        if known is not None:
            return known[0]
    return _camel(route.name)


def openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with the table's summaries and an example on every request body."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = spec.get("components", {}).get("schemas", {})
    summaries = {op_id: summary for op_id, summary in OPERATIONS.values()}
    for operations in spec["paths"].values():
        for operation in operations.values():
            op_id = operation.get("operationId", "")
            if op_id in summaries:
                operation["summary"] = summaries[op_id]
            for content in operation.get("requestBody", {}).get("content", {}).values():
                if "example" in content or "examples" in content:
                    continue
                example = BODY_EXAMPLES.get(op_id) or _schema_example(content.get("schema", {}), schemas)
                if example is not None:
                    content["example"] = example
    app.openapi_schema = spec
    return spec


def _schema_example(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """The first example of the model a body refers to, also through anyOf (Model | None)."""
    for option in [schema, *schema.get("anyOf", [])]:
        ref = option.get("$ref", "")
        if ref:
            model = schemas.get(ref.rsplit("/", 1)[-1], {})
            if model.get("examples"):
                return model["examples"][0]
    return None


def install(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc from files the app serves, and the document above."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
