"""The whole matching pipeline on a small generated world, with the real model and FAISS.

Rebalancing effects are shown on constructed cases: twin candidates with identical profiles
(so identical reciprocal scores), differing only in what the graph knows about them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

import graph
from data.schema import Partnership, School
from matching.constraints import PairChecker, Rule, SuggestionFilters, check_pair
from matching.engine import Matcher
from matching.hours import school_hours_overlap
from matching.settings import MatchSettings, RebalanceWeights, RequestOverrides

DAY = date(2026, 3, 2)
SETTINGS = MatchSettings(reference_date=DAY)
EFFECTS = MatchSettings(
    reference_date=DAY,
    rebalance=RebalanceWeights(saturation_threshold=0.5, no_partner_boost=0.15, remote_boost=0.10, diversity_decay=0.7),
)
"""Rebalancing weights large enough that each effect shows (several are off by default)."""


def source_school() -> School:
    return School(
        id="tw-src",
        name_local="臺東縣立測試國民小學",
        name_en="Taitung Test Primary School",
        country="TW",
        region="TW-TTT",
        levels=["primary"],
        languages_instruction=["zh"],
        languages_exchange=["en", "zh"],
        sdgs=[4, 13, 14],
        target_countries=["MY", "TH", "VN"],
        exchange_modes=["virtual", "visit"],
        capacity=6,
        description="A small school by the sea; our pupils study ocean life, climate and reading together.",
    )


def twin(school_id: str, country: str = "MY", **overrides: Any) -> School:
    fields: dict[str, Any] = dict(
        id=school_id,
        name_en="Twin Primary School",
        country=country,
        levels=["primary"],
        languages_instruction=["en"],
        languages_exchange=["en", "zh"],
        sdgs=[4, 13, 14],
        target_countries=["TW"],
        exchange_modes=["virtual", "hosting"],
        capacity=4,
        description="Our pupils study ocean life and climate and want to talk with a class in Taiwan.",
    )
    fields.update(overrides)
    return School(**fields)


def taiwanese(world: Any, n: int, skip: int = 0) -> list[School]:
    return [s for s in world.schools if s.country == "TW" and s.active][skip : skip + n]


def build(
    world: Any,
    embedder: Any,
    extra: list[School],
    partnerships: list[Partnership] = (),
    settings: MatchSettings = SETTINGS,
) -> Matcher:
    return Matcher.build([*world.schools, *extra], [*world.partnerships, *partnerships], embedder, settings)


def started(a: str, b: str, n: int = 0) -> Partnership:
    return Partnership(id=f"p-{a}-{b}-{n}", school_a=a, school_b=b, start_date=date(2025, 9, 1))


@pytest.fixture(scope="module")
def base(small_world: Any, embedding_cache_dir: Path) -> Matcher:
    from embeddings import EmbeddingSettings, ProfileEmbedder

    embedder = ProfileEmbedder(EmbeddingSettings(show_progress=False), cache_dir=embedding_cache_dir)
    return build(small_world, embedder, [source_school()])


def test_no_suggestion_breaks_a_rule_and_reasons_match_the_data(base: Matcher) -> None:
    ctx = base.context(settings=SETTINGS, day=DAY)
    sources = [s for s in base.schools.values() if s.active][:80]
    suggested = 0
    for source in sources:
        result = base.suggest(source.id, k=10)
        ids = [s.school_id for s in result.suggestions]
        assert len(ids) == len(set(ids)) <= 10
        for suggestion in result.suggestions:
            candidate = base.schools[suggestion.school_id]
            check = check_pair(source, candidate, ctx)
            assert check.ok, (source.id, candidate.id, check.violations)
            assert 0 <= suggestion.reciprocal <= 1 and suggestion.score >= 0
            reasons = {r.code: r for r in suggestion.reasons}
            if "shared_sdgs" in reasons:
                assert reasons["shared_sdgs"].data["sdgs"] == sorted(set(source.sdgs) & set(candidate.sdgs))
            else:
                assert not set(source.sdgs) & set(candidate.sdgs)
            assert reasons["shared_languages"].data["languages"] == sorted(
                set(source.languages_exchange) & set(candidate.languages_exchange)
            )
            if "school_hours" in reasons:
                overlap = school_hours_overlap(source.timezone, candidate.timezone, DAY)
                assert reasons["school_hours"].data["hours"] == round(overlap.hours, 1)
            assert ("target_country" in reasons) == (candidate.country in source.target_countries)
            assert set(reasons["modes"].data["modes"]) == set(check.usable_modes)
            suggested += 1
    assert suggested > 200


def test_every_pair_includes_the_home_country_and_filters_hold(base: Matcher) -> None:
    src = base.schools["tw-src"]
    for country in ("TH", "VN"):
        result = base.suggest(src, k=5, filters=SuggestionFilters(countries=[country]))
        assert result.suggestions and all(base.schools[s.school_id].country == country for s in result.suggestions)
    remote = base.suggest(src, k=5, filters=SuggestionFilters(sdgs=[14], new_southbound_only=True))
    for s in remote.suggestions:
        school = base.schools[s.school_id]
        assert 14 in school.sdgs and school.country in {
            "MY",
            "TH",
            "VN",
            "ID",
            "PH",
            "SG",
            "KH",
            "LA",
            "MM",
            "BN",
            "IN",
            "PK",
            "BD",
            "NP",
            "LK",
            "BT",
            "AU",
            "NZ",
        }
    foreign = next(s for s in base.schools.values() if s.country != "TW" and s.active)
    assert all(base.schools[s.school_id].country == "TW" for s in base.suggest(foreign, k=10).suggestions)


def test_a_school_with_no_possible_partner_gets_reasons_not_an_error(base: Matcher) -> None:
    lonely = source_school().model_copy(update={"id": "tw-lonely", "languages_exchange": ["eu"]})
    result = base.suggest(lonely, k=10)
    assert result.suggestions == []
    assert result.school_id is None  # an ad-hoc profile, not stored
    rules = {e.rule: e.candidates for e in result.eliminated}
    # Full schools are counted as such without checking further; every other candidate lacks a language.
    assert rules[Rule.NO_SHARED_LANGUAGE] + rules.get(Rule.AT_CAPACITY, 0) == result.candidates_examined
    assert rules[Rule.NO_SHARED_LANGUAGE] > 0
    assert (
        next(e for e in result.eliminated if e.rule == Rule.NO_SHARED_LANGUAGE).text_en == "shares no exchange language"
    )


def test_saturation_pushes_down_and_capacity_excludes(small_world: Any, embedder: Any) -> None:
    tws = taiwanese(small_world, 4)
    busy, free, full = twin("my-busy"), twin("my-free"), twin("my-full", capacity=1)
    links = [started(t.id, "my-busy", i) for i, t in enumerate(tws[:3])] + [started(tws[3].id, "my-full")]
    matcher = build(small_world, embedder, [source_school(), busy, free, full], links, EFFECTS)
    result = matcher.suggest(
        "tw-src", k=50, filters=SuggestionFilters(countries=["MY"]), overrides=RequestOverrides(diversity=False)
    )
    by_id = {s.school_id: s for s in result.suggestions}
    assert by_id["my-busy"].reciprocal == pytest.approx(by_id["my-free"].reciprocal, abs=1e-6)
    assert by_id["my-busy"].adjustments["saturation"] == pytest.approx(0.5)
    assert by_id["my-busy"].score < by_id["my-free"].score
    assert "my-full" not in by_id
    assert any(e.rule == Rule.AT_CAPACITY for e in result.eliminated)
    assert not any("at capacity" in hint for hint in result.hints)
    own = matcher.suggest("my-full", k=5)
    assert own.suggestions and any(
        "at capacity (1 partner(s) and 0 open invitation(s) for 1 place(s))" in hint for hint in own.hints
    )


def test_equity_boosts_new_and_remote_schools(small_world: Any, embedder: Any) -> None:
    tws = taiwanese(small_world, 1)
    popular, new = twin("ph-popular", "PH", capacity=6), twin("ph-new", "PH", capacity=6)
    remote = twin("th-remote", "TH", capacity=6, remoteness="very_remote")
    ordinary = twin("th-ordinary", "TH", capacity=6)
    links = [started(tws[0].id, "ph-popular"), started(tws[0].id, "th-remote"), started(tws[0].id, "th-ordinary")]
    matcher = build(small_world, embedder, [source_school(), popular, new, remote, ordinary], links, EFFECTS)
    by_id = {
        s.school_id: s for s in matcher.suggest("tw-src", k=60, overrides=RequestOverrides(diversity=False)).suggestions
    }
    assert by_id["ph-new"].adjustments["no_partner_yet"] > 1 and "no_partner_yet" not in by_id["ph-popular"].adjustments
    assert by_id["ph-new"].score > by_id["ph-popular"].score
    assert by_id["th-remote"].adjustments["remote_school"] > 1
    assert by_id["th-remote"].score > by_id["th-ordinary"].score


def test_cluster_boost_joins_an_existing_cross_border_group(small_world: Any, embedder: Any) -> None:
    peer = taiwanese(small_world, 1, skip=5)[0]
    partner = twin("vn-partner", "VN", capacity=6)
    bridged, unbridged = twin("th-bridged", "TH", capacity=6), twin("th-plain", "TH", capacity=6)
    links = [started("tw-src", "vn-partner"), started(peer.id, "vn-partner"), started(peer.id, "th-bridged")]
    # Give the plain twin a partner too, so the two differ only by the path through my partner.
    other = taiwanese(small_world, 1, skip=9)[0]
    links.append(started(other.id, "th-plain"))
    matcher = build(small_world, embedder, [source_school(), partner, bridged, unbridged], links)
    by_id = {
        s.school_id: s for s in matcher.suggest("tw-src", k=60, overrides=RequestOverrides(diversity=False)).suggestions
    }
    assert by_id["th-bridged"].score > by_id["th-plain"].score
    reason = next(r for r in by_id["th-bridged"].reasons if r.code == "cluster_bridge")
    assert reason.data["via_partner"] == "vn-partner" and reason.data["via_peer"] == peer.id
    assert peer.display_name in reason.text_en and "Vietnam" in reason.text_en and "Thailand" in reason.text_en
    assert "cluster_bridge" not in by_id["th-plain"].adjustments


def test_partner_country_diversity_and_responsiveness(small_world: Any, embedder: Any) -> None:
    mine = [twin(f"my-mine{i}") for i in range(2)]
    my_new, th_new = twin("my-new", capacity=6), twin("th-new", "TH", capacity=6)
    slow, quick = twin("vn-slow", "VN"), twin("vn-quick", "VN")
    links = [started("tw-src", m.id) for m in mine]
    matcher = build(small_world, embedder, [source_school(), *mine, my_new, th_new, slow, quick], links, EFFECTS)
    matcher.set_invitations(
        {},
        {
            "vn-slow": graph.InvitationCounts(received=5, answered=0, expired=5),
            "vn-quick": graph.InvitationCounts(received=5, answered=5, expired=0),
        },
    )
    by_id = {
        s.school_id: s for s in matcher.suggest("tw-src", k=60, overrides=RequestOverrides(diversity=False)).suggestions
    }
    assert by_id["my-new"].adjustments["country_diversity"] == pytest.approx(0.7**2)
    assert by_id["my-new"].score < by_id["th-new"].score
    assert by_id["vn-slow"].adjustments["responsiveness"] < 1 and "responsiveness" not in by_id["vn-quick"].adjustments
    assert by_id["vn-slow"].score < by_id["vn-quick"].score


def test_diversity_spreads_countries(base: Matcher) -> None:
    spread, plain = [], []
    for source in [s for s in base.schools.values() if s.country == "TW" and s.active][:30]:
        for bucket, diversity in ((spread, True), (plain, False)):
            result = base.suggest(source, k=10, overrides=RequestOverrides(diversity=diversity))
            bucket.append(len({base.schools[s.school_id].country for s in result.suggestions}))
    assert sum(spread) > sum(plain)


def test_live_updates_and_deactivation(small_world: Any, embedder: Any) -> None:
    matcher = build(small_world, embedder, [source_school(), twin("my-a"), twin("my-b")])
    assert "my-a" in {s.school_id for s in matcher.suggest("tw-src", k=60).suggestions}
    matcher.upsert_school(twin("my-a", active=False))
    for source in ["tw-src", *[t.id for t in taiwanese(small_world, 20)]]:
        assert "my-a" not in {s.school_id for s in matcher.suggest(source, k=50).suggestions}
    matcher.upsert_school(twin("my-b", languages_exchange=["ms"]))
    assert "my-b" not in {s.school_id for s in matcher.suggest("tw-src", k=60).suggestions}
    matcher.add_partnership(started("tw-src", "my-b"))  # staff record it anyway: now already partners
    assert "my-b" in matcher.partnerships.adj["tw-src"]


def test_the_profile_table_follows_live_changes_copy_on_write(small_world: Any, embedder: Any) -> None:
    """Profiles, partnerships and invitations reach the columns the rules read; a reader holding the
    table from before keeps a whole, unchanged snapshot."""
    matcher = build(small_world, embedder, [source_school(), twin("my-a"), twin("my-b")])
    before = matcher.table
    tw = taiwanese(small_world, 1)[0]
    matcher.upsert_school(twin("my-a", capacity=1))
    matcher.add_partnership(started(tw.id, "my-a"))  # my-a is full now
    matcher.set_invitations({"my-b": 4}, {})  # open invitations fill my-b
    matcher.upsert_school(twin("my-c", languages_exchange=["mi", "en"]))  # a new school, a new language
    assert len(before) + 1 == len(matcher.table) and before["capacity"][before.row_of["my-a"]] == 4
    assert before["pending"][before.row_of["my-b"]] == 0
    source = matcher.schools["tw-src"]
    ranked, eliminated, _ = matcher.candidates(source, 5, settings=SETTINGS, depth=10**6)
    ctx = matcher.context(settings=SETTINGS)
    eligible = {i for i in matcher.indexes["foreign"].ids() if check_pair(source, matcher.schools[i], ctx).ok}
    assert {c.school.id for c in ranked} == eligible
    assert "my-c" in eligible and not {"my-a", "my-b"} & eligible
    assert eliminated[Rule.AT_CAPACITY] >= 2
    assert matcher.free_places(matcher.schools["my-a"]) == 0 and matcher.free_places(matcher.schools["my-b"]) == 0


def test_save_and_load_give_identical_results(base: Matcher, small_world: Any, embedder: Any, tmp_path: Path) -> None:
    base.save(tmp_path / "index", metadata={"change_seq": 42})
    assert Matcher.saved_metadata(tmp_path / "index")["change_seq"] == 42
    loaded = Matcher.load(tmp_path / "index", base.schools.values(), small_world.partnerships, embedder, SETTINGS)
    for source in [s for s in base.schools.values() if s.active][:20]:
        assert base.suggest(source.id, k=10) == loaded.suggest(source.id, k=10)


def test_exposure_spreads_attention_from_schools_shown_too_often(
    small_world: Any, embedder: Any, tmp_path: Path
) -> None:
    shown_often, equal = twin("ph-shown"), twin("ph-equal")
    matcher = build(small_world, embedder, [source_school(), shown_often, equal])
    no_diversity = RequestOverrides(diversity=False)
    result = matcher.suggest("tw-src", k=60, overrides=no_diversity)
    before = {s.school_id: s for s in result.suggestions}
    assert before["ph-shown"].score == pytest.approx(before["ph-equal"].score, rel=1e-6)
    for _ in range(5):  # a list with ph-shown in it, shown again and again
        matcher.record_shown(result.model_copy(update={"suggestions": [before["ph-shown"]]}))
    after = {s.school_id: s for s in matcher.suggest("tw-src", k=200, overrides=no_diversity).suggestions}
    shown, mean = matcher.exposure_lookup()(matcher.schools["ph-shown"])
    assert shown == pytest.approx(5, rel=1e-3)
    factor = 1 / (1 + SETTINGS.rebalance.exposure_strength * (shown / max(mean, 1) - 1))
    assert after["ph-shown"].adjustments["exposure"] == pytest.approx(factor, abs=1e-4)
    assert after["ph-shown"].score < after["ph-equal"].score
    reason = next(r for r in after["ph-shown"].reasons if r.code == "exposure")
    assert reason.data["shown"] == pytest.approx(5.0) and "about 5 recent" in reason.text_en
    assert "exposure" not in after["ph-equal"].adjustments
    matcher.save(tmp_path / "index")
    loaded = Matcher.load(tmp_path / "index", matcher.schools.values(), small_world.partnerships, embedder, SETTINGS)
    assert loaded.exposure_lookup()(loaded.schools["ph-shown"])[0] == pytest.approx(5, rel=1e-3)


@pytest.mark.parametrize("filters", [SuggestionFilters(), SuggestionFilters(countries=["MY", "TH"], modes=["virtual"])])
def test_pair_checker_gives_check_pairs_verdicts(base: Matcher, filters: SuggestionFilters) -> None:
    schools = sorted(base.schools.values(), key=lambda s: s.id)
    ctx = base.context(filters)
    for source in schools[::15]:
        checker = PairChecker(source, ctx)
        verdicts = [checker(candidate) for candidate in schools]
        assert verdicts == [check_pair(source, candidate, ctx) for candidate in schools]
        assert len(checker._profiles) < len(schools)  # verdicts were shared, not recomputed per school


def test_a_limited_request_keeps_the_wished_countries_candidates_below_the_limit(base: Matcher) -> None:
    """``also_from``: the best ``limit`` and, below them, the best ⌈k/2⌉ ranked candidates of those
    countries, in the order the whole ranking gives; hard wishes read them, so the list equals the
    unlimited one's."""
    from matching.retrieve import Request, retrieve
    from matching.wishes import honour_wishes

    sources = [s for s in base.schools.values() if s.active and s.target_countries][:20]
    for source in sources:
        wished = frozenset(source.target_countries)
        full, limited = retrieve(
            base,
            [
                Request(source, 10, SETTINGS, depth=200),
                Request(source, 10, SETTINGS, depth=200, limit=12, also_from=wished),
            ],
        )
        below = [c.school.id for c in full.ranked[12:] if c.school.country in wished][:5]
        expected = [c.school.id for n, c in enumerate(full.ranked) if n < 12 or c.school.id in below]
        assert [c.school.id for c in limited.ranked] == expected
        assert all(base.table.row_of[c.school.id] == c.row for c in limited.ranked)
        ids = [[c.school.id for c in honour_wishes(source, r.ranked[:10], r.ranked, 10)] for r in (full, limited)]
        assert ids[0] == ids[1]


def test_rows_on_a_sides_and_id_order(base: Matcher) -> None:
    table = base.table
    home, foreign = table.indexed_among(["home"]), table.indexed_among(["foreign"])
    assert not (home & foreign).any() and ((home | foreign) == table.indexed_among(["home", "foreign"])).all()
    assert {table.ids[r] for r in home.nonzero()[0]} == set(base.indexes["home"].ids())
    order = table.id_order()
    assert [table.ids[r] for r in sorted(range(len(table)), key=lambda r: order[r])] == sorted(table.ids)
