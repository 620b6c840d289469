"""Candidate sources: where a school's candidates come from, besides its nearest profile vectors.

Profile-vector neighbours miss partners that the history points to: schools that partner with my
partners' peers, schools of a region my county keeps partnering with, schools in the countries I
asked for. Each source here returns candidate ids, best first, from the tables a fitted
:class:`~matching.features.PairFeatures` already holds (so a source costs a sparse product or
an array filter, not a loop); :func:`merge` unions them and records for every candidate which
sources found it ("found via"). Hard rules are applied afterwards by the caller, as for index hits.

>>> merge({"vector": ["b", "a"], "graph": ["a", "c"]})
{'b': ['vector'], 'a': ['vector', 'graph'], 'c': ['graph']}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from data.schema import School
from matching.features import PairFeatures

SOURCES: dict[str, tuple[str, str]] = {
    "vector": ("similar profile", "相似的學校簡介"),
    "graph": ("partner of your partners' peers", "夥伴的夥伴所合作的學校"),
    "region": ("your region partners with its region or country", "貴校所在地區常與其地區或國家結盟"),
    "wish": ("in a country you wished for", "位於您希望的國家"),
    "all": ("every eligible school", "所有符合條件的學校"),
}
"""Source code -> how "found via" reads, in English and 繁體中文."""


def graph_candidates(features: PairFeatures, source: School, limit: int) -> list[str]:
    """Schools reached by 3-paths (me – partner – peer – candidate), by Adamic–Adar over them."""
    row = features.row_.get(source.id)
    if row is None:
        return []
    _, weighted = features.three_paths(row)
    weighted[row] = 0.0
    weighted[features.adjacency_[row].indices] = 0.0  # already partners
    return _top(features, weighted, limit)


def region_candidates(features: PairFeatures, source: School, limit: int) -> list[str]:
    """Schools of the regions and countries that the source's region has partnered with more than
    chance, and schools of regions that have partnered with the source's country: the larger lift first."""
    region = features.regions_.get(f"{source.country}:{source.region or ''}", -1)
    country = features.countries_.get(source.country, -1)
    n = len(features.region_)
    lift = np.zeros(n)
    if region >= 0:
        observed = features.region_country_[region, features.country_]
        expected = features.region_ends_[region] * features.country_ends_[features.country_] / features.total_
        lift = np.maximum(lift, np.where(observed > 0, np.log((observed + 1) / (expected + 1)), 0.0))
    if country >= 0:
        observed = features.region_country_[features.region_, country]
        expected = features.region_ends_[features.region_] * features.country_ends_[country] / features.total_
        lift = np.maximum(lift, np.where(observed > 0, np.log((observed + 1) / (expected + 1)), 0.0))
    lift[features.country_ == country] = 0.0
    return _top(features, lift, limit)


def wished_candidates(schools: Iterable[School], source: School) -> list[str]:
    """Every school in the countries the source asked for (the hard rules then filter them)."""
    wished = set(source.target_countries)
    return sorted(s.id for s in schools if s.country in wished and s.id != source.id)


def merge(found: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Candidate id -> the sources that found it, in the order the sources were given."""
    via: dict[str, list[str]] = {}
    for name, ids in found.items():
        for school_id in ids:
            via.setdefault(school_id, []).append(name)
    return via


def _top(features: PairFeatures, scores: np.ndarray, limit: int) -> list[str]:
    ids = list(features.row_)
    positive = np.flatnonzero(scores > 0)
    order = positive[np.argsort(-scores[positive], kind="stable")][:limit]
    return [ids[i] for i in order]
