"""Maximal marginal relevance over country and profile similarity.

Without it the top 10 for a Taiwanese school is often ten Malaysian Chinese-medium schools:
each a good match, together a poor choice. MMR trades a little score for variety.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matching.arrays import one_blas_thread


def pairwise_similarity(countries: Sequence[str], vectors: np.ndarray, country_weight: float = 0.5) -> np.ndarray:
    """Similarity of two suggestions: same country counts `country_weight`, profile cosine the rest.

    >>> sim = pairwise_similarity(["MY", "MY", "VN"], np.eye(3, dtype=np.float32))
    >>> float(sim[0, 1]), float(sim[0, 2])
    (0.5, 0.0)
    """
    codes = np.asarray(countries)
    same_country = (codes[:, None] == codes[None, :]).astype(np.float32)
    # BLAS on one thread: for a few dozen rows, waking its threads on a busy machine costs far more
    # (measured 35 ms for 30 rows on two shared cores) than the product, 0.07 ms on one thread
    # (numpy's einsum, which never threads, takes 0.2 ms).
    with one_blas_thread():
        cosine = np.clip(vectors @ vectors.T, 0.0, 1.0)
    return country_weight * same_country + (1 - country_weight) * cosine


def mmr(scores: Sequence[float], similarity: np.ndarray, k: int, lam: float) -> list[int]:
    """Indices of up to k items chosen greedily by lam·score − (1−lam)·max similarity to those chosen.

    >>> sim = np.array([[1, .9, 0], [.9, 1, 0], [0, 0, 1]])
    >>> mmr([1.0, 0.95, 0.7], sim, k=2, lam=0.5)
    [0, 2]
    """
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    relevance = np.asarray(scores, dtype=np.float64)
    # lam·score and (1−lam)·similarity are worked out once, not on every pick: scaling by a
    # constant ≥ 0 commutes with the running max exactly (rounding is monotone), so every gain is
    # the same float as lam·score − (1−lam)·max similarity; a pick's score turns -inf, never again picked.
    base = lam * relevance
    penalty = (1 - lam) * similarity.astype(np.float64)
    chosen: list[int] = [int(np.argmax(relevance))]
    worst = penalty[chosen[0]].copy()
    base[chosen[0]] = -np.inf
    gain = np.empty(n)
    while len(chosen) < min(k, n):
        best = int(np.argmax(np.subtract(base, worst, out=gain)))
        chosen.append(best)
        base[best] = -np.inf
        np.maximum(worst, penalty[best], out=worst)
    return chosen
