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
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from data.schema import School
from data.taxonomies import ExchangeMode
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
from matching.masks import RuleMasks, pack, rows_of, rule_masks, unpack, without_row
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
        facts: _Facts,
        n: int,
    ) -> None:
        self.school, self.row, self.similarity, self.rank_score = school, row, similarity, rank_score
        """``row``: the candidate's row in the table snapshot it was ranked on (Retrieved.table)."""
        self.fit_forward, self.fit_backward, self.reciprocal = scores
        self._facts, self._n = facts, n
        """The request's arrays and the candidate's position in them, its explanation read from them."""
        self.features: np.ndarray | None = None
        """The trained ranker's feature row of the pair, when a ranker ranked it (its reasons read it)."""
        self.found_via: list[str] = ["vector"]
        """The candidate sources that found it (matching.sources); by profile vector without a ranker."""

    @cached_property
    def _explained(self) -> tuple[PairCheck, PairScore, list[Adjustment]]:
        [explained] = self._facts.explain(np.array([self._n]))
        return explained

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


def explain_together(candidates: Iterable[Candidate]) -> None:
    """Work out the explanations of these candidates (checks, fit components, graph factors) in one
    go per request they come from, each array read once for them all, instead of one by one when
    first read: a list explains the k it returns at once. The same values either way."""
    waiting: dict[int, tuple[_Facts, list[Candidate]]] = {}
    for candidate in candidates:
        if "_explained" not in candidate.__dict__:  # not worked out yet (cached_property's slot)
            waiting.setdefault(id(candidate._facts), (candidate._facts, []))[1].append(candidate)
    for facts, group in waiting.values():
        for candidate, explained in zip(group, facts.explain(np.array([c._n for c in group])), strict=True):
            candidate.__dict__["_explained"] = explained


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
        cohort = np.zeros(len(table), dtype=bool)
        cohort[[table.row_of[i] for i in within if i in table.row_of]] = True
        inside = pack(cohort)
    scorer = scorer or matcher.scorer or reciprocal_base
    return [_one(matcher, table, request, scorer, inside) for request in requests]


class Eligible:
    """A request's eligible rows as words (:func:`~matching.masks.pack`), counted; the rows
    themselves, or the labels they hold in one side's index, made when first asked for: a search
    of the index reads the labels, so the rows of a large eligible set are never listed."""

    def __init__(self, table: ProfileTable, words: np.ndarray) -> None:
        self.table, self.words = table, words
        self.count = int(np.bitwise_count(words).sum())

    def __len__(self) -> int:
        return self.count

    @cached_property
    def rows(self) -> np.ndarray:
        """The eligible rows, ascending."""
        return rows_of(self.words, len(self.table))

    @cached_property
    def _mask(self) -> np.ndarray:
        """Per row, is it eligible; one more slot (False) for the labels no row holds."""
        n = len(self.table)
        mask = np.zeros(n + 1, dtype=bool)
        mask[:n] = unpack(self.words, n)
        return mask

    def on_side(self, side: int) -> int:
        """How many eligible rows are on one side (home or foreign)."""
        table = self.table
        words = table.derived(("side_words", side), lambda: pack(table["side"] == side), ("side",))
        return int(np.bitwise_count(self.words & words).sum())

    def on_labels(self, side: int) -> tuple[np.ndarray, int]:
        """Per label of the side's index, does an eligible row hold it (a boolean mask over its
        labels), and how many do: what ``index.search_allowed`` takes."""
        table = self.table
        by_label = table.rows_by_label[side]
        held = table.derived(("label_rows", side), lambda: np.where(by_label >= 0, by_label, len(table)), ("label",))
        mask = self._mask[held]
        return mask, int(np.count_nonzero(mask))


@dataclass
class Pool:
    """One request's eligible candidates before ranking: the rows ranked, their cosines and
    reciprocal scores, with the masks and counts the answer reports."""

    row: Row
    masks: RuleMasks
    examined: np.ndarray
    """The rows examined (the indexed rows on the partner sides, less the source), as words."""
    eligible: Eligible
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
    by profile vector. ``inside``: words of the rows a request may return (a round's cohort), None
    for every row. The masks are combined as words (:func:`~matching.masks.pack`), so no step reads
    every row of the table as booleans."""
    source, settings = request.source, request.settings
    day = settings.reference_date or date.today()
    row = table.encode(source)
    partner_rows = [table.row_of[p] for p in matcher.partners(source.id) if p in table.row_of]
    masks = rule_masks(table, row, settings, day, request.filters, partner_rows)
    examined = _examined(table, matcher.candidate_sides(source, settings), table.row_of.get(source.id))
    passing = examined & masks.passing_words()
    outside = 0
    if inside is not None:
        outside = int(np.bitwise_count(passing & ~inside).sum())
        passing &= inside
    eligible = Eligible(table, passing)
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
    eligible: Eligible,
) -> tuple[np.ndarray, np.ndarray, ArrayScores, PathSums]:
    """What a trained ranker ranks, in row order: the ranker's ``shortlist`` best of every eligible
    row by its first stage (fit components and history, no cosine), the :data:`POOL_NEAREST`
    nearest by vector, and the first stage's best in the wished countries (as many as a list can
    show, so a hard wish has its candidates); every eligible row when they are no more. Their
    cosines, scores and path sums come with them. Neither the trees nor the vector search grow with
    the number of eligible schools; the first stage is a few array operations per eligible row."""
    ranker, settings = matcher.ranker, request.settings
    assert ranker is not None
    every = eligible.rows
    components = fit_components(table, row, every, masks, settings)
    paths = ranker.path_sums(table, row, every)
    at = np.arange(len(every))
    if len(every) > ranker.shortlist + POOL_NEAREST:
        first = ranker.first_stage(table, row, every, components, paths)
        keep = np.zeros(len(every), dtype=bool)
        keep[sources.top(first, ranker.shortlist)] = True
        wished = np.flatnonzero(sources.wished_at(table, row.school, every))
        keep[wished[sources.top(first[wished], shown_pool(request.k, settings))]] = True
        near, _ = _nearest(matcher, table, query, eligible, POOL_NEAREST)
        keep[np.searchsorted(every, near)] = True
        at = np.flatnonzero(keep)
    rows = every[at]
    similarity = _cosines(matcher, table, query, rows)
    scores = weighted_scores(components[:, :, at], similarity, settings)
    return rows, similarity, scores, (paths[0][at], paths[1][at], paths[2][at])


def _examined(table: ProfileTable, sides: Collection[str], own: int | None) -> np.ndarray:
    """Words of the rows a source examines: the indexed rows on its partner sides (words worked out
    once per table and sides), less its own row (``own``, None for a profile the table lacks)."""
    key = ("indexed_words", *sorted(sides))
    words = table.derived(key, lambda: pack(table.indexed_among(sides)), ("label", "side"))
    return without_row(words, own)


def stored_vectors(matcher: Matcher, table: ProfileTable, rows: np.ndarray) -> np.ndarray:
    """The stored vectors of these indexed rows (either side), one row each, one index call per side."""
    dim = next(iter(matcher.indexes.values())).dim
    sides = table["side"][rows]
    out = np.zeros((len(rows), dim), dtype=np.float32)
    for side in (HOME_SIDE, FOREIGN_SIDE):
        mine = np.flatnonzero(sides == side)
        if len(mine) == len(rows) > 0:  # all on one side: FAISS's copy is the answer, not copied again
            return matcher.indexes[SIDE_NAMES[side]].vectors_at(table["label"][rows])
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
        wished = np.zeros(len(table.countries.codes) + 1, dtype=bool)  # per country code; -1 the last slot
        wished[[table.countries.code(c) for c in request.also_from]] = True
        wanted = wished[table["country"][rows[order]]]  # np.isin's verdict, without its sort
        below = np.flatnonzero(wanted[limit:])[wished_floor(request.k, len(rows)) :] + limit
        wanted[below] = False  # hard wishes take at most the floor from below the limit
        wanted[:limit] = True
        order = [n for n, keep in zip(order, wanted.tolist(), strict=True) if keep]
    else:
        order = _best(rank, table, rows, limit)
    facts = _Facts(source, table, rows, found.masks, scores, factors, settings, day)
    at = np.asarray(order, dtype=np.int64)  # each column read once for the candidates made, as Python numbers
    schools = table.schools
    ranked = [
        Candidate(schools[r], r, sim, (forward, backward, reciprocal), rank_score, facts, n)
        for n, r, sim, forward, backward, reciprocal, rank_score in zip(
            order,
            rows[at].tolist(),
            similarity[at].tolist(),
            scores.forward[at].tolist(),
            scores.backward[at].tolist(),
            scores.reciprocal[at].tolist(),
            rank[at].tolist(),
            strict=True,
        )
    ]
    if features is not None:
        via = sources.found_via(found.sources, similarity, request.ranked_depth(), at=order)
        for n, candidate, found_by in zip(order, ranked, via, strict=True):
            candidate.features, candidate.found_via = features[n], found_by
    return Retrieved(
        ranked,
        found.masks.eliminated_among(found.examined),
        int(np.bitwise_count(found.examined).sum()),
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
    matcher: Matcher, table: ProfileTable, query: np.ndarray, eligible: Eligible, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` eligible rows most similar to the query vector, with their cosines (unordered)."""
    if len(eligible) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    few = len(eligible) <= max(depth, EXACT_BELOW)
    rows_found, sims_found = [], []
    for side in (HOME_SIDE, FOREIGN_SIDE):
        if not eligible.on_side(side):
            continue
        index = matcher.indexes[SIDE_NAMES[side]]
        if few and index.kind != "exact":  # an exact index scans only the allowed rows itself, without copies
            mine = eligible.rows[table["side"][eligible.rows] == side]
            rows_found.append(mine)
            sims_found.append(_cosines(matcher, table, query, mine))
        else:
            allowed, count = eligible.on_labels(side)
            sims, hit_labels = index.search_allowed(query, depth, allowed, count)
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

    def explain(self, at: np.ndarray) -> list[tuple[PairCheck, PairScore, list[Adjustment]]]:
        """The checks, scores and graph factors of candidates ``at`` (positions), equal to what the
        reference functions (:func:`~matching.constraints.check_pair`,
        :func:`~matching.scoring.reciprocal_score`, :class:`~matching.rebalance.Rebalancer`) give
        for each pair: a property test holds them so."""
        source, settings, day = self.source, self.settings, self.day
        rows = self.rows[at]
        languages = set(source.languages_exchange)
        adjustments = self.factors.adjustments(at) if self.factors else [[] for _ in range(len(at))]
        explained = []
        for row, usable, score, adjusted in zip(
            rows.tolist(), self.masks.usable_at(rows).tolist(), self.scores.pair_scores(at), adjustments, strict=True
        ):
            candidate = self.table.schools[row]
            check = PairCheck(
                violations=(),
                shared_languages=tuple(sorted(languages & set(candidate.languages_exchange))),
                usable_modes=USABLE_MODES[usable],
                overlap=school_hours_overlap(
                    source.timezone, candidate.timezone, day, settings.school_day_start, settings.school_day_end
                ),
            )
            explained.append((check, score, adjusted))
        return explained


USABLE_MODES: tuple[tuple[ExchangeMode, ...], ...] = tuple(
    tuple(sorted(mode for mode, bit in MODE_BIT.items() if usable & bit)) for usable in range(8)
)
"""The exchange modes of each modes bitset, in the order ``check_pair`` lists them."""
