"""Every weight and threshold of the matching engine, in one place, with documented defaults.

Read from the environment with the prefix ``PARTNERMATCH_MATCH_`` (e.g.
``PARTNERMATCH_MATCH_HOME_COUNTRY=TW``), so a deployment tunes matching without code changes.
A request may override the few fields in :class:`RequestOverrides`, within their bounds.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from data.taxonomies import LEVEL_ORDER, Level, normalize_country


def default_level_matrix() -> dict[Level, list[Level]]:
    """Same or adjacent level: a primary school pairs with primary and junior high, and so on."""
    return {a: [b for b in Level if abs(LEVEL_ORDER[a] - LEVEL_ORDER[b]) <= 1] for a in Level}


class FitWeights(BaseModel):
    """Weights of the components of fit(a→b); normalised by their sum, so only ratios matter."""

    target_country: float = Field(1.5, ge=0, description="b is in a country a asked for")
    sdg: float = Field(2.0, ge=0, description="share of a's SDG themes that b shares")
    language: float = Field(1.0, ge=0, description="shared exchange languages, more if a teaches in one")
    mode: float = Field(1.0, ge=0, description="share of a's exchange modes that b offers")
    level: float = Field(1.0, ge=0, description="same level beats adjacent level")
    timezone: float = Field(1.0, ge=0, description="hours of shared school time, for virtual exchange")
    embedding: float = Field(1.5, ge=0, description="similarity of the profile vectors (description, themes)")


class RebalanceWeights(BaseModel):
    """How the partnership graph and the record of shown lists reshape the ranking (see graph/).

    Defaults retuned against the *trained* score (``partnermatch sensitivity``, which runs the
    product with the ranker trained on the split's training part) on generated 2k worlds of both
    partnership processes (``partnermatch generate --n 2000 --process affinity|programmes``, every
    held-out query). The exposure factor is what spreads attention; recall@10 / Gini@10 /
    coverage@10 by exposure strength (unbalanced: the ranker alone, no factors, no MMR):

    =================  =====================  =====================  =====================
    world, split       unbalanced             strength 1             strength 3 (default)
    =================  =====================  =====================  =====================
    affinity, time     0.112 / 0.639 / 72.8%  0.103 / 0.392 / 86.7%  0.105 / 0.341 / 89.8%
    affinity, random   0.085 / 0.595 / 74.0%  0.088 / 0.384 / 87.0%  (not measured)
    programmes, time   0.151 / 0.615 / 71.0%  0.147 / 0.492 / 80.7%  0.140 / 0.456 / 82.7%
    =================  =====================  =====================  =====================

    At 3, recall stays at 94% (affinity) and 92% (programmes) of the unbalanced ranker's; the
    programme world's Gini stays above the 0.40 target.
    Strength 0.1 left Gini at 0.53-0.55 on both time splits. The boosts for schools without
    partners and for remote schools, and the per-country decay, each cost recall (held-out
    partnerships were formed by popularity-biased processes) while spreading little, so they are
    off by default, ready for an alliance that weighs equity above accuracy. Set them to e.g.
    0.05-0.15 (boosts) or 0.7-0.9 (decay) and see the trade-off in the sensitivity plot."""

    saturation_threshold: float = Field(
        0.75,
        ge=0,
        le=1,
        description="load (partners + open invitations over capacity) above which a school is "
        "pushed down, falling linearly to 0 at capacity",
    )
    no_partner_boost: float = Field(0.0, ge=0, le=1, description="boost for schools with no partner yet")
    remote_boost: float = Field(
        0.0, ge=0, le=1, description="boost for remote schools (偏遠/特偏/極偏 and rural), scaled by remoteness"
    )
    cluster_boost: float = Field(0.10, ge=0, le=1, description="boost for joining an existing cross-border cluster")
    diversity_decay: float = Field(
        1.0, gt=0, le=1, description="factor per partner the asking school already has in the candidate's country"
    )
    responsiveness_floor: float = Field(0.3, ge=0, le=1, description="lowest factor for a school that never answers")
    exposure_strength: float = Field(
        3.0, ge=0, le=5, description="damping per multiple of the average exposure a school has been shown above it"
    )
    exposure_half_life_hours: float = Field(168.0, gt=0, description="how fast recorded exposure fades")


class MatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERMATCH_MATCH_", env_nested_delimiter="__", extra="ignore")

    home_country: str = Field("TW", description="The alliance's own country")
    scope: Literal["home", "any"] = Field(
        "home", description="home: every pair includes a home-country school; any: foreign pairs too"
    )
    level_matrix: dict[Level, list[Level]] = Field(default_factory=default_level_matrix)
    min_overlap_hours: float = Field(1.0, ge=0, le=8, description="shared school hours needed for virtual exchange")
    school_day_start: int = Field(8, ge=0, le=23, description="local hour school starts")
    school_day_end: int = Field(16, ge=1, le=24, description="local hour school ends")
    reference_date: date | None = Field(None, description="day used to compute time-zone offsets (DST); default today")
    overfetch: float = Field(8.0, ge=1, description="eligible candidates ranked per requested result, nearest first")
    depth: int | None = Field(
        None,
        ge=1,
        description="eligible candidates ranked per request, nearest first; None: k × overfetch (at least the "
        "diversification pool); a large number ranks every eligible candidate",
    )
    fit: FitWeights = Field(default_factory=FitWeights)
    rebalance: RebalanceWeights = Field(default_factory=RebalanceWeights)
    diversity: bool = Field(True, description="re-rank with MMR so one country does not fill the list")
    mmr_lambda: float = Field(
        0.95,
        ge=0,
        le=1,
        description="1 = pure relevance, 0 = pure novelty; 0.95 breaks near-ties by country and "
        "profile, so one country cannot fill a list of equals, at little cost in recall (lower costs more)",
    )
    high_fit: float = Field(0.6, ge=0, le=1, description="fit both ways at least this counts as reciprocal")
    wishes: Literal["hard", "soft"] = Field(
        "hard",
        description="hard: at least half of a list from the wished countries when any is eligible (matching.wishes); "
        "soft: the wished country is one fit component only",
    )

    @field_validator("home_country")
    @classmethod
    def _country(cls, value: str) -> str:
        return normalize_country(value)


class RequestOverrides(BaseModel):
    """What a single request may change, within bounds."""

    diversity: bool | None = None
    mmr_lambda: float | None = Field(None, ge=0, le=1)
    min_overlap_hours: float | None = Field(None, ge=0, le=8)
    depth: int | None = Field(None, ge=1, description="eligible candidates to rank; every one if large enough")
    wishes: Literal["hard", "soft"] | None = None

    def apply(self, settings: MatchSettings) -> MatchSettings:
        if self.min_overlap_hours is not None and self.min_overlap_hours < settings.min_overlap_hours:
            raise ValueError(
                f"overrides.min_overlap_hours: may only tighten the rule, to {settings.min_overlap_hours:g} or more"
            )
        changes = self.model_dump(exclude_none=True, exclude={"depth"})
        return settings.model_copy(update=changes) if changes else settings
