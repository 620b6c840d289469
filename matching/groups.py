"""Cross-border school groups: three to five schools in at least three countries on one SDG theme.

A group project (a shared climate survey, a joint online festival) needs more than pairwise fit:
one language everybody can use, school hours that overlap for every pair, and a spread of
countries. For a school and a theme, :func:`propose_groups` returns the best few distinct groups
that include it.

Rules for a group (the pair rules that make sense for several schools at once):

* every member is active and has a free place (partners + open invitations < capacity);
* every pair passes :func:`~matching.constraints.check_pair` under scope "any", except that two
  members may share a country (they then count as one country), may pair two foreign schools,
  and may already be partners (a group builds on ties rather than replacing them);
* every pair can meet online: both offer virtual exchange and share at least
  ``min_overlap_hours`` of school hours, and the window all members share is that long too;
* all members share at least one exchange language; at least ``min_countries`` countries, at most
  ``max_per_country`` schools from any one (default 2, so a group stays mixed), and at least one
  school of the home country (default Taiwan);
* every member has the SDG in its profile. The requesting school counts as interested because
  it asked. Only when no group at all satisfies this is the search repeated without it; the
  result then says ``sdg_relaxed`` and marks who is interested.

Pairs between two foreign schools or two schools of one country are scored with the same fit
functions under scope "any" (the target-country component simply scores low for a school's own
country), so every pair's reciprocal score is on one scale; a group's score is their sum.

Candidates come from the index and the partnership graph, never from all schools: the school's
own candidates (filtered by the SDG), an "any"-scope search from the school and from its best few
foreign candidates (which finds foreign-foreign pairs), its partners, its partners' partners and
its cluster bridges. The ``pool_size`` best of them by fit with the school are kept, and every
clique of compatible members containing the school is enumerated exactly (depth-first, adding
members in a fixed order, pruning on pairwise compatibility and the shared language). With a pool
of at most 40 that is at most C(39, 4) = 82,251 sets, milliseconds to a second, so an exact search
is affordable and a beam search's risk of missing the best group is not worth taking.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, Field, model_validator

from data.schema import CountryCode, School
from data.taxonomies import (
    ExchangeMode,
    country_name,
    country_name_zh,
    language_name,
    language_name_zh,
    sdg_name,
    sdg_name_zh,
)
from graph import active_partners, cluster_bridges
from matching.constraints import Rule, SuggestionFilters
from matching.hours import school_hours_overlap
from matching.reasons import Reason
from matching.rounds import remaining_capacity
from matching.settings import MatchSettings

if TYPE_CHECKING:
    from matching.engine import Matcher

RELAXED_RULES: frozenset[Rule] = frozenset({Rule.SAME_COUNTRY, Rule.OUT_OF_SCOPE, Rule.ALREADY_PARTNERS})
"""Pair rules that do not apply inside a group (see the module docstring)."""


class GroupOptions(BaseModel):
    min_size: int = Field(3, ge=3, le=5, description="fewest schools in a group")
    max_size: int = Field(5, ge=3, le=5, description="most schools in a group")
    min_countries: int = Field(3, ge=2, le=5, description="distinct countries a group must span")
    max_per_country: int = Field(2, ge=1, le=5, description="most schools from one country, so groups stay mixed")
    home_country: CountryCode | None = Field(None, description="a group needs one school here; default: settings")
    min_overlap_hours: float | None = Field(None, ge=0, le=8, description="default: settings.min_overlap_hours")
    groups: int = Field(5, ge=1, le=20, description="how many distinct groups to return")
    pool_size: int = Field(24, ge=4, le=40, description="candidate members kept for the exact search")
    per_query: int = Field(15, ge=1, le=100, description="candidates asked from the index per search")
    expand_foreign: int = Field(6, ge=0, le=20, description="foreign candidates whose own neighbours are searched")
    graph_limit: int = Field(100, ge=0, le=1000, description="partners' partners considered, by id")

    @model_validator(mode="after")
    def _sizes(self) -> GroupOptions:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size: {self.min_size} is larger than max_size {self.max_size}")
        if self.min_countries > self.max_size:
            raise ValueError(f"min_countries: {self.min_countries} countries cannot fit in {self.max_size} schools")
        return self


class GroupMember(BaseModel):
    school_id: str
    name: str
    country: str
    interested_in_sdg: bool = Field(description="the SDG is in the school's profile (the requester always counts)")
    found_via: list[str] = Field(
        description="where the candidate came from: index, index_any, partner, "
        "partners_partner, bridge; 'requester' for the school itself"
    )


class GroupPair(BaseModel):
    school_a: str
    school_b: str
    score: float = Field(ge=0, le=1, description="reciprocal score of the pair")
    overlap_hours: float


class SharedWindow(BaseModel):
    """School hours every member shares, on the reference day."""

    hours: float
    start_utc: datetime
    end_utc: datetime
    timezone: str = Field(description="the requesting school's time zone, for the local times")
    local_start: str
    local_end: str


class Group(BaseModel):
    members: list[GroupMember]
    countries: list[str]
    languages: list[str] = Field(description="exchange languages every member shares")
    window: SharedWindow
    sdg: int
    total_score: float = Field(description="sum of the pairwise reciprocal scores: what the search maximises")
    mean_pair_score: float
    pairs: list[GroupPair]
    reasons: list[Reason]


class GroupResult(BaseModel):
    school_id: str
    sdg: int
    sdg_relaxed: bool = Field(description="no group of only interested schools existed; the SDG was not required")
    pool_size: int = Field(description="candidate members the exact search ran over")
    groups_considered: int = Field(description="valid groups found before choosing the distinct few")
    groups: list[Group]
    notes: list[str] = Field(default_factory=list, description="why there are no groups, when there are none")


@dataclass(frozen=True)
class _PairFacts:
    score: float
    overlap_hours: float


def propose_groups(
    matcher: Matcher,
    school: School | str,
    sdg: int,
    options: GroupOptions | None = None,
    *,
    settings: MatchSettings | None = None,
) -> GroupResult:
    """The best few distinct groups with ``school`` on SDG ``sdg`` (see the module docstring)."""
    options = options or GroupOptions()
    if not 1 <= sdg <= 17:
        raise ValueError(f"sdg: must be a goal number from 1 to 17, got {sdg}")
    source = matcher.schools[school] if isinstance(school, str) else school
    base = settings or matcher.settings
    updates: dict[str, object] = {"diversity": False}
    if options.min_overlap_hours is not None:
        updates["min_overlap_hours"] = options.min_overlap_hours
    home_settings = base.model_copy(update=updates)
    any_settings = home_settings.model_copy(update={"scope": "any"})
    home = options.home_country or base.home_country

    notes = _source_problems(matcher, source)
    if notes:
        return GroupResult(
            school_id=source.id, sdg=sdg, sdg_relaxed=False, pool_size=0, groups_considered=0, groups=[], notes=notes
        )
    search = _GroupSearch(matcher, source, sdg, options, home, home_settings, any_settings)
    result = search.run(require_sdg=True)
    if result.groups_considered == 0:
        relaxed = search.run(require_sdg=False)
        if relaxed.groups_considered:
            return relaxed
    return result


def _source_problems(matcher: Matcher, source: School) -> list[str]:
    problems = []
    if not source.active:
        problems.append(f"{source.id} is not active")
    if remaining_capacity(matcher, source) == 0:
        problems.append(f"{source.id} has no free place: its partners and open invitations fill its capacity")
    if ExchangeMode.VIRTUAL not in source.exchange_modes:
        problems.append(f"{source.id} does not offer virtual exchange, which a group meets by")
    return problems


class _GroupSearch:
    """One search: gather a pool, check and score its pairs, enumerate the groups, pick a few."""

    def __init__(
        self,
        matcher: Matcher,
        source: School,
        sdg: int,
        options: GroupOptions,
        home: str,
        home_settings: MatchSettings,
        any_settings: MatchSettings,
    ) -> None:
        self.matcher = matcher
        self.source = source
        self.sdg = sdg
        self.options = options
        self.home = home
        self.home_settings = home_settings
        self.any_settings = any_settings
        self.day: date = matcher.context(settings=any_settings).day
        self._vectors: dict[str, np.ndarray] = {}

    def run(self, *, require_sdg: bool) -> GroupResult:
        found = self._gather(require_sdg)
        pool, facts = self._pool(found, require_sdg)
        members = [self.source, *pool]
        valid = sorted(self._enumerate(members, facts), key=lambda g: (-g[0], g[1]))
        chosen = distinct_groups(valid, self.options.groups)
        groups = [self._group(ids, total, facts, found) for total, ids in chosen]
        notes = (
            []
            if groups
            else [
                f"no group of {self.options.min_size}-{self.options.max_size} schools in {self.options.min_countries}+ "
                f"countries passed every rule among {len(pool)} candidates"
            ]
        )
        return GroupResult(
            school_id=self.source.id,
            sdg=self.sdg,
            sdg_relaxed=not require_sdg,
            pool_size=len(pool),
            groups_considered=len(valid),
            groups=groups,
            notes=notes,
        )

    # ------------------------------------------------------------------ candidates

    def _gather(self, require_sdg: bool) -> dict[str, set[str]]:
        """Candidate ids -> where they were found."""
        matcher, source, k = self.matcher, self.source, self.options.per_query
        filters = SuggestionFilters(sdgs=[self.sdg]) if require_sdg else None
        found: dict[str, set[str]] = defaultdict(set)
        own, _, _ = matcher.candidates(source, k, filters=filters, settings=self.home_settings)
        for c in own:
            found[c.school.id].add("index")
        wide, _, _ = matcher.candidates(source, k, filters=filters, settings=self.any_settings)
        for c in wide:
            found[c.school.id].add("index_any")
        foreign = sorted(
            (c for c in [*own, *wide] if c.school.country != self.home),
            key=lambda c: (-c.reciprocal, c.school.id),
        )
        expanded: list[str] = []
        for c in foreign:
            if len(expanded) == self.options.expand_foreign:
                break
            if c.school.id in expanded:
                continue
            expanded.append(c.school.id)
            more, _, _ = matcher.candidates(c.school, k, filters=filters, settings=self.any_settings)
            for m in more:
                found[m.school.id].add("index_any")
        G = matcher.partnerships
        if source.id in G:
            partners = active_partners(G, source.id)
            for p in partners:
                found[p].add("partner")
            twice = sorted({q for p in partners for q in active_partners(G, p)} - {source.id})
            for q in twice[: self.options.graph_limit]:
                found[q].add("partners_partner")
            for candidate in cluster_bridges(G, source.id, home_country=self.home):
                found[candidate].add("bridge")
        found.pop(source.id, None)
        return {school_id: via for school_id, via in found.items() if school_id in matcher.schools}

    def _pool(
        self, found: dict[str, set[str]], require_sdg: bool
    ) -> tuple[list[School], dict[tuple[str, str], _PairFacts]]:
        """The ``pool_size`` candidates fitting the source best among those that may join a group
        with it, and the facts of every compatible pair among source and pool."""
        with_source: dict[str, _PairFacts] = {}
        for school_id in sorted(found):
            school = self.matcher.schools[school_id]
            if require_sdg and self.sdg not in school.sdgs:
                continue
            pair = self._pair(self.source, school)
            if pair is not None:
                with_source[school_id] = pair
        ranked = sorted(with_source, key=lambda school_id: (-with_source[school_id].score, school_id))
        pool = [self.matcher.schools[school_id] for school_id in ranked[: self.options.pool_size]]
        facts = {_key(self.source.id, school.id): with_source[school.id] for school in pool}
        for i, a in enumerate(pool):
            for b in pool[i + 1 :]:
                pair = self._pair(a, b)
                if pair is not None:
                    facts[_key(a.id, b.id)] = pair
        return pool, facts

    def _pair(self, a: School, b: School) -> _PairFacts | None:
        """Facts of a pair that may share a group, or None: every pair rule except the relaxed ones,
        and virtual exchange in shared school hours. The rules check b's capacity and both schools'
        activity; every pool member is b against the requester once, so that covers every member."""
        similarity = float(self._vector(a) @ self._vector(b))
        check, score = self.matcher.score_pair(a, b, settings=self.any_settings, similarity=similarity)
        if set(check.violations) - RELAXED_RULES or ExchangeMode.VIRTUAL not in check.usable_modes:
            return None
        return _PairFacts(score.reciprocal, check.overlap.hours)

    def _vector(self, school: School) -> np.ndarray:
        if school.id not in self._vectors:
            self._vectors[school.id] = self.matcher.vector(school)
        return self._vectors[school.id]

    # ------------------------------------------------------------------ search

    def _enumerate(
        self, members: Sequence[School], facts: dict[tuple[str, str], _PairFacts]
    ) -> Iterator[tuple[float, tuple[str, ...]]]:
        """Every valid group containing the source (members[0]): (total score, sorted member ids)."""
        options = self.options
        neighbours = {
            m.id: {other.id for other in members if other.id != m.id and _key(m.id, other.id) in facts} for m in members
        }
        order = {m.id: i for i, m in enumerate(members)}
        by_id = {m.id: m for m in members}

        def extend(
            group: list[str], total: float, languages: set[str], open_: list[str]
        ) -> Iterator[tuple[float, tuple[str, ...]]]:
            if len(group) >= options.min_size and self._valid(group, by_id):
                yield total, tuple(sorted(group))
            if len(group) == options.max_size:
                return
            for index, candidate in enumerate(open_):
                shared = languages & set(by_id[candidate].languages_exchange)
                country = by_id[candidate].country
                if not shared or sum(by_id[g].country == country for g in group) >= options.max_per_country:
                    continue
                gain = sum(facts[_key(candidate, g)].score for g in group)
                rest = [o for o in open_[index + 1 :] if o in neighbours[candidate]]
                yield from extend([*group, candidate], total + gain, shared, rest)

        start = sorted(neighbours[self.source.id], key=order.__getitem__)
        yield from extend([self.source.id], 0.0, set(self.source.languages_exchange), start)

    def _valid(self, group: list[str], by_id: dict[str, School]) -> bool:
        countries = Counter(by_id[s].country for s in group)
        if len(countries) < self.options.min_countries or self.home not in countries:
            return False
        window = self._window([by_id[s] for s in group])
        return window is not None and window[1] - window[0] >= timedelta(hours=self.any_settings.min_overlap_hours)

    def _window(self, group: Sequence[School]) -> tuple[datetime, datetime] | None:
        """The UTC window inside the source's school day that every member shares."""
        settings = self.any_settings
        start, end = None, None
        for school in group:
            if school.id == self.source.id:
                continue
            overlap = school_hours_overlap(
                self.source.timezone, school.timezone, self.day, settings.school_day_start, settings.school_day_end
            )
            if overlap.start_utc is None or overlap.end_utc is None:
                return None
            start = overlap.start_utc if start is None else max(start, overlap.start_utc)
            end = overlap.end_utc if end is None else min(end, overlap.end_utc)
        if start is None or end is None or end <= start:
            return None
        return start, end

    # ------------------------------------------------------------------ output

    def _group(
        self, ids: tuple[str, ...], total: float, facts: dict[tuple[str, str], _PairFacts], found: dict[str, set[str]]
    ) -> Group:
        schools = [self.matcher.schools[s] if s != self.source.id else self.source for s in ids]
        schools.sort(key=lambda s: (s.id != self.source.id, s.country != self.home, s.country, s.id))
        window = self._window(schools)
        assert window is not None
        languages = sorted(set.intersection(*(set(s.languages_exchange) for s in schools)))
        pairs = [
            GroupPair(
                school_a=a,
                school_b=b,
                score=round(facts[(a, b)].score, 6),
                overlap_hours=round(facts[(a, b)].overlap_hours, 2),
            )
            for a, b in sorted(_key(x.id, y.id) for i, x in enumerate(schools) for y in schools[i + 1 :])
        ]
        countries = sorted({s.country for s in schools}, key=lambda c: (c != self.home, c))
        tz = self.source.timezone
        shared = SharedWindow(
            hours=round((window[1] - window[0]).total_seconds() / 3600, 2),
            start_utc=window[0],
            end_utc=window[1],
            timezone=tz,
            local_start=window[0].astimezone(ZoneInfo(tz)).strftime("%H:%M"),
            local_end=window[1].astimezone(ZoneInfo(tz)).strftime("%H:%M"),
        )
        members = [
            GroupMember(
                school_id=s.id,
                name=s.display_name,
                country=s.country,
                interested_in_sdg=s.id == self.source.id or self.sdg in s.sdgs,
                found_via=["requester"] if s.id == self.source.id else sorted(found.get(s.id, set())),
            )
            for s in schools
        ]
        scores = [p.score for p in pairs]
        return Group(
            members=members,
            countries=countries,
            languages=languages,
            window=shared,
            sdg=self.sdg,
            total_score=round(total, 6),
            mean_pair_score=round(sum(scores) / len(scores), 6),
            pairs=pairs,
            reasons=_reasons(members, countries, languages, shared, self.sdg, scores),
        )


def distinct_groups(valid: list[tuple[float, tuple[str, ...]]], count: int) -> list[tuple[float, tuple[str, ...]]]:
    """Best groups first, preferring variety: a group that shares more than half of its other
    members (the requester is in every group) with an already chosen group waits for a second pass,
    which fills any slots left. Member sets are unique: the enumeration yields each set once."""
    chosen: list[tuple[float, tuple[str, ...]]] = []

    def too_close(ids: tuple[str, ...]) -> bool:
        return any(len(set(ids) & set(other)) - 1 > (min(len(ids), len(other)) - 1) / 2 for _, other in chosen)

    for item in valid:
        if len(chosen) == count:
            break
        if not too_close(item[1]):
            chosen.append(item)
    for item in valid:
        if len(chosen) == count:
            break
        if item not in chosen:
            chosen.append(item)
    return sorted(chosen, key=lambda g: (-g[0], g[1]))


def _reasons(
    members: list[GroupMember],
    countries: list[str],
    languages: list[str],
    window: SharedWindow,
    sdg: int,
    scores: list[float],
) -> list[Reason]:
    interested = sum(m.interested_in_sdg for m in members)
    city = window.timezone.rsplit("/", 1)[-1].replace("_", " ")
    return [
        Reason(
            code="group_sdg",
            weight=interested / len(members),
            data={"sdg": sdg, "interested": interested},
            text_en=f"{interested} of {len(members)} schools work on SDG {sdg} {sdg_name(sdg)}",
            text_zh=f"{len(members)} 校中有 {interested} 校關注 SDG {sdg} {sdg_name_zh(sdg)}",
        ),
        Reason(
            code="group_countries",
            weight=float(len(countries)),
            data={"countries": countries},
            text_en=f"{len(countries)} countries: " + ", ".join(country_name(c) for c in countries),
            text_zh=f"橫跨 {len(countries)} 國：" + "、".join(country_name_zh(c) for c in countries),
        ),
        Reason(
            code="group_languages",
            weight=float(len(languages)),
            data={"languages": languages},
            text_en="Every school can work in " + " or ".join(language_name(c) for c in languages),
            text_zh="各校皆可使用" + "或".join(language_name_zh(c) for c in languages) + "交流",
        ),
        Reason(
            code="group_hours",
            weight=window.hours,
            data={
                "hours": window.hours,
                "start": window.local_start,
                "end": window.local_end,
                "timezone": window.timezone,
            },
            text_en=f"{window.hours:g} h of school time shared by all: {window.local_start}–{window.local_end} "
            f"{city} time",
            text_zh=f"全體共同上課時間 {window.hours:g} 小時：{city} 時間 {window.local_start}–{window.local_end}",
        ),
        Reason(
            code="group_pair_scores",
            weight=round(sum(scores) / len(scores), 6),
            data={"lowest": round(min(scores), 6), "mean": round(sum(scores) / len(scores), 6)},
            text_en=f"Every pair fits: lowest pair score {min(scores):.2f}, mean {sum(scores) / len(scores):.2f}",
            text_zh=f"每對學校皆適合：最低配對分數 {min(scores):.2f}，平均 {sum(scores) / len(scores):.2f}",
        ),
    ]


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)
