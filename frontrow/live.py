"""The operations console's numbers: a sample of each concert every 2 s,
kept 15 minutes in Redis, and the series the console draws from them.

One sampler at a time writes a concert's samples (a lease per interval), so
every app server reads the same history: the admitters' loop samples, and
the console's own reads top it up when no admitter runs. Counters
(admitted, abandoned, seats held) are Redis's own, so a chart is the same
whichever process draws it; the poll and payment p99 are the worst of the
app processes' last reports of this concert's requests, and its error
answers their counts (frontrow/pace.py).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from frontrow import pace
from frontrow.booking import holds
from frontrow.catalog import Concert, Schedule
from frontrow.store import Store

SAMPLE_S = 2.0
KEEP = 450  # 15 minutes of samples
RATE_WINDOW_MS = 60_000  # a per-minute rate is taken over the last minute
COUNTERS = ("admitted_total", "abandoned_total", "held_total", "rate", "entered_total")


def _key(store: Store, concert_id: int) -> str:
    return store.keys(concert_id).base + ":live"


async def sample(store: Store, concert: Concert) -> bool:
    """Take one sample of the concert unless another process took one in the
    last SAMPLE_S; True when this call took it."""
    k = store.keys(concert.id)
    lease_ms = int(SAMPLE_S * 1000) - 100  # a little under: a 2 s loop never skips one
    if not await store.redis.set(k.base + ":livelease", "1", nx=True, px=lease_ms):
        return False
    dates = concert.upcoming()
    now_ms = int(time.time() * 1000)
    session_ms = int(store.settings.session_ttl_s * 1000)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(k.wait)
        pipe.zcount(k.active, f"({now_ms}", "+inf")
        pipe.zcount(k.fresh, now_ms - session_ms, "+inf")
        pipe.hmget(k.stats, *COUNTERS, *pace.ANSWER_FIELDS.values())
        waiting, active, not_back, counters = await pipe.execute()
    seats = await holds.seat_counts(store, concert, dates) if dates else []
    poll_p99, _ = await pace.observed(store, "poll", concert.id)
    payment_p99, _ = await pace.observed(store, "payment", concert.id)
    admitted, abandoned, held, rate, entered, *answers = (float(v or 0) for v in counters)
    point = {
        "t": now_ms,
        "waiting": waiting,
        "active": active,
        "not_back": not_back,
        "answers": dict(zip(pace.ANSWER_FIELDS, map(int, answers), strict=True)),
        "admitted": int(admitted),
        "entered": int(entered),
        "abandoned": int(abandoned),
        "held": int(held),
        "rate": rate,
        "sold": {str(s.id): n for s, (n, _) in zip(dates, seats, strict=True)},
        "holding": {str(s.id): n for s, (_, n) in zip(dates, seats, strict=True)},
        "poll_p99_ms": poll_p99,
        "payment_p99_ms": payment_p99,
    }
    key = _key(store, concert.id)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.lpush(key, orjson.dumps(point))
        pipe.ltrim(key, 0, KEEP - 1)
        pipe.pexpire(key, 86_400_000)
        await pipe.execute()
    return True


def _per_minute(t: list[int], counts: list[int]) -> list[float | None]:
    """Each sample's rate over the minute before it (a shorter span at the
    start; None for the first). A counter that went back (Redis lost) is 0."""
    out: list[float | None] = []
    j = 0
    for i in range(len(t)):
        while t[j] < t[i] - RATE_WINDOW_MS:
            j += 1
        span = t[i] - t[j]
        out.append(round(max(0, counts[i] - counts[j]) * 60_000 / span, 1) if span else None)
    return out


def _sold(point: dict[str, Any]) -> int:
    return sum(point["sold"].values())


def _left(schedule: Schedule, point: dict[str, Any]) -> int | None:
    """Seats left of a date at a sample; None before the date was on sale."""
    sold = point["sold"].get(str(schedule.id))
    return None if sold is None else len(schedule.prices) - sold


def _all_left(dates: list[Schedule], point: dict[str, Any]) -> int | None:
    lefts = [n for n in (_left(s, point) for s in dates) if n is not None]
    return sum(lefts) if lefts else None


async def view(store: Store, concert: Concert) -> dict[str, Any]:
    """GET /admin/concerts/{id}/live: the last 15 minutes as chartable series,
    oldest first, and each date's seats now."""
    await sample(store, concert)  # no admitter running: the reader keeps it fresh
    raw = await store.redis.lrange(_key(store, concert.id), 0, KEEP - 1)
    points = [orjson.loads(p) for p in reversed(raw)]
    t = [p["t"] for p in points]
    dates = concert.upcoming()
    last = points[-1] if points else {}
    sales = _per_minute(t, [_sold(p) for p in points])
    return {
        "concert_id": concert.id,
        "interval_s": SAMPLE_S,
        "series": {
            "t": t,
            "waiting": [p["waiting"] for p in points],
            "active": [p["active"] for p in points],
            # admitted by a tick, their browser not back yet to hear it
            "not_back": [p.get("not_back") for p in points],
            "admitted_per_min": _per_minute(t, [p["admitted"] for p in points]),
            # is the line growing? arrivals beside admissions
            "arrivals_per_min": _per_minute(t, [p.get("entered", 0) for p in points]),
            "abandoned_per_min": _per_minute(t, [p["abandoned"] for p in points]),
            # how long the last in line will wait at the admission rate seen now
            "eta_last_s": [
                round(p["waiting"] / p["rate"]) if p["rate"] > 0 else None for p in points
            ],
            "holds_per_min": _per_minute(t, [p["held"] for p in points]),
            "sales_per_min": sales,
            # when the dates on sale sell out at the rate of sale of the last minute
            "sold_out_in_min": [
                round(left / rate, 1) if left is not None and rate else None
                for left, rate in zip([_all_left(dates, p) for p in points], sales, strict=True)
            ],
            "seats_left": {s.date.isoformat(): [_left(s, p) for p in points] for s in dates},
            **{
                f"answers_{kind}_per_min": _per_minute(
                    t, [p.get("answers", {}).get(kind, 0) for p in points]
                )
                for kind in pace.ANSWER_FIELDS
            },
            "poll_p99_ms": [p["poll_p99_ms"] for p in points],
            "payment_p99_ms": [p["payment_p99_ms"] for p in points],
        },
        "dates": [
            {
                "date": s.date.isoformat(),
                "seats": len(s.prices),
                "left": _left(s, last) if last else None,
                "held": last.get("holding", {}).get(str(s.id), 0),
            }
            for s in dates
        ],
    }
