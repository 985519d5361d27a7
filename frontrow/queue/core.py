"""Queue operations: each one Redis round trip through a Lua script."""

from __future__ import annotations

import datetime as dt
import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric

from frontrow import metrics
from frontrow.auth import QueueClaims, new_token_id
from frontrow.catalog import Concert
from frontrow.config import Settings
from frontrow.errors import BACKEND_ERRORS, Problem, conflict, forbidden, unauthenticated
from frontrow.queue.batch import StatusBatcher
from frontrow.store import Store

DONE_KEEP_MS = 24 * 3600 * 1000
SWEEP_LIMIT = 1000
POLL_MIN_MS = 1_000
POLL_MAX_MS = 30_000
POLL_MS_PER_RANK = 30
ACTIVE_POLL_MS = 15_000


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def iso_ms(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def poll_after_ms(state: str, rank: int, expires_at_ms: int, now_ms: int) -> int:
    """When the browser should ask again.

    Waiting: 30 ms per place ahead, between 1 s (the next ~33) and 30 s
    (rank 1,000 and beyond, i.e. at most two polls a minute). Far back, a
    place moves slowly relative to the poll, so polling faster buys nothing.
    """
    if state == "WAITING":
        return min(POLL_MAX_MS, max(POLL_MIN_MS, POLL_MS_PER_RANK * rank))
    if state == "ACTIVE":
        return max(POLL_MIN_MS, min(ACTIVE_POLL_MS, expires_at_ms - now_ms))
    return POLL_MAX_MS


@dataclass(frozen=True, slots=True)
class Place:
    status: str
    rank: int | None
    eta_s: int | None
    poll_after_ms: int
    expires_at: str | None
    sold_out: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rank": self.rank,
            "eta_s": self.eta_s,
            "poll_after_ms": self.poll_after_ms,
            "expires_at": self.expires_at,
            "sold_out": self.sold_out,
        }


def poll_body(place: Place, concert_id: int) -> dict[str, Any]:
    return {**place.as_dict(), "concert_id": concert_id}


def place(
    settings: Settings, state: str, rank: int, expires_ms: int, rate: str, sold_out: str
) -> Place:
    now_ms = int(time.time() * 1000)
    if state == "WAITING" and sold_out == "1":
        # nobody is admitted any more: no estimate, and no reason to ask often
        return Place(state, rank, None, POLL_MAX_MS, None, True)
    if state == "WAITING":
        admit_rate = float(rate) if rate else settings.admit_batch / settings.admit_interval_s
        eta = math.ceil(rank / admit_rate) if admit_rate > 0 else None
        return Place(state, rank, eta, poll_after_ms(state, rank, 0, now_ms), None, False)
    if state == "ACTIVE":
        return Place(
            state,
            0,
            0,
            poll_after_ms(state, 0, expires_ms, now_ms),
            iso_ms(expires_ms),
            sold_out == "1",
        )
    return Place(state, None, None, poll_after_ms(state, 0, 0, now_ms), None, sold_out == "1")


async def enter(
    store: Store, user_id: str, concert_id: int, open_by_default: bool
) -> tuple[bool, str, Place]:
    """Take (or get back) this user's place; returns (created, queue token, place)."""
    s = store.settings
    k = store.keys(concert_id)
    outcome, token_id, rank, expires, rate, sold_out = await store.scripts.enter(
        keys=[k.wait, k.seen, k.users, k.active, k.cfg, k.stats],
        args=[user_id, new_token_id(), "1" if open_by_default else "0", ms(s.abandon_after_s)],
    )
    if outcome == "CLOSED":
        raise conflict("QUEUE_CLOSED", f"concert {concert_id} is not on sale")
    if outcome == "SOLD_OUT":
        raise Problem(
            409,
            "QUEUE_CLOSED",
            f"concert {concert_id} is sold out",
            extra={"sold_out": True},
        )
    state = "ACTIVE" if outcome == "ACTIVE" else "WAITING"
    token = store.tokens.queue_token(user_id, concert_id, token_id)
    return outcome == "NEW", token, place(s, state, rank, expires, rate, sold_out)


_batchers: weakref.WeakKeyDictionary[Store, StatusBatcher] = weakref.WeakKeyDictionary()


async def status(store: Store, claims: QueueClaims) -> Place:
    """The token's state; marks it present and slides an active session."""
    batcher = _batchers.get(store)
    if batcher is None:
        batcher = _batchers[store] = StatusBatcher(store)
    state, rank, expires, rate, sold_out = await batcher.status(
        claims.concert_id, claims.token_id, claims.user_id
    )
    return place(store.settings, state, rank, expires, rate, sold_out)


async def require_active(
    store: Store, claims: QueueClaims, concert_id: int, or_done: bool = False
) -> Place:
    """Let a booking request through only on an ACTIVE token of this concert
    (or a DONE one, with `or_done`: a buyer who paid may still let go of a seat)."""
    if claims.concert_id != concert_id:
        raise forbidden("this queue token is for another concert")
    current = await status(store, claims)
    if current.status != "ACTIVE" and not (or_done and current.status == "DONE"):
        raise unauthenticated(
            f"the queue token is {current.status}, not ACTIVE", code=f"TOKEN_{current.status}"
        )
    return current


async def leave(
    store: Store, claims: QueueClaims, holds: Sequence[tuple[str, int, int]] = ()
) -> bool:
    """Give up the place or session and release `holds`, the user's live holds
    as (hold id, schedule id, seat); a hold taken between reading them and
    this call simply runs out."""
    k = store.keys(claims.concert_id)
    keys = [k.wait, k.seen, k.active, k.cap, k.users, k.uholds(claims.user_id)]
    args: list[str | int] = [claims.token_id, claims.user_id]
    for hold_id, schedule_id, seat_no in holds:
        keys += [k.hold(schedule_id, seat_no), k.holds(schedule_id)]
        args += [hold_id, seat_no]
    return bool(await store.scripts.leave(keys=keys, args=args))


@dataclass(frozen=True, slots=True)
class Tick:
    admitted: int  # -1: another admitter holds this interval's lease
    abandoned: int
    next_in_s: float


async def admit(store: Store, concert_id: int, owner: str) -> Tick:
    """Run one admission tick for a concert, if this interval's lease is free."""
    s = store.settings
    k = store.keys(concert_id)
    admitted, abandoned, next_ms = await store.scripts.admit(
        keys=[k.tick, k.wait, k.seen, k.active, k.cap, k.cfg, k.stats],
        args=[
            s.admit_batch,
            ms(s.admit_interval_s),
            s.max_active,
            ms(s.session_ttl_s),
            ms(s.session_max_s),
            ms(s.abandon_after_s),
            owner,
        ],
    )
    return Tick(admitted, abandoned, next_ms / 1000)


async def sweep(store: Store, concert_id: int) -> tuple[int, int]:
    """Remove ended sessions and abandoned places; returns (expired, abandoned)."""
    s = store.settings
    k = store.keys(concert_id)
    expired_total = abandoned_total = 0
    while True:
        expired, abandoned, stale = await store.scripts.sweep(
            keys=[k.active, k.cap, k.wait, k.seen, k.done, k.stats, k.users],
            args=[ms(s.abandon_after_s), DONE_KEEP_MS, SWEEP_LIMIT],
        )
        expired_total += expired
        abandoned_total += abandoned
        if expired < SWEEP_LIMIT and stale < SWEEP_LIMIT:
            return expired_total, abandoned_total


LIVE_SETTINGS = ("admit_batch", "admit_interval_s", "max_active", "open")


async def overview(store: Store, concert_id: int, open_by_default: bool) -> dict[str, Any]:
    """The queue's live numbers and settings, as the admin API shows them."""
    s = store.settings
    k = store.keys(concert_id)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(k.wait)
        pipe.zcount(k.active, f"({now_ms}", "+inf")
        pipe.hgetall(k.stats)
        pipe.hgetall(k.cfg)
        waiting, active, stats, cfg = await pipe.execute()
    interval_s = float(cfg.get("admit_interval_s", s.admit_interval_s))
    batch = int(cfg.get("admit_batch", s.admit_batch))
    return {
        "waiting": waiting,
        "active": active,
        "admitted_total": int(stats.get("admitted_total", 0)),
        "abandoned_total": int(stats.get("abandoned_total", 0)),
        "expired_total": int(stats.get("expired_total", 0)),
        "admit_batch": batch,
        "admit_interval_s": interval_s,
        "max_active": int(cfg.get("max_active", s.max_active)),
        "open": cfg.get("open", "1" if open_by_default else "0") == "1",
        "admit_rate_per_s": float(stats.get("rate", batch / interval_s)),
        "sold_out": stats.get("sold_out") == "1",
    }


async def queue_open(store: Store, concerts: list[Any]) -> dict[int, bool]:
    """Whether each concert's queue takes entries now (the admin override, else the catalog).

    Best effort: the public concert list must not fail with Redis, so on an
    error it says nothing and the caller falls back to the catalog."""
    try:
        async with store.redis.pipeline(transaction=False) as pipe:
            for concert in concerts:
                pipe.hget(store.keys(concert.id).cfg, "open")
            flags = await pipe.execute()
    except BACKEND_ERRORS:
        return {}
    return {c.id: flag == "1" for c, flag in zip(concerts, flags, strict=True) if flag is not None}


async def configure(store: Store, concert_id: int, changes: dict[str, Any]) -> None:
    """Store live settings; every admitter reads them on its next tick."""
    mapping = {
        name: ("1" if value else "0") if name == "open" else str(value)
        for name, value in changes.items()
    }
    if mapping:
        await store.redis.hset(store.keys(concert_id).cfg, mapping=mapping)


@metrics.live
async def queue_families(store: Store, concerts: list[Concert]) -> list[Metric]:
    """Per-concert queue numbers and live settings, read from Redis at scrape time."""
    gauge, counter = metrics.concert_gauge, metrics.concert_counter
    waiting = gauge("frontrow_queue_waiting", "Tokens waiting in line")
    active = gauge("frontrow_queue_active", "Live active sessions")
    rate = gauge("frontrow_queue_admit_rate_per_second", "Observed admission rate")
    batch = gauge("frontrow_queue_admit_batch", "Live admit batch (k)")
    interval = gauge("frontrow_queue_admit_interval_seconds", "Live admit interval (n)")
    cap = gauge("frontrow_queue_max_active", "Live active-session cap (0 = none)")
    admitted = counter("frontrow_queue_admitted", "Tokens admitted")
    abandoned = counter("frontrow_queue_abandoned", "Waiting tokens dropped for not polling")
    expired = counter("frontrow_queue_expired", "Active sessions ended by their TTL")
    for concert in concerts:
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
    return [waiting, active, rate, batch, interval, cap, admitted, abandoned, expired]
