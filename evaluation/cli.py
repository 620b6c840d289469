"""The `partnermatch evaluate`, `sensitivity` and `train` verbs.

Written in the style of service/cli.py (one ``add_<verb>_verb(verbs, common)`` per verb, setting
``handler``), so the service adds them to its VERBS without evaluation/ importing the service.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from data.settings import StorageSettings
from data.store import Store
from embeddings import EmbeddingSettings, ProfileEmbedder, make_embedder
from evaluation.report import check_targets, new_report_dir, write_report
from evaluation.run import METHODS, evaluate_store
from evaluation.sensitivity import DEFAULT_QUERIES, points_table, run_sensitivity, summary, write_sensitivity
from evaluation.settings import EvaluationSettings
from matching.engine import Matcher
from matching.ranker import MIN_PARTNERSHIPS, InsufficientHistory, TrainingSettings, save_ranker, train
from matching.settings import MatchSettings


def _storage(args: argparse.Namespace) -> StorageSettings:
    """Settings from the environment, overridden by --data-dir / --database-url."""
    overrides = {
        name: getattr(args, name) for name in ("data_dir", "database_url") if getattr(args, name, None) is not None
    }
    return StorageSettings(**overrides)


def _embedder(storage: StorageSettings) -> ProfileEmbedder:
    """The embedder with its cache beside the data, so vectors encoded for the service are reused."""
    settings = EmbeddingSettings()
    return make_embedder(settings, cache_dir=settings.cache_dir or storage.data_dir / "embedding-cache")


def _evaluation_settings(args: argparse.Namespace) -> EvaluationSettings:
    """Environment settings, with the options given on the command line on top."""
    given = {
        field: getattr(args, field)
        for field in ("splits", "holdout_share", "seed", "sides", "pool_size", "max_queries")
        if getattr(args, field, None) is not None
    }
    return EvaluationSettings(**given)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None, help="folder to write to (default: under <data-dir>/reports)")
    parser.add_argument(
        "--holdout", dest="holdout_share", type=float, default=None, help="share of partnerships held out (default 0.2)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the random split, sampling and tie-breaks")


# --------------------------------------------------------------------------- evaluate


def add_evaluate_verb(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "evaluate",
        parents=[common],
        help="measure match quality against baselines on held-out partnerships and write a report",
        description="Holds out partnerships (by time and at random), lets the product and the baselines suggest "
        "partners without them, and writes report.md, metrics.json and plots to "
        "<data-dir>/reports/<timestamp>/ (and points <data-dir>/reports/latest at it).",
    )
    _add_common_options(parser)
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=["time", "random"],
        default=None,
        help="which splits to run (default: time random)",
    )
    parser.add_argument(
        "--sides",
        choices=["both", "home"],
        default=None,
        help="both: Taiwanese and foreign schools ask (default); home: Taiwanese only",
    )
    parser.add_argument(
        "--pool-size", type=int, default=None, help="rank only the N nearest eligible schools per query (default: all)"
    )
    parser.add_argument(
        "--max-queries",
        type=int,
        default=None,
        help="evaluate a seeded sample of at most this many queries per split (default: all)",
    )
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    storage = _storage(args)
    settings = _evaluation_settings(args)
    with Store.from_settings(storage) as store:
        evaluation = evaluate_store(store, _embedder(storage), settings)
    folder = args.out or new_report_dir(storage.data_dir)
    report = write_report(evaluation, folder, mark_latest=args.out is None)
    print(f"{'method':<24} " + " ".join(f"{name:>10}" for name in ("recall@10", "nDCG@10", "Gini@10", "coverage")))
    for name, result in evaluation.splits.items():
        print(f"-- {name} split ({len(result.relevant)} queries, {result.seconds:.0f} s)")
        for method, (label, _) in METHODS.items():
            m = result.metrics[method]
            print(
                f"{label:<24} {m['recall@10']:>10.4f} {m['ndcg@10']:>10.4f} {m['gini@10']:>10.3f} "
                f"{m['coverage@10']:>10.1%}"
            )
    for name, result in evaluation.splits.items():
        comparison = result.diagnostics["full_ranker_vs_best_baseline"]
        p_value = comparison["p_value"]
        print(
            f"-- {name} split: full product with ranker vs best baseline ({METHODS[comparison['best_baseline']][0]}): "
            f"{comparison['ratio'] or float('nan'):.2f}x, paired p = {p_value if p_value is None else f'{p_value:.2g}'}"
        )
        for check in check_targets(result):
            print(f"[{'met' if check.met else 'NOT met'}] {check.statement}: {check.measured}")
    print(f"report: {report} ({evaluation.seconds:.0f} s)")
    return 0


# --------------------------------------------------------------------------- sensitivity


def add_sensitivity_verb(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "sensitivity",
        parents=[common],
        help="sweep the rebalancing weights and plot recall@10 against exposure Gini@10",
        description="Moves one rebalancing weight at a time (boost scale, saturation threshold, diversity decay, "
        "MMR lambda, exposure strength) on one split with a sample of queries, and writes sensitivity.png, .csv and "
        ".json to <data-dir>/reports/sensitivity-<timestamp>/.",
    )
    _add_common_options(parser)
    parser.add_argument(
        "--queries",
        dest="max_queries",
        type=int,
        default=None,
        help=f"sampled queries (default {DEFAULT_QUERIES}); time grows linearly with it",
    )
    parser.add_argument(
        "--split",
        choices=["time", "random"],
        type=str,
        default="time",
        help="the split to sweep on (default time); `evaluate --max-queries N` with the same N reproduces the "
        "point at the current settings",
    )
    parser.set_defaults(handler=_sensitivity)


def _sensitivity(args: argparse.Namespace) -> int:
    storage = _storage(args)
    settings = _evaluation_settings(args).model_copy(update={"splits": [args.split]})
    if settings.max_queries is None:  # bounded in time unless asked otherwise
        settings = settings.model_copy(update={"max_queries": DEFAULT_QUERIES})
    with Store.from_settings(storage) as store:
        points, queries = run_sensitivity(store, _embedder(storage), settings)
    folder = args.out or new_report_dir(storage.data_dir, prefix="sensitivity-")
    files = write_sensitivity(points, folder, queries=queries)
    print(points_table(points))
    choice = summary(points)["suggested"]
    print(
        f"lowest Gini within 10% of the best recall: {choice['parameter']}={choice['value']:g} "
        f"(recall@10 {choice['recall']:.4f}, Gini@10 {choice['gini']:.3f})"
    )
    print(f"wrote {files['png']}, {files['csv'].name}, {files['json'].name}")
    return 0


# --------------------------------------------------------------------------- train


def add_train_verb(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "train",
        parents=[common],
        help="train the reciprocal ranker on the partnership history and save it beside the index",
        description="Rebuilds the network as it stood at a cut-off inside the history, learns which eligible "
        "schools went on to partner (matching.ranker), prints validation figures and feature importances, and "
        f"saves <index-dir>/ranker/ranker-v<N>.joblib. Below {MIN_PARTNERSHIPS} partnerships it refuses: the "
        "service keeps the hand-weighted score.",
    )
    parser.add_argument("--index-dir", type=Path, default=None, help="where the index lives (default <data-dir>/index)")
    parser.add_argument("--seed", type=int, default=7, help="seed of query sampling and validation")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    storage = _storage(args)
    started = time.perf_counter()
    with Store.from_settings(storage) as store:
        schools, partnerships = list(store.iter_schools()), store.list_partnerships()
    matcher = Matcher.build(schools, partnerships, _embedder(storage), MatchSettings())
    try:
        model = train(matcher, partnerships, TrainingSettings(seed=args.seed))
    except InsufficientHistory as exc:
        print(f"not trained: {exc}")
        return 1
    v = model.metadata["validation"]
    print(
        f"trained on {model.metadata['rows']} candidate rows of {model.metadata['queries']} queries "
        f"(cut-off {model.metadata['cutoff']}, {model.metadata['positives']} positives)"
    )
    print(f"validation ({v['validation_queries']} held-out queries): ranker vs hand-weighted reciprocal score")
    print(f"  AUC        {v['auc'] or float('nan'):.3f} vs {v['auc_reciprocal'] or float('nan'):.3f}")
    print(f"  recall@10  {v['recall@10']:.3f} vs {v['recall@10_reciprocal']:.3f}")
    print(f"  recall@10 of the linear first stage alone: {v['recall@10_first_stage']:.3f}")
    print("feature importance (drop in validation AUC when shuffled):")
    for name, drop in list(v["importance"].items())[:12]:
        print(f"  {name:<28} {drop:+.4f}")
    file = save_ranker(model, args.index_dir or storage.data_dir / "index")
    print(f"saved {file} ({time.perf_counter() - started:.0f} s)")
    return 0
