"""Baseline rankers: simple ways to order one query's candidate pool, to judge the product against.

Every baseline orders the *same* pool: the candidates that pass every hard rule for the query
(see :mod:`evaluation.run`), so none can suggest an impossible pair and differences come from
the ordering alone. Ties are broken in a seeded random order, never by the pool's own order (which
is the reciprocal score's): a score that says nothing about a pair then ranks like the random
baseline instead of quietly inheriting the product's ranking.

Graph baselines read the *training history* graph: every partnership the recommender may see,
ended ones included, since a past partnership is evidence of who works with whom.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

import networkx as nx


def tie_break_rng(seed: int, query: str) -> random.Random:
    """A random stream per (seed, query), so a query's ties break the same way in every run."""
    return random.Random(f"{seed}:{query}")


def rank_by_score(scores: Mapping[str, float], rng: random.Random, k: int) -> list[str]:
    """The ``k`` highest-scoring ids; equal scores in random order.

    >>> rank_by_score({"a": 1.0, "b": 3.0, "c": 2.0}, random.Random(0), 2)
    ['b', 'c']
    """
    ids = sorted(scores)
    rng.shuffle(ids)
    ids.sort(key=lambda school: -scores[school])  # stable: ties keep the shuffled order
    return ids[:k]


def random_order(pool: Sequence[str], rng: random.Random, k: int) -> list[str]:
    """Random baseline: ``k`` candidates drawn uniformly from the pool."""
    return rng.sample(sorted(pool), min(k, len(pool)))


def popularity_scores(G: nx.Graph, pool: Sequence[str]) -> dict[str, float]:
    """Popularity baseline: how many partnerships (running or ended) each candidate has had."""
    return {school: float(G.degree(school)) for school in pool}


def adamic_adar_scores(G: nx.Graph, source: str, pool: Sequence[str]) -> dict[str, float]:
    """networkx Adamic-Adar: sum over common neighbours z of 1 / ln deg(z).

    When every partnership has a Taiwanese side (the default scope) the graph is bipartite, a
    Taiwanese school and a foreign one have no common neighbour, and this is 0 for every pair."""
    return {v: score for _, v, score in nx.adamic_adar_index(G, [(source, v) for v in pool])}


def jaccard_scores(G: nx.Graph, source: str, pool: Sequence[str]) -> dict[str, float]:
    """networkx Jaccard: |N(u) ∩ N(v)| / |N(u) ∪ N(v)|; 0 for every cross-side pair of a bipartite graph."""
    return {v: score for _, v, score in nx.jaccard_coefficient(G, [(source, v) for v in pool])}


def adamic_adar_l3_scores(G: nx.Graph, source: str, pool: Sequence[str]) -> dict[str, float]:
    """Adamic-Adar adapted to a bipartite graph: paths of length three instead of common neighbours.

    ``score(u, v) = Σ over paths u – x – y – v of 1 / sqrt(ln deg(x) · ln deg(y))``: v works with
    a school y on u's side that shares a partner x with u ("partners of my partner's peers"). Each
    path is weighted by the geometric mean of the Adamic-Adar weights of its two middle schools, so
    a path through hubs counts less, as in Kovács et al.'s L3 link predictor (Nat. Commun. 2019).
    Both middle schools have degree >= 2 on such a path, so the logarithms are positive.

    >>> G = nx.Graph([("tw-u", "vn-x"), ("tw-y", "vn-x"), ("tw-y", "th-v")])
    >>> round(adamic_adar_l3_scores(G, "tw-u", ["th-v", "my-w"])["th-v"], 4)
    1.4427
    """
    wanted = set(pool)
    scores: dict[str, float] = defaultdict(float)
    if source in G:
        for x in G.adj[source]:
            for y in G.adj[x]:
                if y == source or G.degree(y) < 2:  # a peer with no other partner leads nowhere
                    continue
                weight = 1.0 / math.sqrt(math.log(G.degree(x)) * math.log(G.degree(y)))
                for v in G.adj[y]:
                    if v in wanted and v != x:
                        scores[v] += weight
    return {v: scores.get(v, 0.0) for v in pool}


def region_partner_scores(G: nx.Graph, source: str, pool: Sequence[str]) -> dict[str, float]:
    """ "Partners of schools in my region": how many partnerships each candidate has had with
    schools of the source's region (county, or ISO 3166-2 region abroad) and country.

    >>> G = nx.Graph([("tw-a", "vn-x"), ("tw-b", "vn-x"), ("tw-c", "th-v")])
    >>> G.add_nodes_from(["tw-a", "tw-b", "tw-u"], country="TW", region="TW-TPE")
    >>> G.add_nodes_from(["tw-c"], country="TW", region="TW-HUA")
    >>> region_partner_scores(G, "tw-u", ["vn-x", "th-v"])
    {'vn-x': 2.0, 'th-v': 0.0}
    """
    home = (G.nodes[source].get("country"), G.nodes[source].get("region"))
    return {
        v: float(sum((G.nodes[x].get("country"), G.nodes[x].get("region")) == home for x in G.adj[v]))
        if v in G
        else 0.0
        for v in pool
    }
