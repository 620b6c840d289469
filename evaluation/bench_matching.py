"""Benchmark: suggestion latency of the full pipeline against a naive scan, at 100k schools.

    python -m evaluation.bench_matching --n 100000 --queries 1000 --naive-queries 20

Prints build time, p50/p99 latency of ``Matcher.suggest(k=10)`` (in-process, one thread), the
same for a naive implementation that checks and scores every school in Python/NumPy without
the index, their ratio, and the number of constraint violations over all requests (must be 0).

The text part of each profile vector comes from a hashed bag of words (embeddings/hashed.py,
scikit-learn's HashingVectorizer) instead of the sentence-transformers model: encoding 100k profiles with the
model takes about 20 minutes on two cores, and latency depends on the vectors' dimension, not on
where they came from. Text encoding speed is measured separately (see embeddings).
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from data.generator import PartnershipProcess, generate_world
from data.schema import School
from embeddings import EmbeddingSettings, HashedTextEmbedder
from matching.constraints import check_pair
from matching.engine import Matcher
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings


def percentiles(samples: list[float]) -> str:
    ms = np.asarray(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms   p99 {np.percentile(ms, 99):7.2f} ms   mean {ms.mean():7.2f} ms"


def naive_suggest(matcher: Matcher, source: School, vectors: np.ndarray, ids: list[str], k: int) -> list[str]:
    """Score every school: cosine by one matrix product, then every rule and the reciprocal score in Python."""
    ctx = matcher.context()
    similarity = vectors @ matcher.vector(source)
    scored = []
    for row, school_id in enumerate(ids):
        candidate = matcher.schools[school_id]
        check = check_pair(source, candidate, ctx)
        if check.ok:
            scored.append(
                (reciprocal_score(source, candidate, check, float(similarity[row]), ctx.settings).reciprocal, school_id)
            )
    scored.sort(reverse=True)
    return [school_id for _, school_id in scored[:k]]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="schools in the generated world")
    parser.add_argument(
        "--per-taiwanese-school",
        type=float,
        default=6.6,
        help="partnership rate of the generator (6.6 gives ~300k partnerships at 100k schools)",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--naive-queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    world = generate_world(
        args.n, seed=args.seed, process=PartnershipProcess(partnerships_per_taiwanese_school=args.per_taiwanese_school)
    )
    print(
        f"world: {len(world.schools):,} schools, {len(world.partnerships):,} partnerships "
        f"({sum(p.active for p in world.partnerships):,} active), generated in {time.perf_counter() - started:.1f} s"
    )

    with TemporaryDirectory() as cache:
        embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=Path(cache))
        started = time.perf_counter()
        matcher = Matcher.build(world.schools, world.partnerships, embedder, MatchSettings())
        print(
            f"build (embed {embedder.dim}-d vectors, two indexes: "
            + ", ".join(f"{side} {len(ix):,} {ix.kind}" for side, ix in matcher.indexes.items())
            + f", graph): {time.perf_counter() - started:.1f} s"
        )
        gc.collect()

        rng = random.Random(args.seed)
        active = [s for s in world.schools if s.active]
        sources = rng.sample(active, args.queries)
        ctx = matcher.context()
        for source in sources[:20]:  # warm up caches (time-zone offsets, FAISS)
            matcher.suggest(source, k=args.k)
        latencies, violations, returned = [], 0, 0
        for source in sources:
            t0 = time.perf_counter()
            result = matcher.suggest(source, k=args.k)
            latencies.append(time.perf_counter() - t0)
            returned += len(result.suggestions)
            violations += sum(not check_pair(source, matcher.schools[s.school_id], ctx).ok for s in result.suggestions)
        print(f"suggest k={args.k}, {args.queries} requests: {percentiles(latencies)}")
        print(
            f"  suggestions returned: {returned:,} ({returned / args.queries:.1f} per request); "
            f"constraint violations: {violations}"
        )

        ids = [s.id for s in active]
        vectors = embedder.embed(active)
        naive = []
        for source in sources[: args.naive_queries]:
            t0 = time.perf_counter()
            naive_suggest(matcher, source, vectors, ids, args.k)
            naive.append(time.perf_counter() - t0)
        print(f"naive scan of every school, {args.naive_queries} requests: {percentiles(naive)}")
        same = latencies[: args.naive_queries]
        print(
            f"speed-up on the same requests (p50 naive / p50 product): "
            f"{np.percentile(naive, 50) / np.percentile(same, 50):.0f}x; "
            f"p99 ratio over all requests: {np.percentile(naive, 99) / np.percentile(latencies, 99):.0f}x"
        )
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
