"""Schools abroad: mostly the New Southbound countries, named and spoken for as they really are."""

from __future__ import annotations

import random
import unicodedata
from functools import cache

from data.generator.places import COUNTRIES, REGIONAL, City, CountryProfile, SchoolKind
from data.generator.profiles import Draft, cumulative
from data.taxonomies import HOME_COUNTRY_DEFAULT, Level, country_name, region_name

ISLAND_NATIONS = frozenset({"PH", "ID", "SG", "BN", "LK", "NZ", "JP"})
LANDLOCKED = frozenset({"LA", "NP", "BT"})
SOUTHERN_HEMISPHERE = frozenset({"AU", "NZ"})
# Countries a foreign school may want besides Taiwan.
SECOND_TARGETS = ("JP", "KR", "SG", "AU", "MY")
# Log-normal enrolment by level (mean and sd of the log) before a country's shift.
SIZE_LOG_PARAMS: dict[Level, tuple[float, float]] = {
    Level.PRIMARY: (5.9, 0.7),
    Level.JUNIOR_HIGH: (6.5, 0.6),
    Level.SENIOR_HIGH: (6.8, 0.6),
    Level.VOCATIONAL_HIGH: (6.6, 0.6),
}


@cache
def _cumulative_weights(items: tuple[City, ...] | tuple[SchoolKind, ...]) -> tuple[float, ...]:
    return cumulative([item.weight for item in items])


def romanise(text: str) -> str:
    """Vietnamese and other Latin-script names without diacritics, as English names write them."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _names(rng: random.Random, kind: SchoolKind, city: City) -> tuple[str | None, str | None]:
    stem = rng.choice(kind.stems) if kind.stems else ""
    local_stem, _, english_stem = stem.partition("|")
    english_stem = english_stem or romanise(local_stem)
    number = min(rng.randint(1, 12), rng.randint(1, 40))  # low numbers are more common: SD Negeri 1, 2, 3...
    local = kind.local_name.format(stem=local_stem, city=city.name, n=number) if kind.local_name else None
    english = kind.english_name.format(stem=english_stem, city=city.name, n=number) if kind.english_name else None
    if local and english and rng.random() < 0.3:  # not every school gives an English name
        english = None
    return local, english


def _languages(
    rng: random.Random, country: CountryProfile, kind: SchoolKind, region: str
) -> tuple[list[str], list[str]]:
    regional = country.regional_languages.get(region, country.default_regional_language)
    instruction = [regional if code == REGIONAL else code for code in kind.instruction]
    exchange = list(dict.fromkeys([*instruction, *kind.exchange_extra]))
    for language, probability in country.exchange_options:
        if language not in exchange and rng.random() < probability:
            exchange.append(language)
    return instruction, exchange


_region_name, _country_name = cache(region_name), cache(country_name)


def foreign_targets(rng: random.Random, country: str) -> list[str]:
    """Most schools abroad join to find a Taiwanese partner; a few state no preference or a second country."""
    roll = rng.random()
    if roll < 0.10:
        return []
    if roll < 0.15:
        second = rng.choice([c for c in SECOND_TARGETS if c != country])
        return [HOME_COUNTRY_DEFAULT, second]
    return [HOME_COUNTRY_DEFAULT]


def foreign_drafts(
    rng: random.Random, count: int, countries: tuple[CountryProfile, ...] = COUNTRIES, first_index: int = 0
) -> list[Draft]:
    """``count`` synthetic schools abroad, countries drawn by their weight; ids like my-g000123."""
    chosen = rng.choices(countries, weights=[c.weight for c in countries], k=count)
    drafts = []
    for offset, country in enumerate(chosen):
        city = rng.choices(country.cities, cum_weights=_cumulative_weights(country.cities))[0]
        kind = rng.choices(country.kinds, cum_weights=_cumulative_weights(country.kinds))[0]
        name_local, name_en = _names(rng, kind, city)
        instruction, exchange = _languages(rng, country, kind, city.region)
        mu, sigma = SIZE_LOG_PARAMS[kind.levels[-1]]
        students = round(rng.lognormvariate(mu + country.size_shift + 0.3 * (len(kind.levels) - 1), sigma))
        school_id = f"{country.code.lower()}-g{first_index + offset:06d}"
        region_label = _region_name(city.region)
        city_key, region_key = romanise(city.name).casefold(), romanise(region_label).casefold()
        place = city.name if city_key in region_key or region_key in city_key else f"{city.name}, {region_label}"
        fields = {
            "id": school_id,
            "name_local": name_local,
            "name_en": name_en,
            "country": country.code,
            "region": city.region,
            "district": city.name,
            "levels": list(kind.levels),
            "ownership": kind.ownership,
            "student_count": int(min(8000, max(10, students))),
            "latitude": round(rng.gauss(city.lat, 0.06), 5),
            "longitude": round(rng.gauss(city.lon, 0.06), 5),
            "languages_instruction": instruction,
            "languages_exchange": exchange,
            "contact_email": f"exchange@{school_id}.example.org",
            "source": "generator",
        }
        drafts.append(
            Draft(
                fields=fields,
                place_en=f"{place}, {_country_name(country.code)}",
                coastal=country.code not in LANDLOCKED
                and rng.random() < (0.5 if country.code in ISLAND_NATIONS else 0.25),
                visit_rate=country.visit_rate,
                hosting_rate=country.hosting_rate,
                sdg_boost=dict(country.sdg_boost),
                southern_hemisphere=country.code in SOUTHERN_HEMISPHERE,
            )
        )
    return drafts
