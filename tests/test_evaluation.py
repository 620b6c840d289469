"""Evaluation: metrics against ranx and hand-computed values, exposure measures on known
distributions, leak-free splits, and the report folder produced end to end on a small world."""

from __future__ import annotations

import argparse
import doctest
import json
import math
import os
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from ranx import Qrels, Run, evaluate

from data.schema import Partnership
from data.store import Store
from embeddings import EmbeddingSettings, ProfileEmbedder
from evaluation import baselines, metrics, splits
from evaluation.cli import add_evaluate_verb, add_sensitivity_verb
from evaluation.report import check_targets, latest_report
from evaluation.run import (
    METHODS,
    SplitResult,
    build_matcher,
    evaluate_store,
    map_queries,
    query_targets,
    train_split_ranker,
    without_rebalancing,
)
from evaluation.sensitivity import current_value, run_sensitivity, variants
from evaluation.settings import EvaluationSettings
from evaluation.splits import Split, make_split, random_split, time_split
from graph import build_partnership_graph
from matching.constraints import Rule, check_pair
from matching.features import PairFeatures
from matching.settings import MatchSettings

# --------------------------------------------------------------------------- accuracy

# q1 finds one of its two partners at rank 2 and the other at rank 4; q2 its only partner at
# rank 1; q3 gets an empty list.
RELEVANT = {"q1": {"a", "b"}, "q2": {"c"}, "q3": {"d"}}
LISTS = {"q1": ["x", "a", "y", "b"], "q2": ["c", "z"], "q3": []}


def test_accuracy_matches_hand_computed_values() -> None:
    scores = metrics.accuracy(RELEVANT, LISTS, [2, 4])
    assert scores["recall@2"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores["recall@4"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["hit_rate@2"] == pytest.approx(2 / 3)
    assert scores["mrr@4"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert scores["ndcg@4"] == pytest.approx((ndcg_q1 + 1 + 0) / 3)
    assert scores["ndcg@2"] == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3)) + 1) / 3)


def test_accuracy_equals_ranx_on_a_random_case() -> None:
    rng = random.Random(3)
    docs = [f"d{i}" for i in range(40)]
    relevant = {f"q{i}": set(rng.sample(docs, rng.randint(1, 4))) for i in range(25)}
    lists = {q: rng.sample(docs, 20) for q in relevant}
    ours = metrics.accuracy(relevant, lists, [5, 10, 20])
    run = Run({q: {d: 1.0 / (rank + 1) for rank, d in enumerate(ranked)} for q, ranked in lists.items()})
    qrels = Qrels({q: dict.fromkeys(partners, 1) for q, partners in relevant.items()})
    theirs = evaluate(qrels, run, metrics.accuracy_metric_names([5, 10, 20]))
    assert ours == pytest.approx(theirs)
    assert ours["recall@20"] > ours["recall@5"] > 0


def test_accuracy_per_query_is_in_sorted_query_order() -> None:
    per_query = metrics.accuracy(RELEVANT, LISTS, [2], per_query=True)
    assert per_query["recall@2"].tolist() == [0.5, 1.0, 0.0]


def test_accuracy_rejects_duplicates_and_empty_judgements() -> None:
    with pytest.raises(ValueError, match="twice"):
        metrics.accuracy({"q": {"a"}}, {"q": ["a", "a"]}, [5])
    with pytest.raises(ValueError, match="no query"):
        metrics.accuracy({"q": set()}, {"q": ["a"]}, [5])


# --------------------------------------------------------------------------- exposure


def test_gini_and_lorenz_of_an_even_spread() -> None:
    counts = dict.fromkeys("abcd", 5)
    x, y = metrics.lorenz_curve(counts.values())
    assert metrics.exposure_gini(counts) == pytest.approx(0.0)
    assert y.tolist() == pytest.approx(x.tolist())


def test_gini_and_lorenz_when_one_school_takes_everything() -> None:
    counts = {"a": 0, "b": 0, "c": 0, "d": 0, "e": 12}
    _, y = metrics.lorenz_curve(counts.values())
    assert metrics.exposure_gini(counts) == pytest.approx(4 / 5)  # (n - 1) / n
    assert y.tolist() == [0, 0, 0, 0, 0, 1]
    assert metrics.coverage(counts) == pytest.approx(1 / 5)


def test_gini_is_one_minus_twice_the_area_under_the_lorenz_curve() -> None:
    values = np.random.default_rng(5).poisson(3, size=200)
    x, y = metrics.lorenz_curve(values)
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    assert metrics.exposure_gini(dict(enumerate(values))) == pytest.approx(1 - 2 * area)


def test_exposure_counts_include_the_never_shown_and_ignore_the_ineligible() -> None:
    counts = metrics.exposure_counts([["a", "b", "z"], ["a", "c"]], eligible={"a", "b", "c", "d"}, k=2)
    assert counts == {"a": 2, "b": 1, "c": 1, "d": 0}
    assert metrics.coverage(counts) == pytest.approx(3 / 4)


def test_remote_exposure_ratio() -> None:
    assert metrics.remote_exposure_ratio({"r": 2, "a": 2, "b": 2, "c": 2}, remote={"r"}) == pytest.approx(1.0)
    assert metrics.remote_exposure_ratio({"r": 4, "a": 0, "b": 0, "c": 0}, remote={"r"}) == pytest.approx(4.0)
    assert metrics.remote_exposure_ratio({"a": 1}, remote={"r"}) is None


def test_list_contents_measures() -> None:
    country = {"a": "MY", "b": "MY", "c": "VN", "d": "JP"}
    lists = [["a", "b", "c", "d"], ["a", "b"]]
    # list 1: 6 pairs, 1 in the same country -> 5/6; list 2: its only pair is MY-MY -> 0
    assert metrics.intra_list_country_diversity(lists, country, 10) == pytest.approx((5 / 6 + 0) / 2)
    assert metrics.countries_per_list(lists, country, 10) == pytest.approx((3 + 1) / 2)
    assert metrics.nsp_share(lists, country, 10) == pytest.approx(5 / 6)  # JP is not New Southbound
    assert metrics.country_distribution(lists, country, 2) == {"MY": 1.0}
    assert metrics.reciprocity([(0.7, 0.65), (0.9, 0.5), (0.6, 0.6)], high_fit=0.6) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- baselines


def test_ties_break_at_random_but_repeatably() -> None:
    scores = dict.fromkeys([f"s{i}" for i in range(30)], 0.0) | {"best": 1.0}
    first = baselines.rank_by_score(scores, baselines.tie_break_rng(7, "q"), 10)
    assert first[0] == "best"
    assert first == baselines.rank_by_score(scores, baselines.tie_break_rng(7, "q"), 10)
    assert first[1:] != sorted(first[1:])  # not alphabetical, not the input order
    assert first != baselines.rank_by_score(scores, baselines.tie_break_rng(8, "q"), 10)


def test_plain_link_prediction_is_zero_on_a_bipartite_graph_and_the_l3_adaptation_is_not() -> None:
    G = nx.Graph([("tw-u", "vn-x"), ("tw-y", "vn-x"), ("tw-y", "th-v"), ("tw-y", "my-w"), ("tw-z", "my-w")])
    pool = ["th-v", "my-w", "jp-q"]
    G.add_node("jp-q")
    assert set(baselines.adamic_adar_scores(G, "tw-u", pool).values()) == {0}
    assert set(baselines.jaccard_scores(G, "tw-u", pool).values()) == {0}
    l3 = baselines.adamic_adar_l3_scores(G, "tw-u", pool)
    # Paths tw-u - vn-x (deg 2) - tw-y (deg 3) - {th-v, my-w}.
    assert l3["th-v"] == pytest.approx(1 / math.sqrt(math.log(2) * math.log(3)))
    assert l3["my-w"] == pytest.approx(l3["th-v"])
    assert l3["jp-q"] == 0


# --------------------------------------------------------------------------- splits


def _partnership(i: int, start: date, end: date | None = None, b: str | None = None) -> Partnership:
    return Partnership(id=f"p{i}", school_a="tw-a", school_b=b or f"vn-{i}", start_date=start, end_date=end)


def test_time_split_holds_out_the_most_recent_and_states_the_network_on_the_cutoff_day() -> None:
    ps = [_partnership(i, date(2020, 1 + i, 1)) for i in range(10)]
    ps[0] = _partnership(0, date(2020, 1, 1), end=date(2020, 3, 1))  # ended before the cutoff: history
    ps[1] = _partnership(1, date(2020, 2, 1), end=date(2021, 3, 1))  # ran past the cutoff: active then
    split = time_split(ps, 0.2)
    assert split.cutoff == date(2020, 9, 1)
    assert {p.id for p in split.held_out} == {"p8", "p9"}
    assert all(p.start_date < split.cutoff for p in split.train)
    train = {p.id: p for p in split.train}
    assert train["p0"].end_date == date(2020, 3, 1) and not train["p0"].active
    assert train["p1"].active


def test_random_split_holds_out_whole_pairs_repeatably() -> None:
    ps = [_partnership(i, date(2020, 1, 1), end=date(2021, 1, 1), b=f"vn-{i}") for i in range(20)]
    ps += [_partnership(100 + i, date(2022, 1, 1), b=f"vn-{i}") for i in range(20)]  # each pair renewed
    split = random_split(ps, 0.25, seed=4)
    held = {p.pair for p in split.held_out}
    assert len(held) == 5 and len(split.held_out) == 10
    assert not held & {p.pair for p in split.train}
    assert split == random_split(ps, 0.25, seed=4)
    assert held != {p.pair for p in random_split(ps, 0.25, seed=5).held_out}


def test_a_pair_still_partnered_in_training_is_not_a_target() -> None:
    split = Split(
        "time", [_partnership(1, date(2020, 1, 1))], [_partnership(2, date(2021, 1, 1), b="vn-1")], date(2021, 1, 1)
    )
    assert split.held_out_pairs() == set()


@pytest.mark.parametrize("module", [baselines, metrics, splits])
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- on a stored world


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, small_world: Any) -> Path:
    """A data folder whose SQLite store holds the small generated world."""
    folder = tmp_path_factory.mktemp("evaluation-data")
    with Store(f"sqlite:///{(folder / 'partnermatch.db').as_posix()}") as store:
        store.upsert_schools(small_world.schools)
        store.upsert_partnerships(small_world.partnerships)
    return folder


@pytest.fixture(scope="module")
def stored(data_dir: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{(data_dir / 'partnermatch.db').as_posix()}") as store:
        yield store


@pytest.fixture(scope="module")
def module_embedder(embedding_cache_dir: Path) -> ProfileEmbedder:
    return ProfileEmbedder(EmbeddingSettings(show_progress=False), cache_dir=embedding_cache_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["time", "random"])
def test_the_recommender_sees_no_held_out_partnership(
    name: str, stored: Store, module_embedder: ProfileEmbedder
) -> None:
    schools = list(stored.iter_schools())
    partnerships = stored.list_partnerships()
    split = time_split(partnerships) if name == "time" else random_split(partnerships, seed=2)
    matcher = build_matcher(schools, split.train, module_embedder, MatchSettings())
    held = split.held_out_pairs()
    assert held
    assert not any(matcher.partnerships.has_edge(a, b) for a, b in held)  # not in the graph
    history = build_partnership_graph(schools, split.train, active_only=False)
    assert not any(history.has_edge(a, b) for a, b in held)  # nor in the graph baselines read
    active_train = [p for p in split.train if p.active]
    for school in schools:  # degree, and so capacity, counts training partnerships only
        expected = sum(school.id in (p.school_a, p.school_b) for p in active_train)
        assert matcher.partnerships.degree(school.id) == expected
    ctx = matcher.context()
    by_id = {s.id: s for s in schools}
    for a, b in held:  # a held-out partner is never "already a partner" and never fills capacity
        check = check_pair(by_id[a], by_id[b], ctx)
        assert Rule.ALREADY_PARTNERS not in check.violations
        assert b not in ctx.partners(a)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["time", "random"])
def test_the_split_ranker_sees_no_held_out_partnership(
    name: str, stored: Store, module_embedder: ProfileEmbedder
) -> None:
    """The ranker evaluate trains for a split (``train_split_ranker``) reads only the split's training
    part: no held-out pair is an edge of its features' graph, and every feature of every held-out
    pair is what the training part alone gives (on the random split the whole history would give
    other values; on the time split the features are fitted as of a day before the cut-off)."""
    schools = list(stored.iter_schools())
    partnerships = stored.list_partnerships()
    settings = EvaluationSettings(splits=[name])
    split = make_split(name, partnerships, settings.holdout_share, settings.seed)
    matcher = build_matcher(schools, split.train, module_embedder, MatchSettings())
    model = train_split_ranker(matcher, split, settings, lambda _message: None)
    assert model is not None
    assert model.metadata["holdout"] == name  # its positives hidden the way the split hides its own
    features = model.pair_features
    held = sorted({p.pair for p in split.held_out} - {p.pair for p in split.train})
    assert held
    assert all(features.adjacency_[features.row_[a], features.row_[b]] == 0 for a, b in held)
    train_only = PairFeatures().fit(schools, split.train, features.as_of_)
    everything = PairFeatures().fit(schools, partnerships, features.as_of_)
    by_id = matcher.schools
    leaked = []
    for a, b in held:
        score = matcher.score_pair(by_id[a], by_id[b])[1]
        row = features.transform(by_id[a], [by_id[b]], [score])
        np.testing.assert_array_equal(row, train_only.transform(by_id[a], [by_id[b]], [score]))
        leaked.append(not np.array_equal(row, everything.transform(by_id[a], [by_id[b]], [score]), equal_nan=True))
    if split.cutoff is not None:  # time split: fitted as of a day before the first held-out start
        assert features.as_of_ <= split.cutoff
    else:  # random split: the held-out pairs would change the features, so the check above could fail
        assert any(leaked)


def test_queries_cover_both_sides_or_only_the_home_side(stored: Store) -> None:
    schools = {s.id: s for s in stored.iter_schools()}
    split = time_split(stored.list_partnerships())
    both = query_targets(split, schools, EvaluationSettings(), "TW")
    home = query_targets(split, schools, EvaluationSettings(sides="home"), "TW")
    assert {schools[q].country == "TW" for q in both} == {True, False}
    assert home and all(schools[q].country == "TW" for q in home)
    capped = query_targets(split, schools, EvaluationSettings(max_queries=5), "TW")
    assert len(capped) == 5 and set(capped) <= set(both)


def test_neutral_settings_switch_off_every_graph_factor() -> None:
    neutral = without_rebalancing(MatchSettings())
    assert neutral.diversity is False
    weights = neutral.rebalance
    assert (weights.no_partner_boost, weights.remote_boost, weights.cluster_boost) == (0, 0, 0)
    assert (weights.saturation_threshold, weights.diversity_decay, weights.responsiveness_floor) == (1, 1, 1)


def test_forked_workers_return_what_one_process_does() -> None:
    queries = [f"q{i:03d}" for i in range(120)]
    heard: list[int] = []
    forked = map_queries(lambda suffix, query: (os.getpid(), query + suffix), "!", queries, 2, heard.append)
    assert [result for _, result in forked] == [q + "!" for q in queries]
    assert sum(heard) == len(queries)
    assert os.getpid() not in {pid for pid, _ in forked}  # the work really ran in the workers
    assert map_queries(lambda suffix, query: query + suffix, "!", queries, 1) == [q + "!" for q in queries]


def _parser() -> argparse.ArgumentParser:
    """The two verbs as the service wires them: storage options accepted after the verb."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    common.add_argument("--database-url", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="partnermatch")
    verbs = parser.add_subparsers(dest="verb")
    add_evaluate_verb(verbs, common)
    add_sensitivity_verb(verbs, common)
    return parser


@pytest.mark.slow
def test_evaluate_writes_a_report_folder(
    data_dir: Path, embedding_cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_CACHE_DIR", str(embedding_cache_dir))
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_SHOW_PROGRESS", "false")
    assert latest_report(data_dir) is None
    args = _parser().parse_args(["evaluate", "--data-dir", str(data_dir), "--pool-size", "60"])
    assert args.handler(args) == 0
    folder = latest_report(data_dir)
    assert folder is not None and folder.parent == data_dir / "reports"
    for png in ("recall_at_k.png", "exposure_lorenz.png", "partner_countries.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert set(payload["splits"]) == {"time", "random"}
    time_metrics = payload["splits"]["time"]["metrics"]
    assert set(time_metrics) == set(METHODS)
    assert all(m["violations"] == 0 for m in time_metrics.values())
    assert all(0 <= m["recall@10"] <= m["recall@20"] <= 1 for m in time_metrics.values())
    # Plain Adamic-Adar sees nothing on the bipartite graph, and says so.
    assert payload["splits"]["time"]["diagnostics"]["adamic_adar_nonzero_share"] == 0
    assert {t["name"] for t in payload["splits"]["time"]["targets"]} == {
        "recall_vs_baselines",
        "exposure_gini",
        "coverage",
        "constraint_violations",
    }
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Targets (time split)" in report and "![Recall@k by method](recall_at_k.png)" in report
    assert "Full product" in capsys.readouterr().out
    # A second run moves the pointer.
    args = _parser().parse_args(["evaluate", "--data-dir", str(data_dir), "--splits", "time", "--max-queries", "10"])
    assert args.handler(args) == 0
    newer = latest_report(data_dir)
    assert newer is not None and newer != folder
    assert (
        json.loads((newer / "metrics.json").read_text(encoding="utf-8"))["splits"]["time"]["diagnostics"]["queries"]
        == 10
    )


@pytest.mark.slow
def test_sensitivity_writes_plot_and_table(
    data_dir: Path,
    embedding_cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_CACHE_DIR", str(embedding_cache_dir))
    out = tmp_path / "sweep"
    args = _parser().parse_args(["sensitivity", "--data-dir", str(data_dir), "--queries", "12", "--out", str(out)])
    assert args.handler(args) == 0
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    rows = (out / "sensitivity.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("split,parameter,value,recall,gini")
    points = json.loads((out / "sensitivity.json").read_text(encoding="utf-8"))["points"]
    assert {p["parameter"] for p in points} == {
        "boost_scale",
        "saturation_threshold",
        "diversity_decay",
        "mmr_lambda",
        "exposure_strength",
        "no_rebalancing",
    }
    assert all(0 <= p["gini"] <= 1 and 0 <= p["recall"] <= 1 for p in points)
    assert "lowest Gini within 10%" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["time", "random"])
def test_sensitivity_at_the_current_settings_reproduces_evaluate(
    name: str, stored: Store, module_embedder: ProfileEmbedder
) -> None:
    """One code path: the sweep's point at the current settings is evaluate's "Full product with
    ranker" row, figure for figure, on the same split and query sample."""
    settings = EvaluationSettings(splits=[name], max_queries=40, pool_size=60, workers=1)
    evaluation = evaluate_store(stored, module_embedder, settings, progress=None, show_bars=False)
    points, queries = run_sensitivity(
        stored, module_embedder, settings, sweeps={"mmr_lambda": (0.5,)}, progress=None, show_bars=False
    )
    full = evaluation.splits[name].metrics["full_ranker"]
    assert evaluation.splits[name].diagnostics["ranker"] is not None  # the trained score, not the fallback
    assert queries == evaluation.splits[name].diagnostics["queries"] == 40
    [current] = [p for p in points if p.current]
    assert (current.parameter, current.value) == ("mmr_lambda", MatchSettings().mmr_lambda)  # the default joined
    assert (current.recall, current.gini, current.coverage, current.nsp_share) == (
        full["recall@10"],
        full["gini@10"],
        full["coverage@10"],
        full["nsp_share@10"],
    )
    assert full["recall@10"] > 0  # a comparison of two empty runs would prove nothing
    other = next(p for p in points if p.parameter == "mmr_lambda" and not p.current)
    assert (other.recall, other.gini) != (current.recall, current.gini)  # and the sweep does move the figures


def test_every_sweep_passes_through_the_current_settings() -> None:
    base = MatchSettings()
    chosen = variants(base, {"mmr_lambda": (0.5,), "exposure_strength": (5.0,)})
    for parameter in ("mmr_lambda", "exposure_strength"):
        values = [v.value for v in chosen if v.parameter == parameter]
        assert current_value(base, parameter) in values and len(values) == 2
        [same] = [v for v in chosen if v.parameter == parameter and v.value == current_value(base, parameter)]
        assert same.settings == base  # the current point is the settings as they are, not a near copy
    assert chosen[-1].parameter == "no_rebalancing"


def _result(full: dict[str, float], others: dict[str, float]) -> SplitResult:
    base = {"violations": 0, "gini@10": 0.5, "coverage@10": 0.9}
    measured = {method: {**base, "recall@10": others.get(method, 0.01)} for method in METHODS}
    measured["full_ranker"] = {**base, **full}
    return SplitResult(Split("time", [], [], None), {}, {}, measured, {}, {"eligible_schools": 100}, 0.0)


def test_targets_say_met_and_not_met_plainly() -> None:
    good = check_targets(
        _result({"recall@10": 0.16, "gini@10": 0.35, "coverage@10": 0.85}, {"content": 0.10, "ranker": 0.17})
    )
    assert [t.met for t in good] == [True, True, True, True]
    bad = check_targets(
        _result(
            {"recall@10": 0.12, "gini@10": 0.45, "coverage@10": 0.5, "violations": 1},
            {"adamic_adar_l3": 0.10, "ranker": 0.14},
        )
    )
    assert [t.met for t in bad] == [False, False, False, False]
    assert "1.20x" in bad[0].measured


def test_beyond_accuracy_targets_say_what_chance_alone_gives_the_same_sample() -> None:
    """30 places over 100 schools: uniformly at random most schools are never shown, so the
    coverage and Gini lines say so beside the measured figures."""
    result = _result({"recall@10": 0.16, "gini@10": 0.35, "coverage@10": 0.85}, {"ranker": 0.17})
    result.exposure["full_ranker"] = {f"s{i}": int(i < 30) for i in range(100)}
    gini, coverage = check_targets(result)[1:3]
    floor, covered = metrics.uniform_spread(30, 100)
    assert 0.6 < floor < 0.8 and 0.2 < covered < 0.3
    assert f"30 list places spread uniformly at random: {floor:.3f}" in gini.measured
    assert f"uniformly at random: {covered:.1%}" in coverage.measured
