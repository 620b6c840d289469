"""Prometheus metrics (requests and latency by route template, suggestion latency, index size,
the process's CPU, memory and open files) and one JSON log line per request.

Each app has its own registry, so several apps in one process (tests, two replicas) never
collide on metric names.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is echoed only if it is a plain token; anything else gets a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
request_log = logging.getLogger("partnermatch.requests")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _IndexSize(Collector):
    """Read at scrape time, so the figure is never stale after a live update or a swap."""

    def __init__(self, sizes: Callable[[], dict[str, int]]) -> None:
        self.sizes = sizes

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "partnermatch_index_schools", "Active schools in the vector index, by partition", labels=["partition"]
        )
        for partition, size in sorted(self.sizes().items()):
            gauge.add_metric([partition], size)
        yield gauge


class Metrics:
    def __init__(self, index_sizes: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "partnermatch_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "partnermatch_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.suggestion_latency = Histogram(
            "partnermatch_suggestion_duration_seconds",
            "Time to compute one suggestion list",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_IndexSize(index_sizes))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting requests and timing them by route template (/v1/schools/{school_id},
    not one series per id; requests that match no route count as "unmatched"), echoing or giving
    each an X-Request-ID, and logging one JSON line per request: request id, method, route,
    status, duration and the key's id (never the key)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            duration = time.perf_counter() - started
            count, timer = self._series(scope["method"], route, status)
            count.inc()
            timer.observe(duration)
            if request_log.isEnabledFor(logging.INFO):
                line = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "key_id": (scope.get("state") or {}).get("key_id"),
                }
                request_log.info(orjson.dumps(line).decode())

    def _series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The counter and timer children of one method, route template and status, looked up once:
        ``labels()`` builds and locks on every call. Route templates and statuses are few, so the
        cache stays small."""
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
        return found
