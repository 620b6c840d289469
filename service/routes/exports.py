"""Exports for staff over the API: schools, partnerships or a round's pairs as CSV (UTF-8 with a
BOM, so Excel shows Chinese names) or XLSX, the same tables `partnermatch export` writes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from data.io import MEDIA_TYPES, export_rows, table_bytes
from service.deps import Staff, State, errors

router = APIRouter(prefix="/v1", tags=["exports"], responses=errors(401, 403, 422))


@router.get(
    "/exports/{kind}",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}},
        **errors(404),
    },
)
def export_table(
    kind: Literal["schools", "partnerships", "round"],
    _: Staff,
    state: State,
    format: Annotated[Literal["csv", "xlsx"], Query(description="csv (with a BOM) or xlsx")] = "csv",
    round_id: Annotated[str | None, Query(max_length=64, description="the round, for kind=round")] = None,
) -> Response:
    """A download: every school (private fields included), every partnership, or one round's pairs."""
    header, rows = export_rows(state.store, kind, round_id=round_id)
    name = round_id if kind == "round" else kind
    return Response(
        table_bytes(format, header, rows),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )
