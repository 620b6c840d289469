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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import networkx as nx
import numpy as np
from pydantic import BaseModel, Field

import graph
from data.schema import Partnership, School
from embeddings import ProfileEmbedder, profile_hints
from matching.constraints import RULE_TEXT, PairCheck, PairContext, Rule, SuggestionFilters, check_pair
from matching.diversify import mmr, pairwise_similarity
from matching.explain import explain
from matching.index import VectorIndex, create_index, load_index
from matching.reasons import Reason
from matching.rebalance import Adjustment, Rebalancer
from matching.scoring import PairScore, reciprocal_score
from matching.settings import MatchSettings, RequestOverrides

HOME, FOREIGN = "home", "foreign"


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

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, schools: Iterable[School], partnerships: Iterable[Partnership], embedder: ProfileEmbedder,
              settings: MatchSettings | None = None, *, index_kind: str = "auto") -> Matcher:
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

    @classmethod
    def load(cls, path: Path, schools: Iterable[School], partnerships: Iterable[Partnership],
             embedder: ProfileEmbedder, settings: MatchSettings | None = None) -> Matcher:
        settings = settings or MatchSettings()
        meta = json.loads((path / "matcher.json").read_text(encoding="utf-8"))
        embedder.load_encoder_state(meta["encoder"])
        indexes = {side: load_index(path / side) for side in (HOME, FOREIGN)}
        by_id = {s.id: s for s in schools}
        G = graph.build_partnership_graph(by_id.values(), partnerships)
        return cls(settings, embedder, by_id, indexes, G)

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

    # ------------------------------------------------------------------ suggesting

    def context(self, filters: SuggestionFilters | None = None, settings: MatchSettings | None = None,
                day: date | None = None) -> PairContext:
        settings = settings or self.settings
        return PairContext(
            settings=settings,
            day=day or settings.reference_date or date.today(),
            partners=lambda school_id: self.graph.adj.get(school_id, ()),
            pending=lambda school_id: self.pending.get(school_id, 0),
            filters=filters or SuggestionFilters(),
        )

    def vector(self, school: School) -> np.ndarray:
        for index in self.indexes.values():
            if school.id in index and self.schools.get(school.id) == school:
                return index.vector(school.id)
        return self.embedder.embed([school])[0]

    def suggest(self, source: School | str, k: int = 10, *, filters: SuggestionFilters | None = None,
                overrides: RequestOverrides | None = None) -> SuggestionResult:
        """The k best partners for a stored school (by id) or an ad-hoc profile, with reasons.

        A school with no possible partner gets an empty list and the rules that removed its
        candidates, not an error."""
        if isinstance(source, str):
            source = self.schools[source]
        settings = overrides.apply(self.settings) if overrides else self.settings
        ranked, eliminated, examined = self.candidates(source, k, filters=filters, settings=settings)
        chosen = self._diversify(ranked, k, settings)
        suggestions = [self._suggestion(source, c, settings) for c in chosen]
        return SuggestionResult(
            school_id=source.id if source.id in self.schools else None,
            suggestions=suggestions,
            candidates_examined=examined,
            eliminated=[
                Elimination(rule=rule, candidates=n, text_en=RULE_TEXT[rule][0], text_zh=RULE_TEXT[rule][1])
                for rule, n in eliminated.most_common()
            ],
            hints=profile_hints(source),
        )

    def candidates(self, source: School, k: int, *, filters: SuggestionFilters | None = None,
                   settings: MatchSettings | None = None) -> tuple[list[Candidate], Counter[Rule], int]:
        """Candidates that pass every hard rule, scored and rebalanced, best first (not diversified).

        Returns at least ``k`` (more when diversity needs a pool) unless fewer exist, the count of
        eliminations per rule, and how many candidates were examined. Rounds and groups build on it."""
        settings = settings or self.settings
        ctx = self.context(filters, settings)
        passed, eliminated, examined = self._retrieve(source, self.vector(source), k, ctx)
        return self._rank(source, passed, settings), eliminated, examined

    def candidate_sides(self, source: School, settings: MatchSettings | None = None) -> list[str]:
        """Which partitions can hold a partner: the other side, and under scope=any foreign too."""
        settings = settings or self.settings
        if _side(source, settings) == HOME:
            return [FOREIGN]
        return [HOME, FOREIGN] if settings.scope == "any" else [HOME]

    def _retrieve(self, source: School, query: np.ndarray, k: int, ctx: PairContext
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
        while True:
            hits: list[tuple[str, float]] = []
            for side in sides:
                hits.extend(self.indexes[side].search(query[None, :], fetch, exclude={source.id} | seen)[0])
            for school_id, similarity in sorted(hits, key=lambda h: -h[1]):
                seen.add(school_id)
                candidate = self.schools[school_id]
                if self._is_full(candidate, ctx):  # fast path: in a busy network most candidates are full
                    eliminated[Rule.AT_CAPACITY] += 1
                    continue
                check = check_pair(source, candidate, ctx)
                if check.ok:
                    passed.append((candidate, check, similarity))
                else:
                    eliminated.update(check.violations)
            if len(passed) >= pool_target or len(seen) >= available or fetch >= settings.max_candidates:
                return passed, eliminated, len(seen)
            fetch = min(fetch * 4, settings.max_candidates)

    def _is_full(self, school: School, ctx: PairContext) -> bool:
        return len(ctx.partners(school.id)) + ctx.pending(school.id) >= school.capacity

    def _rank(self, source: School, passed: list[tuple[School, PairCheck, float]],
              settings: MatchSettings) -> list[Candidate]:
        adjust = Rebalancer(self.graph, source, weights=settings.rebalance, home_country=settings.home_country,
                            names=self.name_of, pending=self.pending, history=self.history)
        ranked = []
        for candidate, check, similarity in passed:
            score = reciprocal_score(source, candidate, check, similarity, settings)
            adjustments = adjust(candidate)
            final = score.score * math.prod(a.factor for a in adjustments)
            ranked.append(Candidate(candidate, check, score, adjustments, final))
        ranked.sort(key=lambda c: (-c.final, c.school.id))
        return ranked

    def _diversify(self, ranked: list[Candidate], k: int, settings: MatchSettings) -> list[Candidate]:
        if not settings.diversity or len(ranked) <= 1:
            return ranked[:k]
        pool = ranked[: max(3 * k, 30)]
        vectors = np.stack([self.vector(c.school) for c in pool])
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

    def name_of(self, school_id: str) -> str:
        school = self.schools.get(school_id)
        return school.display_name if school else school_id


def _side(school: School, settings: MatchSettings) -> str:
    return HOME if school.country == settings.home_country else FOREIGN
