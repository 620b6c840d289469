"""The matching pipeline: retrieve → constrain → score → rebalance → diversify → explain.

:class:`Matcher` holds what the steps need in memory (profiles, the FAISS indexes, the
partnership graph, invitation counts) and wires the plain functions of the other modules
together. It does no I/O of its own beyond save/load of the index, so the service decides
when to build, update and swap it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

import networkx as nx
import numpy as np
from pydantic import BaseModel, Field

import graph
from data.schema import Partnership, School
from embeddings import ProfileEmbedder, profile_hints
from matching import wishes
from matching.constraints import (
    RULE_TEXT,
    PairCheck,
    PairChecker,
    PairContext,
    Rule,
    SuggestionFilters,
    check_pair,
)
from matching.diversify import mmr, pairwise_similarity
from matching.explain import explain
from matching.index import VectorIndex, create_index, load_index
from matching.reasons import Reason
from matching.rebalance import Adjustment, Rebalancer
from matching.scoring import PairScore, reciprocal_score
from matching.settings import MatchSettings, RequestOverrides

HOME, FOREIGN = "home", "foreign"


class CandidateScorer(Protocol):
    """A learned pair score over one source's candidates at once (see matching.ranker)."""

    def score(self, source: School, candidates: Sequence[School], scores: Sequence[PairScore]) -> np.ndarray: ...

    def explain(
        self, source: School, candidates: Sequence[School], scores: Sequence[PairScore]
    ) -> list[list[Reason]]: ...


class Suggestion(BaseModel):
    school_id: str
    score: float = Field(
        ge=0, description="rank score: the reciprocal score times the graph factors (boosts may lift it above 1)"
    )
    reciprocal: float = Field(ge=0, le=1, description="harmonic mean of the fit in both directions")
    fit_forward: float = Field(ge=0, le=1, description="how well the partner matches what you asked for")
    fit_backward: float = Field(ge=0, le=1, description="how well you match what the partner asked for")
    components: dict[str, dict[str, float]] = Field(description="fit components, 'forward' and 'backward'")
    adjustments: dict[str, float] = Field(description="graph factors applied to the reciprocal score")
    reasons: list[Reason]


class Elimination(BaseModel):
    rule: Rule
    candidates: int
    text_en: str
    text_zh: str


class SuggestionResult(BaseModel):
    school_id: str | None
    suggestions: list[Suggestion]
    candidates_examined: int = Field(description="candidates retrieved from the index and checked")
    eliminated: list[Elimination] = Field(description="how many candidates each hard rule removed")
    hints: list[str] = Field(default_factory=list, description="how the school could improve its matches")


EXPOSURE_FILE = "exposure.json"


@dataclass
class Candidate:
    """A candidate that passed the constraints, with everything computed for it."""

    school: School
    check: PairCheck
    score: PairScore
    adjustments: list[Adjustment]
    final: float


@dataclass
class Matcher:
    """In-memory state for matching, built from profiles and partnerships."""

    settings: MatchSettings
    embedder: ProfileEmbedder
    schools: dict[str, School]
    indexes: dict[str, VectorIndex]
    graph: nx.Graph
    pending: dict[str, int] = field(default_factory=dict)
    history: dict[str, graph.InvitationCounts] = field(default_factory=dict)
    exposure: graph.ExposureLedger | None = None
    """Recent appearances in suggestion lists; made from the settings' half-life when not given."""
    ranker: CandidateScorer | None = None
    """A trained model (matching.ranker) whose score replaces the reciprocal score as the rank base."""

    def __post_init__(self) -> None:
        if self.exposure is None:
            self.exposure = graph.ExposureLedger(self.settings.rebalance.exposure_half_life_hours)

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
        active = [s for s in all_schools if s.active]
        vectors = embedder.embed(active) if active else np.zeros((0, embedder.dim), dtype=np.float32)
        indexes: dict[str, VectorIndex] = {}
        for side in (HOME, FOREIGN):
            rows = [i for i, s in enumerate(active) if _side(s, settings) == side]
            index = create_index(embedder.dim, len(rows), kind=index_kind)
            index.build([active[i].id for i in rows], vectors[rows])
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
        self.schools[school.id] = school
        for index in self.indexes.values():
            if school.id in index:
                index.remove([school.id])
        if school.active:
            self.indexes[_side(school, self.settings)].upsert([school.id], self.embedder.embed([school]))
        graph.update_school(self.graph, school)

    def add_partnership(self, partnership: Partnership) -> None:
        graph.add_partnership(self.graph, partnership)

    def end_partnership(self, partnership: Partnership) -> None:
        graph.end_partnership(self.graph, partnership)

    def set_invitations(self, pending: dict[str, int], history: dict[str, graph.InvitationCounts]) -> None:
        """Open invitations hold places in capacity; the answer record feeds responsiveness."""
        self.pending = pending
        self.history = history

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

    def exposure_lookup(self) -> Callable[[School], tuple[float, float]]:
        """School -> (its recent appearances, the average over the indexed schools of its side),
        with the side averages read once, for one request."""
        means = {side: self.exposure.total(side) / max(len(index), 1) for side, index in self.indexes.items()}
        return lambda school: (self.exposure.count(school.id), means[_side(school, self.settings)])

    # ------------------------------------------------------------------ suggesting

    def context(
        self, filters: SuggestionFilters | None = None, settings: MatchSettings | None = None, day: date | None = None
    ) -> PairContext:
        settings = settings or self.settings
        adjacency = self.graph._adj  # the raw dict of dicts, as networkx's own algorithms read it: no view per call
        return PairContext(
            settings=settings,
            day=day or settings.reference_date or date.today(),
            partners=lambda school_id: adjacency.get(school_id, {}),
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
    ) -> SuggestionResult:
        """The k best partners for a stored school (by id) or an ad-hoc profile, with reasons.

        A school with no possible partner gets an empty list and the rules that removed its
        candidates, not an error."""
        if isinstance(source, str):
            source = self.schools[source]
        settings = overrides.apply(self.settings) if overrides else self.settings
        ranked, eliminated, examined = self.candidates(source, k, filters=filters, settings=settings)
        chosen = self._diversify(ranked, k, settings)
        if settings.wishes == "hard":
            chosen = wishes.honour_wishes(source, chosen, ranked, k)
        suggestions = [self._suggestion(source, c, settings) for c in chosen]
        for suggestion, c in zip(suggestions, chosen, strict=True):
            suggestion.reasons.extend(filter(None, [wishes.outside_wish_reason(source, c.school)]))
        if self.ranker and chosen:  # what lifted each candidate in the model comes first
            learned = self.ranker.explain(source, [c.school for c in chosen], [c.score for c in chosen])
            for suggestion, reasons in zip(suggestions, learned, strict=True):
                suggestion.reasons[:0] = reasons
        return SuggestionResult(
            school_id=source.id if source.id in self.schools else None,
            suggestions=suggestions,
            candidates_examined=examined,
            eliminated=[
                Elimination(rule=rule, candidates=n, text_en=RULE_TEXT[rule][0], text_zh=RULE_TEXT[rule][1])
                for rule, n in eliminated.most_common()
            ],
            hints=profile_hints(source) + self._capacity_hints(source) + self._wish_hints(source, ranked, settings),
        )

    def _wish_hints(self, source: School, ranked: list[Candidate], settings: MatchSettings) -> list[str]:
        """Why no candidate from the wished countries, when none came: the rules each one breaks."""
        if any(c.school.country in source.target_countries for c in ranked):
            return []
        ctx = self.context(settings=settings)
        hint = wishes.no_wished_candidate_hint(
            source, self.schools.values(), lambda school: [r.value for r in check_pair(source, school, ctx).violations]
        )
        return [hint] if hint else []

    def _capacity_hints(self, source: School) -> list[str]:
        """A full school still sees suggestions (to plan ahead), but should know it cannot invite yet."""
        if source.id not in self.graph:
            return []
        partners, pending = len(self.graph.adj[source.id]), self.pending.get(source.id, 0)
        if partners + pending < source.capacity:
            return []
        return [
            f"school is at capacity ({partners} partner(s) and {pending} open invitation(s) for "
            f"{source.capacity} place(s)): invitations can be sent once a place frees up or capacity is raised"
        ]

    def candidates(
        self, source: School, k: int, *, filters: SuggestionFilters | None = None, settings: MatchSettings | None = None
    ) -> tuple[list[Candidate], Counter[Rule], int]:
        """Candidates that pass every hard rule, scored and rebalanced, best first (not diversified).

        Returns at least ``k`` (more when diversity needs a pool) unless fewer exist, the count of
        eliminations per rule, and how many candidates were examined. Rounds and groups build on it."""
        settings = settings or self.settings
        ctx = self.context(filters, settings)
        passed, eliminated, examined = self._retrieve(source, self.vector(source), k, ctx)
        return self._rank(source, passed, settings), eliminated, examined

    def candidates_many(
        self, sources: Sequence[School], k: int, *, settings: MatchSettings | None = None, rebalanced: bool = True
    ) -> list[tuple[list[Candidate], Counter[Rule], int]]:
        """:meth:`candidates` for many schools at once, as a matching round needs for thousands: the
        same fetch, refetch and ranking, with one batched index search per side for all the schools
        still short of candidates instead of one search per school. With ``rebalanced=False`` the
        graph factors are left out (``final`` is the reciprocal score), for callers that optimise
        the score itself."""
        if not sources:
            return []
        settings = settings or self.settings
        ctx = self.context(settings=settings)
        pool_target = max(3 * k, 30) if settings.diversity else k
        queries = np.stack([self.vector(source) for source in sources])
        sides_of = [tuple(self.candidate_sides(source, settings)) for source in sources]
        seen: list[set[str]] = [set() for _ in sources]
        passed: list[list[tuple[School, PairCheck, float]]] = [[] for _ in sources]
        eliminated: list[Counter[Rule]] = [Counter() for _ in sources]
        checkers = [PairChecker(source, ctx) for source in sources]
        pending = list(range(len(sources)))
        fetch = int(k * settings.overfetch)
        while pending:
            hits: dict[int, list[tuple[str, float]]] = {row: [] for row in pending}
            rows_by_sides: dict[tuple[str, ...], list[int]] = {}
            for row in pending:
                rows_by_sides.setdefault(sides_of[row], []).append(row)
            for sides, rows in rows_by_sides.items():
                wanted = fetch + max(len(seen[row]) for row in rows) + 1  # room for seen ids and the school
                for side in sides:
                    for row, side_hits in zip(rows, self.indexes[side].search(queries[rows], wanted), strict=True):
                        fresh = [hit for hit in side_hits if hit[0] != sources[row].id and hit[0] not in seen[row]]
                        hits[row].extend(fresh[:fetch])
            short = []
            for row in pending:
                self._check_hits(checkers[row], hits[row], ctx, seen[row], passed[row], eliminated[row])
                available = sum(len(self.indexes[side]) for side in sides_of[row])
                if len(passed[row]) < pool_target and len(seen[row]) < available and fetch < settings.max_candidates:
                    short.append(row)
            pending = short
            fetch = min(fetch * 4, settings.max_candidates)
        return [
            (self._rank(source, passed[row], settings, rebalanced=rebalanced), eliminated[row], len(seen[row]))
            for row, source in enumerate(sources)
        ]

    def score_pair(
        self,
        source: School,
        candidate: School,
        *,
        settings: MatchSettings | None = None,
        similarity: float | None = None,
    ) -> tuple[PairCheck, PairScore]:
        """The hard-rule check and reciprocal score of one given pair, as :meth:`candidates` computes
        them (without graph factors), for pairs the index did not rank from this side: rounds explain
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

    def _retrieve(
        self, source: School, query: np.ndarray, k: int, ctx: PairContext
    ) -> tuple[list[tuple[School, PairCheck, float]], Counter[Rule], int]:
        """Over-fetch from the index, filter by the hard rules, refetch while too few survive."""
        settings = ctx.settings
        pool_target = max(3 * k, 30) if settings.diversity else k
        sides = self.candidate_sides(source, settings)
        available = sum(len(self.indexes[side]) for side in sides)
        fetch = int(k * settings.overfetch)
        seen: set[str] = set()
        passed: list[tuple[School, PairCheck, float]] = []
        eliminated: Counter[Rule] = Counter()
        checker = PairChecker(source, ctx)
        while True:
            hits: list[tuple[str, float]] = []
            for side in sides:
                hits.extend(self.indexes[side].search(query[None, :], fetch, exclude={source.id} | seen)[0])
            self._check_hits(checker, hits, ctx, seen, passed, eliminated)
            if len(passed) >= pool_target or len(seen) >= available or fetch >= settings.max_candidates:
                return passed, eliminated, len(seen)
            fetch = min(fetch * 4, settings.max_candidates)

    def _check_hits(
        self,
        checker: PairChecker,
        hits: list[tuple[str, float]],
        ctx: PairContext,
        seen: set[str],
        passed: list[tuple[School, PairCheck, float]],
        eliminated: Counter[Rule],
    ) -> None:
        """Apply the hard rules to index hits, most similar first, recording what each one did."""
        for school_id, similarity in sorted(hits, key=lambda h: -h[1]):
            seen.add(school_id)
            candidate = self.schools[school_id]
            if self._is_full(candidate, ctx):  # fast path: in a busy network most candidates are full
                eliminated[Rule.AT_CAPACITY] += 1
                continue
            check = checker(candidate)
            if check.ok:
                passed.append((candidate, check, similarity))
            else:
                eliminated.update(check.violations)

    def _is_full(self, school: School, ctx: PairContext) -> bool:
        return len(ctx.partners(school.id)) + ctx.pending(school.id) >= school.capacity

    def _rank(
        self,
        source: School,
        passed: list[tuple[School, PairCheck, float]],
        settings: MatchSettings,
        *,
        rebalanced: bool = True,
    ) -> list[Candidate]:
        adjust = (
            Rebalancer(
                self.graph,
                source,
                weights=settings.rebalance,
                home_country=settings.home_country,
                names=self.name_of,
                pending=self.pending,
                history=self.history,
                exposure=self.exposure_lookup(),
            )
            if rebalanced
            else None
        )
        scores = [
            reciprocal_score(source, candidate, check, similarity, settings) for candidate, check, similarity in passed
        ]
        bases = self.ranker.score(source, [p[0] for p in passed], scores) if self.ranker else [s.score for s in scores]
        ranked = []
        for (candidate, check, _), score, base in zip(passed, scores, bases, strict=True):
            adjustments = adjust(candidate) if adjust else []
            final = float(base) * math.prod(a.factor for a in adjustments)
            ranked.append(Candidate(candidate, check, score, adjustments, final))
        ranked.sort(key=lambda c: (-c.final, c.school.id))
        return ranked

    def _diversify(self, ranked: list[Candidate], k: int, settings: MatchSettings) -> list[Candidate]:
        if not settings.diversity or len(ranked) <= 1:
            return ranked[:k]
        pool = ranked[: max(3 * k, 30)]
        vectors = self.vectors([c.school for c in pool])
        similarity = pairwise_similarity([c.school.country for c in pool], vectors)
        order = mmr([c.final for c in pool], similarity, k, settings.mmr_lambda)
        return [pool[i] for i in order]

    def _suggestion(self, source: School, c: Candidate, settings: MatchSettings) -> Suggestion:
        return Suggestion(
            school_id=c.school.id,
            score=round(c.final, 6),
            reciprocal=round(c.score.score, 6),
            fit_forward=round(c.score.forward.value, 6),
            fit_backward=round(c.score.backward.value, 6),
            components={
                "forward": {k: round(v, 4) for k, v in c.score.forward.components.items()},
                "backward": {k: round(v, 4) for k, v in c.score.backward.components.items()},
            },
            adjustments={a.code: round(a.factor, 4) for a in c.adjustments},
            reasons=explain(source, c.school, c.check, c.score, c.adjustments, settings),
        )

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


def _side(school: School, settings: MatchSettings) -> str:
    return HOME if school.country == settings.home_country else FOREIGN
