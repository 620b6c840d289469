"""Search keys: one folded text per school that a name search matches as a plain substring.

Staff type 台東, 臺東, 台东, "Taitung" or "tai dong" and mean the same schools. A substring match
in SQL cannot know that, so both sides are folded the same way before comparing:

- Chinese is converted to Simplified (OpenCC t2s), which also merges 臺 into 台;
- letters are case-folded and spaces and name punctuation dropped ("SJK(C) Pheng Lok" -> sjkcphenglok);
- the key adds the Hanyu Pinyin of the Chinese name (pypinyin, tones dropped) and the region's
  English and Chinese names (臺東縣 / Taitung County), so Taiwanese schools without an English
  name are found by romanisation and by the county's English name.

The key is computed when a school is written (data.store) and kept in its own column, so a
search is one indexed-or-not LIKE that behaves the same on SQLite and PostgreSQL. Parts are
joined with "|" so a query never matches across two parts.

>>> fold("臺東縣 Taitung")
'台东县taitung'
>>> fold("台東") == fold("臺東") == fold("台东")
True
>>> pinyin("臺東縣立豐里國小")
'taidongxianlifengliguoxiao'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

import opencc
from pypinyin import lazy_pinyin

from data.schema import School
from data.taxonomies import region_name, region_name_zh

SEPARATOR = "|"
# Spaces and the punctuation names are written with or without ("SJK(C)", "St. Mary's", "Kuala-Lumpur");
# other signs (100%, C++) stay, so a search for them still means them.
_DROPPED = re.compile(r"[\s\-_.,'’\"()（）·・、，。]+")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def fold(text: str) -> str:
    """Simplified Chinese, case-folded, without spaces or punctuation (NFKC first, so full-width
    letters and digits fold too)."""
    plain = unicodedata.normalize("NFKC", text)
    if _HAN.search(plain):
        plain = _converter("t2s").convert(plain)
    return _DROPPED.sub("", plain.casefold()).replace(SEPARATOR, "")


def pinyin(text: str) -> str:
    """Hanyu Pinyin of the Chinese characters in text, without tones or spaces ('' if none)."""
    if not _HAN.search(text):
        return ""
    return fold("".join(lazy_pinyin(text, errors="ignore")))


def to_traditional(text: str) -> str:
    """Traditional Chinese as written in Taiwan (OpenCC s2twp), for showing a name on the zh page."""
    return _converter("s2twp").convert(text) if _HAN.search(text) else text


def search_key(names: Iterable[str | None]) -> str:
    """The folded key of a school from its names (and region names): each name folded, plus the
    pinyin of each Chinese name, duplicates dropped, joined with "|"."""
    parts: list[str] = []
    for name in names:
        if not name:
            continue
        for part in (fold(name), pinyin(name)):
            if part and part not in parts:
                parts.append(part)
    return SEPARATOR + SEPARATOR.join(parts) + SEPARATOR


def query_key(q: str) -> str:
    """A search box's text folded like the keys ('' when nothing searchable is left)."""
    return fold(q)


def school_key(school: School) -> str:
    """What a name search matches: the school's names, their pinyin, its region's names, its id."""
    region = [region_name(school.region), region_name_zh(school.region)] if school.region else []
    return search_key([school.name_local, school.name_en, *region, school.id])
