"""Factors that spread attention across schools instead of piling it onto the popular few.

Each function returns a plain multiplier for a candidate's score; the matching engine chooses the
weights and how to combine them. Every formula is written in the docstring so an explanation can
quote it. Partnerships are counted only while active (no ``end_date``).

Each formula is written once, as a function of plain numbers that works unchanged on NumPy
arrays (``free_places``, ``load_of``, ``saturation``, ``responsiveness``): the graph functions
below apply it to one node, and the matching engine applies it to all candidates of a request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import networkx as nx
import numpy as np

from data.taxonomies import Remoteness
from graph.build import active_partners, node_attributes, partner_countries

REMOTENESS_SCALE: dict[Remoteness, float] = {
    Remoteness.ORDINARY: 0.0,
    Remoteness.REMOTE: 1.0,
    Remoteness.VERY_REMOTE: 1.5,
    Remoteness.EXTREMELY_REMOTE: 2.0,
}
"""Multiples of ``remote_boost`` per statutory category: the further out, the fewer visitors."""


def _check_unit(name: str, value: float, *, open_low: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        bounds = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name}: must be in {bounds}, got {value}")


def _check_non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")


Number = TypeVar("Number", int, float, np.ndarray)


def free_places(capacity: Number, partners: Number, pending: Number = 0) -> Number:
    """``capacity - active partners - open invitations``: the places a school can still offer.

    The one definition of free places: at 0 or below a school is full (the hard rule
    ``at_capacity``), and open invitations hold a place until answered. Works on arrays.

    >>> free_places(3, 1, 1), free_places(np.array([2, 4]), np.array([2, 1]))
    (1, array([0, 3]))
    """
    return capacity - partners - pending


def load_of(capacity: Number, partners: Number, pending: Number = 0) -> Number:
    """``(partners + pending) / capacity``, ``inf`` at capacity 0 (arrays too).

    >>> load_of(4, 1, 1), load_of(np.array([0, 2]), np.array([0, 1]))
    (0.5, array([inf, 0.5]))
    """
    used = capacity - free_places(capacity, partners, pending)
    if np.ndim(capacity) == 0:
        return used / capacity if capacity > 0 else math.inf
    return np.divide(used, capacity, out=np.full(np.shape(capacity), math.inf), where=np.asarray(capacity) > 0)


def saturation(load_value: Number, threshold: float) -> Number:
    """1 below ``threshold``, then ``(1 - load) / (1 - threshold)`` down to 0 at load 1 (arrays too):
    that line clipped to [0, 1].

    >>> saturation(0.5, 0.75), saturation(np.array([0.875, 1.0, math.inf]), 0.75)
    (1.0, array([0.5, 0. , 0. ]))
    """
    _check_unit("threshold", threshold)
    if threshold == 1:
        return np.where(np.asarray(load_value) < 1, 1.0, 0.0) if np.ndim(load_value) else float(load_value < 1)
    line = (1 - load_value) / (1 - threshold)
    return np.clip(line, 0.0, 1.0) if np.ndim(line) else min(max(line, 0.0), 1.0)


def load(G: nx.Graph, node: str, pending: int = 0) -> float:
    """Share of capacity in use: ``(active partners + pending) / capacity``; ``inf`` at capacity 0.

    ``pending`` counts invitations the school has accepted or sent that are not partnerships yet.

    >>> from data.schema import School
    >>> from graph.build import build_partnership_graph
    >>> G = build_partnership_graph([School(id="tw-a", name_en="A", country="TW", levels=["primary"], capacity=4)], [])
    >>> load(G, "tw-a", pending=1)
    0.25
    """
    _check_non_negative("pending", pending)
    return load_of(node_attributes(G, node)["capacity"], len(active_partners(G, node)), pending)


def saturation_factor(G: nx.Graph, node: str, *, threshold: float, pending: int = 0) -> float:
    """1 while ``load < threshold``, then falling linearly to 0 at full capacity.

    ``factor = 1`` if load < threshold; ``(1 - load) / (1 - threshold)`` if threshold <= load < 1;
    ``0`` if load >= 1 (so always 0 for capacity 0). A school near capacity sinks in everyone's
    list before it is full, instead of collecting invitations it must refuse.

    >>> from data.schema import School
    >>> from graph.build import build_partnership_graph
    >>> G = build_partnership_graph([School(id="tw-a", name_en="A", country="TW", levels=["primary"], capacity=4)], [])
    >>> [saturation_factor(G, "tw-a", pending=n, threshold=0.5) for n in range(5)]
    [1.0, 1.0, 1.0, 0.5, 0.0]
    """
    return saturation(load(G, node, pending), threshold)


def equity(partners: Number, remoteness_scale: Number, *, no_partner_boost: float, remote_boost: float) -> Number:
    """``1 + no_partner_boost·[no active partner] + remote_boost·remoteness_scale`` (arrays too).

    >>> round(equity(0, 1.5, no_partner_boost=0.15, remote_boost=0.1), 3)
    1.3
    >>> equity(np.array([0, 2]), 0.0, no_partner_boost=0.15, remote_boost=0.1)
    array([1.15, 1.  ])
    """
    _check_non_negative("no_partner_boost", no_partner_boost)
    _check_non_negative("remote_boost", remote_boost)
    return (
        1.0
        + remote_boost * remoteness_scale
        + no_partner_boost * (np.asarray(partners) == 0 if np.ndim(partners) else partners == 0)
    )


def equity_boost(G: nx.Graph, node: str, *, no_partner_boost: float, remote_boost: float) -> float:
    """:func:`equity` of a node, with ``remoteness_scale = REMOTENESS_SCALE[its remoteness]``.

    Schools with no partner yet and remote schools (偏遠 ×1, 特偏 ×1.5, 極偏 ×2) rise, so a first
    partnership goes where it adds most.

    >>> from data.schema import School
    >>> from graph.build import build_partnership_graph
    >>> G = build_partnership_graph([School(id="tw-a", name_en="A", country="TW", levels=["primary"],
    ...                                     remoteness="very_remote")], [])
    >>> round(equity_boost(G, "tw-a", no_partner_boost=0.15, remote_boost=0.1), 3)
    1.3
    """
    attributes = node_attributes(G, node)
    return equity(
        len(active_partners(G, node)),
        REMOTENESS_SCALE[attributes["remoteness"]],
        no_partner_boost=no_partner_boost,
        remote_boost=remote_boost,
    )


def country_diversity(partners_there: Number, *, decay: float) -> Number:
    """``decay ** n`` for n partners already in the candidate's country (arrays too).

    >>> country_diversity(2, decay=0.5), country_diversity(np.array([0, 1]), decay=0.5)
    (0.25, array([1. , 0.5]))
    """
    _check_unit("decay", decay, open_low=True)
    return decay**partners_there


def country_diversity_factor(G: nx.Graph, source: str, candidate_country: str, *, decay: float) -> float:
    """:func:`country_diversity` with n = active partners ``source`` already has in ``candidate_country``.

    Diminishing returns: the first partner in a country counts fully, each further one less.

    >>> from datetime import date
    >>> from data.schema import Partnership, School
    >>> from graph.build import build_partnership_graph
    >>> G = build_partnership_graph(
    ...     [School(id=i, name_en=i, country=c, levels=["primary"]) for i, c in [("tw-a", "TW"), ("vn-x", "VN")]],
    ...     [Partnership(school_a="tw-a", school_b="vn-x", start_date=date(2024, 1, 1))])
    >>> country_diversity_factor(G, "tw-a", "VN", decay=0.5), country_diversity_factor(G, "tw-a", "TH", decay=0.5)
    (0.5, 1.0)
    """
    return country_diversity(partner_countries(G, source)[candidate_country], decay=decay)


@dataclass(frozen=True)
class InvitationCounts:
    """One school's invitation record, as the service counts it from its invitation table.

    ``received`` includes invitations still open; ``answered`` (accepted or declined) and
    ``expired`` (left unanswered past their deadline) are the decided ones.
    """

    received: int = 0
    answered: int = 0
    expired: int = 0

    def __post_init__(self) -> None:
        for name in ("received", "answered", "expired"):
            _check_non_negative(name, getattr(self, name))
        if self.answered + self.expired > self.received:
            raise ValueError(
                f"received: {self.received} is fewer than answered {self.answered} + expired {self.expired}"
            )


InvitationHistory = Mapping[str, InvitationCounts]
"""School id -> its invitation counts; schools missing from it have no history."""


def responsiveness_factor(
    history: InvitationHistory,
    node: str,
    *,
    prior_answered: float = 2,
    prior_expired: float = 0,
    floor: float = 0.3,
) -> float:
    """``floor + (1 - floor)·rate`` with ``rate = (answered + prior_answered) /
    (answered + expired + prior_answered + prior_expired)``; 1.0 with no decided invitation.

    The prior keeps one missed invitation from sinking a new school; a school that lets
    invitations expire again and again falls toward ``floor``, so others stop waiting on it.

    >>> responsiveness_factor({"tw-a": InvitationCounts(received=6, answered=0, expired=6)}, "tw-a")
    0.475
    >>> responsiveness_factor({}, "tw-a")
    1.0
    """
    _check_non_negative("prior_answered", prior_answered)
    _check_non_negative("prior_expired", prior_expired)
    _check_unit("floor", floor)
    counts = history.get(node)
    if counts is None:
        return 1.0
    return responsiveness(counts.answered, counts.expired, prior_answered, prior_expired, floor)


def responsiveness(
    answered: Number, expired: Number, prior_answered: float = 2, prior_expired: float = 0, floor: float = 0.3
) -> Number:
    """The formula of :func:`responsiveness_factor` on counts (arrays too); 1 where nothing was decided.

    >>> responsiveness(np.array([0, 0]), np.array([6, 0])), responsiveness(1, 1)
    (array([0.475, 1.   ]), 0.825)
    """
    decided = answered + expired + prior_answered + prior_expired
    rate = (
        (answered + prior_answered) / np.maximum(decided, 1e-12)
        if np.ndim(decided)
        else ((answered + prior_answered) / (decided or 1))
    )
    value = floor + (1 - floor) * rate
    if np.ndim(value) == 0:
        return value if answered + expired else 1.0
    return np.where(np.asarray(answered + expired) == 0, 1.0, value)
