"""A second, differently built partnership process: county programmes, referrals, yearly cohorts.

The default process (:mod:`data.generator.partnerships`) lets each Taiwanese school pick the
partner whose profile suits it best. Many real alliances work otherwise, and a recommender must
not owe its figures to one way of making a history. Here partnerships come from:

* **County programmes.** Each Taiwanese county runs an exchange programme with
  ``countries_per_programme`` partner countries (drawn in proportion to their schools), and in
  each of them one *sister region* (a state, province or city). Every school year, in
  September, the county sends a cohort of its schools that have room; each is matched with a
  school of a programme country (from the sister region with probability
  ``sister_region_share``), of a compatible level with probability ``level_match``, otherwise at
  random: profiles, SDGs and stated target countries play no part.
* **Referrals.** With probability ``referral_share`` a new partnership is a referral instead: a
  school that already has a partner gets a school of that partner's region introduced to it, in
  any month.

``ProgrammeProcess`` holds the rates; ``generate_world(..., process=ProgrammeProcess())`` uses it.
Partnerships last a log-normal time (median ``median_duration_years``); schools at capacity are
skipped. The result has the same shape as the default process's: every partnership has a
Taiwanese side, ids p-0000000 upward by start date.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

from data.schema import Partnership, PartnershipOrigin, School
from data.taxonomies import HOME_COUNTRY_DEFAULT, ExchangeMode


class ProgrammeProcess(BaseModel):
    """Rates of the programme-driven process, with their defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partnerships_per_taiwanese_school: float = Field(
        2.5, ge=0, le=50, description="Partnerships started over the whole period, per Taiwanese school"
    )
    countries_per_programme: int = Field(2, ge=1, le=10, description="Partner countries of each county programme")
    sister_region_share: float = Field(0.6, ge=0, le=1, description="Share of programme matches in the sister region")
    referral_share: float = Field(0.3, ge=0, le=1, description="Share of new partnerships made by referral")
    level_match: float = Field(0.85, ge=0, le=1, description="Chance a match is restricted to a shared level")
    yearly_growth: float = Field(0.15, ge=0, le=2, description="Yearly growth of the cohorts")
    median_duration_years: float = Field(2.0, gt=0, description="Median length of a partnership (log-normal)")


def generate_programme_partnerships(
    schools: Sequence[School], *, start: date, end: date, seed: int, process: ProgrammeProcess
) -> list[Partnership]:
    """Run the programme process over ``schools`` and return the partnerships by start date."""
    rng = random.Random(f"partnermatch-programmes:{seed}")
    home = [s for s in schools if s.country == HOME_COUNTRY_DEFAULT]
    abroad = [s for s in schools if s.country != HOME_COUNTRY_DEFAULT]
    if not home or not abroad:
        return []
    abroad_by_id = {s.id: s for s in abroad}
    by_country: dict[str, list[School]] = defaultdict(list)
    by_region: dict[tuple[str, str | None], list[School]] = defaultdict(list)
    for school in abroad:
        by_country[school.country].append(school)
        by_region[school.country, school.region].append(school)
    countries = sorted(by_country)
    weights = [len(by_country[c]) for c in countries]
    programmes: dict[str | None, list[tuple[str, str | None]]] = {}
    for county in sorted({s.region for s in home}, key=str):
        chosen: list[str] = []
        while len(chosen) < min(process.countries_per_programme, len(countries)):
            country = rng.choices(countries, weights)[0]
            if country not in chosen:
                chosen.append(country)
        programmes[county] = [(c, rng.choice(sorted({s.region for s in by_country[c]}, key=str))) for c in chosen]

    years = list(range(start.year, end.year + 1))
    growth = [(1 + process.yearly_growth) ** i for i in range(len(years))]
    total = process.partnerships_per_taiwanese_school * len(home)
    per_year = [round(total * g / sum(growth)) for g in growth]
    running: list[tuple[date, str, str]] = []  # (end, home id, abroad id) of running partnerships
    active: dict[str, int] = defaultdict(int)
    partners: dict[str, set[str]] = defaultdict(set)
    made: list[tuple[date, date | None, School, School]] = []

    def has_room(school: School) -> bool:
        return active[school.id] < school.capacity

    def pick(pool: Sequence[School], seeker: School) -> School | None:
        free = [s for s in pool if has_room(s) and s.id not in partners[seeker.id]]
        if free and rng.random() < process.level_match:
            free = [s for s in free if set(s.levels) & set(seeker.levels)] or free
        return rng.choice(free) if free else None

    events = []  # (day, is a referral), drawn per year and then taken in date order
    for year, count in zip(years, per_year, strict=True):
        for _ in range(count):
            referral = rng.random() < process.referral_share
            day = date(year, rng.randint(1, 12), rng.randint(1, 28)) if referral else date(year, 9, rng.randint(1, 28))
            if start <= day < end:
                events.append((day, referral))
    events.sort(key=lambda event: event[0])
    for day, referral in events:
        for finished in [r for r in running if r[0] <= day]:
            running.remove(finished)
            active[finished[1]] -= 1
            active[finished[2]] -= 1
        seekers = [s for s in rng.sample(home, min(len(home), 20)) if has_room(s)]
        if not seekers:
            continue
        seeker = seekers[0]
        partner = None
        if referral and partners[seeker.id]:
            introducer = abroad_by_id[rng.choice(sorted(partners[seeker.id]))]
            partner = pick(by_region[introducer.country, introducer.region], seeker)
        if partner is None:
            country, sister = rng.choice(programmes[seeker.region])
            pool = by_region[country, sister] if rng.random() < process.sister_region_share else by_country[country]
            partner = pick(pool, seeker)
        if partner is None:
            continue
        days = max(60, int(rng.lognormvariate(0, 0.6) * process.median_duration_years * 365.25))
        finish = day + timedelta(days=days)
        made.append((day, finish if finish < end else None, seeker, partner))
        partners[seeker.id].add(partner.id)
        partners[partner.id].add(seeker.id)
        active[seeker.id] += 1
        active[partner.id] += 1
        running.append((finish, seeker.id, partner.id))
    made.sort(key=lambda m: (m[0], m[2].id, m[3].id))
    return [
        Partnership(
            id=f"p-{number:07d}",
            school_a=seeker.id,
            school_b=partner.id,
            start_date=day,
            end_date=finish,
            modes=[ExchangeMode.VIRTUAL],
            sdgs=sorted(set(seeker.sdgs) & set(partner.sdgs))[:2],
            origin=PartnershipOrigin.EXISTING,
        )
        for number, (day, finish, seeker, partner) in enumerate(made)
    ]
