"""Figures for staff: schools and partnerships by country, level and remoteness, and the shape
of the partnership network."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import Staff, State, errors
from service.models import ClusterOut, GraphSummaryOut, StatsOut
from service.routes.listing import QueryInt

router = APIRouter(prefix="/v1", tags=["stats"], responses=errors(401, 403, 422))


@router.get("/stats", response_model=StatsOut)
def stats(
    _: Staff, state: State, clusters: Annotated[QueryInt, Query(ge=0, le=50, description="largest clusters shown")] = 5
) -> StatsOut:
    summary, found = state.graph_report()
    return StatsOut(
        **state.store.stats(),
        graph=GraphSummaryOut(**summary),
        largest_clusters=[
            ClusterOut(size=c.size, countries=c.countries, members=list(c.members)) for c in found[:clusters]
        ],
    )
