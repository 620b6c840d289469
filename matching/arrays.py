"""The reciprocal score for many candidates at once, as array operations over the profile table.

:func:`reciprocal_scores` computes, for one source and an array of candidate rows, every fit
component both ways and the harmonic mean, exactly as :func:`matching.scoring.reciprocal_score`
does for one pair (the reference; a property test holds them equal). Components are named and
weighted as in :class:`~matching.settings.FitWeights`.

The ranking step takes its base score from a :data:`PairScorer`: by default the reciprocal score;
a learned ranker can take its place with the same inputs (the source row, the candidate rows, their
similarities and these reciprocal scores) and return one score per candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from typing import Any, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from matching.masks import HOSTING, VIRTUAL, VISIT, RuleMasks, pair_modes_bits
from matching.reasons import Reason
from matching.scoring import FULL_OVERLAP_HOURS, Fit, PairScore
from matching.settings import MatchSettings
from matching.table import ProfileTable, Row, popcount


@cache
def _blas_pools() -> list[Any]:
    """The loaded BLAS thread pools (threadpoolctl's controllers), listed once: listing takes
    milliseconds, setting a known pool's threads a library call."""
    return [pool for pool in ThreadpoolController().lib_controllers if pool.user_api == "blas"]


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """A context in which BLAS runs on one thread: a request's products are small (a few hundred
    rows at most), and waking BLAS threads on a machine whose cores are busy costs more than the
    product itself. Each pool's own setter, as threadpoolctl's ``limit`` calls it, without the
    inventory of every library that ``limit`` takes on each entry (a third of its cost)."""
    pools = _blas_pools()
    before = [pool.get_num_threads() for pool in pools]
    for pool in pools:
        pool.set_num_threads(1)
    try:
        yield
    finally:
        for pool, threads in zip(pools, before, strict=True):
            pool.set_num_threads(threads)


COMPONENTS = ("target_country", "sdg", "language", "mode", "level", "timezone", "embedding")
"""The fit components in the order the reference adds them (:func:`matching.scoring.fit`)."""


@dataclass(frozen=True)
class ArrayScores:
    """fit(source→candidate), fit(candidate→source) and their harmonic mean, one entry per candidate,
    with every fit component both ways (what an explanation cites)."""

    forward: np.ndarray
    backward: np.ndarray
    reciprocal: np.ndarray
    similarity: np.ndarray
    """The profile vectors' cosine, as searched (the embedding component is it clipped to [0, 1])."""
    components: np.ndarray
    """Every fit component: (component in the reference's order, direction forward/backward, candidate)."""

    @cached_property
    def forward_components(self) -> dict[str, np.ndarray]:
        return dict(zip(COMPONENTS, self.components[:, 0], strict=True))

    @cached_property
    def backward_components(self) -> dict[str, np.ndarray]:
        return dict(zip(COMPONENTS, self.components[:, 1], strict=True))

    def pair_scores(self, at: np.ndarray) -> list[PairScore]:
        """The scores of candidates ``at`` (positions) as the reference
        :func:`~matching.scoring.reciprocal_score` gives them, one each; each array read once."""
        components = self.components[:, :, at].transpose(2, 1, 0).tolist()  # (candidate, direction, component)
        return [
            PairScore(
                Fit(dict(zip(COMPONENTS, forward, strict=True)), fit_forward),
                Fit(dict(zip(COMPONENTS, backward, strict=True)), fit_backward),
                similarity,
                reciprocal,
            )
            for (forward, backward), fit_forward, fit_backward, similarity, reciprocal in zip(
                components,
                self.forward[at].tolist(),
                self.backward[at].tolist(),
                self.similarity[at].tolist(),
                self.reciprocal[at].tolist(),
                strict=True,
            )
        ]


PathSums = tuple[np.ndarray, np.ndarray, np.ndarray]
"""From one school to each of some candidates: Adamic–Adar over common partners, the 3-walk count
and Adamic–Adar over 3-paths (see :meth:`matching.features.PairFeatures.paths`), 0 for a school
the history did not know. A request works them out once: its sources and its features read them."""

PairScorer = Callable[[ProfileTable, Row, np.ndarray, np.ndarray, ArrayScores], np.ndarray]
"""(table, source row, candidate rows, similarities, reciprocal scores) -> one base score per candidate."""


class LearnedScorer(Protocol):
    """A trained pair score (matching.ranker): feature rows of one source's candidate rows at once,
    their scores, and the reasons that lifted each one."""

    def feature_rows(
        self,
        table: ProfileTable,
        source: Row,
        rows: np.ndarray,
        similarity: np.ndarray,
        scores: ArrayScores,
        paths: PathSums | None = None,
    ) -> np.ndarray: ...

    def score(self, features: np.ndarray) -> np.ndarray: ...

    def path_sums(self, table: ProfileTable, source: Row, rows: np.ndarray) -> PathSums: ...

    @property
    def shortlist(self) -> int:
        """Candidates the first stage passes on to ``feature_rows`` and ``score``."""
        ...

    def first_stage(
        self, table: ProfileTable, source: Row, rows: np.ndarray, components: np.ndarray, paths: PathSums
    ) -> np.ndarray:
        """A cheap score of every eligible row from its :func:`fit_components` and path sums alone."""
        ...

    def source_scores(
        self, table: ProfileTable, source: Row, rows: np.ndarray, paths: PathSums | None = None
    ) -> dict[str, np.ndarray]: ...

    def explain(self, features: np.ndarray) -> list[list[Reason]]: ...


def reciprocal_base(
    table: ProfileTable, source: Row, rows: np.ndarray, similarity: np.ndarray, scores: ArrayScores
) -> np.ndarray:
    """The default :data:`PairScorer`: the reciprocal score itself."""
    return scores.reciprocal


def _preference(wanted: int | np.ndarray, shared: np.ndarray, out: np.ndarray) -> None:
    """Share of what was asked for that the other offers, written into ``out``; 0.5 when nothing
    was asked for."""
    if np.ndim(wanted) == 0:
        out[:] = shared / wanted if wanted else 0.5
    else:
        out[:] = 0.5
        np.divide(shared, wanted, out=out, where=wanted != 0)


@lru_cache(maxsize=4096)
def _wished_share(wished: bytes, wanted: int) -> np.ndarray:
    """fit(source→candidate)'s target-country component for a candidate in each country code (the
    last slot for code -1), of a source wishing for the countries in bitset ``wished``, ``wanted``
    of them as it listed them: worked out once per kind of source, then gathered per candidate."""
    bitset = np.frombuffer(wished, dtype=np.uint64)
    held = np.append(_has_code(bitset, np.arange(64 * len(bitset))), False)  # code -1 reads the last slot
    share = np.empty(len(held))
    _preference(wanted, held, share)
    share.flags.writeable = False
    return share


@cache
def _level_fit(source_levels: int) -> np.ndarray:
    """The level component (both ways) for each candidate levels bitset: 1 for a shared level, 0.5
    for an adjacent one only, once per kind of source."""
    fit = np.where((np.arange(256, dtype=np.uint8) & source_levels) != 0, 1.0, 0.5)
    fit.flags.writeable = False
    return fit


_LANGUAGE_FIT = np.where(np.array([False, True, True]), 0.6 + 0.4 * np.array([False, False, True]), 0.0)
"""The language component by shared exchange languages (0: none, 1: some, 2: one the asker also
teaches in, which implies some)."""


def _has_code(bitset: np.ndarray, codes: np.ndarray | int) -> np.ndarray:
    """Bit ``codes`` of one 1-D bitset, for each code; or bit ``codes`` (one code) of each row of a
    2-D bitset, read from its one word column. A code below 0 holds no bit."""
    if bitset.ndim == 1:
        held = np.unpackbits(bitset.view(np.uint8), bitorder="little").view(bool)
        return np.append(held, False)[codes]  # code -1 reads the trailing False
    if codes < 0:
        return np.zeros(len(bitset), dtype=bool)
    return ((bitset[:, codes // 64] >> np.uint64(codes % 64)) & np.uint64(1)) != 0


def swap_visits(modes: np.ndarray) -> np.ndarray:
    """Each bitset with visit and hosting swapped: the other side of the same trip."""
    return ((modes & VIRTUAL) | np.where(modes & VISIT, HOSTING, 0) | np.where(modes & HOSTING, VISIT, 0)).astype(
        np.uint8
    )


@cache
def _backward_modes(source_modes: int) -> np.ndarray:
    """For each candidate modes bitset (the rows) outside and inside shared hours (the columns), how
    many of its modes the pair can use from its side: :func:`~matching.constraints.pair_modes`
    (candidate, source), less virtual outside shared hours, counted. Worked out with the bitset
    formulas over the eight bitsets once per kind of source, then gathered per candidate."""
    modes = np.arange(8, dtype=np.uint8)
    outside = swap_visits(pair_modes_bits(source_modes, modes) & ~np.uint8(VIRTUAL))
    inside = outside | (modes & source_modes & VIRTUAL).astype(np.uint8)
    counts = np.stack([popcount(modes & outside), popcount(modes & inside)], axis=1)
    counts.flags.writeable = False  # shared by every request from such a source
    return counts


def reciprocal_scores(
    table: ProfileTable,
    source: Row,
    rows: np.ndarray,
    similarity: np.ndarray,
    masks: RuleMasks,
    settings: MatchSettings,
) -> ArrayScores:
    """Both fits and the reciprocal score of ``source`` with each of ``rows`` (see the module docstring)."""
    return weighted_scores(fit_components(table, source, rows, masks, settings), similarity, settings)


def fit_components(
    table: ProfileTable, source: Row, rows: np.ndarray, masks: RuleMasks, settings: MatchSettings
) -> np.ndarray:
    """Every fit component of ``source`` with each of ``rows`` but the embedding's (left 0), both
    ways, in one (component, direction, candidate) array: what needs no profile vector, so a
    trained ranker's first stage reads it for every eligible candidate before any cosine is known."""
    school, columns, n = source.school, table.columns, len(rows)
    modes, n_modes, n_sdgs = columns["modes"][rows], columns["n_modes"][rows], columns["n_sdgs"][rows]
    shared = columns["languages_exchange"][rows] & source.languages_exchange
    has_shared = shared.any(axis=1)
    overlap = masks.overlap[rows]
    hours = np.minimum(overlap / FULL_OVERLAP_HOURS, 1.0)
    shared_sdgs = popcount(columns["sdgs"][rows] & np.uint32(source.sdgs))
    c = np.empty((len(COMPONENTS), 2, n))
    forward, backward = 0, 1
    c[0, forward] = (
        _wished_share(source.wished.tobytes(), len(school.target_countries))[columns["country"][rows]]
        if school.target_countries
        else 0.5
    )
    wishes_me = (
        table.derived(("wishes", source.country), lambda: _has_code(columns["wished"], source.country), ("wished",))[
            rows
        ]
        if source.country >= 0
        else np.zeros(n, dtype=bool)
    )
    _preference(columns["n_wished"][rows], wishes_me, c[0, backward])
    _preference(len(school.sdgs), shared_sdgs, c[1, forward])
    _preference(n_sdgs, shared_sdgs, c[1, backward])
    some = has_shared.view(np.uint8)
    np.take(_LANGUAGE_FIT, some + (shared & source.languages_instruction).any(axis=1), out=c[2, forward])
    np.take(_LANGUAGE_FIT, some + (shared & columns["languages_instruction"][rows]).any(axis=1), out=c[2, backward])
    c[3, forward] = (
        popcount(np.uint8(source.modes) & masks.usable_at(rows)) / len(school.exchange_modes)
        if school.exchange_modes
        else 0.0
    )
    usable_back = _backward_modes(source.modes)[modes, (overlap >= settings.min_overlap_hours).view(np.uint8)]
    c[3, backward] = 0.0
    np.divide(usable_back, n_modes, out=c[3, backward], where=n_modes != 0)
    c[4] = _level_fit(source.levels)[columns["levels"][rows]]
    c[5, forward] = hours if source.modes & VIRTUAL else 1.0
    c[5, backward] = np.where(modes & VIRTUAL, hours, 1.0)
    c[6] = 0.0
    return c


def weighted_scores(components: np.ndarray, similarity: np.ndarray, settings: MatchSettings) -> ArrayScores:
    """The fits and reciprocal score from :func:`fit_components` (written into, not copied) and
    the cosines. Every component is in one array, so the weighted means are one product and one
    sum down the components (added in the reference's order, one component after the other)
    instead of a dozen operations per direction."""
    c, n = components, components.shape[2]
    c[6] = np.clip(similarity, 0.0, 1.0)
    weight_of = dict(settings.fit)  # the fields as they are: model_dump would copy them on every call
    total = sum(weight_of.values())
    if total:
        weights = np.array([weight_of[name] for name in COMPONENTS])
        fits = np.add.reduce(weights[:, None, None] * c, axis=0) / total
    else:
        fits = np.zeros((2, n))
    fit_forward, fit_backward = fits[0], fits[1]
    both = fit_forward + fit_backward
    reciprocal = np.zeros(n)  # the harmonic mean, 0 where both fits are 0
    np.divide(2 * fit_forward * fit_backward, both, out=reciprocal, where=both > 0)
    return ArrayScores(fit_forward, fit_backward, reciprocal, similarity, c)
