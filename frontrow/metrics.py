"""Prometheus metrics.

Queue sizes, admission counters and sold seats are read from Redis at scrape
time, so every worker and every app server reports the same truth. Request
and domain-event counters are per process; with several uvicorn workers
`frontrow serve` points PROMETHEUS_MULTIPROC_DIR at a shared directory and
the scrape sums every worker's files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from frontrow.store import Store

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
HOLDS = Counter("frontrow_holds_total", "Seat hold attempts by outcome", ["concert", "outcome"])
PAYMENTS = Counter("frontrow_payments_total", "Payments by outcome", ["concert", "outcome"])


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def queue_families(store: Store) -> list[Metric]:
    """Per-concert queue and seat numbers, read from Redis now."""
    from frontrow.booking.holds import seat_states
    from frontrow.queue.core import overview

    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["concert"])

    def counter(name: str, doc: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=["concert"])

    waiting = gauge("frontrow_queue_waiting", "Tokens waiting in line")
    active = gauge("frontrow_queue_active", "Live active sessions")
    rate = gauge("frontrow_queue_admit_rate_per_second", "Observed admission rate")
    batch = gauge("frontrow_queue_admit_batch", "Live admit batch (k)")
    interval = gauge("frontrow_queue_admit_interval_seconds", "Live admit interval (n)")
    cap = gauge("frontrow_queue_max_active", "Live active-session cap (0 = none)")
    admitted = counter("frontrow_queue_admitted", "Tokens admitted")
    abandoned = counter("frontrow_queue_abandoned", "Waiting tokens dropped for not polling")
    expired = counter("frontrow_queue_expired", "Active sessions ended by their TTL")
    sold = gauge("frontrow_seats_sold", "Seats sold on upcoming dates")
    held = gauge("frontrow_seats_held", "Seats held right now on upcoming dates")
    for concert in (await store.catalog.concerts()).values():
        label = [str(concert.id)]
        q = await overview(store, concert.id, concert.on_sale)
        waiting.add_metric(label, q["waiting"])
        active.add_metric(label, q["active"])
        rate.add_metric(label, q["admit_rate_per_s"])
        batch.add_metric(label, q["admit_batch"])
        interval.add_metric(label, q["admit_interval_s"])
        cap.add_metric(label, q["max_active"])
        admitted.add_metric(label, q["admitted_total"])
        abandoned.add_metric(label, q["abandoned_total"])
        expired.add_metric(label, q["expired_total"])
        dates = concert.upcoming()
        states = await seat_states(store, concert, dates, with_seats=False) if dates else []
        sold.add_metric(label, sum(s.sold for s in states))
        held.add_metric(label, sum(s.held for s in states))
    return [waiting, active, rate, batch, interval, cap, admitted, abandoned, expired, sold, held]


async def exposition(store: Store) -> tuple[bytes, str]:
    """The whole scrape: this host's process metrics plus Redis's truth."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry: Any = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    live = CollectorRegistry()
    live.register(_Families(await queue_families(store)))
    return generate_latest(registry) + generate_latest(live), CONTENT_TYPE_LATEST
