"""The request path's faster computations give exactly what the plain formulas they replace give."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from matching.constraints import Rule
from matching.diversify import mmr, pairwise_similarity
from matching.masks import RuleMasks, pack, unpack


def plain_mmr(scores: list[float], similarity: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR as first written: every gain recomputed from the running max similarity at each pick."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    relevance = np.asarray(scores, dtype=np.float64)
    chosen = [int(np.argmax(relevance))]
    max_sim = similarity[chosen[0]].astype(np.float64).copy()
    available = np.ones(n, dtype=bool)
    available[chosen[0]] = False
    while len(chosen) < min(k, n):
        gain = lam * relevance - (1 - lam) * max_sim
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, similarity[best])
    return chosen


@pytest.mark.parametrize("seed", range(300))
def test_mmr_picks_what_the_plain_formula_picks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 40)), int(rng.integers(0, 15))
    lam = float(rng.choice([0.0, 0.3, 0.95, 1.0, rng.random()]))
    scores = np.round(rng.random(n), int(rng.integers(1, 4))).tolist()  # rounded: many ties
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = pairwise_similarity(list(rng.choice(["MY", "VN", "TH"], n)), vectors)
    assert mmr(scores, similarity, k, lam) == plain_mmr(scores, similarity, k, lam)


def plain_eliminated(violations: dict[Rule, np.ndarray], examined: np.ndarray) -> Counter[Rule]:
    """The per-rule counts as first written: one full-length mask operation per rule."""
    full = violations[Rule.AT_CAPACITY] & examined
    open_ = examined & ~full
    counts: Counter[Rule] = Counter()
    for rule, mask in violations.items():
        n = int(np.count_nonzero(full if rule == Rule.AT_CAPACITY else mask & open_))
        if n:
            counts[rule] = n
    return counts


@pytest.mark.parametrize("seed", range(60))
def test_packed_masks_count_and_combine_as_the_boolean_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 63, 64, 65, 200, 1000]))
    violations = {rule: rng.random(n) < rng.choice([0.0, 0.05, 0.5, 1.0]) for rule in Rule}
    shared = {rule: (mask, pack(mask)) for rule, mask in violations.items() if rng.random() < 0.5}
    stale = next(iter(shared), None)  # a copy that replaces a shared mask must not read its old words
    if stale is not None:
        violations[stale] = rng.random(n) < 0.3
    masks = RuleMasks(violations, np.zeros(n), np.zeros(n, dtype=np.uint8), shared)
    examined = rng.random(n) < 0.7
    broken = np.logical_or.reduce(list(violations.values()))
    assert np.array_equal(masks.broken, broken) and np.array_equal(masks.passing(), ~broken)
    found, plain = masks.eliminated(examined), plain_eliminated(violations, examined)
    assert found == plain and list(found) == list(plain)  # same counts, in the same order
    assert np.array_equal(unpack(pack(examined), n), examined)
