"""Explanations read from the request's arrays equal the readable reference functions' on random worlds.

A suggestion explains its candidates from what retrieval already computed (rule masks, fit
component arrays, graph factor arrays) instead of checking and scoring each pair again; these tests
hold every part of that explanation, and the hint about wished countries, to the reference
(``check_pair``, ``reciprocal_score``, ``Rebalancer``, ``no_wished_candidate_hint``).
"""

from __future__ import annotations

import math
import random
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import graph
from data.generator import generate_world
from data.schema import School
from embeddings import EmbeddingSettings, HashedTextEmbedder
from matching import explain as explanations
from matching import rebalance as rebalance_module
from matching import wishes
from matching.constraints import check_pair
from matching.engine import Matcher
from matching.explain import explain
from matching.rebalance import Rebalancer
from matching.retrieve import Request, retrieve
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings, RebalanceWeights
from matching.suggest import unmet_wish

EVERY_FACTOR = RebalanceWeights(
    saturation_threshold=0.5, no_partner_boost=0.15, remote_boost=0.10, diversity_decay=0.7, exposure_strength=0.5
)
"""Weights under which every graph factor can show (several are off by default)."""


def busy_matcher(seed: int, scope: str, day: date, tmp: Path) -> Matcher:
    """A generated world with open invitations, an invitation record and a few lists already shown."""
    world = generate_world(160, seed=seed)
    match = MatchSettings(reference_date=day, scope=scope, rebalance=EVERY_FACTOR)
    embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=tmp)
    matcher = Matcher.build(world.schools, world.partnerships, embedder, match)
    rng = random.Random(seed)
    ids = sorted(matcher.schools)
    pending = {i: rng.randint(0, 2) for i in rng.sample(ids, 40)}
    history = {}
    for i in rng.sample(ids, 40):
        received = rng.randint(0, 6)
        expired = rng.randint(0, received)
        history[i] = graph.InvitationCounts(received, rng.randint(0, received - expired), expired)
    matcher.set_invitations(pending, history)
    matcher.exposure = graph.ExposureLedger(24.0, clock=lambda: 3600.0)  # no decay between answer and reference
    for source in rng.sample(list(matcher.schools.values()), 12):
        matcher.record_shown(matcher.suggest(source, k=10))
    return matcher


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=(Phase.generate,))
@given(
    seed=st.integers(0, 10_000),
    scope=st.sampled_from(["home", "any"]),
    day=st.sampled_from([date(2026, 3, 7), date(2026, 4, 6), date(2026, 10, 3)]),
)
def test_array_explanations_equal_the_reference(
    tmp_path_factory: pytest.TempPathFactory, seed: int, scope: str, day: date
) -> None:
    matcher = busy_matcher(seed, scope, day, tmp_path_factory.mktemp("cache"))
    match = matcher.settings
    ctx = matcher.context(settings=match)
    sources = list(matcher.schools.values())
    found = retrieve(matcher, [Request(source, 10, match, depth=10_000) for source in sources])
    explained = 0
    for source, answer in zip(sources, found, strict=True):
        reference = Rebalancer(
            matcher.partnerships,
            source,
            weights=match.rebalance,
            home_country=match.home_country,
            names=matcher.name_of,
            pending=matcher.pending,
            history=matcher.history,
            exposure=matcher.exposure_lookup(),
        )
        for c in answer.ranked:
            check = check_pair(source, c.school, ctx)
            assert c.check == check, (source.id, c.school.id)
            score = reciprocal_score(source, c.school, check, c.similarity, match)
            assert c.score.similarity == pytest.approx(score.similarity, abs=1e-12)
            assert c.score.reciprocal == pytest.approx(score.reciprocal, abs=1e-9)
            for got, want in ((c.score.forward, score.forward), (c.score.backward, score.backward)):
                assert got.value == pytest.approx(want.value, abs=1e-9)
                assert got.components == pytest.approx(want.components, abs=1e-9)
            assert c.adjustments == reference(c.school), (source.id, c.school.id)
            product = math.prod(a.factor for a in c.adjustments)
            assert c.rank_score == pytest.approx(c.reciprocal * product, rel=1e-9)
            explained += 1

        def verdict(school: School, source: School = source) -> list[str]:
            return [rule.value for rule in check_pair(source, school, ctx).violations]

        hint = wishes.no_wished_candidate_hint(source, matcher.schools.values(), verdict)
        assert unmet_wish(source, answer.table, answer.masks) == hint, source.id

    assert explained > 100  # the worlds are busy enough to explain many pairs


def test_reasons_from_the_caches_equal_freshly_built_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """explain() shares one Reason per distinct fact set and weight: every list's reasons equal,
    in order, the ones built anew for that pair, and a shared reason cannot be changed."""
    matcher = busy_matcher(7, "any", date(2026, 3, 7), tmp_path)
    match = matcher.settings
    sources = list(matcher.schools.values())
    found = retrieve(matcher, [Request(source, 10, match, depth=60) for source in sources])
    pairs = [(source, c) for source, answer in zip(sources, found, strict=True) for c in answer.ranked]

    def reasons() -> list[list[dict[str, object]]]:
        return [
            [r.model_dump() for r in explain(s, c.school, c.check, c.score, c.adjustments, match)] for s, c in pairs
        ]

    cached = reasons()
    builders = ("_sdg_reason", "_country_reason", "_language_reason", "_hours_reason", "_level_reason", "_mode_reason")
    for name in builders:
        builder = getattr(explanations, name)
        builder.cache_clear()
        monkeypatch.setattr(explanations, name, builder.__wrapped__)
    rebalance_module._reason.cache_clear()  # the graph factors' reasons, shared the same way
    monkeypatch.setattr(rebalance_module, "_reason", rebalance_module._reason.__wrapped__)
    assert reasons() == cached
    assert len(pairs) > 1000 and {r["code"] for listed in cached for r in listed} >= {
        "shared_sdgs",
        "target_country",
        "wants_your_country",
        "shared_languages",
        "school_hours",
        "level",
        "modes",
        "saturation",
        "no_partner_yet",
        "country_diversity",
    }
    source, c = pairs[0]
    shown = explain(source, c.school, c.check, c.score, [], match)[0]
    with pytest.raises(ValidationError):
        shown.weight = 0.0
