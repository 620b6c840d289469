"""The request path's faster computations give exactly what the plain formulas they replace give."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graph
from data.generator import PartnershipProcess, generate_world
from data.schema import Partnership, School
from embeddings import EmbeddingSettings, HashedTextEmbedder
from matching.arrays import reciprocal_scores, swap_visits
from matching.constraints import Rule, SuggestionFilters
from matching.diversify import mmr, pairwise_similarity
from matching.engine import Matcher
from matching.masks import VIRTUAL, RuleMasks, pack, pair_modes_bits, rows_of, rule_masks, unpack
from matching.rebalance import FactorArrays, SourceSignals
from matching.retrieve import Eligible, Request, _examined, explain_together, retrieve
from matching.scoring import FULL_OVERLAP_HOURS
from matching.settings import FitWeights, MatchSettings, RebalanceWeights
from matching.table import FOREIGN_SIDE, HOME_SIDE, ProfileTable, Row, popcount
from tests.test_matching_masks import DAYS, FAST_PHASES, schools


def plain_mmr(scores: list[float], similarity: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR as first written: every gain recomputed from the running max similarity at each pick."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    relevance = np.asarray(scores, dtype=np.float64)
    chosen = [int(np.argmax(relevance))]
    max_sim = similarity[chosen[0]].astype(np.float64).copy()
    available = np.ones(n, dtype=bool)
    available[chosen[0]] = False
    while len(chosen) < min(k, n):
        gain = lam * relevance - (1 - lam) * max_sim
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, similarity[best])
    return chosen


@pytest.mark.parametrize("seed", range(300))
def test_mmr_picks_what_the_plain_formula_picks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 40)), int(rng.integers(0, 15))
    lam = float(rng.choice([0.0, 0.3, 0.95, 1.0, rng.random()]))
    scores = np.round(rng.random(n), int(rng.integers(1, 4))).tolist()  # rounded: many ties
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = pairwise_similarity(list(rng.choice(["MY", "VN", "TH"], n)), vectors)
    assert mmr(scores, similarity, k, lam) == plain_mmr(scores, similarity, k, lam)


def plain_eliminated(violations: dict[Rule, np.ndarray], examined: np.ndarray) -> Counter[Rule]:
    """The per-rule counts as first written: one full-length mask operation per rule."""
    full = violations[Rule.AT_CAPACITY] & examined
    open_ = examined & ~full
    counts: Counter[Rule] = Counter()
    for rule, mask in violations.items():
        n = int(np.count_nonzero(full if rule == Rule.AT_CAPACITY else mask & open_))
        if n:
            counts[rule] = n
    return counts


def plain_broken_among(violations: dict[Rule, np.ndarray], among: np.ndarray, ignore: tuple[Rule, ...]) -> object:
    """broken_among as first written: a scan of the boolean masks, rule by rule."""
    rules = [rule for rule in Rule if rule in violations and rule not in ignore]
    broken = np.zeros(len(among), dtype=bool)
    firsts = []
    for order, rule in enumerate(rules):
        hits = violations[rule] & among
        broken |= hits
        n = int(np.count_nonzero(hits))
        if n:
            firsts.append((int(hits.argmax()), order, rule, n))
    if (among & ~broken).any():
        return None
    return Counter({rule.value: n for _, _, rule, n in sorted(firsts)})


@pytest.mark.parametrize("seed", range(60))
def test_packed_masks_count_and_combine_as_the_boolean_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 63, 64, 65, 200, 1000]))
    violations = {rule: rng.random(n) < rng.choice([0.0, 0.05, 0.5, 1.0]) for rule in Rule}
    shared = {rule: (mask, pack(mask)) for rule, mask in violations.items() if rng.random() < 0.5}
    stale = next(iter(shared), None)  # a copy that replaces a shared mask must not read its old words
    if stale is not None:
        violations[stale] = rng.random(n) < 0.3
    masks = RuleMasks(violations, np.zeros(n), np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8), shared)
    examined = rng.random(n) < 0.7
    broken = np.logical_or.reduce(list(violations.values()))
    assert np.array_equal(masks.broken, broken) and np.array_equal(masks.passing(), ~broken)
    found, plain = masks.eliminated(examined), plain_eliminated(violations, examined)
    assert found == plain and list(found) == list(plain)  # same counts, in the same order
    assert np.array_equal(unpack(pack(examined), n), examined)
    for ignore in [(), (Rule.SAME_SCHOOL, Rule.FILTERED), tuple(Rule)]:
        for among in (examined, rng.random(n) < 0.02, np.zeros(n, dtype=bool)):
            got, plain_ = masks.broken_among(among, ignore), plain_broken_among(violations, among, ignore)
            assert got == plain_ and (got is None or list(got) == list(plain_))


def plain_reciprocal_scores(
    table: ProfileTable, source: Row, rows: np.ndarray, similarity: np.ndarray, masks: RuleMasks, match: MatchSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The array scores as first written: each component on its own, each weighted mean a sum of
    seven products: (forward, backward, reciprocal, forward components, backward components)."""
    school = source.school
    country = table["country"][rows]
    modes, n_modes = table["modes"][rows], table["n_modes"][rows]
    sdgs, n_sdgs = table["sdgs"][rows], table["n_sdgs"][rows]
    wished, n_wished = table["wished"][rows], table["n_wished"][rows]
    shared = table["languages_exchange"][rows] & source.languages_exchange
    has_shared = shared.any(axis=1)
    overlap, usable = masks.overlap[rows], masks.usable[rows]
    same_level = np.where((table["levels"][rows] & source.levels) != 0, 1.0, 0.5)
    embedding = np.clip(similarity, 0.0, 1.0)
    in_shared_hours = overlap >= match.min_overlap_hours
    backward_usable = np.where(in_shared_hours, modes & source.modes & VIRTUAL, 0).astype(np.uint8)
    backward_usable |= swap_visits(pair_modes_bits(source.modes, modes) & ~np.uint8(VIRTUAL))
    shared_sdgs = popcount(sdgs & np.uint32(source.sdgs))

    def has_code(bitset: np.ndarray, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        safe = np.maximum(codes, 0)
        words = bitset[..., safe // 64] if bitset.ndim == 1 else bitset[np.arange(len(bitset)), safe // 64]
        found = (words >> (safe % 64).astype(np.uint64)) & np.uint64(1)
        return (found != 0) & (codes >= 0)

    def preference(wanted: int | np.ndarray, got: np.ndarray) -> np.ndarray:
        return np.where(wanted == 0, 0.5, got / np.maximum(wanted, 1))

    def per_candidate(components: dict[str, np.ndarray | float]) -> dict[str, np.ndarray]:
        return {
            k: np.asarray(c, dtype=float) if np.ndim(c) else np.full(len(rows), c, float) for k, c in components.items()
        }

    def weighted(components: dict[str, np.ndarray], weights: FitWeights) -> np.ndarray:
        weight_of = dict(weights)
        total = sum(weight_of.values())
        if not total:
            return np.zeros(len(rows))
        return sum(weight_of[name] * c for name, c in components.items()) / total

    forward_components = per_candidate(
        {
            "target_country": preference(len(school.target_countries), has_code(source.wished, country)),
            "sdg": preference(len(school.sdgs), shared_sdgs),
            "language": np.where(has_shared, 0.6 + 0.4 * (shared & source.languages_instruction).any(axis=1), 0.0),
            "mode": (
                popcount(np.uint8(source.modes) & usable) / len(school.exchange_modes)
                if school.exchange_modes
                else np.zeros(len(rows))
            ),
            "level": same_level,
            "timezone": np.minimum(overlap / FULL_OVERLAP_HOURS, 1.0) if source.modes & VIRTUAL else 1.0,
            "embedding": embedding,
        }
    )
    backward_components = per_candidate(
        {
            "target_country": preference(n_wished, has_code(wished, np.full(len(rows), source.country))),
            "sdg": preference(n_sdgs, shared_sdgs),
            "language": np.where(
                has_shared, 0.6 + 0.4 * (shared & table["languages_instruction"][rows]).any(axis=1), 0.0
            ),
            "mode": np.where(n_modes == 0, 0.0, popcount(modes & backward_usable) / np.maximum(n_modes, 1)),
            "level": same_level,
            "timezone": np.where(modes & VIRTUAL, np.minimum(overlap / FULL_OVERLAP_HOURS, 1.0), 1.0),
            "embedding": embedding,
        }
    )
    forward, backward = weighted(forward_components, match.fit), weighted(backward_components, match.fit)
    total = forward + backward
    reciprocal = np.where(total > 0, 2 * forward * backward / np.where(total > 0, total, 1.0), 0.0)
    return forward, backward, reciprocal, forward_components, backward_components


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=FAST_PHASES)
@given(
    world=schools(14),
    day=st.sampled_from(DAYS),
    min_overlap=st.sampled_from([0.0, 1.0, 3.0]),
    weights=st.sampled_from(
        [
            FitWeights(),
            FitWeights(sdg=0.0, embedding=3.3, level=0.7),
            FitWeights(**dict.fromkeys(FitWeights.model_fields, 0.0)),
        ]
    ),
    seed=st.integers(0, 2**16),
)
def test_array_scores_equal_the_plain_formulas_to_the_last_bit(
    world: list[School], day: date, min_overlap: float, weights: FitWeights, seed: int
) -> None:
    match = MatchSettings(min_overlap_hours=min_overlap, reference_date=day, fit=weights)
    table = ProfileTable.build(world, "TW")
    rng = np.random.default_rng(seed)
    for source in world:
        row = table.encode(source)
        masks = rule_masks(table, row, match, day, SuggestionFilters(), [])
        rows = np.flatnonzero(rng.random(len(table)) < 0.8)
        similarity = rng.uniform(-0.3, 1.1, len(rows)).astype(rng.choice([np.float32, np.float64]))
        got = reciprocal_scores(table, row, rows, similarity, masks, match)
        forward, backward, reciprocal, forward_components, backward_components = plain_reciprocal_scores(
            table, row, rows, similarity, masks, match
        )
        for new, old in [(got.forward, forward), (got.backward, backward), (got.reciprocal, reciprocal)]:
            assert new.dtype == old.dtype and new.tobytes() == old.tobytes()
        for new_parts, old_parts in [
            (got.forward_components, forward_components),
            (got.backward_components, backward_components),
        ]:
            assert list(new_parts) == list(old_parts)
            for name, old in old_parts.items():
                assert new_parts[name].dtype == old.dtype and new_parts[name].tobytes() == old.tobytes(), name
        together = got.pair_scores(np.arange(len(rows)))
        for n, pair in enumerate(together):
            assert got.pair_scores(np.array([n])) == [pair]  # many at once: each as on its own
            assert pair.forward.components == {name: float(c[n]) for name, c in forward_components.items()}
            assert pair.backward.components == {name: float(c[n]) for name, c in backward_components.items()}
            assert list(pair.forward.components) == list(forward_components)
            assert (pair.forward.value, pair.backward.value, pair.reciprocal) == (
                forward[n],
                backward[n],
                reciprocal[n],
            )


@pytest.mark.parametrize("n", [1, 80, 8000, 100_000])
def test_a_sum_down_the_components_adds_them_one_after_the_other(n: int) -> None:
    """What the array scores rely on: np.add.reduce over the leading axis adds its rows in order
    (no pairwise regrouping), as the reference's sum of products does."""
    rng = np.random.default_rng(n)
    parts = rng.random((7, 2, n)) * rng.choice([1e-8, 1.0, 1e8], (7, 1, 1))
    weights = rng.random(7) * 3
    plain = sum(weights[i] * parts[i] for i in range(7))
    assert np.add.reduce(weights[:, None, None] * parts, axis=0).tobytes() == plain.tobytes()


@pytest.mark.parametrize("seed", range(5))
def test_load_and_record_factors_worked_out_per_table_equal_those_of_the_gathered_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    world = generate_world(120, seed=seed).schools
    ids = [s.id for s in world]
    pending = {i: int(rng.integers(0, 3)) for i in rng.choice(ids, 40)}
    history = {}
    for i in rng.choice(ids, 40):
        received = int(rng.integers(0, 7))
        expired = int(rng.integers(0, received + 1))
        history[i] = graph.InvitationCounts(received, int(rng.integers(0, received - expired + 1)), expired)
    table = ProfileTable.build(world, "TW").with_partners({i: int(rng.integers(0, 4)) for i in ids})
    table = table.with_invitations(pending, history)
    weights = RebalanceWeights(saturation_threshold=float(rng.choice([0.5, 0.75, 1.0])), responsiveness_floor=0.2)
    rows = rng.choice(len(table), 50, replace=False)
    factors = FactorArrays(table, rows, weights, SourceSignals({}, Counter())).factors
    load = graph.load_of(table["capacity"][rows], table["partners"][rows], table["pending"][rows])
    saturation = np.asarray(graph.saturation(load, weights.saturation_threshold), dtype=float)
    answered, expired = table["answered"][rows], table["expired"][rows]
    responsiveness = np.asarray(graph.responsiveness(answered, expired, floor=0.2), dtype=float)
    assert factors["saturation"].tobytes() == saturation.tobytes()
    assert factors["responsiveness"].tobytes() == responsiveness.tobytes()


def plain_bridges(G: nx.Graph, source: str, home: str, limit: int) -> dict[str, graph.BridgePath]:
    """cluster_bridges as its docstring says it, through networkx's views and the public helpers."""

    def followed(node: str) -> list[str]:
        active = graph.active_partners(G, node)
        if len(active) > limit:
            active = sorted(active, key=lambda other: (G.edges[node, other]["start_date"], other))[:limit]
        return sorted(active)

    country = G.nodes[source]["country"]
    mine, covered = set(graph.active_partners(G, source)), set(graph.partner_countries(G, source))
    found: dict[str, graph.BridgePath] = {}
    for partner in sorted(mine):
        for peer in followed(partner):
            if peer == source or (G.nodes[peer]["country"] == home) != (country == home):
                continue
            for candidate in followed(peer):
                there = G.nodes[candidate]["country"]
                new = candidate != source and candidate not in mine and G.nodes[candidate]["active"]
                new = new and there != country and (country != home or there not in covered)
                if new and candidate not in found:
                    found[candidate] = graph.BridgePath(
                        candidate, there, peer, G.nodes[peer]["country"], partner, G.nodes[partner]["country"]
                    )
    return found


@pytest.mark.parametrize(("seed", "active_only", "limit"), [(1, True, 50), (2, False, 50), (3, True, 2), (4, False, 1)])
def test_cluster_bridges_equal_the_plain_walk(seed: int, active_only: bool, limit: int) -> None:
    world = generate_world(300, seed=seed)
    G = graph.build_partnership_graph(world.schools, world.partnerships, active_only=active_only)
    for source in sorted(G)[::3]:
        found = graph.cluster_bridges(G, source, home_country="TW", max_partners=limit)
        plain = plain_bridges(G, source, "TW", limit)
        assert list(found.items()) == list(plain.items()), source


def same_row(a: Row, b: Row) -> bool:
    """Every field equal, arrays to the byte and in the same type, plain numbers as plain ints."""
    for name in Row.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype and x.tobytes() == y.tobytes()):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


@pytest.mark.parametrize("seed", range(3))
def test_a_stored_profile_read_back_from_its_row_encodes_as_the_profile_itself(seed: int) -> None:
    world = generate_world(150, seed=seed).schools
    table = ProfileTable.build(world[:100], "TW")
    rng = np.random.default_rng(seed)
    for school in world[100:]:  # new profiles, some with values the vocabularies grow by
        table = table.with_school(school, None)
    for n in rng.choice(100, 20, replace=False):  # edited profiles
        school = world[int(n)]
        edited = school.model_copy(update={"languages_exchange": [*school.languages_exchange, f"x{n}"]})
        table = table.with_school(edited, None)
    for school in table.schools:
        assert same_row(table.encode(school), table._encoded(school)), school.id
    stranger = world[0].model_copy()  # equal, not the stored object: encoded from its fields
    assert same_row(table.encode(stranger), table._encoded(stranger))


@pytest.mark.parametrize("seed", range(3))
def test_the_words_rule_masks_hand_over_are_their_masks_packed(seed: int) -> None:
    world = generate_world(200, seed=seed)
    G = graph.build_partnership_graph(world.schools, world.partnerships)
    table = ProfileTable.build(world.schools, "TW")
    for settings_ in (MatchSettings(), MatchSettings(scope="any", min_overlap_hours=3.0)):
        for school in world.schools[::7]:
            partners = [table.row_of[p] for p in G.adj[school.id]]
            masks = rule_masks(table, table.encode(school), settings_, date(2026, 3, 9), SuggestionFilters(), partners)
            assert set(masks.packed) >= set(Rule) - {Rule.FILTERED} or Rule.FILTERED in masks.packed
            for rule, (mask, words) in masks.packed.items():
                assert mask is masks.violations[rule] and words.tobytes() == pack(mask).tobytes(), rule


def test_a_sources_graph_signals_are_walked_once_per_table_and_anew_after_a_partnership(tmp_path: Path) -> None:
    world = generate_world(200, seed=5)
    embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=tmp_path)
    matcher = Matcher.build(world.schools, world.partnerships, embedder)
    weights, G = matcher.settings.rebalance, matcher.partnerships
    source = next(s for s in world.schools if s.country == "TW" and len(matcher.partners(s.id)) >= 2)
    first = SourceSignals.of(G, source, "TW", weights, matcher.table)
    assert SourceSignals.of(G, source, "TW", weights, matcher.table) is first  # walked once
    assert first == SourceSignals.of(G, source, "TW", weights)
    assert SourceSignals.of(nx.Graph(G), source, "TW", weights, matcher.table) is not first  # another graph
    covered = {matcher.schools[p].country for p in matcher.partners(source.id)}
    partner = next(s for s in world.schools if s.country not in covered | {"TW"} and s.active)
    matcher.add_partnership(Partnership(school_a=source.id, school_b=partner.id, start_date=date(2026, 1, 5)))
    after = SourceSignals.of(G, source, "TW", weights, matcher.table)
    assert after is not first and after == SourceSignals.of(G, source, "TW", weights)
    assert after != first  # a partner in a new country: bridges there no longer open one


@pytest.mark.parametrize("seed", range(40))
def test_rows_read_from_the_words_are_the_rows_of_the_unpacked_mask(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 63, 64, 65, 640, 6400]))
    mask = rng.random(n) < rng.choice([0.0, 0.001, 0.01, 0.2, 1.0])
    words = pack(mask)
    if rng.random() < 0.5:
        words = ~words & pack(np.ones(n, dtype=bool))  # the complement, tail bits clear
        mask = ~mask
    assert np.array_equal(rows_of(words, n), np.flatnonzero(mask))
    assert np.array_equal(rows_of(~words, n), np.flatnonzero(~mask))  # tail bits set: rows past n left out


def test_a_requests_words_and_label_masks_equal_the_boolean_masks_they_replace(tmp_path: Path) -> None:
    """What a request hands FAISS (the eligible labels per side) and what it reports (examined rows,
    eliminations) equal the boolean-mask formulas, before and after live changes move labels."""
    world = generate_world(300, seed=11)
    embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=tmp_path)
    matcher = Matcher.build(world.schools, world.partnerships, embedder, index_kind="hnsw")
    day = date(2026, 3, 9)
    for step in range(3):
        table = matcher.table
        for settings_ in (matcher.settings, MatchSettings(scope="any")):
            for school in world.schools[step::9]:
                school = matcher.schools[school.id]
                partners = [table.row_of[p] for p in matcher.partners(school.id)]
                masks = rule_masks(table, table.encode(school), settings_, day, SuggestionFilters(), partners)
                sides = matcher.candidate_sides(school, settings_)
                examined = table.indexed_among(sides) & ~masks.violations[Rule.SAME_SCHOOL]
                words = _examined(table, sides, table.row_of.get(school.id))
                assert np.array_equal(unpack(words, len(table)), examined)
                assert masks.eliminated_among(words) == masks.eliminated(examined)
                passing = examined & masks.passing()
                eligible = Eligible(table, words & masks.passing_words())
                assert len(eligible) == np.count_nonzero(passing)
                assert np.array_equal(eligible.rows, np.flatnonzero(passing))
                for side, name in ((HOME_SIDE, "home"), (FOREIGN_SIDE, "foreign")):
                    mine = eligible.rows[table["side"][eligible.rows] == side]
                    plain = np.zeros(matcher.indexes[name].label_space(), dtype=bool)
                    plain[table["label"][mine]] = True
                    allowed, count = eligible.on_labels(side)
                    assert count == len(mine) == eligible.on_side(side)
                    padded = np.zeros(len(plain), dtype=bool)
                    padded[: len(allowed)] = allowed
                    assert np.array_equal(padded, plain)
        # live changes: an edited profile takes a new label, a deactivated one leaves its index
        edited = world.schools[step]
        matcher.upsert_school(edited.model_copy(update={"description": f"{edited.description} edited {step}"}))
        gone = world.schools[50 + step]
        matcher.upsert_school(gone.model_copy(update={"active": False}))


def test_candidates_explained_together_equal_those_explained_one_by_one(tmp_path: Path) -> None:
    world = generate_world(300, seed=3, process=PartnershipProcess(partnerships_per_taiwanese_school=6.6))
    embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=tmp_path)
    matcher = Matcher.build(world.schools, world.partnerships, embedder)
    sources = [s for s in world.schools if s.active][::15]
    explained = 0
    for source in sources:
        request = Request(source, 10, matcher.settings, limit=30)
        [together], [alone] = retrieve(matcher, [request]), retrieve(matcher, [request])
        explain_together(together.ranked[::2])
        assert all("_explained" in c.__dict__ for c in together.ranked[::2])
        for a, b in zip(together.ranked, alone.ranked, strict=True):
            assert (a.check, a.score, a.adjustments) == (b.check, b.score, b.adjustments)
            explained += len(a.adjustments)
    assert explained > 100  # graph factors to read: the world's partnerships are busy


def test_arrays_a_live_change_hands_on_equal_those_worked_out_afresh(tmp_path: Path) -> None:
    """After each kind of write, the answers read from the arrays the new table was handed equal
    those of a table that works every array out again, and so do the arrays themselves."""
    world = generate_world(300, seed=8, process=PartnershipProcess(partnerships_per_taiwanese_school=6.6))
    embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=tmp_path)
    matcher = Matcher.build(world.schools, world.partnerships, embedder, index_kind="hnsw")
    sources = [s.id for s in world.schools if s.active][::7]

    def answers(m: Matcher) -> list[str]:
        return [m.suggest(source, k=10).model_dump_json() for source in sources]

    tw, abroad = (next(s for s in world.schools if s.active and (s.country == "TW") == home) for home in (True, False))
    partnership = Partnership(school_a=tw.id, school_b=abroad.id, start_date=date(2026, 1, 5))
    edited = matcher.schools[sources[3]]
    writes = [
        lambda: matcher.add_partnership(partnership),
        lambda: matcher.set_invitations({sources[1]: 2, sources[2]: 1}, {sources[1]: graph.InvitationCounts(4, 1, 3)}),
        lambda: matcher.upsert_school(edited.model_copy(update={"capacity": edited.capacity + 3, "sdgs": [4, 13]})),
        lambda: matcher.upsert_school(matcher.schools[sources[5]].model_copy(update={"active": False})),
        lambda: matcher.end_partnership(partnership.model_copy(update={"end_date": date(2026, 2, 1)})),
    ]
    answers(matcher)  # every array the requests read, worked out on the first table
    handed_on = 0
    for write in writes:
        write()
        handed = dict(matcher.table._derived)
        handed_on += len(handed)
        got = answers(matcher)
        afresh = replace(matcher, table=replace(matcher.table, _derived={}, _memo={}))
        assert got == answers(afresh)
        for key, (value, _) in handed.items():
            made = afresh.table._derived.get(key)
            if made is not None:
                arrays = [v if isinstance(v, tuple) else (v,) for v in (value, made[0])]
                for a, b in zip(*arrays, strict=True):
                    assert a.dtype == b.dtype and np.array_equal(a, b), key
    assert handed_on > 20  # the writes did hand arrays on
