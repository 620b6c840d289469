"""Candidate sources: where a school's candidates come from, besides its nearest profile vectors.

Profile-vector neighbours miss partners that the history points to: schools that partner with my
partners' peers, schools of a region my county keeps partnering with, schools in the countries I
asked for. :func:`source_scores` says, for an array of candidate rows of the profile table, how
strongly each source finds each one (0: not at all), from the tables a fitted
:class:`~matching.features.PairFeatures` already holds, so a source costs a sparse product or an
array lookup, not a loop:

* ``graph``: Adamic–Adar over 3-paths (me – partner – peer – candidate);
* ``region``: the larger lift of partnerships between my region and the candidate's country, or
  between the candidate's region and my country (above chance only);
* ``wish``: the candidate is in a country I wished for.

With a trained ranker the engine scores every eligible candidate by the ranker's first stage,
which reads these same tables (:func:`matching.retrieve.pool`), and records for every candidate
it ranks which sources find it (:func:`found_via`); a suggestion says so in its reasons
(:func:`found_via_reason`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data.schema import School
from matching.arrays import PathSums
from matching.features import PairFeatures
from matching.reasons import Reason
from matching.table import ProfileTable, Row

SOURCES: dict[str, tuple[str, str]] = {
    "vector": ("similar profile", "相似的學校簡介"),
    "graph": ("partner of your partners' peers", "夥伴的夥伴所合作的學校"),
    "region": ("your region partners with its region or country", "貴校所在地區常與其地區或國家結盟"),
    "wish": ("in a country you wished for", "位於您希望的國家"),
    "all": ("every eligible school", "所有符合條件的學校"),
}
"""Source code -> how "found via" reads, in English and 繁體中文."""
HISTORY_SOURCES: tuple[str, ...] = ("graph", "region", "wish")


def source_scores(
    features: PairFeatures, table: ProfileTable, source: Row, rows: np.ndarray, paths: PathSums | None = None
) -> dict[str, np.ndarray]:
    """Per history source, its score of each candidate row (0: the source does not find it);
    ``paths``: these rows' path sums when the request has them already."""
    school = source.school
    fit_rows = features.rows_in(table)[rows]
    known = fit_rows >= 0
    v = np.where(known, fit_rows, 0)
    graph = (features.path_sums(table, school.id, rows) if paths is None else paths)[2]
    region = features.regions_.get(f"{school.country}:{school.region or ''}", -1)
    country = features.countries_.get(school.country, -1)
    lift = np.maximum(
        features.region_country_lift(region, features.country_[v], known),
        features.region_country_lift_rev(features.region_[v], country, known),
    )
    return {"graph": graph, "region": np.maximum(lift, 0.0), "wish": wished_at(table, school, rows).astype(float)}


def wished_at(table: ProfileTable, school: School, rows: np.ndarray) -> np.ndarray:
    """Per row, whether it is in a country ``school`` wished for."""
    wished = np.zeros(len(rows), dtype=bool)
    codes = table["country"][rows]
    for name in school.target_countries:
        code = table.countries.code(name)
        if code >= 0:
            wished |= codes == code
    return wished


def found_via(
    scores: dict[str, np.ndarray], similarity: np.ndarray, nearest: int, at: Sequence[int] | None = None
) -> list[list[str]]:
    """For each candidate (or each of the positions ``at``), the sources that find it: ``vector``
    when it is among the ``nearest`` most similar, each history source that scores it, else ``all``
    (ranked as every eligible is). Only the candidates shown need it: ``at`` spares the rest.

    >>> found_via({"wish": np.array([1.0, 0.0, 0.0])}, np.array([0.9, 0.5, 0.1]), 1)
    [['vector', 'wish'], ['all'], ['all']]
    >>> found_via({"wish": np.array([1.0, 0.0, 0.0])}, np.array([0.9, 0.5, 0.1]), 1, at=[2, 0])
    [['all'], ['vector', 'wish']]
    """
    positions = np.arange(len(similarity)) if at is None else np.asarray(at, dtype=np.int64)
    vector = np.zeros(len(similarity), dtype=bool)
    vector[top(similarity, nearest)] = True
    found = {name: scores[name][positions] > 0 for name in HISTORY_SOURCES if name in scores}
    via: list[list[str]] = []
    for i, n in enumerate(positions.tolist()):
        names = ["vector"] if vector[n] else []
        names += [name for name, hit in found.items() if hit[i]]
        via.append(names or ["all"])
    return via


def found_via_reason(via: list[str]) -> Reason:
    """The sources that found a candidate, as a reason in both languages."""
    return Reason(
        code="found_via",
        weight=0.0,
        data={"sources": via},
        text_en="Found via: " + "; ".join(SOURCES[name][0] for name in via),
        text_zh="推薦來源：" + "；".join(SOURCES[name][1] for name in via),
    )


def top(values: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest values (unordered)."""
    if n >= len(values):
        return np.arange(len(values))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argpartition(-values, n - 1)[:n]
