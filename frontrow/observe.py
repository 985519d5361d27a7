"""Per-request metrics and one structured log line, as pure ASGI middleware."""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
import time
from typing import Any

from frontrow import pace
from frontrow.metrics import LATENCY, REQUESTS

access = logging.getLogger("frontrow.access")


@functools.cache
def _children(method: str, template: str, status: int) -> tuple[Any, Any]:
    # labels() takes a lock and builds a key per call; the set of routes is small.
    return REQUESTS.labels(method, template, str(status)), LATENCY.labels(method, template)


# A successful poll is counted, not logged: at a million waiting that is
# billions of lines a day nobody reads, and the line costs ~40 % of the
# poll's throughput. Failed and slow polls are logged, and one in SAMPLE.
SLOW_POLL_S = 0.5
POLL_LOG_SAMPLE = 10_000
_polls = itertools.count(1)


class _Tally:
    """Successful polls not logged, counted in plain numbers and added to
    Prometheus in bulk by flush(): recording a poll takes a third of the
    time it took (`python -m bench.pollpath`)."""

    BOUNDS = LATENCY._upper_bounds  # the histogram's own, +Inf last

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.count, self.total, self.buckets = 0, 0.0, [0] * len(self.BOUNDS)

    def add(self, elapsed: float) -> None:
        self.count += 1
        self.total += elapsed
        self.buckets[bisect.bisect_left(self.BOUNDS, elapsed)] += 1

    def flush(self) -> None:
        if not self.count:
            return
        requests, latency = _children("GET", "/queue/token", 200)
        requests.inc(self.count)
        # Histogram has no bulk observe: these are the fields observe() adds to.
        latency._sum.inc(self.total)
        for bucket, n in zip(latency._buckets, self.buckets, strict=True):
            if n:
                bucket.inc(n)
        self._reset()


_tally = _Tally()
FLUSH_S = 1.0


def flush() -> None:
    """Add the tallied polls to the metrics (before a scrape, and every FLUSH_S)."""
    _tally.flush()


async def flusher(stop: asyncio.Event) -> None:
    """Keep this process's poll metrics at most FLUSH_S behind (other workers'
    scrapes read them from the multiprocess files)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=FLUSH_S)
        except TimeoutError:
            pass
        flush()


def record_poll(status: int, elapsed: float, concert: Any, every: bool) -> None:
    """record() for GET /queue/token, which logs only what is worth reading
    unless `every` (FRONTROW_LOG_POLLS) asks for each line."""
    worth = every or status >= 400 or elapsed > SLOW_POLL_S
    worth = worth or next(_polls) % POLL_LOG_SAMPLE == 0
    if worth or status != 200:
        record("GET", "/queue/token", status, elapsed, concert, log=worth)
        return
    _tally.add(elapsed)
    pace.sample("/queue/token", elapsed)


def record(
    method: str, template: str, status: int, elapsed: float, concert: Any, log: bool = True
) -> None:
    """Count one request and, at INFO, log it as one structured line."""
    requests, latency = _children(method, template, status)
    requests.inc()
    latency.observe(elapsed)
    pace.sample(template, elapsed)
    if log and access.isEnabledFor(logging.INFO):
        access.info(
            "request",
            extra={
                "method": method,
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "concert": concert,
            },
        )


class Observe:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # The template, never the raw path: tokens and ids stay out of labels.
            template = getattr(route, "path_format", None) or "<unmatched>"
            concert = scope.get("path_params", {}).get("concert_id")
            record(scope["method"], template, status, time.perf_counter() - started, concert)
