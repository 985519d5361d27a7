"""Admission that follows capacity: the booking p99 every app process sees.

With a target p99 set (FRONTROW_ADMIT_TARGET_P99_MS or the admin API), the
admitter moves k between FRONTROW_ADMIT_BATCH_MIN and _MAX from what buyers
meet: each app process keeps the durations of its booking requests (hold,
best available, charge, payment) and every REPORT_S writes their p99 to one
Redis hash; the admitter passes the worst fresh p99 to admit.lua, which
adjusts k once per new report (admit.lua says how). Polls are not in it:
they are cheap and batched, and would hide a slow money path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from frontrow.errors import BACKEND_ERRORS
from frontrow.store import Store

log = logging.getLogger("frontrow.pace")

REPORT_S = 2.0
FRESH_S = 3 * REPORT_S  # a process that stopped reporting no longer counts
MAX_SAMPLES = 50_000
BOOKING = frozenset(
    {
        "/concerts/{concert_id}/dates/{date}/seats/{seat_no}/hold",
        "/concerts/{concert_id}/dates/{date}/best-available",
        "/wallet/charge",
        "/payments",
    }
)

_samples: list[float] = []


def sample(template: str, elapsed: float) -> None:
    """Keep one request's duration if it is a booking request."""
    if template in BOOKING and len(_samples) < MAX_SAMPLES:
        _samples.append(elapsed)


def p99_ms(durations: list[float]) -> float:
    ordered = sorted(durations)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)] * 1000


def key(store: Store) -> str:
    return f"{store.settings.key_prefix}:{{global}}:pace"


async def report(store: Store, owner: str) -> None:
    """Write this process's booking p99 since the last report, if it had any."""
    if not _samples:
        return
    durations = _samples[:]
    del _samples[: len(durations)]
    value = f"{p99_ms(durations):.1f}|{len(durations)}|{int(time.time() * 1000)}"
    await store.redis.hset(key(store), owner, value)


async def reporter(store: Store, owner: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=REPORT_S)
        except TimeoutError:
            pass
        try:
            await report(store, owner)
        except BACKEND_ERRORS as exc:
            log.warning("pace: report failed (%r)", exc)


async def observed(store: Store) -> tuple[float, int]:
    """(worst booking p99 in ms, newest report's time in ms) over the fresh
    reports of every process; (0, 0) when nobody booked lately. Stale
    reports are dropped."""
    now_ms = time.time() * 1000
    worst, newest, stale = 0.0, 0, []
    for owner, value in (await store.redis.hgetall(key(store))).items():
        p99, _, stamp = value.split("|")
        if int(stamp) < now_ms - FRESH_S * 1000:
            stale.append(owner)
            continue
        worst, newest = max(worst, float(p99)), max(newest, int(stamp))
    if stale:
        await store.redis.hdel(key(store), *stale)
    return worst, newest
