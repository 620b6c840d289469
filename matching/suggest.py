"""A suggestion list: the retrieved candidates diversified, the k chosen explained.

Only the k returned are explained (their checks, fit components and graph factors are read from
the arrays retrieval computed), so a request pays for reasons it shows and no others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from data.schema import School
from embeddings import profile_hints
from matching import wishes
from matching.constraints import Rule, SuggestionFilters
from matching.diversify import mmr, pairwise_similarity
from matching.explain import explain
from matching.masks import WORD, RuleMasks, pack, without_row
from matching.results import Suggestion, SuggestionResult, eliminations
from matching.retrieve import (
    Candidate,
    Request,
    Retrieved,
    explain_together,
    retrieve,
    shown_pool,
    stored_vectors,
)
from matching.settings import MatchSettings
from matching.sources import found_via_reason
from matching.table import ProfileTable

if TYPE_CHECKING:
    from matching.engine import Matcher


def suggest(
    matcher: Matcher,
    source: School,
    k: int,
    settings: MatchSettings,
    filters: SuggestionFilters | None = None,
    depth: int | None = None,
) -> SuggestionResult:
    """The k best partners for ``source`` with reasons; an empty list with the rules that removed
    every candidate when there is none."""
    # Candidate objects only for those a list can show; hard wishes reach further down the ranking
    # for candidates of the wished countries.
    wished = frozenset(source.target_countries) if settings.wishes == "hard" else frozenset()
    request = Request(
        source, k, settings, filters or SuggestionFilters(), depth, limit=shown_pool(k, settings), also_from=wished
    )
    [found] = retrieve(matcher, [request])
    chosen = diversify(matcher, found, k, settings)
    if settings.wishes == "hard":
        chosen = wishes.honour_wishes(source, chosen, found.ranked, k)
    explain_together(chosen)
    suggestions = [suggestion(source, c, settings) for c in chosen]
    for listed, c in zip(suggestions, chosen, strict=True):
        listed.reasons.extend(filter(None, [wishes.outside_wish_reason(source, c.school)]))
    if matcher.ranker is not None and chosen:  # what lifted each candidate in the model comes first
        learned = matcher.ranker.explain(np.array([c.features for c in chosen]))
        for listed, reasons, c in zip(suggestions, learned, chosen, strict=True):
            listed.reasons[:0] = reasons
            listed.reasons.append(found_via_reason(c.found_via))
    return SuggestionResult(
        school_id=source.id if source.id in matcher.schools else None,
        suggestions=suggestions,
        candidates_examined=found.examined,
        eliminated=eliminations(found.eliminated),
        hints=profile_hints(source) + capacity_hints(matcher, source) + wish_hints(source, found),
    )


def wish_hints(source: School, found: Retrieved) -> list[str]:
    """Why no candidate from the wished countries, when none is eligible: a wished one among the
    candidates returned settles it at once, else the rule masks say (``found.ranked`` may be only
    the best few, so the masks, not that list, decide)."""
    if not source.target_countries or any(c.school.country in source.target_countries for c in found.ranked):
        return []
    hint = unmet_wish(source, found.table, found.masks)
    return [hint] if hint else []


def unmet_wish(source: School, table: ProfileTable, masks: RuleMasks) -> str | None:
    """:func:`matching.wishes.no_wished_candidate_hint` (request filters aside) from the request's
    rule masks: how many of the wished countries' schools each rule removed; None when one is eligible."""
    if not source.target_countries:
        return None
    country = table["country"]
    among = np.zeros(-(-len(table) // 64), dtype=WORD)
    for code in {table.countries.code(c) for c in source.target_countries}:  # each country's words once per table
        among |= table.derived(("country_words", code), lambda code=code: pack(country == code), ("country",))
    among = without_row(among, table.row_of.get(source.id))
    removed = masks.broken_among_words(among, ignore=(Rule.SAME_SCHOOL, Rule.FILTERED))
    return None if removed is None else wishes.unmet_wish_hint(source, int(np.bitwise_count(among).sum()), removed)


def capacity_hints(matcher: Matcher, source: School) -> list[str]:
    """A full school still sees suggestions (to plan ahead), but should know it cannot invite yet."""
    if source.id not in matcher.partnerships or matcher.free_places(source) > 0:
        return []
    partners, pending = len(matcher.partners(source.id)), matcher.pending.get(source.id, 0)
    return [
        f"school is at capacity ({partners} partner(s) and {pending} open invitation(s) for "
        f"{source.capacity} place(s)): invitations can be sent once a place frees up or capacity is raised"
    ]


def diversify(matcher: Matcher, found: Retrieved, k: int, settings: MatchSettings) -> list[Candidate]:
    """MMR over the best :func:`~matching.retrieve.shown_pool`: near-equals from one country or
    profile do not fill the list."""
    ranked = found.ranked
    if not settings.diversity or len(ranked) <= 1:
        return ranked[:k]
    pool = ranked[: shown_pool(k, settings)]
    vectors = stored_vectors(matcher, found.table, np.array([c.row for c in pool], dtype=np.int64))
    similarity = pairwise_similarity([c.school.country for c in pool], vectors)
    order = mmr([c.rank_score for c in pool], similarity, k, settings.mmr_lambda)
    return [pool[i] for i in order]


def suggestion(source: School, c: Candidate, settings: MatchSettings) -> Suggestion:
    """One candidate as the API shows it, with its reasons."""
    return Suggestion(
        school_id=c.school.id,
        score=round(c.rank_score, 6),
        reciprocal=round(c.reciprocal, 6),
        fit_forward=round(c.fit_forward, 6),
        fit_backward=round(c.fit_backward, 6),
        components={
            "forward": {k: round(v, 4) for k, v in c.score.forward.components.items()},
            "backward": {k: round(v, 4) for k, v in c.score.backward.components.items()},
        },
        adjustments={a.code: round(a.factor, 4) for a in c.adjustments},
        reasons=explain(source, c.school, c.check, c.score, c.adjustments, settings),
    )
