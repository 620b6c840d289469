"""Benchmark: suggestion latency of the full pipeline against a naive scan, at 100k schools.

    python -m evaluation.bench_matching --n 100000 --queries 1000 --scan-queries 100 --naive-queries 20

Prints build time, p50/p99 latency of ``Matcher.suggest(k=10)`` (in-process, one thread) beside
one raw HNSW query on the same vectors (no rules, no scores) in the same run, and two baselines
without the index: an honest vectorised NumPy full scan (every rule as a mask, every eligible
school scored with array operations, top k) and the old scan that checks and scores every school
in Python, with the ratios, the number of constraint violations over all requests (must be 0),
and resident memory (now and peak) after loading the profiles, after the build and at the end, so
what the profiles themselves hold is told apart from what the engine adds. The world is generated in
a child process (its own peak is printed beside the rest) and read back as a service reads its
store: the profiles as objects, the partnership records streamed into the graph one at a time, as
the engine keeps only the graph of them; the generator's working set is not the engine's. Both baselines read the
vectors FAISS stores in place (``VectorIndex.stored``) instead of a second copy of them. With
``--ranker`` it also trains the reciprocal ranker on the world's history and
times the same requests with and without it, in turns, to show what the trained score adds.
``--world-dir DIR`` keeps the generated world and the built indexes there, so later runs with the
same world arguments read them back instead of generating and building again (minutes at 100k).

The text part of each profile vector comes from a hashed bag of words (embeddings/hashed.py,
scikit-learn's HashingVectorizer) instead of the sentence-transformers model: encoding 100k profiles with the
model takes about 20 minutes on two cores, and latency depends on the vectors' dimension, not on
where they came from. Text encoding speed is measured separately (see embeddings).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import random
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from data.generator import PartnershipProcess, generate_world
from data.schema import Partnership, School
from embeddings import EmbeddingSettings, HashedTextEmbedder
from matching.arrays import reciprocal_scores
from matching.constraints import SuggestionFilters, check_pair
from matching.engine import Matcher
from matching.masks import rule_masks
from matching.ranker import TrainingSettings, train
from matching.retrieve import Request, pool
from matching.scoring import reciprocal_score
from matching.settings import MatchSettings
from matching.table import SIDE_CODES


def percentiles(samples: list[float]) -> str:
    ms = np.asarray(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms   p99 {np.percentile(ms, 99):7.2f} ms   mean {ms.mean():7.2f} ms"


def stored_similarities(matcher: Matcher, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cosine of ``query`` with every indexed school (table rows, cosines): one matrix product
    per index over the vectors FAISS stores, read in place (no copy of the 100k vectors)."""
    rows_found, sims_found = [], []
    for side, index in matcher.indexes.items():
        labels, vectors = index.stored()
        rows = matcher.table.rows_by_label[SIDE_CODES[side]][labels]
        live = rows >= 0  # tombstones of replaced or removed profiles hold no row
        rows_found.append(rows[live])
        sims_found.append((vectors @ query)[live])
    return np.concatenate(rows_found), np.concatenate(sims_found)


def numpy_scan(matcher: Matcher, source: School, k: int) -> list[str]:
    """Every school at once without the index: cosine by one matrix product over all vectors, the
    rules as masks, the reciprocal score as array operations over every eligible school, top k."""
    settings, table = matcher.settings, matcher.table
    row = table.encode(source)
    partner_rows = [table.row_of[p] for p in matcher.partners(source.id)]
    masks = rule_masks(table, row, settings, settings.reference_date or date.today(), SuggestionFilters(), partner_rows)
    rows, similarity = stored_similarities(matcher, matcher.vector(source))
    ok = masks.passing()[rows]
    eligible, cosines = rows[ok], similarity[ok]
    scores = reciprocal_scores(table, row, eligible, cosines, masks, settings).reciprocal
    top = np.argsort(-scores, kind="stable")[:k]
    return [table.ids[r] for r in eligible[top]]


def naive_suggest(matcher: Matcher, source: School, k: int) -> list[str]:
    """Score every school: cosine by one matrix product, then every rule and the reciprocal score in Python."""
    ctx = matcher.context()
    rows, similarity = stored_similarities(matcher, matcher.vector(source))
    scored = []
    for row, cosine in zip(rows.tolist(), similarity.tolist(), strict=True):
        candidate = matcher.table.schools[row]
        check = check_pair(source, candidate, ctx)
        if check.ok:
            scored.append((reciprocal_score(source, candidate, check, cosine, ctx.settings).reciprocal, candidate.id))
    scored.sort(reverse=True)
    return [school_id for _, school_id in scored[:k]]


def write_world(n: int, seed: int, per_taiwanese_school: float, folder: Path) -> tuple[int, int, int]:
    """Generate the world and write it as JSON lines (schools, partnerships), in the child process
    that calls it: (partnerships, active ones, this process's peak RSS in MB)."""
    world = generate_world(
        n, seed=seed, process=PartnershipProcess(partnerships_per_taiwanese_school=per_taiwanese_school)
    )
    with (folder / "schools.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(school.model_dump_json() + "\n" for school in world.schools)
    with (folder / "partnerships.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(partnership.model_dump_json() + "\n" for partnership in world.partnerships)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return len(world.partnerships), sum(p.active for p in world.partnerships), peak


def read_partnerships(folder: Path) -> Iterator[Partnership]:
    """The partnership records one at a time, as a store's cursor gives them."""
    with (folder / "partnerships.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            yield Partnership.model_validate_json(line)


def memory(stage: str) -> str:
    """Resident memory now and at its peak so far, from the kernel's own counters."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    now, peak = (int(status[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM"))
    return f"memory {stage}: RSS {now:,} MB, peak {peak:,} MB"


def ranker_latencies(matcher: Matcher, partnerships: Sequence[Partnership], sources: Sequence[School], k: int) -> None:
    """Train the ranker on the world's history and time the same requests with it, in turns with
    the hand-weighted score (so machine noise falls on both): what the trained score adds."""
    started = time.perf_counter()
    model = train(matcher, partnerships, TrainingSettings())
    print(f"ranker trained in {time.perf_counter() - started:.1f} s on {model.metadata['rows']:,} rows")
    with_model = replace(matcher, ranker=model)
    for source in sources[:20]:
        with_model.suggest(source, k=k)
    timed: dict[str, list[float]] = {"hand-weighted": [], "ranker": []}
    pools = []
    for source in sources:
        for name, m in (("hand-weighted", matcher), ("ranker", with_model)):
            t0 = time.perf_counter()
            m.suggest(source, k=k)
            timed[name].append(time.perf_counter() - t0)
        pools.append(len(pool(with_model, with_model.table, Request(source, k, with_model.settings)).rows))
    for name, samples in timed.items():
        print(f"suggest k={k} ({name}), {len(sources)} requests in turns: {percentiles(samples)}")
    added = np.percentile(timed["ranker"], 99) - np.percentile(timed["hand-weighted"], 99)
    print(
        f"  the ranker adds {added * 1000:.2f} ms to p99 (candidates it scores: median {np.median(pools):,.0f}, "
        f"max {max(pools):,})"
    )


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
    parser.add_argument("--scan-queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--ranker", action="store_true", help="also train the ranker and time suggest with it on the same requests"
    )
    parser.add_argument(
        "--world-dir",
        type=Path,
        help="keep the generated world and the built indexes in this folder and read them back on later runs "
        "with the same --n, --seed and --per-taiwanese-school (the build then loads the saved indexes, "
        "as a service restart does; build time and memory are those of a load)",
    )
    args = parser.parse_args(argv)

    with world_folder(args) as (folder, saved):
        started = time.perf_counter()
        kept = (folder / WORLD_DONE).exists()
        written, active_written, child_peak = generated_world(args, folder)
        with (folder / "schools.jsonl").open(encoding="utf-8") as lines:
            schools = [School.model_validate_json(line) for line in lines]
        print(
            f"world: {len(schools):,} schools, {written:,} partnerships ({active_written:,} active), generated "
            f"in a child process (peak RSS {child_peak:,} MB){' by an earlier run' if kept else ''} and read back "
            f"in {time.perf_counter() - started:.1f} s"
        )
        print(memory("after reading the profiles"))
        history = list(read_partnerships(folder)) if args.ranker else []  # the ranker trains on them
        with TemporaryDirectory() as cache:
            embedder = HashedTextEmbedder(EmbeddingSettings(show_progress=False), cache_dir=Path(cache))
            started = time.perf_counter()
            if saved is not None and (saved / "matcher.json").exists():
                matcher = Matcher.load(saved, schools, history or read_partnerships(folder), embedder, MatchSettings())
                verb = f"indexes loaded from {saved}"
            else:
                matcher = Matcher.build(schools, history or read_partnerships(folder), embedder, MatchSettings())
                verb = f"embed {embedder.dim}-d vectors"
                if saved is not None:
                    matcher.save(saved)
            print(
                f"build ({verb}, two indexes: "
                + ", ".join(f"{side} {len(ix):,} {ix.kind}" for side, ix in matcher.indexes.items())
                + f", graph from the streamed records): {time.perf_counter() - started:.1f} s"
            )
            print(memory("after the build"))
            gc.collect()  # as the service does once an index is installed (service/state.py)
            gc.freeze()
            run_requests(matcher, schools, history, args)


WORLD_DONE = "world.json"
"""Written last into a kept world's folder (with the generator's counts): the world there is whole."""


@contextmanager
def world_folder(args: argparse.Namespace) -> Iterator[tuple[Path, Path | None]]:
    """(folder of the world's JSON lines, folder of the saved indexes or None): a temporary folder
    without ``--world-dir``, else that folder's entry for these generator arguments, kept."""
    if args.world_dir is None:
        with TemporaryDirectory() as folder:
            yield Path(folder), None
        return
    folder = args.world_dir / f"n{args.n}-seed{args.seed}-rate{args.per_taiwanese_school:g}"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder, folder / "index"


def generated_world(args: argparse.Namespace, folder: Path) -> tuple[int, int, int]:
    """Write the world into ``folder`` in a child process, unless a finished one is there already:
    (partnerships, active ones, the generating child's peak RSS in MB)."""
    done = folder / WORLD_DONE
    if done.exists():
        return tuple(json.loads(done.read_text(encoding="utf-8")))
    with multiprocessing.get_context("spawn").Pool(1) as child:
        counts = child.apply(write_world, (args.n, args.seed, args.per_taiwanese_school, folder))
    done.write_text(json.dumps(counts), encoding="utf-8")  # last: a run stopped midway leaves none
    return counts


def time_each(run: Callable[[School], object], sources: Sequence[School]) -> list[float]:
    """Seconds each call of ``run`` took, one source at a time."""
    seconds = []
    for source in sources:
        t0 = time.perf_counter()
        run(source)
        seconds.append(time.perf_counter() - t0)
    return seconds


def run_requests(
    matcher: Matcher, schools: Sequence[School], history: Sequence[Partnership], args: argparse.Namespace
) -> None:
    """Time suggest against one raw index query and both baselines on the same sampled requests."""
    rng = random.Random(args.seed)
    active = [s for s in schools if s.active]
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
    if args.ranker:
        ranker_latencies(matcher, history, sources, args.k)
    raw = []
    for source in sources:
        index = matcher.indexes[matcher.candidate_sides(source)[0]]
        query = matcher.vector(source)[None, :]
        t0 = time.perf_counter()
        index.search(query, args.k)
        raw.append(time.perf_counter() - t0)
    print(
        f"one raw {index.kind} query (k={args.k}, no rules, no scores), same requests: {percentiles(raw)}; "
        f"suggest / raw: p50 {np.percentile(latencies, 50) / np.percentile(raw, 50):.1f}x, "
        f"p99 {np.percentile(latencies, 99) / np.percentile(raw, 99):.1f}x"
    )
    print(
        f"  suggestions returned: {returned:,} ({returned / args.queries:.1f} per request); "
        f"constraint violations: {violations}"
    )

    scan = time_each(lambda source: numpy_scan(matcher, source, args.k), sources[: args.scan_queries])
    print(f"vectorised NumPy full scan, {args.scan_queries} requests: {percentiles(scan)}")
    naive = time_each(lambda source: naive_suggest(matcher, source, args.k), sources[: args.naive_queries])
    print(f"old Python scan of every school, {args.naive_queries} requests: {percentiles(naive)}")
    for name, baseline in (("NumPy scan", scan), ("Python scan", naive)):
        same = latencies[: len(baseline)]
        print(
            f"speed-up over the {name} on the same requests (p50 / p50): "
            f"{np.percentile(baseline, 50) / np.percentile(same, 50):.1f}x"
        )
    print(memory("at the end"))


if __name__ == "__main__":
    main()
