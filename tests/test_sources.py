"""Candidate sources: the graph source is the 3-path baseline's score, the region source follows
what the source's region partnered with, the wish source holds the wished countries; the engine
records which sources found each candidate and says so in both languages."""

from __future__ import annotations

import doctest
from collections import Counter
from datetime import date

import numpy as np
import pytest

import matching.sources
from data.generator import ProgrammeProcess, World, generate_world
from embeddings import EmbeddingSettings, ProfileEmbedder
from evaluation.baselines import adamic_adar_l3_scores
from graph import build_partnership_graph
from matching.engine import Matcher
from matching.features import PairFeatures
from matching.sources import found_via_reason, source_scores


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(600, seed=5, process=ProgrammeProcess())


@pytest.fixture(scope="module")
def features(world: World) -> PairFeatures:
    return PairFeatures().fit(world.schools, world.partnerships, date(2030, 1, 1))


@pytest.fixture(scope="module")
def matcher(world: World, tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    embedder = ProfileEmbedder(
        EmbeddingSettings(text_encoder="hashed", show_progress=False), cache_dir=tmp_path_factory.mktemp("cache")
    )
    return Matcher.build(world.schools, world.partnerships, embedder)


def test_doctests() -> None:
    assert doctest.testmod(matching.sources).failed == 0


def test_graph_source_is_the_three_path_score(world: World, features: PairFeatures, matcher: Matcher) -> None:
    G = build_partnership_graph(world.schools, world.partnerships, active_only=False)
    table = matcher.table
    checked = 0
    for source in (s for s in world.schools if s.country == "TW" and G.degree(s.id) >= 2):
        others = [s.id for s in world.schools if s.id not in G.adj[source.id] and s.id != source.id]
        rows = np.array([table.row_of[i] for i in others])
        got = source_scores(features, table, table.encode(source), rows)["graph"]
        expected = adamic_adar_l3_scores(G, source.id, others)
        np.testing.assert_allclose(got, [expected[i] for i in others], atol=1e-9)
        checked += got.max() > 0
    assert checked >= 5


def test_region_source_follows_the_regions_history(world: World, features: PairFeatures, matcher: Matcher) -> None:
    by_id = {s.id: s for s in world.schools}
    table = matcher.table
    source = next(s for s in world.schools if s.country == "TW" and s.region)
    partnered = Counter(
        by_id[p.school_b].country for p in world.partnerships if by_id[p.school_a].region == source.region
    )
    foreign = np.array([table.row_of[s.id] for s in world.schools if s.country != "TW"])
    region = source_scores(features, table, table.encode(source), foreign)["region"]
    found = foreign[np.argsort(-region, kind="stable")[:10]]
    assert (region > 0).sum() >= 10 and {table.schools[r].country for r in found} <= set(partnered)


def test_wish_source_and_found_via(world: World, features: PairFeatures, matcher: Matcher) -> None:
    table = matcher.table
    source = next(s for s in world.schools if s.country == "TW" and len(s.target_countries) >= 1)
    rows = np.arange(len(table))
    wish = source_scores(features, table, table.encode(source), rows)["wish"]
    assert {table.schools[r].country for r in np.flatnonzero(wish)} == set(source.target_countries)
    via = matching.sources.found_via({"wish": wish}, np.zeros(len(rows)), 0)
    assert all(("wish" in v) == (w > 0) for v, w in zip(via, wish, strict=True))
    reason = found_via_reason(["vector", "graph"])
    assert reason.text_en == "Found via: similar profile; partner of your partners' peers"
    assert reason.text_zh == "推薦來源：相似的學校簡介；夥伴的夥伴所合作的學校"
