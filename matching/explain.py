"""Reasons for a suggestion, machine-readable and in English and Traditional Chinese.

Every reason is computed from the same facts that produced the score (the PairCheck, the
PairScore and the graph adjustments): nothing here looks anything up again, so no reason can
say something the ranking did not use. Reasons are built by their validating constructor: with
pydantic-core it takes under half the time of ``model_construct`` (whose field loop runs in Python),
and a hundred of them are made per request.
"""

from __future__ import annotations

from functools import lru_cache

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


def explain(
    source: School,
    candidate: School,
    check: PairCheck,
    score: PairScore,
    adjustments: list[Adjustment],
    settings: MatchSettings,
) -> list[Reason]:
    """Reasons in order of how much they contributed, graph reasons last."""
    weights = dict(settings.fit)
    total = sum(weights.values()) or 1.0
    share = {name: weights[name] * value / total for name, value in score.forward.components.items()}
    reasons: list[Reason] = []

    shared_sdgs = sorted(set(source.sdgs) & set(candidate.sdgs))
    if shared_sdgs:
        reasons.append(
            Reason(
                code="shared_sdgs",
                weight=share["sdg"],
                data={"sdgs": shared_sdgs},
                text_en="Shared SDG themes: " + _join([f"{g} {sdg_name(g)}" for g in shared_sdgs]),
                text_zh="共同的永續發展目標：" + _join([f"{g} {sdg_name_zh(g)}" for g in shared_sdgs], "、"),
            )
        )
    if candidate.country in source.target_countries:
        reasons.append(
            Reason(
                code="target_country",
                weight=share["target_country"],
                data={"country": candidate.country},
                text_en=f"{country_name(candidate.country)} is one of the countries you are looking for",
                text_zh=f"{country_name_zh(candidate.country)}是貴校希望交流的國家",
            )
        )
    if source.country in candidate.target_countries:
        reasons.append(
            Reason(
                code="wants_your_country",
                weight=score.backward.components["target_country"] * weights["target_country"] / total,
                data={"country": source.country},
                text_en=f"They are looking for a partner in {country_name(source.country)}",
                text_zh=f"對方希望與{country_name_zh(source.country)}的學校交流",
            )
        )
    if check.shared_languages:
        langs = list(check.shared_languages)
        reasons.append(
            Reason(
                code="shared_languages",
                weight=share["language"],
                data={"languages": langs},
                text_en="Exchange languages in common: " + _join([_language(code) for code in langs]),
                text_zh="共同的交流語言：" + _join([_language_zh(code) for code in langs], "、"),
            )
        )
    if check.overlap.hours > 0 and "virtual" in check.usable_modes:
        window = _window(check.overlap, source.timezone)
        assert window is not None
        hours = round(check.overlap.hours, 1)
        hours_text = f"{hours:g}"
        reasons.append(
            Reason(
                code="school_hours",
                weight=share["timezone"],
                data={"hours": hours, "start": window[0], "end": window[1], "timezone": source.timezone},
                text_en=(
                    f"{hours_text} h overlap of school hours: {window[0]}–{window[1]} {_city(source.timezone)} time"
                ),
                text_zh=f"上課時間重疊 {hours_text} 小時：{_city(source.timezone)} 時間 {window[0]}–{window[1]}",
            )
        )
    same_levels = sorted(set(source.levels) & set(candidate.levels))
    level_list = same_levels or sorted(candidate.levels)
    reasons.append(
        Reason(
            code="level",
            weight=share["level"],
            data={"same": bool(same_levels), "levels": level_list},
            text_en=("Same level: " if same_levels else "Adjacent level: ")
            + _join([LEVEL_LABELS[lv][0] for lv in level_list]),
            text_zh=("相同學制：" if same_levels else "相鄰學制：")
            + _join([LEVEL_LABELS[lv][1] for lv in level_list], "、"),
        )
    )
    modes = list(check.usable_modes)
    reasons.append(
        Reason(
            code="modes",
            weight=share["mode"],
            data={"modes": modes},
            text_en="You can do: " + _join([MODE_LABELS[m][0] for m in modes]),
            text_zh="可進行：" + _join([MODE_LABELS[m][1] for m in modes], "、"),
        )
    )
    if candidate.country in NSP_COUNTRIES and source.country == settings.home_country:
        reasons.append(
            Reason(
                code="new_southbound",
                weight=0.0,
                data={"country": candidate.country},
                text_en=f"{country_name(candidate.country)} is a New Southbound Policy country",
                text_zh=f"{country_name_zh(candidate.country)}為新南向政策國家",
            )
        )
    if score.similarity >= SIMILAR_PROFILE:
        reasons.append(
            Reason(
                code="similar_profile",
                weight=share["embedding"],
                data={"similarity": round(score.similarity, 3)},
                text_en=f"Your profiles and descriptions are alike (similarity {score.similarity:.2f})",
                text_zh=f"兩校的簡介與特色相近（相似度 {score.similarity:.2f}）",
            )
        )
    reasons.sort(key=lambda r: -r.weight)
    reasons.extend(adjustment.reason() for adjustment in adjustments)
    return reasons
