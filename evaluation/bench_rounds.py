"""Benchmark of matching rounds (matching/rounds.py) on generated worlds: time, and the exact
assignment's total score against greedy, side by side in one run.

Run: ``python -m evaluation.bench_rounds --sizes 5000 20000``

Each size: ``generate_world(n, seed)``, a Matcher built over it, then a round over every active
school with spare capacity: candidate edges from the index (``per_school`` per school, every hard
rule applied), the exact assignment (min-cost flow under scope "home", integer program under
"any"), greedy on the same edges, and the result with reasons. Setup (world, vectors, index) is
timed apart from the round.

Vectors: by default **structured-only** (the text block of every profile vector is zero), because
encoding the generator's descriptions (~700 characters) with the sentence model is slow: 5,000 took
340 s on the shared 2-core machine (~15 profiles/s), so 20,000 would take over 20 minutes, and a
round does not depend on how vectors were made, only on the candidate graph they give.
``--text`` uses the real model with the on-disk embedding cache (``--cache-dir``) instead.
Targets (issue 12): a round over 5,000 schools <= 5 s and over 20,000 <= 30 s on 2 quiet cores,
total >= greedy. Wall and CPU seconds are printed per phase (candidates; solve, greedy, comparison
and reasons): on a shared, busy machine the CPU figure is the one to compare.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.generator import generate_world
from data.schema import School
from embeddings import EmbeddingSettings, ProfileEmbedder
from matching.engine import Matcher
from matching.rounds import RoundOptions, gather_candidates, solve_round
from matching.settings import MatchSettings

TARGET_SECONDS = {5_000: 5.0, 20_000: 30.0}  # issue 12, on a quiet machine (2 cores)


class StructuredOnlyEmbedder(ProfileEmbedder):
    """Profile vectors without the text block: the structured features alone (labelled as such)."""

    def text_vectors(self, schools: Sequence[School]) -> np.ndarray:
        return np.zeros((len(schools), self.text_dim), dtype=np.float32)


def build_matcher(n: int, seed: int, text: bool, cache_dir: Path, settings: MatchSettings) -> tuple[Matcher, dict]:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    world = generate_world(n, seed)
    timings["world"] = time.perf_counter() - start
    embedding = EmbeddingSettings(show_progress=False, **({} if text else {"weight_text": 0.0}))
    embedder = (ProfileEmbedder if text else StructuredOnlyEmbedder)(embedding, cache_dir=cache_dir)
    start = time.perf_counter()
    matcher = Matcher.build(world.schools, world.partnerships, embedder, settings)
    timings["matcher"] = time.perf_counter() - start
    return matcher, timings


def bench(n: int, seed: int, text: bool, cache_dir: Path, options: RoundOptions, scope: str) -> bool:
    settings = MatchSettings(scope=scope)
    matcher, setup = build_matcher(n, seed, text, cache_dir, settings)
    start, cpu_start = time.perf_counter(), time.process_time()
    gathered = gather_candidates(matcher, options=options)
    gather_seconds, gather_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start, cpu_start = time.perf_counter(), time.process_time()
    result = solve_round(matcher, gathered)
    solve_seconds, solve_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    total_seconds = gather_seconds + solve_seconds
    best, greedy = result.comparison.optimal, result.comparison.greedy
    target = TARGET_SECONDS.get(n)
    within = target is None or total_seconds <= target
    not_below = best.total_weight >= greedy.total_weight - 1e-6
    print(
        f"\n== {n:,} schools (seed {seed}, scope {scope}, {'text+structured' if text else 'structured-only'} "
        f"vectors, per_school {options.per_school}, overfetch {options.overfetch:g}, "
        f"coverage_first {options.coverage_first}, nsp_priority {options.nsp_priority})"
    )
    print(f"setup: world {setup['world']:.1f} s, matcher (vectors + index) {setup['matcher']:.1f} s")
    print(
        f"cohort {result.cohort_size:,} schools, {len(gathered.room):,} with a free place, "
        f"{result.candidate_edges:,} candidate edges, solver {result.method}"
    )
    verdict = f" (target <= {target:.0f} s: {'met' if within else 'MISSED'})" if target else ""
    print(
        f"round: candidates {gather_seconds:.1f} s + solve/compare/reasons {solve_seconds:.1f} s "
        f"= {total_seconds:.1f} s wall{verdict}; CPU {gather_cpu:.1f} s + {solve_cpu:.1f} s = "
        f"{gather_cpu + solve_cpu:.1f} s (all threads); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine may be shared)"
    )
    header = (
        f"{'':10}{'pairs':>8}{'matched':>9}{'total score':>13}{'total weight':>14}{'worst-off':>11}"
        f"{'bottom 10%':>12}{'blocking':>10}"
    )
    print(header)
    for name, summary in (("optimal", best), ("greedy", greedy)):
        print(
            f"{name:10}{summary.pairs:>8,}{summary.matched_schools:>9,}{summary.total_score:>13.2f}"
            f"{summary.total_weight:>14.2f}{summary.worst_off_score or 0:>11.3f}"
            f"{summary.bottom_decile_score or 0:>12.3f}{summary.blocking_pairs:>10,}"
        )
    print(
        f"uplift over greedy: {result.comparison.score_uplift:+.3f} total score "
        f"({result.comparison.score_uplift_percent or 0:+.3f}%), "
        f"{result.comparison.extra_matched_schools:+,} matched schools; total >= greedy: {not_below}"
    )
    reasons = {u.reason.value for u in result.unmatched}
    print(f"unmatched cohort schools: {len(result.unmatched):,} ({', '.join(sorted(reasons)) or 'none'})")
    return within and not_below


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-school", type=int, default=20)
    parser.add_argument("--scope", choices=["home", "any"], default="home")
    parser.add_argument("--coverage-first", action="store_true")
    parser.add_argument("--nsp-priority", action="store_true")
    parser.add_argument("--text", action="store_true", help="real sentence-model text vectors (cached on disk)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache for --text")
    args = parser.parse_args()
    options = RoundOptions(
        per_school=args.per_school, coverage_first=args.coverage_first, nsp_priority=args.nsp_priority
    )
    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.cache_dir or Path(scratch)
        results = [bench(n, args.seed, args.text, cache_dir, options, args.scope) for n in args.sizes]
    print(f"\nall targets met and never below greedy: {all(results)}")


if __name__ == "__main__":
    main()
