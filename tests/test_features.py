"""Pair features: symmetric in the two schools, and blind to partnerships after the day they are fitted for."""

from __future__ import annotations

import doctest
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matching.features
from data.schema import Partnership, School
from embeddings import EmbeddingSettings, ProfileEmbedder
from evaluation.baselines import adamic_adar_l3_scores
from evaluation.splits import time_split
from graph import build_partnership_graph
from matching.arrays import reciprocal_scores
from matching.constraints import PairContext, SuggestionFilters, check_pair
from matching.engine import Matcher
from matching.features import COLUMN, FEATURE_NAMES, PairFeatures
from matching.masks import rule_masks
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings
from matching.table import ProfileTable
from tests.test_matching_masks import DAYS, FAST_PHASES
from tests.test_matching_masks import schools as random_schools


@pytest.fixture(scope="module")
def matcher(small_world: Any, tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    embedder = ProfileEmbedder(
        EmbeddingSettings(text_encoder="hashed", show_progress=False), cache_dir=tmp_path_factory.mktemp("cache")
    )
    return Matcher.build(small_world.schools, small_world.partnerships, embedder)


def test_doctests() -> None:
    assert doctest.testmod(matching.features).failed == 0


def _pairs(world: Any, count: int) -> list[tuple[str, str]]:
    home = [s for s in world.schools if s.country == "TW" and s.active]
    abroad = [s for s in world.schools if s.country != "TW" and s.active]
    return [(home[i % len(home)].id, abroad[(7 * i) % len(abroad)].id) for i in range(count)]


def test_features_of_a_pair_agree_in_both_directions(small_world: Any, matcher: Matcher) -> None:
    history = small_world.partnerships
    today = max(p.start_date for p in history) + timedelta(days=1)
    features = PairFeatures().fit(small_world.schools, history, today)
    by_id = matcher.schools
    for a, b in _pairs(small_world, 40):
        forward = features.transform(by_id[a], [by_id[b]], [matcher.score_pair(by_id[a], by_id[b])[1]])
        backward = features.transform(by_id[b], [by_id[a]], [matcher.score_pair(by_id[b], by_id[a])[1]])
        np.testing.assert_allclose(forward, backward, equal_nan=True, err_msg=f"{a} / {b}")


def test_three_path_feature_equals_the_baseline(small_world: Any, matcher: Matcher) -> None:
    history = small_world.partnerships
    today = max(p.start_date for p in history) + timedelta(days=1)
    features = PairFeatures().fit(small_world.schools, history, today)
    G = build_partnership_graph(small_world.schools, history, active_only=False)
    source = next(s for s in small_world.schools if s.country == "TW" and G.degree(s.id) >= 2)
    pool = [s for s in small_world.schools if s.country != "TW" and s.id not in G.adj[source.id]]
    rows = features.transform(source, pool, [matcher.score_pair(source, c)[1] for c in pool])
    expected = adamic_adar_l3_scores(G, source.id, [c.id for c in pool])
    np.testing.assert_allclose(rows[:, COLUMN["adamic_adar_l3"]], [expected[c.id] for c in pool])
    assert rows[:, COLUMN["paths3"]].max() > 0


def test_paths_read_locally_equal_the_whole_graph_products(small_world: Any) -> None:
    """paths(u, at) reads only u's neighbourhood and the rows asked for, yet gives the full matrix
    products' values at those rows, to the last bit."""
    history = small_world.partnerships
    features = PairFeatures().fit(small_world.schools, history, max(p.start_date for p in history) + timedelta(days=1))
    A, degree, weight = features.adjacency_, features.degree_, features.l3_weight_
    inverse_log = np.where(degree >= 2, 1 / np.log(np.maximum(degree, 2)), 0.0)
    at = np.random.default_rng(3).integers(0, A.shape[0], 300)
    for u in np.flatnonzero(degree >= 2)[:25]:
        start = np.asarray(A[u].todense()).ravel()
        expected = (A @ (start * inverse_log), A @ (A @ start), A @ ((A @ (start * weight)) * weight))
        for got, full in zip(features.paths(int(u), at), expected, strict=True):
            np.testing.assert_array_equal(got, full[at])
        for got, full in zip(features.paths(int(u)), expected, strict=True):
            np.testing.assert_array_equal(got, full)
    assert all((column == 0).all() for column in features.paths(-1, at))


def test_no_partnership_from_the_cutoff_on_reaches_any_feature(small_world: Any, matcher: Matcher) -> None:
    """The held-out part of a time split changes no feature of any pair, held-out pairs included."""
    split = time_split(small_world.partnerships, 0.2)
    seen = PairFeatures().fit(small_world.schools, split.train, split.cutoff)
    everything = PairFeatures().fit(small_world.schools, small_world.partnerships, split.cutoff)
    by_id = matcher.schools
    pairs = [p.pair for p in split.held_out][:30] + _pairs(small_world, 20)
    for a, b in pairs:
        score = matcher.score_pair(by_id[a], by_id[b])[1]
        np.testing.assert_allclose(
            seen.transform(by_id[a], [by_id[b]], [score]),
            everything.transform(by_id[a], [by_id[b]], [score]),
            equal_nan=True,
        )
    held = {p.pair for p in split.held_out} - {p.pair for p in split.train}
    A = seen.adjacency_
    assert all(A[seen.row_[a], seen.row_[b]] == 0 for a, b in held)


def test_unknown_source_and_empty_candidates(matcher: Matcher, make_school: Any) -> None:
    features = PairFeatures().fit(list(matcher.schools.values()), [], date(2030, 1, 1))
    assert features.transform(make_school(id="tw-new"), [], []).shape == (0, len(FEATURE_NAMES))
    source = make_school(id="tw-new")
    candidate = next(s for s in matcher.schools.values() if s.country != "TW")
    row = features.transform(source, [candidate], [matcher.score_pair(source, candidate)[1]])
    assert row[0, COLUMN["paths3"]] == 0 and row[0, COLUMN["degree_home"]] == 0


def test_feature_names_are_unique() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=FAST_PHASES)
@given(world=random_schools(14), data=st.data(), day=st.sampled_from(DAYS))
def test_feature_rows_from_the_table_equal_the_reference(world: list[School], data: st.DataObject, day: date) -> None:
    """transform_rows (table columns, array fit components) == transform (profiles, reference scores)."""
    world = [
        s.model_copy(update={"latitude": data.draw(st.floats(-40, 40)), "longitude": data.draw(st.floats(90, 180))})
        if data.draw(st.booleans())
        else s
        for s in world
    ]
    ids = [s.id for s in world]
    edges = data.draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids), st.integers(1, 900)), max_size=12))
    history = [
        Partnership(school_a=a, school_b=b, start_date=day - timedelta(days=age)) for a, b, age in edges if a != b
    ]
    features = PairFeatures().fit(world[:-2], history, day)  # the last two are unknown to the history
    match = MatchSettings(reference_date=day, scope="any")
    partners: dict[str, set[str]] = {i: set() for i in ids}
    ctx = PairContext(match, day, lambda s: partners[s], lambda s: 0, SuggestionFilters())
    table = ProfileTable.build(world, "TW")
    for source in world:
        row = table.encode(source)
        masks = rule_masks(table, row, match, day, SuggestionFilters(), [])
        rows = np.flatnonzero(masks.passing())
        if len(rows) == 0:
            continue
        similarity = np.linspace(-0.2, 0.9, len(rows))
        scored = reciprocal_scores(table, row, rows, similarity, masks, match)
        got = features.transform_rows(table, row, rows, similarity, scored)
        candidates = [world[r] for r in rows]
        reference = [
            reciprocal_score(source, c, check_pair(source, c, ctx), similarity[n], match)
            for n, c in enumerate(candidates)
        ]
        np.testing.assert_allclose(got, features.transform(source, candidates, reference), atol=1e-9, equal_nan=True)
