"""Hard constraints, school hours, the reciprocal score and MMR, on hand-made pairs."""

from __future__ import annotations

import doctest
from datetime import date

import numpy as np
import pytest

import matching.diversify
import matching.hours
import matching.rebalance
from data.schema import School
from matching.constraints import PairContext, Rule, SuggestionFilters, check_pair
from matching.hours import school_hours_overlap
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings

DAY = date(2026, 3, 2)


def tw(**overrides) -> School:
    fields = dict(
        id="tw-a",
        name_local="臺北市立甲國小",
        country="TW",
        region="TW-TPE",
        levels=["primary"],
        languages_instruction=["zh"],
        languages_exchange=["en", "zh"],
        sdgs=[4, 13, 14],
        target_countries=["MY", "VN"],
        exchange_modes=["virtual", "visit"],
        capacity=3,
    )
    fields.update(overrides)
    return School(**fields)


def foreign(**overrides) -> School:
    fields = dict(
        id="my-x",
        name_en="SJK(C) Example",
        country="MY",
        region="MY-08",
        levels=["primary"],
        languages_instruction=["zh", "ms"],
        languages_exchange=["en", "zh", "ms"],
        sdgs=[4, 13],
        target_countries=["TW"],
        exchange_modes=["virtual", "hosting"],
        capacity=3,
    )
    fields.update(overrides)
    return School(**fields)


def ctx(
    partners: dict[str, set[str]] | None = None,
    pending: dict[str, int] | None = None,
    filters: SuggestionFilters | None = None,
    **settings,
) -> PairContext:
    partners = partners or {}
    pending = pending or {}
    return PairContext(
        settings=MatchSettings(**settings),
        day=DAY,
        partners=lambda s: partners.get(s, set()),
        pending=lambda s: pending.get(s, 0),
        filters=filters or SuggestionFilters(),
    )


def test_doctests() -> None:
    for module in (matching.hours, matching.diversify, matching.rebalance):
        assert doctest.testmod(module).failed == 0


def test_good_pair_passes_with_its_facts() -> None:
    check = check_pair(tw(), foreign(), ctx())
    assert check.ok
    assert check.shared_languages == ("en", "zh")
    assert set(check.usable_modes) == {"virtual", "visit"}
    assert check.overlap.hours == 8.0  # Taipei and Kuala Lumpur share a clock


@pytest.mark.parametrize(
    ("source", "candidate", "context", "rule"),
    [
        (tw(), tw(), ctx(), Rule.SAME_SCHOOL),
        (tw(), tw(id="tw-b"), ctx(), Rule.SAME_COUNTRY),
        (foreign(), foreign(id="vn-y", country="VN", region=None), ctx(), Rule.OUT_OF_SCOPE),
        (tw(), foreign(active=False), ctx(), Rule.INACTIVE),
        (tw(languages_exchange=["zh"]), foreign(languages_exchange=["ms", "en"]), ctx(), Rule.NO_SHARED_LANGUAGE),
        (tw(exchange_modes=["visit"]), foreign(exchange_modes=["virtual", "visit"]), ctx(), Rule.NO_COMMON_MODE),
        (
            tw(exchange_modes=["virtual"]),
            foreign(id="us-x", country="US", region=None, timezone="America/New_York", target_countries=[]),
            ctx(),
            Rule.NO_SHARED_HOURS,
        ),
        (tw(levels=["primary"]), foreign(levels=["senior_high"]), ctx(), Rule.LEVEL_MISMATCH),
        (tw(), foreign(), ctx(partners={"tw-a": {"my-x"}, "my-x": {"tw-a"}}), Rule.ALREADY_PARTNERS),
        (tw(), foreign(capacity=2), ctx(partners={"my-x": {"tw-q"}}, pending={"my-x": 1}), Rule.AT_CAPACITY),
        (tw(), foreign(capacity=0), ctx(), Rule.AT_CAPACITY),
        (tw(), foreign(), ctx(filters=SuggestionFilters(countries=["VN"])), Rule.FILTERED),
        (tw(), foreign(), ctx(filters=SuggestionFilters(sdgs=[1])), Rule.FILTERED),
        (tw(), foreign(), ctx(filters=SuggestionFilters(remote_only=True)), Rule.FILTERED),
        (tw(), foreign(), ctx(filters=SuggestionFilters(modes=["hosting"])), Rule.FILTERED),
        (
            tw(),
            foreign(id="jp-x", country="JP", region=None),
            ctx(filters=SuggestionFilters(new_southbound_only=True)),
            Rule.FILTERED,
        ),
    ],
)
def test_each_rule_rejects(source: School, candidate: School, context: PairContext, rule: Rule) -> None:
    check = check_pair(source, candidate, context)
    assert rule in check.violations, check.violations


def test_scope_any_allows_foreign_pairs_and_adjacent_level_matrix_is_configurable() -> None:
    vn = foreign(id="vn-y", country="VN", region=None)
    assert check_pair(foreign(), vn, ctx(scope="any")).ok
    junior = foreign(levels=["junior_high"])
    assert check_pair(tw(), junior, ctx()).ok
    assert Rule.LEVEL_MISMATCH in check_pair(tw(), junior, ctx(level_matrix={"primary": ["primary"]})).violations


def test_visit_needs_a_host_and_virtual_needs_hours() -> None:
    visit_only = tw(exchange_modes=["visit"])
    assert check_pair(visit_only, foreign(exchange_modes=["hosting"]), ctx()).usable_modes == ("visit",)
    # New York and Taipei share no school hours: a pair with only virtual in common is impossible, but
    # a pair that can also visit remains, with virtual removed from what it can do.
    us = foreign(id="us-x", country="US", region=None, timezone="America/New_York", target_countries=[])
    check = check_pair(tw(), us, ctx())
    assert check.ok and check.usable_modes == ("visit",)
    assert check_pair(tw(), us, ctx(min_overlap_hours=0)).usable_modes == ("virtual", "visit")


def test_school_hours_overlap_follows_daylight_saving() -> None:
    # Sydney is UTC+11 in March (daylight saving) and UTC+10 in July; Taipei is always UTC+8.
    assert school_hours_overlap("Asia/Taipei", "Australia/Sydney", date(2026, 3, 2)).hours == 5.0
    assert school_hours_overlap("Asia/Taipei", "Australia/Sydney", date(2026, 7, 6)).hours == 6.0
    window = school_hours_overlap("Asia/Taipei", "Asia/Bangkok", DAY).local_window("Asia/Taipei")
    assert window == ("09:00", "16:00")


def test_reciprocity_one_sided_pair_ranks_below_two_sided() -> None:
    settings = MatchSettings()
    source = tw()
    both = foreign(id="my-both")
    # Everything the source wants, but it wants Japan and other themes, and offers no matching modes.
    one_sided = foreign(
        id="my-one",
        target_countries=["JP"],
        sdgs=[4, 13, 14, 1, 2, 3, 5, 6, 7],
        exchange_modes=["virtual", "hosting", "visit"],
    )
    scores = {}
    for candidate in (both, one_sided):
        check = check_pair(source, candidate, ctx())
        assert check.ok
        scores[candidate.id] = reciprocal_score(source, candidate, check, 0.5, settings)
    assert scores["my-one"].forward.value >= scores["my-both"].forward.value - 0.05
    assert scores["my-one"].backward.value < scores["my-both"].backward.value
    assert scores["my-one"].reciprocal < scores["my-both"].reciprocal
    for s in scores.values():
        assert 0 <= s.reciprocal <= 1 and min(s.forward.value, s.backward.value) <= s.reciprocal
        assert s.reciprocal <= max(s.forward.value, s.backward.value)


def test_mmr_spreads_countries() -> None:
    from matching.diversify import mmr, pairwise_similarity

    countries = ["MY", "MY", "MY", "VN", "TH"]
    vectors = np.eye(5, dtype=np.float32)
    order = mmr([0.9, 0.89, 0.88, 0.8, 0.79], pairwise_similarity(countries, vectors), k=3, lam=0.6)
    assert [countries[i] for i in order] == ["MY", "VN", "TH"]
    assert mmr([0.9, 0.89, 0.88, 0.8, 0.79], pairwise_similarity(countries, vectors), k=3, lam=1.0) == [0, 1, 2]
