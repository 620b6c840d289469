"""One retrieval path, for one school and for many: constrain → retrieve → score → rebalance.

A request is a batch of one: :func:`retrieve` takes any number of requests (suggestions, matching
rounds, groups and the evaluation all come through it) and, for each, works on one snapshot of the
profile table:

1. the hard rules as masks over every row (:mod:`matching.masks`) give the eligible candidates and
   the count of candidates each rule removed;
2. the ``depth`` eligible candidates nearest the source's vector are fetched: by an exact dot
   product over the eligible rows when they are few, else by FAISS searching with the
   eligibility bitmap as its selector, so every hit is eligible and nothing is refetched;
3. all of them are scored at once (:mod:`matching.arrays`), the pluggable
   :data:`~matching.arrays.PairScorer` gives the base score, the graph factors multiply it
   (:class:`matching.rebalance.FactorArrays`), and they are ordered by that rank score.

Explanations (the pair's check, fit components, and each graph factor's facts) are read from those
arrays, only for the candidates a caller asks them of (the k a suggestion returns, a round's
pairs): nothing is checked or scored a second time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, partial
from typing import TYPE_CHECKING

import numpy as np

from data.schema import School
from matching.arrays import ArrayScores, PairScorer, reciprocal_base, reciprocal_scores
from matching.constraints import PairCheck, PairChecker, Rule, SuggestionFilters
from matching.hours import school_hours_overlap
from matching.masks import RuleMasks, rule_masks
from matching.rebalance import Adjustment, FactorArrays, SourceSignals
from matching.scoring import PairScore, reciprocal_score
from matching.settings import MatchSettings
from matching.table import FOREIGN_SIDE, HOME_SIDE, MODE_BIT, ProfileTable

if TYPE_CHECKING:
    from matching.engine import Matcher

SIDE_NAMES = {HOME_SIDE: "home", FOREIGN_SIDE: "foreign"}
EXACT_BELOW = 1024
"""Rank eligible candidates by their exact cosine (not the approximate HNSW graph) when there are at
most this many: a dot product over their stored vectors costs less than a filtered graph walk."""


@dataclass(frozen=True)
class Request:
    """One source's search: how many, how deep, under which settings and filters."""

    source: School
    k: int
    settings: MatchSettings
    filters: SuggestionFilters = field(default_factory=SuggestionFilters)
    depth: int | None = None
    """Candidates ranked, nearest eligible first; None: the settings' depth, or ``k × overfetch``
    and at least the diversification pool. Any number up to every eligible candidate."""
    rebalanced: bool = True
    limit: int | None = None
    """Candidates to return (the best of those ranked); None: every one ranked."""

    def ranked_depth(self) -> int:
        if self.depth is not None:
            return self.depth
        if self.settings.depth is not None:
            return self.settings.depth
        pool = max(3 * self.k, 30) if self.settings.diversity else self.k
        return max(int(self.k * self.settings.overfetch), pool)


class Candidate:
    """An eligible candidate with its scores; its check, fit components and graph factors (what
    explanations need) are read from the request's arrays when first asked for."""

    def __init__(
        self,
        school: School,
        similarity: float,
        scores: tuple[float, float, float],
        rank_score: float,
        details: Callable[[], tuple[PairCheck, PairScore, list[Adjustment]]],
    ) -> None:
        self.school, self.similarity, self.rank_score = school, similarity, rank_score
        self.fit_forward, self.fit_backward, self.reciprocal = scores
        self._details = details

    @cached_property
    def _explained(self) -> tuple[PairCheck, PairScore, list[Adjustment]]:
        return self._details()

    @property
    def check(self) -> PairCheck:
        return self._explained[0]

    @property
    def score(self) -> PairScore:
        return self._explained[1]

    @property
    def adjustments(self) -> list[Adjustment]:
        return self._explained[2]

    def __repr__(self) -> str:
        return f"Candidate({self.school.id!r}, reciprocal={self.reciprocal:.4f}, rank_score={self.rank_score:.4f})"


@dataclass
class Retrieved:
    """One request's answer: eligible candidates best first, eliminations per rule, rows examined."""

    ranked: list[Candidate]
    eliminated: Counter[Rule]
    examined: int
    eligible: int
    table: ProfileTable
    """The snapshot the request was answered on."""
    masks: RuleMasks
    """Every rule's verdict on every row of it, for callers that say why a group of schools is missing."""
    outside: int = 0
    """Eligible candidates left out because they are not among the ``within`` schools."""


def retrieve(
    matcher: Matcher,
    requests: Sequence[Request],
    *,
    scorer: PairScorer | None = None,
    within: Collection[str] | None = None,
) -> list[Retrieved]:
    """Each request's candidates (see the module docstring), on one table snapshot for all.
    ``within`` restricts every request to those schools (a matching round's cohort)."""
    table = matcher.table
    inside = None
    if within is not None:
        inside = np.zeros(len(table), dtype=bool)
        inside[[table.row_of[i] for i in within if i in table.row_of]] = True
    scorer = scorer or matcher.scorer or reciprocal_base
    return [_one(matcher, table, request, scorer, inside) for request in requests]


def _one(
    matcher: Matcher, table: ProfileTable, request: Request, scorer: PairScorer, inside: np.ndarray | None
) -> Retrieved:
    source, settings = request.source, request.settings
    day = settings.reference_date or date.today()
    row = table.encode(source)
    partner_rows = [table.row_of[p] for p in matcher.partners(source.id) if p in table.row_of]
    masks = rule_masks(table, row, settings, day, request.filters, partner_rows)
    sides = matcher.candidate_sides(source, settings)
    on_sides = (
        table.indexed() if len(sides) == 2 else table.indexed_on(HOME_SIDE if sides == ["home"] else FOREIGN_SIDE)
    )
    examined = on_sides & ~masks.violations[Rule.SAME_SCHOOL]
    passing = examined & masks.passing()
    outside = 0
    if inside is not None:
        outside = int(np.count_nonzero(passing & ~inside))
        passing &= inside
    eligible = np.flatnonzero(passing)
    rows, similarity = _nearest(matcher, table, source, eligible, request.ranked_depth())
    scores = reciprocal_scores(table, row, rows, similarity, masks, settings)
    if matcher.ranker is not None and scorer is reciprocal_base and len(rows):
        checker = PairChecker(source, matcher.context(request.filters, settings, day))
        rank = _learned(matcher, table, checker, rows, similarity)
    else:
        rank = np.asarray(scorer(table, row, rows, similarity, scores), dtype=float)
    factors = None
    if request.rebalanced and len(rows):
        factors = FactorArrays(
            table,
            rows,
            settings.rebalance,
            SourceSignals.of(matcher.partnerships, source, settings.home_country, settings.rebalance),
            names=matcher.name_of,
            exposure=matcher.exposure_lookup() if len(matcher.exposure) else None,  # nothing shown yet: all 1
        )
        rank = rank * factors.product()
    order = np.argsort(-rank, kind="stable")
    best_first = rank[order]
    if (best_first[1:] == best_first[:-1]).any():  # exact ties (twin profiles) go by id, as everywhere
        ranks, ids = rank.tolist(), [table.ids[r] for r in rows.tolist()]
        order = np.array(sorted(range(len(ranks)), key=lambda n: (-ranks[n], ids[n])), dtype=np.int64)
    order = order[: request.limit]
    facts = _Facts(source, table, rows, masks, scores, factors, settings, day)
    ranked = [
        Candidate(
            table.schools[rows[n]],
            float(similarity[n]),
            (float(scores.forward[n]), float(scores.backward[n]), float(scores.reciprocal[n])),
            float(rank[n]),
            partial(facts.explain, n),
        )
        for n in order.tolist()
    ]
    return Retrieved(
        ranked, masks.eliminated(examined), int(np.count_nonzero(examined)), len(eligible), table, masks, outside
    )


def _learned(
    matcher: Matcher, table: ProfileTable, checker: PairChecker, rows: np.ndarray, similarity: np.ndarray
) -> np.ndarray:
    """The trained ranker's score of each candidate row. Its features read the reference fit
    components, so each candidate is checked and scored one by one here: correct, not yet fast."""
    candidates = [matcher.schools[table.ids[r]] for r in rows]
    settings = checker.ctx.settings
    scores = [
        reciprocal_score(checker.source, c, checker(c), float(sim), settings)
        for c, sim in zip(candidates, similarity, strict=True)
    ]
    return np.asarray(matcher.ranker.score(checker.source, candidates, scores), dtype=float)


def _nearest(
    matcher: Matcher, table: ProfileTable, source: School, eligible: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` eligible rows most similar to the source, with their cosines (unordered)."""
    if len(eligible) == 0:
        return eligible, np.zeros(0, dtype=np.float32)
    query = matcher.vector(source)
    few = len(eligible) <= max(depth, EXACT_BELOW)
    rows_found, sims_found = [], []
    for side in (HOME_SIDE, FOREIGN_SIDE):
        mine = eligible[table["side"][eligible] == side]
        if len(mine) == 0:
            continue
        index = matcher.indexes[SIDE_NAMES[side]]
        labels = table["label"][mine]
        if few and index.kind != "exact":  # an exact index scans only the allowed rows itself, without copies
            rows_found.append(mine)
            sims_found.append(index.vectors_at(labels) @ query)
        else:
            sims, hit_labels = index.search_labels(query, depth, labels)
            rows_found.append(table.rows_by_label[side][hit_labels])
            sims_found.append(sims)
    rows, sims = np.concatenate(rows_found), np.concatenate(sims_found)
    if len(rows) > depth:
        keep = np.argpartition(-sims, depth - 1)[:depth]
        rows, sims = rows[keep], sims[keep]
    return rows, sims


@dataclass(frozen=True)
class _Facts:
    """One request's arrays, from which any candidate's explanation is read without recomputing it."""

    source: School
    table: ProfileTable
    rows: np.ndarray
    masks: RuleMasks
    scores: ArrayScores
    factors: FactorArrays | None
    settings: MatchSettings
    day: date

    def explain(self, n: int) -> tuple[PairCheck, PairScore, list[Adjustment]]:
        """Candidate ``n``'s check, scores and graph factors, equal to what the reference functions
        (:func:`~matching.constraints.check_pair`, :func:`~matching.scoring.reciprocal_score`,
        :class:`~matching.rebalance.Rebalancer`) give for the pair: a property test holds them so."""
        row, settings = int(self.rows[n]), self.settings
        candidate = self.table.schools[row]
        usable = int(self.masks.usable[row])
        check = PairCheck(
            violations=(),
            shared_languages=tuple(sorted(set(self.source.languages_exchange) & set(candidate.languages_exchange))),
            usable_modes=tuple(sorted(mode for mode, bit in MODE_BIT.items() if usable & bit)),
            overlap=school_hours_overlap(
                self.source.timezone, candidate.timezone, self.day, settings.school_day_start, settings.school_day_end
            ),
        )
        return check, self.scores.pair_score(n), self.factors.adjustments(n) if self.factors else []
