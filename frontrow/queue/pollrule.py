"""The poll rule: when a browser should ask about its place again.

Most of a rush's traffic is polls, so asking no more often than a place can
change is what lets one box carry a million waiting browsers.
"""

from __future__ import annotations

import math
import zlib

from frontrow.config import Settings

POLL_MIN_MS = 1_000
# A page that sleeps longer misses what it cannot foresee: a pace that
# speeds up, an opening moved, a setting cleared (#26: a page told to come
# back in 5 minutes learnt of its turn 4 minutes late). A minute bounds how
# late any news reaches a waiting browser, for ~17,500 polls/s a million.
WAIT_POLL_MAX_MS = 60_000
POLL_MAX_MS = 30_000  # sold out, ended: nothing to learn soon
ACTIVE_POLL_MS = 15_000


def waiting_poll_ms(place: int, rate: float) -> int:
    """When a waiting browser should ask again: half its expected wait, from
    1 s to 1 min. The rule runs in Redis (_lib.lua poll_interval: the place
    counts as present until then); this twin serves bench.sim and the test
    that both agree."""
    # paused (rate 0): 30 ms a place, so the front hears within seconds of a restart
    wait_ms = place * 60 if rate <= 0 else place / rate * 1000
    return math.floor(max(POLL_MIN_MS, min(WAIT_POLL_MAX_MS, wait_ms / 2)))


def poll_after_ms(state: str, expires_at_ms: int, now_ms: int) -> int:
    """When a browser whose place is not waiting should ask again: an active
    session before it would lapse, anything else every 30 s."""
    if state == "ACTIVE":
        return max(POLL_MIN_MS, min(ACTIVE_POLL_MS, expires_at_ms - now_ms))
    return POLL_MAX_MS


def default_rate(settings: Settings) -> float:
    """Admissions per second to assume before any tick has been observed."""
    return settings.admit_batch / settings.admit_interval_s


def spread_ms(settings: Settings, token_id: str) -> int:
    """Where in the first FRONTROW_PREQUEUE_SPREAD_S after the opening this
    pre-queued browser comes back: spread evenly, by a hash of its token (not
    its rank, which is not told before the opening)."""
    return zlib.crc32(token_id.encode()) % max(1, int(settings.prequeue_spread_s * 1000))
