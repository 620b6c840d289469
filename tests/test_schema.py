"""Taxonomies and profile validation: what a school administrator could get wrong is refused clearly."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from data import taxonomies as tx
from data.schema import Partnership, School


def school(**overrides) -> School:
    fields = dict(id="tw-1", name_local="臺北市立測試國民小學", country="TW", region="TW-TPE", levels=["primary"])
    fields.update(overrides)
    return School(**fields)


def messages(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]


def test_taxonomies_come_from_real_sources() -> None:
    assert len(tx.NEW_SOUTHBOUND) == 18 and len(tx.TAIWAN_COUNTIES) == 22 and len(tx.SDGS) == 17
    assert sum(count for *_, count in tx.TAIWAN_COUNTIES.values()) == 2668
    assert tx.country_name("TW") == "Taiwan"
    assert all("Province" not in tx.country_name(c) for c in ["TW", *tx.NEW_SOUTHBOUND])
    assert tx.country_name("VN") == "Vietnam" and tx.country_name("BN") == "Brunei" and tx.country_name("LA") == "Laos"
    assert tx.sdg_name(4) == "Quality Education" and tx.sdg_name_zh(13) == "氣候行動"
    assert tx.normalize_country("馬來西亞") == "MY" and tx.normalize_country("vnm") == "VN"
    assert tx.normalize_language("Mandarin") == "zh" and tx.normalize_language("fil") == "fil"


@pytest.mark.parametrize("spelling", ["台北市", "臺北市", "Taipei City", "TW-TPE", "taipei"])
def test_taiwan_regions_accept_both_spellings(spelling: str) -> None:
    assert tx.normalize_region("TW", spelling) == "TW-TPE"


def test_time_zone_is_derived_from_country_region_or_coordinates() -> None:
    assert school().timezone == "Asia/Taipei"
    perth = School(id="au-1", name_en="x", country="AU", region="AU-WA", levels=["primary"])
    assert perth.timezone == "Australia/Perth"
    kuching = School(id="my-1", name_en="x", country="MY", levels=["primary"], latitude=1.55, longitude=110.33)
    assert kuching.timezone == "Asia/Kuching"
    assert School(id="my-2", name_en="x", country="MY", region="Perak", levels=["primary"]).region == "MY-08"


def test_profile_is_normalised() -> None:
    s = school(sdgs=[13, 4, 4], languages_exchange=["English", "zh"], target_countries=["vn", "MY"])
    assert s.sdgs == [4, 13] and s.languages_exchange == ["en", "zh"] and s.target_countries == ["MY", "VN"]
    assert s.grades == [1, 2, 3, 4, 5, 6] and s.nsp_focus == ["MY", "VN"]
    assert (
        s.content_hash()
        == school(sdgs=[4, 13], languages_exchange=["zh", "en"], target_countries=["MY", "VN"]).content_hash()
    )
    assert "contact_email" not in school(contact_email="a@b.tw").public_view()


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"country": "XX"}, "country", "unknown country"),
        ({"sdgs": [18]}, "sdgs.0", "less than or equal to 17"),
        ({"capacity": -1}, "capacity", "greater than or equal to 0"),
        ({"languages_exchange": ["klingonese"]}, "languages_exchange.0", "unknown language"),
        ({"name_local": None}, "", "give at least one name"),
        ({"region": "Atlantis"}, "", "region: unknown Taiwan county"),
        ({"timezone": "Mars/Base"}, "", "timezone: unknown IANA time zone"),
        ({"target_countries": ["TW"]}, "", "target_countries: TW is the school's own country"),
        ({"contact_email": "not-an-address"}, "contact_email", "not an e-mail address"),
        ({"levels": []}, "levels", "at least 1 item"),
    ],
)
def test_invalid_profiles_name_field_and_reason(overrides: dict, field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        school(**overrides)
    assert any(loc == field and reason in msg for loc, msg in messages(info.value)), messages(info.value)


def test_partnership_rules() -> None:
    with pytest.raises(ValidationError, match="cannot partner with itself"):
        Partnership(school_a="a", school_b="a", start_date=date(2024, 1, 1))
    with pytest.raises(ValidationError, match="end_date: before start_date"):
        Partnership(school_a="a", school_b="b", start_date=date(2024, 1, 1), end_date=date(2023, 1, 1))
    schools = {"tw-1": school(), "tw-2": school(id="tw-2"), "my-1": school(id="my-1", country="MY", region="Perak")}
    with pytest.raises(ValueError, match="both in TW"):
        Partnership(school_a="tw-1", school_b="tw-2", start_date=date(2024, 1, 1)).check_schools(schools)
    with pytest.raises(ValueError, match="school_b: unknown school 'nope'"):
        Partnership(school_a="tw-1", school_b="nope", start_date=date(2024, 1, 1)).check_schools(schools)
    Partnership(school_a="tw-1", school_b="my-1", start_date=date(2024, 1, 1)).check_schools(schools)
