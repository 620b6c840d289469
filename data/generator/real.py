"""Real school directories as drafts: real names, places and sizes; interests are generated later.

Reads the two public directories described in shared/data/real/README.md with pandas, straight
from the files as the ministries publish them (Malay headers for Malaysia), so the generator
does not depend on the product's import code. Every field taken from a file is recorded in
``Draft.real_fields``; whatever the generator adds is then listed in School.generated_fields.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pandas as pd

from data.generator.places import COUNTRY_BY_CODE
from data.generator.profiles import Draft
from data.generator.taiwan import COASTAL_SHARE, INDIGENOUS_COUNTIES, ISLAND_COUNTIES, taiwan_languages
from data.taxonomies import TAIWAN_COUNTIES, Level, Ownership, Remoteness, normalize_region, region_name

TAIWAN_FILE = "tw_primary_schools.csv"
MALAYSIA_FILE = "my_sjkc_schools.csv"
REMOTENESS_FROM_ZH: dict[str, Remoteness] = {
    "偏遠": Remoteness.REMOTE,
    "特偏": Remoteness.VERY_REMOTE,
    "極偏": Remoteness.EXTREMELY_REMOTE,
}
SJKC_PREFIX = "SEKOLAH JENIS KEBANGSAAN (CINA) "
_TAIWAN_REAL = frozenset(
    {
        "id",
        "name_local",
        "country",
        "region",
        "district",
        "levels",
        "ownership",
        "student_count",
        "remoteness",
        "latitude",
        "longitude",
        "address",
        "website",
        "source",
    }
)
_MALAYSIA_REAL = frozenset(
    {
        "id",
        "name_local",
        "country",
        "region",
        "district",
        "levels",
        "ownership",
        "student_count",
        "latitude",
        "longitude",
        "address",
        "source",
    }
)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _number(value: object) -> float | None:
    text = _text(value)
    return float(text) if text is not None else None


def _coordinates(lat: object, lon: object) -> tuple[float | None, float | None]:
    lat_value, lon_value = _number(lat), _number(lon)
    if lat_value is None or lon_value is None:
        return None, None
    return round(lat_value, 6), round(lon_value, 6)


def _full_taiwan_name(name: str, county_zh: str) -> str:
    """The directory writes 市立中正國小 for 臺北市立中正國小: put the county back so names are unique."""
    if name.startswith(("市立", "縣立")) and county_zh.endswith(name[0]):
        return county_zh[:-1] + name
    return name


def read_taiwan(directory: Path, rng: random.Random) -> list[Draft]:
    """Every school in tw_primary_schools.csv, as a draft with its real fields."""
    table = pd.read_csv(directory / TAIWAN_FILE, dtype=str, keep_default_na=True)
    drafts = []
    for row in table.itertuples(index=False):
        county = normalize_region("TW", row.county)
        county_zh, county_en, _ = TAIWAN_COUNTIES[county]
        name = _full_taiwan_name(row.name_zh, county_zh)
        levels = [Level.PRIMARY, Level.JUNIOR_HIGH] if "國(中)小" in name else [Level.PRIMARY]
        ownership = (
            Ownership.PRIVATE if "私立" in name else Ownership.NATIONAL if name.startswith("國立") else Ownership.PUBLIC
        )
        remoteness = REMOTENESS_FROM_ZH.get(_text(row.remoteness) or "", Remoteness.ORDINARY)
        students = _number(row.students)
        latitude, longitude = _coordinates(row.lat, row.lon)
        remote = remoteness != Remoteness.ORDINARY
        instruction, exchange, family_countries = taiwan_languages(rng, tuple(levels), remote)
        year = _text(row.school_year_roc)
        fields = {
            "id": f"tw-{row.moe_code}",
            "name_local": name,
            "country": "TW",
            "region": county,
            "district": _text(row.district),
            "levels": levels,
            "ownership": ownership,
            "student_count": int(students) if students is not None else None,
            "remoteness": remoteness,
            "latitude": latitude,
            "longitude": longitude,
            "address": _text(row.address),
            "website": _text(row.url),
            "source": f"moe-tw-{year}" if year else "moe-tw",
            "languages_instruction": instruction,
            "languages_exchange": exchange,
        }
        drafts.append(
            Draft(
                fields=fields,
                place_en=f"{county_en}, Taiwan",
                place_zh=f"{county_zh}{fields['district'] or ''}",
                coastal=rng.random() < COASTAL_SHARE.get(county, 0.15),
                island=county in ISLAND_COUNTIES,
                indigenous_area=remote and county in INDIGENOUS_COUNTIES,
                visit_rate=0.3,
                hosting_rate=0.35,
                real_fields=_TAIWAN_REAL,
                extra_targets=tuple(family_countries),
            )
        )
    return drafts


def read_malaysia(directory: Path, rng: random.Random) -> list[Draft]:
    """Every school in my_sjkc_schools.csv (Chinese-medium primary schools), as drafts."""
    table = pd.read_csv(directory / MALAYSIA_FILE, dtype=str, keep_default_na=True)
    malaysia = COUNTRY_BY_CODE["MY"]
    drafts = []
    for row in table.to_dict("records"):
        region = normalize_region("MY", row["NEGERI"])
        name = _text(row["NAMASEKOLAH"]) or row["KODSEKOLAH"]
        sjkc = name.startswith(SJKC_PREFIX)
        english = f"{name.removeprefix(SJKC_PREFIX).title()} Chinese Primary School" if sjkc else None
        students = _number(row["ENROLMEN"])
        latitude, longitude = _coordinates(row["KOORDINATYY"], row["KOORDINATXX"])
        exchange = ["zh", "ms"] + [lang for lang, p in malaysia.exchange_options if lang != "zh" and rng.random() < p]
        town = (_text(row["BANDARSURAT"]) or "").title()
        address = ", ".join(
            part
            for part in (_text(row["ALAMATSURAT"]), " ".join(filter(None, (_text(row["POSKODSURAT"]), town))))
            if part
        )
        district = (_text(row["PPD"]) or "").removeprefix("PPD ").title() or None
        rural = _text(row["LOKASI"]) == "Luar Bandar"
        fields = {
            "id": f"my-{row['KODSEKOLAH']}",
            "name_local": name,
            "name_en": english,
            "country": "MY",
            "region": region,
            "district": district,
            "levels": [Level.PRIMARY],
            "ownership": Ownership.PUBLIC,
            "student_count": int(students) if students is not None else None,
            "latitude": latitude,
            "longitude": longitude,
            "address": address or None,
            "source": "emis-my",
            "languages_instruction": ["zh", "ms"],
            "languages_exchange": exchange,
        }
        region_label = region_name(region) if region else ""
        drafts.append(
            Draft(
                fields=fields,
                place_en=", ".join(filter(None, (town, region_label, "Malaysia"))),
                coastal=rng.random() < 0.25,
                visit_rate=malaysia.visit_rate * (0.6 if rural else 1.0),
                hosting_rate=malaysia.hosting_rate * (0.6 if rural else 1.0),
                sdg_boost=dict(malaysia.sdg_boost),
                real_fields=_MALAYSIA_REAL,
            )
        )
    return drafts
