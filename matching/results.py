"""What a suggestion request returns: the suggestions with their reasons, or why there are none."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from matching.constraints import RULE_TEXT, Rule
from matching.reasons import Reason


class Suggestion(BaseModel):
    school_id: str
    score: float = Field(
        ge=0, description="rank score: the reciprocal score times the graph factors (boosts may lift it above 1)"
    )
    reciprocal: float = Field(ge=0, le=1, description="harmonic mean of the fit in both directions")
    fit_forward: float = Field(ge=0, le=1, description="how well the partner matches what you asked for")
    fit_backward: float = Field(ge=0, le=1, description="how well you match what the partner asked for")
    components: dict[str, dict[str, float]] = Field(description="fit components, 'forward' and 'backward'")
    adjustments: dict[str, float] = Field(description="graph factors applied to the reciprocal score")
    reasons: list[Reason]


class Elimination(BaseModel):
    rule: Rule
    candidates: int
    text_en: str
    text_zh: str


def eliminations(counts: Counter[Rule]) -> list[Elimination]:
    """The per-rule counts as response records, the rule that removed most first."""
    return [
        Elimination(rule=rule, candidates=n, text_en=RULE_TEXT[rule][0], text_zh=RULE_TEXT[rule][1])
        for rule, n in counts.most_common()
    ]


class SuggestionResult(BaseModel):
    school_id: str | None
    suggestions: list[Suggestion]
    candidates_examined: int = Field(description="candidates on the partner side(s) checked against the hard rules")
    eliminated: list[Elimination] = Field(description="how many candidates each hard rule removed")
    hints: list[str] = Field(default_factory=list, description="how the school could improve its matches")
