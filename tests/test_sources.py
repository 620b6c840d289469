"""Candidate sources: the graph source is the 3-path baseline's order, the region source follows
what the source's region partnered with, the wish source holds the wished countries, merge records all."""

from __future__ import annotations

import doctest
from collections import Counter
from datetime import date
from typing import Any

import pytest

import matching.sources
from data.generator import ProgrammeProcess, World, generate_world
from evaluation.baselines import adamic_adar_l3_scores
from graph import build_partnership_graph
from matching.features import PairFeatures
from matching.sources import graph_candidates, merge, region_candidates, wished_candidates


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(600, seed=5, process=ProgrammeProcess())


@pytest.fixture(scope="module")
def features(world: World) -> PairFeatures:
    return PairFeatures().fit(world.schools, world.partnerships, date(2030, 1, 1))


def test_doctests() -> None:
    assert doctest.testmod(matching.sources).failed == 0


def test_graph_source_is_the_three_path_ranking(world: World, features: PairFeatures) -> None:
    G = build_partnership_graph(world.schools, world.partnerships, active_only=False)
    checked = 0
    for source in (s for s in world.schools if s.country == "TW"):
        found = graph_candidates(features, source, 10)
        if not found:
            continue
        scores = adamic_adar_l3_scores(G, source.id, [s.id for s in world.schools if s.id not in G.adj[source.id]])
        assert all(scores[i] > 0 for i in found)
        assert [round(scores[i], 9) for i in found] == sorted((round(scores[i], 9) for i in found), reverse=True)
        checked += 1
    assert checked >= 5


def test_region_source_follows_the_regions_history(world: World, features: PairFeatures) -> None:
    by_id = {s.id: s for s in world.schools}
    source = next(s for s in world.schools if s.country == "TW" and s.region)
    partnered = Counter(
        by_id[p.school_b].country for p in world.partnerships if by_id[p.school_a].region == source.region
    )
    found = region_candidates(features, source, 30)
    assert found and all(by_id[i].country != "TW" for i in found)
    assert {by_id[i].country for i in found[:10]} <= set(partnered)


def test_wish_source_and_found_via(world: World, make_school: Any) -> None:
    source = make_school(target_countries=["MY", "ID"])
    wished = wished_candidates(world.schools, source)
    assert wished and all(s.country in {"MY", "ID"} for s in world.schools if s.id in set(wished))
    via = merge({"vector": wished[:3], "wish": wished})
    assert via[wished[0]] == ["vector", "wish"] and via[wished[-1]] == ["wish"]
