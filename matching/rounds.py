"""Matching rounds: pair a whole cohort at once, exactly, instead of one school at a time.

Suggesting partners one school at a time lets the first schools to ask take the partners that
suit everyone; a round looks at the cohort together and picks the set of pairs with the largest
total reciprocal score that every school's remaining capacity allows (a maximum-weight
b-matching on the candidate graph), so the best-connected schools do not crowd the rest out.

Candidate edges are never all pairs, so a round over 20,000 schools stays a sparse problem: each
school's ``per_school`` best candidates by reciprocal score among its ``per_school * overfetch``
nearest cohort schools that pass every hard rule (:func:`cohort_candidates`: the engine's rule
masks and array scores, batched over the cohort, and held equal by a test to
:func:`matching.retrieve.retrieve` asked one school at a time). The optimum is exact over the
edges gathered and never below greedy on the same edges; more edges per school let it find a
little more: on the 5,000-school benchmark world the default 20 gives a total 1.8% below 80's
(10: 5.9% below; ``evaluation/bench_rounds.py --per-school``). Explanations are
built for the chosen pairs only.
The brief asked for networkx's min-cost flow; see the first case below for why it is not used.

* scope ``home`` (every pair has one home-country school): the candidate graph is bipartite,
  and the problem is a min-cost flow on integer costs ``-round(weight * 1e6)``, solved exactly by
  OR-Tools' C++ min-cost flow (networkx's pure-Python network simplex gives the same optimum but
  took 12-33 s on the 59,000 edges of a 5,000-school round, against 0.2-0.5 s). A source-to-sink
  bypass arc carries the flow that no pair improves, so the objective is the largest total
  score, not the most pairs.
* scope ``any`` (foreign schools may pair with each other): the graph has odd cycles, so the
  b-matching is solved as an integer program (scipy ``milp`` / HiGHS with a zero optimality gap)
  on the same integer weights.

The algorithmic core works on plain :class:`RoundEdge` lists and capacities and needs no model
or index, so it can be proven optimal against brute force; :func:`run_round` feeds it from a
:class:`~matching.engine.Matcher`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

import numpy as np
from ortools.graph.python import min_cost_flow
from pydantic import BaseModel, Field
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp
from scipy.sparse import coo_array, csr_array, eye_array
from scipy.sparse import hstack as sparse_hstack

from data.schema import Partnership, PartnershipOrigin, School
from data.taxonomies import NSP_COUNTRIES, ExchangeMode
from matching.arrays import reciprocal_scores
from matching.constraints import RULE_TEXT, PairContext, Rule, SuggestionFilters, check_pair
from matching.explain import explain
from matching.masks import RuleMasks, rule_masks
from matching.reasons import Reason
from matching.retrieve import SIDE_NAMES, Request, retrieve
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings
from matching.table import ProfileTable, Row

if TYPE_CHECKING:  # the plain core below runs without the index and model the engine brings
    from matching.engine import Matcher

WEIGHT_SCALE = 1_000_000
"""Weights are solved as integers ``round(weight * WEIGHT_SCALE)``: min-cost flow is only exact on
integers, and both solvers then optimise the very same numbers (scores to 1e-6)."""

SEARCH_BATCH = 512
"""Cohort schools whose cosines one matrix product works out: large enough for BLAS to run well
(one school at a time is a matrix-vector product, several times slower per school)."""

SIMILARITY_CELLS = 1 << 23
"""At most this many cosines (32 MiB of float32) are held at once when a round searches its cohort:
the block of schools searched together shrinks as the eligible set grows."""

SolverMethod = Literal["min_cost_flow", "milp"]


# --------------------------------------------------------------------------- plain core


@dataclass(frozen=True)
class RoundEdge:
    """A candidate pair. ``a`` is the home-country school when the pair has one, else the smaller id."""

    a: str
    b: str
    score: float
    """Reciprocal score of the pair."""
    fit_a: float
    """fit(a→b): how well b suits what a asked for, i.e. a's preference for b."""
    fit_b: float
    """fit(b→a): b's preference for a."""
    weight: float
    """What the round maximises: the score plus any priority bonus."""


@dataclass(frozen=True)
class Assignment:
    """The chosen edges (indices into the edge list, ascending) and how they were found."""

    chosen: tuple[int, ...]
    method: SolverMethod | Literal["greedy"]


def integer_weights(edges: Sequence[RoundEdge]) -> list[int]:
    return [round(edge.weight * WEIGHT_SCALE) for edge in edges]


def _check_inputs(edges: Sequence[RoundEdge], capacity: Mapping[str, int]) -> None:
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        for school in (edge.a, edge.b):
            if school not in capacity:
                raise ValueError(f"capacity: no capacity given for school {school!r} of edge {edge.a}–{edge.b}")
        key = (min(edge.a, edge.b), max(edge.a, edge.b))
        if edge.a == edge.b:
            raise ValueError(f"edges: {edge.a} is paired with itself")
        if key in seen:
            raise ValueError(f"edges: the pair {key[0]}–{key[1]} appears twice")
        if edge.weight < 0:
            raise ValueError(f"edges: weight of {edge.a}–{edge.b} is negative ({edge.weight})")
        seen.add(key)
    for school, places in capacity.items():
        if places < 0:
            raise ValueError(f"capacity: {school} has negative remaining capacity ({places})")


def optimal_assignment(
    edges: Sequence[RoundEdge],
    capacity: Mapping[str, int],
    *,
    left: AbstractSet[str] | None = None,
    coverage_first: bool = False,
) -> Assignment:
    """The set of edges with the largest total integer weight in which no school has more edges than
    its capacity. With ``coverage_first`` the number of schools given at least one partner is
    maximised first and the total weight second (lexicographically). A pair of zero weight adds
    nothing, so it is used only when it gives a school its first partner under coverage_first.

    When ``left`` is given and every edge joins a school in ``left`` to one outside it, the graph is
    bipartite and min-cost flow solves it; otherwise an integer program does.
    """
    _check_inputs(edges, capacity)
    weights = integer_weights(edges)
    usable = [
        i for i, e in enumerate(edges) if capacity[e.a] > 0 and capacity[e.b] > 0 and (weights[i] > 0 or coverage_first)
    ]
    if not usable:
        return Assignment((), "min_cost_flow" if left is not None else "milp")
    if left is not None and all((edges[i].a in left) != (edges[i].b in left) for i in usable):
        chosen = _flow_assignment(edges, weights, usable, capacity, left, coverage_first)
        return Assignment(tuple(sorted(chosen)), "min_cost_flow")
    return Assignment(tuple(sorted(_milp_assignment(edges, weights, usable, capacity, coverage_first))), "milp")


def _flow_assignment(
    edges: Sequence[RoundEdge],
    weights: list[int],
    usable: list[int],
    capacity: Mapping[str, int],
    left: AbstractSet[str],
    coverage_first: bool,
) -> list[int]:
    """source → left school → right school → sink, one unit per pair, costs the negated weights; a
    school's first unit of capacity earns the coverage bonus (larger than every weight together, so
    covering one more school always wins), the rest earn nothing; the bypass arc source → sink
    carries whatever flow no pair improves. Solved by OR-Tools' C++ cost-scaling min-cost flow."""
    bonus = sum(weights[i] for i in usable) + 1 if coverage_first else 0
    schools = sorted({school for i in usable for school in (edges[i].a, edges[i].b)})
    node = {school: n + 2 for n, school in enumerate(schools)}
    source, sink = 0, 1
    tails, heads, capacities, costs = [], [], [], []

    def arc(tail: int, head: int, places: int, cost: int) -> None:
        tails.append(tail)
        heads.append(head)
        capacities.append(places)
        costs.append(cost)

    for i in usable:
        edge = edges[i]
        left_end, right_end = (edge.a, edge.b) if edge.a in left else (edge.b, edge.a)
        arc(node[left_end], node[right_end], 1, -weights[i])
    supply = 0
    for school in schools:
        tail, head = (source, node[school]) if school in left else (node[school], sink)
        supply += capacity[school] if school in left else 0
        if bonus:
            arc(tail, head, 1, -bonus)
            if capacity[school] > 1:
                arc(tail, head, capacity[school] - 1, 0)
        else:
            arc(tail, head, capacity[school], 0)
    arc(source, sink, supply, 0)
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(
        np.array(tails, dtype=np.int64),
        np.array(heads, dtype=np.int64),
        np.array(capacities, dtype=np.int64),
        np.array(costs, dtype=np.int64),
    )
    solver.set_nodes_supplies(np.array([source, sink], dtype=np.int64), np.array([supply, -supply], dtype=np.int64))
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise RuntimeError(f"assignment: the min-cost flow was not solved to optimality (status {status})")
    flows = solver.flows(arcs[: len(usable)])
    return [usable[j] for j in np.flatnonzero(flows > 0)]


def _milp_assignment(
    edges: Sequence[RoundEdge], weights: list[int], usable: list[int], capacity: Mapping[str, int], coverage_first: bool
) -> list[int]:
    """x_e ∈ {0,1} per edge, Σ x_e ≤ capacity at each school. For coverage, y_v ∈ {0,1} with
    y_v ≤ Σ x_e: first maximise Σ y, then fix Σ y at its optimum and maximise the weight (two
    solves rather than one big-M objective, which HiGHS's float tolerances would blur)."""
    schools = sorted({s for i in usable for s in (edges[i].a, edges[i].b)})
    row = {school: r for r, school in enumerate(schools)}
    m, n = len(usable), len(schools)
    cols = np.repeat(np.arange(m), 2)
    rows = np.array([row[s] for i in usable for s in (edges[i].a, edges[i].b)])
    incidence = coo_array((np.ones(2 * m), (rows, cols)), shape=(n, m)).tocsr()
    places = np.array([capacity[s] for s in schools], dtype=float)
    edge_weights = np.array([weights[i] for i in usable], dtype=float)
    options = {"mip_rel_gap": 0.0, "disp": False}

    if not coverage_first:
        result = milp(
            -edge_weights,
            integrality=np.ones(m),
            bounds=Bounds(0, 1),
            constraints=[LinearConstraint(incidence, -np.inf, places)],
            options=options,
        )
        return [usable[j] for j in np.flatnonzero(_solution(result, "assignment") > 0.5)]

    # Variables [x (m) | y (n)].
    capacity_rows = sparse_hstack([incidence, csr_array((n, n))], format="csr")
    cover_rows = sparse_hstack([-incidence, eye_array(n, format="csr")], format="csr")
    constraints = [LinearConstraint(capacity_rows, -np.inf, places), LinearConstraint(cover_rows, -np.inf, 0)]
    integrality = np.ones(m + n)
    coverage_objective = np.concatenate([np.zeros(m), -np.ones(n)])
    covered = _solution(
        milp(
            coverage_objective, integrality=integrality, bounds=Bounds(0, 1), constraints=constraints, options=options
        ),
        "coverage",
    )
    best_coverage = round(covered[m:].sum())
    keep_coverage = LinearConstraint(np.concatenate([np.zeros(m), np.ones(n)])[None, :], best_coverage, np.inf)
    result = milp(
        np.concatenate([-edge_weights, np.zeros(n)]),
        integrality=integrality,
        bounds=Bounds(0, 1),
        constraints=[*constraints, keep_coverage],
        options=options,
    )
    return [usable[j] for j in np.flatnonzero(_solution(result, "assignment")[:m] > 0.5)]


def _solution(result: OptimizeResult, stage: str) -> np.ndarray:
    if result.status != 0 or result.x is None:
        raise RuntimeError(f"{stage}: the integer program was not solved to optimality ({result.message})")
    return result.x


def greedy_assignment(edges: Sequence[RoundEdge], capacity: Mapping[str, int]) -> Assignment:
    """Best pair first (by integer weight, ties by ids; zero weights never), taken while both
    schools have room: what handing out suggestions in score order would give, and the baseline a
    round must beat."""
    _check_inputs(edges, capacity)
    weights = np.array(integer_weights(edges), dtype=np.int64)
    room = dict(capacity)
    chosen = []
    if edges:  # one sort in NumPy: a Python sort on (weight, a, b) tuples costs seconds at 20k schools
        order = np.lexsort((np.array([e.b for e in edges]), np.array([e.a for e in edges]), -weights))
        for i in order[weights[order] > 0].tolist():
            edge = edges[i]
            if room[edge.a] > 0 and room[edge.b] > 0:
                room[edge.a] -= 1
                room[edge.b] -= 1
                chosen.append(i)
    return Assignment(tuple(sorted(chosen)), "greedy")


def blocking_pairs(edges: Sequence[RoundEdge], chosen: Iterable[int], capacity: Mapping[str, int]) -> list[int]:
    """Edges not chosen whose two schools would both rather have each other.

    A school *prefers* a partner by its own fit (``fit_a`` for a, ``fit_b`` for b: how well the
    other matches what it asked for), not by the shared score. Edge (a, b) not in the assignment
    blocks it when, for each of a and b, either

    * the school has spare capacity (fewer assigned partners than its remaining capacity), or
    * its fit for the other is strictly greater than its fit for the least-preferred partner it
      was assigned,

    so both would gladly make the pair, dropping their worst partner if they must. Greedy by
    shared score can leave blocking pairs too, because each side ranks by its own fit.
    """
    chosen = set(chosen)
    assigned: dict[str, int] = Counter()
    worst: dict[str, float] = {}
    for i in chosen:
        edge = edges[i]
        for school, fit in ((edge.a, edge.fit_a), (edge.b, edge.fit_b)):
            assigned[school] += 1
            worst[school] = min(worst.get(school, fit), fit)

    def wants(school: str, fit: float) -> bool:
        return assigned[school] < capacity[school] or fit > worst[school]

    return [
        i
        for i, edge in enumerate(edges)
        if i not in chosen
        and capacity[edge.a] > 0
        and capacity[edge.b] > 0
        and wants(edge.a, edge.fit_a)
        and wants(edge.b, edge.fit_b)
    ]


class AssignmentSummary(BaseModel):
    """What an assignment gives the cohort. The worst-off figures look at each matched school's
    best assigned score: ``worst_off_score`` is the lowest of them, ``bottom_decile_score`` the
    mean of the lowest tenth (at least one school), less sensitive to a single outlier."""

    method: str
    pairs: int
    matched_schools: int
    total_score: float = Field(description="sum of the reciprocal scores of the pairs")
    total_weight: float = Field(description="what the round maximised: score plus priority bonuses")
    worst_off_score: float | None
    bottom_decile_score: float | None
    blocking_pairs: int


def summarise(edges: Sequence[RoundEdge], assignment: Assignment, capacity: Mapping[str, int]) -> AssignmentSummary:
    best: dict[str, float] = {}
    for i in assignment.chosen:
        edge = edges[i]
        for school in (edge.a, edge.b):
            best[school] = max(best.get(school, edge.score), edge.score)
    ordered = sorted(best.values())
    decile = ordered[: max(1, len(ordered) // 10)] if ordered else []
    return AssignmentSummary(
        method=assignment.method,
        pairs=len(assignment.chosen),
        matched_schools=len(best),
        total_score=round(sum(edges[i].score for i in assignment.chosen), 6),
        total_weight=round(sum(edges[i].weight for i in assignment.chosen), 6),
        worst_off_score=round(ordered[0], 6) if ordered else None,
        bottom_decile_score=round(sum(decile) / len(decile), 6) if decile else None,
        blocking_pairs=len(blocking_pairs(edges, assignment.chosen, capacity)),
    )


class RoundComparison(BaseModel):
    optimal: AssignmentSummary
    greedy: AssignmentSummary
    score_uplift: float = Field(description="optimal total score minus greedy total score")
    score_uplift_percent: float | None
    extra_matched_schools: int


def compare(
    edges: Sequence[RoundEdge], optimal: Assignment, greedy: Assignment, capacity: Mapping[str, int]
) -> RoundComparison:
    mine, theirs = summarise(edges, optimal, capacity), summarise(edges, greedy, capacity)
    uplift = mine.total_score - theirs.total_score
    return RoundComparison(
        optimal=mine,
        greedy=theirs,
        score_uplift=round(uplift, 6),
        score_uplift_percent=round(100 * uplift / theirs.total_score, 4) if theirs.total_score else None,
        extra_matched_schools=mine.matched_schools - theirs.matched_schools,
    )


# --------------------------------------------------------------------------- rounds over a Matcher


class RoundOptions(BaseModel):
    per_school: int = Field(
        20, ge=1, le=200, description="candidate partners gathered per school (best by reciprocal score)"
    )
    overfetch: float = Field(
        3.0,
        ge=1,
        le=50,
        description="eligible cohort schools ranked per candidate wanted (the nearest first); lower than for "
        "suggestions, which need a pool to diversify, because a round scores candidates for thousands of schools",
    )
    coverage_first: bool = Field(
        False, description="give as many schools as possible a first partner before anyone a second"
    )
    nsp_priority: bool = Field(False, description="favour pairs with a school in a New Southbound country")
    nsp_bonus: float = Field(0.1, ge=0, le=1, description="added to a pair's weight under nsp_priority")
    max_blocking_listed: int = Field(100, ge=0, le=10_000, description="blocking pairs listed in the result")


class RoundPair(BaseModel):
    school_a: str = Field(description="the home-country school when the pair has one")
    school_b: str
    score: float = Field(ge=0, le=1, description="reciprocal score")
    fit_a: float = Field(ge=0, le=1, description="how well school_b suits what school_a asked for")
    fit_b: float = Field(ge=0, le=1, description="how well school_a suits what school_b asked for")
    weight: float = Field(description="what the round maximised for this pair (score plus bonus)")
    modes: list[ExchangeMode]
    sdgs: list[int] = Field(description="SDG themes both schools work on")
    reasons: list[Reason] = Field(description="why, from school_a's side")


class UnmatchedReason(StrEnum):
    UNKNOWN = "unknown"
    INACTIVE = "inactive"
    NO_SPARE_CAPACITY = "no_spare_capacity"
    NO_CANDIDATE = "no_candidate"
    CAPACITY_TAKEN = "capacity_taken"


UNMATCHED_TEXT: dict[UnmatchedReason, tuple[str, str]] = {
    UnmatchedReason.UNKNOWN: ("is not a known school", "查無此校"),
    UnmatchedReason.INACTIVE: ("is not active", "目前未啟用"),
    UnmatchedReason.NO_SPARE_CAPACITY: (
        "has no free place: its partners and open invitations fill its capacity",
        "合作夥伴與待回覆邀請已占滿名額",
    ),
    UnmatchedReason.NO_CANDIDATE: (
        "none of its nearest neighbours in the cohort passed every rule for it",
        "本輪與其最相近的學校皆未通過所有配對條件",
    ),
    UnmatchedReason.CAPACITY_TAKEN: (
        "every candidate's places went to pairs that add more to the round's total",
        "候選學校的名額已分配給整體分數更高的配對",
    ),
}


class RuleCount(BaseModel):
    rule: Rule
    candidates: int
    text_en: str
    text_zh: str


class UnmatchedSchool(BaseModel):
    school_id: str
    reason: UnmatchedReason
    text_en: str
    text_zh: str
    eliminated: list[RuleCount] = Field(default_factory=list, description="rules that removed its candidates")
    outside_cohort: int = Field(0, description="candidates that passed the rules but are not in the cohort")
    candidate_edges: int = Field(0, description="candidate pairs it had in the round")
    best_candidate: str | None = None
    best_candidate_score: float | None = None


class BlockingPair(BaseModel):
    school_a: str
    school_b: str
    score: float
    fit_a: float
    fit_b: float


class RoundResult(BaseModel):
    """A round's proposal: stored and shown as is, turned into partnerships by :func:`accept`."""

    scope: Literal["home", "any"]
    home_country: str
    options: RoundOptions
    cohort_size: int
    candidate_edges: int
    method: SolverMethod
    pairs: list[RoundPair]
    unmatched: list[UnmatchedSchool]
    comparison: RoundComparison
    blocking_pairs: list[BlockingPair] = Field(
        description="blocking pairs of the chosen assignment (listed up to options.max_blocking_listed)"
    )


def remaining_capacity(matcher: Matcher, school: School) -> int:
    """The school's free places (:meth:`Matcher.free_places`), never below 0."""
    return max(matcher.free_places(school), 0)


@dataclass(frozen=True)
class CandidateRecords:
    """Each cohort school's candidates as parallel arrays, one entry per (source, candidate) found:
    table rows, both fits from the source's side, the reciprocal score and the profile cosine."""

    source: np.ndarray
    candidate: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    reciprocal: np.ndarray
    similarity: np.ndarray

    @classmethod
    def join(cls, parts: Sequence[CandidateRecords]) -> CandidateRecords:
        if not parts:
            empty_rows, empty = np.zeros(0, dtype=np.int64), np.zeros(0)
            return cls(empty_rows, empty_rows, empty, empty, empty, empty)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _RECORD_FIELDS))


_RECORD_FIELDS = ("source", "candidate", "forward", "backward", "reciprocal", "similarity")


@dataclass
class RoundCandidates:
    """What a round gathers before solving: the candidate graph (edges, and the profile cosine of
    each, for its reasons) and the cohort schools that cannot take part."""

    settings: MatchSettings
    options: RoundOptions
    cohort: list[str]
    room: dict[str, int]
    """Remaining capacity of each cohort school that can take a partner."""
    edges: list[RoundEdge]
    """Sorted by (a, b)."""
    similarity: list[float]
    """Profile cosine of each edge's two schools."""
    excluded: dict[str, UnmatchedSchool]
    """Cohort schools that cannot take part: unknown, inactive or without a free place."""


def gather_candidates(
    matcher: Matcher,
    cohort: Iterable[str] | None = None,
    options: RoundOptions | None = None,
    *,
    settings: MatchSettings | None = None,
) -> RoundCandidates:
    """Candidate edges for a cohort (school ids; default every active school with spare capacity).

    Each cohort school contributes its ``per_school`` best candidates by reciprocal score that pass
    every hard rule and are in the cohort with spare capacity (:func:`cohort_candidates`). A pair
    found from both sides is one edge, with the values found first in id order. Everything is
    sorted by id, so the same input gives the same edges.
    """
    options = options or RoundOptions()
    settings = (settings or matcher.settings).model_copy(update={"diversity": False, "overfetch": options.overfetch})
    if cohort is None:
        cohort_ids = sorted(s.id for s in matcher.schools.values() if s.active and remaining_capacity(matcher, s) > 0)
    else:
        cohort_ids = sorted(set(cohort))
    excluded: dict[str, UnmatchedSchool] = {}
    room: dict[str, int] = {}
    for school_id in cohort_ids:
        school = matcher.schools.get(school_id)
        if school is None:
            excluded[school_id] = _unmatched(school_id, UnmatchedReason.UNKNOWN)
        elif not school.active:
            excluded[school_id] = _unmatched(school_id, UnmatchedReason.INACTIVE)
        elif (places := remaining_capacity(matcher, school)) == 0:
            excluded[school_id] = _unmatched(school_id, UnmatchedReason.NO_SPARE_CAPACITY)
        else:
            room[school_id] = places
    found = cohort_candidates(matcher, room, options.per_school, settings)
    edges, similarity = _edges(matcher, found, options, settings)
    return RoundCandidates(settings, options, cohort_ids, room, edges, similarity, excluded)


def cohort_candidates(
    matcher: Matcher, room: Mapping[str, int], per_school: int, settings: MatchSettings
) -> CandidateRecords:
    """Each ``room`` school's best ``per_school`` candidates inside ``room``, by reciprocal score,
    among its ``depth`` (``per_school × overfetch``) nearest cohort schools that pass every rule.

    Batched, on the cohort's rows only: the hard rules depend on the source only through its
    country, time zone, exchange languages, modes, levels and active flag (besides itself and its
    partners), so :func:`~matching.masks.rule_masks` runs once per distinct such profile (hundreds
    in a cohort of thousands) over the cohort rows of the sides it may pair with, and each school
    then drops only itself and its partners; the nearest are found by exact cosine, one matrix
    product per block of schools against those rows' stored vectors; and
    :func:`~matching.arrays.reciprocal_scores` scores them. These are the very masks and scores of
    :func:`matching.retrieve.retrieve` (a test holds the two equal) without a ``Candidate`` per
    hit, and exact where a large index would be approximate.

    A trained ranker or a custom scorer orders candidates by its own score, which only
    :func:`~matching.retrieve.retrieve` computes: then each school goes through it."""
    if matcher.ranker is not None or matcher.scorer is not None:
        return _retrieved_candidates(matcher, room, per_school, settings)
    table = matcher.table
    rows = np.array([table.row_of[school_id] for school_id in sorted(room)], dtype=np.int64)
    inside = np.zeros(len(table), dtype=bool)
    inside[rows] = True
    by_sides: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for row in rows.tolist():
        by_sides[tuple(matcher.candidate_sides(table.schools[row], settings))].append(row)
    vectors, order = _table_vectors(matcher, table), table.id_order()
    parts = []
    for sides, sources in by_sides.items():
        columns = np.flatnonzero(table.indexed_among(sides) & inside)
        if len(columns):
            search = _CohortSearch(matcher, table, columns, vectors, order, per_school, settings)
            parts.extend(search.run(sources))
    return CandidateRecords.join(parts)


def _table_vectors(matcher: Matcher, table: ProfileTable) -> np.ndarray:
    """The stored vector of every indexed row (zeros elsewhere), read from each index at once."""
    dim = next(iter(matcher.indexes.values())).dim
    vectors = np.zeros((len(table), dim), dtype=np.float32)
    for side, name in SIDE_NAMES.items():
        rows = np.flatnonzero(table.indexed_on(side))
        vectors[rows] = matcher.indexes[name].vectors_at(table["label"][rows])
    return vectors


@dataclass(frozen=True)
class _CohortRows(ProfileTable):
    """Some rows of a table, as a table of their own for the masks and scores. Shared school hours
    are read from the whole table, which works them out once per time zone and keeps them for
    every later request on it."""

    parent: ProfileTable | None = None
    parent_rows: np.ndarray | None = None

    def overlap_hours(self, timezone: str, day: date, start_hour: int, end_hour: int) -> np.ndarray:
        assert self.parent is not None and self.parent_rows is not None
        return self.parent.overlap_hours(timezone, day, start_hour, end_hour)[self.parent_rows]


_TABLE_FIELDS = ("home_country", "countries", "languages", "timezones", "regions", "rows_by_label")


class _CohortSearch:
    """:func:`cohort_candidates` for the sources that pair with one set of sides, against the cohort
    rows of those sides (``columns``), held as a table of their own so the masks cover them only."""

    def __init__(
        self,
        matcher: Matcher,
        table: ProfileTable,
        columns: np.ndarray,
        vectors: np.ndarray,
        order: np.ndarray,
        per_school: int,
        settings: MatchSettings,
    ) -> None:
        self.matcher, self.table, self.columns, self.vectors = matcher, table, columns, vectors
        self.per_school, self.settings = per_school, settings
        self.day = settings.reference_date or date.today()
        self.sub = _CohortRows(
            **{name: getattr(table, name) for name in _TABLE_FIELDS},
            ids=tuple(table.ids[c] for c in columns.tolist()),
            row_of={table.ids[c]: n for n, c in enumerate(columns.tolist())},
            schools=tuple(table.schools[c] for c in columns.tolist()),
            columns={name: values[columns] for name, values in table.columns.items()},
            parent=table,
            parent_rows=columns,
        )
        self.column_vectors = np.ascontiguousarray(vectors[columns])
        self.column_order = order[columns]
        self.position = np.full(len(table), -1, dtype=np.int64)
        self.position[columns] = np.arange(len(columns))

    def run(self, sources: Sequence[int]) -> Iterator[CandidateRecords]:
        """Sources in blocks (a block's cosines in one matrix product), masks per distinct profile."""
        encoded = {row: self.table.encode(self.table.schools[row]) for row in sources}
        keyed = sorted(sources, key=lambda row: (self._key(encoded[row]), row))  # one profile's masks at a time
        block = max(1, min(SEARCH_BATCH, SIMILARITY_CELLS // len(self.columns)))
        current: tuple | None = None
        for start in range(0, len(keyed), block):
            chunk = keyed[start : start + block]
            similarity = self.vectors[chunk] @ self.column_vectors.T
            for n, row in enumerate(chunk):
                if self._key(encoded[row]) != current:
                    current = self._key(encoded[row])
                    masks, blocked = self._masks(encoded[row])
                    depth = Request(
                        encoded[row].school, self.per_school, self.settings, rebalanced=False, limit=self.per_school
                    ).ranked_depth()
                found = self._one(row, encoded[row], similarity[n], masks, blocked, depth)
                if found is not None:
                    yield found

    @staticmethod
    def _key(source: Row) -> tuple:
        """What the rules read of the source, besides its id and partners (see rule_masks)."""
        school = source.school
        return (
            school.active,
            school.country,
            school.timezone,
            source.languages_exchange.tobytes(),
            source.modes,
            source.levels,
        )

    def _masks(self, source: Row) -> tuple[RuleMasks, np.ndarray]:
        masks = rule_masks(self.sub, source, self.settings, self.day, SuggestionFilters(), [])
        blocked = np.zeros(len(self.columns), dtype=bool)
        for rule, mask in masks.violations.items():
            if rule not in (Rule.SAME_SCHOOL, Rule.ALREADY_PARTNERS):  # per school, in _one
                blocked |= mask
        return masks, blocked

    def _one(
        self, row: int, source: Row, similarity: np.ndarray, masks: RuleMasks, blocked: np.ndarray, depth: int
    ) -> CandidateRecords | None:
        table = self.table
        own = [row, *(table.row_of[p] for p in self.matcher.partners(table.ids[row]) if p in table.row_of)]
        dropped = self.position[own]
        similarity = np.where(blocked, -np.inf, similarity)
        similarity[dropped[dropped >= 0]] = -np.inf
        eligible = np.flatnonzero(np.isfinite(similarity))
        if len(eligible) == 0:
            return None
        if len(eligible) > depth:
            eligible = eligible[np.argpartition(-similarity[eligible], depth - 1)[:depth]]
        cosine = similarity[eligible]
        scores = reciprocal_scores(self.sub, source, eligible, cosine, masks, self.settings)
        best = np.lexsort((self.column_order[eligible], -scores.reciprocal))[: self.per_school]
        return CandidateRecords(
            np.full(len(best), row, dtype=np.int64),
            self.columns[eligible[best]],
            scores.forward[best],
            scores.backward[best],
            scores.reciprocal[best],
            cosine[best].astype(float),
        )


def _retrieved_candidates(
    matcher: Matcher, room: Mapping[str, int], per_school: int, settings: MatchSettings
) -> CandidateRecords:
    """:func:`cohort_candidates` one school at a time through :func:`matching.retrieve.retrieve`."""
    table = matcher.table
    requests = [
        Request(matcher.schools[school_id], per_school, settings, rebalanced=False, limit=per_school)
        for school_id in sorted(room)
    ]
    parts = []
    for request, found in zip(requests, retrieve(matcher, requests, within=room), strict=True):
        if found.ranked:
            parts.append(
                CandidateRecords(
                    np.full(len(found.ranked), table.row_of[request.source.id], dtype=np.int64),
                    np.array([table.row_of[c.school.id] for c in found.ranked], dtype=np.int64),
                    *(np.array([getattr(c, f) for c in found.ranked], dtype=float) for f in _CANDIDATE_FIELDS),
                )
            )
    return CandidateRecords.join(parts)


_CANDIDATE_FIELDS = ("fit_forward", "fit_backward", "reciprocal", "similarity")


def _edges(
    matcher: Matcher, found: CandidateRecords, options: RoundOptions, settings: MatchSettings
) -> tuple[list[RoundEdge], list[float]]:
    """One edge per pair found (from either side or both), oriented (a is the home-country school
    when exactly one is, else the smaller id) and sorted by (a, b) id, with the values of the record
    whose source comes first by id; the weight adds any priority bonus."""
    table = matcher.table
    order = table.id_order()
    first = np.argsort(order[found.source], kind="stable")
    source, candidate = found.source[first], found.candidate[first]
    home = table["country"] == table.countries.code(settings.home_country)
    a_is_source = np.where(home[source] != home[candidate], home[source], order[source] < order[candidate])
    a, b = np.where(a_is_source, source, candidate), np.where(a_is_source, candidate, source)
    _, unique = np.unique(a * len(table) + b, return_index=True)
    unique = unique[np.lexsort((order[b[unique]], order[a[unique]]))]
    fit_a = np.where(a_is_source, found.forward[first], found.backward[first])[unique]
    fit_b = np.where(a_is_source, found.backward[first], found.forward[first])[unique]
    score = found.reciprocal[first][unique]
    a, b = a[unique], b[unique]
    weight = score.copy()
    if options.nsp_priority:
        southbound = np.isin(table["country"], [table.countries.code(c) for c in NSP_COUNTRIES])
        weight += np.where(southbound[a] | southbound[b], options.nsp_bonus, 0.0)
    ids = table.ids
    edges = [
        RoundEdge(ids[x], ids[y], s, fa, fb, w)
        for x, y, s, fa, fb, w in zip(
            a.tolist(), b.tolist(), score.tolist(), fit_a.tolist(), fit_b.tolist(), weight.tolist(), strict=True
        )
    ]
    return edges, found.similarity[first][unique].tolist()


def solve_round(matcher: Matcher, gathered: RoundCandidates) -> RoundResult:
    """The exact assignment over the gathered edges, compared with greedy, with reasons for every
    pair and for every cohort school left without a partner."""
    settings, options, edges, room = gathered.settings, gathered.options, gathered.edges, gathered.room
    home = settings.home_country
    home_side = {school_id for school_id in room if matcher.schools[school_id].country == home}
    best = optimal_assignment(
        edges, room, left=home_side if settings.scope == "home" else None, coverage_first=options.coverage_first
    )
    greedy = greedy_assignment(edges, room)
    matched = {s for i in best.chosen for s in (edges[i].a, edges[i].b)}
    edges_of: dict[str, list[RoundEdge]] = defaultdict(list)
    for edge in edges:
        edges_of[edge.a].append(edge)
        edges_of[edge.b].append(edge)
    unmatched = dict(gathered.excluded)
    left_out = [school_id for school_id in sorted(room) if school_id not in matched]
    for school_id, (eliminated, outside) in zip(left_out, _why(matcher, left_out, gathered), strict=True):
        mine = edges_of[school_id]
        if not mine:
            unmatched[school_id] = _unmatched(
                school_id, UnmatchedReason.NO_CANDIDATE, eliminated=eliminated, outside=outside
            )
        else:
            top = min(mine, key=lambda e: (-e.score, e.b if e.a == school_id else e.a))
            unmatched[school_id] = _unmatched(
                school_id,
                UnmatchedReason.CAPACITY_TAKEN,
                eliminated=eliminated,
                outside=outside,
                candidate_edges=len(mine),
                best=(top.b if top.a == school_id else top.a, top.score),
            )
    listed = blocking_pairs(edges, best.chosen, room)[: options.max_blocking_listed]
    context = matcher.context(settings=settings)
    method: SolverMethod = "milp" if best.method == "milp" else "min_cost_flow"
    return RoundResult(
        scope=settings.scope,
        home_country=home,
        options=options,
        cohort_size=len(gathered.cohort),
        candidate_edges=len(edges),
        method=method,
        pairs=[_pair(matcher, edges[i], gathered.similarity[i], context) for i in best.chosen],
        unmatched=[unmatched[s] for s in sorted(unmatched)],
        comparison=compare(edges, best, greedy, room),
        blocking_pairs=[
            BlockingPair(
                school_a=e.a, school_b=e.b, score=round(e.score, 6), fit_a=round(e.fit_a, 6), fit_b=round(e.fit_b, 6)
            )
            for e in (edges[i] for i in listed)
        ],
    )


def run_round(
    matcher: Matcher,
    cohort: Iterable[str] | None = None,
    options: RoundOptions | None = None,
    *,
    settings: MatchSettings | None = None,
) -> RoundResult:
    """Propose pairs for a cohort: :func:`gather_candidates`, then :func:`solve_round`."""
    return solve_round(matcher, gather_candidates(matcher, cohort, options, settings=settings))


def _why(matcher: Matcher, school_ids: Sequence[str], gathered: RoundCandidates) -> list[tuple[Counter[Rule], int]]:
    """For schools left without a partner only: the candidates each rule removed from their search
    and how many that passed were outside the cohort, as :func:`matching.retrieve.retrieve` counts
    them, with the masks worked out once per distinct source profile (as in :func:`cohort_candidates`)
    and only the school itself and its partners set per school."""
    table, settings = matcher.table, gathered.settings
    day = settings.reference_date or date.today()
    inside = np.zeros(len(table), dtype=bool)
    inside[[table.row_of[school_id] for school_id in gathered.room]] = True
    encoded = {school_id: table.encode(matcher.schools[school_id]) for school_id in school_ids}
    found: dict[str, tuple[Counter[Rule], int]] = {}
    current: tuple | None = None
    for school_id in sorted(school_ids, key=lambda i: (_CohortSearch._key(encoded[i]), i)):
        source = encoded[school_id]
        if _CohortSearch._key(source) != current:
            current = _CohortSearch._key(source)
            shared = rule_masks(table, source, settings, day, SuggestionFilters(), [])
            on_sides = table.indexed_among(matcher.candidate_sides(source.school, settings))
        same = np.zeros(len(table), dtype=bool)
        same[table.row_of[school_id]] = True
        partners = np.zeros(len(table), dtype=bool)
        partners[[table.row_of[p] for p in matcher.partners(school_id) if p in table.row_of]] = True
        masks = replace(
            shared, violations=shared.violations | {Rule.SAME_SCHOOL: same, Rule.ALREADY_PARTNERS: partners}
        )
        examined = on_sides & ~same
        outside = int(np.count_nonzero(examined & masks.passing() & ~inside))
        found[school_id] = (masks.eliminated(examined), outside)
    return [found[school_id] for school_id in school_ids]


def _unmatched(
    school_id: str,
    reason: UnmatchedReason,
    *,
    eliminated: Counter[Rule] | None = None,
    outside: int = 0,
    candidate_edges: int = 0,
    best: tuple[str, float] | None = None,
) -> UnmatchedSchool:
    text_en, text_zh = UNMATCHED_TEXT[reason]
    return UnmatchedSchool(
        school_id=school_id,
        reason=reason,
        text_en=text_en,
        text_zh=text_zh,
        eliminated=[
            RuleCount(rule=rule, candidates=n, text_en=RULE_TEXT[rule][0], text_zh=RULE_TEXT[rule][1])
            for rule, n in sorted((eliminated or Counter()).items(), key=lambda item: (-item[1], item[0]))
        ],
        outside_cohort=outside,
        candidate_edges=candidate_edges,
        best_candidate=best[0] if best else None,
        best_candidate_score=round(best[1], 6) if best else None,
    )


def _pair(matcher: Matcher, edge: RoundEdge, similarity: float, context: PairContext) -> RoundPair:
    """The chosen pair with its reasons from school_a's side, from the reference check and score
    (as :meth:`Matcher.score_pair`, on one context for the round; the round optimises the
    reciprocal score, so no graph factors)."""
    a, b = matcher.schools[edge.a], matcher.schools[edge.b]
    settings = context.settings
    check = check_pair(a, b, context)
    score = reciprocal_score(a, b, check, similarity, settings)
    return RoundPair(
        school_a=a.id,
        school_b=b.id,
        score=round(edge.score, 6),
        fit_a=round(edge.fit_a, 6),
        fit_b=round(edge.fit_b, 6),
        weight=round(edge.weight, 6),
        modes=list(check.usable_modes),
        sdgs=sorted(set(a.sdgs) & set(b.sdgs)),
        reasons=explain(a, b, check, score, [], settings),
    )


def accept(pairs: Iterable[RoundPair], start_date: date, *, note: str | None = None) -> list[Partnership]:
    """Partnerships for the round's pairs that staff approved (all of ``result.pairs`` or some):
    origin "suggested", the pair's usable modes and shared SDGs. The store assigns ids."""
    return [
        Partnership(
            school_a=pair.school_a,
            school_b=pair.school_b,
            start_date=start_date,
            modes=pair.modes,
            sdgs=pair.sdgs,
            origin=PartnershipOrigin.SUGGESTED,
            note=note,
        )
        for pair in pairs
    ]
