"""The vocabularies partnermatch speaks: countries, regions, languages, SDGs, levels, modes.

Codes come from real sources (pycountry for ISO 3166 and ISO 639, the tz database shipped in
``tzdata`` for time zones); this module only adds what those lack for a Taiwanese alliance:
display names that never say "Taiwan, Province of China", the New Southbound Policy list,
Chinese names for Taiwan's counties and the SDGs, and the school levels and exchange modes.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from functools import cache
from importlib import resources

import pycountry

HOME_COUNTRY_DEFAULT = "TW"


class Level(StrEnum):
    """School levels as Taiwan's exchange forms ask for them."""

    PRIMARY = "primary"
    JUNIOR_HIGH = "junior_high"
    SENIOR_HIGH = "senior_high"
    VOCATIONAL_HIGH = "vocational_high"


LEVEL_LABELS: dict[Level, tuple[str, str]] = {
    Level.PRIMARY: ("primary school", "國小"),
    Level.JUNIOR_HIGH: ("junior high school", "國中"),
    Level.SENIOR_HIGH: ("senior high school", "高中"),
    Level.VOCATIONAL_HIGH: ("vocational high school", "高職"),
}

# Grades each level normally serves; used to derive grades when a directory lacks them.
LEVEL_GRADES: dict[Level, tuple[int, ...]] = {
    Level.PRIMARY: (1, 2, 3, 4, 5, 6),
    Level.JUNIOR_HIGH: (7, 8, 9),
    Level.SENIOR_HIGH: (10, 11, 12),
    Level.VOCATIONAL_HIGH: (10, 11, 12),
}

# Ordinal position used for "same or adjacent level" rules.
LEVEL_ORDER: dict[Level, int] = {
    Level.PRIMARY: 0,
    Level.JUNIOR_HIGH: 1,
    Level.SENIOR_HIGH: 2,
    Level.VOCATIONAL_HIGH: 2,
}


class ExchangeMode(StrEnum):
    """How two schools meet: online first, then visits, per the alliance's policy."""

    VIRTUAL = "virtual"
    VISIT = "visit"
    HOSTING = "hosting"


MODE_LABELS: dict[ExchangeMode, tuple[str, str]] = {
    ExchangeMode.VIRTUAL: ("virtual exchange", "線上交流"),
    ExchangeMode.VISIT: ("in-person visit", "出訪"),
    ExchangeMode.HOSTING: ("hosting a visit", "接待來訪"),
}


class Ownership(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    NATIONAL = "national"


class Remoteness(StrEnum):
    """Taiwan's statutory remoteness categories (偏遠地區學校分級)."""

    ORDINARY = "ordinary"
    REMOTE = "remote"
    VERY_REMOTE = "very_remote"
    EXTREMELY_REMOTE = "extremely_remote"


REMOTENESS_ZH: dict[Remoteness, str] = {
    Remoteness.ORDINARY: "一般",
    Remoteness.REMOTE: "偏遠",
    Remoteness.VERY_REMOTE: "特偏",
    Remoteness.EXTREMELY_REMOTE: "極偏",
}

# --------------------------------------------------------------------------- countries

# ISO alpha-2 -> (shown as, 中文) for the 18 New Southbound Policy countries.
NEW_SOUTHBOUND: dict[str, tuple[str, str]] = {
    "ID": ("Indonesia", "印尼"),
    "MY": ("Malaysia", "馬來西亞"),
    "PH": ("Philippines", "菲律賓"),
    "SG": ("Singapore", "新加坡"),
    "TH": ("Thailand", "泰國"),
    "VN": ("Vietnam", "越南"),
    "MM": ("Myanmar", "緬甸"),
    "KH": ("Cambodia", "柬埔寨"),
    "LA": ("Laos", "寮國"),
    "BN": ("Brunei", "汶萊"),
    "IN": ("India", "印度"),
    "PK": ("Pakistan", "巴基斯坦"),
    "BD": ("Bangladesh", "孟加拉"),
    "NP": ("Nepal", "尼泊爾"),
    "LK": ("Sri Lanka", "斯里蘭卡"),
    "BT": ("Bhutan", "不丹"),
    "AU": ("Australia", "澳洲"),
    "NZ": ("New Zealand", "紐西蘭"),
}
NSP_COUNTRIES: frozenset[str] = frozenset(NEW_SOUTHBOUND)

# Names pycountry lacks or gets wrong for this audience, plus Chinese names of other
# countries the alliance commonly meets.
_DISPLAY_OVERRIDES: dict[str, str] = {"BN": "Brunei", "MM": "Myanmar", "TW": "Taiwan"}
_CHINESE_NAMES: dict[str, str] = {
    **{code: zh for code, (_, zh) in NEW_SOUTHBOUND.items()},
    "TW": "臺灣",
    "JP": "日本",
    "KR": "韓國",
    "US": "美國",
    "CA": "加拿大",
    "GB": "英國",
    "DE": "德國",
    "FR": "法國",
    "CN": "中國",
    "HK": "香港",
    "MO": "澳門",
}


def is_country(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code) is not None


def country_name(code: str) -> str:
    """English name shown to people: common names, never "Taiwan, Province of China"."""
    if code in _DISPLAY_OVERRIDES:
        return _DISPLAY_OVERRIDES[code]
    if code in NEW_SOUTHBOUND:
        return NEW_SOUTHBOUND[code][0]
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        raise KeyError(f"unknown ISO 3166-1 alpha-2 country code {code!r}")
    return getattr(country, "common_name", None) or country.name


def country_name_zh(code: str) -> str:
    """Traditional Chinese name where we know one, else the English display name."""
    return _CHINESE_NAMES.get(code) or country_name(code)


def normalize_country(value: str) -> str:
    """Accept an ISO alpha-2/alpha-3 code or a country name (English or Chinese)."""
    text = value.strip()
    if not text:
        raise ValueError("empty country")
    upper = text.upper()
    if len(upper) == 2 and is_country(upper):
        return upper
    if len(upper) == 3 and (c := pycountry.countries.get(alpha_3=upper)) is not None:
        return c.alpha_2
    for code, zh in _CHINESE_NAMES.items():
        if text in (zh, zh.replace("臺", "台")):
            return code
    for code in (*_DISPLAY_OVERRIDES, *NEW_SOUTHBOUND):
        if text.casefold() == country_name(code).casefold():
            return code
    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        raise ValueError(f"unknown country {value!r}: use an ISO 3166-1 code such as TW or MY") from None


# --------------------------------------------------------------------------- Taiwan

# ISO 3166-2:TW -> (中文, English, primary schools in school year 113).
# The counts are facts from the Ministry of Education directory (tw_primary_schools.csv);
# the generator spreads Taiwanese schools in these proportions.
TAIWAN_COUNTIES: dict[str, tuple[str, str, int]] = {
    "TW-TPE": ("臺北市", "Taipei City", 154),
    "TW-NWT": ("新北市", "New Taipei City", 222),
    "TW-TAO": ("桃園市", "Taoyuan City", 195),
    "TW-TXG": ("臺中市", "Taichung City", 245),
    "TW-TNN": ("臺南市", "Tainan City", 216),
    "TW-KHH": ("高雄市", "Kaohsiung City", 247),
    "TW-KEE": ("基隆市", "Keelung City", 41),
    "TW-HSZ": ("新竹市", "Hsinchu City", 35),
    "TW-CYI": ("嘉義市", "Chiayi City", 20),
    "TW-HSQ": ("新竹縣", "Hsinchu County", 87),
    "TW-MIA": ("苗栗縣", "Miaoli County", 114),
    "TW-CHA": ("彰化縣", "Changhua County", 174),
    "TW-NAN": ("南投縣", "Nantou County", 140),
    "TW-YUN": ("雲林縣", "Yunlin County", 157),
    "TW-CYQ": ("嘉義縣", "Chiayi County", 121),
    "TW-PIF": ("屏東縣", "Pingtung County", 166),
    "TW-ILA": ("宜蘭縣", "Yilan County", 78),
    "TW-HUA": ("花蓮縣", "Hualien County", 104),
    "TW-TTT": ("臺東縣", "Taitung County", 89),
    "TW-PEN": ("澎湖縣", "Penghu County", 37),
    "TW-KIN": ("金門縣", "Kinmen County", 19),
    "TW-LIE": ("連江縣", "Lienchiang County (Matsu)", 7),
}


def region_name(code: str) -> str:
    """English name of a region code (ISO 3166-2), or the text itself if it is not a code."""
    if code in TAIWAN_COUNTIES:
        return TAIWAN_COUNTIES[code][1]
    sub = pycountry.subdivisions.get(code=code)
    return sub.name if sub is not None else code


def region_name_zh(code: str) -> str:
    if code in TAIWAN_COUNTIES:
        return TAIWAN_COUNTIES[code][0]
    return region_name(code)


def _fold(text: str) -> str:
    return re.sub(r"[\s\-_.'’()]", "", text.casefold())


@cache
def _region_lookup(country: str) -> dict[str, str]:
    """Every spelling we accept for a country's regions, folded, -> ISO 3166-2 code."""
    table: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=country) or []:
        table[_fold(sub.code)] = sub.code
        table[_fold(sub.name)] = sub.code
        # "Wilayah Persekutuan Kuala Lumpur" is "W.P. Kuala Lumpur" or "Kuala Lumpur" in directories.
        if sub.name.startswith("Wilayah Persekutuan "):
            short = sub.name.removeprefix("Wilayah Persekutuan ")
            table[_fold(short)] = sub.code
            table[_fold("WP " + short)] = sub.code
    if country == "TW":
        for code, (zh, en, _) in TAIWAN_COUNTIES.items():
            for spelling in (zh, zh.replace("臺", "台"), en, en.split(" (")[0]):
                table[_fold(spelling)] = code
    if country == "MY":
        table[_fold("Pulau Pinang")] = "MY-07"
        table[_fold("Penang")] = "MY-07"
        table[_fold("Malacca")] = "MY-04"
    return table


def normalize_region(country: str, value: str | None) -> str | None:
    """Map a region as people write it (臺北市, 台北市, Taipei City, PERAK) to its ISO 3166-2
    code where one exists. Taiwan must resolve to one of its 22 counties; elsewhere an unknown
    name is kept as written, because foreign directories name regions in many ways."""
    if value is None or not value.strip():
        return None
    code = _region_lookup(country).get(_fold(value))
    if code is not None:
        return code
    if country == "TW":
        raise ValueError(f"unknown Taiwan county/city {value!r}: use one of the 22, e.g. TW-TPE or 臺北市")
    if re.fullmatch(r"[A-Z]{2}-[A-Z0-9]{1,3}", value.strip()):
        raise ValueError(f"unknown region code {value!r} for country {country}")
    return value.strip()


# --------------------------------------------------------------------------- languages


def normalize_language(value: str) -> str:
    """ISO 639-1 code where one exists (zh, en, ms), else ISO 639-3 (nan, fil)."""
    text = value.strip()
    lang = None
    if len(text) == 2:
        lang = pycountry.languages.get(alpha_2=text.lower())
    elif len(text) == 3:
        lang = pycountry.languages.get(alpha_3=text.lower())
    if lang is None:
        alias = _LANGUAGE_ALIASES.get(text.casefold())
        if alias:
            return alias
        try:
            lang = pycountry.languages.lookup(text)
        except LookupError:
            raise ValueError(f"unknown language {value!r}: use an ISO 639 code such as en, zh or ms") from None
    return getattr(lang, "alpha_2", None) or lang.alpha_3


_LANGUAGE_ALIASES: dict[str, str] = {
    "mandarin": "zh",
    "chinese": "zh",
    "華語": "zh",
    "中文": "zh",
    "英語": "en",
    "英文": "en",
    "malay": "ms",
    "bahasa melayu": "ms",
    "bahasa malaysia": "ms",
    "bahasa indonesia": "id",
    "filipino": "fil",
    "tagalog": "tl",
    "日語": "ja",
    "韓語": "ko",
    "越南語": "vi",
    "泰語": "th",
    "印尼語": "id",
}


def language_name(code: str) -> str:
    if code == "zh":
        return "Mandarin Chinese"
    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    if lang is None:
        raise KeyError(f"unknown language code {code!r}")
    return lang.name.removesuffix(" (macrolanguage)")


LANGUAGE_NAMES_ZH: dict[str, str] = {
    "zh": "華語",
    "en": "英語",
    "ms": "馬來語",
    "id": "印尼語",
    "th": "泰語",
    "vi": "越南語",
    "ja": "日語",
    "ko": "韓語",
    "ta": "坦米爾語",
    "hi": "印地語",
    "tl": "他加祿語",
    "fil": "菲律賓語",
    "my": "緬甸語",
    "km": "高棉語",
    "lo": "寮語",
    "bn": "孟加拉語",
    "ur": "烏爾都語",
    "ne": "尼泊爾語",
    "si": "僧伽羅語",
    "dz": "宗卡語",
    "fr": "法語",
    "de": "德語",
    "es": "西班牙語",
    "nan": "臺灣台語",
}


def language_name_zh(code: str) -> str:
    return LANGUAGE_NAMES_ZH.get(code) or language_name(code)


# --------------------------------------------------------------------------- SDGs

# Goal -> (UN short name, Taiwanese name, aliases in use incl. Simplified forms).
SDGS: dict[int, tuple[str, str, tuple[str, ...]]] = {
    1: ("No Poverty", "消除貧窮", ("終結貧窮", "消除贫穷")),
    2: ("Zero Hunger", "消除飢餓", ("終結飢餓", "零飢餓", "消除饥饿")),
    3: ("Good Health and Well-being", "良好健康與福祉", ("健康與福祉", "良好健康和福祉", "良好健康与福祉")),
    4: ("Quality Education", "優質教育", ("优质教育",)),
    5: ("Gender Equality", "性別平等", ("性別平權", "性别平等")),
    6: ("Clean Water and Sanitation", "潔淨水與衛生", ("淨水及衛生", "潔淨飲水與衛生", "清洁饮水和卫生设施")),
    7: ("Affordable and Clean Energy", "可負擔的潔淨能源", ("乾淨能源", "经济适用的清洁能源")),
    8: (
        "Decent Work and Economic Growth",
        "合適的工作及經濟成長",
        ("尊嚴就業與經濟發展", "體面工作和經濟增長", "体面工作和经济增长"),
    ),
    9: (
        "Industry, Innovation and Infrastructure",
        "工業化、創新及基礎建設",
        ("產業創新與基礎設施", "产业、创新和基础设施"),
    ),
    10: ("Reduced Inequalities", "減少不平等", ("减少不平等",)),
    11: ("Sustainable Cities and Communities", "永續城鄉", ("永續城市與社區", "可持续城市和社区")),
    12: ("Responsible Consumption and Production", "責任消費及生產", ("負責任的消費與生產", "负责任消费和生产")),
    13: ("Climate Action", "氣候行動", ("气候行动",)),
    14: ("Life Below Water", "保育海洋生態", ("海洋生態", "水下生物")),
    15: ("Life on Land", "保育陸域生態", ("陸地生態", "陆地生物")),
    16: (
        "Peace, Justice and Strong Institutions",
        "和平、正義及健全制度",
        ("和平正義與有力的制度", "和平、正义与强大机构"),
    ),
    17: ("Partnerships for the Goals", "全球夥伴關係", ("全球夥伴", "促进目标实现的伙伴关系")),
}


def sdg_name(goal: int) -> str:
    return SDGS[goal][0]


def sdg_name_zh(goal: int) -> str:
    return SDGS[goal][1]


def sdg_chinese_terms() -> dict[str, int]:
    """Every Chinese spelling of every goal -> goal number, longest first for greedy matching."""
    terms = {term: goal for goal, (_, zh, aliases) in SDGS.items() for term in (zh, *aliases)}
    return dict(sorted(terms.items(), key=lambda kv: -len(kv[0])))


# --------------------------------------------------------------------------- time zones


@cache
def _zone_table() -> dict[str, list[tuple[str, float, float]]]:
    """Country -> [(IANA zone, lat, lon)] from the tz database's zone.tab."""
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    table: dict[str, list[tuple[str, float, float]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        country, coords, zone = line.split("\t")[:3]
        match = re.fullmatch(r"([+-]\d+)([+-]\d+)", coords)
        if match is None:
            continue
        table.setdefault(country, []).append((zone, _iso6709(match[1]), _iso6709(match[2])))
    return table


def _iso6709(part: str) -> float:
    sign = -1.0 if part[0] == "-" else 1.0
    digits = part[1:]
    deg_len = 2 if len(digits) in (4, 6) else 3
    deg = int(digits[:deg_len])
    minutes = int(digits[deg_len : deg_len + 2])
    seconds = int(digits[deg_len + 2 :] or 0)
    return sign * (deg + minutes / 60 + seconds / 3600)


# Regions of multi-zone countries the alliance meets, where the nearest zone city would be wrong
# or coordinates are unknown.
_REGION_ZONES: dict[str, str] = {
    "AU-NSW": "Australia/Sydney",
    "AU-ACT": "Australia/Sydney",
    "AU-VIC": "Australia/Melbourne",
    "AU-QLD": "Australia/Brisbane",
    "AU-SA": "Australia/Adelaide",
    "AU-WA": "Australia/Perth",
    "AU-TAS": "Australia/Hobart",
    "AU-NT": "Australia/Darwin",
    "MY-12": "Asia/Kuching",
    "MY-13": "Asia/Kuching",
    "MY-15": "Asia/Kuching",
}
# The zone most of a multi-zone country's schools live in, when nothing else tells.
_COUNTRY_MAIN_ZONE: dict[str, str] = {
    "AU": "Australia/Sydney",
    "ID": "Asia/Jakarta",
    "MY": "Asia/Kuala_Lumpur",
    "US": "America/New_York",
    "CN": "Asia/Shanghai",
    "NZ": "Pacific/Auckland",
    "CA": "America/Toronto",
    "RU": "Europe/Moscow",
    "BR": "America/Sao_Paulo",
    "MX": "America/Mexico_City",
    "KZ": "Asia/Almaty",
    "MN": "Asia/Ulaanbaatar",
}


def derive_timezone(
    country: str, region: str | None = None, latitude: float | None = None, longitude: float | None = None
) -> str:
    """IANA zone for a school: the country's only zone, else by region, else the nearest zone
    city to the school's coordinates, else the zone where most of the country lives."""
    zones = _zone_table().get(country)
    if not zones:
        raise ValueError(f"no time zone known for country {country!r}")
    if len(zones) == 1:
        return zones[0][0]
    if region and region in _REGION_ZONES:
        return _REGION_ZONES[region]
    if latitude is not None and longitude is not None:
        return min(zones, key=lambda z: _haversine(latitude, longitude, z[1], z[2]))[0]
    return _COUNTRY_MAIN_ZONE.get(country, zones[0][0])


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))
