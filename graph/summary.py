"""Figures about the partnership network for the staff statistics page."""

from __future__ import annotations

from collections import Counter
from typing import Any

import networkx as nx
import numpy as np

from graph.build import active_graph
from graph.clusters import cross_border_clusters


def gini(values: list[float]) -> float:
    """Gini coefficient: 0 when every school has as many partners as the next, toward 1 when a
    few hold them all. ``sum((2i - n - 1)·x_i) / (n·sum(x))`` over the values sorted ascending.

    >>> gini([1, 1, 1, 1]), gini([0, 0, 0, 4])
    (0.0, 0.75)
    """
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, x.size + 1)
    return float(np.sum((2 * ranks - x.size - 1) * x) / (x.size * x.sum()))


def graph_summary(G: nx.Graph, *, seed: int = 0) -> dict[str, Any]:
    """Size and spread of the active partnership network.

    ``schools`` and ``active_schools`` count nodes; the rest counts active schools and active
    partnerships only: ``partnerships``, ``components`` (groups of schools linked by
    partnerships, loners not counted), ``largest_component``, ``share_with_partner``,
    ``degree_gini``, ``countries`` (active schools per country, most first) and
    ``cross_border_clusters`` (see :func:`cross_border_clusters`, seeded with ``seed``).

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> from graph.build import build_partnership_graph
    >>> G = build_partnership_graph(
    ...     [School(id=i, name_en=i, country=i[:2].upper(), levels=["primary"]) for i in ("tw-a", "tw-b", "vn-x")],
    ...     [Partnership(school_a="tw-a", school_b="vn-x", start_date=date(2024, 1, 1))])
    >>> summary = graph_summary(G)
    >>> summary["partnerships"], summary["components"], round(summary["share_with_partner"], 3), summary["countries"]
    (1, 1, 0.667, {'TW': 2, 'VN': 1})
    """
    active = active_graph(G)
    schools = [node for node, is_active in G.nodes(data="active") if is_active]
    degrees = [active.degree(node) for node in schools]
    partnered_components = [c for c in nx.connected_components(active) if len(c) > 1]
    countries = Counter(G.nodes[node]["country"] for node in schools)
    return {
        "schools": G.number_of_nodes(),
        "active_schools": len(schools),
        "partnerships": active.number_of_edges(),
        "components": len(partnered_components),
        "largest_component": max((len(c) for c in partnered_components), default=0),
        "share_with_partner": sum(d > 0 for d in degrees) / len(schools) if schools else 0.0,
        "degree_gini": gini(degrees),
        "countries": dict(sorted(countries.items(), key=lambda item: (-item[1], item[0]))),
        "cross_border_clusters": len(cross_border_clusters(G, seed=seed)),
    }
