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

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from matching.masks import HOSTING, VIRTUAL, VISIT, RuleMasks, pair_modes_bits
from matching.reasons import Reason
from matching.scoring import FULL_OVERLAP_HOURS, Fit, PairScore
from matching.settings import FitWeights, MatchSettings
from matching.table import ProfileTable, Row, popcount


@cache
def _thread_pools() -> ThreadpoolController:
    """The loaded thread pools, listed once (milliseconds); limiting a known one takes microseconds."""
    return ThreadpoolController()


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread: a request's products are small (a few hundred
    rows at most), and waking BLAS threads on a machine whose cores are busy costs more than the
    product itself."""
    return _thread_pools().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class ArrayScores:
    """fit(source→candidate), fit(candidate→source) and their harmonic mean, one entry per candidate,
    with every fit component both ways (what an explanation cites)."""

    forward: np.ndarray
    backward: np.ndarray
    reciprocal: np.ndarray
    similarity: np.ndarray
    """The profile vectors' cosine, as searched (the embedding component is it clipped to [0, 1])."""
    forward_components: dict[str, np.ndarray]
    backward_components: dict[str, np.ndarray]

    def pair_score(self, n: int) -> PairScore:
        """Candidate ``n``'s scores as the reference :func:`~matching.scoring.reciprocal_score` gives them."""
        return PairScore(
            Fit({name: float(c[n]) for name, c in self.forward_components.items()}, float(self.forward[n])),
            Fit({name: float(c[n]) for name, c in self.backward_components.items()}, float(self.backward[n])),
            float(self.similarity[n]),
            float(self.reciprocal[n]),
        )


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

    def source_scores(
        self, table: ProfileTable, source: Row, rows: np.ndarray, paths: PathSums | None = None
    ) -> dict[str, np.ndarray]: ...

    def explain(self, features: np.ndarray) -> list[list[Reason]]: ...


def reciprocal_base(
    table: ProfileTable, source: Row, rows: np.ndarray, similarity: np.ndarray, scores: ArrayScores
) -> np.ndarray:
    """The default :data:`PairScorer`: the reciprocal score itself."""
    return scores.reciprocal


def weighted(components: dict[str, np.ndarray], weights: FitWeights) -> np.ndarray:
    """The weighted mean of fit components, in the order and with the weights of the reference."""
    weight_of = dict(weights)  # the fields as they are: model_dump would copy them on every call
    total = sum(weight_of.values())
    if not total:
        return np.zeros(np.broadcast(*components.values()).shape)
    return sum(weight_of[name] * c for name, c in components.items()) / total


def _per_candidate(components: dict[str, np.ndarray | float], n: int) -> dict[str, np.ndarray]:
    """Each component as one float64 per candidate (a constant one repeated), as the reference adds them."""
    return {name: np.asarray(c, dtype=float) if np.ndim(c) else np.full(n, c, float) for name, c in components.items()}


def _preference(wanted: int | np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Share of what was asked for that the other offers; 0.5 when nothing was asked for."""
    return np.where(wanted == 0, 0.5, shared / np.maximum(wanted, 1))


def _has_code(bitset: np.ndarray, codes: np.ndarray | int) -> np.ndarray:
    """Bit ``codes`` of each bitset (rows of a 2-D array, or one 1-D bitset for every code)."""
    codes = np.asarray(codes, dtype=np.int64)
    safe = np.maximum(codes, 0)
    words = bitset[..., safe // 64] if bitset.ndim == 1 else bitset[np.arange(len(bitset)), safe // 64]
    found = (words >> (safe % 64).astype(np.uint64)) & np.uint64(1)
    return (found != 0) & (codes >= 0)


def swap_visits(modes: np.ndarray) -> np.ndarray:
    """Each bitset with visit and hosting swapped: the other side of the same trip."""
    return ((modes & VIRTUAL) | np.where(modes & VISIT, HOSTING, 0) | np.where(modes & HOSTING, VISIT, 0)).astype(
        np.uint8
    )


def reciprocal_scores(
    table: ProfileTable,
    source: Row,
    rows: np.ndarray,
    similarity: np.ndarray,
    masks: RuleMasks,
    settings: MatchSettings,
) -> ArrayScores:
    """Both fits and the reciprocal score of ``source`` with each of ``rows`` (see the module docstring)."""
    school = source.school
    country = table["country"][rows]
    modes, n_modes = table["modes"][rows], table["n_modes"][rows]
    sdgs, n_sdgs = table["sdgs"][rows], table["n_sdgs"][rows]
    wished, n_wished = table["wished"][rows], table["n_wished"][rows]
    shared = table["languages_exchange"][rows] & source.languages_exchange
    has_shared = shared.any(axis=1)
    overlap, usable = masks.overlap[rows], masks.usable[rows]
    same_level = np.where((table["levels"][rows] & source.levels) != 0, 1.0, 0.5)
    embedding = np.clip(similarity, 0.0, 1.0)
    in_shared_hours = overlap >= settings.min_overlap_hours
    # pair_modes(candidate, source), less virtual outside shared hours
    backward_usable = np.where(in_shared_hours, modes & source.modes & VIRTUAL, 0).astype(np.uint8)
    backward_usable |= swap_visits(pair_modes_bits(source.modes, modes) & ~np.uint8(VIRTUAL))
    shared_sdgs = popcount(sdgs & np.uint32(source.sdgs))
    forward_components = _per_candidate(
        {
            "target_country": _preference(len(school.target_countries), _has_code(source.wished, country)),
            "sdg": _preference(len(school.sdgs), shared_sdgs),
            "language": np.where(has_shared, 0.6 + 0.4 * (shared & source.languages_instruction).any(axis=1), 0.0),
            "mode": (
                popcount(np.uint8(source.modes) & usable) / len(school.exchange_modes)
                if school.exchange_modes
                else np.zeros(len(rows))
            ),
            "level": same_level,
            "timezone": np.minimum(overlap / FULL_OVERLAP_HOURS, 1.0) if source.modes & VIRTUAL else 1.0,
            "embedding": embedding,
        },
        len(rows),
    )
    backward_components = _per_candidate(
        {
            "target_country": _preference(n_wished, _has_code(wished, np.full(len(rows), source.country))),
            "sdg": _preference(n_sdgs, shared_sdgs),
            "language": np.where(
                has_shared, 0.6 + 0.4 * (shared & table["languages_instruction"][rows]).any(axis=1), 0.0
            ),
            "mode": np.where(n_modes == 0, 0.0, popcount(modes & backward_usable) / np.maximum(n_modes, 1)),
            "level": same_level,
            "timezone": np.where(modes & VIRTUAL, np.minimum(overlap / FULL_OVERLAP_HOURS, 1.0), 1.0),
            "embedding": embedding,
        },
        len(rows),
    )
    forward, backward = weighted(forward_components, settings.fit), weighted(backward_components, settings.fit)
    total = forward + backward
    reciprocal = np.where(total > 0, 2 * forward * backward / np.where(total > 0, total, 1.0), 0.0)
    return ArrayScores(forward, backward, reciprocal, similarity, forward_components, backward_components)
