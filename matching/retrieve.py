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
from matching import sources
from matching.arrays import (
    ArrayScores,
    PairScorer,
    PathSums,
    fit_components,
    one_blas_thread,
    reciprocal_base,
    reciprocal_scores,
    weighted_scores,
)
from matching.constraints import PairCheck, Rule, SuggestionFilters
from matching.hours import school_hours_overlap
from matching.masks import RuleMasks, rule_masks
from matching.rebalance import Adjustment, FactorArrays, SourceSignals
from matching.scoring import PairScore
from matching.settings import MatchSettings
from matching.table import FOREIGN_SIDE, HOME_SIDE, MODE_BIT, ProfileTable, Row
from matching.wishes import wished_floor

if TYPE_CHECKING:
    from matching.engine import Matcher

SIDE_NAMES = {HOME_SIDE: "home", FOREIGN_SIDE: "foreign"}
EXACT_BELOW = 1024
"""Rank eligible candidates by their exact cosine (not the approximate HNSW graph) when there are at
most this many: a dot product over their stored vectors costs less than a filtered graph walk."""
POOL_NEAREST = 100
"""With a trained ranker, the candidates nearest by profile vector that join its first stage's
shortlist (the first stage reads no cosine, so these keep what the profiles alone point to)."""


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
    also_from: frozenset[str] = frozenset()
    """Countries whose best ranked candidates below the ``limit`` best are returned too, in rank
    order: as many as hard wishes can take from there (:func:`~matching.wishes.wished_floor` of k),
    so a school wishing for a large country does not make a Candidate of each of its schools."""

    def ranked_depth(self) -> int:
        if self.depth is not None:
            return self.depth
        if self.settings.depth is not None:
            return self.settings.depth
        return max(int(self.k * self.settings.overfetch), shown_pool(self.k, self.settings))


def shown_pool(k: int, settings: MatchSettings) -> int:
    """The best candidates a list of ``k`` is chosen from: ``max(3k, 30)`` for diversification to
    pick among, else the k themselves."""
    return max(3 * k, 30) if settings.diversity else k


class Candidate:
    """An eligible candidate with its scores; its check, fit components and graph factors (what
    explanations need) are read from the request's arrays when first asked for."""

    def __init__(
        self,
        school: School,
        row: int,
        similarity: float,
        scores: tuple[float, float, float],
        rank_score: float,
        details: Callable[[], tuple[PairCheck, PairScore, list[Adjustment]]],
    ) -> None:
        self.school, self.row, self.similarity, self.rank_score = school, row, similarity, rank_score
        """``row``: the candidate's row in the table snapshot it was ranked on (Retrieved.table)."""
        self.fit_forward, self.fit_backward, self.reciprocal = scores
        self._details = details
        self.features: np.ndarray | None = None
        """The trained ranker's feature row of the pair, when a ranker ranked it (its reasons read it)."""
        self.found_via: list[str] = ["vector"]
        """The candidate sources that found it (matching.sources); by profile vector without a ranker."""

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


@dataclass
class Pool:
    """One request's eligible candidates before ranking: the rows ranked, their cosines and
    reciprocal scores, with the masks and counts the answer reports."""

    row: Row
    masks: RuleMasks
    examined: np.ndarray
    eligible: np.ndarray
    outside: int
    rows: np.ndarray
    similarity: np.ndarray
    scores: ArrayScores
    sources: dict[str, np.ndarray] = field(default_factory=dict)
    """Each history source's score of each row (matching.sources), when a ranker ranks them."""
    paths: PathSums | None = None
    """The rows' path sums, worked out once for the first stage, the sources and the features."""


def pool(matcher: Matcher, table: ProfileTable, request: Request, inside: np.ndarray | None = None) -> Pool:
    """The request's eligible rows and the ones to rank: with a trained ranker the shortlist its
    first stage picks from every eligible one (:func:`_shortlisted`), else the ``depth`` nearest
    by profile vector."""
    source, settings = request.source, request.settings
    day = settings.reference_date or date.today()
    row = table.encode(source)
    partner_rows = [table.row_of[p] for p in matcher.partners(source.id) if p in table.row_of]
    masks = rule_masks(table, row, settings, day, request.filters, partner_rows)
    examined = table.indexed_among(matcher.candidate_sides(source, settings)) & ~masks.violations[Rule.SAME_SCHOOL]
    passing = examined & masks.passing()
    outside = 0
    if inside is not None:
        outside = int(np.count_nonzero(passing & ~inside))
        passing &= inside
    eligible = np.flatnonzero(passing)
    query = matcher.vector(source) if len(eligible) else np.zeros(0, dtype=np.float32)
    if matcher.ranker is not None and request.depth is None and settings.depth is None:
        rows, similarity, scores, paths = _shortlisted(matcher, table, request, row, masks, query, eligible)
        found_by = matcher.ranker.source_scores(table, row, rows, paths)
        return Pool(row, masks, examined, eligible, outside, rows, similarity, scores, found_by, paths)
    rows, similarity = _nearest(matcher, table, query, eligible, request.ranked_depth())
    scores = reciprocal_scores(table, row, rows, similarity, masks, settings)
    return Pool(row, masks, examined, eligible, outside, rows, similarity, scores)


def _shortlisted(
    matcher: Matcher,
    table: ProfileTable,
    request: Request,
    row: Row,
    masks: RuleMasks,
    query: np.ndarray,
    eligible: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, ArrayScores, PathSums]:
    """What a trained ranker ranks, in row order: the ranker's ``shortlist`` best of every eligible
    row by its first stage (fit components and history, no cosine), the :data:`POOL_NEAREST`
    nearest by vector, and the first stage's best in the wished countries (as many as a list can
    show, so a hard wish has its candidates); every eligible row when they are no more. Their
    cosines, scores and path sums come with them. Neither the trees nor the vector search grow with
    the number of eligible schools; the first stage is a few array operations per eligible row."""
    ranker, settings = matcher.ranker, request.settings
    assert ranker is not None
    components = fit_components(table, row, eligible, masks, settings)
    paths = ranker.path_sums(table, row, eligible)
    at = np.arange(len(eligible))
    if len(eligible) > ranker.shortlist + POOL_NEAREST:
        first = ranker.first_stage(table, row, eligible, components, paths)
        keep = np.zeros(len(eligible), dtype=bool)
        keep[sources.top(first, ranker.shortlist)] = True
        wished = np.flatnonzero(sources.wished_at(table, row.school, eligible))
        keep[wished[sources.top(first[wished], shown_pool(request.k, settings))]] = True
        near, _ = _nearest(matcher, table, query, eligible, POOL_NEAREST)
        keep[np.searchsorted(eligible, near)] = True
        at = np.flatnonzero(keep)
    rows = eligible[at]
    similarity = _cosines(matcher, table, query, rows)
    scores = weighted_scores(components[:, :, at], similarity, settings)
    return rows, similarity, scores, (paths[0][at], paths[1][at], paths[2][at])


def stored_vectors(matcher: Matcher, table: ProfileTable, rows: np.ndarray) -> np.ndarray:
    """The stored vectors of these indexed rows (either side), one row each, one index call per side."""
    dim = next(iter(matcher.indexes.values())).dim
    out = np.zeros((len(rows), dim), dtype=np.float32)
    for side in (HOME_SIDE, FOREIGN_SIDE):
        mine = np.flatnonzero(table["side"][rows] == side)
        if len(mine):
            out[mine] = matcher.indexes[SIDE_NAMES[side]].vectors_at(table["label"][rows[mine]])
    return out


def _cosines(matcher: Matcher, table: ProfileTable, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The query's cosine with each of these indexed rows (either side), from the stored vectors."""
    if len(rows) == 0:  # nothing eligible: the query vector was not even made
        return np.zeros(0, dtype=np.float32)
    vectors = stored_vectors(matcher, table, rows)
    with one_blas_thread():
        return vectors @ query


def _one(
    matcher: Matcher, table: ProfileTable, request: Request, scorer: PairScorer, inside: np.ndarray | None
) -> Retrieved:
    source, settings = request.source, request.settings
    found = pool(matcher, table, request, inside)
    rows, similarity, scores = found.rows, found.similarity, found.scores
    day = settings.reference_date or date.today()
    features = None
    if matcher.ranker is not None and scorer is reciprocal_base and len(rows):
        features = matcher.ranker.feature_rows(table, found.row, rows, similarity, scores, found.paths)
        rank = matcher.ranker.score(features)
    else:
        rank = np.asarray(scorer(table, found.row, rows, similarity, scores), dtype=float)
    factors = None
    if request.rebalanced and len(rows):
        factors = FactorArrays(
            table,
            rows,
            settings.rebalance,
            SourceSignals.of(matcher.partnerships, source, settings.home_country, settings.rebalance, table),
            names=matcher.name_of,
            exposure=matcher.exposure_rows() if len(matcher.exposure) else None,  # nothing shown yet: all 1
        )
        rank = rank * factors.product()
    limit = len(rows) if request.limit is None else min(request.limit, len(rows))
    if request.also_from and limit < len(rows):
        order = _best(rank, table, rows, len(rows))
        wanted = np.isin(table["country"][rows[order]], [table.countries.code(c) for c in request.also_from])
        below = np.flatnonzero(wanted[limit:])[wished_floor(request.k, len(rows)) :] + limit
        wanted[below] = False  # hard wishes take at most the floor from below the limit
        wanted[:limit] = True
        order = [n for n, keep in zip(order, wanted.tolist(), strict=True) if keep]
    else:
        order = _best(rank, table, rows, limit)
    facts = _Facts(source, table, rows, found.masks, scores, factors, settings, day)
    ranked = [
        Candidate(
            table.schools[rows[n]],
            int(rows[n]),
            float(similarity[n]),
            (float(scores.forward[n]), float(scores.backward[n]), float(scores.reciprocal[n])),
            float(rank[n]),
            partial(facts.explain, n),
        )
        for n in order
    ]
    if features is not None:
        via = sources.found_via(found.sources, similarity, request.ranked_depth(), at=order)
        for n, candidate, found_by in zip(order, ranked, via, strict=True):
            candidate.features, candidate.found_via = features[n], found_by
    return Retrieved(
        ranked,
        found.masks.eliminated(found.examined),
        int(np.count_nonzero(found.examined)),
        len(found.eligible),
        table,
        found.masks,
        found.outside,
    )


def _best(rank: np.ndarray, table: ProfileTable, rows: np.ndarray, limit: int) -> list[int]:
    """Positions of the ``limit`` best by rank score, ties by school id: a partial sort first, as
    every eligible candidate may be ranked and only a few are read."""
    if 0 < limit < len(rank):
        cut = np.partition(-rank, limit - 1)[limit - 1]
        near = np.flatnonzero(-rank <= cut)
    else:
        near = np.arange(len(rank))
    return near[np.lexsort((table.id_order()[rows[near]], -rank[near]))][:limit].tolist()


def _nearest(
    matcher: Matcher, table: ProfileTable, query: np.ndarray, eligible: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` eligible rows most similar to the query vector, with their cosines (unordered)."""
    if len(eligible) == 0:
        return eligible, np.zeros(0, dtype=np.float32)
    few = len(eligible) <= max(depth, EXACT_BELOW)
    rows_found, sims_found = [], []
    for side in (HOME_SIDE, FOREIGN_SIDE):
        mine = eligible[table["side"][eligible] == side]
        if len(mine) == 0:
            continue
        index = matcher.indexes[SIDE_NAMES[side]]
        if few and index.kind != "exact":  # an exact index scans only the allowed rows itself, without copies
            rows_found.append(mine)
            sims_found.append(_cosines(matcher, table, query, mine))
        else:
            sims, hit_labels = index.search_labels(query, depth, table["label"][mine])
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
        usable = int(self.masks.usable_at(row))
        check = PairCheck(
            violations=(),
            shared_languages=tuple(sorted(set(self.source.languages_exchange) & set(candidate.languages_exchange))),
            usable_modes=tuple(sorted(mode for mode, bit in MODE_BIT.items() if usable & bit)),
            overlap=school_hours_overlap(
                self.source.timezone, candidate.timezone, self.day, settings.school_day_start, settings.school_day_end
            ),
        )
        return check, self.scores.pair_score(n), self.factors.adjustments(n) if self.factors else []
