"""The admitter and the sweeper, as asyncio loops that stop cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from frontrow import live, pace, rules
from frontrow.booking import holds
from frontrow.errors import backend_failed
from frontrow.queue import core
from frontrow.store import Store
from frontrow.wallet import payments

log = logging.getLogger("frontrow.schedulers")
BACKOFF_S = 1.0
IDLE_S = 1.0
RECONCILE_S = 30.0


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        pass


async def admitter(store: Store, stop: asyncio.Event, owner: str | None = None) -> None:
    """Tick every concert when its lease frees; an interval is won by one admitter."""
    owner = owner or owner_id()
    due: dict[int, float] = {}
    kept: dict[int, int] = {}  # the admission frontier last recorded in the database
    keeping: dict[int, asyncio.Task[None]] = {}
    while not stop.is_set():
        try:
            concerts = await store.catalog.concerts()
            concert_ids = list(concerts)
            now = time.monotonic()
            p99 = await pace.observed(store)
            for concert_id in concert_ids:
                if due.get(concert_id, 0.0) <= now:
                    # no tick lets anyone in to find every seat sold or in a cart
                    free = await holds.free_seats(store, concerts[concert_id])
                    tick = await core.admit(store, concert_id, owner, p99, free)
                    recording = keeping.get(concert_id)
                    if tick.frontier > kept.get(concert_id, -1) and (
                        recording is None or recording.done()
                    ):
                        # beside the ticks: a database that does not answer
                        # never holds admission up
                        keeping[concert_id] = asyncio.create_task(
                            _keep_frontier(store, concert_id, tick.frontier, kept)
                        )
                    if tick.opened:
                        log.info("concert %s: the sale opened", concert_id)
                    if tick.admitted > 0 or tick.abandoned > 0:
                        log.debug(
                            "concert %s: admitted %s, dropped %s abandoned",
                            concert_id,
                            tick.admitted,
                            tick.abandoned,
                        )
                    # Ask again within IDLE_S even when the lease says later: an
                    # interval shortened live takes effect at once, not after the old one.
                    due[concert_id] = time.monotonic() + min(tick.next_in_s, IDLE_S)
            wake = min((due[c] for c in concert_ids), default=now + IDLE_S)
            await _sleep(stop, min(wake - time.monotonic(), IDLE_S))
        except Exception as exc:  # one bad tick never ends the loop
            _trouble("admitter", exc)
            await _sleep(stop, BACKOFF_S)
    await asyncio.gather(*keeping.values(), return_exceptions=True)


async def _keep_frontier(
    store: Store, concert_id: int, frontier: int, kept: dict[int, int]
) -> None:
    try:
        await rules.keep_frontier(store, concert_id, frontier)
        kept[concert_id] = max(frontier, kept.get(concert_id, -1))
    except Exception as exc:  # recorded again after the next tick
        _trouble("admitter: keeping the admission frontier", exc)


async def sweeper(store: Store, stop: asyncio.Event) -> None:
    """Trim expired sessions and abandoned places every sweep interval, and
    every RECONCILE_S re-add sales whose Redis finalize step never ran and
    finish those payments (their session DONE, their holds gone)."""
    reconciled = time.monotonic()
    while not stop.is_set():
        try:
            for concert_id in list(await store.catalog.concerts()):
                await core.sweep(store, concert_id)
            if time.monotonic() - reconciled > RECONCILE_S:
                await holds.rebuild_all(store)
                finished = await payments.finish_recent(store)
                if finished:
                    log.info("finished %s payments that Redis had not heard of", finished)
                reconciled = time.monotonic()
        except Exception as exc:  # one bad tick never ends the loop
            _trouble("sweeper", exc)
        await _sleep(stop, store.settings.sweep_interval_s)


async def sampler(store: Store, stop: asyncio.Event) -> None:
    """The operations console's history: one sample per concert every
    live.SAMPLE_S, taken by whichever admitter process gets there first."""
    while not stop.is_set():
        try:
            for concert in (await store.catalog.concerts()).values():
                await live.sample(store, concert)
        except Exception as exc:  # one bad tick never ends the loop
            _trouble("sampler", exc)
        await _sleep(stop, live.SAMPLE_S)


def _trouble(loop: str, exc: Exception) -> None:
    if backend_failed(exc):
        log.warning("%s: backend unavailable (%r); retrying", loop, exc)
    else:
        log.exception("%s: tick failed; retrying", loop)


def start(store: Store, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(admitter(store, stop), name="frontrow-admitter"),
        asyncio.create_task(sweeper(store, stop), name="frontrow-sweeper"),
        asyncio.create_task(sampler(store, stop), name="frontrow-sampler"),
    ]
