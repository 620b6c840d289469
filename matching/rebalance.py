"""Graph rebalancing of a ranked list: the plain graph/ signals turned into score factors.

Each signal becomes an :class:`Adjustment` (a multiplicative factor with the facts behind it),
so the final score is ``reciprocal score × Π factors`` and every factor can be explained.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

import graph
from data.schema import School
from data.taxonomies import REMOTENESS_ZH, Remoteness, country_name, country_name_zh
from matching.reasons import Reason
from matching.settings import RebalanceWeights
from matching.table import ProfileTable


@dataclass(frozen=True)
class Adjustment:
    code: str
    factor: float
    data: dict[str, Any] = field(default_factory=dict)

    def reason(self) -> Reason:
        en, zh = _TEXTS[self.code](self.data)
        return Reason(code=self.code, weight=round(self.factor, 4), data=self.data, text_en=en, text_zh=zh)


def _saturation(d: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"Has {d['partners']} partner(s) and {d['pending']} open invitation(s) for {d['capacity']} places: "
        "ranked lower so busy schools are not overloaded",
        f"已有 {d['partners']} 個夥伴、{d['pending']} 個待回覆邀請（名額 {d['capacity']}）：排序調降，避免負擔過重",
    )


def _no_partner(_: Mapping[str, Any]) -> tuple[str, str]:
    return ("Has no partner yet: ranked higher so new schools get a chance", "尚無合作夥伴：排序提前，讓新學校有機會")


def _remote(d: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"A remote school ({d['remoteness'].replace('_', ' ')}): ranked higher for equity",
        f"偏遠地區學校（{d['remoteness_zh']}）：基於教育平權排序提前",
    )


def _bridge(d: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"Works with {d['via_peer_name']}, which shares your partner {d['via_partner_name']} in "
        f"{country_name(d['via_partner_country'])}: joins your cross-border group and adds "
        f"{country_name(d['candidate_country'])}",
        f"與{d['via_peer_name']}合作，而該校與貴校共同的夥伴為{country_name_zh(d['via_partner_country'])}的"
        f"{d['via_partner_name']}：可加入貴校的跨境學校群組，並新增{country_name_zh(d['candidate_country'])}",
    )


def _diversity(d: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"You already have {d['partners_there']} partner(s) in {country_name(d['country'])}: ranked a little lower",
        f"貴校在{country_name_zh(d['country'])}已有 {d['partners_there']} 個夥伴：排序略降",
    )


def _responsiveness(d: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"Let {d['expired']} of {d['received']} invitation(s) expire unanswered: ranked lower",
        f"曾有 {d['expired']}/{d['received']} 個邀請逾期未回覆：排序調降",
    )


def _exposure(d: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"Shown in about {d['shown']:g} recent suggestion lists, {d['times_average']:g}× the average school: "
        "ranked a little lower so other schools get seen too",
        f"近期已出現在約 {d['shown']:g} 份推薦名單中（一般學校的 {d['times_average']:g} 倍）："
        "排序略降，讓其他學校也被看見",
    )


_TEXTS: dict[str, Callable[[Mapping[str, Any]], tuple[str, str]]] = {
    "saturation": _saturation,
    "no_partner_yet": _no_partner,
    "remote_school": _remote,
    "cluster_bridge": _bridge,
    "country_diversity": _diversity,
    "responsiveness": _responsiveness,
    "exposure": _exposure,
}

Exposure = Callable[[School], tuple[float, float]]
"""Candidate -> (its recent appearances in suggestion lists, the average of its side)."""


class Rebalancer:
    """The graph's factors for one request: what depends only on the source is computed once.

    >>> import networkx as nx
    >>> from data.schema import School
    >>> G = nx.Graph(active_only=True)
    >>> source = School(id="tw-a", name_en="A", country="TW", levels=["primary"])
    >>> new = School(id="my-b", name_en="B", country="MY", levels=["primary"], remoteness="remote")
    >>> for s in (source, new): graph.update_school(G, s)
    >>> weights = RebalanceWeights(no_partner_boost=0.15, remote_boost=0.1)
    >>> [(a.code, a.factor) for a in Rebalancer(G, source, weights=weights)(new)]
    [('no_partner_yet', 1.15), ('remote_school', 1.1)]
    """

    def __init__(
        self,
        G: nx.Graph,
        source: School,
        *,
        weights: RebalanceWeights,
        home_country: str = "TW",
        names: Callable[[str], str] = str,
        pending: Mapping[str, int] | None = None,
        history: Mapping[str, graph.InvitationCounts] | None = None,
        exposure: Exposure | None = None,
    ) -> None:
        self.G, self.source, self.weights, self.names = G, source, weights, names
        self.pending = pending or {}
        self.history = history or {}
        self.exposure = exposure
        known = source.id in G  # an ad-hoc profile has no partners and no bridges
        self.bridges = graph.cluster_bridges(G, source.id, home_country=home_country) if known else {}
        self.partners_in = graph.partner_countries(G, source.id) if known else Counter()

    def __call__(self, candidate: School) -> list[Adjustment]:
        """Factors for suggesting `candidate`; factors of exactly 1 are left out."""
        G, weights, node = self.G, self.weights, candidate.id
        adjustments: list[Adjustment] = []
        pending = self.pending.get(node, 0)
        sat = graph.saturation_factor(G, node, pending=pending, threshold=weights.saturation_threshold)
        if sat < 1.0:
            adjustments.append(
                Adjustment(
                    "saturation",
                    sat,
                    {
                        "partners": G.degree(node),
                        "pending": pending,
                        "capacity": candidate.capacity,
                    },
                )
            )
        if G.degree(node) == 0 and weights.no_partner_boost > 0:
            boost = graph.equity(0, 0.0, no_partner_boost=weights.no_partner_boost, remote_boost=0.0)
            adjustments.append(Adjustment("no_partner_yet", boost))
        remote = (
            graph.equity_boost(G, node, no_partner_boost=0.0, remote_boost=weights.remote_boost)
            if weights.remote_boost > 0
            else 1.0
        )
        if remote > 1.0:
            adjustments.append(
                Adjustment(
                    "remote_school",
                    remote,
                    {
                        "remoteness": candidate.remoteness.value,
                        "remoteness_zh": REMOTENESS_ZH[candidate.remoteness],
                    },
                )
            )
        bridge = self.bridges.get(node)
        if bridge is not None and weights.cluster_boost > 0:
            adjustments.append(
                Adjustment(
                    "cluster_bridge",
                    graph.cluster_boost(bridge, weight=weights.cluster_boost),
                    {
                        "via_partner": bridge.via_partner,
                        "via_partner_name": self.names(bridge.via_partner),
                        "via_partner_country": bridge.via_partner_country,
                        "via_peer": bridge.via_peer,
                        "via_peer_name": self.names(bridge.via_peer),
                        "candidate_country": candidate.country,
                    },
                )
            )
        partners_there = self.partners_in[candidate.country]
        if partners_there and weights.diversity_decay < 1.0:
            adjustments.append(
                Adjustment(
                    "country_diversity",
                    graph.country_diversity(partners_there, decay=weights.diversity_decay),
                    {
                        "country": candidate.country,
                        "partners_there": partners_there,
                    },
                )
            )
        if node in self.history:
            resp = graph.responsiveness_factor(self.history, node, floor=weights.responsiveness_floor)
            if resp < 1.0:
                counts = self.history[node]
                adjustments.append(
                    Adjustment(
                        "responsiveness",
                        resp,
                        {
                            "received": counts.received,
                            "expired": counts.expired,
                        },
                    )
                )
        if self.exposure is not None and weights.exposure_strength > 0:
            shown, mean = self.exposure(candidate)
            damping = graph.exposure_factor(shown, mean, strength=weights.exposure_strength)
            if damping < 1.0:
                adjustments.append(
                    Adjustment(
                        "exposure",
                        damping,
                        {
                            "shown": round(shown, 1),
                            "average": round(mean, 2),
                            "times_average": round(shown / max(mean, 1.0), 1),
                        },
                    )
                )
        return adjustments


def factor_arrays(
    table: ProfileTable,
    rows: np.ndarray,
    weights: RebalanceWeights,
    *,
    bridges: Mapping[str, graph.BridgePath] | None = None,
    partners_in: Mapping[str, int] | None = None,
    exposure: Exposure | None = None,
) -> np.ndarray:
    """The product of every graph factor :class:`Rebalancer` gives, for many candidate rows at once,
    from the same graph/ formulas (``bridges``: the paths by which candidates join the source's cluster;
    ``partners_in``: the source's active partners per country)."""
    partners, pending, capacity = table["partners"][rows], table["pending"][rows], table["capacity"][rows]
    product = np.asarray(graph.saturation(graph.load_of(capacity, partners, pending), weights.saturation_threshold))
    if weights.no_partner_boost > 0 or weights.remote_boost > 0:
        scale = np.array([graph.REMOTENESS_SCALE[r] for r in Remoteness])[table["remoteness"][rows]]
        product = product * graph.equity(
            partners, scale, no_partner_boost=weights.no_partner_boost, remote_boost=weights.remote_boost
        )
    if bridges and weights.cluster_boost > 0:
        boosts = [
            graph.cluster_boost(bridges.get(table.ids[row]), weight=weights.cluster_boost) for row in rows.tolist()
        ]
        product = product * np.asarray(boosts)
    if partners_in and weights.diversity_decay < 1.0:
        per_code = np.zeros(len(table.countries.codes) + 1)
        for country, n in partners_in.items():
            per_code[table.countries.code(country)] = n  # code -1 (unknown) writes the unused last slot
        product = product * graph.country_diversity(per_code[table["country"][rows]], decay=weights.diversity_decay)
    product = product * graph.responsiveness(
        table["answered"][rows], table["expired"][rows], floor=weights.responsiveness_floor
    )
    if exposure is not None and weights.exposure_strength > 0:
        damping = [
            graph.exposure_factor(*exposure(table.schools[row]), strength=weights.exposure_strength)
            for row in rows.tolist()
        ]
        product = product * np.asarray(damping)
    return product
