"""`partnermatch serve --workers N`: N worker processes on one port, each listening on a socket of
its own (SO_REUSEPORT), so the kernel spreads new connections across them.

uvicorn's own supervisor binds one socket in the parent and hands it to every worker: whichever
worker's event loop wakes first accepts every connection waiting (asyncio accepts up to the backlog
in one go), so when clients connect together one worker took most of them and the other had little
to do. With a socket per worker the kernel picks the worker of each new connection by a hash of its
addresses, whatever the workers are doing. A keep-alive connection stays with the worker that
accepted it.

The supervisor starts the workers, starts a worker again when one dies (not when it failed before
serving: that would fail again), and on SIGINT or SIGTERM stops them all with SIGTERM, each
finishing its requests and closing its state, and waits for them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.context import SpawnProcess

STARTUP_FAILURE = 3
"""A worker's exit status when it could not start serving (uvicorn's own, e.g. a lifespan error)."""
_CHECK_SECONDS = 0.5


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port that other processes may bind too (SO_REUSEPORT): each
    such socket gets its own share of the new connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _worker(app: str, host: str, port: int) -> None:
    """One worker process: its own socket on the shared port, one uvicorn server on it."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False)
    try:
        sock = reuse_port_socket(host, port)
    except OSError as exc:
        logging.getLogger("uvicorn.error").error("cannot listen on %s:%d: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole group; the server stopped already
        uvicorn.Server(config).run(sockets=[sock])


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serve_workers(app: str, host: str, port: int, workers: int, report: Callable[[str], None] = _stderr) -> int:
    """Run `workers` processes serving the ASGI app at import path `app` on host:port until SIGINT
    or SIGTERM; returns the exit status (1 when a worker could not start serving)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no state shared by fork

    def start() -> SpawnProcess:
        process = context.Process(target=_worker, args=(app, host, port), name="partnermatch-worker")
        process.start()
        return process

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    status = 0
    try:
        while not stop.wait(_CHECK_SECONDS):
            for n, process in enumerate(processes):
                if process.exitcode is None:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    report(f"worker {process.pid} could not start serving; stopping")
                    status = 1
                    stop.set()
                    break
                report(f"worker {process.pid} exited with status {process.exitcode}; starting another")
                processes[n] = start()
    finally:
        for process in processes:
            if process.exitcode is None:
                process.terminate()
        for process in processes:
            process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
