"""How partnerships arise: a month-by-month simulation of Taiwanese schools choosing partners.

The process is described in full in the package docstring (data.generator); this module is its
implementation. It is vectorised per month with numpy so that 100,000 schools take seconds: each
month a batch of Taiwanese schools looks for a partner at once, and the network (degrees,
partner lists, free capacity) is updated between months.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from data.schema import Partnership, PartnershipOrigin, School
from data.taxonomies import HOME_COUNTRY_DEFAULT, LEVEL_ORDER, ExchangeMode

MODE_BITS: dict[ExchangeMode, int] = {ExchangeMode.VIRTUAL: 1, ExchangeMode.VISIT: 2, ExchangeMode.HOSTING: 4}
_VIRTUAL, _VISIT, _HOSTING = 1, 2, 4


class PartnershipProcess(BaseModel):
    """The mixture weights and rates of the partnership process, with their defaults.

    Scores are on a log-odds scale: a Taiwanese school picks, among its candidates, the one with
    the highest ``affinity_weight * affinity + popularity_weight * log(1 + partners) +
    friend_of_friend_weight * [reached through the network] + noise * Gumbel``, which is a draw
    from the softmax of the deterministic part with temperature ``noise``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    partnerships_per_taiwanese_school: float = Field(
        2.5, ge=0, le=50, description="Partnerships started over the whole period, per Taiwanese school"
    )
    # The mixture.
    affinity_weight: float = Field(1.0, ge=0, description="Weight of profile affinity (the sum below)")
    popularity_weight: float = Field(
        0.7, ge=0, description="Weight of log(1 + partners so far): preferential attachment"
    )
    friend_of_friend_weight: float = Field(
        0.8, ge=0, description="Bonus for a partner of a school that one's own partners work with"
    )
    noise: float = Field(1.0, gt=0, description="Scale of the Gumbel noise: the temperature of the choice")
    # Profile affinity: what makes two schools a good pair.
    shared_sdg: float = Field(1.5, description="Per Sustainable Development Goal both schools pursue")
    shared_topic: float = Field(1.0, description="Per class topic both describe (only visible in descriptions)")
    target_country: float = Field(1.2, description="The partner's country is one the Taiwanese school targets")
    wants_taiwan: float = Field(0.5, description="The partner asks for Taiwan (or states no preference)")
    shared_local_language: float = Field(0.8, description="They share an exchange language other than English")
    no_common_language: float = Field(3.0, ge=0, description="Penalty when they share no exchange language at all")
    same_level: float = Field(1.5, description="They teach a common level")
    adjacent_level: float = Field(0.5, description="Their levels are adjacent (primary and junior high)")
    visit_hosting_match: float = Field(0.3, description="One visits and the other hosts")
    # Where candidates come from (shares of the candidate pool).
    candidates: int = Field(48, ge=4, le=512, description="Schools a Taiwanese school considers per search")
    from_target_countries: float = Field(0.4, ge=0, description="Share drawn from its target countries")
    from_popular: float = Field(0.2, ge=0, description="Share drawn in proportion to partners so far")
    from_friends_of_friends: float = Field(0.15, ge=0, description="Share drawn through the partner network")
    # Capacity and time.
    capacity_slack: float = Field(
        0.05, ge=0, le=1, description="Chance that a school already at capacity takes one more partner"
    )
    yearly_growth: float = Field(0.15, ge=0, le=2, description="Yearly growth rate of new partnerships and members")
    initial_member_share: float = Field(0.4, ge=0, le=1, description="Share of schools already members at the start")
    median_duration_years: float = Field(3.0, gt=0, description="Median length of a partnership (log-normal)")
    in_person_pause: tuple[date, date] | None = Field(
        (date(2020, 3, 1), date(2022, 10, 1)),
        description="Borders closed: projects started in this window are virtual only",
    )

    @model_validator(mode="after")
    def _shares(self) -> PartnershipProcess:
        if self.from_target_countries + self.from_popular + self.from_friends_of_friends > 1:
            raise ValueError("from_target_countries + from_popular + from_friends_of_friends: must not exceed 1")
        return self


def period_boundaries(start: date, end: date) -> np.ndarray:
    """Day ordinals of [start, first of each following month..., end]: the simulation's months."""
    bounds = [start.toordinal()]
    year, month = start.year, start.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        first = date(year, month, 1)
        if first >= end:
            break
        bounds.append(first.toordinal())
    bounds.append(end.toordinal())
    return np.asarray(bounds, dtype=np.int64)


def growth_weights(boundaries: np.ndarray, yearly_growth: float) -> np.ndarray:
    """Each month's share of the activity: its length times exponential growth from the start."""
    lengths = np.diff(boundaries).astype(float)
    middle_years = (boundaries[:-1] + lengths / 2 - boundaries[0]) / 365.25
    weights = lengths * np.exp(yearly_growth * middle_years)
    return weights / weights.sum()


def _bits(mask: int) -> list[int]:
    return [bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """For each element, how many equal keys come before it (0 for the first of its kind)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    index = np.arange(len(keys))
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if len(keys) else np.zeros(0, dtype=bool)
    group_start = np.maximum.accumulate(np.where(starts, index, 0)) if len(keys) else index
    ranks = np.empty_like(index)
    ranks[order] = index - group_start
    return ranks


class _Side:
    """Numeric features of one side (Taiwanese or foreign schools), in the order given."""

    def __init__(
        self,
        schools: Sequence[School],
        topics: Sequence[int],
        languages: dict[str, int],
        countries: dict[str, int],
        boundaries: np.ndarray,
    ) -> None:
        self.size = len(schools)
        self.sdg = np.array([sum(1 << g for g in s.sdgs) for s in schools], dtype=np.int64)
        self.topic = np.array(topics, dtype=np.uint64)
        self.language = np.array(
            [sum(1 << languages[code] for code in s.languages_exchange) for s in schools], dtype=np.uint64
        )
        orders = [[LEVEL_ORDER[level] for level in s.levels] for s in schools]
        self.level_low = np.array([min(o) for o in orders], dtype=np.int64)
        self.level_high = np.array([max(o) for o in orders], dtype=np.int64)
        self.mode = np.array([sum(MODE_BITS[m] for m in s.exchange_modes) for s in schools], dtype=np.int64)
        self.capacity = np.array([s.capacity for s in schools], dtype=np.int64)
        joined = np.array([s.created_at.date().toordinal() for s in schools], dtype=np.int64)
        self.join_period = np.searchsorted(boundaries, joined, side="right") - 1
        self.country = np.array([countries.get(s.country, -1) for s in schools], dtype=np.int64)
        self.wants_taiwan = np.array(
            [not s.target_countries or HOME_COUNTRY_DEFAULT in s.target_countries for s in schools], dtype=bool
        )
        targets = [[countries[c] for c in s.target_countries if c in countries] for s in schools]
        width = max((len(t) for t in targets), default=0) or 1
        self.targets = np.full((self.size, width), -1, dtype=np.int64)
        for row, codes in enumerate(targets):
            self.targets[row, : len(codes)] = codes
        self.target_count = np.array([len(t) for t in targets], dtype=np.int64)
        self.target_mask = np.array([sum(1 << c for c in t) for t in targets], dtype=np.int64)


class _Adjacency:
    """Partner lists padded with -1, widened when a school outgrows them."""

    def __init__(self, size: int) -> None:
        self.partners = np.full((size, 8), -1, dtype=np.int64)
        self.degree = np.zeros(size, dtype=np.int64)

    def add(self, nodes: np.ndarray, others: np.ndarray) -> None:
        slots = self.degree[nodes] + _rank_within(nodes)
        if len(slots) and slots.max() >= self.partners.shape[1]:
            extra = max(self.partners.shape[1], int(slots.max()) + 1 - self.partners.shape[1])
            self.partners = np.pad(self.partners, ((0, 0), (0, extra)), constant_values=-1)
        self.partners[nodes, slots] = others
        np.add.at(self.degree, nodes, 1)

    def random_partner(self, nodes: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """A partner of each node chosen uniformly (-1 where the node has none)."""
        safe = np.maximum(nodes, 0)
        degree = np.where(nodes >= 0, self.degree[safe], 0)
        column = np.minimum((uniform * degree).astype(np.int64), np.maximum(degree - 1, 0))
        picked = self.partners[safe, column]
        return np.where(degree > 0, picked, -1)


class _Simulation:
    def __init__(
        self,
        home: _Side,
        abroad: _Side,
        boundaries: np.ndarray,
        process: PartnershipProcess,
        rng: np.random.Generator,
        english_bit: int,
    ) -> None:
        self.home, self.abroad, self.process, self.rng = home, abroad, process, rng
        self.english = np.uint64(1 << english_bit) if english_bit >= 0 else np.uint64(0)
        self.boundaries = boundaries
        self.periods = len(boundaries) - 1
        self.home_links = _Adjacency(home.size)
        self.abroad_links = _Adjacency(abroad.size)
        self.home_active = np.zeros(home.size, dtype=np.int64)
        self.abroad_active = np.zeros(abroad.size, dtype=np.int64)
        # Engagement: some schools simply look for partners more often (hidden, learnable from history).
        self.engagement = rng.lognormal(0.0, 0.8, home.size)
        self.endpoints = np.zeros(1024, dtype=np.int64)  # foreign end of every edge: preferential sampling
        self.edges: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # homes, abroads, starts, ends
        self.edge_count = 0
        self.ending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        # Foreign schools sorted by join month (uniform pool) and by country then join month.
        self.by_join = np.argsort(abroad.join_period, kind="stable")
        self.by_join_period = abroad.join_period[self.by_join]
        self.by_country = np.lexsort((abroad.join_period, abroad.country))
        self.country_joins = abroad.join_period[self.by_country]
        country_sorted = abroad.country[self.by_country]
        country_total = int(abroad.country.max()) + 1 if abroad.size else 0
        self.country_start = np.searchsorted(country_sorted, np.arange(country_total))
        self.country_stop = np.searchsorted(country_sorted, np.arange(country_total), side="right")

    def run(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        total = round(self.process.partnerships_per_taiwanese_school * self.home.size)
        cumulative = np.round(np.cumsum(growth_weights(self.boundaries, self.process.yearly_growth)) * total)
        planned = np.diff(np.r_[0, cumulative])
        for period in range(self.periods):
            for homes, abroads in self.ending.pop(period, []):
                np.subtract.at(self.home_active, homes, 1)
                np.subtract.at(self.abroad_active, abroads, 1)
            wanted = int(cumulative[period]) - self.edge_count
            if wanted > 0:
                self._month(period, min(wanted, int(3 * planned[period]) + 10))
        if not self.edges:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        homes, abroads, starts, ends = (np.concatenate(parts) for parts in zip(*self.edges, strict=True))
        return homes, abroads, starts, ends

    def _candidates(self, period: int, seekers: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidate matrix (seekers x candidates) and which entries were reached through the network."""
        process, rng = self.process, self.rng
        joined = int(np.searchsorted(self.by_join_period, period))
        if joined == 0:
            return None
        batch, total = len(seekers), process.candidates
        k_target = round(total * process.from_target_countries)
        k_popular = round(total * process.from_popular)
        k_network = round(total * process.from_friends_of_friends)
        k_uniform = total - k_target - k_popular - k_network

        def uniform(shape: tuple[int, ...]) -> np.ndarray:
            return self.by_join[rng.integers(0, joined, size=shape)]

        # From the seeker's target countries, among members of that country.
        column = (rng.random(batch) * np.maximum(self.home.target_count[seekers], 1)).astype(np.int64)
        country = self.home.targets[seekers, column]
        safe_country = np.maximum(country, 0)
        members_per_country = np.array(
            [
                np.searchsorted(self.country_joins[a:b], period)
                for a, b in zip(self.country_start, self.country_stop, strict=True)
            ],
            dtype=np.int64,
        )
        start = self.country_start[safe_country]
        available = np.where(country >= 0, members_per_country[safe_country], 0)
        offsets = (rng.random((batch, k_target)) * available[:, None]).astype(np.int64)
        targeted = self.by_country[np.minimum(start[:, None] + offsets, len(self.by_country) - 1)]
        targeted = np.where(available[:, None] > 0, targeted, uniform((batch, k_target)))
        # In proportion to partners so far (a random end of a random partnership).
        if self.edge_count:
            popular = self.endpoints[rng.integers(0, self.edge_count, size=(batch, k_popular))]
        else:
            popular = uniform((batch, k_popular))
        # Partners of the schools one's own partners work with: seeker -> partner -> its Taiwanese partner -> theirs.
        shape = (batch, k_network)
        first = self.home_links.random_partner(np.repeat(seekers[:, None], k_network, axis=1), rng.random(shape))
        colleague = self.abroad_links.random_partner(first, rng.random(shape))
        reached = self.home_links.random_partner(colleague, rng.random(shape))
        network_hit = reached >= 0
        network = np.where(network_hit, reached, uniform(shape))
        candidates = np.concatenate([targeted, popular, network, uniform((batch, k_uniform))], axis=1)
        through_network = np.zeros(candidates.shape, dtype=bool)
        through_network[:, k_target + k_popular : k_target + k_popular + k_network] = network_hit
        return candidates, through_network

    def affinity(self, seekers: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Profile affinity of each (seeker, candidate) pair: the weighted sum documented above."""
        p, home, abroad = self.process, self.home, self.abroad
        s = seekers[:, None]
        shared_sdgs = np.bitwise_count(home.sdg[s] & abroad.sdg[candidates])
        shared_topics = np.bitwise_count(home.topic[s] & abroad.topic[candidates])
        targeted = (home.target_mask[s] >> np.maximum(abroad.country[candidates], 0)) & 1
        common = home.language[s] & abroad.language[candidates]
        local_language = (common & ~self.english) != 0
        gap = np.maximum(
            0,
            np.maximum(home.level_low[s], abroad.level_low[candidates])
            - np.minimum(home.level_high[s], abroad.level_high[candidates]),
        )
        visit_host = (((home.mode[s] & _VISIT) > 0) & ((abroad.mode[candidates] & _HOSTING) > 0)) | (
            ((home.mode[s] & _HOSTING) > 0) & ((abroad.mode[candidates] & _VISIT) > 0)
        )
        return (
            p.shared_sdg * shared_sdgs
            + p.shared_topic * shared_topics
            + p.target_country * targeted
            + p.wants_taiwan * abroad.wants_taiwan[candidates]
            + p.shared_local_language * local_language
            - p.no_common_language * (common == 0)
            + p.same_level * (gap == 0)
            + p.adjacent_level * (gap == 1)
            + p.visit_hosting_match * visit_host
        )

    def _month(self, period: int, searches: int) -> None:
        process, rng, home, abroad = self.process, self.rng, self.home, self.abroad
        member = home.join_period < period
        has_room = self.home_active < home.capacity
        weights = self.engagement * member * np.where(has_room, 1.0, process.capacity_slack)
        if weights.sum() <= 0:
            return
        seekers = rng.choice(home.size, size=searches, p=weights / weights.sum())
        drawn = self._candidates(period, seekers)
        if drawn is None:
            return
        candidates, through_network = drawn
        full = self.abroad_active[candidates] >= abroad.capacity[candidates]
        blocked = full & (rng.random(candidates.shape) >= process.capacity_slack)
        already = (self.home_links.partners[seekers][:, None, :] == candidates[:, :, None]).any(axis=2)
        score = (
            process.affinity_weight * self.affinity(seekers, candidates)
            + process.popularity_weight * np.log1p(self.abroad_links.degree[candidates])
            + process.friend_of_friend_weight * through_network
            + process.noise * rng.gumbel(size=candidates.shape)
        )
        score[blocked | already] = -np.inf
        best = np.argmax(score, axis=1)
        found = np.isfinite(score[np.arange(len(seekers)), best])
        homes, abroads = seekers[found], candidates[found, best[found]]
        _, first = np.unique(homes * abroad.size + abroads, return_index=True)
        keep = np.sort(first)
        homes, abroads = homes[keep], abroads[keep]
        # Several seekers may pick the same school in one month: it takes them while it has room.
        room_abroad = (self.abroad_active[abroads] + _rank_within(abroads)) < abroad.capacity[abroads]
        room_home = (self.home_active[homes] + _rank_within(homes)) < home.capacity[homes]
        slack = rng.random(len(homes)) < process.capacity_slack
        accepted = (room_abroad & room_home) | slack
        self._record(period, homes[accepted], abroads[accepted])

    def _record(self, period: int, homes: np.ndarray, abroads: np.ndarray) -> None:
        count = len(homes)
        if count == 0:
            return
        low, high = self.boundaries[period], self.boundaries[period + 1]
        starts = low + (self.rng.random(count) * (high - low)).astype(np.int64)
        median_days = self.process.median_duration_years * 365.25
        durations = np.maximum(60, self.rng.lognormal(np.log(median_days), 0.6, count)).astype(np.int64)
        ends = starts + durations
        ended = ends < self.boundaries[-1]
        ends = np.where(ended, ends, -1)
        self.edges.append((homes, abroads, starts, ends))
        self.home_links.add(homes, abroads)
        self.abroad_links.add(abroads, homes)
        np.add.at(self.home_active, homes, 1)
        np.add.at(self.abroad_active, abroads, 1)
        if self.edge_count + count > len(self.endpoints):
            self.endpoints = np.resize(self.endpoints, 2 * (self.edge_count + count))
        self.endpoints[self.edge_count : self.edge_count + count] = abroads
        self.edge_count += count
        # Capacity frees up from the month after a partnership ends.
        end_period = np.searchsorted(self.boundaries, ends[ended], side="right")
        for next_period in np.unique(end_period):
            chosen = end_period == next_period
            self.ending.setdefault(int(next_period), []).append((homes[ended][chosen], abroads[ended][chosen]))


def _joint_sdgs(home_mask: int, abroad_mask: int, uniform: float, second: float) -> list[int]:
    """The joint project's goals: one or two the schools share, else one of either school's."""
    shared = _bits(home_mask & abroad_mask)
    if shared:
        first = shared[int(uniform * len(shared))]
        rest = [g for g in shared if g != first]
        return [first, rest[int(second * len(rest))]] if rest and second < 0.4 else [first]
    either = _bits(home_mask | abroad_mask)
    return [either[int(uniform * len(either))]] if either else []


def _joint_modes(
    home_mode: int, abroad_mode: int, paused: bool, visit_roll: float, host_roll: float
) -> list[ExchangeMode]:
    modes = [ExchangeMode.VIRTUAL] if home_mode & abroad_mode & _VIRTUAL or paused else []
    if not paused:
        if home_mode & _VISIT and abroad_mode & _HOSTING and visit_roll < 0.5:
            modes.append(ExchangeMode.VISIT)
        if home_mode & _HOSTING and abroad_mode & _VISIT and host_roll < 0.5:
            modes.append(ExchangeMode.HOSTING)
    return modes or [ExchangeMode.VIRTUAL]


def generate_partnerships(
    schools: Sequence[School],
    topic_masks: Sequence[int],
    *,
    start: date,
    end: date,
    seed: int,
    process: PartnershipProcess,
) -> list[Partnership]:
    """Run the documented process over ``schools`` (the world's order) and return the partnerships
    sorted by start date, with ids p-0000000 upward."""
    home_index = [i for i, s in enumerate(schools) if s.country == HOME_COUNTRY_DEFAULT]
    abroad_index = [i for i, s in enumerate(schools) if s.country != HOME_COUNTRY_DEFAULT]
    if not home_index or not abroad_index:
        return []
    languages = {code: bit for bit, code in enumerate(sorted({c for s in schools for c in s.languages_exchange}))}
    if len(languages) > 64:
        raise ValueError(f"languages_exchange: {len(languages)} distinct languages, the process handles at most 64")
    countries = {code: i for i, code in enumerate(sorted({schools[i].country for i in abroad_index}))}
    boundaries = period_boundaries(start, end)
    home = _Side(
        [schools[i] for i in home_index], [topic_masks[i] for i in home_index], languages, countries, boundaries
    )
    abroad = _Side(
        [schools[i] for i in abroad_index], [topic_masks[i] for i in abroad_index], languages, countries, boundaries
    )
    rng = np.random.default_rng([seed, 2])
    simulation = _Simulation(home, abroad, boundaries, process, rng, languages.get("en", -1))
    homes, abroads, starts, ends = simulation.run()

    order = np.lexsort((abroads, homes, starts))
    rolls = rng.random((len(order), 4)).tolist()
    pause = process.in_person_pause
    pause_from, pause_to = (pause[0].toordinal(), pause[1].toordinal()) if pause else (0, 0)
    partnerships = []
    for number, (edge, (r1, r2, r3, r4)) in enumerate(zip(order.tolist(), rolls, strict=True)):
        h, a = int(homes[edge]), int(abroads[edge])
        start_day, end_day = int(starts[edge]), int(ends[edge])
        partnerships.append(
            Partnership(
                id=f"p-{number:07d}",
                school_a=schools[home_index[h]].id,
                school_b=schools[abroad_index[a]].id,
                start_date=date.fromordinal(start_day),
                end_date=date.fromordinal(end_day) if end_day >= 0 else None,
                modes=_joint_modes(int(home.mode[h]), int(abroad.mode[a]), pause_from <= start_day < pause_to, r1, r2),
                sdgs=_joint_sdgs(int(home.sdg[h]), int(abroad.sdg[a]), r3, r4),
                origin=PartnershipOrigin.EXISTING,
            )
        )
    return partnerships
