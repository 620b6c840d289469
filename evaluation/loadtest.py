"""Load test: concurrent HTTP clients asking a running API for suggestions.

    python -m evaluation.loadtest --world 5000 --clients 20 --duration 30
    python -m evaluation.loadtest --world 5000 --text-encoder hashed --duration 30 --workers 1 2
    python -m evaluation.loadtest --world 100000 --text-encoder hashed --duration 30
    python -m evaluation.loadtest --url http://127.0.0.1:8000 --key KEY --clients 20 --requests 5000

With --world N it generates a world of N schools into a data dir (a temporary one unless
--data-dir is given; a data dir that already holds schools is reused as it is), makes a portal
key, starts `partnermatch serve --workers N` on a free 127.0.0.1 port in a subprocess, waits for
/readyz, and stops the server at the end; with several counts (`--workers 1 2`) it serves and loads
the same world once per count, one after the other in the same run, so the figures compare. The
server's CPU and RSS are summed over its process tree (the workers are its children); with several
workers the server-side histogram is left out, as each worker counts only its own requests.
With --url it uses a server already running.

Each client is one keep-alive HTTP/1.1 connection sending GET /v1/schools/{id}/suggestions?k=K
for random active schools (seeded) back to back and reading each whole answer; all clients share
one uvloop event loop, and answers are parsed with httptools, so the client costs a fraction of a
millisecond of CPU per request (the report prints it). A warm-up phase is not counted. Latency is
measured in the client, so it includes the client's own time; the load generator shares the
machine's cores with the server, which the output says.

--text-encoder hashed (PARTNERMATCH_EMBEDDING_TEXT_ENCODER=hashed) fills the text block with a
hashed bag of words instead of the model: benchmarks only, no semantics, but the same vector
dimension, so a 100k world is served at the cost a model-encoded one would have.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import httptools
import httpx
import numpy as np
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from data.settings import StorageSettings
from data.store import Store

SUGGESTIONS = "/v1/schools/{school_id}/suggestions"
# The server's own request timer (service/metrics.py), read from /metrics before and after.
SERVER_HISTOGRAM = "partnermatch_http_request_duration_seconds"
REQUEST_TIMEOUT = 60.0
"""Seconds a client waits for one answer before counting a TimeoutError."""
# (world size the target is stated for, workers, p99 ms at most, req/s at least or None), for 20
# clients on the same 2 cores: the targets (issue 12).
TARGETS: tuple[tuple[int, int, float, float | None], ...] = (
    (5_000, 1, 50.0, 150.0),
    (5_000, 2, 50.0, 300.0),
    (100_000, 1, 100.0, None),
)
TARGET_CLIENTS = 20
TARGET_SERVER_CPU_MS = 3.0
"""Server CPU per request at most (issue 12), all worker processes together."""
# Environment variables that would point the spawned server at another database or data dir.
_DATABASE_ENV = ("DATABASE_URL", "PARTNERMATCH_DATABASE_URL", "PARTNERMATCH_INDEX_DIR")

TextEncoder = Literal["model", "hashed"]


@dataclass
class LoadResult:
    """What one run measured; latencies in milliseconds, measured in the client."""

    url: str
    world: int
    clients: int
    k: int
    text_encoder: str | None
    rate: float | None
    requests: int
    errors: int
    status_counts: dict[str, int]
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    server_rss_mb: float | None = None
    server_peak_rss_mb: float | None = None
    server_mean_ms: float | None = None
    server_p50_at_most_ms: float | None = None
    server_p99_at_most_ms: float | None = None
    server_cpu_ms_per_request: float | None = None
    client_cpu_ms_per_request: float | None = None
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)
    workers: int | None = None
    """Worker processes of a server this script started; None for --url."""
    setup_seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- the load


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a GET and reads the whole answer, parsed by
    httptools (the parser uvicorn's server side uses). A load generator sharing the cores with the
    server must cost little per request: httpx's client took about 1.5-3 ms of CPU per request
    here, as much as half of what the server spent; this takes a small fraction of that."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None
        self.body_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    def _fail(self, exc: BaseException) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    async def get(self, request: bytes, timeout: float) -> int:
        """Send one request (bytes on the wire) and wait for its whole answer: its status code."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.body_bytes = 0
        self.transport.write(request)
        return await asyncio.wait_for(self.answer, timeout)


async def _client(
    base_url: str,
    key: str,
    ids: Sequence[str],
    k: int,
    rng: random.Random,
    deadline: float | None,
    budget: list[int],
    latencies: list[float],
    statuses: Counter[str],
    pace: tuple[float, float] | None,
) -> None:
    """One keep-alive connection asking until the shared budget or the deadline runs out: back to
    back (closed loop), or with pace=(first send time, interval) on a fixed schedule (open loop),
    latency then counted from the scheduled send time, so a server falling behind shows it. A
    connection that fails is counted (by the error's name) and opened anew."""
    url = httpx.URL(base_url)
    headers = f"Host: {url.host}:{url.port}\r\nX-API-Key: {key}\r\nAccept: application/json\r\n\r\n"
    loop = asyncio.get_running_loop()
    connection: _Connection | None = None
    next_at = pace[0] if pace else 0.0
    while (deadline is None or max(time.perf_counter(), next_at) < deadline) and budget[0] > 0:
        budget[0] -= 1
        path = SUGGESTIONS.format(school_id=rng.choice(ids))
        request = f"GET {path}?k={k} HTTP/1.1\r\n{headers}".encode("latin-1")
        started = time.perf_counter()
        if pace:
            if next_at > started:
                await asyncio.sleep(next_at - started)
            started, next_at = next_at, next_at + pace[1]
        try:
            if connection is None or connection.transport is None:
                _, connection = await loop.create_connection(_Connection, url.host, url.port)
            status = str(await connection.get(request, REQUEST_TIMEOUT))
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            status = type(exc).__name__
            if connection is not None and connection.transport is not None:
                connection.transport.close()
            connection = None
        latencies.append(time.perf_counter() - started)
        statuses[status] += 1
    if connection is not None and connection.transport is not None:
        connection.transport.close()


async def _phase(
    base_url: str,
    key: str,
    ids: Sequence[str],
    *,
    clients: int,
    k: int,
    seed: int,
    requests: int | None,
    duration: float | None,
    rate: float | None = None,
) -> tuple[list[float], Counter[str], float]:
    """All clients at once, back to back or together offering `rate` requests/s; returns the
    latencies (s), status counts and the phase's wall time."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    budget = [requests if requests is not None else sys.maxsize]
    started = time.perf_counter()
    deadline = started + duration if duration is not None else None

    def pace(n: int) -> tuple[float, float] | None:
        return (started + n / rate, clients / rate) if rate else None

    await asyncio.gather(
        *(
            _client(base_url, key, ids, k, random.Random(f"{seed}:{n}"), deadline, budget, latencies, statuses, pace(n))
            for n in range(clients)
        )
    )
    return latencies, statuses, time.perf_counter() - started


def run_load(
    base_url: str,
    key: str,
    ids: Sequence[str],
    *,
    clients: int,
    k: int,
    seed: int,
    requests: int | None,
    duration: float | None,
    warmup: int,
    rate: float | None = None,
    server_pid: int | None = None,
) -> tuple[list[float], Counter[str], float, dict[str, float]]:
    """A warm-up phase (not counted, back to back), then the measured one. The last item holds
    the CPU time per measured request of this process and of the server (when its pid is known):
    on shared cores, what each side costs says more than wall time."""
    if warmup:
        uvloop.run(_phase(base_url, key, ids, clients=clients, k=k, seed=seed + 1, requests=warmup, duration=None))
    client_cpu, server_cpu, histogram = time.process_time(), cpu_seconds(server_pid), server_histogram(base_url)
    latencies, statuses, seconds = uvloop.run(
        _phase(base_url, key, ids, clients=clients, k=k, seed=seed, requests=requests, duration=duration, rate=rate)
    )
    done = max(len(latencies), 1)
    cpu = {"client_cpu_ms_per_request": round((time.process_time() - client_cpu) * 1000 / done, 2)}
    server_after = cpu_seconds(server_pid)
    if server_cpu is not None and server_after is not None:
        cpu["server_cpu_ms_per_request"] = round((server_after - server_cpu) * 1000 / done, 2)
    return latencies, statuses, seconds, cpu | server_view(histogram, server_histogram(base_url))


def server_histogram(base_url: str) -> dict[str, float]:
    """The suggestions route's buckets ("le" -> cumulative count), "sum" and "count" from /metrics."""
    try:
        text = httpx.get(f"{base_url}/metrics", timeout=30.0).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != SERVER_HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.labels.get("route") != SUGGESTIONS:
                continue
            kind = sample.name.removeprefix(SERVER_HISTOGRAM)
            found[sample.labels["le"] if kind == "_bucket" else kind.lstrip("_")] = sample.value
    return found


def server_view(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean and the bucket bounds of p50 and p99 of the requests timed by the server in between:
    the time spent inside the app, without the client's share or the wait to be read."""
    count = after.get("count", 0.0) - before.get("count", 0.0)
    if count <= 0:
        return {}
    view = {"server_mean_ms": round((after["sum"] - before.get("sum", 0.0)) * 1000 / count, 2)}
    bounds = sorted(
        (float(le), after[le] - before.get(le, 0.0)) for le in after if le not in ("sum", "count", "created")
    )
    for name, share in (("server_p50_at_most_ms", 0.5), ("server_p99_at_most_ms", 0.99)):
        bound = next((le for le, n in bounds if n >= share * count), float("inf"))
        if bound != float("inf"):
            view[name] = bound * 1000
    return view


def summarise(latencies: Sequence[float], statuses: Counter[str], seconds: float, **facts: object) -> LoadResult:
    ms = np.asarray(latencies, dtype=float) * 1000 if latencies else np.zeros(1)
    return LoadResult(
        requests=len(latencies),
        errors=sum(n for status, n in statuses.items() if status != "200"),
        status_counts=dict(sorted(statuses.items())),
        seconds=round(seconds, 3),
        throughput=round(len(latencies) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p95_ms=round(float(np.percentile(ms, 95)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        mean_ms=round(float(ms.mean()), 2),
        max_ms=round(float(ms.max()), 2),
        **facts,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- a server of our own


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float] | None:
    """(current, peak) resident set size of a process and its descendants in MB, summed (shared
    pages count once per process), from /proc (Linux only)."""
    current = peak = 0.0
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/status").read_text(encoding="ascii")
        except OSError:
            continue
        values = {
            line.split(":")[0]: int(line.split()[1])
            for line in text.splitlines()
            if line.startswith(("VmRSS:", "VmHWM:"))
        }
        if "VmRSS" in values:
            current += values["VmRSS"] / 1024
            peak += values.get("VmHWM", values["VmRSS"]) / 1024
    return (current, peak) if current else None


def process_tree(pid: int) -> list[int]:
    """The process and its living descendants (a multi-worker server's workers), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in children.read_text(encoding="ascii").split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process and its descendants have used, from /proc (Linux only)."""
    if pid is None:
        return None
    total, seen = 0.0, False
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total, seen = total + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), True
    return total if seen else None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def server_env(data_dir: Path, text_encoder: TextEncoder, cache_dir: Path | None) -> dict[str, str]:
    """The environment for the CLI and the server: this data dir and nothing else."""
    env = {name: value for name, value in os.environ.items() if name not in _DATABASE_ENV}
    env |= {
        "PARTNERMATCH_DATA_DIR": str(data_dir),
        "PARTNERMATCH_EMBEDDING_TEXT_ENCODER": text_encoder,
        "PARTNERMATCH_EMBEDDING_SHOW_PROGRESS": "false",
        "HF_HUB_OFFLINE": "1",
    }
    if cache_dir is not None:
        env["PARTNERMATCH_EMBEDDING_CACHE_DIR"] = str(cache_dir)
    return env


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_world(data_dir: Path, n: int, seed: int, env: dict[str, str]) -> tuple[list[str], str, float]:
    """Generate the world unless the data dir already holds schools; make a portal key.
    Returns the active school ids, the key and the seconds generation took (0 when reused)."""
    storage = StorageSettings(data_dir=data_dir)
    with Store.from_settings(storage) as store:
        existing = store.count_schools(active=None)
    took = 0.0
    if existing:
        _say(f"reusing the {existing:,} schools already in {data_dir}")
    else:
        _say(f"generating a world of {n:,} schools (seed {seed}) into {data_dir}")
        started = time.perf_counter()
        subprocess.run(
            _cli("generate", "--n", str(n), "--seed", str(seed)), env=env, check=True, stdout=subprocess.DEVNULL
        )
        took = time.perf_counter() - started
    made = subprocess.run(
        _cli("keys", "create", "--role", "portal", "--name", "loadtest"),
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    with Store.from_settings(storage) as store:
        ids = [school.id for school in store.iter_schools(active=True)]
    return ids, made.stdout.strip(), took


@contextmanager
def served(
    env: dict[str, str], log_path: Path, timeout: float, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`partnermatch serve --workers N` on a free port, yielded once /readyz answers 200 (from
    every worker); stopped afterwards."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = _cli("serve", "--port", str(port), "--workers", str(workers))
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(base_url, process, log_path, timeout, workers)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=120)  # closing saves the index
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


READY_CONNECTIONS = 40
"""/readyz must answer 200 on this many fresh connections in a row before a multi-worker server is
measured: each new connection goes to one worker, chosen by the kernel, so a single answer says
only that one worker is ready (a worker still loading would answer 503 to its share)."""


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float, workers: int) -> None:
    deadline = time.monotonic() + timeout
    needed = READY_CONNECTIONS if workers > 1 else 1
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready:\n{tail}")
        if all(_ready_on_a_new_connection(base_url) for _ in range(needed)):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the server was not ready after {timeout:.0f} s (log: {log_path})")


def _ready_on_a_new_connection(base_url: str) -> bool:
    try:
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def ids_from_api(base_url: str, key: str) -> list[str]:
    """Every active school id, page by page (for a server this script did not start)."""
    ids: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=60.0) as client:
        while True:
            params: dict[str, str | int] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = client.get("/v1/schools", params=params)
            response.raise_for_status()
            body = response.json()
            ids.extend(item["id"] for item in body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                return ids


def indexed(base_url: str) -> int:
    """Active schools in the server's index, from /readyz."""
    response = httpx.get(f"{base_url}/readyz", timeout=30.0)
    response.raise_for_status()
    return sum(response.json()["indexed"].values())


# --------------------------------------------------------------------------- report


def target_for(world: int, workers: int = 1) -> tuple[int, int, float, float | None]:
    """The stated target nearest the world size (on a log scale), then the worker count."""
    return min(
        TARGETS,
        key=lambda target: (round(abs(np.log(target[0]) - np.log(max(world, 1))), 6), abs(target[1] - workers)),
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def format_result(result: LoadResult) -> str:
    rss = (
        f"{result.server_rss_mb:.0f} MB (peak {result.server_peak_rss_mb:.0f} MB)"
        if result.server_rss_mb is not None
        else "n/a (give --server-pid)"
    )
    rows = [
        ("world size (active, indexed)", f"{result.world:,}"),
        ("text encoder", result.text_encoder or "as the server is configured"),
        (
            "clients",
            f"{result.clients} "
            + (f"(open loop, offering {result.rate:g} req/s in all)" if result.rate else "(closed loop, back to back)"),
        ),
        ("k", str(result.k)),
        ("server worker processes", "as the server runs" if result.workers is None else str(result.workers)),
        ("requests", f"{result.requests:,} in {result.seconds:.1f} s"),
        ("errors (non-200)", f"{result.errors:,}"),
        ("throughput", f"{result.throughput:.1f} req/s"),
        ("latency p50 / p95 / p99", f"{result.p50_ms:.1f} / {result.p95_ms:.1f} / {result.p99_ms:.1f} ms"),
        ("latency mean / max", f"{result.mean_ms:.1f} / {result.max_ms:.1f} ms"),
        (
            "server-side mean; p50 / p99 at most",
            f"{_ms(result.server_mean_ms)}; {_ms(result.server_p50_at_most_ms)} / "
            f"{_ms(result.server_p99_at_most_ms)} (histogram buckets)",
        ),
        ("server RSS", rss),
        (
            "CPU per request: server / client",
            f"{_ms(result.server_cpu_ms_per_request)} / {_ms(result.client_cpu_ms_per_request)}",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {value}" for label, value in rows]
    if result.errors:
        lines.append("  status counts: " + ", ".join(f"{s}: {n}" for s, n in result.status_counts.items()))
    size, workers, p99, rate = target_for(result.world, result.workers or 1)
    verdicts = [f"p99 <= {p99:.0f} ms: {'met' if result.p99_ms <= p99 else 'MISSED'} ({result.p99_ms:.1f} ms)"]
    if rate is not None:
        verdicts.append(
            f">= {rate:.0f} req/s: {'met' if result.throughput >= rate else 'MISSED'} ({result.throughput:.1f} req/s)"
        )
    if result.server_cpu_ms_per_request is not None:
        cpu = result.server_cpu_ms_per_request
        verdicts.append(
            f"server CPU <= {TARGET_SERVER_CPU_MS:.0f} ms/request: "
            f"{'met' if cpu <= TARGET_SERVER_CPU_MS else 'MISSED'} ({cpu:.1f} ms)"
        )
    caveat = "" if result.clients == TARGET_CLIENTS else f"; this run used {result.clients} clients"
    if result.workers is not None and result.workers != workers:
        caveat += f"; this run used {result.workers} workers"
    lines.append(
        f"  target for a {size:,}-school world, {TARGET_CLIENTS} clients, {workers} worker(s){caveat}: "
        + "; ".join(verdicts)
    )
    lines.append(
        f"  note: the load generator ran on the same {result.cpu_count} core(s) as the server, "
        "and latency is measured in the client"
    )
    if not result.rate:
        lines.append(
            "  note: closed loop, so mean latency = clients / throughput (Little's law): latency under "
            f"{p99:.0f} ms with {result.clients} clients needs >= {result.clients / p99 * 1000:.0f} req/s"
        )
    if result.setup_seconds:
        lines.append("  setup: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in result.setup_seconds.items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000 (needs --key)")
    target.add_argument("--world", type=int, help="generate this many schools and serve them here")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, to report its RSS and CPU")
    parser.add_argument(
        "--key",
        default=os.environ.get("PARTNERMATCH_LOADTEST_KEY"),
        help="staff or portal API key for --url (or PARTNERMATCH_LOADTEST_KEY)",
    )
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=float, help="seconds to measure (default 30 unless --requests)")
    amount.add_argument("--requests", type=int, help="requests to measure, over all clients")
    parser.add_argument(
        "--rate",
        type=float,
        help="offer this many requests/s in all, on a fixed schedule (open loop; latency counted "
        "from the scheduled time); default: each client sends back to back (closed loop)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="requests before measuring, not counted")
    parser.add_argument("--k", type=int, default=10, help="suggestions per request (default 10)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the world and of the school ids asked for")
    parser.add_argument(
        "--text-encoder",
        choices=["model", "hashed"],
        default=None,
        help="with --world: model (default) or hashed (benchmarks only: no semantics)",
    )
    parser.add_argument("--data-dir", type=Path, help="with --world: keep the world here (reused if it has schools)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="with --world: embedding cache to reuse between runs (default: inside the data dir)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="with --world: server worker processes; several counts (e.g. 1 2) are measured one after "
        "the other on the same world, in this run (default 1)",
    )
    parser.add_argument("--start-timeout", type=float, default=3600, help="seconds to wait for /readyz")
    parser.add_argument("--json", type=Path, help="also write the results (a list, one per server) as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> list[LoadResult]:
    """One result per server measured: the --url one, or one per --workers count."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.clients < 1 or args.k < 1 or (args.requests is not None and args.requests < 1):
        parser.error("--clients, --k and --requests must be at least 1")
    if any(workers < 1 for workers in args.workers):
        parser.error("--workers must be at least 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.url and not args.key:
        parser.error("--url needs --key (a staff or portal API key)")
    duration = args.duration if args.duration is not None or args.requests is not None else 30.0
    load = {
        "clients": args.clients,
        "k": args.k,
        "seed": args.seed,
        "requests": args.requests,
        "duration": duration,
        "warmup": args.warmup,
        "rate": args.rate,
    }

    if args.url:
        base_url = args.url.rstrip("/")
        ids = ids_from_api(base_url, args.key)
        latencies, statuses, seconds, cpu = run_load(base_url, args.key, ids, server_pid=args.server_pid, **load)
        memory = rss_mb(args.server_pid) if args.server_pid else None
        results = [
            summarise(
                latencies,
                statuses,
                seconds,
                url=base_url,
                world=indexed(base_url),
                clients=args.clients,
                k=args.k,
                text_encoder=args.text_encoder,
                rate=args.rate,
                server_rss_mb=round(memory[0], 1) if memory else None,
                server_peak_rss_mb=round(memory[1], 1) if memory else None,
                **cpu,
            )
        ]
        print(format_result(results[0]), flush=True)
    else:
        results = _run_world(args, load)
    if len(results) > 1:
        print("side by side, same world, same run:")
        for result in results:
            print(
                f"  {result.workers} worker(s): {result.throughput:.1f} req/s, p99 {result.p99_ms:.1f} ms, "
                f"server CPU {_ms(result.server_cpu_ms_per_request)} per request"
            )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    return results


def _run_world(args: argparse.Namespace, load: dict[str, object]) -> list[LoadResult]:
    text_encoder: TextEncoder = args.text_encoder or "model"
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="partnermatch-load-")) if temporary else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        env = server_env(data_dir, text_encoder, args.cache_dir)
        ids, key, generate_seconds = prepare_world(data_dir, args.world, args.seed, env)
        results = []
        for workers in args.workers:
            result = _serve_and_load(args, load, env, data_dir, ids, key, workers, text_encoder)
            result.setup_seconds = {"generate": round(generate_seconds, 1), **result.setup_seconds}
            print(format_result(result), flush=True)
            results.append(result)
            generate_seconds = 0.0
        return results
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _serve_and_load(
    args: argparse.Namespace,
    load: dict[str, object],
    env: dict[str, str],
    data_dir: Path,
    ids: list[str],
    key: str,
    workers: int,
    text_encoder: TextEncoder,
) -> LoadResult:
    """One server with this many workers on the prepared world, loaded and stopped."""
    started = time.perf_counter()
    with served(env, data_dir / f"server-{workers}.log", args.start_timeout, workers) as (base_url, process):
        start_seconds = time.perf_counter() - started
        _say(
            f"server ready on {base_url} with {workers} worker(s) after {start_seconds:.1f} s; "
            f"{len(ids):,} active schools; load: {args.clients} clients"
        )
        latencies, statuses, seconds, cpu = run_load(base_url, key, ids, server_pid=process.pid, **load)  # type: ignore[arg-type]
        memory = rss_mb(process.pid)
        world = indexed(base_url)
    if workers > 1:  # each worker keeps its own histogram, and /metrics answers from one of them
        cpu = {name: value for name, value in cpu.items() if not name.startswith("server_") or "cpu" in name}
    return summarise(
        latencies,
        statuses,
        seconds,
        url=base_url,
        world=world,
        clients=args.clients,
        k=args.k,
        text_encoder=text_encoder,
        rate=args.rate,
        workers=workers,
        server_rss_mb=round(memory[0], 1) if memory else None,
        server_peak_rss_mb=round(memory[1], 1) if memory else None,
        **cpu,
        setup_seconds={f"start with {workers} worker(s) (load or build index)": round(start_seconds, 1)},
    )


if __name__ == "__main__":
    main()
