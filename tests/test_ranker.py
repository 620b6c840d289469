"""The trained reciprocal ranker: trains on a small history, refuses a tiny one, saves versioned,
ranks the engine's candidates when loaded, and explains each candidate by what lifted it."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from embeddings import EmbeddingSettings, ProfileEmbedder
from matching import retrieve as retrieve_module
from matching.constraints import SuggestionFilters
from matching.engine import Matcher
from matching.features import FIRST_STAGE_NAMES, NEEDS_VECTORS
from matching.ranker import (
    FIRST_STAGE_COLUMNS,
    MIN_PARTNERSHIPS,
    InsufficientHistory,
    LinearShortlist,
    RankerModel,
    ReciprocalRanker,
    TrainingSettings,
    column_medians,
    load_ranker,
    save_ranker,
    train,
    windows,
    without_rebalancing,
)
from matching.retrieve import Request, pool, shown_pool

FAST = TrainingSettings(hard_negatives=10, random_negatives=20, max_queries=80)


@pytest.fixture(scope="module")
def matcher(small_world: Any, tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    embedder = ProfileEmbedder(
        EmbeddingSettings(text_encoder="hashed", show_progress=False), cache_dir=tmp_path_factory.mktemp("cache")
    )
    return Matcher.build(small_world.schools, small_world.partnerships, embedder)


@pytest.fixture(scope="module")
def model(matcher: Matcher, small_world: Any) -> RankerModel:
    return train(matcher, small_world.partnerships, FAST, ReciprocalRanker(max_iter=40))


def test_training_reports_validation_and_importance(model: RankerModel) -> None:
    meta = model.metadata
    assert meta["positives"] > 0 and meta["rows"] > meta["positives"]
    v = meta["validation"]
    assert 0.5 < v["auc"] <= 1.0
    assert set(v["importance"]) == set(meta["features"])


def test_a_tiny_history_is_refused(matcher: Matcher, small_world: Any) -> None:
    with pytest.raises(InsufficientHistory, match=str(MIN_PARTNERSHIPS)):
        train(matcher, small_world.partnerships[: MIN_PARTNERSHIPS - 1], FAST)


@pytest.mark.parametrize("holdout", ["time", "random"])
def test_hidden_parts_never_reach_the_network_they_are_learned_in(small_world: Any, holdout: str) -> None:
    """Each hidden part's partnerships are its positives; the network left holds none of their
    pairs (random: whole pairs, disjoint parts) or nothing that started on or after its day (time)."""
    history = small_world.partnerships
    parts = windows(history, TrainingSettings(holdout=holdout, windows=2))
    assert len(parts) == 2
    for part in parts:
        hidden = {p.pair for p in part.hidden}
        assert hidden and not hidden & {p.pair for p in part.seen}
        if holdout == "time":
            assert all(p.start_date >= part.day for p in part.hidden)
            assert all(p.start_date < part.day for p in part.seen)
        else:
            assert len(part.seen) + len(part.hidden) == len(history)
            assert all(p.start_date < part.day for p in history)
    if holdout == "random":
        first, second = ({p.pair for p in part.hidden} for part in parts)
        assert not first & second


def test_saved_versions_load_with_the_same_scores(model: RankerModel, matcher: Matcher, tmp_path: Path) -> None:
    assert load_ranker(tmp_path) is None
    first, second = save_ranker(model, tmp_path), save_ranker(model, tmp_path)
    assert (first.name, second.name) == ("ranker-v1.joblib", "ranker-v2.joblib")
    loaded = load_ranker(tmp_path)
    assert loaded is not None
    source = next(s for s in matcher.schools.values() if s.country == "TW" and s.active)
    settings = without_rebalancing(matcher.settings)
    found = pool(matcher, matcher.table, Request(source, 20, settings, depth=len(matcher.table)))
    assert len(found.rows) > 20
    X = model.feature_rows(matcher.table, found.row, found.rows, found.similarity, found.scores)
    again = loaded.feature_rows(matcher.table, found.row, found.rows, found.similarity, found.scores)
    np.testing.assert_allclose(loaded.score(again), model.score(X))
    current = tmp_path / "ranker" / "current.json"
    current.write_text(json.dumps({**json.loads(current.read_text()), "format": -1}))
    assert load_ranker(tmp_path) is None  # an older format is ignored: the hand-weighted score is used


def test_the_first_stage_reads_the_full_features_columns_without_a_cosine(model: RankerModel, matcher: Matcher) -> None:
    """The first stage's rows, worked out from the fit components alone, are the full feature rows'
    FIRST_STAGE_COLUMNS to the last bit, and none of those columns needs a profile vector."""
    assert not set(FIRST_STAGE_NAMES) & NEEDS_VECTORS
    with_model = replace(matcher, ranker=model)
    plain = without_rebalancing(matcher.settings)
    table = with_model.table
    for source in [s for s in matcher.schools.values() if s.active][:6]:
        found = pool(with_model, table, Request(source, 10, plain))
        full = model.feature_rows(table, found.row, found.rows, found.similarity, found.scores, found.paths)
        first = model.pair_features.first_stage_rows(table, found.row, found.rows, found.scores.components, found.paths)
        np.testing.assert_array_equal(first, full[:, FIRST_STAGE_COLUMNS])
        np.testing.assert_allclose(  # one product over another copy: the last bits may round apart
            model.first_stage(table, found.row, found.rows, found.scores.components, found.paths),
            model.ranker.first_stage_.decision_function(full[:, FIRST_STAGE_COLUMNS]),
            rtol=1e-12,
        )


def test_the_first_stage_is_a_logistic_regression_folded_to_one_weight_vector() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -1.0, 2.0]
    y = (X[:, 0] + X[:, 1] / 10 + rng.normal(size=400) > 0.5).astype(int)
    X[::7, 2] = np.nan
    first = LinearShortlist().fit(X, y)
    filled = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    scaler = StandardScaler().fit(filled)
    reference = LogisticRegression(class_weight="balanced", max_iter=2000).fit(scaler.transform(filled), y)
    np.testing.assert_allclose(first.decision_function(X), reference.decision_function(scaler.transform(filled)))


@pytest.mark.parametrize("rows", [2, 3, 10, 11])
def test_column_medians_are_numpys_nanmedian(rows: int) -> None:
    X = np.random.default_rng(rows).normal(size=(rows, 6))
    X[np.random.default_rng(9).random(X.shape) < 0.3] = np.nan
    X[:, 4] = np.nan
    with pytest.warns(RuntimeWarning):
        expected = np.nanmedian(X, axis=0)
    np.testing.assert_array_equal(column_medians(X), expected)


def test_a_requests_path_sums_are_worked_out_once_and_read_by_sources_and_features(
    model: RankerModel, matcher: Matcher
) -> None:
    with_model = replace(matcher, ranker=model)
    plain = without_rebalancing(matcher.settings)
    for source in [s for s in matcher.schools.values() if s.active][:6]:
        found = pool(with_model, with_model.table, Request(source, 10, plain))
        assert found.paths is not None
        args = (with_model.table, found.row, found.rows)
        np.testing.assert_array_equal(
            model.feature_rows(*args, found.similarity, found.scores, found.paths),
            model.feature_rows(*args, found.similarity, found.scores),
        )
        np.testing.assert_array_equal(found.sources["graph"], model.source_scores(*args)["graph"])


def test_engine_ranks_by_the_model_and_explains_each_candidate(model: RankerModel, matcher: Matcher) -> None:
    plain = without_rebalancing(matcher.settings)
    with_model = Matcher(plain, matcher.embedder, matcher.schools, matcher.indexes, matcher.partnerships, ranker=model)
    sources = [s for s in matcher.schools.values() if s.country == "TW" and s.active][:5]
    first_reasons = set()
    for source in sources:
        ranked, _, _ = with_model.candidates(source, 10)
        found = pool(with_model, with_model.table, Request(source, 10, plain, depth=len(with_model.table)))
        assert len(ranked) == len(found.rows)  # every eligible candidate is ranked, not the nearest few
        X = model.feature_rows(with_model.table, found.row, found.rows, found.similarity, found.scores)
        expected = dict(zip((with_model.table.ids[r] for r in found.rows), model.score(X), strict=True))
        np.testing.assert_allclose([c.rank_score for c in ranked], [expected[c.school.id] for c in ranked])
        assert [c.rank_score for c in ranked] == sorted((c.rank_score for c in ranked), reverse=True)
        result = with_model.suggest(source, 10)
        for suggestion in result.suggestions:
            learned = [r for r in suggestion.reasons if r.code.startswith("model_")]
            if learned:
                assert suggestion.reasons[0] is learned[0]
                assert learned[0].text_en.startswith("Learned") and learned[0].text_zh.startswith("從過去")
                first_reasons.add(learned[0].code)
            via = [r for r in suggestion.reasons if r.code == "found_via"]
            assert len(via) == 1 and via[0].text_en.startswith("Found via: ") and via[0].text_zh.startswith("推薦來源")
    assert len(first_reasons) >= 2  # not the same first line on every row


def test_the_service_says_which_score_ranks_and_uses_a_saved_ranker(
    model: RankerModel, small_world: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from data.settings import StorageSettings
    from service.app import create_app
    from service.auth import Role, create_key
    from service.settings import ServiceSettings
    from service.state import ServiceState

    def open_state() -> ServiceState:
        return ServiceState.open(
            StorageSettings(data_dir=tmp_path),
            ServiceSettings(change_poll_seconds=0),
            embedding=EmbeddingSettings(text_encoder="hashed", show_progress=False),
            embedding_cache_dir=tmp_path / "cache",
        )

    def ready_and_first_reasons(state: ServiceState, school: str) -> tuple[str, list[str]]:
        key = create_key(state.store, Role.STAFF).key
        with TestClient(create_app(state)) as client:
            while (ready := client.get("/readyz")).status_code == 503:
                pass
            listed = client.get(f"/v1/schools/{school}/suggestions", headers={"X-API-Key": key}).json()
        return ready.json()["ranking"], [s["reasons"][0]["code"] for s in listed["suggestions"]]

    state = open_state()
    state.store.upsert_schools(small_world.schools)
    state.store.add_partnerships(small_world.partnerships)
    school = next(s.id for s in small_world.schools if s.country == "TW" and s.active)
    try:
        ranking, codes = ready_and_first_reasons(state, school)
        assert ranking == "hand-weighted" and not any(code.startswith("model_") for code in codes)
        save_ranker(model, state.index_dir)
    finally:
        state.close()
    state = open_state()
    try:
        ranking, codes = ready_and_first_reasons(state, school)
        assert ranking == "trained"
        assert codes and any(code.startswith("model_") for code in codes)
    finally:
        state.close()


def test_a_large_eligible_set_ranks_the_first_stages_best_the_nearest_and_the_wished(
    model: RankerModel, matcher: Matcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above shortlist + POOL_NEAREST eligible, the trees rank the first stage's shortlist, the
    nearest by vector and the first stage's best in the wished countries, with the same cosines,
    scores and path sums as when every eligible school is ranked."""
    plain = without_rebalancing(matcher.settings)
    small = replace(model, ranker=copy.copy(model.ranker))
    with_model = Matcher(plain, matcher.embedder, matcher.schools, matcher.indexes, matcher.partnerships, ranker=small)
    table = with_model.table
    source = next(s for s in matcher.schools.values() if s.country == "TW" and s.active and s.target_countries)
    request = Request(source, 4, plain)
    everything = pool(with_model, table, request)
    monkeypatch.setattr(retrieve_module, "POOL_NEAREST", 20)
    small.ranker.shortlist = 15
    short = pool(with_model, table, request)
    assert len(everything.rows) > 15 + 20 + shown_pool(4, plain)
    assert 20 < len(short.rows) <= 15 + 20 + shown_pool(4, plain)
    at = np.searchsorted(everything.rows, short.rows)
    np.testing.assert_array_equal(everything.rows[at], short.rows)
    nearest = everything.rows[np.argsort(-everything.similarity, kind="stable")[:20]]
    assert set(nearest) <= set(short.rows)
    first = small.first_stage(table, everything.row, everything.rows, everything.scores.components, everything.paths)
    assert set(everything.rows[np.argsort(-first, kind="stable")[:15]]) <= set(short.rows)
    assert short.sources["wish"].sum() >= min(shown_pool(4, plain), everything.sources["wish"].sum())
    np.testing.assert_allclose(short.similarity, everything.similarity[at], atol=1e-6)
    np.testing.assert_array_equal(short.scores.components[:6], everything.scores.components[:6, :, at])
    for got, full in zip(short.paths, everything.paths, strict=True):
        np.testing.assert_array_equal(got, full[at])


def test_a_request_with_nothing_eligible_answers_empty_with_a_ranker(model: RankerModel, matcher: Matcher) -> None:
    with_model = replace(matcher, ranker=model)
    source = next(s for s in matcher.schools.values() if s.country == "TW" and s.active)
    result = with_model.suggest(source, k=5, filters=SuggestionFilters(regions=["nowhere"]))
    assert result.suggestions == [] and result.candidates_examined > 0
