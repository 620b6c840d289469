"""Measures of a set of suggestion lists: accuracy against held-out partners (with ranx) and the
beyond-accuracy figures staff care about (who gets seen, how varied the lists are).

A *list* is one query's suggestions, best first, as school ids. Every function here is a plain
function of lists and facts about schools, so it can be checked on hand-made cases.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
from ranx import Qrels, Run, evaluate

from data.taxonomies import NSP_COUNTRIES
from graph import gini

ACCURACY_METRICS: tuple[str, ...] = ("recall", "ndcg", "hit_rate")


def accuracy_metric_names(ks: Iterable[int]) -> list[str]:
    """ranx metric names: recall@k, ndcg@k and hit_rate@k for every k, then MRR over the longest list."""
    ks = sorted(set(ks))
    return [f"{metric}@{k}" for k in ks for metric in ACCURACY_METRICS] + [f"mrr@{ks[-1]}"]


def accuracy(
    relevant: Mapping[str, Collection[str]],
    lists: Mapping[str, Sequence[str]],
    ks: Iterable[int],
    *,
    per_query: bool = False,
) -> dict[str, float] | dict[str, np.ndarray]:
    """recall@k, nDCG@k, hit rate@k and MRR, averaged over the queries in ``relevant`` (binary relevance).

    A query missing from ``lists`` (or with an empty list) scores 0. ``per_query`` returns one
    value per query, in ``sorted(relevant)`` order, for paired comparisons.
    """
    queries = sorted(q for q, docs in relevant.items() if docs)
    if not queries:
        raise ValueError("relevant: no query has a relevant school; nothing to evaluate")
    qrels = Qrels({q: {doc: 1 for doc in relevant[q]} for q in queries})
    # Scores that fall with the rank, so ranx keeps the list's order exactly.
    run = Run(
        {
            q: {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}
            for q in queries
            if (ranked := _unique(lists.get(q, ())))
        }
    )
    names = accuracy_metric_names(ks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's "unsafe cast" notes from inside ranx
        scores = evaluate(qrels, run, names, return_mean=not per_query, make_comparable=True)
    if per_query:
        return {name: np.asarray(values, dtype=float) for name, values in scores.items()}
    return {name: float(value) for name, value in scores.items()}


def _unique(ranked: Sequence[str]) -> list[str]:
    if len(set(ranked)) != len(ranked):
        raise ValueError(f"lists: a list names a school twice: {list(ranked)}")
    return list(ranked)


# --------------------------------------------------------------------------- exposure


def exposure_counts(lists: Iterable[Sequence[str]], eligible: Collection[str], k: int) -> dict[str, int]:
    """How many top-k lists each eligible school appears in (0 for those never shown)."""
    counts = Counter(school for ranked in lists for school in ranked[:k])
    return {school: counts.get(school, 0) for school in eligible}


def coverage(counts: Mapping[str, int]) -> float:
    """Share of eligible schools that appear in at least one list."""
    return sum(1 for n in counts.values() if n > 0) / len(counts) if counts else 0.0


def lorenz_curve(values: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points of the Lorenz curve: x = share of schools (fewest appearances first), y = their share
    of all appearances; both start at 0 and end at 1. The diagonal is perfect equality.

    >>> x, y = lorenz_curve([0, 0, 1, 3])
    >>> x.tolist(), y.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.0, 0.25, 1.0])
    """
    ordered = np.sort(np.asarray(list(values), dtype=float))
    if ordered.size == 0:
        raise ValueError("values: the Lorenz curve of nothing is undefined")
    total = ordered.sum()
    cumulative = np.cumsum(ordered) / total if total > 0 else np.linspace(1 / ordered.size, 1, ordered.size)
    x = np.arange(ordered.size + 1) / ordered.size
    return x, np.concatenate([[0.0], cumulative])


def exposure_gini(counts: Mapping[str, int]) -> float:
    """Gini of appearances over eligible schools: 0 when all are shown equally often, near 1 when a few take all."""
    return gini(list(counts.values()))


def uniform_spread(places: int, schools: int, draws: int = 5) -> tuple[float, float]:
    """Gini and coverage if ``places`` list places fell on ``schools`` schools uniformly at random
    (mean of ``draws`` seeded draws): the floor chance alone sets for a sample of queries. With few
    places per school even a perfectly even-handed recommender shows some schools twice and others
    never, so a Gini or coverage target can be out of reach for a small sample, whatever the method.

    >>> gini_floor, covered = uniform_spread(3000, 1805)
    >>> 0.40 < gini_floor < 0.46, 0.78 < covered < 0.82
    (True, True)
    >>> uniform_spread(0, 10)
    (0.0, 0.0)
    """
    if schools <= 0:
        raise ValueError(f"schools: must be at least 1, got {schools}")
    if places == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(0)
    counts = [np.bincount(rng.integers(0, schools, places), minlength=schools) for _ in range(draws)]
    return (
        float(np.mean([gini(c.tolist()) for c in counts])),
        float(np.mean([np.count_nonzero(c) / schools for c in counts])),
    )


def remote_exposure_ratio(counts: Mapping[str, int], remote: Collection[str]) -> float | None:
    """Remote schools' share of appearances divided by their share of eligible schools: 1 is
    parity, above 1 they are shown more than their numbers. None without remote schools or appearances."""
    remote_eligible = [school for school in counts if school in remote]
    total = sum(counts.values())
    if not remote_eligible or total == 0:
        return None
    appearance_share = sum(counts[school] for school in remote_eligible) / total
    return appearance_share / (len(remote_eligible) / len(counts))


# --------------------------------------------------------------------------- what the lists hold


def intra_list_country_diversity(lists: Iterable[Sequence[str]], country_of: Mapping[str, str], k: int) -> float:
    """Mean over lists (of 2 or more) of the share of pairs of suggestions in different countries.

    >>> round(intra_list_country_diversity([["a", "b", "c"]], {"a": "MY", "b": "MY", "c": "VN"}, 10), 4)
    0.6667
    """
    shares = []
    for ranked in lists:
        countries = [country_of[school] for school in ranked[:k]]
        n = len(countries)
        if n < 2:
            continue
        same = sum(c * (c - 1) for c in Counter(countries).values())
        shares.append(1 - same / (n * (n - 1)))
    return float(np.mean(shares)) if shares else 0.0


def countries_per_list(lists: Iterable[Sequence[str]], country_of: Mapping[str, str], k: int) -> float:
    """Mean number of different countries in a non-empty top-k list."""
    counts = [len({country_of[school] for school in ranked[:k]}) for ranked in lists if ranked]
    return float(np.mean(counts)) if counts else 0.0


def nsp_share(lists: Iterable[Sequence[str]], country_of: Mapping[str, str], k: int) -> float:
    """Share of suggestions whose school is in a New Southbound Policy country."""
    suggested = [country_of[school] for ranked in lists for school in ranked[:k]]
    return sum(c in NSP_COUNTRIES for c in suggested) / len(suggested) if suggested else 0.0


def reciprocity(fits: Iterable[tuple[float, float]], high_fit: float) -> float:
    """Share of suggested pairs whose fit is at least ``high_fit`` in both directions."""
    pairs = list(fits)
    return (
        sum(forward >= high_fit and backward >= high_fit for forward, backward in pairs) / len(pairs) if pairs else 0.0
    )


def country_distribution(lists: Iterable[Sequence[str]], country_of: Mapping[str, str], k: int) -> dict[str, float]:
    """Share of top-k suggestions per partner country, largest first."""
    counts = Counter(country_of[school] for ranked in lists for school in ranked[:k])
    total = sum(counts.values())
    return {country: n / total for country, n in counts.most_common()} if total else {}
