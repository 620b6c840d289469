"""The partnership graph: schools as nodes, partnerships as edges, kept current by live updates.

Every rebalancing signal is read off this graph, so it holds only what those signals use:
node attributes ``country``, ``capacity``, ``remoteness``, ``active``, ``region``; edge
attributes ``partnership_id``, ``start_date``, ``end_date``, ``modes``, ``sdgs``.
``G.graph["active_only"]`` records whether ended partnerships were left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import networkx as nx

from data.errors import Conflict, NotFound
from data.schema import Partnership, School


def build_partnership_graph(
    schools: Iterable[School], partnerships: Iterable[Partnership], *, active_only: bool = True
) -> nx.Graph:
    """One node per school (partnered or not), one edge per pair of partnered schools.

    With ``active_only=False`` ended partnerships are edges too (``end_date`` set); when a pair
    has several, the edge shows the active one, else the one that ended last. Signals always
    count active partnerships only, whichever kind of graph they get.

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> schools = [School(id=i, name_en=i, country=c, levels=["primary"])
    ...            for i, c in [("tw-a", "TW"), ("vn-x", "VN"), ("th-z", "TH")]]
    >>> G = build_partnership_graph(schools, [Partnership(id="p1", school_a="tw-a", school_b="vn-x",
    ...                                                   start_date=date(2024, 9, 1))])
    >>> sorted(G.nodes), G.number_of_edges(), G.nodes["vn-x"]["country"], G.edges["tw-a", "vn-x"]["partnership_id"]
    (['th-z', 'tw-a', 'vn-x'], 1, 'VN', 'p1')
    """
    G = nx.Graph(active_only=active_only)
    by_id: dict[str, School] = {}
    for school in schools:
        if school.id in by_id:
            raise ValueError(f"id: school {school.id!r} appears twice")
        by_id[school.id] = school
        G.add_node(school.id, **_node_attributes(school))
    for partnership in partnerships:
        partnership.check_schools(by_id)
        if active_only and not partnership.active:
            continue
        _put_edge(G, partnership)
    return G


def add_partnership(G: nx.Graph, partnership: Partnership) -> None:
    """Add a partnership that has just started (or, in a full graph, any partnership).

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> G = build_partnership_graph([School(id=i, name_en=i, country=c, levels=["primary"])
    ...                              for i, c in [("tw-a", "TW"), ("vn-x", "VN")]], [])
    >>> add_partnership(G, Partnership(id="p1", school_a="tw-a", school_b="vn-x", start_date=date(2025, 2, 1)))
    >>> G.degree("tw-a")
    1
    """
    for field in ("school_a", "school_b"):
        if getattr(partnership, field) not in G:
            raise NotFound("school", getattr(partnership, field))
    a, b = partnership.school_a, partnership.school_b
    if G.nodes[a]["country"] == G.nodes[b]["country"]:
        raise ValueError(f"school_b: {a} and {b} are both in {G.nodes[a]['country']}; partnerships must cross a border")
    if G.graph["active_only"] and not partnership.active:
        raise ValueError(
            f"end_date: partnership {partnership.id!r} has ended; this graph holds active partnerships only"
        )
    _put_edge(G, partnership)


def end_partnership(G: nx.Graph, partnership: Partnership) -> None:
    """Record that a partnership ended: an active-only graph drops the edge, a full graph dates it.

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> p = Partnership(id="p1", school_a="tw-a", school_b="vn-x", start_date=date(2024, 9, 1))
    >>> G = build_partnership_graph([School(id=i, name_en=i, country=c, levels=["primary"])
    ...                              for i, c in [("tw-a", "TW"), ("vn-x", "VN")]], [p])
    >>> end_partnership(G, p.model_copy(update={"end_date": date(2025, 6, 30)}))
    >>> G.number_of_edges()
    0
    """
    if partnership.end_date is None:
        raise ValueError(f"end_date: partnership {partnership.id!r} has no end date; end it in the store first")
    a, b = partnership.school_a, partnership.school_b
    if not G.has_edge(a, b):
        raise NotFound("partnership", partnership.id or f"{a}–{b}")
    edge = G.edges[a, b]
    if edge["end_date"] is not None:
        raise Conflict(f"partnership {edge['partnership_id']!r} between {a} and {b} has already ended")
    if partnership.id is not None and edge["partnership_id"] not in (None, partnership.id):
        raise Conflict(
            f"id: the active partnership between {a} and {b} is {edge['partnership_id']!r}, not {partnership.id!r}"
        )
    if G.graph["active_only"]:
        G.remove_edge(a, b)
    else:
        edge["end_date"] = partnership.end_date


def update_school(G: nx.Graph, school: School) -> None:
    """Add a new school or refresh an edited one; its partnerships stay as they are.

    >>> from data.schema import School
    >>> G = build_partnership_graph([School(id="tw-a", name_en="A", country="TW", levels=["primary"])], [])
    >>> update_school(G, School(id="tw-a", name_en="A", country="TW", levels=["primary"], capacity=6))
    >>> G.nodes["tw-a"]["capacity"]
    6
    """
    for neighbour in G.adj.get(school.id, {}):
        if G.nodes[neighbour]["country"] == school.country:
            raise Conflict(f"country: {school.id} cannot move to {school.country}; its partner {neighbour} is there")
    G.add_node(school.id, **_node_attributes(school))


def active_partners(G: nx.Graph, node: str) -> list[str]:
    """Schools ``node`` works with now (edges without an end date), sorted by id.

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> G = build_partnership_graph(
    ...     [School(id=i, name_en=i, country=c, levels=["primary"]) for i, c in [("tw-a", "TW"), ("vn-x", "VN")]],
    ...     [Partnership(school_a="tw-a", school_b="vn-x", start_date=date(2020, 1, 1), end_date=date(2021, 1, 1))],
    ...     active_only=False)
    >>> active_partners(G, "tw-a"), G.degree("tw-a")
    ([], 1)
    """
    node_attributes(G, node)
    return sorted(other for other, edge in G.adj[node].items() if edge["end_date"] is None)


def partner_countries(G: nx.Graph, node: str) -> Counter[str]:
    """How many active partners ``node`` has in each country.

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> G = build_partnership_graph(
    ...     [School(id=i, name_en=i, country=c, levels=["primary"])
    ...      for i, c in [("tw-a", "TW"), ("vn-x", "VN"), ("vn-y", "VN")]],
    ...     [Partnership(school_a="tw-a", school_b=b, start_date=date(2024, 1, 1)) for b in ("vn-x", "vn-y")])
    >>> partner_countries(G, "tw-a")
    Counter({'VN': 2})
    """
    return Counter(G.nodes[other]["country"] for other in active_partners(G, node))


def active_graph(G: nx.Graph) -> nx.Graph:
    """A read-only view with ended partnerships hidden (``G`` itself when it has none)."""
    if G.graph["active_only"]:
        return G
    return nx.subgraph_view(G, filter_edge=lambda u, v: G.edges[u, v]["end_date"] is None)


def node_attributes(G: nx.Graph, node: str) -> dict[str, Any]:
    """The node's attributes, or NotFound naming the school (networkx would raise a bare KeyError)."""
    if node not in G:
        raise NotFound("school", node)
    return G.nodes[node]


def _node_attributes(school: School) -> dict[str, Any]:
    return {
        "country": school.country,
        "capacity": school.capacity,
        "remoteness": school.remoteness,
        "active": school.active,
        "region": school.region,
    }


def _put_edge(G: nx.Graph, partnership: Partnership) -> None:
    """Add the partnership's edge; a pair holds one edge, so keep the active or latest-ended one."""
    a, b = partnership.school_a, partnership.school_b
    if G.has_edge(a, b):
        existing = G.edges[a, b]
        if existing["end_date"] is None and partnership.active:
            raise Conflict(
                f"school_b: {a} and {b} already have active partnership {existing['partnership_id']!r}; "
                f"{partnership.id!r} would be a second"
            )
        if existing["end_date"] is None or (
            partnership.end_date is not None and partnership.end_date <= existing["end_date"]
        ):
            return
    G.add_edge(
        a,
        b,
        partnership_id=partnership.id,
        start_date=partnership.start_date,
        end_date=partnership.end_date,
        modes=tuple(partnership.modes),
        sdgs=tuple(partnership.sdgs),
    )
