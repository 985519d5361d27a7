"""Admission that follows capacity: the booking p99 every app process sees.

With a target p99 set (FRONTROW_ADMIT_TARGET_P99_MS or the admin API), the
admitter moves k between FRONTROW_ADMIT_BATCH_MIN and _MAX from what buyers
meet: each app process keeps the durations of its booking requests (hold,
best available, charge, payment) and every REPORT_S writes their p99 to one
Redis hash; the admitter passes the worst fresh p99 to admit.lua, which
adjusts k once per new report (admit.lua says how). Polls are not in it:
they are cheap and batched, and would hide a slow money path. The poll's
and the payment's own p99 are reported beside it, per concert, in hashes
of their own, for the operations console (frontrow/live.py), with the
concert's error answers (4xx, 429, 5xx) added to its stats counters.
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
# Also reported per concert, for the operations console (frontrow/live.py), not for k.
WATCHED = {"/queue/token": "poll", "/payments": "payment"}
GROUPS = ("booking", "poll", "payment")
# the stats fields a concert's error answers are counted in (live.py's rates)
ANSWER_FIELDS = {"4xx": "answers_4xx_total", "429": "answers_429_total", "5xx": "answers_5xx_total"}

_booking: list[float] = []
_watched: dict[tuple[str, int], list[float]] = {}
_answers: dict[tuple[int, str], int] = {}


def _concert_id(concert: object) -> int | None:
    if type(concert) is int:
        return concert
    return int(concert) if isinstance(concert, str) and concert.isdigit() else None


def sample(template: str, elapsed: float, concert: object = None, status: int = 200) -> None:
    """Keep one request's duration if it is a booking, poll or payment
    request, and count it if it is a concert's error answer."""
    if template in BOOKING and len(_booking) < MAX_SAMPLES:
        _booking.append(elapsed)
    concert_id = _concert_id(concert)
    if concert_id is None:
        return
    group = WATCHED.get(template)
    if group:
        samples = _watched.setdefault((group, concert_id), [])
        if len(samples) < MAX_SAMPLES:
            samples.append(elapsed)
    if status >= 400:
        kind = "5xx" if status >= 500 else "429" if status == 429 else "4xx"
        _answers[(concert_id, kind)] = _answers.get((concert_id, kind), 0) + 1


def p99_ms(durations: list[float]) -> float:
    ordered = sorted(durations)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)] * 1000


def key(store: Store, group: str = "booking", concert_id: int | None = None) -> str:
    """The hash of every process's last p99 report: the booking one for the
    whole fleet (the admitter's), the poll and payment ones per concert."""
    if group == "booking":
        return f"{store.settings.key_prefix}:{{global}}:pace"
    return f"{store.keys(concert_id or 0).base}:pace:{group}"


def _report_line(samples: list[float], stamp: int) -> str | None:
    if not samples:
        return None
    durations = samples[:]
    del samples[: len(durations)]
    return f"{p99_ms(durations):.1f}|{len(durations)}|{stamp}"


async def report(store: Store, owner: str) -> None:
    """Write this process's p99 of each group since the last report, if it
    had any, and add its error answers to each concert's counters."""
    stamp = int(time.time() * 1000)
    answers = dict(_answers)
    _answers.clear()
    async with store.redis.pipeline(transaction=False) as pipe:
        line = _report_line(_booking, stamp)
        if line:
            pipe.hset(key(store), owner, line)
        for (group, concert_id), samples in _watched.items():
            line = _report_line(samples, stamp)
            if line:
                pipe.hset(key(store, group, concert_id), owner, line)
        for (concert_id, kind), n in answers.items():
            pipe.hincrby(store.keys(concert_id).stats, ANSWER_FIELDS[kind], n)
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


async def observed(
    store: Store, group: str = "booking", concert_id: int | None = None
) -> tuple[float, int]:
    """(worst p99 in ms, newest report's time in ms) over the fresh reports
    of every process (of the concert's requests, for poll and payment);
    (0, 0) when nobody made such a request lately. Stale reports are dropped."""
    now_ms = time.time() * 1000
    worst, newest, stale = 0.0, 0, []
    hash_key = key(store, group, concert_id)
    for owner, value in (await store.redis.hgetall(hash_key)).items():
        p99, _, stamp = value.split("|")
        if int(stamp) < now_ms - FRESH_S * 1000:
            stale.append(owner)
            continue
        worst, newest = max(worst, float(p99)), max(newest, int(stamp))
    if stale:
        await store.redis.hdel(hash_key, *stale)
    return worst, newest
