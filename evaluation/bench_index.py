"""Benchmark of matching/index.py at catalogue sizes: build, upsert, search, recall, memory, restart.

Run: ``python -m evaluation.bench_index --sizes 10000 100000``

Vectors are laid out like ProfileEmbedder's: sqrt(weight_text) x a 384-d text vector next to the
weighted structured blocks, L2-normalised. The structured part is real: StructuredEncoder over a
``data.generator`` world (``--world`` schools, rows drawn with replacement up to the catalogue
size, as many schools share levels, SDGs and languages). The text part is synthetic, because
encoding 100k texts takes ~15 min on this machine (the embeddings work reports encoding time):
a cloud calibrated against MiniLM vectors of generated profile texts (see ``synthetic_text``).

Each size is measured for both index kinds and, in the same run, a brute-force NumPy scan
(matrix product + argpartition), so the speed-up ratios compare like with like.
Targets at 100k: single-query p99 <= 2 ms with recall@50 >= 0.95, >= 10x faster than the NumPy
scan, upsert <= 20 ms, load <= 5 s.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from data.generator import generate_world
from embeddings.features import StructuredEncoder, weighted_blocks
from embeddings.settings import EmbeddingSettings
from matching.index import IndexOptions, VectorIndex, create_index, load_index

TEXT_DIM = 384
TEXT_FACETS = [(25, 2), (30, 1), (10, 2), (6, 1)]  # themes, place, activities, level: (choices, picked)
K = 50
ENGINE_OVERFETCH = 8.0  # MatchSettings.overfetch: the engine fetches k x 8 candidates to filter


def normalise(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def multi_hot(rng: np.random.Generator, n: int, width: int, chosen: int) -> np.ndarray:
    """``chosen`` random columns of ``width`` set per row, scaled to unit norm."""
    block = np.zeros((n, width), np.float32)
    picks = np.argsort(rng.random((n, width)), axis=1)[:, :chosen]
    np.put_along_axis(block, picks, 1.0 / np.sqrt(chosen), axis=1)
    return block


def synthetic_text(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit text vectors whose neighbourhoods look like MiniLM's on generated profile texts.

    A direction all profile texts share, the facets a text is made of (themes, place, activities,
    level) and a personal remainder. Calibrated on 2,000 generated schools' ``profile_text``
    encoded with all-MiniLM-L6-v2: mean pair cosine 0.71, nearest 0.91, 10th 0.86, 50th 0.82;
    this cloud at 2,000: 0.74, 0.90, 0.86, 0.83.
    """
    text = 1.6 * normalise(rng.standard_normal((1, TEXT_DIM))) + np.zeros((n, TEXT_DIM), np.float32)
    for width, chosen in TEXT_FACETS:
        text += multi_hot(rng, n, width, chosen) @ normalise(rng.standard_normal((width, TEXT_DIM))) / 2
    return normalise(text + 0.3 * normalise(rng.standard_normal((n, TEXT_DIM))))


def world_structured(world_size: int, seed: int) -> np.ndarray:
    """Weighted structured blocks of a generated world, exactly as ProfileEmbedder.structured makes them."""
    schools = generate_world(world_size, seed).schools
    encoder = StructuredEncoder().fit(schools)
    return weighted_blocks(encoder.transform(schools), encoder.block_slices, EmbeddingSettings().structured_weights())


def profile_vectors(n: int, structured_pool: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    text = synthetic_text(n, rng) * math.sqrt(EmbeddingSettings().weight_text)
    structured = structured_pool[rng.integers(len(structured_pool), size=n)]
    return normalise(np.hstack([text, structured]))


def rss_bytes() -> int:
    """Resident set size now (Linux), after handing freed heap back, to see what an index adds."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Latencies:
    """Milliseconds per call: wall clock, and CPU time of the calling thread.

    On a shared machine the wall-clock tail is mostly time the scheduler gave other processes;
    the CPU tail is what the call itself costs (single queries run on the calling thread only).
    """

    wall: np.ndarray
    cpu: np.ndarray

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.wall, q))

    def __str__(self) -> str:
        return (
            f"p50 {self.percentile(50):7.3f} ms  p99 {self.percentile(99):7.3f} ms"
            f"  (CPU p99 {np.percentile(self.cpu, 99):6.3f} ms)"
        )


def latencies_ms(action: Callable[[int], object], count: int) -> Latencies:
    wall, cpu = np.empty(count), np.empty(count)
    for n in range(count):
        start_wall, start_cpu = time.perf_counter(), time.thread_time()
        action(n)
        wall[n], cpu[n] = time.perf_counter() - start_wall, time.thread_time() - start_cpu
    return Latencies(wall * 1000, cpu * 1000)


def numpy_top_k(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute force: every score, then the top k sorted."""
    scores = queries @ matrix.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def recall(found: list[list[tuple[str, float]]], truth: np.ndarray, ids: list[str]) -> float:
    hits = [len({i for i, _ in row} & {ids[j] for j in truth_row}) for row, truth_row in zip(found, truth, strict=True)]
    return sum(hits) / truth.size


def bench_kind(
    kind: str, ids: list[str], matrix: np.ndarray, queries: np.ndarray, truth: np.ndarray, upserts: int
) -> dict[str, float]:
    rss_before = rss_bytes()
    index: VectorIndex = create_index(matrix.shape[1], len(ids), kind=kind)
    build_s = timed(lambda: index.build(ids, matrix))
    rss_delta = rss_bytes() - rss_before

    single = latencies_ms(lambda n: index.search(queries[n], K), len(queries))
    deep = latencies_ms(lambda n: index.search(queries[n], K, overfetch=ENGINE_OVERFETCH), len(queries))
    batched_ms = timed(lambda: index.search(queries, K)) * 1000 / len(queries)
    found = index.search(queries, K)
    recall_at_k = recall(found, truth, ids)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index"
        save_s = timed(lambda: index.save(path))
        index_bytes = sum(f.stat().st_size for f in path.iterdir())
        start = time.perf_counter()
        loaded = load_index(path)
        load_s = time.perf_counter() - start
        restart_same = loaded.search(queries[:20], K) == index.search(queries[:20], K)
        del loaded

    rng = np.random.default_rng(7)
    replacements = normalise(rng.standard_normal((upserts, matrix.shape[1])))
    targets = [ids[j] if n % 2 else f"new-{n}" for n, j in enumerate(rng.integers(len(ids), size=upserts))]
    upsert = latencies_ms(lambda n: index.upsert([targets[n]], replacements[n : n + 1]), upserts)

    print(
        f"  {kind:5}  single query {single}   batched {batched_ms:6.3f} ms/query"
        f"   recall@{K} {recall_at_k:.4f}\n"
        f"         single query fetching {K}x{ENGINE_OVERFETCH:g} (engine default) {deep}\n"
        f"         build {build_s:6.2f} s   upsert mean {upsert.wall.mean():7.3f} ms"
        f"  p99 {upsert.percentile(99):7.3f} ms  max {upsert.wall.max():7.3f} ms\n"
        f"         index {index_bytes / 2**20:6.1f} MiB   RSS +{rss_delta / 2**20:6.1f} MiB   save {save_s:5.2f} s"
        f"   load {load_s:5.2f} s   same results after load: {restart_same}"
    )
    return {"p50": single.percentile(50), "p99": single.percentile(99), "batched": batched_ms}


def bench_size(size: int, structured_pool: np.ndarray, query_count: int, upserts: int) -> None:
    vectors = profile_vectors(size + query_count, structured_pool, seed=size)
    matrix, queries = vectors[:size], vectors[size:]
    ids = [f"s{n:07d}" for n in range(size)]
    auto_kind = create_index(matrix.shape[1], size).kind
    print(
        f"\n{size:,} profiles x {matrix.shape[1]} dims, {query_count} queries, k={K} (auto picks {auto_kind}); "
        f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    with threadpool_limits(1):  # one thread, like the index's single queries: like for like
        numpy_single = latencies_ms(lambda n: numpy_top_k(matrix, queries[n : n + 1], K), query_count)
    numpy_batched = timed(lambda: numpy_top_k(matrix, queries, K)) * 1000 / query_count
    truth = numpy_top_k(matrix, queries, K)
    print(f"  numpy  single query {numpy_single}   batched {numpy_batched:6.3f} ms/query")

    for kind in ("exact", "hnsw"):
        figures = bench_kind(kind, ids, matrix, queries, truth, upserts)
        ratios = {
            "single p50": numpy_single.percentile(50) / figures["p50"],
            "single p99": numpy_single.percentile(99) / figures["p99"],
            "batched": numpy_batched / figures["batched"],
        }
        print("         speed-up over numpy: " + "   ".join(f"{name} {ratio:5.1f}x" for name, ratio in ratios.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--upserts", type=int, default=200)
    parser.add_argument("--world", type=int, default=5000, help="generated schools the structured rows come from")
    args = parser.parse_args()
    defaults = IndexOptions()
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads; HNSW M={defaults.hnsw_m} "
        f"efConstruction={defaults.hnsw_ef_construction} efSearch={defaults.hnsw_ef_search}; "
        f"exact up to {defaults.exact_max_size:,} profiles"
    )
    start = time.perf_counter()
    structured_pool = world_structured(args.world, seed=1)
    print(
        f"structured part from a generated world of {args.world:,} schools "
        f"({structured_pool.shape[1]} dims, {time.perf_counter() - start:.1f} s)"
    )
    for size in args.sizes:
        bench_size(size, structured_pool, args.queries, args.upserts)


if __name__ == "__main__":
    main()
