"""The shape of one reason behind a suggestion, shared by scoring and graph adjustments."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


# Frozen: one reason object is shared by every list that shows it (matching.explain caches them),
# so none may be changed in place, nor its ``data``. (A comment: a docstring would be its schema's.)
class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(description="stable machine-readable code", examples=["shared_sdgs"])
    weight: float = Field(description="contribution to the score: a share of fit, or a graph factor")
    data: dict[str, Any] = Field(default_factory=dict)
    text_en: str
    text_zh: str
