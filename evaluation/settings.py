"""How an evaluation run is set up, read from the environment (PARTNERMATCH_EVAL_*).

The defaults are the ones the targets in the report are stated for: 20% of partnerships held
out, k in {5, 10, 20}, exposure measured on top-10 lists, both sides of every held-out pair asked.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SplitName = Literal["time", "random"]
QuerySides = Literal["both", "home"]


class EvaluationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERMATCH_EVAL_", extra="ignore")

    splits: list[SplitName] = Field(
        default_factory=lambda: ["time", "random"],
        description="time: the most recent partnerships are held out; random: a seeded sample of pairs",
    )
    holdout_share: float = Field(0.2, gt=0, lt=1, description="share of partnerships the recommender does not see")
    seed: int = Field(7, description="seed of the random split, the random baseline and tie-breaking")
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20], min_length=1, description="list lengths for accuracy")
    exposure_k: int = Field(10, ge=1, le=100, description="list length for coverage, exposure and diversity")
    pool_size: int | None = Field(
        None,
        ge=20,
        description="candidates per query that pass the hard rules and that every method ranks (the shared pool), "
        "nearest by profile vector; None: every eligible school, so no method is capped by a pool",
    )
    sides: QuerySides = Field(
        "both",
        description="both: every school with a held-out partner asks, Taiwanese or foreign; home: Taiwanese only",
    )
    workers: int = Field(2, ge=1, le=64, description="processes that judge queries (forked, sharing the recommender)")
    max_queries: int | None = Field(
        None, ge=1, description="evaluate a seeded sample of at most this many queries per split (None: all)"
    )

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"every k must be at least 1, got {value}")
        return sorted(set(value))

    @field_validator("splits")
    @classmethod
    def _some_split(cls, value: list[SplitName]) -> list[SplitName]:
        if not value:
            raise ValueError("give at least one split: time, random")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _pool_holds_a_list(self) -> EvaluationSettings:
        if self.pool_size is not None and self.pool_size < self.max_k:
            raise ValueError(f"pool_size: {self.pool_size} is shorter than the longest list ({self.max_k})")
        return self

    @property
    def max_k(self) -> int:
        return max(*self.ks, self.exposure_k)
