"""How the rebalancing weights trade accuracy for an even spread: recall@10 against exposure Gini@10.

One weight is moved at a time from the current settings (the others stay as they are), the full
product (ranking by the ranker trained on the split's training part, when the history is large
enough) is asked for every sampled query, and each setting becomes one point on the plot:

* ``boost_scale`` multiplies no_partner_boost, remote_boost and cluster_boost together (each
  capped at 1, the largest a boost may be);
* ``saturation_threshold``: load above which a busy school is pushed down;
* ``diversity_decay``: factor per partner the asking school already has in a country;
* ``mmr_lambda``: 1 is pure relevance, lower values trade score for variety within a list;
* ``exposure_strength``: damping of schools shown more often than average.

Each point is made exactly as ``evaluate`` makes its "Full product with ranker" row: the same
split, queries (:func:`evaluation.run.query_targets`), ranker, arrival order and exposure
recording (:func:`evaluation.run.product_lists`, a fresh ledger per setting) and the same figures
(:func:`evaluation.run.product_figures` over the same eligible schools). So the point at the
current settings *is* the evaluation's figure for the same split and query sample, to the last
digit (``tests/test_evaluation.py`` holds them equal).

Bounded in time: it runs on one split (the first of the settings', time by default) with a seeded
sample of queries (``max_queries``, default 600; about 10-30 ms per query and setting, one query
after another). With fewer queries there are fewer appearances to spread over the same eligible
schools, so every Gini is higher than a full evaluation's: compare with ``evaluate`` run with the
same ``--max-queries``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data.store import Store
from embeddings import ProfileEmbedder
from evaluation.plotting import plt, save_figure
from evaluation.run import (
    Progress,
    build_matcher,
    eligible_schools,
    print_progress,
    product_figures,
    product_lists,
    query_targets,
    train_split_ranker,
    without_rebalancing,
)
from evaluation.settings import EvaluationSettings
from evaluation.splits import make_split
from matching.engine import Matcher
from matching.results import SuggestionResult
from matching.settings import MatchSettings

BOOST_FIELDS: tuple[str, ...] = ("no_partner_boost", "remote_boost", "cluster_boost")
SWEEPS: dict[str, tuple[float, ...]] = {
    "boost_scale": (0.0, 0.5, 1.0, 2.0, 3.0),
    "saturation_threshold": (0.25, 0.5, 0.75, 1.0),
    "diversity_decay": (0.4, 0.7, 1.0),
    "mmr_lambda": (0.5, 0.75, 0.9, 0.95, 1.0),
    "exposure_strength": (0.0, 0.3, 1.0, 3.0),
}
"""Values tried per parameter; each sweep also passes through the current value (see :func:`variants`)."""
DEFAULT_QUERIES = 600
K = 10


@dataclass(frozen=True)
class Variant:
    parameter: str
    value: float
    settings: MatchSettings

    @property
    def label(self) -> str:
        return f"{self.parameter}={self.value:g}"


@dataclass(frozen=True)
class Point:
    split: str
    parameter: str
    value: float
    recall: float
    gini: float
    coverage: float
    nsp_share: float
    seconds: float
    current: bool
    """The variant is the current settings (each sweep passes through them)."""


def vary(base: MatchSettings, parameter: str, value: float) -> MatchSettings:
    """``base`` with one parameter of the sweep set to ``value``."""
    if parameter == "boost_scale":
        weights = base.rebalance.model_copy(
            update={name: min(1.0, getattr(base.rebalance, name) * value) for name in BOOST_FIELDS}
        )
        return base.model_copy(update={"rebalance": weights})
    if parameter in ("saturation_threshold", "diversity_decay", "exposure_strength"):
        return base.model_copy(update={"rebalance": base.rebalance.model_copy(update={parameter: value})})
    if parameter == "mmr_lambda":
        return base.model_copy(update={"mmr_lambda": value})
    raise ValueError(f"parameter: must be one of {', '.join(SWEEPS)}, got {parameter!r}")


def current_value(base: MatchSettings, parameter: str) -> float:
    """The value ``parameter`` has in ``base`` (the boost scale of the settings themselves is 1)."""
    if parameter == "boost_scale":
        return 1.0
    return base.mmr_lambda if parameter == "mmr_lambda" else getattr(base.rebalance, parameter)


def variants(base: MatchSettings, sweeps: dict[str, Sequence[float]] | None = None) -> list[Variant]:
    """One variant per (parameter, value), each sweep with the current value among them (so every
    sweep passes through the settings as they are), plus the product without rebalancing as a
    reference point."""
    chosen = [
        Variant(parameter, value, vary(base, parameter, value))
        for parameter, values in (sweeps or SWEEPS).items()
        for value in sorted({*values, current_value(base, parameter)})
    ]
    return [*chosen, Variant("no_rebalancing", 0.0, without_rebalancing(base))]


def run_sensitivity(
    store: Store,
    embedder: ProfileEmbedder,
    settings: EvaluationSettings | None = None,
    match_settings: MatchSettings | None = None,
    *,
    sweeps: dict[str, Sequence[float]] | None = None,
    progress: Progress | None = print_progress,
    show_bars: bool | None = None,
) -> tuple[list[Point], int]:
    """Recall@10 and Gini@10 of the full product (with the split's ranker) for each variant on the
    first split of ``settings``, and the number of queries they were measured on."""
    settings = settings or EvaluationSettings(max_queries=DEFAULT_QUERIES)
    if K not in settings.ks or settings.exposure_k != K:
        raise ValueError(f"ks: the sweep reads recall@{K} and Gini@{K}; give k {K} and exposure_k {K}")
    match_settings = match_settings or MatchSettings()
    say = progress or (lambda _message: None)
    schools = list(store.iter_schools())
    split = make_split(settings.splits[0], store.list_partnerships(), settings.holdout_share, settings.seed)
    say(split.describe())
    matcher = build_matcher(schools, split.train, embedder, match_settings)
    matcher.ranker = train_split_ranker(
        matcher, split, settings, say
    )  # the sweep tunes rebalancing on the trained score
    relevant = query_targets(split, matcher.schools, settings, match_settings.home_country)
    if not relevant:
        raise ValueError(f"{split.name} split: no active school has a held-out partner; nothing to measure")
    eligible = eligible_schools(matcher, relevant)
    points = []
    for variant in variants(match_settings, sweeps):
        started = time.perf_counter()
        results = suggest_all(
            dataclasses.replace(matcher, settings=variant.settings), relevant, variant.label, settings, show_bars
        )
        figures = product_figures(results, relevant, eligible, matcher.schools, settings, match_settings)
        point = Point(
            split.name,
            variant.parameter,
            variant.value,
            recall=figures[f"recall@{K}"],
            gini=figures[f"gini@{K}"],
            coverage=figures[f"coverage@{K}"],
            nsp_share=figures[f"nsp_share@{K}"],
            seconds=time.perf_counter() - started,
            current=variant.parameter in SWEEPS and variant.value == current_value(match_settings, variant.parameter),
        )
        say(
            f"  {variant.label}: recall@{K} {point.recall:.4f}, Gini@{K} {point.gini:.3f}, "
            f"coverage {point.coverage:.1%} ({point.seconds:.0f} s)"
        )
        points.append(point)
    return points, len(relevant)


def suggest_all(
    matcher: Matcher, relevant: dict[str, set[str]], label: str, settings: EvaluationSettings, show_bars: bool | None
) -> dict[str, SuggestionResult]:
    """The product's results for every query, as ``evaluate`` asks for them (lists ``max_k`` long)."""
    bar_off = None if show_bars is None else not show_bars
    with tqdm(total=len(relevant), desc=label, unit="query", file=sys.stderr, disable=bar_off) as bar:
        return product_lists(matcher, list(relevant), settings.max_k, settings.seed, bar.update)


def write_sensitivity(points: Sequence[Point], folder: Path, *, queries: int) -> dict[str, Path]:
    """sensitivity.csv, sensitivity.json and sensitivity.png (recall@10 against Gini@10) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [dataclasses.asdict(point) for point in points]
    csv_path = folder / "sensitivity.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    json_path = folder / "sensitivity.json"
    json_path.write_text(json.dumps({"queries": queries, "k": K, "points": rows}, indent=2), encoding="utf-8")
    return {"csv": csv_path, "json": json_path, "png": plot_tradeoff(points, folder / "sensitivity.png", queries)}


def plot_tradeoff(points: Sequence[Point], path: Path, queries: int) -> Path:
    """Each sweep as a line of labelled points; the reference without rebalancing as a star."""
    fig, ax = plt.subplots(figsize=(8, 6))
    by_parameter: dict[str, list[Point]] = {}
    for point in points:
        by_parameter.setdefault(point.parameter, []).append(point)
    for parameter, group in by_parameter.items():
        if parameter == "no_rebalancing":
            ax.scatter(
                [p.gini for p in group],
                [p.recall for p in group],
                marker="*",
                s=200,
                color="black",
                label="no rebalancing (reciprocal score only)",
                zorder=3,
            )
            continue
        ax.plot([p.gini for p in group], [p.recall for p in group], marker="o", label=parameter)
        for p in group:
            if not p.current:  # the current settings are one ringed point, shared by every sweep
                ax.annotate(f"{p.value:g}", (p.gini, p.recall), textcoords="offset points", xytext=(4, 4), fontsize=8)
    current = [p for p in points if p.current]
    if current:
        ax.scatter(
            [current[0].gini],
            [current[0].recall],
            s=260,
            facecolors="none",
            edgecolors="black",
            label="current settings",
            zorder=3,
        )
    ax.set_xlabel(f"exposure Gini@{K} (lower = attention spread more evenly)")
    ax.set_ylabel(f"recall@{K} (held-out partners found)")
    ax.set_title(f"Rebalancing trade-off, {points[0].split} split, {queries} sampled queries")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def points_table(points: Sequence[Point]) -> str:
    """The points as aligned text, for the terminal."""
    lines = [f"{'setting':<28} {'recall@10':>9} {'Gini@10':>8} {'coverage':>9} {'NSP':>6}"]
    lines += [
        f"{p.parameter + '=' + format(p.value, 'g'):<28} {p.recall:>9.4f} {p.gini:>8.3f} "
        f"{p.coverage:>9.1%} {p.nsp_share:>6.1%}"
        for p in points
    ]
    return "\n".join(lines)


def summary(points: Sequence[Point]) -> dict[str, Any]:
    """The setting with the lowest Gini among those within 10% of the best recall."""
    best_recall = max(p.recall for p in points)
    close = [p for p in points if p.recall >= 0.9 * best_recall]
    choice = min(close, key=lambda p: p.gini)
    return {"best_recall": best_recall, "suggested": dataclasses.asdict(choice)}
