"""The vectorised rules and scores agree with the readable reference on every pair of random worlds."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from data.schema import School
from data.taxonomies import ExchangeMode, Level, Remoteness
from matching.arrays import reciprocal_scores
from matching.constraints import PairContext, Rule, SuggestionFilters, check_pair
from matching.masks import rule_masks
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings
from matching.table import MODE_BIT, ProfileTable

COUNTRIES = {
    "TW": ("Asia/Taipei", ["TW-TPE", "TW-HUA"]),
    "MY": ("Asia/Kuala_Lumpur", ["MY-08"]),
    "AU": ("Australia/Sydney", ["AU-NSW"]),
    "NZ": ("Pacific/Auckland", []),
    "US": ("America/New_York", ["US-NY"]),
    "GB": ("Europe/London", []),
}
LANGUAGES = ["en", "zh", "ms", "mi"]
# Days on both sides of daylight-saving changes in the north and the south.
FAST_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)  # no shrinking: a failure prints its world as is
DAYS = [date(2026, 3, 7), date(2026, 3, 9), date(2026, 4, 4), date(2026, 4, 6), date(2026, 10, 3), date(2026, 11, 2)]


@st.composite
def schools(draw: st.DrawFn, n: int) -> list[School]:
    out = []
    for i in range(n):
        country = draw(st.sampled_from(sorted(COUNTRIES)))
        zone, regions = COUNTRIES[country]
        out.append(
            School(
                id=f"{country.lower()}-{i:03d}",
                name_en=f"School {i}",
                country=country,
                region=draw(st.sampled_from([None, *regions])),
                timezone=zone,
                levels=draw(st.lists(st.sampled_from(list(Level)), min_size=1, max_size=2, unique=True)),
                languages_instruction=draw(st.lists(st.sampled_from(LANGUAGES), max_size=2, unique=True)),
                languages_exchange=draw(st.lists(st.sampled_from(LANGUAGES), max_size=3, unique=True)),
                sdgs=draw(st.lists(st.integers(1, 17), max_size=3, unique=True)),
                target_countries=draw(
                    st.lists(st.sampled_from(sorted(set(COUNTRIES) - {country})), max_size=2, unique=True)
                ),
                exchange_modes=draw(st.lists(st.sampled_from(list(ExchangeMode)), max_size=3, unique=True)),
                capacity=draw(st.integers(0, 3)),
                active=draw(st.booleans()) or draw(st.booleans()),
                remoteness=draw(st.sampled_from(list(Remoteness))),
            )
        )
    return out


filters_strategy = st.builds(
    SuggestionFilters,
    countries=st.lists(st.sampled_from(sorted(COUNTRIES)), max_size=2),
    regions=st.lists(st.sampled_from(["TW-TPE", "MY-08", "US-NY"]), max_size=1),
    sdgs=st.lists(st.integers(1, 17), max_size=2),
    modes=st.lists(st.sampled_from(list(ExchangeMode)), max_size=1),
    levels=st.lists(st.sampled_from(list(Level)), max_size=1),
    new_southbound_only=st.booleans(),
    remote_only=st.booleans(),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=FAST_PHASES)
@given(
    world=schools(14),
    data=st.data(),
    day=st.sampled_from(DAYS),
    scope=st.sampled_from(["home", "any"]),
    min_overlap=st.sampled_from([0.0, 1.0, 3.0]),
    filters=st.one_of(st.just(SuggestionFilters()), filters_strategy),
)
def test_masks_and_scores_agree_with_the_reference_on_every_pair(
    world: list[School], data: st.DataObject, day: date, scope: str, min_overlap: float, filters: SuggestionFilters
) -> None:
    ids = [s.id for s in world]
    edges = data.draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=10))
    partners: dict[str, set[str]] = {i: set() for i in ids}
    for a, b in edges:
        if a != b:
            partners[a].add(b)
            partners[b].add(a)
    pending = {i: data.draw(st.integers(0, 2)) for i in ids}
    match = MatchSettings(scope=scope, min_overlap_hours=min_overlap, reference_date=day)
    ctx = PairContext(match, day, lambda s: partners[s], lambda s: pending[s], filters)
    table = ProfileTable.build(world, "TW")
    table = table.with_partners({i: len(p) for i, p in partners.items()}).with_invitations(pending, {})
    for source in world:
        row = table.encode(source)
        masks = rule_masks(table, row, match, day, filters, [table.row_of[p] for p in partners[source.id]])
        ok = masks.passing()
        for candidate in world:
            r = table.row_of[candidate.id]
            check = check_pair(source, candidate, ctx)
            got = {rule for rule, mask in masks.violations.items() if mask[r]}
            assert got == set(check.violations), (source.id, candidate.id)
            assert masks.overlap[r] == pytest.approx(check.overlap.hours)
            assert masks.usable[r] == sum(MODE_BIT[m] for m in check.usable_modes)
            assert ok[r] == check.ok
        rows = np.flatnonzero(ok)
        if len(rows) == 0:
            continue
        similarity = np.linspace(-0.2, 0.9, len(rows))
        scored = reciprocal_scores(table, row, rows, similarity, masks, match)
        for n, r in enumerate(rows):
            candidate = world[r]
            expected = reciprocal_score(source, candidate, check_pair(source, candidate, ctx), similarity[n], match)
            assert scored.reciprocal[n] == pytest.approx(expected.reciprocal, abs=1e-9)
            assert scored.forward[n] == pytest.approx(expected.forward.value, abs=1e-9)
            assert scored.backward[n] == pytest.approx(expected.backward.value, abs=1e-9)


def test_an_ad_hoc_profile_with_values_the_table_has_never_seen() -> None:
    """A source speaking only a language no school has shares none with anyone, without error."""
    world = [
        School(id="my-1", name_en="A", country="MY", levels=["primary"], languages_exchange=["en"]),
        School(id="tw-1", name_en="B", country="TW", levels=["primary"], languages_exchange=["en"]),
    ]
    table = ProfileTable.build(world, "TW")
    lonely = world[1].model_copy(update={"id": "tw-2", "languages_exchange": ["eu"], "target_countries": ["FI"]})
    masks = rule_masks(table, table.encode(lonely), MatchSettings(), date(2026, 3, 2), SuggestionFilters(), [])
    assert masks.violations[Rule.NO_SHARED_LANGUAGE].all()
    assert not masks.passing().any()


def test_a_live_update_returns_a_new_table_and_leaves_the_old_one_whole() -> None:
    world = [School(id="my-1", name_en="A", country="MY", levels=["primary"], languages_exchange=["en"])]
    old = ProfileTable.build(world, "TW")
    new = old.with_school(world[0].model_copy(update={"languages_exchange": ["mi"], "capacity": 5}), (1, 0))
    new = new.with_school(School(id="nz-1", name_en="C", country="NZ", levels=["primary"]), (1, 1))
    assert len(old) == 1 and old["capacity"][0] == 3 and old["label"][0] == -1
    assert len(new) == 2 and new["capacity"][0] == 5 and list(new.rows_by_label[1]) == [0, 1]
    assert new.languages.has_bit(new["languages_exchange"], "mi").tolist() == [True, False]
    assert old.languages.has_bit(old["languages_exchange"], "mi").tolist() == [False]
