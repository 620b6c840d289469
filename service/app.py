"""The FastAPI app: versioned routes under /v1, API-key auth, JSON errors, metrics.

``create_app(state)`` serves a ServiceState the caller opened; ``create_app()`` opens one from the
environment. Either way an index not loaded yet is loaded or built in a background thread, so the
server answers at once: /healthz says ok, /readyz says 503 with the encoding progress, the other
API routes 503 with the same words, until the index is ready. ``uvicorn service.app:app`` runs
the latter. The app closes (and so saves) only a state it opened itself; a state passed in stays
the caller's to close.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from data.settings import StorageSettings
from embeddings import EmbeddingSettings
from matching.settings import MatchSettings
from service import docs
from service.auth import Guard
from service.deps import storable_text
from service.errors import BodyLimit, install_error_handlers
from service.metrics import REQUEST_ID_HEADER, Metrics, RequestMetrics, request_log
from service.routes import exports, health, invitations, partnerships, rounds, schools, staff, stats
from service.routes.suggestions import suggestions_router
from service.settings import ServiceSettings
from service.state import ServiceState

log = logging.getLogger("partnermatch.service")
STALE_UPLOAD_PREFIX = "partnermatch-import-"

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
    settings = settings or (state.settings if state is not None else ServiceSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        remove_stale_uploads()
        opened = state is None
        service = state or ServiceState.open(
            storage, settings, embedding=embedding, match=match, embedding_cache_dir=embedding_cache_dir
        )
        app.state.service = service
        loader = None if service.ready else service.start_in_background()
        try:
            yield
        finally:
            if loader is not None and service.ready:
                loader.join()  # it is only starting the follower now
            elif loader is not None:  # stopped during a first build: what is encoded is cached
                log.warning("stopping before the index was ready; the next start resumes from the embedding cache")
            if opened:
                service.close()

    app = FastAPI(
        title="partnermatch",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(storable_text)],
        docs_url=None,  # served by service.docs from local files, so they work offline
        redoc_url=None,
        generate_unique_id_function=docs.operation_id,
    )
    docs.install(app)
    metrics = Metrics(lambda: app.state.service.index_size() if hasattr(app.state, "service") else {})
    app.state.metrics = metrics
    app.state.guard = Guard(settings.failed_auth_limit, settings.expensive_limit, settings.key_cache_seconds)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "If-Match", REQUEST_ID_HEADER],
            expose_headers=["ETag", "Retry-After", REQUEST_ID_HEADER],
        )
    app.add_middleware(RequestMetrics, metrics=metrics)
    _log_requests()
    for router in routers(settings):
        app.include_router(router)
    return app


def _log_requests() -> None:
    """Request log lines (JSON) go to stdout unless the host program configured logging itself.
    Each record leaves out the thread, process and source line it came from (logging's own
    switches for that, process-wide): no format here or in uvicorn's shows them, and looking them
    up was a fifth of the request log line's cost (a stack walk and three lookups a record)."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # the logging HOWTO's way to skip the caller lookup
    if not logging.getLogger().handlers and not request_log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)


def remove_stale_uploads(folder: Path | None = None) -> list[Path]:
    """Delete import uploads a crashed process left in the temp folder: earlier versions copied
    each upload (contact e-mails included) to a partnermatch-import-* folder there. Imports now
    read the upload where Starlette spooled it, which the OS removes even after a crash."""
    found = sorted(Path(folder or tempfile.gettempdir()).glob(f"{STALE_UPLOAD_PREFIX}*"))
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    if found:
        log.warning("removed %d import upload folder(s) left by a crash", len(found))
    return found


app = create_app()
