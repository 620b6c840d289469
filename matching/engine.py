"""The matching engine's state and verbs: a facade, as txtai's ``Embeddings`` is.

:class:`Matcher` holds what the steps need in memory (profiles and their columnar table, the FAISS
indexes, the partnership graph, invitation counts, the exposure ledger) and hands each verb to a
small module in a line or two: :mod:`matching.retrieve` (constrain, retrieve, score, rebalance, for
one school or many), :mod:`matching.suggest` (diversify and explain the k returned). It does no
I/O of its own beyond save/load of the index, so the service decides when to build, update and
swap it. Live updates replace the table with a new one (copy-on-write), never edit it in place.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import networkx as nx
import numpy as np

import graph
from data.schema import Partnership, School
from embeddings import ProfileEmbedder
from matching import suggest as suggesting
from matching.arrays import LearnedScorer, PairScorer
from matching.constraints import PairCheck, PairContext, Rule, SuggestionFilters, check_pair
from matching.index import VectorIndex, create_index, load_index
from matching.results import SuggestionResult
from matching.retrieve import Candidate, Request, retrieve
from matching.scoring import PairScore, reciprocal_score
from matching.settings import MatchSettings, RequestOverrides
from matching.table import SIDE_CODES, ProfileTable

HOME, FOREIGN = "home", "foreign"
EXPOSURE_FILE = "exposure.json"
EMBED_CHUNK = 8192


@dataclass
class Matcher:
    """In-memory state for matching, built from profiles and partnerships."""

    settings: MatchSettings
    embedder: ProfileEmbedder
    schools: dict[str, School]
    indexes: dict[str, VectorIndex]
    partnerships: nx.Graph
    """Active partnerships between schools (graph/): read through :meth:`partners`."""
    pending: dict[str, int] = field(default_factory=dict)
    history: dict[str, graph.InvitationCounts] = field(default_factory=dict)
    exposure: graph.ExposureLedger | None = None
    """Recent appearances in suggestion lists; made from the settings' half-life when not given."""
    table: ProfileTable | None = None
    """Every profile as columns (matching/table.py), made from the rest when not given."""
    scorer: PairScorer | None = None
    """Base score of the ranking step over arrays of candidates; None: the reciprocal score."""
    ranker: LearnedScorer | None = None
    """A trained model (matching.ranker) whose score replaces the reciprocal score as the rank base
    and whose reasons lead each suggestion's; None: the hand-weighted score."""

    def __post_init__(self) -> None:
        if self.exposure is None:
            self.exposure = graph.ExposureLedger(self.settings.rebalance.exposure_half_life_hours)
        if self.table is None:
            labels = {
                id_: (SIDE_CODES[side], label)
                for side, index in self.indexes.items()
                for id_, label in index.labels().items()
            }
            table = ProfileTable.build(list(self.schools.values()), self.settings.home_country, labels)
            partners = {node: len(adjacent) for node, adjacent in self.partnerships.adj.items()}
            self.table = table.with_partners(partners).with_invitations(self.pending, self.history)

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        schools: Iterable[School],
        partnerships: Iterable[Partnership],
        embedder: ProfileEmbedder,
        settings: MatchSettings | None = None,
        *,
        index_kind: str = "auto",
    ) -> Matcher:
        """Embed every profile (from the cache where possible) and index the active ones."""
        settings = settings or MatchSettings()
        by_id = {s.id: s for s in schools}
        all_schools = list(by_id.values())
        embedder.fit(all_schools)
        indexes: dict[str, VectorIndex] = {}
        for side in (HOME, FOREIGN):
            mine = [s for s in all_schools if s.active and _side(s, settings) == side]
            index = create_index(embedder.dim, len(mine), kind=index_kind)
            index.build([s.id for s in mine], _embedded(embedder, mine))
            indexes[side] = index
        G = graph.build_partnership_graph(all_schools, partnerships)
        return cls(settings, embedder, by_id, indexes, G)

    def save(self, path: Path, *, metadata: Mapping[str, object] | None = None) -> None:
        """Save the indexes and the embedding encoder, so a restart needs no re-encoding."""
        path.mkdir(parents=True, exist_ok=True)
        meta = {"encoder": self.embedder.encoder_state(), **(metadata or {})}
        for side, index in self.indexes.items():
            index.metadata = meta
            index.save(path / side)
        (path / "matcher.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        (path / EXPOSURE_FILE).write_text(json.dumps(self.exposure.state()), encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: Path,
        schools: Iterable[School],
        partnerships: Iterable[Partnership],
        embedder: ProfileEmbedder,
        settings: MatchSettings | None = None,
    ) -> Matcher:
        settings = settings or MatchSettings()
        meta = json.loads((path / "matcher.json").read_text(encoding="utf-8"))
        embedder.load_encoder_state(meta["encoder"])
        indexes = {side: load_index(path / side) for side in (HOME, FOREIGN)}
        by_id = {s.id: s for s in schools}
        G = graph.build_partnership_graph(by_id.values(), partnerships)
        exposure_file = path / EXPOSURE_FILE
        exposure = (
            graph.ExposureLedger.from_state(json.loads(exposure_file.read_text(encoding="utf-8")))
            if exposure_file.exists()
            else None
        )
        return cls(settings, embedder, by_id, indexes, G, exposure=exposure)

    @staticmethod
    def saved_metadata(path: Path) -> dict[str, object] | None:
        file = path / "matcher.json"
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None

    # ------------------------------------------------------------------ live updates

    def upsert_school(self, school: School) -> None:
        """Re-embed one profile and move it in the index; deactivated schools leave the index."""
        graph.update_school(self.partnerships, school)  # first: it refuses a move its partners forbid
        self.schools[school.id] = school
        for index in self.indexes.values():
            if school.id in index:
                index.remove([school.id])
        label = None
        if school.active:
            side = _side(school, self.settings)
            self.indexes[side].upsert([school.id], self.embedder.embed([school]))
            label = (SIDE_CODES[side], self.indexes[side].label(school.id))
        self.table = self.table.with_school(school, label)

    def add_partnership(self, partnership: Partnership) -> None:
        graph.add_partnership(self.partnerships, partnership)
        self._count_partners(partnership.school_a, partnership.school_b)

    def end_partnership(self, partnership: Partnership) -> None:
        graph.end_partnership(self.partnerships, partnership)
        self._count_partners(partnership.school_a, partnership.school_b)

    def _count_partners(self, *school_ids: str) -> None:
        self.table = self.table.with_partners({s: len(self.partners(s)) for s in school_ids})

    def set_invitations(self, pending: dict[str, int], history: dict[str, graph.InvitationCounts]) -> None:
        """Open invitations hold places in capacity; the answer record feeds responsiveness."""
        self.table = self.table.with_invitations(pending, history)
        self.pending = pending
        self.history = history

    # ------------------------------------------------------------------ queries

    def partners(self, school_id: str) -> Collection[str]:
        """Ids of the school's active partners (none for a school the graph does not hold)."""
        return self.partnerships._adj.get(school_id, {}).keys()  # the raw adjacency: no view per call

    def free_places(self, school: School) -> int:
        """Places the school can still offer: :func:`graph.free_places` of its capacity, active
        partners and open invitations (0 or less: full)."""
        return graph.free_places(school.capacity, len(self.partners(school.id)), self.pending.get(school.id, 0))

    def record_shown(self, result: SuggestionResult) -> None:
        """Count the suggestions as shown, so the exposure factor spreads later lists further.

        Callers that show the list (the API) record it; previews and offline scoring do not."""
        sides: dict[str, list[str]] = {}
        for suggestion in result.suggestions:
            school = self.schools.get(suggestion.school_id)
            if school is not None:
                sides.setdefault(_side(school, self.settings), []).append(school.id)
        for side, ids in sides.items():
            self.exposure.record(ids, side=side)

    def exposure_means(self) -> dict[str, float]:
        """The average recent appearances over the indexed schools of each side, read once a request."""
        return {side: self.exposure.total(side) / max(len(index), 1) for side, index in self.indexes.items()}

    def exposure_lookup(self) -> Callable[[School], tuple[float, float]]:
        """School -> (its recent appearances, the average over the indexed schools of its side)."""
        means = self.exposure_means()
        return lambda school: (self.exposure.count(school.id), means[_side(school, self.settings)])

    def exposure_rows(self) -> Callable[[ProfileTable, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """:meth:`exposure_lookup` for a request's candidates as table rows, read in one go."""
        means = np.zeros(len(SIDE_CODES))
        for side, mean in self.exposure_means().items():
            means[SIDE_CODES[side]] = mean
        return lambda table, rows: (
            self.exposure.counts([table.ids[row] for row in rows.tolist()]),
            means[table["side"][rows]],
        )

    # ------------------------------------------------------------------ suggesting

    def context(
        self, filters: SuggestionFilters | None = None, settings: MatchSettings | None = None, day: date | None = None
    ) -> PairContext:
        settings = settings or self.settings
        return PairContext(
            settings=settings,
            day=day or settings.reference_date or date.today(),
            partners=self.partners,
            pending=lambda school_id: self.pending.get(school_id, 0),
            filters=filters or SuggestionFilters(),
        )

    def vector(self, school: School) -> np.ndarray:
        side = self._indexed_side(school)
        return self.indexes[side].vector(school.id) if side else self.embedder.embed([school])[0]

    def vectors(self, schools: Sequence[School]) -> np.ndarray:
        """:meth:`vector` of each school, one row each, reading each index once for its stored schools."""
        dim = next(iter(self.indexes.values())).dim  # not the embedder's: that would load the model to say
        rows = np.zeros((len(schools), dim), dtype=np.float32)
        by_side: dict[str, list[int]] = {}
        for row, school in enumerate(schools):
            side = self._indexed_side(school)
            if side:
                by_side.setdefault(side, []).append(row)
            else:
                rows[row] = self.embedder.embed([school])[0]
        for side, wanted in by_side.items():
            rows[wanted] = self.indexes[side].vectors([schools[row].id for row in wanted])
        return rows

    def suggest(
        self,
        source: School | str,
        k: int = 10,
        *,
        filters: SuggestionFilters | None = None,
        overrides: RequestOverrides | None = None,
        depth: int | None = None,
    ) -> SuggestionResult:
        """The k best partners for a stored school (by id) or an ad-hoc profile, with reasons.

        A school with no possible partner gets an empty list and the rules that removed its
        candidates, not an error. ``depth`` candidates are ranked (default: the settings')."""
        source = self.schools[source] if isinstance(source, str) else source
        settings = overrides.apply(self.settings) if overrides else self.settings
        return suggesting.suggest(self, source, k, settings, filters, depth or (overrides and overrides.depth))

    def candidates(
        self,
        source: School,
        k: int,
        *,
        filters: SuggestionFilters | None = None,
        settings: MatchSettings | None = None,
        depth: int | None = None,
    ) -> tuple[list[Candidate], Counter[Rule], int]:
        """Candidates that pass every hard rule, scored and rebalanced, best first (not diversified),
        the count of eliminations per rule, and how many candidates were examined: a batch of one
        for :meth:`candidates_many`. Groups and the evaluation build on it."""
        [found] = self.candidates_many([source], k, settings=settings, filters=filters, depth=depth)
        return found

    def candidates_many(
        self,
        sources: Sequence[School],
        k: int,
        *,
        settings: MatchSettings | None = None,
        rebalanced: bool = True,
        filters: SuggestionFilters | None = None,
        depth: int | None = None,
    ) -> list[tuple[list[Candidate], Counter[Rule], int]]:
        """:meth:`candidates` of many schools, on one table snapshot: the one retrieval path
        (:func:`matching.retrieve.retrieve`). With ``rebalanced=False`` the graph factors are left
        out (``rank_score`` is the base score), for callers that optimise the score itself."""
        settings = settings or self.settings
        requests = [
            Request(source, k, settings, filters or SuggestionFilters(), depth, rebalanced) for source in sources
        ]
        return [(found.ranked, found.eliminated, found.examined) for found in retrieve(self, requests)]

    def score_pair(
        self,
        source: School,
        candidate: School,
        *,
        settings: MatchSettings | None = None,
        similarity: float | None = None,
    ) -> tuple[PairCheck, PairScore]:
        """The hard-rule check and reciprocal score of one given pair, with the reference functions
        (without graph factors), for pairs the index did not rank from this side: rounds explain
        a pair from its home school's side, groups score every pair of members. ``similarity``
        defaults to the cosine of the two profile vectors."""
        settings = settings or self.settings
        check = check_pair(source, candidate, self.context(settings=settings))
        if similarity is None:
            similarity = float(self.vector(source) @ self.vector(candidate))
        return check, reciprocal_score(source, candidate, check, similarity, settings)

    def candidate_sides(self, source: School, settings: MatchSettings | None = None) -> list[str]:
        """Which partitions can hold a partner: the other side, and under scope=any foreign too."""
        settings = settings or self.settings
        if _side(source, settings) == HOME:
            return [FOREIGN]
        return [HOME, FOREIGN] if settings.scope == "any" else [HOME]

    def _indexed_side(self, school: School) -> str | None:
        """The index holding this very profile's vector, or None (an ad-hoc or edited profile)."""
        stored = self.schools.get(school.id)
        if stored is not school and stored != school:  # identity first: comparing two profiles costs more
            return None
        side = _side(school, self.settings)
        return side if school.id in self.indexes[side] else None

    def name_of(self, school_id: str) -> str:
        school = self.schools.get(school_id)
        return school.display_name if school else school_id


def _embedded(embedder: ProfileEmbedder, schools: Sequence[School]) -> np.ndarray:
    """The schools' vectors, embedded a chunk at a time into one float32 array: the encoder's
    float64 intermediates then stay a few MB instead of several times the result (100k profiles)."""
    vectors = np.empty((len(schools), embedder.dim), dtype=np.float32)
    for start in range(0, len(schools), EMBED_CHUNK):
        vectors[start : start + EMBED_CHUNK] = embedder.embed(schools[start : start + EMBED_CHUNK])
    return vectors


def _side(school: School, settings: MatchSettings) -> str:
    return HOME if school.country == settings.home_country else FOREIGN
