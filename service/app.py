"""The FastAPI app: versioned routes under /v1, API-key auth, JSON errors, metrics.

``create_app(state)`` serves a ServiceState the caller prepared (the CLI loads or builds the
index first, with progress output); ``create_app()`` opens one from the environment and loads
the index in a background thread, so /healthz answers at once and /readyz says 503 until the
index is ready. ``uvicorn service.app:app`` runs the latter. The app closes (and so saves) only
a state it opened itself; a state passed in stays the caller's to close.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI

from data.settings import StorageSettings
from embeddings import EmbeddingSettings
from matching.settings import MatchSettings
from service import docs
from service.errors import BodyLimit, install_error_handlers
from service.metrics import Metrics, RequestMetrics
from service.routes import exports, health, invitations, partnerships, rounds, schools, staff, stats
from service.routes.suggestions import suggestions_router
from service.settings import ServiceSettings
from service.state import ServiceState

log = logging.getLogger("partnermatch.service")

DESCRIPTION = """Partner suggestions for international exchange between Taiwanese schools and schools abroad.

Send an API key in `X-API-Key` (or `Authorization: Bearer <key>`); keys are made with
`partnermatch keys create`. Roles: **staff** (everything), **portal** (public profiles,
suggestions and invitations for any school), **school** (its own profile, suggestions and
invitations). Errors are JSON `{"detail": ..., "field": ...}`, the detail naming the field."""


def routers(settings: ServiceSettings) -> list[APIRouter]:
    """Every router the app serves, in order."""
    return [
        health.router,
        schools.router,
        suggestions_router(settings.max_k),
        invitations.router,
        partnerships.router,
        stats.router,
        rounds.router,
        exports.router,
        staff.router,
    ]


def create_app(
    state: ServiceState | None = None,
    *,
    settings: ServiceSettings | None = None,
    storage: StorageSettings | None = None,
    embedding: EmbeddingSettings | None = None,
    match: MatchSettings | None = None,
    embedding_cache_dir: Path | None = None,
) -> FastAPI:
    settings = state.settings if state is not None else settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = state is None
        service = state or ServiceState.open(
            storage, settings, embedding=embedding, match=match, embedding_cache_dir=embedding_cache_dir
        )
        app.state.service = service
        loader = None
        if not service.ready:
            loader = threading.Thread(target=_start, args=(service,), name="partnermatch-index", daemon=True)
            loader.start()
        try:
            yield
        finally:
            if loader is not None:
                loader.join()
            if opened:
                service.close()

    app = FastAPI(
        title="partnermatch",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by service.docs from local files, so they work offline
        redoc_url=None,
        generate_unique_id_function=docs.operation_id,
    )
    docs.install(app)
    metrics = Metrics(lambda: app.state.service.index_size() if hasattr(app.state, "service") else {})
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    for router in routers(settings):
        app.include_router(router)
    return app


def _start(service: ServiceState) -> None:
    try:
        service.start()
    except Exception as exc:  # the process stays up and /readyz says why
        log.exception("could not load or build the index")
        service.start_error = f"index: could not be loaded or built: {exc}"


app = create_app()
