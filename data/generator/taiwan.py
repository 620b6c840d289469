"""Taiwanese schools: where they are, how remote, how big, what they are called and what they speak.

Locations follow the real directory: a school lands in a township or district in proportion to
that district's primary schools in school year 113, takes the district's mix of remoteness
categories (so Taitung, Hualien, Penghu, Kinmen and Lienchiang are mostly remote, Taipei not at
all) and sits near the district's schools (their mean position plus their spread).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

from data.generator.places import TAIWAN_OTHER_TARGETS, TAIWAN_TARGET_WEIGHTS
from data.generator.profiles import Draft, cumulative, weighted_sample
from data.taxonomies import TAIWAN_COUNTIES, Level, Ownership, Remoteness

P, J, S, V = Level.PRIMARY, Level.JUNIOR_HIGH, Level.SENIOR_HIGH, Level.VOCATIONAL_HIGH
REMOTENESS_ORDER = (Remoteness.ORDINARY, Remoteness.REMOTE, Remoteness.VERY_REMOTE, Remoteness.EXTREMELY_REMOTE)

# The school system's shape: about 2,600 primary, 740 junior high and 500 senior high schools.
LEVEL_MIX: tuple[tuple[tuple[Level, ...], float], ...] = (
    ((P,), 0.66),
    ((J,), 0.17),
    ((P, J), 0.02),
    ((S,), 0.06),
    ((J, S), 0.05),
    ((V,), 0.04),
)
_LEVEL_OPTIONS = tuple(levels for levels, _ in LEVEL_MIX)
_LEVEL_WEIGHTS = cumulative([weight for _, weight in LEVEL_MIX])
OWNERSHIP_MIX: dict[tuple[Level, ...], tuple[tuple[Ownership, float], ...]] = {
    (P,): ((Ownership.PUBLIC, 0.985), (Ownership.PRIVATE, 0.015)),
    (J,): ((Ownership.PUBLIC, 0.95), (Ownership.PRIVATE, 0.05)),
    (P, J): ((Ownership.PUBLIC, 0.9), (Ownership.PRIVATE, 0.1)),
    (S,): ((Ownership.PUBLIC, 0.4), (Ownership.NATIONAL, 0.3), (Ownership.PRIVATE, 0.3)),
    (J, S): ((Ownership.PUBLIC, 0.5), (Ownership.NATIONAL, 0.1), (Ownership.PRIVATE, 0.4)),
    (V,): ((Ownership.PUBLIC, 0.2), (Ownership.NATIONAL, 0.4), (Ownership.PRIVATE, 0.4)),
}
# Log-normal enrolment (mean and sd of the log) by level and remoteness; the primary-school
# figures are fitted to the real directory (median 390 ordinary, 58 remote, 37 extremely remote).
SIZE_LOG_PARAMS: dict[Level, tuple[tuple[float, float], ...]] = {
    P: ((5.97, 1.15), (4.06, 0.75), (3.60, 0.90), (3.56, 0.71)),
    J: ((6.40, 0.90), (4.60, 0.70), (4.10, 0.70), (3.90, 0.60)),
    S: ((7.00, 0.60), (5.60, 0.60), (5.20, 0.60), (5.00, 0.60)),
    V: ((6.90, 0.60), (5.70, 0.60), (5.30, 0.60), (5.10, 0.60)),
}
ISLAND_COUNTIES = frozenset({"TW-PEN", "TW-KIN", "TW-LIE"})
COASTAL_SHARE: dict[str, float] = {
    "TW-PEN": 1.0,
    "TW-KIN": 1.0,
    "TW-LIE": 1.0,
    "TW-KEE": 0.8,
    "TW-HUA": 0.6,
    "TW-TTT": 0.6,
    "TW-ILA": 0.5,
    "TW-PIF": 0.5,
    "TW-KHH": 0.3,
    "TW-TNN": 0.3,
    "TW-CYQ": 0.3,
    "TW-YUN": 0.3,
    "TW-CHA": 0.3,
    "TW-HSZ": 0.3,
}
# Counties with indigenous mountain townships: their remote schools often teach indigenous culture.
INDIGENOUS_COUNTIES = frozenset(
    {
        "TW-HUA",
        "TW-TTT",
        "TW-PIF",
        "TW-NAN",
        "TW-HSQ",
        "TW-MIA",
        "TW-TAO",
        "TW-ILA",
        "TW-KHH",
        "TW-CYQ",
        "TW-TXG",
        "TW-NWT",
    }
)
# Languages of new-immigrant families (新住民語文) that schools teach and can exchange in.
NEW_IMMIGRANT_LANGUAGES: tuple[tuple[str, str, float], ...] = (
    ("vi", "VN", 0.05),
    ("id", "ID", 0.03),
    ("th", "TH", 0.015),
)
SPECIAL_MUNICIPALITIES = frozenset({"TW-TPE", "TW-NWT", "TW-TAO", "TW-TXG", "TW-TNN", "TW-KHH"})

# Characters common in school names, with Hanyu Pinyin for the English name.
NAME_CHARACTERS: tuple[tuple[str, str], ...] = (
    ("中", "zhong"),
    ("正", "zheng"),
    ("興", "xing"),
    ("仁", "ren"),
    ("愛", "ai"),
    ("信", "xin"),
    ("義", "yi"),
    ("和", "he"),
    ("平", "ping"),
    ("光", "guang"),
    ("明", "ming"),
    ("華", "hua"),
    ("東", "dong"),
    ("西", "xi"),
    ("南", "nan"),
    ("北", "bei"),
    ("山", "shan"),
    ("海", "hai"),
    ("林", "lin"),
    ("水", "shui"),
    ("大", "da"),
    ("新", "xin"),
    ("忠", "zhong"),
    ("孝", "xiao"),
    ("德", "de"),
    ("文", "wen"),
    ("成", "cheng"),
    ("福", "fu"),
    ("安", "an"),
    ("永", "yong"),
    ("昌", "chang"),
    ("龍", "long"),
    ("鳳", "feng"),
    ("雲", "yun"),
    ("溪", "xi"),
    ("湖", "hu"),
    ("港", "gang"),
    ("埔", "pu"),
    ("田", "tian"),
    ("竹", "zhu"),
    ("美", "mei"),
    ("富", "fu"),
    ("豐", "feng"),
    ("民", "min"),
    ("育", "yu"),
    ("英", "ying"),
    ("建", "jian"),
    ("復", "fu"),
    ("榮", "rong"),
    ("秀", "xiu"),
    ("清", "qing"),
    ("泉", "quan"),
    ("嶺", "ling"),
    ("潭", "tan"),
    ("石", "shi"),
    ("金", "jin"),
    ("長", "chang"),
    ("春", "chun"),
    ("樂", "le"),
    ("勝", "sheng"),
    ("吉", "ji"),
    ("祥", "xiang"),
)
VOCATIONAL_NAMES: tuple[tuple[str, str], ...] = (
    ("高級工業職業學校", "Industrial Vocational High School"),
    ("高級商業職業學校", "Commercial Vocational High School"),
    ("高級農工職業學校", "Agricultural and Industrial Vocational High School"),
    ("高級家事商業職業學校", "Home Economics and Commercial Vocational High School"),
)
MARINE_VOCATIONAL = ("高級海事水產職業學校", "Marine and Fishery Vocational High School")
LEVEL_NAMES: dict[tuple[Level, ...], tuple[str, str]] = {
    (P,): ("國民小學", "Elementary School"),
    (J,): ("國民中學", "Junior High School"),
    (P, J): ("國民中小學", "Elementary and Junior High School"),
    (S,): ("高級中學", "Senior High School"),
    (J, S): ("高級中學", "Senior High School"),
}


@dataclass(frozen=True)
class District:
    county: str  # ISO 3166-2:TW
    name: str
    remoteness_counts: tuple[int, int, int, int]  # ordinary, remote, very remote, extremely remote
    lat: float
    lon: float
    lat_sd: float
    lon_sd: float

    @property
    def schools(self) -> int:
        return sum(self.remoteness_counts)


@cache
def districts() -> tuple[District, ...]:
    """Taiwan's 367 townships and districts that have primary schools, from the shipped table."""
    text = resources.files("data.generator").joinpath("tw_districts.json").read_text(encoding="utf-8")
    return tuple(
        District(county, name, (a, b, c, d), lat, lon, lat_sd, lon_sd)
        for county, name, a, b, c, d, lat, lon, lat_sd, lon_sd in json.loads(text)["rows"]
    )


def _name(
    rng: random.Random, district: District, levels: tuple[Level, ...], ownership: Ownership, coastal: bool
) -> tuple[str, str | None]:
    """Official-style Chinese name (臺北市立中正國民小學) and, for most schools, an English one."""
    county_zh, county_en, _ = TAIWAN_COUNTIES[district.county]
    (c1, p1), (c2, p2) = rng.sample(NAME_CHARACTERS, 2)
    core, romanised = c1 + c2, (p1 + p2).capitalize()
    if rng.random() < 0.15:  # named after its township, as many schools are; no standard romanisation here
        core, romanised = district.name[:-1], ""
    if levels == (V,):
        suffix_zh, suffix_en = MARINE_VOCATIONAL if coastal and rng.random() < 0.3 else rng.choice(VOCATIONAL_NAMES)
    else:
        suffix_zh, suffix_en = LEVEL_NAMES[levels]
    owner_zh = {Ownership.NATIONAL: "國立", Ownership.PRIVATE: f"{county_zh}私立"}.get(ownership, f"{county_zh}立")
    name_local = f"{owner_zh}{core}{suffix_zh}"
    if not romanised or rng.random() < 0.35:
        return name_local, None
    county_short = county_en.split(" (")[0]
    municipal = district.county in SPECIAL_MUNICIPALITIES
    public_en = f"{county_short.removesuffix(' City')} Municipal" if municipal else county_short
    owner_en = {Ownership.NATIONAL: "National", Ownership.PRIVATE: "Private"}.get(ownership, public_en)
    return name_local, f"{owner_en} {romanised} {suffix_en}"


def taiwan_languages(
    rng: random.Random, levels: tuple[Level, ...], remote: bool
) -> tuple[list[str], list[str], list[str]]:
    """Instruction and exchange languages, and the countries the school's families come from."""
    instruction = ["zh"]
    exchange = ["zh"]
    if rng.random() < (0.02 if remote else 0.08):  # bilingual-education schools
        instruction.append("en")
    if "en" in instruction or rng.random() < (0.72 if remote else 0.9):
        exchange.append("en")
    family_countries = []
    for language, country, share in NEW_IMMIGRANT_LANGUAGES:
        if rng.random() < share:
            exchange.append(language)
            family_countries.append(country)
    if rng.random() < (0.12 if {S, V} & set(levels) else 0.03):
        exchange.append("ja")
    if rng.random() < 0.01:
        exchange.append("ko")
    return instruction, exchange, family_countries


_TARGET_COUNTS, _TARGET_COUNT_WEIGHTS = (1, 2, 3), cumulative((0.35, 0.45, 0.2))
_TARGET_CODES = tuple(TAIWAN_TARGET_WEIGHTS)
_TARGET_INDEX_WEIGHTS = {i: TAIWAN_TARGET_WEIGHTS[c] for i, c in enumerate(_TARGET_CODES)}
_OTHER_TARGETS, _OTHER_TARGET_WEIGHTS = tuple(TAIWAN_OTHER_TARGETS), cumulative(list(TAIWAN_OTHER_TARGETS.values()))


def taiwan_targets(rng: random.Random, draft: Draft) -> list[str]:
    """One to three New Southbound countries: those of the school's immigrant families first, then
    drawn with weight toward the busiest partners; and, for some, Japan, Korea or the USA."""
    count = rng.choices(_TARGET_COUNTS, cum_weights=_TARGET_COUNT_WEIGHTS)[0]
    targets = list(draft.extra_targets)
    drawn = (_TARGET_CODES[i] for i in weighted_sample(rng, _TARGET_INDEX_WEIGHTS, len(_TARGET_CODES)))
    targets += [c for c in drawn if c not in targets][: max(0, count - len(targets))]
    if rng.random() < 0.1:
        targets.append(rng.choices(_OTHER_TARGETS, cum_weights=_OTHER_TARGET_WEIGHTS)[0])
    return targets


@cache
def _remoteness_weights(counts: tuple[int, int, int, int]) -> tuple[float, ...]:
    return cumulative(counts)


@cache
def _ownership_weights(levels: tuple[Level, ...]) -> tuple[tuple[Ownership, ...], tuple[float, ...]]:
    return tuple(o for o, _ in OWNERSHIP_MIX[levels]), cumulative([w for _, w in OWNERSHIP_MIX[levels]])


def taiwan_drafts(rng: random.Random, count: int) -> list[Draft]:
    """``count`` synthetic Taiwanese schools, ids tw-g000000 upward."""
    table = districts()
    chosen = rng.choices(table, weights=[d.schools for d in table], k=count)
    drafts = []
    for index, district in enumerate(chosen):
        levels = rng.choices(_LEVEL_OPTIONS, cum_weights=_LEVEL_WEIGHTS)[0]
        remoteness = rng.choices(REMOTENESS_ORDER, cum_weights=_remoteness_weights(district.remoteness_counts))[0]
        if {S, V} & set(levels) and rng.random() < 0.75:  # senior highs sit in towns
            remoteness = Remoteness.ORDINARY
        owners, owner_weights = _ownership_weights(levels)
        ownership = rng.choices(owners, cum_weights=owner_weights)[0]
        coastal = rng.random() < COASTAL_SHARE.get(district.county, 0.15)
        name_local, name_en = _name(rng, district, levels, ownership, coastal)
        mu, sigma = SIZE_LOG_PARAMS[levels[-1]][REMOTENESS_ORDER.index(remoteness)]
        students = int(min(6000, max(3, round(rng.lognormvariate(mu + 0.3 * (len(levels) - 1), sigma)))))
        remote = remoteness != Remoteness.ORDINARY
        instruction, exchange, family_countries = taiwan_languages(rng, levels, remote)
        school_id = f"tw-g{index:06d}"
        county_zh, county_en, _ = TAIWAN_COUNTIES[district.county]
        fields = {
            "id": school_id,
            "name_local": name_local,
            "name_en": name_en,
            "country": "TW",
            "region": district.county,
            "district": district.name,
            "levels": list(levels),
            "ownership": ownership,
            "student_count": students,
            "remoteness": remoteness,
            "latitude": round(rng.gauss(district.lat, district.lat_sd), 5),
            "longitude": round(rng.gauss(district.lon, district.lon_sd), 5),
            "languages_instruction": instruction,
            "languages_exchange": exchange,
            "contact_email": f"exchange@{school_id}.example.org",
            "source": "generator",
        }
        drafts.append(
            Draft(
                fields=fields,
                place_en=f"{county_en}, Taiwan",
                place_zh=f"{county_zh}{district.name}",
                coastal=coastal,
                island=district.county in ISLAND_COUNTIES,
                indigenous_area=remote and district.county in INDIGENOUS_COUNTIES,
                visit_rate=0.3,
                hosting_rate=0.35,
                extra_targets=tuple(family_countries),
            )
        )
    return drafts
