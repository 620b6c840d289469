"""Cross-border clusters: groups of schools already working together, and short bridges into them.

A school whose partner's peers work in a new country has a trusted way in: "Z works with Y,
which shares your partner X". These functions find such paths and the clusters they sit in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import networkx as nx

from data.taxonomies import HOME_COUNTRY_DEFAULT
from graph.build import active_graph, active_partners, node_attributes


class BridgePath(NamedTuple):
    """``source`` — ``via_partner`` — ``via_peer`` — ``candidate``, each edge an active partnership.

    Exactly what the sentence "<candidate> works with <via_peer> (<via_peer_country>), which
    shares your partner <via_partner> (<via_partner_country>)" needs. A named tuple: a request
    makes one per candidate its partners' peers reach (dozens), at a third of a frozen dataclass's cost.
    """

    candidate: str
    candidate_country: str
    via_peer: str
    via_peer_country: str
    via_partner: str
    via_partner_country: str


def cluster_bridges(
    G: nx.Graph, source: str, *, home_country: str = HOME_COUNTRY_DEFAULT, max_partners: int = 50
) -> dict[str, BridgePath]:
    """Candidates two partnerships beyond ``source``'s partners, keyed by candidate id.

    Path: my partner X -> another school Y on my side that also works with X -> Y's partner Z.
    "My side" is ``home_country`` for a home-country source, and any other country for a
    foreign one. For a home-country source Z must be in a country where the source has no
    partner yet (the bridge opens a new country); a foreign source's candidates are all in the
    home country, so there Z need only be a school it does not work with yet. Z must be active.
    From each intermediate school at most ``max_partners`` partnerships are followed, the
    longest-standing first, so a hub costs no more than an ordinary school. Where several paths
    reach one candidate, the one with the smallest (X, Y) ids is kept, for repeatable output.

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> from graph.build import build_partnership_graph
    >>> G = build_partnership_graph(
    ...     [School(id=i, name_en=i, country=c, levels=["primary"])
    ...      for i, c in [("tw-me", "TW"), ("vn-x", "VN"), ("tw-y", "TW"), ("th-z", "TH")]],
    ...     [Partnership(school_a=a, school_b=b, start_date=date(2024, 1, 1))
    ...      for a, b in [("tw-me", "vn-x"), ("tw-y", "vn-x"), ("tw-y", "th-z")]])
    >>> cluster_bridges(G, "tw-me")
    {'th-z': BridgePath(candidate='th-z', candidate_country='TH', via_peer='tw-y', via_peer_country='TW', \
via_partner='vn-x', via_partner_country='VN')}
    """
    if max_partners < 1:
        raise ValueError(f"max_partners: must be >= 1, got {max_partners}")
    source_country = node_attributes(G, source)["country"]
    source_is_home = source_country == home_country
    nodes = G._node  # the raw node dicts: a request walks thousands of nodes; a view per lookup cost more
    my_partners = set(active_partners(G, source))
    covered_countries = {nodes[partner]["country"] for partner in my_partners}
    active_only = G.graph.get("active_only", False)
    followed: dict[str, list[str]] = {}  # a peer shared by several partners is followed once

    def followed_partners(node: str) -> list[str]:
        found = followed.get(node)
        if found is None:
            found = followed[node] = _followed_partners(G, node, max_partners, active_only)
        return found

    bridges: dict[str, BridgePath] = {}
    for partner in sorted(my_partners):
        partner_country = nodes[partner]["country"]
        for peer in followed_partners(partner):
            peer_country = nodes[peer]["country"]
            if peer == source or (peer_country == home_country) != source_is_home:  # not on my side
                continue
            for candidate in followed_partners(peer):
                if candidate in bridges or candidate == source or candidate in my_partners:
                    continue
                attributes = nodes[candidate]
                country = attributes["country"]
                if not attributes["active"] or country == source_country:
                    continue
                if source_is_home and country in covered_countries:  # a home school's bridge opens a new country
                    continue
                bridges[candidate] = BridgePath(candidate, country, peer, peer_country, partner, partner_country)
    return bridges


def _followed_partners(G: nx.Graph, node: str, limit: int, active_only: bool) -> list[str]:
    """Up to ``limit`` active partners of ``node`` (a neighbour in ``G``), the longest-standing
    first, then by id; read from the raw adjacency, as :func:`cluster_bridges` calls it per node
    walked (every edge of an active-only graph is active)."""
    adjacent = G._adj[node]
    partners = (
        list(adjacent) if active_only else [other for other, edge in adjacent.items() if edge["end_date"] is None]
    )
    if len(partners) > limit:
        partners = sorted(partners, key=lambda other: (adjacent[other]["start_date"], other))[:limit]
    return sorted(partners)


def cluster_boost(path: BridgePath | None, *, weight: float = 0.10) -> float:
    """``1 + weight`` for a candidate reached by a bridge, else 1: one path is enough to say why.

    >>> cluster_boost(None), cluster_boost(BridgePath("th-z", "TH", "tw-y", "TW", "vn-x", "VN"))
    (1.0, 1.1)
    """
    if weight < 0:
        raise ValueError(f"weight: must be >= 0, got {weight}")
    return 1.0 + weight if path is not None else 1.0


@dataclass(frozen=True)
class Cluster:
    """A community of the partnership graph spanning at least two countries.

    ``countries`` maps each country to how many members are there, largest first.
    """

    members: tuple[str, ...]
    countries: dict[str, int]

    @property
    def size(self) -> int:
        return len(self.members)


def cross_border_clusters(G: nx.Graph, *, seed: int = 0, resolution: float = 1.0, min_size: int = 3) -> list[Cluster]:
    """Louvain communities of the active partnership graph with at least ``min_size`` members in
    at least two countries, largest first. Seeded, so the same graph gives the same clusters.

    Higher ``resolution`` gives more, smaller clusters (see networkx ``louvain_communities``).

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> from graph.build import build_partnership_graph
    >>> groups = [("tw-a", "tw-b", "vn-x", "vn-y"), ("tw-c", "tw-d", "th-x", "th-y")]
    >>> G = build_partnership_graph(
    ...     [School(id=i, name_en=i, country=i[:2].upper(), levels=["primary"]) for g in groups for i in g],
    ...     [Partnership(school_a=a, school_b=b, start_date=date(2024, 1, 1))
    ...      for tw_1, tw_2, abroad_1, abroad_2 in groups for a in (tw_1, tw_2) for b in (abroad_1, abroad_2)])
    >>> for cluster in cross_border_clusters(G):
    ...     print(cluster.members, cluster.countries)
    ('th-x', 'th-y', 'tw-c', 'tw-d') {'TH': 2, 'TW': 2}
    ('tw-a', 'tw-b', 'vn-x', 'vn-y') {'TW': 2, 'VN': 2}
    """
    if min_size < 1:
        raise ValueError(f"min_size: must be >= 1, got {min_size}")
    if resolution <= 0:
        raise ValueError(f"resolution: must be > 0, got {resolution}")
    active = active_graph(G)
    clusters: list[Cluster] = []
    for community in nx.community.louvain_communities(active, resolution=resolution, seed=seed):
        if len(community) < min_size:
            continue
        counts = Counter(G.nodes[member]["country"] for member in community)
        if len(counts) < 2:
            continue
        countries = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        clusters.append(Cluster(members=tuple(sorted(community)), countries=countries))
    clusters.sort(key=lambda cluster: (-cluster.size, cluster.members))
    return clusters
