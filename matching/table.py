"""The profile table: one NumPy column per field the hard rules and the scores read.

A request reads these columns for every candidate at once (:mod:`matching.masks`,
:mod:`matching.arrays`) instead of visiting pydantic objects one by one. Set-valued fields
(languages, modes, levels, SDGs, wished countries) are bitsets: languages and countries over a
vocabulary the table grows as profiles arrive, in as many 64-bit words as it needs, so any
alliance's data fits. Live load (active partners, open invitations) and the invitation record are
columns too, so free places and graph factors are array operations.

Atomic swap: a table is never changed in place. Every update (:meth:`ProfileTable.with_school`,
:meth:`with_partners`, :meth:`with_invitations`) returns a new table sharing the unchanged columns,
and the engine swaps its reference once the new one is complete, so a reader holds one
consistent snapshot for its whole request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

import numpy as np

import graph
from data.schema import School
from data.taxonomies import ExchangeMode, Level, Remoteness
from matching.hours import school_hours_overlap

MODE_BIT: dict[ExchangeMode, int] = {ExchangeMode.VIRTUAL: 1, ExchangeMode.VISIT: 2, ExchangeMode.HOSTING: 4}
LEVEL_BIT: dict[Level, int] = {level: 1 << n for n, level in enumerate(Level)}
REMOTENESS_CODE: dict[Remoteness, int] = {r: n for n, r in enumerate(Remoteness)}
HOME_SIDE, FOREIGN_SIDE = 0, 1
SIDE_CODES: dict[str, int] = {"home": HOME_SIDE, "foreign": FOREIGN_SIDE}
"""The engine's side names (its two indexes) and the table's codes for them (the ``side`` column)."""
DERIVED_ENTRIES = 512
"""Derived arrays one table keeps (:meth:`ProfileTable.derived`): at 100k rows 0.1 MB (a mask) to
0.8 MB (an overlap) each."""
Derived = TypeVar("Derived", np.ndarray, tuple[np.ndarray, ...])
MEMO_ENTRIES = 4096
"""Per-request-kind values one table keeps (:meth:`ProfileTable.memo`), such as a source's graph
signals: a few kB each."""
Memo = TypeVar("Memo")


def bits(items: Iterable[Any], table: Mapping[Any, int]) -> int:
    """The bitset of the items a fixed table knows (modes, levels, SDGs).

    >>> bits([ExchangeMode.VIRTUAL, ExchangeMode.HOSTING], MODE_BIT)
    5
    """
    value = 0
    for item in items:
        value |= table[item]
    return value


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per row: summed over the words of a 2-D bitset."""
    counts = np.bitwise_count(values)
    return counts.sum(axis=1, dtype=np.int64) if counts.ndim == 2 else counts.astype(np.int64)


@dataclass(frozen=True)
class Vocabulary:
    """Codes for open-ended values (countries, languages, time zones, regions), in arrival order."""

    codes: dict[str, int] = field(default_factory=dict)

    def code(self, value: str | None) -> int:
        """The value's code, or -1 when the vocabulary does not hold it."""
        return -1 if value is None else self.codes.get(value, -1)

    def grown(self, values: Iterable[str | None]) -> Vocabulary:
        """This vocabulary with any new values appended (self when there are none)."""
        new = [v for v in dict.fromkeys(values) if v is not None and v not in self.codes]
        if not new:
            return self
        codes = dict(self.codes)
        for value in new:
            codes[value] = len(codes)
        return Vocabulary(codes)

    @property
    def words(self) -> int:
        """64-bit words a bitset over this vocabulary needs."""
        return max(1, -(-len(self.codes) // 64))

    def bitset(self, values: Iterable[str], words: int) -> np.ndarray:
        """The values' bitset in ``words`` uint64 words; values the vocabulary lacks are left out."""
        out = np.zeros(words, dtype=np.uint64)
        for value in values:
            code = self.codes.get(value)
            if code is not None and code < 64 * words:
                out[code // 64] |= np.uint64(1) << np.uint64(code % 64)
        return out

    def has_bit(self, bitsets: np.ndarray, value: str) -> np.ndarray:
        """Per row of a 2-D bitset: does it hold ``value``?"""
        code = self.codes.get(value)
        if code is None or code >= 64 * bitsets.shape[1]:
            return np.zeros(len(bitsets), dtype=bool)
        return ((bitsets[:, code // 64] >> np.uint64(code % 64)) & np.uint64(1)).astype(bool)


@dataclass(frozen=True)
class Row:
    """One profile's encoded fields: a candidate row of the table, or an ad-hoc source profile."""

    school: School
    active: bool
    country: int
    region: int
    timezone: int
    languages_exchange: np.ndarray
    languages_instruction: np.ndarray
    modes: int
    levels: int
    sdgs: int
    wished: np.ndarray
    remoteness: int


SCALAR_COLUMNS = ("active", "country", "region", "timezone", "modes", "levels", "sdgs", "remoteness")
SCALAR_TYPES: dict[str, type] = {
    "active": np.bool_,
    "country": np.int32,
    "region": np.int32,
    "timezone": np.int32,
    "modes": np.uint8,
    "levels": np.uint8,
    "sdgs": np.uint32,
    "remoteness": np.int8,
}
BITSET_COLUMNS = {"languages_exchange": "languages", "languages_instruction": "languages", "wished": "countries"}
COUNT_COLUMNS = ("n_modes", "n_sdgs", "n_wished", "capacity", "latitude", "longitude")
LOAD_COLUMNS = ("capacity", "partners", "pending")
INVITATION_COLUMNS = ("pending", "received", "answered", "expired")
"""What free places are worked out from (:meth:`ProfileTable.free_places`)."""


@dataclass(frozen=True)
class ProfileTable:
    """Every known school as one row of columns; see the module docstring for the update contract."""

    home_country: str
    ids: tuple[str, ...]
    row_of: dict[str, int]
    schools: tuple[School, ...]
    countries: Vocabulary
    languages: Vocabulary
    timezones: Vocabulary
    regions: Vocabulary
    columns: dict[str, np.ndarray]
    """Scalar, bitset and count columns named as :class:`Row` and COUNT_COLUMNS, plus the live ones:
    ``partners``, ``pending``, ``received``, ``answered``, ``expired``, ``side`` and ``label``."""
    rows_by_label: tuple[np.ndarray, np.ndarray]
    """Per side (home, foreign): the table row of each index label, -1 for labels no row holds."""
    _derived: dict[object, tuple[np.ndarray | tuple[np.ndarray, ...], frozenset[str] | None]] = field(
        default_factory=dict, compare=False
    )
    """Arrays worked out from the columns on first use (overlaps per time zone, full rows, the rule
    masks of each kind of source), each with the columns it reads; an update hands on to its new
    table those that read no column it changes. Read through :meth:`derived`."""
    _memo: dict[object, Any] = field(default_factory=dict, compare=False)
    """Values for one kind of request worked out on first use (see :meth:`memo`); emptied like ``_derived``."""

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls, schools: Sequence[School], home_country: str, labels: Mapping[str, tuple[int, int]] | None = None
    ) -> ProfileTable:
        """A table of these schools; ``labels`` maps an indexed school's id to (side, index label)."""
        countries = Vocabulary().grown(v for s in schools for v in (s.country, *s.target_countries))
        languages = Vocabulary().grown(v for s in schools for v in (*s.languages_exchange, *s.languages_instruction))
        timezones = Vocabulary().grown(s.timezone for s in schools)
        regions = Vocabulary().grown(s.region for s in schools)
        empty = cls(home_country, (), {}, (), countries, languages, timezones, regions, {}, (_none(), _none()))
        rows = [empty._encoded(s) for s in schools]
        n = len(rows)
        columns: dict[str, np.ndarray] = {
            name: np.fromiter((getattr(r, name) for r in rows), dtype=SCALAR_TYPES[name], count=n)
            for name in SCALAR_COLUMNS
        }
        for name, vocabulary in BITSET_COLUMNS.items():
            words = getattr(empty, vocabulary).words
            columns[name] = np.stack([getattr(r, name) for r in rows]) if rows else np.zeros((0, words), np.uint64)
        for name, values in _counts(schools).items():
            columns[name] = values
        columns["side"] = np.fromiter((s.country != home_country for s in schools), dtype=np.int8, count=n)
        for name in ("partners", "pending", "received", "answered", "expired"):
            columns[name] = np.zeros(n, dtype=np.int32)
        columns["label"] = np.full(n, -1, dtype=np.int64)
        ids = tuple(s.id for s in schools)
        table = _fresh(empty, ids=ids, row_of={id_: n for n, id_ in enumerate(ids)}, schools=tuple(schools))
        table.columns.update(columns)
        return table.with_labels(labels or {})

    def encode(self, school: School) -> Row:
        """The school's fields in this table's codes (values new to the table get no bit); a profile
        the table holds (this very object) read back from its row's columns, which hold exactly that."""
        row = self.row_of.get(school.id)
        if row is None or self.schools[row] is not school:
            return self._encoded(school)
        columns = self.columns
        return Row(
            school=school,
            active=bool(columns["active"][row]),
            country=int(columns["country"][row]),
            region=int(columns["region"][row]),
            timezone=int(columns["timezone"][row]),
            languages_exchange=columns["languages_exchange"][row].copy(),
            languages_instruction=columns["languages_instruction"][row].copy(),
            modes=int(columns["modes"][row]),
            levels=int(columns["levels"][row]),
            sdgs=int(columns["sdgs"][row]),
            wished=columns["wished"][row].copy(),
            remoteness=int(columns["remoteness"][row]),
        )

    def _encoded(self, school: School) -> Row:
        """The school's fields encoded from the profile itself (what its row's columns are written from)."""
        return Row(
            school=school,
            active=school.active,
            country=self.countries.code(school.country),
            region=self.regions.code(school.region),
            timezone=self.timezones.code(school.timezone),
            languages_exchange=self.languages.bitset(school.languages_exchange, self.languages.words),
            languages_instruction=self.languages.bitset(school.languages_instruction, self.languages.words),
            modes=bits(school.exchange_modes, MODE_BIT),
            levels=bits(school.levels, LEVEL_BIT),
            sdgs=bits(school.sdgs, {g: 1 << g for g in range(1, 18)}),
            wished=self.countries.bitset(school.target_countries, self.countries.words),
            remoteness=REMOTENESS_CODE[school.remoteness],
        )

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def free_places(self) -> np.ndarray:
        """Free places of every row: capacity less active partners less open invitations (may be < 0)."""
        return graph.free_places(self["capacity"], self["partners"], self["pending"])

    def derived(self, key: object, make: Callable[[], Derived], reads: Collection[str] | None = None) -> Derived:
        """The array (or tuple of arrays) ``make`` works out from this table's columns, made once per
        table and ``key`` and shared read-only by every reader of this snapshot (pure values of the
        columns). Past :data:`DERIVED_ENTRIES` keys the cache starts afresh, so it stays bounded
        however many kinds of source a long-lived table answers.

        ``reads`` names every column ``make`` reads (``"ids"`` for the ids and their order,
        ``"label"`` for the labels and :attr:`rows_by_label`; values in ``key`` need no naming): an
        update that changes none of them hands the array on to the table it makes, so the first
        request after a live change does not work out every array again. None: any column, the
        array is dropped by every update."""
        entry = self._derived.get(key)
        if entry is None:
            if len(self._derived) >= DERIVED_ENTRIES:
                self._derived.clear()
            found = make()
            for array in found if isinstance(found, tuple) else (found,):
                array.flags.writeable = False
            self._derived[key] = entry = (found, None if reads is None else frozenset(reads))
        return entry[0]

    def memo(self, key: object, make: Callable[[], Memo]) -> Memo:
        """The value ``make`` works out for this snapshot, made once per table and ``key`` and shared
        read-only by its readers: for what depends on state that changes only with the table (the
        engine replaces its table whenever it changes the partnership graph), such as a source's
        graph signals. Past :data:`MEMO_ENTRIES` keys it starts afresh, as :meth:`derived` does."""
        found = self._memo.get(key, _MISSING)
        if found is _MISSING:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            found = self._memo[key] = make()
        return found

    def overlap_hours(self, timezone: str, day: date, start_hour: int, end_hour: int) -> np.ndarray:
        """Shared school hours of a school in ``timezone`` with every row, on ``day``.

        Worked out once per time zone of the vocabulary with :func:`school_hours_overlap` (the
        reference, so daylight saving is the same) and gathered per row."""

        def per_row() -> np.ndarray:
            zones = list(self.timezones.codes)
            by_zone = np.array(
                [school_hours_overlap(timezone, zone, day, start_hour, end_hour).hours for zone in zones] + [0.0]
            )
            return by_zone[self["timezone"]]  # code -1 (no zone) reads the trailing 0.0

        return self.derived(("overlap", timezone, day, start_hour, end_hour), per_row, reads=("timezone",))

    def indexed(self) -> np.ndarray:
        """Rows whose vector is in an index (active schools), worked out once per table."""
        return self.derived("indexed", lambda: self["label"] >= 0, reads=("label",))

    def indexed_on(self, side: int) -> np.ndarray:
        """:meth:`indexed` rows of one side (home or foreign), worked out once per table."""
        return self.derived(("indexed", side), lambda: self.indexed() & (self["side"] == side), reads=("label", "side"))

    def indexed_among(self, sides: Collection[str]) -> np.ndarray:
        """:meth:`indexed` rows on the named sides ("home", "foreign"): the candidates a source
        whose partners may come from those sides examines."""
        codes = {SIDE_CODES[side] for side in sides}
        if len(codes) == 2:
            return self.indexed()
        if not codes:
            return np.zeros(len(self), dtype=bool)
        [side] = codes
        return self.indexed_on(side)

    def id_order(self) -> np.ndarray:
        """Each row's place in id order (ties between equal scores go to the smaller id), worked out
        once per table."""

        def order() -> np.ndarray:
            found = np.empty(len(self), dtype=np.int64)
            found[np.argsort(np.array(self.ids))] = np.arange(len(self))
            return found

        return self.derived("id_order", order, reads=("ids",))

    def full(self) -> np.ndarray:
        """Rows with no free place (the ``at_capacity`` rule), worked out once per table."""
        return self.derived("full", lambda: self.free_places() <= 0, reads=LOAD_COLUMNS)

    # ------------------------------------------------------------------ updates (each returns a new table)

    def with_school(self, school: School, label: tuple[int, int] | None) -> ProfileTable:
        """This table with one profile added or replaced; ``label`` is its (side, index label) or None."""
        countries = self.countries.grown([school.country, *school.target_countries])
        languages = self.languages.grown([*school.languages_exchange, *school.languages_instruction])
        timezones, regions = self.timezones.grown([school.timezone]), self.regions.grown([school.region])
        columns = {name: values.copy() for name, values in self.columns.items()}
        for name, vocabulary in BITSET_COLUMNS.items():
            words = {"languages": languages, "countries": countries}[vocabulary].words
            if columns[name].shape[1] < words:
                grown = np.zeros((len(columns[name]), words), dtype=np.uint64)
                grown[:, : columns[name].shape[1]] = columns[name]
                columns[name] = grown
        row = self.row_of.get(school.id)
        # a new profile changes the ids (nothing is handed on); an edited one every column of its row
        changed = None if row is None else frozenset(columns) | {"label"}
        table = ProfileTable(
            self.home_country,
            self.ids,
            self.row_of,
            self.schools,
            countries,
            languages,
            timezones,
            regions,
            columns,
            self.rows_by_label,
            _handed_on(self, changed),
        )
        if row is None:
            row = len(self.ids)
            table = _fresh(
                table,
                ids=(*self.ids, school.id),
                row_of={**self.row_of, school.id: row},
                schools=(*self.schools, school),
            )
            for name, values in columns.items():
                columns[name] = np.concatenate([values, np.zeros((1, *values.shape[1:]), dtype=values.dtype)])
            columns["label"][row] = -1
        else:
            schools = list(self.schools)
            schools[row] = school
            table = _fresh(table, changed, schools=tuple(schools))
        encoded = table._encoded(school)  # its row's columns are not written yet
        for name in (*SCALAR_COLUMNS, *BITSET_COLUMNS):
            columns[name][row] = getattr(encoded, name)
        for name, values in _counts([school]).items():
            columns[name][row] = values[0]
        columns["side"][row] = school.country != self.home_country
        old = int(columns["label"][row])
        rows_by_label = list(table.rows_by_label)
        if old >= 0:
            side = int(self["side"][row])
            rows_by_label[side] = rows_by_label[side].copy()
            rows_by_label[side][old] = -1
        columns["label"][row] = -1
        table = _fresh(table, changed, rows_by_label=(rows_by_label[0], rows_by_label[1]))
        return table.with_labels({school.id: label} if label else {})

    def with_labels(self, labels: Mapping[str, tuple[int, int]]) -> ProfileTable:
        """Record which index label holds each given school (side, label)."""
        if not labels:
            return self
        columns = dict(self.columns)
        columns["label"] = columns["label"].copy()
        by_side = [self.rows_by_label[0], self.rows_by_label[1]]
        for side in (HOME_SIDE, FOREIGN_SIDE):
            mine = [(self.row_of[id_], label) for id_, (s, label) in labels.items() if s == side]
            if not mine:
                continue
            rows, found = np.array(mine, dtype=np.int64).T
            size = max(len(by_side[side]), int(found.max()) + 1)
            grown = np.full(size, -1, dtype=np.int64)
            grown[: len(by_side[side])] = by_side[side]
            grown[found] = rows
            by_side[side] = grown
            columns["label"][rows] = found
        return _fresh(self, frozenset({"label"}), columns=columns, rows_by_label=(by_side[0], by_side[1]))

    def with_partners(self, counts: Mapping[str, int]) -> ProfileTable:
        """This table with the active-partner counts of the given schools replaced."""
        return self._with_counts({"partners": counts})

    def with_invitations(
        self, pending: Mapping[str, int], history: Mapping[str, graph.InvitationCounts]
    ) -> ProfileTable:
        """This table with every school's open invitations and invitation record replaced."""
        columns = dict(self.columns)
        for name in INVITATION_COLUMNS:
            columns[name] = np.zeros(len(self), dtype=np.int32)
        for id_, n in pending.items():
            if id_ in self.row_of:
                columns["pending"][self.row_of[id_]] = n
        for id_, counts in history.items():
            if id_ in self.row_of:
                row = self.row_of[id_]
                columns["received"][row] = counts.received
                columns["answered"][row] = counts.answered
                columns["expired"][row] = counts.expired
        return _fresh(self, frozenset(INVITATION_COLUMNS), columns=columns)

    def _with_counts(self, changes: Mapping[str, Mapping[str, int]]) -> ProfileTable:
        columns = dict(self.columns)
        for name, counts in changes.items():
            columns[name] = columns[name].copy()
            for id_, n in counts.items():
                if id_ in self.row_of:
                    columns[name][self.row_of[id_]] = n
        return _fresh(self, frozenset(changes), columns=columns)


def _fresh(table: ProfileTable, changed: frozenset[str] | None = None, **changes: Any) -> ProfileTable:
    """A new table with these fields changed: of what was derived from the old one's columns, only
    the arrays that read none of the ``changed`` columns are handed on (None: nothing is), and no memo."""
    return replace(table, _derived=_handed_on(table, changed), _memo={}, **changes)


def _handed_on(table: ProfileTable, changed: frozenset[str] | None) -> dict[object, Any]:
    """The derived entries of ``table`` that an update changing the ``changed`` columns leaves valid."""
    if changed is None:
        return {}
    return {key: entry for key, entry in table._derived.items() if entry[1] is not None and not entry[1] & changed}


_MISSING = object()


def _none() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _counts(schools: Sequence[School]) -> dict[str, np.ndarray]:
    """Per-row numbers as written: list lengths the fit components divide by (so they match the
    reference exactly), capacity, and coordinates (NaN where unknown) for the ranker's distance."""
    n = len(schools)
    return {
        "latitude": np.fromiter((np.nan if s.latitude is None else s.latitude for s in schools), float, count=n),
        "longitude": np.fromiter((np.nan if s.longitude is None else s.longitude for s in schools), float, count=n),
        "n_modes": np.fromiter((len(s.exchange_modes) for s in schools), dtype=np.int32, count=n),
        "n_sdgs": np.fromiter((len(s.sdgs) for s in schools), dtype=np.int32, count=n),
        "n_wished": np.fromiter((len(s.target_countries) for s in schools), dtype=np.int32, count=n),
        "capacity": np.fromiter((s.capacity for s in schools), dtype=np.int32, count=n),
    }
