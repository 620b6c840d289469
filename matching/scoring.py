"""The reciprocal score: a match must suit *both* schools.

fit(a→b) says how well b matches what a asked for, as a weighted mean of components in [0, 1].
The pair's score is the harmonic mean of fit(a→b) and fit(b→a): it is high only when both
directions are, and a one-sided match (b is everything a wants, but b asked for something else)
scores close to its weaker side. A harmonic mean rather than a product keeps the score on the
same scale as its parts, so thresholds such as "high fit" read the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass

from data.schema import School
from data.taxonomies import ExchangeMode
from matching.constraints import PairCheck, pair_modes
from matching.settings import FitWeights, MatchSettings

FULL_OVERLAP_HOURS = 4.0
"""Shared school hours at which the time-zone component reaches 1: enough for a lesson and slack."""


@dataclass(frozen=True)
class Fit:
    """fit(a→b) with every component, so explanations can cite exactly what was scored."""

    components: dict[str, float]
    value: float


@dataclass(frozen=True)
class PairScore:
    forward: Fit
    """fit(source→candidate): how well the candidate matches what the source asked for."""
    backward: Fit
    """fit(candidate→source): how well the source matches what the candidate asked for."""
    similarity: float
    reciprocal: float
    """The harmonic mean of the two fits: the pair's score before any graph factor."""


def _preference(wanted: list, offered: set) -> float:
    """Share of what a school asked for that the other offers; 0.5 when it asked for nothing."""
    if not wanted:
        return 0.5
    return len(set(wanted) & offered) / len(wanted)


def fit(
    a: School, b: School, check: PairCheck, usable_modes: set[ExchangeMode], similarity: float, weights: FitWeights
) -> Fit:
    """How well b matches what a asked for. `check` carries the pair's shared facts (languages,
    hours); `usable_modes` are the modes from a's side (visit/hosting differ by direction)."""
    shared = set(check.shared_languages)
    components = {
        "target_country": _preference(a.target_countries, {b.country}),
        "sdg": _preference(a.sdgs, set(b.sdgs)),
        "language": (0.6 + 0.4 * bool(shared & set(a.languages_instruction))) if shared else 0.0,
        "mode": _preference(a.exchange_modes, usable_modes) if a.exchange_modes else 0.0,
        "level": 1.0 if set(a.levels) & set(b.levels) else 0.5,
        "timezone": (
            min(check.overlap.hours / FULL_OVERLAP_HOURS, 1.0) if ExchangeMode.VIRTUAL in a.exchange_modes else 1.0
        ),
        "embedding": min(max(similarity, 0.0), 1.0),
    }
    weight_of = dict(weights)  # the fields as they are: model_dump would copy them on every call
    total = sum(weight_of.values())
    value = sum(weight_of[name] * c for name, c in components.items()) / total if total else 0.0
    return Fit(components, value)


def harmonic(x: float, y: float) -> float:
    return 2 * x * y / (x + y) if x + y > 0 else 0.0


def reciprocal_score(
    source: School, candidate: School, check: PairCheck, similarity: float, settings: MatchSettings
) -> PairScore:
    """Score a pair that passed the constraints, in [0, 1], with both directions reported."""
    forward = fit(source, candidate, check, set(check.usable_modes), similarity, settings.fit)
    backward_modes = pair_modes(candidate, source)
    if check.overlap.hours < settings.min_overlap_hours:
        backward_modes.discard(ExchangeMode.VIRTUAL)
    backward = fit(candidate, source, check, backward_modes, similarity, settings.fit)
    return PairScore(forward, backward, similarity, harmonic(forward.value, backward.value))
