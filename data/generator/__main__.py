"""Generate a world and print how long it took and what it looks like.

python -m data.generator --n 100000            # the benchmark scale: must take under a minute
python -m data.generator --n 5000 --real-dir ../shared/data/real
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from data.generator import PartnershipProcess, generate_world
from data.schema import School
from data.taxonomies import HOME_COUNTRY_DEFAULT, NSP_COUNTRIES


def _shares_goal(a: School, b: School) -> bool:
    return bool(set(a.sdgs) & set(b.sdgs))


def _shares_local_language(a: School, b: School) -> bool:
    return bool((set(a.languages_exchange) & set(b.languages_exchange)) - {"en"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of schools")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real-dir", type=Path, default=None, help="folder with the real directories")
    parser.add_argument(
        "--per-taiwanese-school",
        type=float,
        default=None,
        help="partnerships per Taiwanese school (default: PartnershipProcess's)",
    )
    args = parser.parse_args()
    process = (
        PartnershipProcess(partnerships_per_taiwanese_school=args.per_taiwanese_school)
        if args.per_taiwanese_school is not None
        else None
    )

    wall, cpu = time.perf_counter(), time.process_time()
    world = generate_world(args.n, args.seed, real_dir=args.real_dir, process=process)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    schools = {s.id: s for s in world.schools}
    taiwanese = [s for s in world.schools if s.country == HOME_COUNTRY_DEFAULT]
    abroad = [s for s in world.schools if s.country != HOME_COUNTRY_DEFAULT]
    pairs = [(schools[p.school_a], schools[p.school_b]) for p in world.partnerships]
    rng = random.Random(0)
    random_pairs = [(rng.choice(taiwanese), rng.choice(abroad)) for _ in range(min(20000, 10 * len(pairs) + 1))]
    degree = Counter(b for p in world.partnerships for b in (p.school_a, p.school_b))

    def rate(test: Callable[[School, School], bool], sample: list[tuple[School, School]]) -> float:
        return sum(test(a, b) for a, b in sample) / max(1, len(sample))

    print(
        f"schools          {len(world.schools):,} ({len(taiwanese) / len(world.schools):.1%} Taiwanese; "
        f"{sum(s.country in NSP_COUNTRIES for s in abroad) / max(1, len(abroad)):.1%} of the rest New Southbound)"
    )
    print(
        f"partnerships     {len(world.partnerships):,} ({len(world.partnerships) / max(1, len(taiwanese)):.2f} "
        f"per Taiwanese school; {sum(p.end_date is None for p in world.partnerships):,} active)"
    )
    print(f"time             {wall:.1f} s wall, {cpu:.1f} s CPU, peak memory {peak_mb:,.0f} MB")
    print(
        f"share an SDG     partnered {rate(_shares_goal, pairs):.1%} vs random cross-border "
        f"{rate(_shares_goal, random_pairs):.1%}"
    )
    print(
        f"share a language partnered {rate(_shares_local_language, pairs):.1%} vs random "
        f"{rate(_shares_local_language, random_pairs):.1%} (other than English)"
    )
    print(
        f"most partners    {max(degree.values(), default=0)}; schools with none "
        f"{sum(1 for s in world.schools if s.id not in degree) / len(world.schools):.1%}"
    )


if __name__ == "__main__":
    main()
