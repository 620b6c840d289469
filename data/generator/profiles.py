"""What a school wants from an exchange: goals, topics, modes, capacity, months and its own words.

Shared by Taiwanese and foreign schools, synthetic and real: a draft carries what is known about
the school (where it is, its levels, size, languages) and ``complete_profile`` adds the interests
the way a school administrator would fill them in. The description names the school's real
interests (its SDGs by name, its topics, languages and activities), so a text model has something
true to read; about one Taiwanese school in six writes it in Traditional Chinese only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cache
from itertools import accumulate
from typing import Any

from data.taxonomies import (
    HOME_COUNTRY_DEFAULT,
    LEVEL_LABELS,
    ExchangeMode,
    Level,
    Remoteness,
    country_name,
    country_name_zh,
    language_name,
    language_name_zh,
    sdg_name,
    sdg_name_zh,
)

HOME = HOME_COUNTRY_DEFAULT
CHINESE_ONLY_SHARE = 0.17  # Taiwanese schools whose description is in Traditional Chinese only

# How often each goal is picked before local flavour: education, climate and health lead in
# school exchange programmes, then cities, oceans and consumption.
SDG_BASE_WEIGHTS: dict[int, float] = {
    4: 0.20,
    13: 0.13,
    3: 0.10,
    11: 0.08,
    14: 0.08,
    12: 0.08,
    15: 0.06,
    6: 0.04,
    5: 0.04,
    7: 0.04,
    10: 0.03,
    2: 0.03,
    17: 0.03,
    1: 0.02,
    16: 0.02,
    9: 0.02,
    8: 0.01,
}


@dataclass(frozen=True)
class Topic:
    sdg: int
    en: str
    zh: str


# What classes actually do under each goal. A school's topics are hidden causes of its
# partnerships (schools on the same topic get on), visible only in its description.
TOPICS: tuple[Topic, ...] = (
    Topic(4, "reading for pleasure", "閱讀推廣"),
    Topic(4, "bilingual lessons", "雙語教學"),
    Topic(4, "coding and computational thinking", "程式設計"),
    Topic(4, "English conversation", "英語口說"),
    Topic(4, "STEAM projects", "STEAM教育"),
    Topic(13, "climate change education", "氣候變遷教育"),
    Topic(13, "tracking our carbon footprint", "碳足跡計算"),
    Topic(13, "weather and disaster readiness", "防災教育"),
    Topic(3, "healthy school lunches", "健康飲食"),
    Topic(3, "sports and traditional games", "體育與傳統遊戲"),
    Topic(3, "mental well-being", "心理健康"),
    Topic(11, "local culture and heritage", "在地文化"),
    Topic(11, "mapping our neighbourhood", "社區踏查"),
    Topic(11, "indigenous culture", "原住民族文化"),
    Topic(14, "ocean conservation", "海洋教育"),
    Topic(14, "beach clean-ups", "淨灘行動"),
    Topic(14, "coral reef and tide-pool surveys", "潮間帶生態調查"),
    Topic(12, "recycling and upcycling", "資源回收"),
    Topic(12, "plastic-free lunches", "減塑生活"),
    Topic(15, "forest ecology", "森林生態"),
    Topic(15, "birdwatching", "賞鳥"),
    Topic(15, "school gardens", "校園植物"),
    Topic(2, "food and farming education", "食農教育"),
    Topic(6, "river protection", "河川保育"),
    Topic(6, "saving water", "節約用水"),
    Topic(7, "solar energy", "太陽能"),
    Topic(7, "energy saving", "節能減碳"),
    Topic(5, "gender equality education", "性別平等教育"),
    Topic(10, "multicultural education", "多元文化教育"),
    Topic(10, "new immigrant languages", "新住民語文"),
    Topic(16, "children's rights", "兒童權利"),
    Topic(16, "student councils", "學生自治"),
    Topic(17, "global citizenship", "國際教育"),
    Topic(1, "community service", "服務學習"),
    Topic(8, "career exploration", "職涯探索"),
    Topic(8, "young entrepreneurs", "創業教育"),
    Topic(9, "robotics", "機器人"),
    Topic(9, "maker education", "自造教育"),
)
INDIGENOUS_TOPIC = next(i for i, t in enumerate(TOPICS) if t.en == "indigenous culture")
NEW_IMMIGRANT_TOPIC = next(i for i, t in enumerate(TOPICS) if t.en == "new immigrant languages")
# Topics any school may pick under a goal; the two Taiwanese ones go only to the schools they fit.
TOPICS_BY_SDG: dict[int, tuple[int, ...]] = {
    goal: tuple(i for i, t in enumerate(TOPICS) if t.sdg == goal and i not in (INDIGENOUS_TOPIC, NEW_IMMIGRANT_TOPIC))
    for goal in SDG_BASE_WEIGHTS
}

ACTIVITIES: dict[ExchangeMode, tuple[tuple[str, str], ...]] = {
    ExchangeMode.VIRTUAL: (
        ("video calls between classes", "視訊交流"),
        ("a joint online project", "線上共學專題"),
        ("exchanging letters, videos and postcards", "書信與明信片交流"),
        ("co-teaching a few lessons online", "線上協同教學"),
        ("an online science fair", "線上科展"),
        ("sharing our festivals over video", "節慶文化線上分享"),
        ("a pen-pal programme", "筆友計畫"),
    ),
    ExchangeMode.VISIT: (
        ("a study visit to our partner", "出訪交流"),
        ("taking a student group abroad", "海外教育旅行"),
    ),
    ExchangeMode.HOSTING: (
        ("hosting a visiting student group", "接待來訪師生"),
        ("welcoming partner students into our classes", "入班交流"),
    ),
}

_NORTH_MONTHS = (0.3, 0.3, 1.0, 1.0, 1.0, 0.5, 0.8, 0.8, 0.5, 1.0, 1.0, 0.6)
_SOUTH_MONTHS = (0.1, 0.8, 1.0, 0.6, 1.0, 0.8, 0.4, 1.0, 1.0, 0.6, 1.0, 0.2)
_CAPACITY_WEIGHTS = tuple(accumulate((0.12, 0.25, 0.27, 0.17, 0.11, 0.08)))  # capacity 1..6


@dataclass
class Draft:
    """A school before its interests are filled in: what a directory would tell about it."""

    fields: dict[str, Any]  # School keyword arguments known so far
    place_en: str  # where it is, for its description
    place_zh: str = ""
    coastal: bool = False
    island: bool = False
    indigenous_area: bool = False
    visit_rate: float = 0.3
    hosting_rate: float = 0.4
    sdg_boost: dict[int, float] = field(default_factory=dict)
    southern_hemisphere: bool = False
    real_fields: frozenset[str] = frozenset()  # fields read from a real directory
    extra_targets: tuple[str, ...] = ()  # countries the school is drawn to (its families' languages)
    topic_mask: int = 0  # filled by complete_profile; a hidden cause of partnerships


def cumulative(weights: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Cumulative weights for ``random.choices``, computed once rather than on every draw."""
    return tuple(accumulate(weights))


def weighted_sample(rng: random.Random, weights: dict[int, float], k: int) -> list[int]:
    """k distinct keys drawn in proportion to their weights without replacement, in one pass
    (Efraimidis and Spirakis: the k largest log(u) / weight)."""
    keys = {key: math.log(1.0 - rng.random()) / weight for key, weight in weights.items() if weight > 0}
    return sorted(keys, key=keys.__getitem__, reverse=True)[:k]


_country_name, _country_name_zh = cache(country_name), cache(country_name_zh)
_language_name, _language_name_zh = cache(language_name), cache(language_name_zh)
_SDG_COUNTS, _SDG_COUNT_WEIGHTS = (1, 2, 3), cumulative((0.3, 0.45, 0.25))
_CAPACITIES = tuple(range(1, 7))


def draw_sdgs(rng: random.Random, draft: Draft) -> list[int]:
    weights = dict(SDG_BASE_WEIGHTS)
    levels = set(draft.fields["levels"])
    remoteness = draft.fields.get("remoteness", Remoteness.ORDINARY)
    boosts: dict[int, float] = dict(draft.sdg_boost)
    if draft.coastal:
        boosts[14] = boosts.get(14, 1.0) * 3.0
    if remoteness != Remoteness.ORDINARY:
        for goal, factor in ((15, 1.6), (2, 1.6), (10, 1.3)):
            boosts[goal] = boosts.get(goal, 1.0) * factor
    if Level.VOCATIONAL_HIGH in levels:
        for goal, factor in ((8, 3.0), (9, 2.5), (7, 1.5)):
            boosts[goal] = boosts.get(goal, 1.0) * factor
    for goal, factor in boosts.items():
        weights[goal] *= factor
    count = rng.choices(_SDG_COUNTS, cum_weights=_SDG_COUNT_WEIGHTS)[0]
    return sorted(weighted_sample(rng, weights, count))


def draw_topics(rng: random.Random, draft: Draft, sdgs: list[int]) -> list[int]:
    topics = [rng.choice(TOPICS_BY_SDG[goal]) for goal in sdgs]
    if draft.indigenous_area and rng.random() < 0.5:
        topics.append(INDIGENOUS_TOPIC)
    taiwanese = draft.fields["country"] == HOME
    if taiwanese and (draft.extra_targets or (10 in sdgs and rng.random() < 0.5)):  # 新住民語文 is taught in Taiwan
        topics.append(NEW_IMMIGRANT_TOPIC)
    unique = list(dict.fromkeys(topics))
    return unique[: rng.choice((1, 2, 2, 3))]


def draw_modes(rng: random.Random, draft: Draft) -> list[ExchangeMode]:
    """Almost everyone meets online; visits and hosting are rarer, and rarer still for remote schools."""
    remote = draft.fields.get("remoteness", Remoteness.ORDINARY) != Remoteness.ORDINARY
    in_person = 0.5 if remote else 1.0
    modes = [ExchangeMode.VIRTUAL] if rng.random() < 0.97 else []
    if rng.random() < draft.visit_rate * in_person:
        modes.append(ExchangeMode.VISIT)
    if rng.random() < draft.hosting_rate * in_person:
        modes.append(ExchangeMode.HOSTING)
    return modes or [ExchangeMode.VIRTUAL]


def draw_capacity(rng: random.Random, students: int | None) -> int:
    capacity = rng.choices(_CAPACITIES, cum_weights=_CAPACITY_WEIGHTS)[0]
    if students is not None and students > 800 and rng.random() < 0.4:
        capacity += 1
    if students is not None and students < 60 and rng.random() < 0.4:
        capacity -= 1
    return min(6, max(1, capacity))


def draw_months(rng: random.Random, draft: Draft, modes: list[ExchangeMode]) -> list[int]:
    """Months that suit a visit: only schools that travel or host name them, and not all do."""
    if modes == [ExchangeMode.VIRTUAL] or rng.random() < 0.2:
        return []
    weights = dict(enumerate(_SOUTH_MONTHS if draft.southern_hemisphere else _NORTH_MONTHS, start=1))
    return sorted(weighted_sample(rng, weights, rng.choice((1, 2, 2, 3, 4))))


def draw_group_size(rng: random.Random, draft: Draft, modes: list[ExchangeMode]) -> int | None:
    if modes == [ExchangeMode.VIRTUAL]:
        return None
    older = bool({Level.SENIOR_HIGH, Level.VOCATIONAL_HIGH} & set(draft.fields["levels"]))
    size = round(rng.gauss(24 if older else 16, 7))
    students = draft.fields.get("student_count")
    upper = max(3, min(60, students // 2)) if students else 60
    return min(upper, max(3, size))


def _join(items: list[str], word: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _level_label_en(levels: list[Level]) -> str:
    ordered = sorted(set(levels), key=list(Level).index)
    if ordered == [Level.PRIMARY]:
        return "primary school"
    if Level.PRIMARY in ordered and len(ordered) > 1:
        return "school for primary and secondary students" if len(ordered) > 2 else "primary and junior high school"
    if ordered == [Level.JUNIOR_HIGH, Level.SENIOR_HIGH]:
        return "secondary school"
    return LEVEL_LABELS[ordered[-1]][0]


def _level_label_zh(levels: list[Level]) -> str:
    ordered = sorted(set(levels), key=list(Level).index)
    if ordered == [Level.PRIMARY, Level.JUNIOR_HIGH]:
        return "國中小"
    if ordered == [Level.JUNIOR_HIGH, Level.SENIOR_HIGH]:
        return "完全中學"
    return LEVEL_LABELS[ordered[-1]][1]


def _size_word(students: int | None) -> str:
    if students is None:
        return ""
    if students < 60:
        return "tiny "
    if students < 200:
        return "small "
    if students > 1500:
        return "large "
    return ""


def _targets_en(targets: list[str]) -> str:
    return _join([_country_name(c) for c in targets], "or")


def describe_en(rng: random.Random, draft: Draft, profile: dict[str, Any], topics: list[int]) -> str:
    """A few sentences in English, assembled from varied templates around the school's real interests."""
    f = profile
    name = f.get("name_en")
    level = _level_label_en(f["levels"])
    students = f.get("student_count")
    remoteness = f.get("remoteness", Remoteness.ORDINARY)
    if draft.island:
        setting = " on an outlying island"
    elif remoteness == Remoteness.EXTREMELY_REMOTE:
        setting = " in one of the most remote villages of the county"
    elif remoteness in (Remoteness.REMOTE, Remoteness.VERY_REMOTE):
        setting = " in a rural, remote area"
    else:
        setting = ""
    size = _size_word(students)
    count = f" with about {students} students" if students else ""
    openings = [
        f"We are a {size}{level} in {draft.place_en}{setting}.",
        f"Our {level} serves families in {draft.place_en}{setting}{count}.",
    ]
    if name:
        openings += [
            f"{name} is a {size}{level} in {draft.place_en}{setting}{count}.",
            f"Located in {draft.place_en}{setting}, {name} is a {level}{count}.",
        ]
    goals = _join([sdg_name(g) for g in f["sdgs"]])
    topic_words = _join([TOPICS[t].en for t in topics])
    goal_clause = "goal we work on is" if len(f["sdgs"]) == 1 else "goals we work on are"
    interests = (
        f"Our school focuses on {goals}, with class projects on {topic_words}.",
        f"Sustainability matters to us, especially {goals}; this year students work on {topic_words}.",
        f"Our students are passionate about {topic_words}, as part of our work for {goals}.",
        f"We are known for {topic_words}, and we care about {goals}.",
        f"The UN {goal_clause} {goals}. Our teachers lead projects on {topic_words}.",
    )
    instruction = [_language_name(code) for code in f["languages_instruction"]]
    exchange = [_language_name(code) for code in f["languages_exchange"]]
    practised = [_language_name(c) for c in f["languages_exchange"] if c not in f["languages_instruction"]]
    language_lines = [
        f"Lessons are taught in {_join(instruction)}, and we can run an exchange in {_join(exchange, 'or')}.",
        f"Our students would love to practise {_join(practised)} with partner schools."
        if practised
        else f"We would love to share {_join(instruction)} and our culture with partner schools.",
    ]
    if f["country"] != HOME and "zh" in practised and rng.random() < 0.7:
        language_lines = ["Our students learn Mandarin and would love to practise it with friends in Taiwan."]
    if f["country"] == HOME and draft.extra_targets:
        families = _join([_language_name(code) for code in f["languages_exchange"] if code not in ("zh", "en")])
        if families:
            language_lines = [f"Many of our families speak {families}, which we teach as a new immigrant language."]
    activity_pool = [act for mode in f["exchange_modes"] for act in ACTIVITIES[mode]]
    activities = _join([a for a, _ in rng.sample(activity_pool, min(2, len(activity_pool)))])
    where = f"in {_targets_en(f['target_countries'])}" if f["target_countries"] else "abroad"
    closings = (
        f"We would like to start {activities} with a partner school {where}.",
        f"We are looking for partners {where} for {activities}.",
        f"We hope to find a school {where} and begin with {activities}.",
    )
    sentences = [rng.choice(openings), rng.choice(interests), rng.choice(language_lines), rng.choice(closings)]
    if rng.random() < 0.4:
        sentences.insert(
            2,
            rng.choice(
                (
                    f"Every class takes part in {TOPICS[topics[0]].en}.",
                    f"Parents and the local community often join our activities on {TOPICS[topics[-1]].en}.",
                    "Our teachers have experience with online lessons and international projects.",
                    "We are new to international exchange and keen to learn.",
                )
            ),
        )
    return " ".join(sentences)


def describe_zh(rng: random.Random, draft: Draft, profile: dict[str, Any], topics: list[int]) -> str:
    """The same content as a Taiwanese school would write it in Traditional Chinese."""
    f = profile
    level = _level_label_zh(f["levels"])
    remote = {Remoteness.REMOTE: "偏遠", Remoteness.VERY_REMOTE: "特偏", Remoteness.EXTREMELY_REMOTE: "極偏"}.get(
        f.get("remoteness", Remoteness.ORDINARY), ""
    )
    students = f.get("student_count")
    count = f"，全校約{students}名學生" if students else ""
    goals = "、".join(sdg_name_zh(g) for g in f["sdgs"])
    topic_words = "、".join(TOPICS[t].zh for t in topics)
    targets = "、".join(_country_name_zh(c) for c in f["target_countries"]) or "國外"
    activity_pool = [zh for mode in f["exchange_modes"] for _, zh in ACTIVITIES[mode]]
    activities = "與".join(rng.sample(activity_pool, min(2, len(activity_pool))))
    exchange = "、".join(_language_name_zh(code) for code in f["languages_exchange"])
    openings = (
        f"本校位於{draft.place_zh}，是一所{remote}{level}{count}。",
        f"我們是{draft.place_zh}的{remote}{level}{count}。",
    )
    interests = (
        f"學校推動{topic_words}，重視{goals}。",
        f"我們以{goals}為主軸，發展{topic_words}課程。",
        f"本校長期推動{topic_words}，呼應永續發展目標：{goals}。",
    )
    closings = (
        f"希望與{targets}的學校透過{activities}建立夥伴關係，交流語言可用{exchange}。",
        f"期待和{targets}的夥伴學校進行{activities}，讓學生用{exchange}認識世界。",
    )
    sentences = [rng.choice(openings), rng.choice(interests), rng.choice(closings)]
    if "en" in f["languages_exchange"] and rng.random() < 0.6:
        sentences.insert(2, "也希望藉由國際交流提升學生英語溝通能力。")
    return "".join(sentences)


def complete_profile(rng: random.Random, draft: Draft, target_countries: list[str]) -> dict[str, Any]:
    """The draft's fields plus interests, modes, capacity, months and description, as School kwargs."""
    profile = dict(draft.fields)
    sdgs = draw_sdgs(rng, draft)
    profile["sdgs"] = sdgs
    topics = draw_topics(rng, draft, sdgs)
    draft.topic_mask = sum(1 << t for t in topics)
    modes = draw_modes(rng, draft)
    profile["exchange_modes"] = modes
    profile["target_countries"] = target_countries
    profile["capacity"] = draw_capacity(rng, profile.get("student_count"))
    profile["visit_group_size"] = draw_group_size(rng, draft, modes)
    profile["preferred_months"] = draw_months(rng, draft, modes)
    chinese_only = profile["country"] == HOME and rng.random() < CHINESE_ONLY_SHARE
    write = describe_zh if chinese_only else describe_en
    profile["description"] = write(rng, draft, profile, topics)
    return profile
