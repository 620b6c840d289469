"""Hard constraints: a suggested pair that breaks one of these is a bug, not a low score.

Each rule has a stable code so that a school with no possible partner can be told *which*
rules eliminated its candidates, and so evaluation can count violations (which must be 0).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

import graph
from data.schema import CountryCode, School
from data.taxonomies import NSP_COUNTRIES, ExchangeMode, Level, Remoteness
from matching.hours import Overlap, school_hours_overlap
from matching.settings import MatchSettings


class Rule(StrEnum):
    SAME_SCHOOL = "same_school"
    INACTIVE = "inactive"
    SAME_COUNTRY = "same_country"
    OUT_OF_SCOPE = "out_of_scope"
    NO_SHARED_LANGUAGE = "no_shared_language"
    NO_COMMON_MODE = "no_common_mode"
    NO_SHARED_HOURS = "no_shared_hours"
    LEVEL_MISMATCH = "level_mismatch"
    ALREADY_PARTNERS = "already_partners"
    AT_CAPACITY = "at_capacity"
    FILTERED = "filtered"


RULE_TEXT: dict[Rule, tuple[str, str]] = {
    Rule.SAME_SCHOOL: ("is the school itself", "為同一所學校"),
    Rule.INACTIVE: ("is not active", "目前未啟用"),
    Rule.SAME_COUNTRY: ("is in the same country", "位於同一國家"),
    Rule.OUT_OF_SCOPE: ("would pair two schools outside the home country", "配對中沒有本國學校"),
    Rule.NO_SHARED_LANGUAGE: ("shares no exchange language", "沒有共同的交流語言"),
    Rule.NO_COMMON_MODE: ("offers none of the same exchange modes", "沒有共同的交流方式"),
    Rule.NO_SHARED_HOURS: ("has too few shared school hours for virtual exchange", "上課時間重疊不足，無法線上交流"),
    Rule.LEVEL_MISMATCH: ("teaches a level too far from yours", "學制差距過大"),
    Rule.ALREADY_PARTNERS: ("is already your partner", "已是合作夥伴"),
    Rule.AT_CAPACITY: ("has no room for another partner", "合作名額已滿"),
    Rule.FILTERED: ("does not meet your filters", "不符合篩選條件"),
}


class SuggestionFilters(BaseModel):
    """What a caller may narrow suggestions to, on top of the hard constraints."""

    countries: list[CountryCode] = Field(default_factory=list, description="partner must be in one of these")
    regions: list[str] = Field(default_factory=list, description="partner's region, e.g. a host county TW-TPE")
    sdgs: list[int] = Field(default_factory=list, description="partner shares at least one of these SDGs")
    modes: list[ExchangeMode] = Field(default_factory=list, description="the pair can use one of these modes")
    levels: list[Level] = Field(default_factory=list, description="partner teaches one of these levels")
    new_southbound_only: bool = Field(False, description="partner in a New Southbound country")
    remote_only: bool = Field(False, description="partner is a remote school")

    def admits(self, candidate: School, usable_modes: list[ExchangeMode]) -> bool:
        if self.countries and candidate.country not in self.countries:
            return False
        if self.regions and candidate.region not in self.regions:
            return False
        if self.sdgs and not set(self.sdgs) & set(candidate.sdgs):
            return False
        if self.modes and not set(self.modes) & set(usable_modes):
            return False
        if self.levels and not set(self.levels) & set(candidate.levels):
            return False
        if self.new_southbound_only and candidate.country not in NSP_COUNTRIES:
            return False
        return not (self.remote_only and candidate.remoteness == Remoteness.ORDINARY)


@dataclass
class PairContext:
    """What the rules need beyond the two profiles: settings, the day, and the network's state."""

    settings: MatchSettings
    day: date
    partners: Callable[[str], Collection[str]]
    """Active partner ids of a school (any collection: the engine passes the graph's adjacency view)."""
    pending: Callable[[str], int] = lambda _school_id: 0
    """Open invitations a school has received or sent, which hold a place in its capacity."""
    filters: SuggestionFilters = field(default_factory=SuggestionFilters)


@dataclass(frozen=True)
class PairCheck:
    """The verdict on a pair, with the facts it was reached from (reused by scoring and reasons)."""

    violations: tuple[Rule, ...]
    shared_languages: tuple[str, ...]
    usable_modes: tuple[ExchangeMode, ...]
    overlap: Overlap

    @property
    def ok(self) -> bool:
        return not self.violations


def levels_compatible(a: School, b: School, settings: MatchSettings) -> bool:
    return any(lb in settings.level_matrix.get(la, []) for la in a.levels for lb in b.levels)


def pair_modes(source: School, candidate: School) -> set[ExchangeMode]:
    """Modes the pair can use, from the source's side. Visiting and hosting are two sides of one
    trip: my visit needs your hosting, so two schools that only want to travel share no mode."""
    modes: set[ExchangeMode] = set()
    if ExchangeMode.VIRTUAL in source.exchange_modes and ExchangeMode.VIRTUAL in candidate.exchange_modes:
        modes.add(ExchangeMode.VIRTUAL)
    if ExchangeMode.VISIT in source.exchange_modes and ExchangeMode.HOSTING in candidate.exchange_modes:
        modes.add(ExchangeMode.VISIT)
    if ExchangeMode.HOSTING in source.exchange_modes and ExchangeMode.VISIT in candidate.exchange_modes:
        modes.add(ExchangeMode.HOSTING)
    return modes


def check_pair(source: School, candidate: School, ctx: PairContext) -> PairCheck:
    """Every rule for suggesting `candidate` to `source`; all violations, not just the first."""
    return _verdict(source, candidate, ctx, _profile_rules(source, candidate, ctx))


class PairChecker:
    """:func:`check_pair` for one source against many candidates, with the same verdicts.

    Most rules read only a few profile fields (country, languages, modes, levels, time zone,
    active), and the candidates of one request share few combinations of them: those verdicts are
    worked out once per combination. Partnership, capacity and filters are checked per candidate.
    """

    def __init__(self, source: School, ctx: PairContext) -> None:
        self.source, self.ctx = source, ctx
        self._profiles: dict[tuple[object, ...], _ProfileRules] = {}

    def __call__(self, candidate: School) -> PairCheck:
        key = (
            candidate.active,
            candidate.country,
            tuple(candidate.languages_exchange),
            tuple(candidate.exchange_modes),
            tuple(candidate.levels),
            candidate.timezone,
        )
        found = self._profiles.get(key)
        if found is None:
            found = self._profiles[key] = _profile_rules(self.source, candidate, self.ctx)
        return _verdict(self.source, candidate, self.ctx, found)


@dataclass(frozen=True)
class _ProfileRules:
    violations: tuple[Rule, ...]
    shared_languages: tuple[str, ...]
    usable_modes: tuple[ExchangeMode, ...]
    overlap: Overlap


def _profile_rules(source: School, candidate: School, ctx: PairContext) -> _ProfileRules:
    """The rules that depend only on the two profiles' active flag, country, languages, modes,
    levels and time zone (the fields :class:`PairChecker` keys on), in the order they are reported."""
    settings = ctx.settings
    violations: list[Rule] = []
    if not (source.active and candidate.active):
        violations.append(Rule.INACTIVE)
    if source.country == candidate.country:
        violations.append(Rule.SAME_COUNTRY)
    elif settings.scope == "home" and settings.home_country not in (source.country, candidate.country):
        violations.append(Rule.OUT_OF_SCOPE)
    shared_languages = tuple(sorted(set(source.languages_exchange) & set(candidate.languages_exchange)))
    if not shared_languages:
        violations.append(Rule.NO_SHARED_LANGUAGE)
    common_modes = pair_modes(source, candidate)
    overlap = school_hours_overlap(
        source.timezone, candidate.timezone, ctx.day, settings.school_day_start, settings.school_day_end
    )
    usable = set(common_modes)
    if ExchangeMode.VIRTUAL in usable and overlap.hours < settings.min_overlap_hours:
        usable.discard(ExchangeMode.VIRTUAL)
    if not common_modes:
        violations.append(Rule.NO_COMMON_MODE)
    elif not usable:
        violations.append(Rule.NO_SHARED_HOURS)
    if not levels_compatible(source, candidate, settings):
        violations.append(Rule.LEVEL_MISMATCH)
    return _ProfileRules(tuple(violations), shared_languages, tuple(sorted(usable)), overlap)


def _verdict(source: School, candidate: School, ctx: PairContext, profile: _ProfileRules) -> PairCheck:
    """The profile rules' verdict with the rules about these two schools in particular added."""
    violations = [Rule.SAME_SCHOOL] if source.id == candidate.id else []
    violations.extend(profile.violations)
    if candidate.id in ctx.partners(source.id):
        violations.append(Rule.ALREADY_PARTNERS)
    if graph.free_places(candidate.capacity, len(ctx.partners(candidate.id)), ctx.pending(candidate.id)) <= 0:
        violations.append(Rule.AT_CAPACITY)
    if not ctx.filters.admits(candidate, list(profile.usable_modes)):
        violations.append(Rule.FILTERED)
    return PairCheck(tuple(violations), profile.shared_languages, profile.usable_modes, profile.overlap)
