"""Offline evaluation: hold partnerships out, let every method suggest, and measure the lists.

For each split (see :mod:`evaluation.splits`) the recommender is built from the training
partnerships only (profiles, index, graph, capacity) with ``Matcher.build``. The *queries* are
the active schools with a held-out partner; with ``sides="both"`` (the default) that is both
schools of every held-out pair, Taiwanese and foreign, since a partnership is a match for both.

Same candidates, same constraints: for every query one *pool* is retrieved: by default every
school that passes every hard rule against the training state (``Matcher.candidates`` with
rebalancing neutral and no MMR), or the ``pool_size`` nearest of them by profile vector when
capped. Every method ranks that pool, so no method is held back by another's candidate list
(the report gives the share of held-out partners that are eligible at all and in the pool):

* ``random``, ``popularity`` (partnerships in the training history), ``content`` (vector
  similarity), ``adamic_adar`` and ``jaccard`` (networkx, training history graph) and
  ``adamic_adar_l3`` (the bipartite adaptation, see :mod:`evaluation.baselines`);
* ``hybrid``: the reciprocal score alone (rebalancing weights neutral, diversity off);
* ``full``: the product itself, ``Matcher.suggest`` with the settings as deployed. It retrieves
  its own candidates the same way (hard rules applied), which lie within the pool whenever the
  pool holds every eligible school; the share that does is reported.
  Its queries run one after another in a seeded arrival order, each list recorded as shown, so
  the exposure factor acts as it does in the service (see :func:`add_full_product`).

Lists are ``max(ks, exposure_k)`` long and shorter lists are prefixes (the product is asked once
for the longest list). Beyond-accuracy measures use the top ``exposure_k`` of the same queries'
lists; *eligible* schools are the active schools on the queried sides' candidate sides that have
room in the training state (a school at capacity can never be suggested). Country measures
(countries per list, country diversity, New Southbound share) read the lists shown to home-country
schools only: a foreign school's candidates are all in the home country under the default scope.
Remote exposure reads the home-country candidates, the only ones with a remoteness category.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
from scipy.stats import ttest_rel
from tqdm import tqdm

import graph
from data.schema import Partnership, School
from data.store import Store
from data.taxonomies import HOME_COUNTRY_DEFAULT, Remoteness
from embeddings import ProfileEmbedder
from evaluation import baselines, metrics
from evaluation.settings import EvaluationSettings
from evaluation.splits import Split, make_split
from matching.constraints import PairContext, check_pair
from matching.engine import Matcher
from matching.ranker import (
    InsufficientHistory,
    RankerModel,
    TrainingSettings,
    train,
    without_rebalancing,
)
from matching.results import SuggestionResult
from matching.retrieve import Candidate, Request, retrieve
from matching.settings import MatchSettings

# Method key -> (label shown to staff, one-line description).
METHODS: dict[str, tuple[str, str]] = {
    "random": ("Random", "a random order of the candidates that pass the hard rules"),
    "popularity": ("Popularity", "most partnerships in the training history first"),
    "content": ("Content only", "most similar profile vector first (the index's own order)"),
    "adamic_adar": ("Adamic-Adar", "networkx Adamic-Adar index on the training graph (common partners)"),
    "jaccard": ("Jaccard", "networkx Jaccard coefficient on the training graph (common partners)"),
    "adamic_adar_l3": ("Adamic-Adar, 3-paths", "Adamic-Adar over paths you - partner - peer - candidate"),
    "region": ("My region's partners", "partners of schools in my region (county) first, by how many"),
    "hybrid": ("Hybrid, no rebalancing", "reciprocal score only: graph rebalancing neutral, no diversity re-rank"),
    "full": ("Full product", "Matcher.suggest as deployed: reciprocal score, graph rebalancing, MMR diversity"),
    "ranker": ("Trained ranker, no rebalancing", "the ranker trained on the split's training part, pool order"),
    "full_ranker": ("Full product with ranker", "Matcher.suggest with the trained ranker as the rank base"),
}
TARGET_BASELINES: tuple[str, ...] = (
    "random",
    "popularity",
    "content",
    "adamic_adar",
    "jaccard",
    "adamic_adar_l3",
    "region",
)
"""Baselines the product must beat by the recall target: every one of them."""

CHUNK = 25
"""Queries per task handed to a worker process: small enough for smooth progress, large enough to be cheap."""

Progress = Callable[[str], None]


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class SplitResult:
    """Everything measured on one split: the lists of every method and the figures drawn from them."""

    split: Split
    relevant: dict[str, set[str]]
    """Query school id -> its held-out partners."""
    lists: dict[str, dict[str, list[str]]]
    """Method -> query -> suggested ids, best first."""
    metrics: dict[str, dict[str, Any]]
    """Method -> metric name -> value."""
    exposure: dict[str, dict[str, int]]
    """Method -> eligible school -> appearances in top-exposure_k lists."""
    diagnostics: dict[str, Any]
    seconds: float
    country_of: dict[str, str] = field(repr=False, default_factory=dict)
    home_country: str = HOME_COUNTRY_DEFAULT

    def home_lists(self, method: str) -> list[list[str]]:
        """The method's lists for home-country queries: where the partner's country is a choice."""
        return [ranked for query, ranked in self.lists[method].items() if self.country_of[query] == self.home_country]

    def home_partners(self) -> list[list[str]]:
        """The held-out partners of home-country queries."""
        return [
            sorted(partners) for query, partners in self.relevant.items() if self.country_of[query] == self.home_country
        ]


@dataclass
class Evaluation:
    """The result of one run over a store: every split, with the settings it ran with."""

    settings: EvaluationSettings
    match_settings: MatchSettings
    splits: dict[str, SplitResult]
    world: dict[str, Any]
    seconds: float


# --------------------------------------------------------------------------- entry point


def evaluate_store(
    store: Store,
    embedder: ProfileEmbedder,
    settings: EvaluationSettings | None = None,
    match_settings: MatchSettings | None = None,
    *,
    progress: Progress | None = print_progress,
    show_bars: bool | None = None,
) -> Evaluation:
    """Evaluate matching on whatever world the store holds (generated, imported or real)."""
    settings = settings or EvaluationSettings()
    match_settings = match_settings or MatchSettings()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    schools = list(store.iter_schools())
    partnerships = store.list_partnerships()
    say(
        f"loaded {len(schools)} schools and {len(partnerships)} partnerships from the store "
        f"({time.perf_counter() - started:.1f} s)"
    )
    results = {}
    for name in settings.splits:
        split = make_split(name, partnerships, settings.holdout_share, settings.seed)
        say(split.describe())
        results[name] = evaluate_split(
            schools, split, embedder, settings, match_settings, progress=say, show_bars=show_bars
        )
    world = {
        "schools": len(schools),
        "active_schools": sum(s.active for s in schools),
        "home_schools": sum(s.country == match_settings.home_country for s in schools),
        "partnerships": len(partnerships),
        "active_partnerships": sum(p.active for p in partnerships),
        "store": repr(store),
    }
    return Evaluation(settings, match_settings, results, world, time.perf_counter() - started)


def query_targets(
    split: Split, schools: dict[str, School], settings: EvaluationSettings, home_country: str
) -> dict[str, set[str]]:
    """Query -> held-out partners, for active schools on the asked sides (seeded sample if capped)."""
    relevant: dict[str, set[str]] = defaultdict(set)
    for a, b in split.held_out_pairs():
        if not (schools[a].active and schools[b].active):
            continue
        for source, partner in ((a, b), (b, a)):
            if settings.sides == "both" or schools[source].country == home_country:
                relevant[source].add(partner)
    queries = sorted(relevant)
    if settings.max_queries is not None and len(queries) > settings.max_queries:
        queries = sorted(random.Random(settings.seed).sample(queries, settings.max_queries))
    return {q: relevant[q] for q in queries}


# --------------------------------------------------------------------------- one split


def build_matcher(
    schools: Sequence[School], train: Iterable[Partnership], embedder: ProfileEmbedder, match_settings: MatchSettings
) -> Matcher:
    """The recommender as it would be built from the training partnerships alone."""
    return Matcher.build(schools, train, embedder, match_settings)


@dataclass
class QueryOutcome:
    """One query's lists from every method, with what the measures need about them."""

    query: str
    lists: dict[str, list[str]]
    fits: dict[str, tuple[float, float]]
    """Suggested school -> (fit forward, fit backward)."""
    violations: dict[str, int]
    counters: Counter[str]
    pool: set[str]
    """The ids in the query's shared candidate pool."""


@dataclass
class QueryContext:
    """What judging a query reads: the recommender built on the training partnerships, and more."""

    matcher: Matcher
    history: nx.Graph
    relevant: dict[str, set[str]]
    settings: EvaluationSettings
    pool_settings: MatchSettings
    rules: PairContext
    ranker: RankerModel | None = None
    """The ranker trained on this split's training part (None: too little history; it ranks as the hybrid)."""


def judge_query(context: QueryContext, query: str) -> QueryOutcome:
    """Every method's list for one query, each suggested pair re-checked against the hard rules."""
    matcher, settings = context.matcher, context.settings
    by_id = matcher.schools
    source = by_id[query]
    pool = query_pool(matcher, source, settings.pool_size, context.pool_settings)
    scores = baseline_scores(context.history, source, pool)
    ranked = rank_all(source, pool, scores, settings.max_k, settings.seed)
    ranked["ranker"] = ranker_order(context, source, pool, settings.max_k)
    listed = set().union(*ranked.values())
    fits = {c.school.id: (c.fit_forward, c.fit_backward) for c in pool if c.school.id in listed}
    in_pool = {c.school.id for c in pool}
    counters: Counter[str] = Counter(
        pool_size=len(pool),
        held_out_partners=len(context.relevant[query]),
        held_out_reachable=sum(check_pair(source, by_id[p], context.rules).ok for p in context.relevant[query]),
        held_out_in_pool=len(context.relevant[query] & in_pool),
        **{f"{method}_nonzero": any(v > 0 for v in scores[method].values()) for method in GRAPH_BASELINES},
    )
    verdicts = {school: check_pair(source, by_id[school], context.rules).ok for school in listed}
    violations = {method: sum(not verdicts[school] for school in ids) for method, ids in ranked.items()}
    return QueryOutcome(query, ranked, fits, violations, counters, in_pool)


def ranker_order(context: QueryContext, source: School, pool: Sequence[Candidate], k: int) -> list[str]:
    """The pool ordered by the trained ranker alone (the reciprocal score's order without a model),
    through the engine's own ranking step restricted to the pool."""
    if context.ranker is None:
        return [c.school.id for c in pool[:k]]
    with_model = replace(context.matcher, ranker=context.ranker)
    request = Request(source, k, context.pool_settings, rebalanced=False, limit=k)
    [found] = retrieve(with_model, [request], within={c.school.id for c in pool})
    return [c.school.id for c in found.ranked]


def product_lists(
    matcher: Matcher, queries: Sequence[str], k: int, seed: int, on_done: Callable[[int], None] | None = None
) -> dict[str, SuggestionResult]:
    """The product's results for ``queries``, asked one after another in a seeded arrival order.

    Sequential on purpose: as deployed, every list shown is recorded and damps the exposure of
    the schools in it for the lists that follow (``Matcher.record_shown``), so each list depends
    on the ones before it, as it does in the service. The lists are recorded in a fresh ledger
    whose clock stands still (the queries arrive in one instant): the figures then depend on the
    queries, their order and the settings only, never on how long a run took, so ``evaluate`` and
    ``sensitivity`` (which both call this) agree exactly. ``matcher``'s own ledger is left alone."""
    report = on_done or (lambda _count: None)
    ledger = graph.ExposureLedger(matcher.settings.rebalance.exposure_half_life_hours, clock=_still)
    fresh = replace(matcher, exposure=ledger)
    arrivals = list(queries)
    random.Random(seed).shuffle(arrivals)
    results = {}
    for query in arrivals:
        results[query] = fresh.suggest(query, k)
        fresh.record_shown(results[query])
        report(1)
    return results


def _still() -> float:
    """The evaluation's clock: every list is shown at the same instant, so recorded exposure never decays."""
    return 0.0


def product_figures(
    results: dict[str, SuggestionResult],
    relevant: dict[str, set[str]],
    eligible: set[str],
    schools: dict[str, School],
    settings: EvaluationSettings,
    match_settings: MatchSettings,
) -> dict[str, Any]:
    """:func:`measure` of the product's results (from :func:`product_lists`), in the queries' order:
    the one way ``evaluate`` and ``sensitivity`` turn the product's lists into figures."""
    lists = {query: [s.school_id for s in results[query].suggestions] for query in relevant}
    fits = {
        (query, s.school_id): (s.fit_forward, s.fit_backward) for query in relevant for s in results[query].suggestions
    }
    return measure(lists, relevant, eligible, fits, schools, settings, match_settings)


def add_full_product(
    context: QueryContext,
    outcomes: Sequence[QueryOutcome],
    seed: int,
    on_done: Callable[[int], None] | None = None,
    *,
    method: str = "full",
    matcher: Matcher | None = None,
) -> dict[str, SuggestionResult]:
    """Each outcome completed with the product's list (see :func:`product_lists`) and its checks,
    under ``method``; ``matcher`` defaults to the context's (the product as deployed). Returns the
    product's results, for :func:`product_figures`."""
    matcher = matcher or context.matcher
    results = product_lists(matcher, [o.query for o in outcomes], context.settings.max_k, seed, on_done)
    for outcome in outcomes:
        source, full = matcher.schools[outcome.query], results[outcome.query].suggestions
        outcome.lists[method] = [s.school_id for s in full]
        outcome.fits.update({s.school_id: (s.fit_forward, s.fit_backward) for s in full})
        outcome.counters.update(
            {
                f"{method}_suggestions": len(full),
                f"{method}_suggestions_in_pool": sum(s.school_id in outcome.pool for s in full),
            }
        )
        outcome.violations[method] = sum(
            not check_pair(source, matcher.schools[s.school_id], context.rules).ok for s in full
        )
    return results


_FORKED: tuple[Callable[[Any, str], Any], Any] | None = None
"""(function, context) that worker processes inherit when they are forked (never pickled)."""


def _run_forked(queries: list[str]) -> list[Any]:
    if _FORKED is None:
        raise RuntimeError("worker started without a function to run")
    function, context = _FORKED
    return [function(context, query) for query in queries]


def map_queries(
    function: Callable[[Any, str], Any],
    context: Any,
    queries: Sequence[str],
    workers: int,
    on_done: Callable[[int], None] | None = None,
) -> list[Any]:
    """``[function(context, q) for q in queries]``, in ``workers`` forked processes when more than one.

    Forking shares the context (the matcher, its indexes and graph) copy-on-write, so nothing is
    rebuilt or pickled on the way in; only the results travel back. Order is kept. ``on_done``
    hears how many queries each finished chunk held, for progress."""
    report = on_done or (lambda _count: None)
    if workers <= 1 or len(queries) < 2 * CHUNK:
        results = []
        for query in queries:
            results.append(function(context, query))
            report(1)
        return results
    global _FORKED
    _FORKED = (function, context)
    try:
        chunks = [list(queries[i : i + CHUNK]) for i in range(0, len(queries), CHUNK)]
        results = []
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for done in pool.imap(_run_forked, chunks):
                results.extend(done)
                report(len(done))
        return results
    finally:
        _FORKED = None


def evaluate_split(
    schools: Sequence[School],
    split: Split,
    embedder: ProfileEmbedder,
    settings: EvaluationSettings,
    match_settings: MatchSettings,
    *,
    progress: Progress | None = None,
    show_bars: bool | None = None,
) -> SplitResult:
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    matcher = build_matcher(schools, split.train, embedder, match_settings)
    history = graph.build_partnership_graph(schools, split.train, active_only=False)
    by_id = matcher.schools
    relevant = query_targets(split, by_id, settings, match_settings.home_country)
    if not relevant:
        raise ValueError(f"{split.name} split: no active school has a held-out partner; nothing to evaluate")
    say(
        f"  {split.name}: recommender built in {time.perf_counter() - started:.1f} s; {len(relevant)} queries, "
        f"{settings.workers} worker(s)"
    )
    pool_settings = without_rebalancing(match_settings)
    model = train_split_ranker(matcher, split, settings, say)
    context = QueryContext(matcher, history, relevant, settings, pool_settings, matcher.context(), model)
    bar_off = None if show_bars is None else not show_bars  # None: a bar only on a terminal
    with tqdm(total=len(relevant), desc=f"{split.name} split", unit="query", file=sys.stderr, disable=bar_off) as bar:
        step, next_line = max(1, len(relevant) // 10), [max(1, len(relevant) // 10)]

        def advance(count: int) -> None:
            bar.update(count)
            if bar.disable and bar.n >= next_line[0]:  # no bar (not a terminal): a line every tenth instead
                say(f"  {split.name}: {bar.n}/{len(relevant)} queries ({time.perf_counter() - started:.0f} s)")
                next_line[0] += step

        outcomes = map_queries(judge_query, context, list(relevant), settings.workers, advance)
    say(f"  {split.name}: baseline lists made in {time.perf_counter() - started:.1f} s; the product's lists next")
    products: dict[str, dict[str, SuggestionResult]] = {}
    with tqdm(total=len(relevant), desc=f"{split.name} product", unit="query", file=sys.stderr, disable=bar_off) as bar:
        products["full"] = add_full_product(context, outcomes, settings.seed, bar.update)
    with tqdm(total=len(relevant), desc=f"{split.name} ranker", unit="query", file=sys.stderr, disable=bar_off) as bar:
        products["full_ranker"] = add_full_product(
            context, outcomes, settings.seed, bar.update, method="full_ranker", matcher=replace(matcher, ranker=model)
        )
    say(f"  {split.name}: product lists made in {time.perf_counter() - started:.1f} s")
    lists: dict[str, dict[str, list[str]]] = {
        method: {o.query: o.lists[method] for o in outcomes} for method in METHODS
    }
    fits = {(o.query, school): fit for o in outcomes for school, fit in o.fits.items()}
    counters = sum((o.counters for o in outcomes), Counter())
    eligible = eligible_schools(matcher, relevant)
    measured = {
        method: product_figures(products[method], relevant, eligible, by_id, settings, match_settings)
        if method in products
        else measure(lists[method], relevant, eligible, fits, by_id, settings, match_settings)
        for method in METHODS
    }
    for method in METHODS:
        measured[method]["violations"] = sum(o.violations[method] for o in outcomes)
    exposure = {method: measured[method].pop("exposure_counts") for method in METHODS}
    diagnostics = split_diagnostics(split, relevant, counters, eligible, matcher, lists, settings)
    diagnostics["full_vs_best_baseline"] = paired_comparison(lists, relevant, measured, settings)
    diagnostics["full_ranker_vs_best_baseline"] = paired_comparison(lists, relevant, measured, settings, "full_ranker")
    diagnostics["full_ranker_vs_each_baseline"] = {
        baseline: paired_comparison(lists, relevant, measured, settings, "full_ranker", baseline)
        for baseline in TARGET_BASELINES
    }
    diagnostics["ranker"] = context.ranker.metadata if context.ranker else None
    return SplitResult(
        split,
        relevant,
        lists,
        measured,
        exposure,
        diagnostics,
        time.perf_counter() - started,
        {school_id: school.country for school_id, school in by_id.items()},
        match_settings.home_country,
    )


def train_split_ranker(
    matcher: Matcher, split: Split, settings: EvaluationSettings, say: Progress
) -> RankerModel | None:
    """The ranker trained on the split's training partnerships only (None when they are too few), its
    positives hidden from them the way the split hides its own: the newest on the time split, a
    random share of the pairs on the random split."""
    started = time.perf_counter()
    try:
        model = train(
            matcher, split.train, TrainingSettings(holdout="time" if split.cutoff else "random", seed=settings.seed)
        )
    except InsufficientHistory as exc:
        say(f"  {split.name}: no ranker ({exc})")
        return None
    v = model.metadata["validation"]
    say(
        f"  {split.name}: ranker trained in {time.perf_counter() - started:.1f} s on {model.metadata['rows']} rows; "
        f"validation recall@10 {v['recall@10']:.3f} (reciprocal score {v['recall@10_reciprocal']:.3f})"
    )
    return model


def query_pool(matcher: Matcher, source: School, size: int | None, pool_settings: MatchSettings) -> list[Candidate]:
    """Every candidate that passes every hard rule (or the ``size`` nearest of them), ordered by
    reciprocal score. A depth of every stored school makes the engine rank all eligible ones."""
    depth = size or len(matcher.schools)
    passed, _, _ = matcher.candidates(source, depth, settings=pool_settings, depth=depth)
    return sorted(passed, key=lambda c: (-c.rank_score, c.school.id))


SCORED_BASELINES: tuple[str, ...] = ("popularity", "content", "adamic_adar", "jaccard", "adamic_adar_l3", "region")
GRAPH_BASELINES: tuple[str, ...] = ("adamic_adar", "jaccard", "adamic_adar_l3")


def baseline_scores(history: nx.Graph, source: School, pool: Sequence[Candidate]) -> dict[str, dict[str, float]]:
    """Each scored baseline's score for every candidate in the pool."""
    ids = [c.school.id for c in pool]
    return {
        "popularity": baselines.popularity_scores(history, ids),
        "content": {c.school.id: c.similarity for c in pool},
        "adamic_adar": baselines.adamic_adar_scores(history, source.id, ids),
        "jaccard": baselines.jaccard_scores(history, source.id, ids),
        "adamic_adar_l3": baselines.adamic_adar_l3_scores(history, source.id, ids),
        "region": baselines.region_partner_scores(history, source.id, ids),
    }


def rank_all(
    source: School, pool: Sequence[Candidate], scores: dict[str, dict[str, float]], k: int, seed: int
) -> dict[str, list[str]]:
    """Every pool-based method's top ``k`` for one query (the pool comes ordered by reciprocal score)."""
    ids = [c.school.id for c in pool]
    ranked = {"random": baselines.random_order(ids, baselines.tie_break_rng(seed, source.id), k)}
    for method in SCORED_BASELINES:
        ranked[method] = baselines.rank_by_score(scores[method], baselines.tie_break_rng(seed, source.id), k)
    ranked["hybrid"] = ids[:k]
    return ranked


def eligible_schools(matcher: Matcher, relevant: dict[str, set[str]]) -> set[str]:
    """Active schools on the queries' candidate sides with room in the training state."""
    sides = {side for query in relevant for side in matcher.candidate_sides(matcher.schools[query])}
    return {
        school_id
        for side in sides
        for school_id in matcher.indexes[side].ids()
        if matcher.free_places(matcher.schools[school_id]) > 0
    }


def measure(
    lists: dict[str, list[str]],
    relevant: dict[str, set[str]],
    eligible: set[str],
    fits: dict[tuple[str, str], tuple[float, float]],
    schools: dict[str, School],
    settings: EvaluationSettings,
    match_settings: MatchSettings,
) -> dict[str, Any]:
    """Accuracy and beyond-accuracy figures of one method's lists."""
    k = settings.exposure_k
    country_of = {school_id: school.country for school_id, school in schools.items()}
    top = list(lists.values())
    home = match_settings.home_country
    home_top = [ranked for query, ranked in lists.items() if schools[query].country == home]
    counts = metrics.exposure_counts(top, eligible, k)
    home_counts = {school: n for school, n in counts.items() if schools[school].country == home}
    remote = {school_id for school_id, school in schools.items() if school.remoteness != Remoteness.ORDINARY}
    return {
        **metrics.accuracy(relevant, lists, settings.ks),
        f"coverage@{k}": metrics.coverage(counts),
        f"gini@{k}": metrics.exposure_gini(counts),
        f"country_diversity@{k}": metrics.intra_list_country_diversity(home_top, country_of, k),
        f"countries_per_list@{k}": metrics.countries_per_list(home_top, country_of, k),
        f"nsp_share@{k}": metrics.nsp_share(home_top, country_of, k),
        f"remote_exposure@{k}": metrics.remote_exposure_ratio(home_counts, remote),
        f"reciprocity@{k}": metrics.reciprocity(
            (fits[query, school] for query, ranked in lists.items() for school in ranked[:k]), match_settings.high_fit
        ),
        f"mean_list_length@{k}": sum(min(len(ranked), k) for ranked in top) / len(top),
        "exposure_counts": counts,
    }


def split_diagnostics(
    split: Split,
    relevant: dict[str, set[str]],
    counters: Counter[str],
    eligible: set[str],
    matcher: Matcher,
    lists: dict[str, dict[str, list[str]]],
    settings: EvaluationSettings,
) -> dict[str, Any]:
    """What bounds the scores: how many held-out partners any method could have found."""
    home = sum(1 for q in relevant if matcher.schools[q].country == matcher.settings.home_country)
    partners = counters["held_out_partners"]
    return {
        "split": split.name,
        "cutoff": split.cutoff.isoformat() if split.cutoff else None,
        "train_partnerships": len(split.train),
        "train_active_partnerships": sum(p.active for p in split.train),
        "held_out_partnerships": len(split.held_out),
        "queries": len(relevant),
        "home_queries": home,
        "foreign_queries": len(relevant) - home,
        "held_out_partners": partners,
        "reachable_share": counters["held_out_reachable"] / partners,
        "in_pool_share": counters["held_out_in_pool"] / partners,
        "mean_pool_size": counters["pool_size"] / len(relevant),
        "full_in_pool_share": counters["full_suggestions_in_pool"] / max(counters["full_suggestions"], 1),
        "eligible_schools": len(eligible),
        **{f"{method}_nonzero_share": counters[f"{method}_nonzero"] / len(relevant) for method in GRAPH_BASELINES},
        "empty_full_lists": sum(1 for ranked in lists["full"].values() if not ranked),
        "max_k": settings.max_k,
    }


def paired_comparison(
    lists: dict[str, dict[str, list[str]]],
    relevant: dict[str, set[str]],
    measured: dict[str, dict[str, Any]],
    settings: EvaluationSettings,
    method: str = "full",
    against: str | None = None,
) -> dict[str, Any]:
    """``method`` (the full product) against baseline ``against`` (default: the best target
    baseline) on recall@10: ratio and paired t-test over queries."""
    metric = f"recall@{10 if 10 in settings.ks else settings.ks[-1]}"
    best = against or max(TARGET_BASELINES, key=lambda method: measured[method][metric])
    full = metrics.accuracy(relevant, lists[method], settings.ks, per_query=True)[metric]
    baseline = metrics.accuracy(relevant, lists[best], settings.ks, per_query=True)[metric]
    same = bool((full == baseline).all())
    return {
        "metric": metric,
        "best_baseline": best,
        "ratio": measured[method][metric] / measured[best][metric] if measured[best][metric] else None,
        "p_value": None if same else float(ttest_rel(full, baseline).pvalue),
    }
