"""Admission that follows capacity: the booking p99 every app process sees.

With a target p99 set (FRONTROW_ADMIT_TARGET_P99_MS or the admin API), the
admitter moves k between FRONTROW_ADMIT_BATCH_MIN and _MAX from what buyers
meet: each app process keeps the durations of its booking requests (hold,
best available, charge, payment) and every REPORT_S writes their p99 to one
Redis hash; the admitter passes the worst fresh p99 to admit.lua, which
adjusts k once per new report (admit.lua says how). Polls are not in it:
they are cheap and batched, and would hide a slow money path. The poll's
and the payment's own p99 are reported beside it, in hashes of their own,
for the operations console (frontrow/live.py).
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
# Also reported, for the operations console (frontrow/live.py), not for k.
WATCHED = {"/queue/token": "poll", "/payments": "payment"}
GROUPS = ("booking", "poll", "payment")

_samples: dict[str, list[float]] = {group: [] for group in GROUPS}


def sample(template: str, elapsed: float) -> None:
    """Keep one request's duration if it is a booking, poll or payment request."""
    if template in BOOKING and len(_samples["booking"]) < MAX_SAMPLES:
        _samples["booking"].append(elapsed)
    group = WATCHED.get(template)
    if group and len(_samples[group]) < MAX_SAMPLES:
        _samples[group].append(elapsed)


def p99_ms(durations: list[float]) -> float:
    ordered = sorted(durations)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)] * 1000


def key(store: Store, group: str = "booking") -> str:
    suffix = "" if group == "booking" else f":{group}"
    return f"{store.settings.key_prefix}:{{global}}:pace{suffix}"


async def report(store: Store, owner: str) -> None:
    """Write this process's p99 of each group since the last report, if it had any."""
    stamp = int(time.time() * 1000)
    async with store.redis.pipeline(transaction=False) as pipe:
        for group, samples in _samples.items():
            if samples:
                durations = samples[:]
                del samples[: len(durations)]
                value = f"{p99_ms(durations):.1f}|{len(durations)}|{stamp}"
                pipe.hset(key(store, group), owner, value)
        if len(pipe):
            await pipe.execute()


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


async def observed(store: Store, group: str = "booking") -> tuple[float, int]:
    """(worst p99 in ms, newest report's time in ms) over the fresh reports
    of every process; (0, 0) when nobody made such a request lately. Stale
    reports are dropped."""
    now_ms = time.time() * 1000
    worst, newest, stale = 0.0, 0, []
    for owner, value in (await store.redis.hgetall(key(store, group))).items():
        p99, _, stamp = value.split("|")
        if int(stamp) < now_ms - FRESH_S * 1000:
            stale.append(owner)
            continue
        worst, newest = max(worst, float(p99)), max(newest, int(stamp))
    if stale:
        await store.redis.hdel(key(store, group), *stale)
    return worst, newest
