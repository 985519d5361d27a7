"""Per-request metrics and one structured log line, as pure ASGI middleware."""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Generator
from contextvars import ContextVar
from typing import Any, TypeVar

from frontrow import logs, pace
from frontrow.metrics import CPU, LATENCY, REQUESTS

access = logging.getLogger(logs.ACCESS)


@functools.cache
def _children(method: str, template: str, status: int) -> tuple[Any, Any]:
    # labels() takes a lock and builds a key per call; the set of routes is small.
    return REQUESTS.labels(method, template, str(status)), LATENCY.labels(method, template)


@functools.cache
def _cpu(method: str, template: str) -> Any:
    return CPU.labels(method, template)


T = TypeVar("T")
CONCERT = "frontrow.concert"  # scope key: the concert a request was for
STATUS = "frontrow.status"  # scope key: the answer's status, set as it starts (app.Outgoing)
# the CPU seconds of the request being served, where work done for it adds its own
_spent: ContextVar[list[float] | None] = ContextVar("frontrow_request_cpu", default=None)


class _Timed:
    """Await `coro`, adding the CPU time of its own steps (the event loop's
    thread, between two of its awaits) to `into[0]`: what other tasks run
    while it waits is theirs."""

    __slots__ = ("coro", "into")

    def __init__(self, work: Awaitable[Any], into: list[float]) -> None:
        self.coro: Generator[Any, Any, Any] = work.__await__()
        self.into = into

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, into, clock = self.coro, self.into, time.thread_time
        value: Any = None
        error: BaseException | None = None
        while True:
            began = clock()
            try:
                step = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                into[0] += clock() - began
                return done.value
            except BaseException:
                into[0] += clock() - began
                raise
            into[0] += clock() - began
            try:
                value, error = (yield step), None
            except BaseException as exc:
                value, error = None, exc


async def on_behalf(work: Awaitable[T]) -> T:
    """Run work another task does for the request being served (a rendering
    shared by everyone who asks at once) on that request's CPU account."""
    into = _spent.get()
    if into is None:
        return await work
    result: T = await _Timed(work, into)
    return result


# A successful poll is counted, not logged: at a million waiting that is
# billions of lines a day nobody reads, and the line costs ~40 % of the
# poll's throughput. Failed and slow polls are logged, and one in SAMPLE.
SLOW_POLL_S = 0.5
POLL_LOG_SAMPLE = 10_000
_polls = itertools.count(1)


class _Tally:
    """Requests counted in plain numbers and added to Prometheus in bulk by
    flush(): a value written to the multiprocess files takes a lock and an
    mmap write, and a request made five (its count, its latency's bucket and
    sum, its CPU's count and sum). Recording a poll this way takes a third
    of the time it took (`python -m bench.pollpath`)."""

    BOUNDS = LATENCY._upper_bounds  # the histogram's own, +Inf last

    def __init__(self) -> None:
        # (method, template, status) -> [count, seconds, CPU seconds, buckets]
        self.rows: dict[tuple[str, str, int], list[Any]] = {}

    def add(self, method: str, template: str, status: int, elapsed: float, cpu: float) -> None:
        row = self.rows.get((method, template, status))
        if row is None:
            row = self.rows[(method, template, status)] = [0, 0.0, 0.0, [0] * len(self.BOUNDS)]
        row[0] += 1
        row[1] += elapsed
        row[2] += cpu
        row[3][bisect.bisect_left(self.BOUNDS, elapsed)] += 1

    def flush(self) -> None:
        rows, self.rows = self.rows, {}
        for (method, template, status), (count, total, cpu, buckets) in rows.items():
            requests, latency = _children(method, template, status)
            requests.inc(count)
            # Histogram has no bulk observe: these are the fields observe() adds to.
            latency._sum.inc(total)
            for bucket, n in zip(latency._buckets, buckets, strict=True):
                if n:
                    bucket.inc(n)
            spent = _cpu(method, template)  # Summary has no bulk observe either
            spent._count.inc(count)
            spent._sum.inc(cpu)


_tally = _Tally()
FLUSH_S = 1.0


def flush() -> None:
    """Add the tallied requests to the metrics (before a scrape, and every FLUSH_S)."""
    _tally.flush()


async def flusher(stop: asyncio.Event) -> None:
    """Keep this process's request metrics at most FLUSH_S behind (other
    workers' scrapes read them from the multiprocess files)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=FLUSH_S)
        except TimeoutError:
            pass
        flush()


def record_poll(status: int, elapsed: float, cpu: float, concert: Any, every: bool) -> None:
    """record() for GET /queue/token, which logs only what is worth reading
    unless `every` (FRONTROW_LOG_POLLS) asks for each line."""
    worth = every or status >= 400 or elapsed > SLOW_POLL_S
    worth = worth or next(_polls) % POLL_LOG_SAMPLE == 0
    record("GET", "/queue/token", status, elapsed, cpu, concert, log=worth)


def record(
    method: str,
    template: str,
    status: int,
    elapsed: float,
    cpu: float,
    concert: Any,
    log: bool = True,
) -> None:
    """Count one request and, at INFO, log it as one structured line."""
    _tally.add(method, template, status, elapsed, cpu)
    pace.sample(template, elapsed, concert, status)
    if log and access.isEnabledFor(logging.INFO):
        logs.access(
            {
                "method": method,
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "concert": concert,
            }
        )


class Observe:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        spent = [0.0]
        _spent.set(spent)  # this request's own context (one task a request)
        try:
            await _Timed(self.app(scope, receive, send), spent)
        finally:
            status = scope.get(STATUS, 500)  # no answer started: the 500 outside answers
            route = scope.get("route")
            # The template, never the raw path: tokens and ids stay out of labels.
            template = getattr(route, "path_format", None) or "<unmatched>"
            # a route without one in its path (a payment) names it in the scope
            concert = scope.get("path_params", {}).get("concert_id") or scope.get(CONCERT)
            elapsed = time.perf_counter() - started
            record(scope["method"], template, status, elapsed, spent[0], concert)
