"""Benchmark: does a matching round stall other requests? Suggestions and profile edits measured
while the server is idle and while a round over the whole world runs, side by side in one run.

    python -m evaluation.bench_round_load --world 10000
    python -m evaluation.bench_round_load --world 1000 --idle-seconds 5     # while developing

It generates a world into a data dir (a temporary one unless --data-dir is given; one that already
holds schools is reused), makes a staff key, starts `partnermatch serve` (one uvicorn worker) with
the hashed text encoder by default (as evaluation/loadtest.py does: no model encoding, the same
vector sizes), and then:

1. idle: --clients threads ask for suggestions of random active schools, and one more client
   edits a profile (PATCH capacity) every --patch-every seconds, for --idle-seconds;
2. round: POST /v1/rounds for every active school with a free place (a background job), and the
   same clients go on until GET /v1/rounds/{id} says the job is done.

It prints suggestion p50/p99 idle and during the round (and their ratio), every PATCH's latency,
and the round's length. The issue's targets: suggestion p99 during a round within 2x of idle, and
a PATCH under 1 s. Clients share the machine's cores with the server, which the output says.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from evaluation.loadtest import TextEncoder, _cli, prepare_world, served, server_env

SUGGESTIONS = "/v1/schools/{school_id}/suggestions"
P99_RATIO_TARGET = 2.0
PATCH_TARGET_SECONDS = 1.0


@dataclass
class Phase:
    """Latencies (seconds) of one phase's suggestions and edits, and the clients making them."""

    suggestions: list[float] = field(default_factory=list)
    patches: list[float] = field(default_factory=list)
    patch_starts: list[float] = field(default_factory=list)  # time.monotonic() when each PATCH was sent
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)


def ask(base_url: str, key: str, ids: Sequence[str], phase: Phase, stop: threading.Event, seed: int) -> None:
    """One client asking for suggestions back to back until stopped."""
    pick = random.Random(seed)
    with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=300) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = client.get(SUGGESTIONS.format(school_id=pick.choice(ids)), params={"k": 10})
            except httpx.TransportError:  # a keep-alive connection closed under us: counted, not timed
                phase.errors += 1
                continue
            took = time.perf_counter() - started
            if response.status_code == 200:
                phase.suggestions.append(took)
            else:
                phase.errors += 1


def edit(base_url: str, key: str, school_id: str, phase: Phase, stop: threading.Event, every: float) -> None:
    """One staff client raising and lowering a school's capacity every `every` seconds."""
    with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=300) as client:
        capacity = client.get(f"/v1/schools/{school_id}").json()["capacity"]
        step = 1
        while not stop.wait(every):
            sent, started = time.monotonic(), time.perf_counter()
            try:
                response = client.patch(f"/v1/schools/{school_id}", json={"capacity": capacity + step})
            except httpx.TransportError:
                phase.errors += 1
                continue
            phase.patches.append(time.perf_counter() - started)
            phase.patch_starts.append(sent)
            if response.status_code != 200:
                phase.errors += 1
            step = 1 - step


def run_phase(base_url: str, key: str, ids: Sequence[str], clients: int, patch_every: float | None) -> Phase:
    """Start the phase's clients; :func:`finish` stops them."""
    phase = Phase()
    phase.threads = [
        threading.Thread(target=ask, args=(base_url, key, ids, phase, phase.stop, seed), daemon=True)
        for seed in range(clients)
    ]
    if patch_every is not None:
        phase.threads.append(
            threading.Thread(target=edit, args=(base_url, key, ids[0], phase, phase.stop, patch_every), daemon=True)
        )
    for thread in phase.threads:
        thread.start()
    return phase


def finish(phase: Phase) -> None:
    phase.stop.set()
    for thread in phase.threads:
        thread.join(600)


Stage = tuple[float, str]  # time.monotonic() when the job was first seen in it, and the stage


def round_job(base_url: str, key: str, poll: float = 0.5) -> tuple[float, list[Stage], tuple[float, float]]:
    """Start a round over every school with a free place; wait for the job. Returns its length,
    the stages it reported (each with when it was first seen), and how long reading the finished
    round took the first time (the GET that saw it done) and once more."""
    with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=300) as client:
        started = time.perf_counter()
        accepted = client.post("/v1/rounds", json={})
        accepted.raise_for_status()
        job_id = accepted.json()["id"]
        stages: list[Stage] = [(time.monotonic(), "submitted")]
        while True:
            try:
                asked = time.perf_counter()
                job = client.get(f"/v1/rounds/{job_id}").json()
                read_seconds = time.perf_counter() - asked
            except httpx.TransportError:
                continue
            if stages[-1][1] != job["stage"]:
                stages.append((time.monotonic(), job["stage"]))
            if job["status"] in ("done", "failed"):
                if job["status"] == "failed":
                    raise RuntimeError(f"the round failed: {job['error']}")
                took = time.perf_counter() - started
                asked = time.perf_counter()
                client.get(f"/v1/rounds/{job_id}").raise_for_status()
                return took, stages, (read_seconds, time.perf_counter() - asked)
            time.sleep(poll)


def stage_at(stages: Sequence[Stage], moment: float) -> str:
    """The stage the job was last seen in at `moment` (polled, so it may lag by one poll)."""
    current = "before the round"
    for seen, stage in stages:
        if seen > moment:
            break
        current = stage
    return current


def _ms(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def report(
    world: int,
    clients: int,
    idle: Phase,
    during: Phase,
    round_seconds: float,
    stages: list[Stage],
    reads: tuple[float, float],
) -> str:
    idle_p99, round_p99 = _ms(idle.suggestions, 99), _ms(during.suggestions, 99)
    ratio = round_p99 / idle_p99 if idle_p99 else float("nan")
    worst_patch = max(during.patches, default=float("nan"))
    slowest = sorted(zip(during.patches, during.patch_starts, strict=True), reverse=True)[:3]
    lines = [
        f"round under load: {world:,} schools, {clients} suggestion clients + 1 editing client, one worker, "
        "clients and server on the same cores",
        f"  round job:               {round_seconds:.1f} s  (stages: {' -> '.join(s for _, s in stages[1:])})",
        f"  suggestions idle:        n={len(idle.suggestions)}  p50 {_ms(idle.suggestions, 50):.1f} ms  "
        f"p99 {idle_p99:.1f} ms",
        f"  suggestions in a round:  n={len(during.suggestions)}  p50 {_ms(during.suggestions, 50):.1f} ms  "
        f"p99 {round_p99:.1f} ms",
        f"  p99 round / idle:        {ratio:.2f}x  (target <= {P99_RATIO_TARGET:.0f}x: "
        f"{'met' if ratio <= P99_RATIO_TARGET else 'NOT met'})",
        f"  PATCH idle:              n={len(idle.patches)}  p50 {_ms(idle.patches, 50):.0f} ms  "
        f"max {max(idle.patches, default=float('nan')) * 1000:.0f} ms",
        f"  PATCH in a round:        n={len(during.patches)}  p50 {_ms(during.patches, 50):.0f} ms  "
        f"max {worst_patch * 1000:.0f} ms  (target < {PATCH_TARGET_SECONDS:.0f} s: "
        f"{'met' if worst_patch < PATCH_TARGET_SECONDS else 'NOT met'})",
        "  slowest PATCHes:         "
        + ", ".join(f"{took * 1000:.0f} ms ({stage_at(stages, sent)})" for took, sent in slowest),
        f"  GET the done round:      first {reads[0] * 1000:.0f} ms, again {reads[1] * 1000:.0f} ms",
        f"  errors:                  idle {idle.errors}, in the round {during.errors}",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.bench_round_load", description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=int, default=10_000, help="schools to generate (default 10,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, help="keep the world here (reused when it holds schools)")
    parser.add_argument("--embedding-cache-dir", type=Path, help="an embedding cache to share between runs")
    parser.add_argument("--text-encoder", choices=["model", "hashed"], default="hashed")
    parser.add_argument("--clients", type=int, default=4, help="suggestion clients (default 4)")
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="length of the idle phase")
    parser.add_argument("--patch-every", type=float, default=1.0, help="seconds between PATCHes during the round")
    parser.add_argument("--ready-timeout", type=float, default=1800.0)
    return parser


def main(argv: Sequence[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    temporary = args.data_dir is None
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix="partnermatch-round-load-"))
    encoder: TextEncoder = args.text_encoder
    try:
        env = server_env(data_dir, encoder, args.embedding_cache_dir)
        ids, _, _ = prepare_world(data_dir, args.world, args.seed, env)
        staff = subprocess.run(
            _cli("keys", "create", "--role", "staff", "--name", "bench_round_load"),
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        with served(env, data_dir / "server.log", args.ready_timeout) as (base_url, _):
            idle = run_phase(base_url, staff, ids, args.clients, args.patch_every)
            time.sleep(args.idle_seconds)
            finish(idle)
            during = run_phase(base_url, staff, ids, args.clients, args.patch_every)
            round_seconds, stages, reads = round_job(base_url, staff)
            finish(during)
        text = report(len(ids), args.clients, idle, during, round_seconds, stages, reads)
        print(text)
        return text
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
