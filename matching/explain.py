"""Reasons for a suggestion, machine-readable and in English and Traditional Chinese.

Every reason is computed from the same facts that produced the score (the PairCheck, the
PairScore and the graph adjustments): nothing here looks anything up again, so no reason can
say something the ranking did not use. Reasons are built by their validating constructor: with
pydantic-core it takes under half the time of ``model_construct`` (whose field loop runs in Python).
A list shows some ninety reasons, most of them ones an earlier list showed already: those come
from per-process caches (see ``_sdg_reason``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from data.schema import School
from data.taxonomies import (
    LEVEL_LABELS,
    MODE_LABELS,
    NSP_COUNTRIES,
    country_name,
    country_name_zh,
    language_name,
    language_name_zh,
    sdg_name,
    sdg_name_zh,
)
from matching.constraints import PairCheck
from matching.hours import Overlap
from matching.reasons import Reason
from matching.rebalance import Adjustment
from matching.scoring import PairScore
from matching.settings import MatchSettings

SIMILAR_PROFILE = 0.5
"""Profile-vector cosine above which we tell the school the descriptions are alike."""


def _join(items: list[str], sep: str = ", ") -> str:
    return sep.join(items)


def _city(timezone: str) -> str:
    return timezone.rsplit("/", 1)[-1].replace("_", " ")


# A list names the same few languages and windows again and again; the lookups (pycountry, zoneinfo)
# cost far more than the rest of a reason, so each is worked out once per process.
_language = lru_cache(maxsize=1024)(language_name)
_language_zh = lru_cache(maxsize=1024)(language_name_zh)


@lru_cache(maxsize=65536)
def _window(overlap: Overlap, timezone: str) -> tuple[str, str] | None:
    return overlap.local_window(timezone)


def _reason(code: str, weight: float, data: dict[str, Any], texts: tuple[str, str]) -> Reason:
    return Reason(code=code, weight=weight, data=data, text_en=texts[0], text_zh=texts[1])


# A reason follows from its facts and its weight alone, and lists repeat the same few (countries,
# SDG sets, languages, levels, modes, school-hour windows, and weights that are shares of a few
# component values): each distinct reason is built once per process, texts and all, and shared
# by every list that shows it (Reason is frozen). Only the profile similarity is a new value for
# every pair. Building a reason (validation, the string formatting, CJK text above all) cost more
# than the rest of an explanation. The caches hold at most some 45k reasons (~1 kB each).
@lru_cache(maxsize=16384)
def _sdg_reason(sdgs: tuple[int, ...], weight: float) -> Reason:
    texts = (
        "Shared SDG themes: " + _join([f"{g} {sdg_name(g)}" for g in sdgs]),
        "共同的永續發展目標：" + _join([f"{g} {sdg_name_zh(g)}" for g in sdgs], "、"),
    )
    return _reason("shared_sdgs", weight, {"sdgs": list(sdgs)}, texts)


@lru_cache(maxsize=4096)
def _country_reason(code: str, country: str, weight: float) -> Reason:
    """The reasons that name one country: ``code`` says which."""
    if code == "target_country":
        texts = (
            f"{country_name(country)} is one of the countries you are looking for",
            f"{country_name_zh(country)}是貴校希望交流的國家",
        )
    elif code == "wants_your_country":
        texts = (
            f"They are looking for a partner in {country_name(country)}",
            f"對方希望與{country_name_zh(country)}的學校交流",
        )
    else:
        texts = (
            f"{country_name(country)} is a New Southbound Policy country",
            f"{country_name_zh(country)}為新南向政策國家",
        )
    return _reason(code, weight, {"country": country}, texts)


@lru_cache(maxsize=4096)
def _language_reason(languages: tuple[str, ...], weight: float) -> Reason:
    texts = (
        "Exchange languages in common: " + _join([_language(code) for code in languages]),
        "共同的交流語言：" + _join([_language_zh(code) for code in languages], "、"),
    )
    return _reason("shared_languages", weight, {"languages": list(languages)}, texts)


@lru_cache(maxsize=16384)
def _hours_reason(hours: float, window: tuple[str, str], timezone: str, weight: float) -> Reason:
    hours_text, city = f"{hours:g}", _city(timezone)
    texts = (
        f"{hours_text} h overlap of school hours: {window[0]}–{window[1]} {city} time",
        f"上課時間重疊 {hours_text} 小時：{city} 時間 {window[0]}–{window[1]}",
    )
    data = {"hours": hours, "start": window[0], "end": window[1], "timezone": timezone}
    return _reason("school_hours", weight, data, texts)


@lru_cache(maxsize=4096)
def _level_reason(same: bool, levels: tuple[str, ...], weight: float) -> Reason:
    texts = (
        ("Same level: " if same else "Adjacent level: ") + _join([LEVEL_LABELS[lv][0] for lv in levels]),
        ("相同學制：" if same else "相鄰學制：") + _join([LEVEL_LABELS[lv][1] for lv in levels], "、"),
    )
    return _reason("level", weight, {"same": same, "levels": list(levels)}, texts)


@lru_cache(maxsize=4096)
def _mode_reason(modes: tuple[str, ...], weight: float) -> Reason:
    texts = (
        "You can do: " + _join([MODE_LABELS[m][0] for m in modes]),
        "可進行：" + _join([MODE_LABELS[m][1] for m in modes], "、"),
    )
    return _reason("modes", weight, {"modes": list(modes)}, texts)


def explain(
    source: School,
    candidate: School,
    check: PairCheck,
    score: PairScore,
    adjustments: list[Adjustment],
    settings: MatchSettings,
) -> list[Reason]:
    """Reasons in order of how much they contributed, graph reasons last."""
    weights = settings.fit.__dict__  # the fields as stored, read only: dict(settings.fit) walks them in Python
    total = sum(weights.values()) or 1.0
    share = {name: weights[name] * value / total for name, value in score.forward.components.items()}
    reasons: list[Reason] = []

    shared_sdgs = tuple(sorted(set(source.sdgs) & set(candidate.sdgs)))
    if shared_sdgs:
        reasons.append(_sdg_reason(shared_sdgs, share["sdg"]))
    if candidate.country in source.target_countries:
        reasons.append(_country_reason("target_country", candidate.country, share["target_country"]))
    if source.country in candidate.target_countries:
        weight = score.backward.components["target_country"] * weights["target_country"] / total
        reasons.append(_country_reason("wants_your_country", source.country, weight))
    if check.shared_languages:
        reasons.append(_language_reason(tuple(check.shared_languages), share["language"]))
    if check.overlap.hours > 0 and "virtual" in check.usable_modes:
        window = _window(check.overlap, source.timezone)
        assert window is not None
        reasons.append(_hours_reason(round(check.overlap.hours, 1), window, source.timezone, share["timezone"]))
    same_levels = tuple(sorted(set(source.levels) & set(candidate.levels)))
    reasons.append(_level_reason(bool(same_levels), same_levels or tuple(sorted(candidate.levels)), share["level"]))
    reasons.append(_mode_reason(tuple(check.usable_modes), share["mode"]))
    if candidate.country in NSP_COUNTRIES and source.country == settings.home_country:
        reasons.append(_country_reason("new_southbound", candidate.country, 0.0))
    if score.similarity >= SIMILAR_PROFILE:
        reasons.append(
            _reason(
                "similar_profile",
                share["embedding"],
                {"similarity": round(score.similarity, 3)},
                (
                    f"Your profiles and descriptions are alike (similarity {score.similarity:.2f})",
                    f"兩校的簡介與特色相近（相似度 {score.similarity:.2f}）",
                ),
            )
        )
    reasons.sort(key=lambda r: -r.weight)
    reasons.extend(adjustment.reason() for adjustment in adjustments)
    return reasons
