"""Graph rebalancing of a ranked list: the plain graph/ signals turned into score factors.

Each signal becomes an :class:`Adjustment` (a multiplicative factor with the facts behind it),
so the final score is ``reciprocal score × Π factors`` and every factor can be explained.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
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
        return _reason(self.code, round(self.factor, 4), tuple(self.data.items()))


@lru_cache(maxsize=16384)
def _reason(code: str, weight: float, data: tuple[tuple[str, Any], ...]) -> Reason:
    """An adjustment's reason, built once per process for each code, weight and facts (lists repeat
    the same few: a busy school's load, a country's partners) and shared, as matching.explain
    shares its reasons (Reason is frozen): the texts' formatting and validation cost more than the
    lookup. Some 16k reasons at most, ~1 kB each."""
    facts = dict(data)
    en, zh = _TEXTS[code](facts)
    return Reason(code=code, weight=weight, data=facts, text_en=en, text_zh=zh)


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


def _bridge_facts(bridge: graph.BridgePath, candidate: School, names: Callable[[str], str]) -> dict[str, Any]:
    """What a cluster-bridge reason cites, for the reference and the array path alike."""
    return {
        "via_partner": bridge.via_partner,
        "via_partner_name": names(bridge.via_partner),
        "via_partner_country": bridge.via_partner_country,
        "via_peer": bridge.via_peer,
        "via_peer_name": names(bridge.via_peer),
        "candidate_country": candidate.country,
    }


Exposure = Callable[[School], tuple[float, float]]
"""Candidate -> (its recent appearances in suggestion lists, the average of its side)."""
ExposureRows = Callable[[ProfileTable, np.ndarray], tuple[np.ndarray, np.ndarray]]
""":data:`Exposure` for many candidates at once: table rows -> (appearances, their side's average)."""


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
        signals = SourceSignals.of(G, source, home_country, weights)
        self.bridges, self.partners_in = signals.bridges, signals.partners_in

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
                    _bridge_facts(bridge, candidate, self.names),
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


@dataclass(frozen=True)
class SourceSignals:
    """What the graph factors need to know about the source, worked out once per request: the paths
    by which candidates join its cross-border cluster, and its active partners per country."""

    bridges: Mapping[str, graph.BridgePath]
    partners_in: Mapping[str, int]

    @classmethod
    def of(
        cls,
        G: nx.Graph,
        source: School,
        home_country: str,
        weights: RebalanceWeights,
        table: ProfileTable | None = None,
    ) -> SourceSignals:
        """The source's signals, leaving out those whose factor the weights switch off; worked out
        once per ``table`` snapshot when given (the engine makes a new table whenever it changes
        ``G``), so a school asking again (another page, other filters) walks the graph once."""
        if table is None:
            return cls._of(G, source, home_country, weights)
        key = ("signals", source.id, home_country, weights.cluster_boost > 0, weights.diversity_decay < 1.0)
        walked_on, signals = table.memo(key, lambda: (G, cls._of(G, source, home_country, weights)))
        return signals if walked_on is G else cls._of(G, source, home_country, weights)

    @classmethod
    def _of(cls, G: nx.Graph, source: School, home_country: str, weights: RebalanceWeights) -> SourceSignals:
        if source.id not in G:  # an ad-hoc profile has no partners and no bridges
            return cls({}, Counter())
        bridges = graph.cluster_bridges(G, source.id, home_country=home_country) if weights.cluster_boost > 0 else {}
        partners_in = graph.partner_countries(G, source.id) if weights.diversity_decay < 1.0 else Counter()
        return cls(bridges, partners_in)


class FactorArrays:
    """Every graph factor :class:`Rebalancer` gives, for many candidate rows at once, from the same
    graph/ formulas: one array per factor, their product the rank's multiplier, and the
    :class:`Adjustment` list of any one candidate read from them (equal to the Rebalancer's, a
    property test holds them to it), so only the candidates shown are explained."""

    def __init__(
        self,
        table: ProfileTable,
        rows: np.ndarray,
        weights: RebalanceWeights,
        signals: SourceSignals,
        *,
        names: Callable[[str], str] = str,
        exposure: ExposureRows | None = None,
    ) -> None:
        self.table, self.rows, self.signals, self.names = table, rows, signals, names
        threshold, floor = weights.saturation_threshold, weights.responsiveness_floor
        # The factors of a candidate's own load and record are the same whoever asks: worked out for
        # every row once per table snapshot, then gathered.
        saturation = table.derived(
            ("saturation", threshold),
            lambda: np.asarray(
                graph.saturation(graph.load_of(table["capacity"], table["partners"], table["pending"]), threshold),
                dtype=float,
            ),
        )
        factors: dict[str, np.ndarray] = {"saturation": saturation[rows]}
        if weights.no_partner_boost > 0:
            factors["no_partner_yet"] = graph.equity(
                table["partners"][rows], 0.0, no_partner_boost=weights.no_partner_boost, remote_boost=0.0
            )
        if weights.remote_boost > 0:
            scale = np.array([graph.REMOTENESS_SCALE[r] for r in Remoteness])[table["remoteness"][rows]]
            factors["remote_school"] = graph.equity(
                np.ones(len(rows)), scale, no_partner_boost=0.0, remote_boost=weights.remote_boost
            )
        if signals.bridges and weights.cluster_boost > 0:
            boost = np.ones(len(rows))
            bridged = {table.row_of[c] for c in signals.bridges if c in table.row_of}
            for n in [n for n, row in enumerate(rows.tolist()) if row in bridged]:
                boost[n] = graph.cluster_boost(signals.bridges[table.ids[rows[n]]], weight=weights.cluster_boost)
            factors["cluster_bridge"] = boost
        if signals.partners_in and weights.diversity_decay < 1.0:
            # Per country, with the scalar formula (NumPy's vectorised power may differ from it in the
            # last bit, e.g. 0.7 ** 4), then gathered per row.
            per_code, factor_of = np.zeros(len(table.countries.codes) + 1), np.ones(len(table.countries.codes) + 1)
            for country, n in signals.partners_in.items():
                code = table.countries.code(country)  # -1 (unknown) writes the unused last slot
                per_code[code], factor_of[code] = n, graph.country_diversity(n, decay=weights.diversity_decay)
            codes = table["country"][rows]
            self.partners_there, factors["country_diversity"] = per_code[codes], factor_of[codes]
        responsiveness = table.derived(
            ("responsiveness", floor),
            lambda: np.asarray(graph.responsiveness(table["answered"], table["expired"], floor=floor), dtype=float),
        )
        factors["responsiveness"] = responsiveness[rows]
        if exposure is not None and weights.exposure_strength > 0:
            self.shown, self.side_mean = exposure(table, rows)
            factors["exposure"] = graph.exposure_factor(self.shown, self.side_mean, strength=weights.exposure_strength)
        self.factors = factors

    def product(self) -> np.ndarray:
        """Each candidate's multiplier: the product of its factors."""
        product = np.ones(len(self.rows))
        for factor in self.factors.values():
            product *= factor
        return product

    def adjustments(self, at: np.ndarray) -> list[list[Adjustment]]:
        """The factors of candidates ``at`` (positions) with the facts behind them, one list each;
        factors of exactly 1 left out. Each factor's array is read once for them all."""
        values = [(code, factors[at].tolist()) for code, factors in self.factors.items()]
        out = []
        for m, (n, row) in enumerate(zip(at.tolist(), self.rows[at].tolist(), strict=True)):
            candidate = self.table.schools[row]
            out.append(
                [Adjustment(code, f[m], self._data(code, n, row, candidate)) for code, f in values if f[m] != 1.0]
            )
        return out

    def _data(self, code: str, n: int, row: int, candidate: School) -> dict[str, Any]:
        table = self.table
        if code == "saturation":
            return {
                "partners": int(table["partners"][row]),
                "pending": int(table["pending"][row]),
                "capacity": candidate.capacity,
            }
        if code == "remote_school":
            return {"remoteness": candidate.remoteness.value, "remoteness_zh": REMOTENESS_ZH[candidate.remoteness]}
        if code == "cluster_bridge":
            return _bridge_facts(self.signals.bridges[candidate.id], candidate, self.names)
        if code == "country_diversity":
            return {"country": candidate.country, "partners_there": int(self.partners_there[n])}
        if code == "responsiveness":
            return {"received": int(table["received"][row]), "expired": int(table["expired"][row])}
        if code == "exposure":
            shown, mean = float(self.shown[n]), float(self.side_mean[n])
            return {
                "shown": round(shown, 1),
                "average": round(mean, 2),
                "times_average": round(shown / max(mean, 1.0), 1),
            }
        return {}
