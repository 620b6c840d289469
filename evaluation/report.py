"""The evaluation report staff read: report.md, metrics.json and PNG plots in one folder.

Reports go to ``<data_dir>/reports/<UTC timestamp>/``, and ``<data_dir>/reports/latest`` points
at the newest, so the staff page can show it with :func:`latest_report`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from data.taxonomies import country_name
from evaluation import metrics
from evaluation.plotting import plt, save_figure
from evaluation.run import METHODS, TARGET_BASELINES, Evaluation, SplitResult

REPORTS_FOLDER = "reports"
LATEST = "latest"
REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
TARGET_SPLIT = "time"

RECALL_RATIO_TARGET = 1.5
GINI_TARGET = 0.40
RECALL_KEPT_TARGET = 0.90
COVERAGE_TARGET = 0.80
LORENZ_POINTS = 101


@dataclass(frozen=True)
class TargetCheck:
    name: str
    statement: str
    measured: str
    met: bool


# --------------------------------------------------------------------------- targets


def check_targets(result: SplitResult, k: int = 10, product: str = "full_ranker") -> list[TargetCheck]:
    """The product's targets on one split: ``product`` (by default the full product with the trained
    ranker) against every baseline, and against its own ranking without rebalancing."""
    m = result.metrics
    recall = f"recall@{k}"
    full = m[product][recall]
    best = max(TARGET_BASELINES, key=lambda method: m[method][recall])
    best_value = m[best][recall]
    ratio = full / best_value if best_value else float("inf")
    unbalanced = "ranker" if product == "full_ranker" else "hybrid"
    hybrid = m[unbalanced][recall]
    kept = full / hybrid if hybrid else float("inf")
    gini = m[product][f"gini@{k}"]
    coverage = m[product][f"coverage@{k}"]
    gini_chance = coverage_chance = ""
    if shown := result.exposure.get(product):  # what chance alone would give the same sample
        places = sum(shown.values())
        gini_floor, covered = metrics.uniform_spread(places, len(shown))
        gini_chance = f" ({places:,} list places spread uniformly at random: {gini_floor:.3f})"
        coverage_chance = f" (uniformly at random: {covered:.1%})"
    violations = sum(m[method]["violations"] for method in METHODS)
    return [
        TargetCheck(
            "recall_vs_baselines",
            f"{METHODS[product][0]} recall@{k} >= {RECALL_RATIO_TARGET}x the best baseline "
            f"({', '.join(METHODS[b][0] for b in TARGET_BASELINES)})",
            f"{full:.4f} vs {METHODS[best][0]} {best_value:.4f}: {ratio:.2f}x",
            ratio >= RECALL_RATIO_TARGET,
        ),
        TargetCheck(
            "exposure_gini",
            f"Exposure Gini@{k} <= {GINI_TARGET:.2f} while recall@{k} stays >= {RECALL_KEPT_TARGET:.0%} of "
            f"{METHODS[unbalanced][0]}",
            f"Gini {gini:.3f}{gini_chance}; recall {full:.4f} is {kept:.0%} of {hybrid:.4f}",
            gini <= GINI_TARGET and kept >= RECALL_KEPT_TARGET,
        ),
        TargetCheck(
            "coverage",
            f"Catalogue coverage@{k} >= {COVERAGE_TARGET:.0%} of eligible schools",
            f"{coverage:.1%} of {result.diagnostics['eligible_schools']} eligible schools{coverage_chance}",
            coverage >= COVERAGE_TARGET,
        ),
        TargetCheck(
            "constraint_violations",
            "Constraint violations = 0 (every suggested pair re-checked against the hard rules)",
            f"{violations} over all methods ({m[product]['violations']} for {METHODS[product][0]})",
            violations == 0,
        ),
    ]


# --------------------------------------------------------------------------- writing


def reports_dir(data_dir: Path) -> Path:
    return Path(data_dir) / REPORTS_FOLDER


def latest_report(data_dir: Path) -> Path | None:
    """The folder of the newest report (it holds report.md, metrics.json and the PNGs), or None."""
    link = reports_dir(data_dir) / LATEST
    if not link.exists():
        return None
    folder = link.resolve()
    return folder if (folder / REPORT_FILE).is_file() else None


def new_report_dir(data_dir: Path, now: datetime | None = None, prefix: str = "") -> Path:
    """A fresh ``reports/<prefix><timestamp>`` folder (suffixed if two runs share a second)."""
    stamp = prefix + (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = reports_dir(data_dir)
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def point_latest(folder: Path) -> None:
    """Make ``reports/latest`` point at ``folder``, replacing the old link in one step."""
    link = folder.parent / LATEST
    temporary = folder.parent / f".{LATEST}-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(folder.name, target_is_directory=True)
    os.replace(temporary, link)


def write_report(evaluation: Evaluation, folder: Path, *, mark_latest: bool = True) -> Path:
    """Write report.md, metrics.json and the plots into ``folder``; return the report.md path."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "recall": plot_recall(evaluation, folder / "recall_at_k.png"),
        "lorenz": plot_lorenz(_main_split(evaluation), folder / "exposure_lorenz.png"),
        "countries": plot_countries(_main_split(evaluation), folder / "partner_countries.png"),
    }
    payload = metrics_payload(evaluation)
    (folder / METRICS_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    report = folder / REPORT_FILE
    report.write_text(render_markdown(evaluation, {key: path.name for key, path in figures.items()}), encoding="utf-8")
    if mark_latest and folder.parent.name == REPORTS_FOLDER:
        point_latest(folder)
    return report


def _main_split(evaluation: Evaluation) -> SplitResult:
    return evaluation.splits.get(TARGET_SPLIT) or next(iter(evaluation.splits.values()))


def metrics_payload(evaluation: Evaluation) -> dict[str, Any]:
    """Everything measured, as plain JSON: settings, diagnostics, metrics, curves, targets."""
    k = evaluation.settings.exposure_k
    splits = {}
    for name, result in evaluation.splits.items():
        curves = {}
        for method, counts in result.exposure.items():
            x, y = metrics.lorenz_curve(counts.values())
            keep = np.unique(np.linspace(0, len(x) - 1, min(LORENZ_POINTS, len(x))).round().astype(int))
            curves[method] = {"x": x[keep].round(4).tolist(), "y": y[keep].round(4).tolist()}
        splits[name] = {
            "seconds": round(result.seconds, 2),
            "diagnostics": result.diagnostics,
            "metrics": result.metrics,
            "lorenz": curves,
            "home_query_countries": {
                method: metrics.country_distribution(result.home_lists(method), result.country_of, k)
                for method in METHODS
            },
            "home_held_out_countries": metrics.country_distribution(result.home_partners(), result.country_of, k=10**6),
            "targets": [vars(t) for t in check_targets(result)] if k == 10 and 10 in evaluation.settings.ks else [],
        }
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_seconds": round(evaluation.seconds, 1),
        "world": evaluation.world,
        "settings": evaluation.settings.model_dump(mode="json"),
        "match_settings": evaluation.match_settings.model_dump(mode="json"),
        "methods": {key: {"label": label, "description": text} for key, (label, text) in METHODS.items()},
        "splits": splits,
    }


# --------------------------------------------------------------------------- plots


def plot_recall(evaluation: Evaluation, path: Path) -> Path:
    """Recall@k by method, grouped by k, one panel per split."""
    ks = evaluation.settings.ks
    results = list(evaluation.splits.values())
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.2), squeeze=False, sharey=True)
    width = 0.8 / len(METHODS)
    for ax, result in zip(axes[0], results, strict=True):
        for i, (method, (label, _)) in enumerate(METHODS.items()):
            values = [result.metrics[method][f"recall@{k}"] for k in ks]
            ax.bar(np.arange(len(ks)) + (i - (len(METHODS) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(np.arange(len(ks)), [f"@{k}" for k in ks])
        ax.set_title(f"{result.split.name} split ({len(result.relevant)} queries)")
        ax.set_xlabel("list length k")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("recall@k (held-out partners found)")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)


def plot_lorenz(result: SplitResult, path: Path) -> Path:
    """Lorenz curves of appearances in top lists: the closer to the diagonal, the more even."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect equality")
    for method, (label, _) in METHODS.items():
        counts = result.exposure[method]
        x, y = metrics.lorenz_curve(counts.values())
        ax.plot(x, y, label=f"{label} (Gini {metrics.exposure_gini(counts):.2f})")
    ax.set_xlabel("share of eligible schools (least shown first)")
    ax.set_ylabel("share of all appearances in top lists")
    ax.set_title(f"Exposure, {result.split.name} split")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_countries(result: SplitResult, path: Path, top: int = 10, k: int = 10) -> Path:
    """Partner countries suggested to home-country schools per method, next to their real held-out partners'."""
    rows = {
        label: metrics.country_distribution(result.home_lists(method), result.country_of, k)
        for method, (label, _) in METHODS.items()
    }
    rows["Held-out partners"] = metrics.country_distribution(result.home_partners(), result.country_of, k=10**6)
    totals: dict[str, float] = {}
    for shares in rows.values():
        for country, share in shares.items():
            totals[country] = totals.get(country, 0.0) + share
    shown = sorted(totals, key=lambda c: -totals[c])[:top]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.8))
    labels = list(rows)
    left = np.zeros(len(labels))
    colours = plt.get_cmap("tab20")
    for i, country in enumerate([*shown, "other"]):
        widths = np.array(
            [
                (1 - sum(rows[label].get(c, 0.0) for c in shown))
                if country == "other"
                else rows[label].get(country, 0.0)
                for label in labels
            ]
        )
        ax.barh(labels, widths, left=left, color=colours(i % 20), label=_country_label(country))
        left += widths
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(f"share of top-{k} suggestions (held-out partners: share of real partners)")
    ax.set_title(
        f"Partner countries suggested to {_country_label(result.home_country)} schools, {result.split.name} split"
    )
    ax.legend(fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return save_figure(fig, path)


def _country_label(code: str) -> str:
    if code == "other":
        return "other"
    try:
        return f"{code} {country_name(code)}"
    except KeyError:
        return code


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render_markdown(evaluation: Evaluation, figures: dict[str, str]) -> str:
    settings = evaluation.settings
    k = settings.exposure_k
    world = evaluation.world
    main = _main_split(evaluation)
    lines = [
        "# Match quality report",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {evaluation.seconds:.0f} s, on the store "
        f"`{world['store']}`: {world['schools']} schools ({world['home_schools']} Taiwanese), "
        f"{world['partnerships']} partnerships ({world['active_partnerships']} running).",
        "",
        "Partnerships were held out and each method was asked to suggest partners without seeing them. "
        "A method is good when the schools that really became partners appear near the top of its list, "
        "and when its lists spread attention fairly across schools.",
        "",
    ]
    for name, result in evaluation.splits.items() if k == 10 and 10 in settings.ks else ():
        checks = check_targets(result)  # every split: the targets hold on both, not on a chosen one
        lines += [f"## Targets ({name} split)", ""]
        lines += _table(
            ["Target", "Measured", "Met?"],
            [[c.statement, c.measured, "**met**" if c.met else "**NOT met**"] for c in checks],
        )
        missed = [c for c in checks if not c.met]
        lines += [
            "",
            f"{len(checks) - len(missed)} of {len(checks)} targets met."
            + (" Not met: " + "; ".join(c.statement for c in missed) + "." if missed else ""),
            "",
        ]
    lines += _reading(main, k)
    for result in evaluation.splits.values():
        lines += _accuracy_section(result, settings.ks)
    for result in evaluation.splits.values():
        lines += _beyond_section(result, k)
    lines += _diagnostics_section(evaluation)
    lines += [
        "## Figures",
        "",
        f"![Recall@k by method]({figures['recall']})",
        "",
        f"![Exposure Lorenz curves]({figures['lorenz']})",
        "",
        f"![Partner countries of suggestions]({figures['countries']})",
        "",
    ]
    lines += _method_notes(evaluation)
    return "\n".join(lines)


def _reading(result: SplitResult, k: int) -> list[str]:
    """The main comparisons in plain words, drawn from the numbers (nothing here is hand-written per run)."""
    m = result.metrics
    full, hybrid = m["full"], m["hybrid"]
    recall, gini = f"recall@{k}", f"gini@{k}"
    kept = full[recall] / hybrid[recall] if hybrid[recall] else float("nan")
    spread = "more" if full[gini] < hybrid[gini] else "less"
    lines = [
        f"## Reading the results ({result.split.name} split)",
        "",
        f"* The full product finds {kept:.0%} as many held-out partners in its top {k} as the reciprocal score "
        f"alone (hybrid without rebalancing), and spreads attention {spread} evenly (Gini {full[gini]:.2f} "
        f"against {hybrid[gini]:.2f}).",
    ]
    if full[recall] < hybrid[recall] and full[gini] >= hybrid[gini]:
        lines.append(
            "* So graph rebalancing and the diversity re-rank, as currently weighted, cost accuracy "
            "without buying a more even spread. `partnermatch sensitivity` shows how each weight moves "
            "both, to choose new weights knowingly."
        )
    best = max(TARGET_BASELINES, key=lambda method: m[method][recall])
    lines.append(
        f"* The best simple baseline is {METHODS[best][0]} (recall@{k} {m[best][recall]:.3f}); the "
        f"reciprocal score alone reaches {hybrid[recall]:.3f}."
    )
    d = result.diagnostics
    lines.append(
        f"* {d['reachable_share']:.0%} of held-out partners were eligible (passed every hard rule against the "
        f"training state) and {d['in_pool_share']:.0%} were among the candidates every method ranked for their "
        "school; no method can find the rest, which bounds every method's recall."
    )
    return [*lines, ""]


def _accuracy_section(result: SplitResult, ks: Sequence[int]) -> list[str]:
    d = result.diagnostics
    header = [
        "Method",
        *[f"recall@{k}" for k in ks],
        *[f"nDCG@{k}" for k in ks],
        *[f"hit@{k}" for k in ks],
        f"MRR@{ks[-1]}",
    ]
    rows = []
    for method, (label, _) in METHODS.items():
        m = result.metrics[method]
        rows.append(
            [
                label,
                *[_fmt(m[f"recall@{k}"]) for k in ks],
                *[_fmt(m[f"ndcg@{k}"]) for k in ks],
                *[_fmt(m[f"hit_rate@{k}"]) for k in ks],
                _fmt(m[f"mrr@{ks[-1]}"]),
            ]
        )
    cutoff = f" (those that started on or after {d['cutoff']})" if d["cutoff"] else " (a random sample of pairs)"
    comparison = d["full_vs_best_baseline"]
    p_value = comparison["p_value"]
    return [
        f"## Accuracy, {result.split.name} split",
        "",
        f"{d['held_out_partnerships']} partnerships held out{cutoff}; {d['queries']} schools asked "
        f"({d['home_queries']} Taiwanese, {d['foreign_queries']} abroad) for {d['held_out_partners']} held-out "
        "partners.",
        "",
        *_table(header, rows),
        "",
        f"Full product against the best baseline ({METHODS[comparison['best_baseline']][0]}) on "
        f"{comparison['metric']}: {_fmt(comparison['ratio'], 2)}x"
        + (f", paired t-test over queries p = {p_value:.3g}." if p_value is not None else "."),
        "",
        f"{METHODS['full_ranker'][0]} against every baseline on {comparison['metric']} (ratio, paired t-test p):",
        "",
        *_table(
            ["Baseline", "ratio", "p"],
            [
                [METHODS[baseline][0], _fmt(c["ratio"], 2), "-" if c["p_value"] is None else f"{c['p_value']:.3g}"]
                for baseline, c in d["full_ranker_vs_each_baseline"].items()
            ],
        ),
        "",
    ]


def _beyond_section(result: SplitResult, k: int) -> list[str]:
    header = [
        "Method",
        f"coverage@{k}",
        f"Gini@{k}",
        "countries per list",
        "country diversity",
        "NSP share",
        "remote exposure",
        "reciprocity",
        "violations",
    ]
    rows = []
    for method, (label, _) in METHODS.items():
        m = result.metrics[method]
        rows.append(
            [
                label,
                _fmt(m[f"coverage@{k}"]),
                _fmt(m[f"gini@{k}"]),
                _fmt(m[f"countries_per_list@{k}"], 2),
                _fmt(m[f"country_diversity@{k}"]),
                _fmt(m[f"nsp_share@{k}"]),
                _fmt(m[f"remote_exposure@{k}"], 2),
                _fmt(m[f"reciprocity@{k}"]),
                str(m["violations"]),
            ]
        )
    return [
        f"## Beyond accuracy, {result.split.name} split (top-{k} lists)",
        "",
        *_table(header, rows),
        "",
        f"* **coverage**: share of the {result.diagnostics['eligible_schools']} eligible schools (active, with room "
        "for a partner) that appear in at least one list.",
        "* **Gini**: how unevenly appearances spread over eligible schools (0 = everyone shown equally, "
        "1 = a few schools take every place); see the Lorenz curves below.",
        "* **countries per list** and **country diversity** (lists shown to Taiwanese schools): distinct partner "
        "countries in a list, and the share of pairs of suggestions in a list that are in different countries.",
        "* **NSP share** (lists shown to Taiwanese schools): share of suggestions in a New Southbound Policy country.",
        "* **remote exposure**: remote Taiwanese schools' share of appearances (in lists shown to schools abroad) "
        "divided by their share of eligible Taiwanese schools; 1 = parity, above 1 = shown more often.",
        "* **reciprocity**: share of suggestions whose fit is at least the high-fit threshold in both directions.",
        "* **violations**: suggested pairs that break a hard rule when re-checked; must be 0.",
        "",
    ]


def _diagnostics_section(evaluation: Evaluation) -> list[str]:
    lines = ["## What limits the scores", ""]
    for name, result in evaluation.splits.items():
        d = result.diagnostics
        lines.append(
            f"* {name} split: {d['reachable_share']:.0%} of held-out partners pass every hard rule against the "
            f"training state (the rest are at capacity, share no language or mode, etc., so no method may suggest "
            f"them); {d['in_pool_share']:.0%} are in the pool every method ranked "
            f"({_pool_words(evaluation.settings.pool_size)} passing the rules). The full product's own candidates lay "
            "inside that pool for "
            f"{d['full_in_pool_share']:.1%} of its suggestions. Adamic-Adar gave some candidate a non-zero score "
            f"for {d['adamic_adar_nonzero_share']:.1%} of queries. Time: {result.seconds:.0f} s."
        )
    return [*lines, ""]


def _pool_words(pool_size: int | None) -> str:
    """How the shared pool was drawn, in words: every eligible school, or the nearest few."""
    return "every candidate" if pool_size is None else f"the {pool_size} nearest candidates (by profile vector)"


def _method_notes(evaluation: Evaluation) -> list[str]:
    settings = evaluation.settings
    lines = [
        "## How this was measured",
        "",
        "* **Splits.** Time split: the most recent "
        f"{settings.holdout_share:.0%} of partnerships by start date are held out; the recommender sees the network "
        "as it stood on the cut-off day (partnerships that ended before it are history and hold no capacity; those "
        "running on that day count as active). Random split: a seeded sample of partnered pairs is held out, with "
        "every partnership of a sampled pair. Held-out pairs still partnered in the training state are dropped "
        "(a renewal, not a new match). Profiles are today's.",
        "* **Queries.** "
        + (
            "Both schools of every held-out pair ask for partners (Taiwanese and foreign)."
            if settings.sides == "both"
            else "The Taiwanese school of every held-out pair asks for partners."
        )
        + (f" A seeded sample of at most {settings.max_queries} queries per split." if settings.max_queries else ""),
        f"* **Same candidates, same constraints.** For each query, {_pool_words(settings.pool_size)} passing "
        "every hard rule form one pool, and every method orders that pool; the full product retrieves its own "
        "candidates under the same rules. Ties are broken in a seeded random order.",
        f"* **Lists** are {settings.max_k} long; shorter cut-offs are prefixes of them. Accuracy metrics are computed "
        "with ranx (binary relevance: a held-out partner).",
        "",
        "Methods:",
        "",
        *(f"* **{label}**: {text}." for label, text in METHODS.values()),
        "",
        "The default scope pairs every partnership with a Taiwanese school, so the partnership graph is "
        "bipartite (Taiwanese schools on one side, schools abroad on the other). A Taiwanese school and a school "
        "abroad then share no common neighbour, and plain Adamic-Adar and Jaccard are 0 for every candidate: "
        "their rows are a random order in disguise. *Adamic-Adar, 3-paths* is the bipartite adaptation: it sums, "
        "over paths you - your partner - a school on your side that shares that partner - candidate, the weight "
        "1 / sqrt(ln deg(partner) * ln deg(peer)).",
        "",
    ]
    return lines
