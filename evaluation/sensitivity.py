"""How the rebalancing weights trade accuracy for an even spread: recall@10 against exposure Gini@10.

One weight is moved at a time from the current settings (the others stay as they are), the full
product (ranking by the ranker trained on the split's training part, when the history is large
enough) is asked for every sampled query, and each setting becomes one point on the plot:

* ``boost_scale`` multiplies no_partner_boost, remote_boost and cluster_boost together (each
  capped at 1, the largest a boost may be);
* ``saturation_threshold``: load above which a busy school is pushed down;
* ``diversity_decay``: factor per partner the asking school already has in a country;
* ``mmr_lambda``: 1 is pure relevance, lower values trade score for variety within a list;
* ``exposure_strength``: damping of schools shown more often than average (the queries run in a
  seeded arrival order with a fresh exposure ledger per setting, as in the evaluation).

Bounded in time: it runs on the time split with a seeded sample of queries (``max_queries``,
default 600; about 10-30 ms per query and setting, one query after another). With fewer queries there are
fewer appearances to spread over the same eligible schools, so every Gini is higher than the
full evaluation's: compare the points with each other, not with the report's target.
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
from evaluation import metrics
from evaluation.plotting import plt, save_figure
from evaluation.run import (
    Progress,
    build_matcher,
    eligible_schools,
    print_progress,
    product_lists,
    query_targets,
    train_split_ranker,
    without_rebalancing,
)
from evaluation.settings import EvaluationSettings
from evaluation.splits import time_split
from matching.engine import Matcher
from matching.settings import MatchSettings

BOOST_FIELDS: tuple[str, ...] = ("no_partner_boost", "remote_boost", "cluster_boost")
SWEEPS: dict[str, tuple[float, ...]] = {
    "boost_scale": (0.0, 0.5, 1.0, 2.0, 3.0),
    "saturation_threshold": (0.25, 0.5, 0.75, 1.0),
    "diversity_decay": (0.4, 0.7, 1.0),
    "mmr_lambda": (0.5, 0.75, 0.9, 0.95, 1.0),  # 0.95 is the default
    "exposure_strength": (0.0, 0.1, 0.3, 1.0),
}
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
    """One variant per (parameter, value), plus the hybrid without rebalancing as a reference point."""
    chosen = [
        Variant(parameter, value, vary(base, parameter, value))
        for parameter, values in (sweeps or SWEEPS).items()
        for value in values
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
    """Recall@10 and Gini@10 of the full product for each variant on the time split, and the number
    of queries they were measured on."""
    settings = settings or EvaluationSettings(max_queries=DEFAULT_QUERIES)
    match_settings = match_settings or MatchSettings()
    say = progress or (lambda _message: None)
    schools = list(store.iter_schools())
    split = time_split(store.list_partnerships(), settings.holdout_share)
    say(split.describe())
    matcher = build_matcher(schools, split.train, embedder, match_settings)
    matcher.ranker = train_split_ranker(
        matcher, split, settings, say
    )  # the sweep tunes rebalancing on the trained score
    relevant = query_targets(split, matcher.schools, settings, match_settings.home_country)
    if not relevant:
        raise ValueError("time split: no active school has a held-out partner; nothing to measure")
    eligible = eligible_schools(matcher, relevant)
    country_of = {school_id: school.country for school_id, school in matcher.schools.items()}
    points = []
    for variant in variants(match_settings, sweeps):
        started = time.perf_counter()
        lists = suggest_all(
            dataclasses.replace(matcher, settings=variant.settings), relevant, variant.label, settings.seed, show_bars
        )
        counts = metrics.exposure_counts(lists.values(), eligible, K)
        point = Point(
            variant.parameter,
            variant.value,
            recall=metrics.accuracy(relevant, lists, [K])[f"recall@{K}"],
            gini=metrics.exposure_gini(counts),
            coverage=metrics.coverage(counts),
            nsp_share=metrics.nsp_share(
                [ranked for query, ranked in lists.items() if country_of[query] == match_settings.home_country],
                country_of,
                K,
            ),
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
    matcher: Matcher, relevant: dict[str, set[str]], label: str, seed: int, show_bars: bool | None
) -> dict[str, list[str]]:
    """The full product's top-K ids for every query, in arrival order with a fresh exposure ledger."""
    bar_off = None if show_bars is None else not show_bars
    fresh = dataclasses.replace(matcher, exposure=None)
    with tqdm(total=len(relevant), desc=label, unit="query", file=sys.stderr, disable=bar_off) as bar:
        results = product_lists(fresh, list(relevant), K, seed, bar.update)
    return {query: [s.school_id for s in result.suggestions] for query, result in results.items()}


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
    ax.set_title(f"Rebalancing trade-off, time split, {queries} sampled queries")
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
