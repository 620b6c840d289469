"""The hard rules as masks over the profile table: one boolean array per rule, all rows at once.

:func:`rule_masks` is :func:`matching.constraints.check_pair` for one source against every row of
a :class:`~matching.table.ProfileTable`: ``masks[rule][row]`` is True exactly when ``check_pair``
reports ``rule`` for that pair (a property test holds the two to each other on random worlds).
``check_pair`` stays the readable reference; this is what a request runs. The pair's facts the
scores need (shared school hours, usable modes) come out with the masks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import numpy as np

from data.taxonomies import NSP_COUNTRIES, ExchangeMode, Remoteness
from matching.constraints import Rule, SuggestionFilters
from matching.settings import MatchSettings
from matching.table import LEVEL_BIT, LOAD_COLUMNS, MODE_BIT, REMOTENESS_CODE, ProfileTable, Row, bits

VIRTUAL, VISIT, HOSTING = (MODE_BIT[m] for m in (ExchangeMode.VIRTUAL, ExchangeMode.VISIT, ExchangeMode.HOSTING))


WORD = np.dtype("<u8")
"""A word of packed rows: little-endian, so row ``i`` is bit ``i % 64`` of word ``i // 64`` on any host."""


def pack(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as 64-bit words, bit ``i % 64`` of word ``i // 64`` for row ``i`` (the unused
    tail bits 0): or-ing and counting masks of 100k rows word by word reads an eighth of the bytes."""
    packed = np.packbits(mask, bitorder="little")
    words = np.zeros(-(-len(packed) // 8) * 8, dtype=np.uint8)
    words[: len(packed)] = packed
    return words.view(WORD)


def unpack(words: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of words made by :func:`pack`, as a boolean mask."""
    return np.unpackbits(words.view(np.uint8), count=n, bitorder="little").view(bool)


def without_row(words: np.ndarray, row: int | None) -> np.ndarray:
    """Words made by :func:`pack` with one row's bit cleared: the words themselves when it is not
    set (or ``row`` is None), else a copy."""
    if row is None:
        return words
    word, bit = row >> 6, np.uint64(1 << (row & 63))
    if not words[word] & bit:
        return words
    words = words.copy()
    words[word] &= ~bit
    return words


def rows_of(words: np.ndarray, n: int) -> np.ndarray:
    """The rows set in the first ``n`` rows of words made by :func:`pack`, ascending:
    ``np.flatnonzero(unpack(words, n))``, read from the nonzero words only when they are few."""
    at = np.flatnonzero(words)
    if 4 * len(at) > len(words):
        return np.flatnonzero(unpack(words, n))
    found = np.flatnonzero(np.unpackbits(words[at].view(np.uint8), bitorder="little"))
    rows = at[found >> 6] * 64 + (found & 63)
    return rows[rows < n]


@dataclass(frozen=True)
class RuleMasks:
    """Per rule, which rows break it; with the facts the masks were worked out from."""

    violations: dict[Rule, np.ndarray]
    overlap: np.ndarray
    """Shared school hours of the source with each row."""
    common: np.ndarray
    """Modes (bitset) the pair shares from the source's side (my visit needs your hosting)."""
    in_hours: np.ndarray
    """Per row, the modes bits kept in shared hours only: all but virtual where the hours are short."""
    packed: Mapping[Rule, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """(mask, its :func:`pack` words) of the rules whose words are shared between requests; a rule's
    words are used only while ``violations`` holds that very mask (a copy that replaces some masks,
    as rounds do, packs the new ones itself)."""

    @cached_property
    def usable(self) -> np.ndarray:
        """Modes (bitset) the pair can use from the source's side, virtual only in shared hours."""
        return self.common & self.in_hours

    def usable_at(self, rows: np.ndarray | int) -> np.ndarray:
        """:attr:`usable` of some rows only (a request's candidates), without the whole column."""
        return self.common[rows] & self.in_hours[rows]

    @cached_property
    def _words(self) -> np.ndarray:
        """Every rule's mask as words, one row per rule in the order of ``violations``."""
        words = np.empty((len(self.violations), -(-len(self.overlap) // 64)), dtype=WORD)
        for n, (rule, mask) in enumerate(self.violations.items()):
            known = self.packed.get(rule)
            words[n] = known[1] if known is not None and known[0] is mask else pack(mask)
        return words

    @cached_property
    def _broken_words(self) -> np.ndarray:
        return np.bitwise_or.reduce(self._words, axis=0)

    @cached_property
    def broken(self) -> np.ndarray:
        """Rows that break at least one rule."""
        return unpack(self._broken_words, len(self.overlap))

    def passing(self) -> np.ndarray:
        """Rows that break no rule."""
        return unpack(self.passing_words(), len(self.overlap))

    def passing_words(self) -> np.ndarray:
        """:meth:`passing` as words; the tail bits past the last row are set too, so and it with
        words whose tail is clear (any made by :func:`pack`)."""
        return ~self._broken_words

    def eliminated(self, examined: np.ndarray) -> Counter[Rule]:
        """How many of the examined rows each rule removed. A full school is counted as full only
        (the rule a busy network hits most, and the one its other verdicts cannot change)."""
        return self.eliminated_among(pack(examined))

    def eliminated_among(self, examined_words: np.ndarray) -> Counter[Rule]:
        """:meth:`eliminated` of the rows set in ``examined_words`` (words made by :func:`pack`)."""
        rules = list(self.violations)
        at_capacity = rules.index(Rule.AT_CAPACITY)
        full = self._words[at_capacity] & examined_words
        removed = np.bitwise_count(self._words & (examined_words & ~full)).sum(axis=1, dtype=np.int64).tolist()
        removed[at_capacity] = int(np.bitwise_count(full).sum())
        return Counter({rule: n for rule, n in zip(rules, removed, strict=True) if n})

    def broken_among(self, among: np.ndarray, ignore: Collection[Rule] = ()) -> Counter[str] | None:
        """Each rule's count over the ``among`` rows, counted as a scan of those rows in table order
        would (rules in the order a row first breaks them, ``check_pair``'s order within a row); None
        when one of them breaks no rule. ``ignore`` leaves rules out of the verdict."""
        return self.broken_among_words(pack(among), ignore)

    def broken_among_words(self, among_words: np.ndarray, ignore: Collection[Rule] = ()) -> Counter[str] | None:
        """:meth:`broken_among` of the rows set in ``among_words`` (words made by :func:`pack`)."""
        rules = [rule for rule in Rule if rule in self.violations and rule not in ignore]
        row_of_rule = {rule: n for n, rule in enumerate(self.violations)}
        hits = self._words[[row_of_rule[rule] for rule in rules]] & among_words
        if (among_words & ~np.bitwise_or.reduce(hits, axis=0)).any():
            return None
        firsts = []
        for order, n in enumerate(np.bitwise_count(hits).sum(axis=1, dtype=np.int64).tolist()):
            if n:
                word = int(np.flatnonzero(hits[order])[0])
                value = int(hits[order, word])
                firsts.append((64 * word + (value & -value).bit_length() - 1, order, rules[order], n))
        return Counter({rule.value: n for _, _, rule, n in sorted(firsts)})


def shares_any(bitsets: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per row of a 2-D bitset: does it share a bit with ``wanted``? Word by word, only the words
    ``wanted`` uses (one in practice), instead of a temporary as large as the column."""
    found = np.zeros(len(bitsets), dtype=bool)
    for word in np.flatnonzero(wanted[: bitsets.shape[1]]).tolist():
        found |= (bitsets[:, word] & wanted[word]) != 0
    return found


def pair_modes_bits(source_modes: int, modes: np.ndarray) -> np.ndarray:
    """:func:`matching.constraints.pair_modes` as bitsets: my visit needs your hosting."""
    mine = np.uint8(source_modes)
    virtual = modes & (mine & VIRTUAL)
    visit = ((modes & HOSTING) >> 1) & (mine & VISIT)  # your hosting bit moved onto my visit bit
    hosting = ((modes & VISIT) << 1) & (mine & HOSTING)  # your visit bit moved onto my hosting bit
    return virtual | visit | hosting


def rule_masks(
    table: ProfileTable,
    source: Row,
    settings: MatchSettings,
    day: date,
    filters: SuggestionFilters,
    partner_rows: Collection[int],
) -> RuleMasks:
    """Every rule of :func:`check_pair` for ``source`` against every row (see the module docstring).
    ``partner_rows`` are the rows of the source's active partners.

    A rule's mask that depends on one field of the source only (its country, its languages, its
    modes, its time zone, its levels) is the same for every source sharing that value: each is
    worked out once per table snapshot (:meth:`~matching.table.ProfileTable.derived`) and shared
    read-only, so a request computes only what is its own (itself, its partners, its filters)."""
    n = len(table)
    school = source.school
    derived = table.derived
    v: dict[Rule, np.ndarray] = {}
    packed: dict[Rule, tuple[np.ndarray, np.ndarray]] = {}

    def with_words(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return mask, pack(mask)

    def rule(name: Rule, key: object, make: Callable[[], np.ndarray], reads: tuple[str, ...]) -> np.ndarray:
        """A rule's mask shared by every source with the same ``key``, derived with its words from
        the ``reads`` columns."""
        packed[name] = derived(key, lambda: with_words(make()), reads)
        v[name] = packed[name][0]
        return v[name]

    def own(name: Rule, rows: Collection[int]) -> None:
        """A rule only a few rows break (the source itself, its partners): mask and words from them."""
        mask, words = np.zeros(n, dtype=bool), np.zeros(-(-n // 64), dtype=WORD)
        bits_at: dict[int, int] = {}
        for row in rows:
            mask[row] = True
            bits_at[row >> 6] = bits_at.get(row >> 6, 0) | 1 << (row & 63)
        for word, value in bits_at.items():
            words[word] = value
        v[name], packed[name] = mask, (mask, words)

    own(Rule.SAME_SCHOOL, [table.row_of[school.id]] if school.id in table.row_of else [])
    if school.active:
        rule(Rule.INACTIVE, "inactive", lambda: ~table["active"], ("active",))
    else:
        rule(Rule.INACTIVE, "every", lambda: np.ones(n, dtype=bool), ())
    country = table["country"]

    def nothing() -> np.ndarray:
        return np.zeros(n, dtype=bool)

    if source.country >= 0:
        same_country = rule(
            Rule.SAME_COUNTRY, ("same_country", source.country), lambda: country == source.country, ("country",)
        )
    else:
        same_country = rule(Rule.SAME_COUNTRY, "none", nothing, ())
    if settings.scope == "home" and school.country != settings.home_country:
        home = table.countries.code(settings.home_country)
        rule(
            Rule.OUT_OF_SCOPE,
            ("out_of_scope", source.country, home),
            lambda: ~same_country & (country != home),
            ("country",),
        )
    else:
        rule(Rule.OUT_OF_SCOPE, "none", nothing, ())
    rule(
        Rule.NO_SHARED_LANGUAGE,
        ("no_shared_language", source.languages_exchange.tobytes()),
        lambda: ~shares_any(table["languages_exchange"], source.languages_exchange),
        ("languages_exchange",),
    )

    def by_modes() -> tuple[np.ndarray, ...]:
        common = pair_modes_bits(source.modes, table["modes"])
        return (common, *with_words(common == 0), *with_words(common == VIRTUAL))

    common, no_common, no_common_words, virtual_only, virtual_only_words = derived(
        ("modes", source.modes), by_modes, ("modes",)
    )
    overlap = table.overlap_hours(school.timezone, day, settings.school_day_start, settings.school_day_end)

    def by_hours() -> tuple[np.ndarray, ...]:
        short = overlap < settings.min_overlap_hours
        return (*with_words(short), ~(short.view(np.uint8) * np.uint8(VIRTUAL)))

    hours_key = (school.timezone, day, settings.school_day_start, settings.school_day_end, settings.min_overlap_hours)
    short, short_words, in_hours = derived(("hours", *hours_key), by_hours, ("timezone",))
    v[Rule.NO_COMMON_MODE], packed[Rule.NO_COMMON_MODE] = no_common, (no_common, no_common_words)
    v[Rule.NO_SHARED_HOURS] = short & virtual_only
    packed[Rule.NO_SHARED_HOURS] = (v[Rule.NO_SHARED_HOURS], short_words & virtual_only_words)
    allowed = bits((lb for la in school.levels for lb in settings.level_matrix.get(la, [])), LEVEL_BIT)
    rule(Rule.LEVEL_MISMATCH, ("level_mismatch", allowed), lambda: (table["levels"] & allowed) == 0, ("levels",))
    own(Rule.ALREADY_PARTNERS, partner_rows)
    rule(Rule.AT_CAPACITY, "at_capacity", table.full, LOAD_COLUMNS)
    if filters != NO_FILTERS:
        v[Rule.FILTERED] = ~admitted(table, filters, common & in_hours)  # virtual only in shared hours
    else:
        rule(Rule.FILTERED, "none", nothing, ())
    return RuleMasks(v, overlap, common, in_hours, packed)


NO_FILTERS = SuggestionFilters()


def admitted(table: ProfileTable, filters: SuggestionFilters, usable: np.ndarray) -> np.ndarray:
    """:meth:`SuggestionFilters.admits` for every row."""
    ok = np.ones(len(table), dtype=bool)
    country = table["country"]
    if filters.countries:
        ok &= np.isin(country, [table.countries.code(c) for c in filters.countries])
    if filters.regions:
        ok &= np.isin(table["region"], [table.regions.code(r) for r in filters.regions]) & (table["region"] >= 0)
    if filters.sdgs:
        ok &= (table["sdgs"] & bits(filters.sdgs, {g: 1 << g for g in range(1, 18)})) != 0
    if filters.modes:
        ok &= (usable & bits(filters.modes, MODE_BIT)) != 0
    if filters.levels:
        ok &= (table["levels"] & bits(filters.levels, LEVEL_BIT)) != 0
    if filters.new_southbound_only:
        ok &= np.isin(country, [table.countries.code(c) for c in NSP_COUNTRIES])
    if filters.remote_only:
        ok &= table["remoteness"] != REMOTENESS_CODE[Remoteness.ORDINARY]
    return ok
