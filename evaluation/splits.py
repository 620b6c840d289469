"""Train/test splits of the partnership record: what the recommender may see, and what it must find.

Two ways to hold partnerships out:

* **time**: the most recent ``share`` of partnerships by ``start_date`` (every partnership that
  started on or after the cut-off day, so one day is never split in two). The recommender sees
  the network as it stood on the cut-off day: partnerships that *ended before* it are history
  (kept with their end date, so they are not active and hold no capacity); partnerships that
  started before it and ended on or after it were running that day, so their end date is
  dropped and they count as active, holding a place in both schools' capacity.
* **random**: a seeded sample of ``share`` of the partnered *pairs*; every partnership of a
  sampled pair is held out, so a renewal of the same pair cannot leak the answer. The rest keep
  the state the store records today (ended ones are history, open ones active).

Profiles are today's in both: the store keeps no past versions of a profile.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from data.schema import Partnership


@dataclass(frozen=True)
class Split:
    """Partnerships the recommender is built from, and the ones it is judged on."""

    name: str
    train: list[Partnership]
    held_out: list[Partnership]
    cutoff: date | None
    """First day of the held-out period (time split only)."""

    def held_out_pairs(self) -> set[tuple[str, str]]:
        """Held-out pairs in canonical order, minus pairs still partnered in the training state:
        those cannot be suggested again and are a renewal, not a new match."""
        active = {p.pair for p in self.train if p.active}
        return {p.pair for p in self.held_out} - active

    def describe(self) -> str:
        if self.cutoff is not None:
            return (
                f"time split: {len(self.held_out)} partnerships started on or after {self.cutoff.isoformat()} "
                f"held out, {len(self.train)} before it seen"
            )
        return f"random split: {len(self.held_out)} partnerships held out, {len(self.train)} seen"


def _check(partnerships: Sequence[Partnership], share: float) -> None:
    if not 0 < share < 1:
        raise ValueError(f"share: must be between 0 and 1 (exclusive), got {share}")
    if len(partnerships) < 2:
        raise ValueError(f"partnerships: need at least 2 to hold some out, got {len(partnerships)}")


def time_split(partnerships: Sequence[Partnership], share: float = 0.2) -> Split:
    """Hold out the most recent ``share`` by start date; the rest as the network stood on the cut-off day.

    >>> from datetime import date
    >>> from data.schema import Partnership
    >>> ps = [Partnership(id=f"p{i}", school_a="tw-a", school_b=f"vn-{i}", start_date=date(2020 + i, 1, 1),
    ...                   end_date=date(2022, 6, 1) if i == 0 else None) for i in range(5)]
    >>> split = time_split(ps, 0.2)
    >>> split.cutoff, [p.id for p in split.held_out], [p.end_date for p in split.train][:1]
    (datetime.date(2024, 1, 1), ['p4'], [datetime.date(2022, 6, 1)])
    """
    _check(partnerships, share)
    ordered = sorted(partnerships, key=lambda p: (p.start_date, p.pair))
    first_held_out = min(len(ordered) - 1, len(ordered) - math.ceil(share * len(ordered)))
    cutoff = ordered[max(first_held_out, 1)].start_date
    if cutoff <= ordered[0].start_date:
        raise ValueError(
            f"partnerships: all of the oldest {len(ordered) - first_held_out} share one start date; "
            "a time split needs partnerships that started on different days"
        )
    train = [_as_of(p, cutoff) for p in ordered if p.start_date < cutoff]
    held_out = [p for p in ordered if p.start_date >= cutoff]
    return Split("time", train, held_out, cutoff)


def _as_of(partnership: Partnership, day: date) -> Partnership:
    """The partnership as it stood on ``day``: still running if it ended on or after that day."""
    if partnership.end_date is not None and partnership.end_date >= day:
        return partnership.model_copy(update={"end_date": None})
    return partnership


def random_split(partnerships: Sequence[Partnership], share: float = 0.2, seed: int = 7) -> Split:
    """Hold out every partnership of a seeded sample of ``share`` of the pairs.

    >>> from datetime import date
    >>> from data.schema import Partnership
    >>> ps = [Partnership(school_a="tw-a", school_b=f"vn-{i}", start_date=date(2024, 1, 1)) for i in range(10)]
    >>> split = random_split(ps, 0.2, seed=1)
    >>> len(split.held_out), len(split.train), split == random_split(ps, 0.2, seed=1)
    (2, 8, True)
    """
    _check(partnerships, share)
    by_pair: dict[tuple[str, str], list[Partnership]] = defaultdict(list)
    for p in partnerships:
        by_pair[p.pair].append(p)
    pairs = sorted(by_pair)
    held = set(random.Random(seed).sample(pairs, max(1, round(share * len(pairs)))))
    train = [p for pair in pairs if pair not in held for p in by_pair[pair]]
    held_out = [p for pair in pairs if pair in held for p in by_pair[pair]]
    return Split("random", train, held_out, None)


def make_split(name: str, partnerships: Sequence[Partnership], share: float, seed: int) -> Split:
    if name == "time":
        return time_split(partnerships, share)
    if name == "random":
        return random_split(partnerships, share, seed)
    raise ValueError(f"split: must be time or random, got {name!r}")
