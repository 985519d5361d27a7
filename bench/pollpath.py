"""python -m bench.pollpath: the poll path's pieces in one process, each
against the way it was done before, in the same run (CPU time per call).

- packing a batch of 32 places for status.lua: 128 arguments, or one;
- the batched status call through redis-py's pool, or on a connection of
  its own (store.DirectScript), on real Redis;
- a sale's opening formatted on every poll, or once (sale.iso's cache);
- a poll's metrics written one by one (as observe.record did), or tallied;
- a request-head deadline as a loop timer armed and cancelled, or a timestamp;
- whole polls through the ASGI app (32 at a time, real Redis, no HTTP
  server) against bench.ceiling's bare endpoint the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from bench.__main__ import SECRET, Queue


def cpu_us(call: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - started) / n * 1e6


async def acpu_us(call: Callable[[], Awaitable[object]], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n * 1e6


def line(name: str, before: float, after: float, unit: str = "µs") -> None:
    print(f"{name:<58} {before:9.2f} -> {after:8.2f} {unit}  ({after / before:.2f}x)")


async def pieces(redis_url: str, n: int) -> None:
    from frontrow.metrics import CPU, LATENCY, REQUESTS
    from frontrow.observe import record_poll
    from frontrow.sale import iso
    from frontrow.store import DirectScript

    queue = Queue(redis_url)
    await queue.flush()
    await queue.grow(32)
    store = queue.store
    k = store.keys(1)
    # as queue/batch.py calls status.lua (a place's token, user, birth and score)
    keys = [k.wait, k.seen, k.active, k.cap, k.done, k.stats, k.users, k.cfg, k.back, k.fresh]
    args = [300_000, 120_000, 5_000, 20.0, 1_000, 300_000, 0]
    places = [(f"t_b{i}", f"b{i}", "0", "-1") for i in range(32)]
    conn = store.redis.connection_pool.make_connection()
    flat = [part for place in places for part in place]
    packed = " ".join(" ".join(place) for place in places)
    line(
        "pack a batch of 32 (128 arguments -> one)",
        cpu_us(lambda: conn.pack_command("EVALSHA", "0" * 40, 10, *keys, *args, *flat), n),
        cpu_us(lambda: conn.pack_command("EVALSHA", "0" * 40, 10, *keys, *args, packed), n),
    )
    pooled, direct = store.scripts.status, store.scripts.status
    if isinstance(direct, DirectScript):
        pooled = direct.script
    call = [*args, packed]
    await pooled(keys=keys, args=call)
    await direct(keys=keys, args=call)
    line(
        "status call for 32 (through the pool -> own connection)",
        await acpu_us(lambda: pooled(keys=keys, args=call), n // 10),
        await acpu_us(lambda: direct(keys=keys, args=call), n // 10),
    )
    opens = dt.datetime(2026, 12, 24, 10, tzinfo=dt.UTC)
    line(
        "a sale's opening as text (every poll -> cached)",
        cpu_us(lambda: iso.__wrapped__(opens), n),
        cpu_us(lambda: iso(opens), n),
    )
    # what record() did before requests were tallied: each metric written at once
    written = (
        REQUESTS.labels("GET", "/queue/token", "200"),
        LATENCY.labels("GET", "/queue/token"),
        CPU.labels("GET", "/queue/token"),
    )
    line(
        "a poll's metrics (written one by one -> tallied)",
        cpu_us(lambda: (written[0].inc(), written[1].observe(0.001), written[2].observe(1e-4)), n),
        cpu_us(lambda: record_poll(200, 0.001, 0.0001, 1, False), n),
    )
    loop = asyncio.get_running_loop()
    line(
        "a head deadline (timer armed and cancelled -> timestamp)",
        cpu_us(lambda: loop.call_later(10.0, print).cancel(), n),
        cpu_us(loop.time, n),
    )
    await store.close_own()
    await store.close()


async def whole_polls(redis_url: str, database_url: str, n: int) -> None:
    from bench.ceiling import app as ceiling
    from frontrow import catalog
    from frontrow.app import create_app
    from frontrow.config import Settings
    from frontrow.store import open_store

    queue = Queue(redis_url)
    await queue.flush()
    await queue.grow(2_048)
    tokens = queue.tokens(2_048)
    await queue.store.close()
    settings = Settings(
        redis_url=redis_url, auth_secret=SECRET, database_url=database_url, schedulers=False
    )
    store = open_store(settings)
    await catalog.migrate(store.db)
    app = create_app(settings, store)
    scopes = [
        {
            "type": "http",
            "method": "GET",
            "path": "/queue/token",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"x"), (b"authorization", f"Bearer {t}".encode())],
        }
        for t in tokens
    ]

    async def send(message: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def run(target: Any, count: int) -> None:
        for i in range(0, count, 32):
            batch = [dict(scopes[(i + j) % len(scopes)]) for j in range(32)]
            await asyncio.gather(*(target(s, receive, send) for s in batch))

    async with app.router.lifespan_context(app):
        app.state.store = store
        await run(app, 4_096)  # every token verified once, as a warm server has
        await run(ceiling, 1_024)
        rounds = []
        for _ in range(3):
            started = time.process_time()
            await run(ceiling, n)
            bare = (time.process_time() - started) / n * 1e6
            started = time.process_time()
            await run(app, n)
            rounds.append((bare, (time.process_time() - started) / n * 1e6))
    for bare, poll in rounds:
        line("a whole poll, no HTTP server (bare endpoint -> poll)", bare, poll)
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pollpath", description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--database-url", default="sqlite+aiosqlite:////tmp/frontrow-pollpath.db")
    parser.add_argument("-n", type=int, default=20_000, help="calls per measurement")
    args = parser.parse_args()
    uvloop.run(pieces(args.redis_url, args.n))
    uvloop.run(whole_polls(args.redis_url, args.database_url, args.n))


if __name__ == "__main__":
    main()
