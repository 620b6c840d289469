"""Shared by the tests that serve the app: a state holding a generated world, and uvicorn on a
free loopback port in a thread (a real HTTP server, as `partnermatch serve` runs it)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from service.state import ServiceState


def load_world(state: ServiceState, world: Any) -> ServiceState:
    """Store the world's schools and partnerships, then build (or load) the index."""
    state.store.upsert_schools(world.schools)
    state.store.upsert_partnerships(world.partnerships)
    state.start()
    return state


@dataclass
class UvicornThread:
    """uvicorn serving ``app`` from a background thread; ``stop()`` shuts it down as Ctrl-C does."""

    base: str
    server: uvicorn.Server
    thread: threading.Thread
    listener: socket.socket

    @classmethod
    def start(cls, app: FastAPI) -> UvicornThread:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        return cls(f"http://127.0.0.1:{listener.getsockname()[1]}", server, thread, listener)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.listener.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"
