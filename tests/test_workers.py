"""`serve --workers N`'s supervisor (service.workers) with real processes: every worker listens on
its own socket of the shared port and gets a share of new connections, a worker that dies is
replaced, SIGTERM stops them all, and a port someone else holds stops the supervisor at once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.test_workers:pid_app"


async def pid_app(scope: dict, receive: Callable, send: Callable) -> None:
    """An ASGI app answering its worker's process id."""
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _supervisor(port: int, workers: int) -> subprocess.Popen[bytes]:
    serve = f"serve_workers({APP!r}, '127.0.0.1', {port}, {workers})"
    code = f"from service.workers import serve_workers; raise SystemExit({serve})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _answers(port: int, connections: int) -> Counter[int]:
    """Which worker answered each of this many fresh connections (empty while none listens)."""
    found: Counter[int] = Counter()
    for _ in range(connections):
        with contextlib.suppress(httpx.TransportError):
            found[int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text)] += 1
    return found


def _until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def two_workers() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    supervisor = _supervisor(port, 2)
    try:
        yield port, supervisor
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(30)


def test_each_worker_gets_a_share_is_replaced_when_it_dies_and_all_stop_on_sigterm(
    two_workers: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, supervisor = two_workers
    _until(lambda: len(_answers(port, 20)) == 2, "both workers answering")
    shares = _answers(port, 60)
    # Each connection goes to either socket by a hash: 60 of them fall at least 10 / 50 but for a
    # chance below one in a hundred million. One shared socket gave one worker nearly all of them.
    assert len(shares) == 2 and min(shares.values()) >= 10, shares

    gone = min(shares)
    os.kill(gone, signal.SIGKILL)
    _until(lambda: len(found := _answers(port, 20)) == 2 and gone not in found, "a new worker answering")

    workers = set(_answers(port, 20))
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(60) == 0
    for pid in workers:
        _until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"worker {pid} still running", 10)  # type: ignore[misc]
    assert not _answers(port, 3)


def test_a_port_taken_by_another_program_stops_the_supervisor() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        supervisor = _supervisor(taken.getsockname()[1], 2)
        try:
            assert supervisor.wait(60) == 1
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
        assert b"could not start serving" in (supervisor.stderr.read() if supervisor.stderr else b"")
