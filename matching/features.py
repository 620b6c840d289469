"""Pair features: what the partnership history and two profiles say about one pair, as numbers.

:class:`PairFeatures` learns, from the schools and the partnerships known on a day (``fit``),
the tables the features read: the partnership graph as a sparse matrix, each school's degree,
load and last new partnership, and partnership counts between regions and between countries.
``transform`` then gives one row per candidate of one source at once, with NumPy and sparse
matrix products rather than a loop over candidates, so a request can score every candidate.

Every feature is symmetric in the two schools, yet keeps which side a directed quantity (fit
a→b and b→a, each side's degree, one side's partners in the other's region) belongs to: the pair
is oriented by a canonical side, the home-country school, and each directed quantity enters as
its value on the home side and on the other side. When both schools or neither are in the home
country the school with the smaller id is the "home" side, so the row for (a, b) always equals
the row for (b, a). A trained ranker then scores a pair, not a direction, as a partnership is a
match for both, and still tells "the foreign school has partners in my county" from "I have
partners in its region" (min and max of the two would not).

Nothing here reads a partnership that ``fit`` was not given: the evaluation fits on each split's
training part only, and a test checks that a held-out partnership changes no feature.

The fit components come from :mod:`matching.scoring` (a :class:`~matching.scoring.PairScore` per
candidate, as the engine computes anyway); this module adds what the history says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import scipy.sparse as sp

from data.schema import Partnership, School
from data.taxonomies import HOME_COUNTRY_DEFAULT
from matching.arrays import COMPONENTS, ArrayScores, PathSums
from matching.scoring import PairScore
from matching.table import ProfileTable, Row, popcount

FIT_COMPONENTS: tuple[str, ...] = COMPONENTS[:-1]
"""Fit components read from both directions: all but the embedding's, which is the similarity (below)."""


@dataclass(frozen=True)
class Feature:
    name: str
    text_en: str
    text_zh: str


def _both(name: str, en: str, zh: str) -> list[Feature]:
    """A directed quantity on the pair's home side and on its other side (see the module docstring)."""
    return [
        Feature(f"{name}_home", f"{en} (home-country school)", f"{zh}（本國學校）"),
        Feature(f"{name}_other", f"{en} (partner school)", f"{zh}（夥伴學校）"),
    ]


FIT_TEXT: dict[str, tuple[str, str]] = {
    "target_country": ("wished country", "希望的國家"),
    "sdg": ("shared SDG interests", "共同的永續發展目標"),
    "language": ("common language", "共同語言"),
    "mode": ("exchange modes that fit", "合適的交流方式"),
    "level": ("school levels that fit", "合適的學制"),
    "timezone": ("shared school hours", "共同的上課時間"),
}

FEATURES: tuple[Feature, ...] = (
    *[f for name in FIT_COMPONENTS for f in _both(f"fit_{name}", *FIT_TEXT[name])],
    *_both("fit", "overall profile fit", "整體條件契合度"),
    Feature("reciprocal", "profile fit both ways", "雙方條件都契合"),
    Feature("similarity", "similar profiles", "相似的學校簡介"),
    Feature("region_pair_rate", "schools of these two regions often partner", "這兩個地區的學校經常結盟"),
    Feature("region_pair_count", "partnerships between these two regions", "這兩個地區之間的結盟數"),
    *_both(
        "region_country_rate",
        "schools of its region often partner with the other's country",
        "其所在地區的學校常與另一方國家的學校結盟",
    ),
    *_both(
        "region_country_count",
        "partnerships between its region and the other's country",
        "其所在地區與另一方國家之間的結盟數",
    ),
    Feature("country_pair_rate", "schools of these two countries often partner", "這兩個國家的學校經常結盟"),
    *_both("region_partners", "partners already in the other's region", "在對方地區已有夥伴學校"),
    Feature("adamic_adar", "partners in common", "有共同的夥伴學校"),
    Feature("paths3", "partners of your partners' peers", "夥伴的夥伴所合作的學校"),
    Feature("adamic_adar_l3", "close in the partnership network", "在結盟網絡中關係緊密"),
    *_both("degree", "partnerships so far", "過去的結盟數"),
    *_both("load", "share of places taken", "名額使用比例"),
    *_both("days_since_new", "time since the last new partnership", "距離上次新結盟的時間"),
    *_both("responsiveness", "answers invitations", "回覆邀請的比例"),
    Feature("distance_km", "distance", "距離"),
    Feature("shared_languages", "number of common exchange languages", "共同交流語言數"),
    Feature("shared_local_languages", "a common language besides English", "英語以外的共同語言"),
    Feature("shared_sdgs", "number of shared SDGs", "共同的永續發展目標數"),
    Feature("sdg_jaccard", "overlap of SDG interests", "永續發展目標的重疊程度"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
COLUMN: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
NEEDS_VECTORS: frozenset[str] = frozenset({"fit_home", "fit_other", "reciprocal", "similarity"})
"""The features that include the profile vectors' cosine (the overall fits take the embedding component)."""
FIRST_STAGE_NAMES: tuple[str, ...] = tuple(
    name for name in FEATURE_NAMES if name not in NEEDS_VECTORS | {"distance_km"}
)
"""What a trained ranker's first stage reads for every eligible candidate: every feature but those
needing a cosine (known only for the few candidates searched by vector) and the distance (trigonometry
per candidate, and of little weight). Gathers from the fitted tables, popcounts and the fit components."""

SMOOTHING = 1.0
"""Pseudo-count added to observed and expected partnership counts: an unseen pair of regions reads 0."""


def _oriented(on_source: np.ndarray, on_candidate: np.ndarray, source_home: np.ndarray) -> list[np.ndarray]:
    """A directed quantity's value on the pair's home side and on its other side, from its value on
    the source's side and on the candidate's (``source_home``: the source is the home side)."""
    on_source = np.broadcast_to(np.asarray(on_source, dtype=float), source_home.shape)
    on_candidate = np.broadcast_to(np.asarray(on_candidate, dtype=float), source_home.shape)
    return [np.where(source_home, on_source, on_candidate), np.where(source_home, on_candidate, on_source)]


def source_is_home(
    source_id: str, source_home: bool, candidate_home: np.ndarray, ids_at: Callable[[np.ndarray], Sequence[str]]
) -> np.ndarray:
    """Per candidate, whether the source is the pair's home side: the home-country school, or the
    smaller id when both schools or neither are in the home country (``ids_at`` gives the
    candidates' ids at those positions only). Either school of a pair gets the opposite answer.

    >>> ids = ["my-a", "tw-a", "tw-c"]
    >>> source_is_home("tw-b", True, np.array([False, True, True]), lambda at: [ids[n] for n in at]).tolist()
    [True, False, True]
    """
    out = np.full(len(candidate_home), source_home)
    tied = np.flatnonzero(candidate_home == source_home)
    if len(tied):
        out[tied] = np.array(ids_at(tied), dtype=object) > source_id
    return out


def log_lift(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Smoothed log ratio of observed to expected partnerships: 0 with no evidence either way.

    >>> log_lift(np.array([0.0, 9.0]), np.array([0.0, 1.0])).round(3).tolist()
    [0.0, 1.609]
    """
    return np.log((observed + SMOOTHING) / (expected + SMOOTHING))


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance; NaN where a coordinate is missing.

    >>> round(float(haversine_km(np.array([25.03]), np.array([121.56]), np.array([3.14]), np.array([101.69]))[0]))
    3232
    """
    lat1, lon1, lat2, lon2 = (np.radians(x) for x in (lat1, lon1, lat2, lon2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _codes(values: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    table: dict[str, int] = {}
    return np.array([table.setdefault(v, len(table)) for v in values], dtype=np.int64), table


class PairFeatures:
    """Learns the history tables on ``fit``; ``transform`` gives a source's candidates' feature rows."""

    def fit(
        self,
        schools: Sequence[School],
        partnerships: Sequence[Partnership],
        as_of: date,
        responsiveness: Mapping[str, float] | None = None,
        home_country: str = HOME_COUNTRY_DEFAULT,
    ) -> PairFeatures:
        """Read the history as it stood on ``as_of``: partnerships that started later are ignored.

        ``responsiveness`` maps a school to its share of invitations answered (0.5 when unknown);
        ``home_country`` orients each pair (see the module docstring)."""
        self.as_of_ = as_of
        self.home_country_ = home_country
        self.row_ = {s.id: i for i, s in enumerate(schools)}
        n = len(schools)
        seen = [p for p in partnerships if p.start_date < as_of and p.school_a in self.row_ and p.school_b in self.row_]
        pairs = {p.pair for p in seen}
        a = np.array([self.row_[x] for x, _ in pairs], dtype=np.int64)
        b = np.array([self.row_[y] for _, y in pairs], dtype=np.int64)
        A = sp.coo_matrix((np.ones(2 * len(a)), (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
        self.adjacency_ = A
        self.degree_ = np.asarray(A.sum(axis=1)).ravel()
        log_degree = np.log(np.maximum(self.degree_, 1))
        self.l3_weight_ = np.where(self.degree_ >= 2, 1 / np.sqrt(np.maximum(log_degree, 1e-12)), 0.0)
        active = np.zeros(n)
        last = np.full(n, np.nan)
        for p in seen:
            ends_later = p.end_date is None or p.end_date >= as_of
            for school in (p.school_a, p.school_b):
                row = self.row_[school]
                active[row] += ends_later
                days = float((as_of - p.start_date).days)
                last[row] = days if np.isnan(last[row]) else min(last[row], days)
        capacity = np.array([max(s.capacity, 1) for s in schools], dtype=float)
        self.load_ = active / capacity
        self.days_since_new_ = last
        given = responsiveness or {}
        self.responsiveness_ = np.array([given.get(s.id, 0.5) for s in schools], dtype=float)
        self.country_, self.countries_ = _codes([s.country for s in schools])
        self.region_, self.regions_ = _codes([f"{s.country}:{s.region or ''}" for s in schools])
        self.lat_ = np.array([np.nan if s.latitude is None else s.latitude for s in schools])
        self.lon_ = np.array([np.nan if s.longitude is None else s.longitude for s in schools])
        # Partnership counts between regions / countries, and their totals, for observed/expected.
        total = max(len(pairs), 1)
        self.region_pairs_ = _pair_counts(self.region_[a], self.region_[b], len(self.regions_))
        self.country_pairs_ = _pair_counts(self.country_[a], self.country_[b], len(self.countries_))
        self.region_country_ = _cross_counts(
            self.region_[a],
            self.country_[b],
            self.region_[b],
            self.country_[a],
            len(self.regions_),
            len(self.countries_),
        )
        self.region_ends_ = self.region_pairs_.sum(axis=1)
        self.country_ends_ = self.country_pairs_.sum(axis=1)
        self.total_ = total
        onehot = sp.csr_matrix((np.ones(n), (np.arange(n), self.region_)), shape=(n, len(self.regions_)))
        self.partners_by_region_ = (A @ onehot).tocsr()
        self.schools_ = {s.id: s for s in schools}
        return self

    def transform(self, source: School, candidates: Sequence[School], scores: Sequence[PairScore]) -> np.ndarray:
        """The readable reference of :meth:`transform_rows`, one profile at a time: ``scores[i]`` is
        the pair's reciprocal score from ``source``'s side. A property test holds the two equal."""
        if not candidates:
            return np.zeros((0, len(FEATURES)))
        languages, sdgs = set(source.languages_exchange), set(source.sdgs)
        shared_languages = [languages & set(c.languages_exchange) for c in candidates]
        shared_sdgs = np.array([len(sdgs & set(c.sdgs)) for c in candidates], dtype=float)
        candidate_home = np.array([c.country == self.home_country_ for c in candidates])
        columns = self._columns(
            source,
            np.array([self.row_.get(c.id, -1) for c in candidates], dtype=np.int64),
            source_is_home(
                source.id,
                source.country == self.home_country_,
                candidate_home,
                lambda at: [candidates[n].id for n in at],
            ),
            FEATURE_NAMES,
            forward={c: np.array([s.forward.components[c] for s in scores]) for c in FIT_COMPONENTS},
            backward={c: np.array([s.backward.components[c] for s in scores]) for c in FIT_COMPONENTS},
            fits=(np.array([s.forward.value for s in scores]), np.array([s.backward.value for s in scores])),
            reciprocal=np.array([s.reciprocal for s in scores]),
            similarity=np.array([s.similarity for s in scores]),
            lat=np.array([np.nan if c.latitude is None else c.latitude for c in candidates]),
            lon=np.array([np.nan if c.longitude is None else c.longitude for c in candidates]),
            shared_languages=np.array([len(x) for x in shared_languages], dtype=float),
            shared_local_languages=np.array([len(x - {"en"}) for x in shared_languages], dtype=float),
            shared_sdgs=shared_sdgs,
            union_sdgs=np.array([len(sdgs | set(c.sdgs)) for c in candidates], dtype=float),
        )
        return np.column_stack(columns)

    def transform_rows(
        self,
        table: ProfileTable,
        source: Row,
        rows: np.ndarray,
        similarity: np.ndarray,
        scores: ArrayScores,
        paths: PathSums | None = None,
    ) -> np.ndarray:
        """One feature row per candidate row of ``table`` (columns as :data:`FEATURE_NAMES`), from the
        table's columns and the fit components of :func:`matching.arrays.reciprocal_scores`: array
        operations only, so a request can score every eligible candidate. ``paths``: the
        :meth:`path_sums` of these rows when the request has them already."""
        if len(rows) == 0:
            return np.zeros((0, len(FEATURES)))
        return np.column_stack(
            self._table_columns(
                table,
                source,
                rows,
                scores.components,
                FEATURE_NAMES,
                fits=(scores.forward, scores.backward),
                reciprocal=scores.reciprocal,
                similarity=np.asarray(similarity, dtype=float),
                paths=paths,
            )
        )

    def first_stage_rows(
        self, table: ProfileTable, source: Row, rows: np.ndarray, components: np.ndarray, paths: PathSums
    ) -> np.ndarray:
        """The :data:`FIRST_STAGE_NAMES` columns (in that order) of :meth:`transform_rows`' rows, from
        the fit components (:func:`matching.arrays.fit_components`) and path sums of ``rows`` alone:
        no cosine, so they can be worked out for every eligible candidate."""
        if len(rows) == 0:
            return np.zeros((0, len(FIRST_STAGE_NAMES)))
        return np.column_stack(self.first_stage_columns(table, source, rows, components, paths))

    def first_stage_columns(
        self, table: ProfileTable, source: Row, rows: np.ndarray, components: np.ndarray, paths: PathSums
    ) -> list[np.ndarray]:
        """:meth:`first_stage_rows` as its columns, unstacked (a linear score adds them up)."""
        return self._table_columns(table, source, rows, components, FIRST_STAGE_NAMES, paths=paths)

    def _table_columns(
        self,
        table: ProfileTable,
        source: Row,
        rows: np.ndarray,
        components: np.ndarray,
        names: Sequence[str],
        *,
        fits: tuple[np.ndarray, np.ndarray] | None = None,
        reciprocal: np.ndarray | None = None,
        similarity: np.ndarray | None = None,
        paths: PathSums | None = None,
    ) -> list[np.ndarray]:
        """The ``names`` columns of the candidate ``rows`` of ``table``, each worked out only if asked for."""
        languages = table["languages_exchange"][rows] & source.languages_exchange
        english = table.languages.bitset(["en"], languages.shape[1])
        sdgs = table["sdgs"][rows]
        candidate_home = table["country"][rows] == table.countries.code(self.home_country_)
        wants_distance = "distance_km" in names
        return self._columns(
            source.school,
            self.rows_in(table)[rows],
            source_is_home(
                source.school.id,
                source.school.country == self.home_country_,
                candidate_home,
                lambda at: [table.ids[r] for r in rows[at]],
            ),
            names,
            forward=dict(zip(FIT_COMPONENTS, components[: len(FIT_COMPONENTS), 0], strict=True)),
            backward=dict(zip(FIT_COMPONENTS, components[: len(FIT_COMPONENTS), 1], strict=True)),
            fits=fits,
            reciprocal=reciprocal,
            similarity=similarity,
            lat=table["latitude"][rows] if wants_distance else None,
            lon=table["longitude"][rows] if wants_distance else None,
            shared_languages=popcount(languages).astype(float),
            shared_local_languages=popcount(languages & ~english).astype(float),
            shared_sdgs=popcount(sdgs & np.uint32(source.sdgs)).astype(float),
            union_sdgs=popcount(sdgs | np.uint32(source.sdgs)).astype(float),
            paths=paths,
        )

    def path_sums(self, table: ProfileTable, source_id: str, rows: np.ndarray) -> PathSums:
        """:meth:`paths` from the school ``source_id`` to each of these rows of ``table``."""
        fit_rows = self.rows_in(table)[rows]
        known = fit_rows >= 0
        common, walks, l3 = self.paths(self.row_.get(source_id, -1), np.where(known, fit_rows, 0))
        return np.where(known, common, 0.0), np.where(known, walks, 0.0), np.where(known, l3, 0.0)

    def rows_in(self, table: ProfileTable) -> np.ndarray:
        """This fit's row of each table row (-1: a school the history did not know), kept for the
        table's id tuple (a new one when a school is added)."""
        cached = self.__dict__.get("_rows_in")
        if cached is None or cached[0] is not table.ids:
            cached = (table.ids, np.array([self.row_.get(i, -1) for i in table.ids], dtype=np.int64))
            self.__dict__["_rows_in"] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, object]:
        # attributes starting with "_" are caches worked out from the fitted state, never saved
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def _common_partner_weight(self) -> np.ndarray:
        """Adamic–Adar's weight of each school as a common partner, 1 / ln degree (0 below degree 2):
        worked out once from the fitted degrees, not on every request."""
        weight = self.__dict__.get("_common_weight")
        if weight is None:
            degree = self.degree_
            weight = self.__dict__["_common_weight"] = np.where(degree >= 2, 1 / np.log(np.maximum(degree, 2)), 0.0)
        return weight

    def _partners_in_region(self, region: int) -> np.ndarray:
        """Each school's partners in ``region`` (a column of :attr:`partners_by_region_`), from a
        by-column copy made once: slicing a column of the row-wise matrix reads all of it."""
        by_region = self.__dict__.get("_by_region")
        if by_region is None:
            by_region = self.__dict__["_by_region"] = self.partners_by_region_.tocsc()
        column = np.zeros(by_region.shape[0])
        span = slice(by_region.indptr[region], by_region.indptr[region + 1])
        column[by_region.indices[span]] = by_region.data[span]
        return column

    def _columns(
        self,
        source: School,
        rows: np.ndarray,
        home: np.ndarray,
        names: Sequence[str],
        *,
        forward: Mapping[str, np.ndarray],
        backward: Mapping[str, np.ndarray],
        fits: tuple[np.ndarray, np.ndarray] | None,
        reciprocal: np.ndarray | None,
        similarity: np.ndarray | None,
        lat: np.ndarray | None,
        lon: np.ndarray | None,
        shared_languages: np.ndarray,
        shared_local_languages: np.ndarray,
        shared_sdgs: np.ndarray,
        union_sdgs: np.ndarray,
        paths: PathSums | None = None,
    ) -> np.ndarray:
        """The ``names`` feature columns, in that order (not stacked: a caller that adds them up
        needs no matrix), from what the profiles give (per candidate) and what the history gives
        (read here at the candidates' fit ``rows``, -1 for a school the history did not know);
        ``home``: per candidate, whether the source is the pair's home side. A column not asked
        for is not worked out (its inputs may then be None)."""
        n = len(rows)
        wanted = set(names)
        columns: dict[str, np.ndarray] = {}

        def needs(*features: str) -> bool:
            return not wanted.isdisjoint(features)

        def directed(
            name: str, on_source: Callable[[], np.ndarray | float], on_candidate: Callable[[], np.ndarray | float]
        ) -> None:
            if needs(f"{name}_home", f"{name}_other"):
                columns[f"{name}_home"], columns[f"{name}_other"] = _oriented(on_source(), on_candidate(), home)

        for name in FIT_COMPONENTS:
            directed(f"fit_{name}", lambda name=name: forward[name], lambda name=name: backward[name])
        if needs("fit_home", "fit_other"):
            assert fits is not None
            directed("fit", lambda: fits[0], lambda: fits[1])
        if needs("reciprocal"):
            columns["reciprocal"] = np.asarray(reciprocal, dtype=float)
        if needs("similarity"):
            assert similarity is not None
            columns["similarity"] = similarity

        u = self.row_.get(source.id, -1)
        known = rows >= 0
        v = np.where(known, rows, 0)
        src_region = self._code(self.regions_, f"{source.country}:{source.region or ''}")
        src_country = self._code(self.countries_, source.country)
        cand_region, cand_country = self.region_[v], self.country_[v]

        def lift(counts: np.ndarray, ends_a: np.ndarray, ends_b: np.ndarray) -> np.ndarray:
            return np.where(known, log_lift(counts, ends_a * ends_b / self.total_), 0.0)

        def known_only(values: np.ndarray) -> np.ndarray:
            return np.where(known, values, 0.0)

        if needs("region_pair_rate", "region_pair_count"):
            if src_region >= 0:
                pair_counts = self.region_pairs_[src_region, cand_region]
                columns["region_pair_rate"] = lift(
                    pair_counts, self.region_ends_[src_region], self.region_ends_[cand_region]
                )
                columns["region_pair_count"] = known_only(pair_counts)
            else:
                columns["region_pair_rate"] = columns["region_pair_count"] = np.zeros(n)
        directed(
            "region_country_rate",
            lambda: self.region_country_lift(src_region, cand_country, known),
            lambda: self.region_country_lift_rev(cand_region, src_country, known),
        )
        directed(
            "region_country_count",
            lambda: known_only(self.region_country_[src_region, cand_country]) if src_region >= 0 else np.zeros(n),
            lambda: known_only(self.region_country_[cand_region, src_country]) if src_country >= 0 else np.zeros(n),
        )
        if needs("country_pair_rate"):
            columns["country_pair_rate"] = (
                lift(
                    self.country_pairs_[src_country, cand_country],
                    self.country_ends_[src_country],
                    self.country_ends_[cand_country],
                )
                if src_country >= 0
                else np.zeros(n)
            )
        P = self.partners_by_region_
        directed(
            "region_partners",  # each side's partners in the other side's region
            lambda: known_only(np.asarray(P[u, :].todense()).ravel()[cand_region]) if u >= 0 else np.zeros(n),
            lambda: known_only(self._partners_in_region(src_region)[v]) if src_region >= 0 else np.zeros(n),
        )
        if needs("adamic_adar", "paths3", "adamic_adar_l3"):
            columns["adamic_adar"], columns["paths3"], columns["adamic_adar_l3"] = (
                tuple(known_only(values) for values in self.paths(u, v)) if paths is None else paths
            )

        for name, values, default in (
            ("degree", np.log1p(self.degree_), 0.0),
            ("load", self.load_, 0.0),
            ("days_since_new", self.days_since_new_, np.nan),
            ("responsiveness", self.responsiveness_, 0.5),
        ):
            directed(
                name,
                lambda values=values, default=default: values[u] if u >= 0 else default,
                lambda values=values, default=default: np.where(known, values[v], default),
            )
        if needs("distance_km"):
            assert lat is not None and lon is not None
            src_lat = np.nan if source.latitude is None else source.latitude
            src_lon = np.nan if source.longitude is None else source.longitude
            columns["distance_km"] = haversine_km(np.full(n, src_lat), np.full(n, src_lon), lat, lon)
        columns["shared_languages"] = shared_languages
        columns["shared_local_languages"] = shared_local_languages
        columns["shared_sdgs"] = shared_sdgs
        columns["sdg_jaccard"] = np.divide(shared_sdgs, union_sdgs, out=np.zeros(n), where=union_sdgs > 0)
        return [columns[name] for name in names]

    def _code(self, table: dict[str, int], value: str) -> int:
        return table.get(value, -1)

    def region_country_lift(self, region: int, countries: np.ndarray, known: np.ndarray) -> np.ndarray:
        """Lift of partnerships between the source's region and each candidate's country."""
        if region < 0:
            return np.zeros(len(countries))
        counts = self.region_country_[region, countries]
        expected = self.region_ends_[region] * self.country_ends_[countries] / self.total_
        return np.where(known, log_lift(counts, expected), 0.0)

    def region_country_lift_rev(self, regions: np.ndarray, country: int, known: np.ndarray) -> np.ndarray:
        """Lift of partnerships between each candidate's region and the source's country."""
        if country < 0:
            return np.zeros(len(regions))
        counts = self.region_country_[regions, country]
        expected = self.region_ends_[regions] * self.country_ends_[country] / self.total_
        return np.where(known, log_lift(counts, expected), 0.0)

    def paths(self, u: int, at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """From u to each school ``at`` these fit rows (None: every school): Adamic–Adar over common
        partners (u – x – v, each weighted 1/ln deg x, as networkx's; 0 between the two sides of a
        bipartite history), the count of walks u – x – y – v (A³), and Adamic–Adar over them (each
        weighted 1/sqrt(ln deg x · ln deg y), as in Kovács et al.'s L3 predictor). All are symmetric
        matrices, so (u, v) and (v, u) agree; for a pair not yet partnered every such walk is a path,
        as in :func:`evaluation.baselines.adamic_adar_l3_scores`.

        Only u's neighbourhood is read (its partners and their partners), never the rows ``at``
        nor the rest of the graph: A is symmetric, so each last step is the transpose of the rows
        already read (``A @ x = A[support].T @ x[support]``), and a request costs what u's
        two-step neighbourhood touches, however many candidates it asks about. Each entry adds the
        same products in the same order (increasing column) as the full matrix product's row does,
        so the values are equal to the last bit."""
        A = self.adjacency_
        n = A.shape[0]
        at = np.arange(n) if at is None else np.asarray(at, dtype=np.int64)
        if u < 0:
            return np.zeros(len(at)), np.zeros(len(at)), np.zeros(len(at))
        neighbours = A.indices[A.indptr[u] : A.indptr[u + 1]]
        start = np.zeros(n)
        start[neighbours] = A.data[A.indptr[u] : A.indptr[u + 1]]
        first = A[neighbours]
        second = np.unique(first.indices)  # the only rows of A @ start that are not 0
        reach = A[second]
        walk2 = reach @ start
        weighted2 = (reach @ (start * self.l3_weight_)) * self.l3_weight_[second]
        common = first.T @ (start * self._common_partner_weight())[neighbours]
        return common[at], (reach.T @ walk2)[at], (reach.T @ weighted2)[at]


def _pair_counts(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """Symmetric count matrix of partnerships between codes."""
    counts = np.zeros((size, size))
    np.add.at(counts, (a, b), 1.0)
    np.add.at(counts, (b, a), 1.0)
    return counts


def _cross_counts(
    region_a: np.ndarray,
    country_b: np.ndarray,
    region_b: np.ndarray,
    country_a: np.ndarray,
    regions: int,
    countries: int,
) -> np.ndarray:
    """Count matrix region × country: partnerships from a school of the region to one of the country."""
    counts = np.zeros((regions, countries))
    np.add.at(counts, (region_a, country_b), 1.0)
    np.add.at(counts, (region_b, country_a), 1.0)
    return counts
