"""Liveness, readiness and Prometheus metrics: no key needed, nothing private in them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.deps import MetricsDep, State, errors
from service.metrics import CONTENT_TYPE
from service.models import Health, Readiness
from service.state import IndexNotReady

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (it may still be loading the index)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=errors(503))
def readyz(state: State) -> Readiness:
    """503 until the index is loaded or built; then what it holds."""
    if not state.ready:
        raise IndexNotReady(state.start_error or "index: still loading; try again in a moment")
    return Readiness(
        status="ready",
        indexed=state.index_size(),
        change_seq=state.seq,
        index_origin=state.index_origin,
        ranking=state.ranking,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
