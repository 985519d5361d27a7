"""Fixed-window limits: entering, holding and reading seat maps per user and
per address in a concert, demo logins and failed admin tokens per address."""

from __future__ import annotations

import math
import time
from asyncio import sleep

from frontrow.errors import Problem
from frontrow.keys import address_rate
from frontrow.store import Store


def too_many(action: str, wait_ms: int) -> Problem:
    retry_after = max(1, math.ceil(wait_ms / 1000))
    return Problem(
        429,
        "TOO_MANY_REQUESTS",
        f"too many {action} attempts; retry in {retry_after} s",
        {"Retry-After": str(retry_after)},
    )


# A user refused once is refused until the window resets, whatever else it
# sends. Those attempts are answered by the process that saw the refusal, each
# after this pause: a client that ignores Retry-After and asks in a loop gets
# one answer a second per connection, at no cost to Redis, instead of taking
# a core from everyone else's polls (#22.2: 8 connections of 429s moved
# others' poll p99 2.6-2.8x).
REFUSED_PAUSE_S = 1.0
REFUSED_KEPT = 10_000


async def _wait_ms(store: Store, limits: list[tuple[str, int]]) -> int:
    limits = [(key, n) for key, n in limits if n > 0]
    if not limits:
        return 0
    wait_ms = await store.scripts.ratelimit(
        keys=[key for key, _ in limits],
        args=[int(store.settings.rate_window_s * 1000), *(n for _, n in limits)],
    )
    return int(wait_ms)


async def _count(store: Store, action: str, limits: list[tuple[str, int]]) -> None:
    wait_ms = await _wait_ms(store, limits)
    if wait_ms:
        raise too_many(action, wait_ms)


def counters(
    store: Store, concert_id: int, action: str, user_id: str, address: str
) -> list[tuple[str, int]]:
    """The (counter key, most attempts per window) pairs an attempt counts
    against: per user and per address in the concert (0 = no limit). The hold
    scripts count them inside their own call."""
    s = store.settings
    per_user = {"enter": s.enter_per_user, "hold": s.hold_per_user, "map": s.maps_per_user}[action]
    k = store.keys(concert_id)
    return [
        (k.rate(action, f"u:{user_id}"), per_user),
        (k.rate(action, f"ip:{address}"), s.requests_per_ip),
    ]


async def paced(store: Store, concert_id: int, action: str, user_id: str) -> None:
    """A user refused in this window is answered here, from memory: 429
    after a pause, with no Redis call."""
    who = (concert_id, action, user_id)
    until = store.refused.get(who)
    if until is None:
        return
    left = until - time.monotonic()
    if left > 0:
        await sleep(min(left, REFUSED_PAUSE_S))
        raise too_many(action, int((left - REFUSED_PAUSE_S) * 1000))
    del store.refused[who]


def refuse(store: Store, concert_id: int, action: str, user_id: str, wait_ms: int) -> Problem:
    """The 429 of a refused attempt, remembered until the window resets so
    that paced() answers the user's next attempts."""
    refused = store.refused
    if len(refused) >= REFUSED_KEPT:
        now = time.monotonic()
        for key in [key for key, t in refused.items() if t <= now]:
            del refused[key]
    if len(refused) < REFUSED_KEPT:
        refused[(concert_id, action, user_id)] = time.monotonic() + wait_ms / 1000
    return too_many(action, wait_ms)


async def check(store: Store, concert_id: int, action: str, user_id: str, address: str) -> None:
    """Count this attempt; raise 429 with Retry-After when a limit is passed."""
    await paced(store, concert_id, action, user_id)
    wait_ms = await _wait_ms(store, counters(store, concert_id, action, user_id, address))
    if wait_ms:
        raise refuse(store, concert_id, action, user_id, wait_ms)


async def check_address(store: Store, action: str, address: str, limit: int) -> None:
    """Count one attempt of an address at something that belongs to no concert."""
    await _count(store, action, [(address_rate(store.settings.key_prefix, action, address), limit)])


async def refuse_when_spent(store: Store, action: str, address: str, limit: int) -> None:
    """429 when the address has used up its attempts (limit > 0), without
    counting this one."""
    if limit <= 0:
        return
    key = address_rate(store.settings.key_prefix, action, address)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        used, ttl_ms = await pipe.execute()
    if used is not None and int(used) >= limit:
        raise too_many(action, max(ttl_ms, 1000))
