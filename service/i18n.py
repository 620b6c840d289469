"""The staff page in English or Traditional Chinese (Taiwan): gettext catalogs, CLDR names.

Every word the page says is an English msgid, wrapped in `_()` in templates and Python; the
Chinese is in service/locale/zh_Hant_TW/LC_MESSAGES/messages.po (a gettext catalog kept with
Babel: `pybabel extract -F service/locale/babel.cfg -o /tmp/messages.pot service` then
`pybabel update -i /tmp/messages.pot -d service/locale`). The catalog is compiled in memory when
first used, so a clean clone needs no build step; tests/test_i18n.py fails when a message has no
translation. Names come from the data's own taxonomies (countries, SDGs, Taiwan's counties) and
from CLDR through Babel (time zones, languages, list punctuation: 、 in Chinese).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar
from functools import cache
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from babel.core import negotiate_locale
from babel.dates import get_timezone_location
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from data.search import to_traditional
from data.taxonomies import (
    LEVEL_LABELS,
    MODE_LABELS,
    REMOTENESS_ZH,
    ExchangeMode,
    Level,
    Remoteness,
    country_name,
    country_name_zh,
    language_name,
    language_name_zh,
    region_name,
    region_name_zh,
    sdg_name,
    sdg_name_zh,
)
from matching.constraints import RULE_TEXT, Rule

Lang = Literal["en", "zh-TW"]
LANGS: tuple[Lang, ...] = ("en", "zh-TW")
DEFAULT_LANG: Lang = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
CATALOGS: dict[Lang, str] = {"zh-TW": "zh_Hant_TW"}
CLDR: dict[Lang, str] = {"en": "en", "zh-TW": "zh_Hant_TW"}


def N_(message: str) -> str:
    """Marks a message for the catalog (pybabel extract) where it is defined, translated where shown."""
    return message


# The parts of a fit score, by the code matching.engine gives them.
COMPONENTS: dict[str, str] = {
    "target_country": N_("target country"),
    "sdg": N_("shared SDGs"),
    "language": N_("language"),
    "mode": N_("exchange mode"),
    "level": N_("level"),
    "timezone": N_("shared school hours"),
    "embedding": N_("profile similarity"),
}


def rule_text(lang: Lang, codes: Iterable[str]) -> str:
    """Hard rules by code (matching.constraints.Rule) as a sentence: "a school has no room for another partner"."""
    chinese = lang == "zh-TW"
    said = []
    for code in codes:
        try:
            english, chinese_text = RULE_TEXT[Rule(code)]
        except ValueError:
            said.append(code)
            continue
        said.append(chinese_text if chinese else gettext(lang, "a school %(rule)s", rule=english))
    return join(lang, said)


# Hints (embeddings.profile_hints) by how they begin; the page says them in its own words.
HINTS: tuple[tuple[str, str], ...] = (
    (
        "description is empty",
        N_("The description is empty: a few sentences on the school's themes and plans improve matching."),
    ),
    ("description is in Chinese", N_("The description is in Chinese only: an English description improves matching.")),
    ("no SDGs chosen", N_("No SDGs chosen: shared goals are the strongest signal for matching.")),
    ("no exchange languages", N_("No exchange language given: partners are matched on a language both can use.")),
)


def hint_text(lang: Lang, hint: str) -> str | None:
    """A profile hint in the page's language; None for hints the page shows elsewhere (capacity)."""
    for start, message in HINTS:
        if hint.startswith(start):
            return gettext(lang, message)
    return None if hint.startswith("school is at capacity") else hint


# Reasons about shared school hours, by code: said here so the zone has its CLDR name (台灣時間).
HOURS_REASONS: dict[str, str] = {
    "school_hours": N_("%(hours)s h of shared school hours: %(start)s–%(end)s %(zone)s"),
    "group_hours": N_("%(hours)s h of school time shared by all: %(start)s–%(end)s %(zone)s"),
}

# Where a cross-border group's member was found (matching.groups found_via codes).
FOUND_VIA: dict[str, str] = {
    "requester": N_("the school itself"),
    "index": N_("similar profile"),
    "index_any": N_("similar profile, any country"),
    "partner": N_("a partner of the school"),
    "partners_partner": N_("a partner's partner"),
    "bridge": N_("links two clusters of schools"),
}

current_lang: ContextVar[Lang] = ContextVar("current_lang", default=DEFAULT_LANG)


def catalog_path(lang: Lang) -> Path:
    return LOCALE_DIR / CATALOGS[lang] / "LC_MESSAGES" / "messages.po"


@cache
def translations(lang: Lang) -> NullTranslations:
    """The language's messages, compiled from its .po in memory (English is the msgids themselves)."""
    if lang not in CATALOGS:
        return NullTranslations()
    with catalog_path(lang).open("rb") as po:
        catalog = read_po(po, locale=CATALOGS[lang])
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled)


def gettext(lang: Lang, message: str, **values: Any) -> str:
    """`message` in `lang`, with %(name)s placeholders filled."""
    said = translations(lang).gettext(message)
    return said % values if values else said


def negotiate(accept_language: str | None) -> Lang | None:
    """The language an Accept-Language header prefers among ours ("zh-Hant-TW, zh;q=0.8" -> zh-TW)."""
    if not accept_language:
        return None
    weighted: list[tuple[float, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag and weight > 0:
            weighted.append((-weight + position * 1e-6, tag.strip().replace("_", "-")))
    preferred = [tag for _, tag in sorted(weighted)]
    for tag in preferred:  # any Chinese (zh, zh-TW, zh-Hant, zh-HK, zh-CN) reads the Traditional page
        if tag.lower().startswith("zh"):
            return "zh-TW"
        if tag.lower().startswith("en"):
            return "en"
    chosen = negotiate_locale(preferred, ["en", "zh-TW"], sep="-")
    return chosen if chosen in LANGS else None  # type: ignore[return-value]


def join(lang: Lang, items: Iterable[str]) -> str:
    """A list as people write it: "a, b and c" or "a、b和c" (CLDR list patterns)."""
    listed = [str(i) for i in items]
    return format_list(listed, style="standard", locale=CLDR[lang]) if listed else ""


def timezone_name(lang: Lang, zone: str) -> str:
    """A time zone's CLDR name: Asia/Taipei -> "台灣時間" / "Taiwan Time"."""
    try:
        return get_timezone_location(zone, locale=CLDR[lang])
    except (LookupError, ValueError):
        return zone


def school_name(lang: Lang, school: Any) -> str:
    """The name staff of that language read: the local name (Chinese in Traditional script) on the
    zh page, the English or Malay name on the en page, whichever the school has otherwise."""
    local, english = school.name_local, school.name_en
    if lang == "zh-TW":
        return to_traditional(local) if local else (english or school.id)
    return english or local or school.id


def helpers(lang: Lang) -> dict[str, Callable[..., str]]:
    """Functions the templates call to show codes as names in the page's language."""
    chinese = lang == "zh-TW"

    def t(message: str, **values: Any) -> str:
        return gettext(lang, message, **values)

    def country(code: str) -> str:
        return country_name_zh(code) if chinese else country_name(code)

    def region(code: str | None) -> str:
        if not code:
            return ""
        return region_name_zh(code) if chinese else region_name(code)

    def sdg(goal: int) -> str:
        return f"{goal}. {sdg_name_zh(goal) if chinese else sdg_name(goal)}"

    def language(code: str) -> str:
        return language_name_zh(code) if chinese else language_name(code)

    def level(value: str) -> str:
        return LEVEL_LABELS[Level(value)][1 if chinese else 0]

    def mode(value: str) -> str:
        return MODE_LABELS[ExchangeMode(value)][1 if chinese else 0]

    def remoteness(value: str) -> str:
        return REMOTENESS_ZH[Remoteness(value)] if chinese else value.replace("_", " ")

    def said(item: Any) -> str:
        """A reason's (or any text_en/text_zh object's) text in the page's language."""
        field = "text_zh" if chinese else "text_en"
        return str(item[field] if isinstance(item, dict) else getattr(item, field))

    def component(code: str) -> str:
        return t(COMPONENTS[code]) if code in COMPONENTS else code

    def reason(item: Any) -> str:
        """A reason in the page's language; shared school hours name the zone as CLDR does (台灣時間)."""
        data = item["data"] if isinstance(item, dict) else item.data
        code = item["code"] if isinstance(item, dict) else item.code
        if code in HOURS_REASONS and {"hours", "start", "end", "timezone"} <= data.keys():
            return t(
                HOURS_REASONS[code],
                hours=f"{float(data['hours']):g}",
                start=data["start"],
                end=data["end"],
                zone=timezone_name(lang, data["timezone"]),
            )
        return said(item)

    return {
        "t": t,
        "reason": reason,
        "component": component,
        "country": country,
        "region": region,
        "sdg": sdg,
        "language": language,
        "level": level,
        "mode": mode,
        "remoteness": remoteness,
        "said": said,
        "listed": lambda items, show=str: join(lang, map(show, items)),
        "number": lambda value: format_decimal(value, locale=CLDR[lang]),
        # punctuation between words and sentences: full-width in Chinese, with no space between sentences
        "colon": "：" if chinese else ": ",
        "comma": "，" if chinese else ", ",
        "gap": "" if chinese else " ",
        "brackets": (lambda text: f"（{text}）") if chinese else (lambda text: f"({text})"),
        "zone": lambda name: timezone_name(lang, name),
        "name": lambda school: school_name(lang, school),
        "found_via": lambda codes: join(lang, (t(FOUND_VIA[c]) if c in FOUND_VIA else c for c in codes)),
    }


def install(env: Any) -> None:
    """The Jinja2 i18n extension on a template environment, translating into the language of the
    page being rendered (current_lang, set per render)."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(
        gettext=lambda message: translations(current_lang.get()).gettext(message),
        ngettext=lambda one, many, n: translations(current_lang.get()).ngettext(one, many, n),
        newstyle=True,
    )
