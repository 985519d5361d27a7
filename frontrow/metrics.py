"""Prometheus metrics.

Queue sizes, admission counters and sold seats are read from Redis at scrape
time, so every worker and every app server reports the same truth. Request
and domain-event counters are per process; with several uvicorn workers
`frontrow serve` points PROMETHEUS_MULTIPROC_DIR at a shared directory and
the scrape sums every worker's files.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    Summary,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from frontrow.errors import BACKEND_ERRORS

if TYPE_CHECKING:
    from frontrow.catalog import Concert
    from frontrow.store import Store

PING_TIMEOUT_S = 1.0  # a backend slower than this to answer a scrape's ping counts as down

REQUESTS = Counter(
    "frontrow_http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "frontrow_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CPU = Summary(
    "frontrow_request_cpu_seconds",
    "CPU time of the event loop spent in a request's own steps, by route template"
    " (work shared between requests, as the batched status call, is not in it)",
    ["method", "route"],
)
HOLDS = Counter("frontrow_holds_total", "Seat hold attempts by outcome", ["concert", "outcome"])
PAYMENTS = Counter("frontrow_payments_total", "Payments by outcome", ["concert", "outcome"])


# What the scrape reads from Redis is each domain's own business: queue/ and
# booking/ register a function here (`live`), so this module, which the
# poll's hot path imports, depends on neither.
LiveFamilies = Callable[["Store", list["Concert"]], Awaitable[list[Metric]]]
_LIVE: list[LiveFamilies] = []


def live(provider: LiveFamilies) -> LiveFamilies:
    """Register per-concert families that are read from Redis at scrape time."""
    _LIVE.append(provider)
    return provider


def concert_gauge(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=["concert"])


def concert_counter(name: str, doc: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=["concert"])


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def _answers(check: Awaitable[Any]) -> bool:
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            await check
    except Exception:  # any failure is "down" in a gauge, never a failed scrape
        return False
    return True


async def _ping_database(store: Store) -> None:
    async with store.db.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def exposition(store: Store) -> tuple[bytes, str]:
    """The whole scrape: this host's process metrics plus Redis's truth. With
    a backend down the scrape still answers, saying so in frontrow_backend_up
    (alerts read it), without the numbers that live in Redis."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry: Any = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    up = GaugeMetricFamily(
        "frontrow_backend_up", "1 when the backend answered this scrape", labels=["backend"]
    )
    redis_up = await _answers(store.redis.ping())
    up.add_metric(["redis"], int(redis_up))
    up.add_metric(["database"], int(await _answers(_ping_database(store))))
    families: list[Metric] = [up]
    if redis_up:
        try:
            concerts = list((await store.catalog.concerts()).values())
            for provider in _LIVE:
                families.extend(await provider(store, concerts))
        except BACKEND_ERRORS:
            del families[1:]  # half a scrape would read as numbers that fell
    now = CollectorRegistry()
    now.register(_Families(families))
    return generate_latest(registry) + generate_latest(now), CONTENT_TYPE_LATEST
