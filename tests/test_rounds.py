"""Matching rounds: the exact assignment against brute force, greedy and coverage on tiny inputs,
then a round over a small generated world through the real Matcher."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import date

import pytest

from data.generator import generate_world
from data.schema import PartnershipOrigin
from data.taxonomies import NSP_COUNTRIES
from embeddings import EmbeddingSettings, ProfileEmbedder
from graph import add_partnership
from matching.constraints import check_pair
from matching.engine import Matcher
from matching.retrieve import Request, retrieve
from matching.rounds import (
    RoundEdge,
    RoundOptions,
    RoundResult,
    UnmatchedReason,
    _why,
    accept,
    blocking_pairs,
    cohort_candidates,
    gather_candidates,
    greedy_assignment,
    integer_weights,
    optimal_assignment,
    remaining_capacity,
    run_round,
    summarise,
)
from matching.settings import MatchSettings


def _random_instance(rng: random.Random, *, bipartite: bool) -> tuple[list[RoundEdge], dict[str, int], set[str]]:
    """5-8 schools, up to 12 candidate edges, capacities 0-2 (0: a school whose places are all taken)."""
    if bipartite:
        left = [f"tw{i}" for i in range(rng.randint(2, 4))]
        right = [f"my{i}" for i in range(rng.randint(2, 4))]
        possible = list(itertools.product(left, right))
    else:
        left = []
        right = [f"s{i}" for i in range(rng.randint(5, 7))]
        possible = list(itertools.combinations(right, 2))
    chosen = rng.sample(possible, min(len(possible), rng.randint(4, 12)))
    edges = []
    for a, b in sorted(chosen):
        score = round(rng.uniform(0.05, 1.0), 3)
        edges.append(RoundEdge(a, b, score, rng.random(), rng.random(), score + rng.choice([0.0, 0.0, 0.1])))
    capacity = {school: rng.choice([0, 1, 1, 2, 2]) for school in [*left, *right]}
    return edges, capacity, set(left)


def _feasible(edges: Sequence[RoundEdge], subset: Sequence[int], capacity: dict[str, int]) -> bool:
    used = Counter(s for i in subset for s in (edges[i].a, edges[i].b))
    return all(used[s] <= capacity[s] for s in used)


def _brute_force(edges: Sequence[RoundEdge], capacity: dict[str, int], coverage_first: bool) -> tuple[int, int]:
    """Best (covered schools, total integer weight) over every subset of edges that fits the
    capacities; covered counts only when coverage comes first."""
    weights = integer_weights(edges)
    best = (0, 0)
    for size in range(len(edges) + 1):
        for subset in itertools.combinations(range(len(edges)), size):
            if not _feasible(edges, subset, capacity):
                continue
            covered = len({s for i in subset for s in (edges[i].a, edges[i].b)}) if coverage_first else 0
            best = max(best, (covered, sum(weights[i] for i in subset)))
    return best


def _value(edges: Sequence[RoundEdge], chosen: Sequence[int], coverage_first: bool) -> tuple[int, int]:
    weights = integer_weights(edges)
    covered = len({s for i in chosen for s in (edges[i].a, edges[i].b)}) if coverage_first else 0
    return covered, sum(weights[i] for i in chosen)


@pytest.mark.parametrize("coverage_first", [False, True])
@pytest.mark.parametrize("seed", range(15))
def test_min_cost_flow_is_optimal_on_bipartite_instances(seed: int, coverage_first: bool) -> None:
    edges, capacity, left = _random_instance(random.Random(seed), bipartite=True)
    found = optimal_assignment(edges, capacity, left=left, coverage_first=coverage_first)
    assert found.method == "min_cost_flow"
    assert _feasible(edges, found.chosen, capacity)
    assert _value(edges, found.chosen, coverage_first) == _brute_force(edges, capacity, coverage_first)


@pytest.mark.parametrize("coverage_first", [False, True])
@pytest.mark.parametrize("seed", range(15))
def test_milp_is_optimal_on_general_instances(seed: int, coverage_first: bool) -> None:
    edges, capacity, _ = _random_instance(random.Random(100 + seed), bipartite=False)
    found = optimal_assignment(edges, capacity, coverage_first=coverage_first)
    assert found.method == "milp"
    assert _feasible(edges, found.chosen, capacity)
    assert _value(edges, found.chosen, coverage_first) == _brute_force(edges, capacity, coverage_first)


@pytest.mark.parametrize("seed", range(10))
def test_both_solvers_agree_on_bipartite_instances(seed: int) -> None:
    edges, capacity, left = _random_instance(random.Random(200 + seed), bipartite=True)
    by_flow = optimal_assignment(edges, capacity, left=left)
    by_milp = optimal_assignment(edges, capacity)
    assert (by_flow.method, by_milp.method) == ("min_cost_flow", "milp")
    assert _value(edges, by_flow.chosen, False) == _value(edges, by_milp.chosen, False)


@pytest.mark.parametrize("seed", range(20))
def test_never_below_greedy_and_coverage_never_below_either(seed: int) -> None:
    rng = random.Random(300 + seed)
    edges, capacity, left = _random_instance(rng, bipartite=seed % 2 == 0)
    side = left if seed % 2 == 0 else None
    greedy = greedy_assignment(edges, capacity)
    best = optimal_assignment(edges, capacity, left=side)
    covering = optimal_assignment(edges, capacity, left=side, coverage_first=True)
    assert _feasible(edges, greedy.chosen, capacity)
    assert summarise(edges, best, capacity).total_weight >= summarise(edges, greedy, capacity).total_weight - 1e-9
    matched = {
        name: summarise(edges, a, capacity).matched_schools
        for name, a in [("greedy", greedy), ("best", best), ("covering", covering)]
    }
    assert matched["covering"] >= max(matched["greedy"], matched["best"])


def test_coverage_first_trades_score_for_more_matched_schools() -> None:
    # tw-a is everyone's favourite: the best total gives it my-x and leaves tw-b and my-y alone.
    edges = [
        RoundEdge("tw-a", "my-x", 0.9, 0.9, 0.9, 0.9),
        RoundEdge("tw-a", "my-y", 0.3, 0.3, 0.3, 0.3),
        RoundEdge("tw-b", "my-x", 0.3, 0.3, 0.3, 0.3),
    ]
    capacity = {"tw-a": 1, "tw-b": 1, "my-x": 1, "my-y": 1}
    for side in ({"tw-a", "tw-b"}, None):
        best = optimal_assignment(edges, capacity, left=side)
        covering = optimal_assignment(edges, capacity, left=side, coverage_first=True)
        assert best.chosen == (0,)
        assert covering.chosen == (1, 2)
        assert summarise(edges, covering, capacity).matched_schools == 4
    greedy = greedy_assignment(edges, capacity)
    assert greedy.chosen == (0,)


def test_optimal_beats_greedy_where_greedy_is_shortsighted() -> None:
    # Greedy takes the single best pair (0.9); the two 0.8 pairs it blocks are worth more.
    edges = [
        RoundEdge("tw-a", "my-x", 0.9, 0.9, 0.9, 0.9),
        RoundEdge("tw-a", "my-y", 0.8, 0.8, 0.8, 0.8),
        RoundEdge("tw-b", "my-x", 0.8, 0.8, 0.8, 0.8),
    ]
    capacity = dict.fromkeys(["tw-a", "tw-b", "my-x", "my-y"], 1)
    best = optimal_assignment(edges, capacity, left={"tw-a", "tw-b"})
    greedy = greedy_assignment(edges, capacity)
    assert best.chosen == (1, 2) and greedy.chosen == (0,)
    assert summarise(edges, best, capacity).total_score == pytest.approx(1.6)
    assert summarise(edges, greedy, capacity).total_score == pytest.approx(0.9)


def test_only_pairs_that_improve_the_total_are_used() -> None:
    # Plenty of flow could pass, but a zero-weight edge adds nothing unless coverage asks for it.
    edges = [RoundEdge("tw-a", "my-x", 0.5, 0.5, 0.5, 0.5), RoundEdge("tw-b", "my-y", 0.0, 0.0, 0.0, 0.0)]
    capacity = dict.fromkeys(["tw-a", "tw-b", "my-x", "my-y"], 3)
    assert optimal_assignment(edges, capacity, left={"tw-a", "tw-b"}).chosen == (0,)
    assert optimal_assignment(edges, capacity, left={"tw-a", "tw-b"}, coverage_first=True).chosen == (0, 1)


def test_capacity_bounds_each_school() -> None:
    edges = [RoundEdge("tw-a", f"my-{i}", 0.5 + i / 100, 0.5, 0.5, 0.5 + i / 100) for i in range(6)]
    capacity = {"tw-a": 2, **{f"my-{i}": 1 for i in range(6)}}
    chosen = optimal_assignment(edges, capacity, left={"tw-a"}).chosen
    assert chosen == (4, 5)


def test_blocking_pairs_follow_each_schools_own_fit() -> None:
    # my-y likes tw-a (0.9) more than its partner tw-b (0.2), and tw-a likes my-y (0.8) more
    # than its partner my-x (0.5): (tw-a, my-y) blocks. tw-b is happy with my-y: (tw-b, my-x) does not.
    edges = [
        RoundEdge("tw-a", "my-x", 0.6, 0.5, 0.7, 0.6),
        RoundEdge("tw-a", "my-y", 0.5, 0.8, 0.9, 0.5),
        RoundEdge("tw-b", "my-y", 0.6, 0.9, 0.2, 0.6),
        RoundEdge("tw-b", "my-x", 0.4, 0.3, 0.9, 0.4),
    ]
    capacity = dict.fromkeys(["tw-a", "tw-b", "my-x", "my-y"], 1)
    assert blocking_pairs(edges, [0, 2], capacity) == [1]
    # With a free place tw-a needs no better fit: my-y still prefers it, so the pair blocks.
    assert blocking_pairs(edges, [0, 2], {**capacity, "tw-a": 2}) == [1]
    assert blocking_pairs(edges, [1, 3], capacity) == []


def test_same_input_same_assignment() -> None:
    edges, capacity, left = _random_instance(random.Random(7), bipartite=True)
    first = [optimal_assignment(edges, capacity, left=left, coverage_first=c) for c in (False, True)]
    again = [optimal_assignment(edges, capacity, left=left, coverage_first=c) for c in (False, True)]
    assert first == again


@pytest.mark.parametrize(
    ("edges", "capacity", "message"),
    [
        ([RoundEdge("a", "b", 0.5, 0.5, 0.5, 0.5)], {"a": 1}, "capacity: no capacity given for school 'b'"),
        (
            [RoundEdge("a", "b", 0.5, 0.5, 0.5, 0.5), RoundEdge("b", "a", 0.4, 0.4, 0.4, 0.4)],
            {"a": 1, "b": 1},
            "edges: the pair a–b appears twice",
        ),
        ([RoundEdge("a", "b", 0.5, 0.5, 0.5, 0.5)], {"a": -1, "b": 1}, "capacity: a has negative"),
        ([RoundEdge("a", "b", 0.5, 0.5, 0.5, -0.1)], {"a": 1, "b": 1}, "edges: weight of a–b is negative"),
    ],
)
def test_bad_input_names_the_field(edges: list[RoundEdge], capacity: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        optimal_assignment(edges, capacity)


# --------------------------------------------------------------------------- a round through the real Matcher

REFERENCE_DAY = date(2026, 3, 2)


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    """A generated world of 240 schools, embedded with the real model, indexed with FAISS. The
    vector cache is shared with test_groups.py (same world), so one session encodes it once."""
    world = generate_world(240, seed=11)
    cache_dir = tmp_path_factory.getbasetemp() / "rounds-groups-vectors"
    embedder = ProfileEmbedder(EmbeddingSettings(show_progress=False), cache_dir=cache_dir)
    return Matcher.build(world.schools, world.partnerships, embedder, MatchSettings(reference_date=REFERENCE_DAY))


@pytest.fixture(scope="module")
def result(matcher: Matcher) -> RoundResult:
    return run_round(matcher)


def test_round_pairs_pass_every_rule_and_fit_remaining_capacity(matcher: Matcher, result: RoundResult) -> None:
    assert result.method == "min_cost_flow" and result.pairs
    ctx = matcher.context(settings=matcher.settings)
    load = Counter(s for p in result.pairs for s in (p.school_a, p.school_b))
    for pair in result.pairs:
        a, b = matcher.schools[pair.school_a], matcher.schools[pair.school_b]
        assert check_pair(a, b, ctx).ok and check_pair(b, a, ctx).ok
        assert a.country == matcher.settings.home_country != b.country
        assert pair.reasons and pair.modes
    for school_id, partners in load.items():
        assert partners <= remaining_capacity(matcher, matcher.schools[school_id])
    assert len({(p.school_a, p.school_b) for p in result.pairs}) == len(result.pairs)


def test_scope_any_rounds_pair_foreign_schools_through_the_integer_program(matcher: Matcher) -> None:
    wide = matcher.settings.model_copy(update={"scope": "any"})
    result = run_round(matcher, settings=wide)
    assert result.method == "milp" and result.scope == "any"
    assert any(matcher.schools[p.school_a].country != "TW" for p in result.pairs), "no foreign-foreign pair"
    ctx = matcher.context(settings=wide)
    for pair in result.pairs:
        assert check_pair(matcher.schools[pair.school_a], matcher.schools[pair.school_b], ctx).ok
    load = Counter(s for p in result.pairs for s in (p.school_a, p.school_b))
    assert all(n <= remaining_capacity(matcher, matcher.schools[s]) for s, n in load.items())
    assert result.comparison.optimal.total_score >= result.comparison.greedy.total_score - 1e-6


def test_round_beats_or_equals_greedy_and_explains_the_unmatched(matcher: Matcher, result: RoundResult) -> None:
    comparison = result.comparison
    assert comparison.optimal.total_score >= comparison.greedy.total_score - 1e-6
    assert comparison.optimal.pairs == len(result.pairs)
    matched = {s for p in result.pairs for s in (p.school_a, p.school_b)}
    cohort = [s.id for s in matcher.schools.values() if s.active and remaining_capacity(matcher, s) > 0]
    assert result.cohort_size == len(cohort)
    assert matched | {u.school_id for u in result.unmatched} == set(cohort)
    for unmatched in result.unmatched:
        assert unmatched.school_id not in matched
        if unmatched.reason == UnmatchedReason.CAPACITY_TAKEN:
            # Every candidate's places are full: otherwise the pair would have raised the total.
            assert unmatched.candidate_edges > 0 and unmatched.best_candidate in matched
        else:
            assert unmatched.reason == UnmatchedReason.NO_CANDIDATE and unmatched.candidate_edges == 0


def test_coverage_first_matches_at_least_as_many_schools(matcher: Matcher, result: RoundResult) -> None:
    covering = run_round(matcher, options=RoundOptions(coverage_first=True))
    assert covering.comparison.optimal.matched_schools >= result.comparison.optimal.matched_schools
    assert covering.comparison.optimal.matched_schools >= covering.comparison.greedy.matched_schools


def test_nsp_priority_never_lowers_the_number_of_new_southbound_pairs(matcher: Matcher, result: RoundResult) -> None:
    prioritised = run_round(matcher, options=RoundOptions(nsp_priority=True, nsp_bonus=0.3))

    def southbound(r: RoundResult) -> int:
        return sum(matcher.schools[p.school_b].country in NSP_COUNTRIES for p in r.pairs)

    assert southbound(prioritised) >= southbound(result)
    assert all(
        p.weight == pytest.approx(p.score + 0.3 * (matcher.schools[p.school_b].country in NSP_COUNTRIES), abs=2e-6)
        for p in prioritised.pairs
    )


def test_round_is_deterministic_and_survives_json(matcher: Matcher, result: RoundResult) -> None:
    again = run_round(matcher)
    assert again.model_dump_json() == result.model_dump_json()
    assert RoundResult.model_validate_json(result.model_dump_json()) == result


def test_a_cohort_subset_only_pairs_its_members(matcher: Matcher) -> None:
    tw = sorted(s.id for s in matcher.schools.values() if s.country == "TW" and s.active)[:15]
    abroad = sorted(s.id for s in matcher.schools.values() if s.country != "TW" and s.active)[:15]
    subset = run_round(matcher, [*tw, *abroad, "no-such-school"])
    assert {s for p in subset.pairs for s in (p.school_a, p.school_b)} <= set(tw) | set(abroad)
    assert any(u.school_id == "no-such-school" and u.reason == UnmatchedReason.UNKNOWN for u in subset.unmatched)


def test_accept_turns_pairs_into_suggested_partnerships(matcher: Matcher, result: RoundResult) -> None:
    partnerships = accept(result.pairs[:3], date(2026, 9, 1), note="round 2026-09")
    assert [(p.school_a, p.school_b) for p in partnerships] == [(p.school_a, p.school_b) for p in result.pairs[:3]]
    for partnership, pair in zip(partnerships, result.pairs, strict=False):
        assert partnership.origin == PartnershipOrigin.SUGGESTED and partnership.active
        assert partnership.modes == pair.modes and partnership.sdgs == pair.sdgs
        partnership.check_schools(matcher.schools)
    G = matcher.partnerships.copy()
    for partnership in partnerships:
        add_partnership(G, partnership)
    assert all(G.has_edge(p.school_a, p.school_b) for p in partnerships)


def test_batched_candidates_equal_one_school_at_a_time(matcher: Matcher) -> None:
    """Rounds read candidates through Matcher.candidates_many: it must be Matcher.candidates, batched,
    and its array scores must be the reference's (reciprocal score, graph factors) for every candidate."""
    settings = matcher.settings.model_copy(update={"diversity": False, "overfetch": 2.0})
    sources = [s for s in sorted(matcher.schools.values(), key=lambda s: s.id) if s.active][::6]
    batched = matcher.candidates_many(sources, 10, settings=settings)
    unbalanced = matcher.candidates_many(sources, 10, settings=settings, rebalanced=False)
    for source, (ranked, eliminated, examined), (plain, _, _) in zip(sources, batched, unbalanced, strict=True):
        one, one_eliminated, one_examined = matcher.candidates(source, 10, settings=settings)
        assert [c.school.id for c in ranked] == [c.school.id for c in one]
        assert [c.rank_score for c in ranked] == pytest.approx([c.rank_score for c in one])
        assert (eliminated, examined) == (one_eliminated, one_examined)
        assert all(c.rank_score == c.reciprocal and not c.adjustments for c in plain)
        for c in ranked:
            assert c.reciprocal == pytest.approx(c.score.reciprocal, abs=1e-9)
            assert c.rank_score == pytest.approx(c.reciprocal * math.prod(a.factor for a in c.adjustments), abs=1e-9)


def test_depth_ranks_every_eligible_candidate(matcher: Matcher) -> None:
    """By default a request ranks k × overfetch candidates; with depth, every eligible one."""
    settings = matcher.settings.model_copy(update={"diversity": False, "overfetch": 2.0})
    tw = [s for s in sorted(matcher.schools.values(), key=lambda s: s.id) if s.country == "TW" and s.active]
    source = max(tw, key=lambda s: len(matcher.candidates(s, 1, settings=settings, depth=10**6)[0]))
    shallow, _, _ = matcher.candidates(source, 2, settings=settings)
    deep, _, _ = matcher.candidates(source, 2, settings=settings, depth=10**6)
    ctx = matcher.context(settings=settings)
    eligible = {
        school_id
        for side in matcher.candidate_sides(source, settings)
        for school_id in matcher.indexes[side].ids()
        if check_pair(source, matcher.schools[school_id], ctx).ok
    }
    assert len(shallow) == int(2 * settings.overfetch) < len(deep)
    assert {c.school.id for c in deep} == eligible
    assert deep[0].rank_score >= shallow[0].rank_score


@pytest.mark.parametrize(("scope", "every"), [("home", 1), ("any", 1), ("home", 2)])
def test_batched_cohort_search_equals_retrieve_one_school_at_a_time(matcher: Matcher, scope: str, every: int) -> None:
    """A round's batched search (masks once per distinct profile, cosines as one matrix product)
    must find exactly what the one retrieval path finds for each cohort school in turn: the same
    candidates, with the same fits and reciprocal scores, partners and the school itself left out."""
    settings = matcher.settings.model_copy(update={"scope": scope, "diversity": False, "overfetch": 3.0})
    schools = sorted((s for s in matcher.schools.values() if s.active), key=lambda s: s.id)[::every]
    room = {s.id: remaining_capacity(matcher, s) for s in schools if remaining_capacity(matcher, s) > 0}
    batched = cohort_candidates(matcher, room, 5, settings)
    table = matcher.table
    found = {
        (table.ids[s], table.ids[c]): (f, b, r)
        for s, c, f, b, r in zip(
            batched.source, batched.candidate, batched.forward, batched.backward, batched.reciprocal, strict=True
        )
    }
    requests = [Request(matcher.schools[i], 5, settings, rebalanced=False, limit=5) for i in sorted(room)]
    answers = retrieve(matcher, requests, within=room)
    expected = {
        (request.source.id, c.school.id): (c.fit_forward, c.fit_backward, c.reciprocal)
        for request, answer in zip(requests, answers, strict=True)
        for c in answer.ranked
    }
    # What unmatched schools are told (rules that removed candidates, passing ones outside the cohort).
    gathered = gather_candidates(matcher, room, RoundOptions(per_school=5, overfetch=3.0), settings=settings)
    assert _why(matcher, sorted(room), gathered) == [(a.eliminated, a.outside) for a in answers]
    assert len(expected) > 2 * len(room) and set(found) == set(expected)
    for key, values in expected.items():
        assert found[key] == pytest.approx(values, abs=1e-6)  # cosines by BLAS, not FAISS: float32 rounding
    assert all(b not in matcher.partners(a) and a != b and b in room for a, b in found)
