"""The English text a profile is encoded from, and hints that tell a school how to improve it.

The text is built only from what the profile says, in a fixed order with display names from
data.taxonomies, so equal profiles give byte-equal texts and the cache can key on a hash of it.
Names, contacts and dates are left out: they say nothing about what an exchange would be about.
"""

from __future__ import annotations

from data.schema import School
from data.taxonomies import (
    LEVEL_LABELS,
    LEVEL_ORDER,
    MODE_LABELS,
    Remoteness,
    country_name,
    language_name,
    region_name,
    sdg_name,
)
from embeddings.chinese import is_chinese, translate_terms

_REMOTENESS_TEXT: dict[Remoteness, str] = {
    Remoteness.REMOTE: "A school in a remote area.",
    Remoteness.VERY_REMOTE: "A school in a very remote area.",
    Remoteness.EXTREMELY_REMOTE: "A school in an extremely remote area.",
}


def description_text(description: str, translate_chinese: bool = True) -> str:
    """What of the description reaches the model (see embeddings.chinese)."""
    if not translate_chinese:
        return description.strip()
    english, _ = translate_terms(description)
    return english


def profile_text(school: School, translate_chinese: bool = True) -> str:
    """Deterministic English text for a school; the description comes last, as the model reads
    the first 256 tokens and the structured part is what every profile has."""
    ordered = sorted(school.levels, key=lambda level: (LEVEL_ORDER[level], level.value))
    levels = " and ".join(LEVEL_LABELS[level][0] for level in ordered)
    region = region_name(school.region) if school.region else None
    place = ", ".join(filter(None, [region, country_name(school.country)]))
    parts = [f"{levels[0].upper()}{levels[1:]} in {place}."]
    if school.remoteness in _REMOTENESS_TEXT:
        parts.append(_REMOTENESS_TEXT[school.remoteness])
    if school.sdgs:
        parts.append("Sustainable Development Goals: " + "; ".join(sdg_name(goal) for goal in school.sdgs) + ".")
    if school.languages_exchange:
        languages = ", ".join(language_name(code) for code in school.languages_exchange)
        parts.append(f"Exchange languages: {languages}.")
    if school.exchange_modes:
        parts.append("Exchange modes: " + ", ".join(MODE_LABELS[mode][0] for mode in school.exchange_modes) + ".")
    if school.target_countries:
        parts.append("Looking for partners in: " + ", ".join(country_name(c) for c in school.target_countries) + ".")
    if description := description_text(school.description, translate_chinese):
        parts.append(f"About the school: {description}")
    return " ".join(parts)


def profile_hints(school: School) -> list[str]:
    """Advice the API shows next to a profile: what the matcher cannot read or does not have."""
    hints: list[str] = []
    description = school.description.strip()
    if not description:
        hints.append("description is empty: a few sentences on the school's themes and exchange plans improve matching")
    elif is_chinese(description):
        _, themes = translate_terms(description)
        recognised = f"recognised themes: {', '.join(themes)}" if themes else "no known themes recognised"
        hints.append(f"description is in Chinese: an English description will improve matching; {recognised}")
    if not school.sdgs:
        hints.append("no SDGs chosen: shared goals are the strongest theme signal for matching")
    if not school.languages_exchange:
        hints.append("no exchange languages given: partners are matched on a language both schools can use")
    return hints
