"""Fixed-window limits: entering, holding and reading seat maps per user and
per address in a concert, demo logins and failed admin tokens per address."""

from __future__ import annotations

import math

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


async def _count(store: Store, action: str, limits: list[tuple[str, int]]) -> None:
    limits = [(key, n) for key, n in limits if n > 0]
    if not limits:
        return
    wait_ms = await store.scripts.ratelimit(
        keys=[key for key, _ in limits],
        args=[int(store.settings.rate_window_s * 1000), *(n for _, n in limits)],
    )
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


async def check(store: Store, concert_id: int, action: str, user_id: str, address: str) -> None:
    """Count this attempt; raise 429 with Retry-After when a limit is passed."""
    await _count(store, action, counters(store, concert_id, action, user_id, address))


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
