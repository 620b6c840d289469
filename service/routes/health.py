"""Liveness, readiness and Prometheus metrics: no key needed, nothing private in them."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.deps import MetricsDep, State
from service.metrics import CONTENT_TYPE
from service.models import Health, NotReady, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (it may still be loading the index)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": NotReady, "description": "The index is still loading or being built"}},
)
def readyz(state: State) -> Readiness | JSONResponse:
    """503 until the index is loaded or built, with how far it is (profiles encoded of all, on a
    first start); then what it holds."""
    if not state.ready:
        progress = state.progress()
        body = NotReady(status=progress.status, encoded=progress.encoded, total=progress.total, detail=progress.detail)
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
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
