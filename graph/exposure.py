"""Exposure: how often each school was shown in suggestion lists lately, and the factor it earns.

Similarity search has hubs: a few profiles sit near very many queries and would fill everyone's
top 10, while most schools are never shown (the evaluation measured an exposure Gini of 0.79 and
49% coverage without this). Boosting schools with no partners does not cure it, because hubness
comes from the vectors, not from the graph. Counting what was actually shown, and damping a
school in proportion to how far its share exceeds the average, spreads attention where it piles up
and leaves everyone else untouched.

Counts decay with a half-life, so a school's past popularity fades. The ledger counts per *side*
(home-country schools and foreign schools are shown to different askers), and the factor compares
a school with the mean of its own side.

Several replicas (or worker processes) each show lists; :func:`share_exposure` adds what one has
shown since its last turn to the counts in the store and reads back everyone's, so a school shown
a lot through one replica is damped in the others' lists too.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from data.store import Store

_REBASE_AFTER = 64.0
"""Half-lives after which stored weights are rescaled, long before floats overflow."""


class ExposureLedger:
    """Decaying counts of appearances in suggestion lists, per school and per side. Thread-safe.

    Each appearance at time t is stored with weight ``2 ** ((t - origin) / half_life)``, so a
    count at time t is ``stored / 2 ** ((t - origin) / half_life)``: recording and reading are
    O(1), and nothing has to be decayed in a sweep.

    >>> ledger = ExposureLedger(half_life_hours=1.0, clock=lambda: 0.0)
    >>> ledger.record(["tw-a", "tw-b"], side="home", at=0.0)
    >>> ledger.record(["tw-a"], side="home", at=0.0)
    >>> ledger.count("tw-a", at=3600.0), ledger.total("home", at=3600.0)
    (1.0, 1.5)
    """

    def __init__(self, half_life_hours: float = 168.0, *, clock: Callable[[], float] = time.time) -> None:
        if half_life_hours <= 0:
            raise ValueError(f"half_life_hours: must be positive, got {half_life_hours}")
        self.half_life = half_life_hours * 3600.0
        self.clock = clock
        self._origin = clock()
        self._weights: dict[str, float] = defaultdict(float)
        self._totals: dict[str, float] = defaultdict(float)
        self._unshared: dict[str, tuple[str, float]] = {}
        self._sides: dict[str, str] = {}
        self._lock = threading.Lock()
        self.store_cursor: tuple[float | None, int] = (None, -1)
        """(origin, version) of the store's counts merged last (:func:`share_exposure`); the
        first turn reads them all."""

    def record(self, school_ids: Iterable[str], *, side: str, at: float | None = None) -> None:
        """Count one appearance of each school, shown to an asker on the other side of ``side``."""
        ids = list(school_ids)
        with self._lock:
            now = self.clock() if at is None else at
            if (now - self._origin) / self.half_life > _REBASE_AFTER:
                self._rebase(now)
            weight = self._scale(now)
            weights, sides, unshared = self._weights, self._sides, self._unshared
            for school_id in ids:
                weights[school_id] += weight
                sides[school_id] = side
                pending = unshared.get(school_id)
                unshared[school_id] = (side, weight if pending is None else pending[1] + weight)
            self._totals[side] += weight * len(ids)

    def unshared(self) -> tuple[dict[str, tuple[str, float]], float]:
        """What was recorded since the last call, as school id -> (side, count as of now), and now;
        handed to the store and forgotten here (the store's counts replace the ledger's later)."""
        with self._lock:
            now = self.clock()
            scale = self._scale(now)
            taken = {k: (side, weight / scale) for k, (side, weight) in self._unshared.items()}
            self._unshared = {}
            return taken, now

    def give_back(self, shown: Mapping[str, tuple[str, float]], *, at: float) -> None:
        """Hand back what :meth:`unshared` took as of ``at`` when the store could not take it, so
        the next turn shares it (it is counted in the ledger already)."""
        with self._lock:
            scale = self._scale(at)
            for school_id, (side, count) in shown.items():
                pending = self._unshared.get(school_id, (side, 0.0))[1]
                self._unshared[school_id] = (side, pending + count * scale)

    def merge_counts(self, counts: Mapping[str, tuple[str, float]], *, at: float, complete: bool) -> None:
        """Take counts as of ``at`` (school id -> (side, count)) as the ledger's own for those
        schools, or for every school when ``complete`` (the others are then dropped), keeping
        what was recorded since the last :meth:`unshared` on top (it is not in them yet)."""
        with self._lock:
            scale = self._scale(at)
            if complete:
                self._weights, self._totals, self._sides = defaultdict(float), defaultdict(float), {}
                pending_only = {k: v for k, v in self._unshared.items() if k not in counts}
                for school_id, (side, weight) in pending_only.items():
                    self._set(school_id, side, weight)
            # _set inlined: a turn merges thousands of schools, holding the lock requests read under
            weights, totals, sides, unshared = self._weights, self._totals, self._sides, self._unshared
            for school_id, (side, count) in counts.items():
                pending = unshared.get(school_id)
                weight = count * scale if pending is None else count * scale + pending[1]
                old_side = sides.get(school_id, side)
                totals[old_side] -= weights.get(school_id, 0.0)
                weights[school_id] = weight
                totals[side] += weight
                sides[school_id] = side

    def _set(self, school_id: str, side: str, weight: float) -> None:
        """One school's weight, the side totals kept in step (the caller holds the lock)."""
        old_side = self._sides.get(school_id, side)
        self._totals[old_side] -= self._weights.get(school_id, 0.0)
        self._weights[school_id] = weight
        self._totals[side] += weight
        self._sides[school_id] = side

    def count(self, school_id: str, *, at: float | None = None) -> float:
        """Decayed appearances of one school."""
        with self._lock:
            return self._weights.get(school_id, 0.0) / self._scale(self.clock() if at is None else at)

    def counts(self, school_ids: Sequence[str], *, at: float | None = None) -> np.ndarray:
        """Decayed appearances of many schools at once: one lock and one decay for a request's
        candidates, where :meth:`count` per candidate cost a lock and a clock read each."""
        with self._lock:
            weights = self._weights
            found = np.fromiter((weights.get(i, 0.0) for i in school_ids), dtype=float, count=len(school_ids))
            return found / self._scale(self.clock() if at is None else at)

    def total(self, side: str, *, at: float | None = None) -> float:
        """Decayed appearances of all schools on one side."""
        with self._lock:
            return self._totals.get(side, 0.0) / self._scale(self.clock() if at is None else at)

    def state(self) -> dict[str, object]:
        """Counts as of now, for saving beside the index so a restart keeps them."""
        with self._lock:
            now = self.clock()
            scale = self._scale(now)
            return {
                "half_life_hours": self.half_life / 3600.0,
                "saved_at": now,
                "counts": {k: v / scale for k, v in self._weights.items()},
                "totals": {k: v / scale for k, v in self._totals.items()},
            }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, clock: Callable[[], float] = time.time) -> ExposureLedger:
        """A ledger continuing a saved one: counts decay across the time it was not running."""
        ledger = cls(float(state["half_life_hours"]), clock=clock)
        fade = 2.0 ** (-(ledger._origin - float(state["saved_at"])) / ledger.half_life)
        ledger._weights.update({k: float(v) * fade for k, v in state["counts"].items()})
        ledger._totals.update({k: float(v) * fade for k, v in state["totals"].items()})
        return ledger

    def __len__(self) -> int:
        return len(self._weights)

    def _scale(self, now: float) -> float:
        return 2.0 ** ((now - self._origin) / self.half_life)

    def _rebase(self, now: float) -> None:
        scale = self._scale(now)
        self._weights = defaultdict(float, {k: v / scale for k, v in self._weights.items()})
        self._totals = defaultdict(float, {k: v / scale for k, v in self._totals.items()})
        self._unshared = {k: (side, v / scale) for k, (side, v) in self._unshared.items()}
        self._origin = now


Number = TypeVar("Number", float, np.ndarray)


def exposure_factor(count: Number, mean: Number, *, strength: float) -> Number:
    """``1 / (1 + strength · max(0, count / max(mean, 1) - 1))``: 1 up to the average, less above it
    (arrays too, element by element).

    ``count`` is a school's recent appearances, ``mean`` the average over the schools of its side.
    The mean is floored at one appearance so that the first few lists, when every count is 0 or 1,
    change nothing. A school shown at three times the average gets ``1 / (1 + 2 · strength)``.

    >>> exposure_factor(2.0, 4.0, strength=0.5), exposure_factor(12.0, 4.0, strength=0.5)
    (1.0, 0.5)
    >>> exposure_factor(np.array([2.0, 12.0]), np.array([4.0, 4.0]), strength=0.5).tolist()
    [1.0, 0.5]
    """
    if strength < 0:
        raise ValueError(f"strength: must be >= 0, got {strength}")
    if not np.all(np.isfinite(count) & (np.asarray(count) >= 0)):
        raise ValueError(f"count: must be a finite number >= 0, got {count}")
    excess = np.maximum(0.0, count / np.maximum(mean, 1.0) - 1.0)
    factor = 1.0 / (1.0 + strength * excess)
    return float(factor) if np.ndim(factor) == 0 else factor


def share_exposure(ledger: ExposureLedger, store: Store) -> None:
    """Add the ledger's appearances since its last turn to the store's shared counts, then take
    back the counts of every school any replica showed since the ledger's last read (all of them
    on the first turn): after a turn, each replica damps what all have shown, and a turn costs
    what was shown meanwhile, not the size of the world. (Replicas are expected to share one
    half-life setting.)"""
    shown, now = ledger.unshared()
    try:
        store.add_exposure(shown, now=now, half_life=ledger.half_life)
    except Exception:
        ledger.give_back(shown, at=now)
        raise
    origin, version = ledger.store_cursor
    changes = store.exposure_changes(since=version, seen_origin=origin, now=now, half_life=ledger.half_life)
    ledger.merge_counts(changes.counts, at=now, complete=changes.origin != origin)
    ledger.store_cursor = (changes.origin, changes.version)
