"""Per-request metrics and one structured log line, as pure ASGI middleware."""

from __future__ import annotations

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


def record_poll(status: int, elapsed: float, concert: Any, every: bool) -> None:
    """record() for GET /queue/token, which logs only what is worth reading
    unless `every` (FRONTROW_LOG_POLLS) asks for each line."""
    worth = every or status >= 400 or elapsed > SLOW_POLL_S
    worth = worth or next(_polls) % POLL_LOG_SAMPLE == 0
    record("GET", "/queue/token", status, elapsed, concert, log=worth)


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
