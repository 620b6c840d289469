"""generate_world: schools (synthetic, or real directories topped up) plus their partnership history."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np

from data.generator.foreign import foreign_drafts, foreign_targets
from data.generator.partnerships import PartnershipProcess, generate_partnerships, growth_weights, period_boundaries
from data.generator.places import COUNTRIES
from data.generator.profiles import Draft, complete_profile
from data.generator.programmes import ProgrammeProcess, generate_programme_partnerships
from data.generator.real import MALAYSIA_FILE, TAIWAN_FILE, read_malaysia, read_taiwan
from data.generator.taiwan import taiwan_drafts, taiwan_targets
from data.schema import Partnership, School
from data.taxonomies import HOME_COUNTRY_DEFAULT

TAIWAN_SHARE = 0.48  # of all schools: the alliance's Taiwanese members
MAX_SCHOOLS = 1_000_000
_NOT_PROFILE = frozenset({"source", "generated_fields", "created_at", "updated_at"})


@dataclass
class World:
    schools: list[School]
    partnerships: list[Partnership]


def _check(n_schools: int, start: date, end: date, real_dir: Path | None) -> None:
    if isinstance(n_schools, bool) or not isinstance(n_schools, int) or not 1 <= n_schools <= MAX_SCHOOLS:
        raise ValueError(f"n_schools: must be a whole number from 1 to {MAX_SCHOOLS:,}, got {n_schools!r}")
    if end <= start:
        raise ValueError(f"end: must be after start ({start.isoformat()}), got {end.isoformat()}")
    if real_dir is not None:
        for name in (TAIWAN_FILE, MALAYSIA_FILE):
            if not (Path(real_dir) / name).is_file():
                raise ValueError(f"real_dir: {Path(real_dir) / name} not found; the folder must hold {name}")


def _synthetic_drafts(rng: random.Random, n_schools: int) -> list[Draft]:
    taiwanese = max(1, round(n_schools * TAIWAN_SHARE))  # at most n_schools, since the share is below 1
    return taiwan_drafts(rng, taiwanese) + foreign_drafts(rng, n_schools - taiwanese)


def _real_drafts(rng: random.Random, n_schools: int, real_dir: Path) -> list[Draft]:
    """Real schools first. Fewer wanted than there are: a deterministic sample keeping Taiwan's share
    where Malaysia's list allows. More: all of them, topped up with synthetic Taiwanese schools
    (once Taiwan's share outgrows its real list) and synthetic schools of the other countries."""
    taiwan, malaysia = read_taiwan(real_dir, rng), read_malaysia(real_dir, rng)
    real_total = len(taiwan) + len(malaysia)
    if n_schools < real_total:
        malaysian = min(n_schools - round(n_schools * TAIWAN_SHARE), len(malaysia))
        taiwan_sample = sorted(rng.sample(range(len(taiwan)), n_schools - malaysian))
        malaysia_sample = sorted(rng.sample(range(len(malaysia)), malaysian))
        return [taiwan[i] for i in taiwan_sample] + [malaysia[i] for i in malaysia_sample]
    extra_taiwanese = max(0, round(n_schools * TAIWAN_SHARE) - len(taiwan))
    others = tuple(c for c in COUNTRIES if c.code != "MY")
    return (
        taiwan
        + taiwan_drafts(rng, extra_taiwanese)
        + malaysia
        + foreign_drafts(rng, n_schools - real_total - extra_taiwanese, others)
    )


def _membership_dates(
    count: int, seed: int, start: date, end: date, process: PartnershipProcess
) -> list[tuple[datetime, datetime]]:
    """When each school joined (created_at) and last edited its profile (updated_at): a share were
    members before ``start``, the rest joined month by month, growing like the partnerships."""
    rng = np.random.default_rng([seed, 1])
    boundaries = period_boundaries(start, end)
    period = rng.choice(len(boundaries) - 1, size=count, p=growth_weights(boundaries, process.yearly_growth))
    low, high = boundaries[period], boundaries[period + 1]
    joined_day = low + rng.random(count) * (high - low)
    founding = start.toordinal() - rng.random(count) * 730
    joined_day = np.where(rng.random(count) < process.initial_member_share, founding, joined_day)
    end_seconds = (end.toordinal() - joined_day) * 86400 - 1
    edited = rng.random(count) * np.maximum(end_seconds, 0)
    dates = []
    for day, seconds in zip(joined_day.tolist(), edited.tolist(), strict=True):
        midnight = datetime.combine(date.fromordinal(int(day)), time(), UTC)
        created = midnight + timedelta(seconds=int((day - int(day)) * 86400))
        dates.append((created, created + timedelta(seconds=int(seconds))))
    return dates


def generate_world(
    n_schools: int,
    seed: int = 7,
    *,
    real_dir: Path | None = None,
    start: date = date(2016, 1, 1),
    end: date = date(2026, 9, 1),
    process: PartnershipProcess | ProgrammeProcess | None = None,
) -> World:
    """A deterministic world of ``n_schools`` schools and the partnerships they formed between
    ``start`` and ``end``: same arguments, same world, down to ids and timestamps. ``process``
    chooses how partnerships arise: profile affinity (:class:`PartnershipProcess`, the default) or
    county programmes and referrals (:class:`ProgrammeProcess`)."""
    _check(n_schools, start, end, real_dir)
    process = process or PartnershipProcess()
    membership = process if isinstance(process, PartnershipProcess) else PartnershipProcess()
    rng = random.Random(f"partnermatch-generator:{seed}")
    drafts = _real_drafts(rng, n_schools, Path(real_dir)) if real_dir is not None else _synthetic_drafts(rng, n_schools)
    dates = _membership_dates(len(drafts), seed, start, end, membership)
    schools = []
    for draft, (created, updated) in zip(drafts, dates, strict=True):
        country = draft.fields["country"]
        targets = taiwan_targets(rng, draft) if country == HOME_COUNTRY_DEFAULT else foreign_targets(rng, country)
        profile = complete_profile(rng, draft, targets)
        profile["generated_fields"] = sorted(set(profile) - draft.real_fields - _NOT_PROFILE)
        schools.append(School(**profile, created_at=created, updated_at=updated))
    if isinstance(process, ProgrammeProcess):
        partnerships = generate_programme_partnerships(schools, start=start, end=end, seed=seed, process=process)
    else:
        partnerships = generate_partnerships(
            schools, [d.topic_mask for d in drafts], start=start, end=end, seed=seed, process=process
        )
    return World(schools=schools, partnerships=partnerships)
