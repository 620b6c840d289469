"""The generated world: deterministic, valid, shaped like the real one, and with partnerships a
good recommender can learn from (affinity clearly, popularity somewhat) but a bad one can't fake."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pycountry
import pytest
from pydantic import ValidationError

from data.generator import PartnershipProcess, ProgrammeProcess, World, generate_world
from data.generator.places import COUNTRIES
from data.schema import Partnership, School
from data.taxonomies import NSP_COUNTRIES, TAIWAN_COUNTIES, Remoteness, sdg_name, sdg_name_zh

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
START, END = date(2016, 1, 1), date(2026, 9, 1)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(500)


@pytest.fixture(scope="module")
def big_world() -> World:
    return generate_world(4000, seed=3)


def fingerprint(world: World) -> str:
    payload = {
        "schools": [s.model_dump(mode="json") for s in world.schools],
        "partnerships": [p.model_dump(mode="json") for p in world.partnerships],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def taiwanese(world: World) -> list[School]:
    return [s for s in world.schools if s.country == "TW"]


def abroad(world: World) -> list[School]:
    return [s for s in world.schools if s.country != "TW"]


# --------------------------------------------------------------------------- determinism


def test_same_arguments_give_the_same_world(world: World) -> None:
    again = generate_world(500)
    assert [s.model_dump() for s in again.schools] == [s.model_dump() for s in world.schools]
    assert [p.model_dump() for p in again.partnerships] == [p.model_dump() for p in world.partnerships]


def test_another_seed_gives_another_world(world: World) -> None:
    other = generate_world(500, seed=8)
    assert fingerprint(other) != fingerprint(world)
    assert [s.sdgs for s in other.schools] != [s.sdgs for s in world.schools]
    assert {p.pair for p in other.partnerships} != {p.pair for p in world.partnerships}


def test_world_does_not_depend_on_the_process_or_the_clock(world: World) -> None:
    """A fresh interpreter with another hash seed, at another moment, builds the identical world."""
    code = (
        "import hashlib, json; from data.generator import generate_world; w = generate_world(500); "
        "print(hashlib.sha256(json.dumps({'schools': [s.model_dump(mode='json') for s in w.schools], "
        "'partnerships': [p.model_dump(mode='json') for p in w.partnerships]}, sort_keys=True, "
        "ensure_ascii=False).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.strip() == fingerprint(world)


# --------------------------------------------------------------------------- validity


def test_generated_records_pass_the_normal_constructors(world: World) -> None:
    for school in random.Random(0).sample(world.schools, 150):
        assert School(**school.model_dump()) == school
    by_id = {s.id: s for s in world.schools}
    for partnership in world.partnerships:
        assert Partnership(**partnership.model_dump()) == partnership
        partnership.check_schools(by_id)


def test_ids_are_unique_and_timestamps_ordered(world: World) -> None:
    assert len({s.id for s in world.schools}) == len(world.schools)
    assert len({p.id for p in world.partnerships}) == len(world.partnerships)
    assert len({p.pair for p in world.partnerships}) == len(world.partnerships)
    for school in world.schools:
        assert school.created_at <= school.updated_at < datetime(END.year, END.month, END.day, tzinfo=UTC)
        assert school.created_at.tzinfo is not None


# --------------------------------------------------------------------------- proportions


def test_taiwanese_schools_follow_the_real_county_counts(big_world: World) -> None:
    counts = Counter(s.region for s in taiwanese(big_world))
    total, real_total = sum(counts.values()), sum(c for *_, c in TAIWAN_COUNTIES.values())
    distance = sum(abs(counts[code] / total - real / real_total) for code, (*_, real) in TAIWAN_COUNTIES.items()) / 2
    assert set(counts) == set(TAIWAN_COUNTIES)
    assert distance < 0.05


def test_remoteness_follows_the_county(big_world: World) -> None:
    def remote_share(county: str) -> float:
        schools = [s for s in taiwanese(big_world) if s.region == county]
        return sum(s.remoteness != Remoteness.ORDINARY for s in schools) / len(schools)

    assert remote_share("TW-TPE") == 0
    assert remote_share("TW-TTT") > 0.45 and remote_share("TW-PEN") > 0.6 and remote_share("TW-HUA") > 0.4
    remote = [s.student_count for s in taiwanese(big_world) if s.remoteness != Remoteness.ORDINARY]
    ordinary = [s.student_count for s in taiwanese(big_world) if s.remoteness == Remoteness.ORDINARY]
    assert pd.Series(remote).median() * 3 < pd.Series(ordinary).median()


def test_shares_of_taiwan_and_the_new_southbound_countries(big_world: World) -> None:
    assert abs(len(taiwanese(big_world)) / len(big_world.schools) - 0.48) < 0.01
    foreign = abroad(big_world)
    assert 0.72 < sum(s.country in NSP_COUNTRIES for s in foreign) / len(foreign) < 0.88
    by_country = Counter(s.country for s in foreign)
    assert by_country.most_common(1)[0][0] == "MY"
    assert {"VN", "TH", "ID", "PH", "AU", "IN", "SG", "JP", "KR", "US"} <= set(by_country)


def test_levels_ownership_and_taiwanese_targets(big_world: World) -> None:
    schools = taiwanese(big_world)
    levels = Counter(tuple(s.levels) for s in schools)
    assert levels[("primary",)] / len(schools) > 0.55
    assert sum(s.ownership == "public" for s in schools) / len(schools) > 0.8
    assert all(1 <= len(s.nsp_focus) <= 3 for s in schools)
    assert Counter(c for s in schools for c in s.nsp_focus).most_common(1)[0][0] == "MY"
    assert sum(s.target_countries == ["TW"] for s in abroad(big_world)) / len(abroad(big_world)) > 0.7


def test_foreign_regions_are_real_iso_subdivisions(big_world: World) -> None:
    places = {(c.code, city.region) for c in COUNTRIES for city in c.cities}
    places |= {(s.country, s.region) for s in abroad(big_world)}
    for country, region in places:
        subdivision = pycountry.subdivisions.get(code=region)
        assert subdivision is not None and subdivision.country_code == country, region
    zones = {(s.region, s.timezone) for s in abroad(big_world)}
    assert ("AU-WA", "Australia/Perth") in zones and ("MY-13", "Asia/Kuching") in zones
    assert ("US-CA", "America/Los_Angeles") in zones


def test_languages_are_those_the_countries_use(big_world: World) -> None:
    instruction = {country: Counter() for country in ("MY", "VN", "TH", "JP", "TW")}
    for school in big_world.schools:
        if school.country in instruction:
            instruction[school.country].update(school.languages_instruction)
        assert school.languages_exchange
    assert {"zh", "ms"} <= set(instruction["MY"]) and instruction["VN"].most_common(1)[0][0] == "vi"
    assert instruction["TH"].most_common(1)[0][0] == "th" and instruction["JP"].most_common(1)[0][0] == "ja"
    assert instruction["TW"].most_common(1)[0][0] == "zh"


def test_descriptions_name_the_schools_interests(big_world: World) -> None:
    schools = taiwanese(big_world)
    chinese = [s for s in schools if "\u4e00" <= s.description[0] <= "\u9fff"]
    assert 0.13 < len(chinese) / len(schools) < 0.22
    for school in chinese:
        assert all(sdg_name_zh(goal) in school.description for goal in school.sdgs)
    chinese_ids = {s.id for s in chinese}
    for school in big_world.schools:
        if school.id not in chinese_ids:
            assert all(sdg_name(goal) in school.description for goal in school.sdgs)
    assert len({s.description for s in big_world.schools}) == len(big_world.schools)


# --------------------------------------------------------------------------- partnerships


def test_every_partnership_crosses_the_border_with_a_taiwanese_side(world: World) -> None:
    by_id = {s.id: s for s in world.schools}
    for p in world.partnerships:
        a, b = by_id[p.school_a], by_id[p.school_b]
        assert a.country == "TW" and b.country != "TW"
        assert START <= p.start_date < END
        assert p.end_date is None or p.start_date < p.end_date < END
        assert a.created_at.date() <= p.start_date and b.created_at.date() <= p.start_date
        assert p.origin == "existing" and p.modes and p.sdgs
        assert set(p.sdgs) <= set(a.sdgs) | set(b.sdgs)


def test_partnerships_grow_over_time_and_some_end(big_world: World) -> None:
    per_year = Counter(p.start_date.year for p in big_world.partnerships)
    assert per_year[2025] > 2 * per_year[2016]
    ended = sum(p.end_date is not None for p in big_world.partnerships) / len(big_world.partnerships)
    assert 0.2 < ended < 0.8
    assert 2.2 < len(big_world.partnerships) / len(taiwanese(big_world)) < 2.8


def test_capacity_is_respected_most_of_the_time(big_world: World) -> None:
    active = Counter(s for p in big_world.partnerships if p.end_date is None for s in (p.school_a, p.school_b))
    over = sum(active[s.id] > s.capacity for s in big_world.schools)
    assert over / len(big_world.schools) < 0.03


def test_partners_have_more_in_common_than_random_pairs(big_world: World) -> None:
    """Affinity must be clearly visible: shared goals, a shared non-English language, targets."""
    by_id = {s.id: s for s in big_world.schools}
    partnered = [(by_id[p.school_a], by_id[p.school_b]) for p in big_world.partnerships]
    rng, home, foreign = random.Random(0), taiwanese(big_world), abroad(big_world)
    random_pairs = [(rng.choice(home), rng.choice(foreign)) for _ in range(len(partnered))]

    def rate(test: Callable[[School, School], bool], pairs: list[tuple[School, School]]) -> float:
        return sum(test(a, b) for a, b in pairs) / len(pairs)

    def goal(a: School, b: School) -> bool:
        return bool(set(a.sdgs) & set(b.sdgs))

    def local_language(a: School, b: School) -> bool:
        return bool((set(a.languages_exchange) & set(b.languages_exchange)) - {"en"})

    def targeted(a: School, b: School) -> bool:
        return b.country in a.target_countries

    def no_language(a: School, b: School) -> bool:
        return not set(a.languages_exchange) & set(b.languages_exchange)

    assert rate(goal, partnered) > rate(goal, random_pairs) + 0.25
    assert rate(local_language, partnered) > 1.5 * rate(local_language, random_pairs)
    assert rate(targeted, partnered) > 3 * rate(targeted, random_pairs)
    assert rate(no_language, partnered) < 0.25 * rate(no_language, random_pairs)


def test_popularity_is_a_weight_of_the_process() -> None:
    """With preferential attachment switched off, partners spread more evenly over schools abroad."""

    def top_decile_share(world: World) -> float:
        degree = sorted(Counter(p.school_b for p in world.partnerships).values(), reverse=True)
        return sum(degree[: len(abroad(world)) // 10]) / sum(degree)

    with_popularity = generate_world(1500, seed=5)
    without = generate_world(1500, seed=5, process=PartnershipProcess(popularity_weight=0, from_popular=0))
    assert top_decile_share(with_popularity) > top_decile_share(without) + 0.03


def test_borders_closed_means_virtual_only(big_world: World) -> None:
    paused = [p for p in big_world.partnerships if date(2020, 3, 1) <= p.start_date < date(2022, 10, 1)]
    assert paused and all(p.modes == ["virtual"] for p in paused)
    assert any("visit" in p.modes or "hosting" in p.modes for p in big_world.partnerships)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"n_schools": 0}, "n_schools"),
        ({"n_schools": 2.5}, "n_schools"),
        ({"n_schools": 10, "end": date(2015, 1, 1)}, "end"),
        ({"n_schools": 10, "real_dir": Path("/nonexistent")}, "real_dir"),
    ],
)
def test_bad_arguments_name_the_field(arguments: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        generate_world(**arguments)


def test_bad_process_weights_name_the_field() -> None:
    with pytest.raises(ValidationError, match="noise"):
        PartnershipProcess(noise=0)
    with pytest.raises(ValidationError, match="from_target_countries"):
        PartnershipProcess(from_target_countries=0.8, from_popular=0.3)


# --------------------------------------------------------------------------- real directories

needs_real = pytest.mark.skipif(not REAL_DIR.is_dir(), reason=f"real directories not found at {REAL_DIR}")


@needs_real
def test_real_schools_keep_their_real_fields() -> None:
    world = generate_world(1000, real_dir=REAL_DIR)
    taiwan = pd.read_csv(REAL_DIR / "tw_primary_schools.csv", dtype=str).set_index("moe_code")
    malaysia = pd.read_csv(REAL_DIR / "my_sjkc_schools.csv", dtype=str).set_index("KODSEKOLAH")
    counts = Counter(s.country for s in world.schools)
    assert counts == {"TW": 480, "MY": 520}
    for school in world.schools:
        assert {"sdgs", "description", "capacity", "exchange_modes", "target_countries"} <= set(school.generated_fields)
        assert not {"name_local", "student_count", "latitude", "region"} & set(school.generated_fields)
        if school.country == "TW":
            row = taiwan.loc[school.id.removeprefix("tw-")]
            assert school.name_local.endswith(row["name_zh"][2:]) and school.district == row["district"]
            assert school.student_count == int(row["students"]) and school.latitude == pytest.approx(float(row["lat"]))
            assert school.website == (row["url"] if isinstance(row["url"], str) else None)
        else:
            row = malaysia.loc[school.id.removeprefix("my-")]
            assert school.name_local == row["NAMASEKOLAH"] and "zh" in school.languages_instruction
            longitude = float(row["KOORDINATXX"]) if isinstance(row["KOORDINATXX"], str) else None
            assert school.longitude == pytest.approx(longitude)
    assert [s.id for s in generate_world(1000, real_dir=REAL_DIR).schools] == [s.id for s in world.schools]


@needs_real
def test_more_schools_than_real_ones_are_topped_up_abroad() -> None:
    world = generate_world(6000, real_dir=REAL_DIR, seed=2)
    real = [s for s in world.schools if s.source != "generator"]
    synthetic = [s for s in world.schools if s.source == "generator"]
    assert len(real) == 2668 + 1304
    assert {s.country for s in synthetic if s.country != "TW"} > {"VN", "TH", "ID"}
    assert all(s.country != "MY" for s in synthetic)
    assert abs(sum(s.country == "TW" for s in world.schools) / len(world.schools) - 0.48) < 0.01
    assert all(s.generated_fields for s in synthetic)
    real_ids = {s.id for s in real}
    assert any(p.school_a in real_ids and p.school_b in real_ids for p in world.partnerships)


# --------------------------------------------------------------------------- the programme process


@pytest.fixture(scope="module")
def programme_world() -> World:
    return generate_world(800, seed=5, process=ProgrammeProcess())


def test_programme_process_is_deterministic_and_keeps_the_schools(programme_world: World) -> None:
    assert fingerprint(programme_world) == fingerprint(generate_world(800, seed=5, process=ProgrammeProcess()))
    assert programme_world.schools == generate_world(800, seed=5).schools  # only the history differs


def test_programme_partnerships_cross_the_border_and_respect_capacity(programme_world: World) -> None:
    by_id = {s.id: s for s in programme_world.schools}
    assert programme_world.partnerships
    for p in programme_world.partnerships:
        assert by_id[p.school_a].country == "TW" != by_id[p.school_b].country
    for day in (date(2019, 10, 1), date(2023, 10, 1), date(2026, 8, 1)):
        running = Counter(
            school
            for p in programme_world.partnerships
            if p.start_date <= day and (p.end_date is None or p.end_date > day)
            for school in (p.school_a, p.school_b)
        )
        assert all(count <= by_id[school].capacity for school, count in running.items())


def test_county_programmes_concentrate_on_few_countries(programme_world: World) -> None:
    """Most of a county's partnerships go to its programme's countries, unlike the affinity process."""
    by_id = {s.id: s for s in programme_world.schools}

    def top_two_share(world: World) -> float:
        counts: dict[str, Counter[str]] = {}
        for p in world.partnerships:
            counts.setdefault(by_id[p.school_a].region or "", Counter())[by_id[p.school_b].country] += 1
        top = sum(sum(n for _, n in c.most_common(2)) for c in counts.values())
        return top / sum(sum(c.values()) for c in counts.values())

    assert top_two_share(programme_world) > 0.75
    assert top_two_share(generate_world(800, seed=5)) < top_two_share(programme_world) - 0.15
