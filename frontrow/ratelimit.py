"""Per-user and per-address limits on entering the queue and holding seats."""

from __future__ import annotations

import math

from frontrow.errors import Problem
from frontrow.store import Store


async def check(store: Store, concert_id: int, action: str, user_id: str, address: str) -> None:
    """Count this attempt; raise 429 with Retry-After when a limit is passed."""
    s = store.settings
    per_user = s.enter_per_user if action == "enter" else s.hold_per_user
    limits = [(f"u:{user_id}", per_user), (f"ip:{address}", s.requests_per_ip)]
    limits = [(who, n) for who, n in limits if n > 0]
    if not limits:
        return
    k = store.keys(concert_id)
    wait_ms = await store.scripts.ratelimit(
        keys=[k.rate(action, who) for who, _ in limits],
        args=[int(s.rate_window_s * 1000), *(n for _, n in limits)],
    )
    if wait_ms:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise Problem(
            429,
            "TOO_MANY_REQUESTS",
            f"too many {action} attempts; retry in {retry_after} s",
            {"Retry-After": str(retry_after)},
        )
