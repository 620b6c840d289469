"""The partnership graph and the signals that rebalance the ranking with it.

Imports only data/: plain functions that take a graph and return numbers or records.
"""

from graph.build import (
    active_graph,
    active_partners,
    add_partnership,
    build_partnership_graph,
    end_partnership,
    partner_countries,
    update_school,
)
from graph.clusters import BridgePath, Cluster, cluster_boost, cluster_bridges, cross_border_clusters
from graph.exposure import ExposureLedger, exposure_factor, share_exposure
from graph.factors import (
    REMOTENESS_SCALE,
    InvitationCounts,
    InvitationHistory,
    country_diversity,
    country_diversity_factor,
    equity,
    equity_boost,
    free_places,
    load,
    load_of,
    responsiveness,
    responsiveness_factor,
    saturation,
    saturation_factor,
)
from graph.summary import gini, graph_summary

__all__ = [
    "REMOTENESS_SCALE",
    "BridgePath",
    "Cluster",
    "ExposureLedger",
    "InvitationCounts",
    "InvitationHistory",
    "active_graph",
    "active_partners",
    "add_partnership",
    "build_partnership_graph",
    "cluster_boost",
    "cluster_bridges",
    "country_diversity",
    "country_diversity_factor",
    "cross_border_clusters",
    "end_partnership",
    "equity",
    "equity_boost",
    "exposure_factor",
    "free_places",
    "gini",
    "graph_summary",
    "load",
    "load_of",
    "partner_countries",
    "responsiveness",
    "responsiveness_factor",
    "saturation",
    "saturation_factor",
    "share_exposure",
    "update_school",
]
