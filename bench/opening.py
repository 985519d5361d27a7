"""python -m bench.opening: the opening of a sale with 1,000,000 pre-queued places.

Against a real Redis it may flush (and a throwaway SQLite catalog): fills a
pre-queue of N places as enter.lua leaves them (score = the first 52 bits of
each place's lottery key, token id = the rest, the key in the draw), moves
`opens_at` into the past, then lets three admitters race for the opening
tick with k = 0 and times it inside Redis (SLOWLOG), then one tick that
admits 1,000 from the drawn line. Checks: the opening happened once, the
draw counts N, and the first admitted place holds the smallest key.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time

from bench.__main__ import SECRET


async def run(args: argparse.Namespace) -> None:
    from sqlalchemy import update

    from frontrow import catalog, rules, sale
    from frontrow.config import Settings
    from frontrow.queue import core
    from frontrow.schema import concerts
    from frontrow.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(
            Settings(
                redis_url=args.redis_url,
                database_url=f"sqlite+aiosqlite:///{tmp}/catalog.db",
                auth_secret=SECRET,
                admit_batch=0,
            )
        )
        await store.redis.flushdb()
        await catalog.migrate(store.db)
        await catalog.seed_demo(store.db)
        now = dt.datetime.now(dt.UTC)
        opens = now + dt.timedelta(hours=1)
        window = {"prequeue_from": now.isoformat(), "opens_at": opens.isoformat()}
        await rules.change(store, 1, {}, window, "bench")
        seed = await rules.seed(store, 1)
        k = store.keys(1)
        redis = store.redis

        started = time.perf_counter()
        opens_ms = sale.epoch_ms(opens)
        smallest = ("g" * 64, "")
        for first in range(0, args.size, 10_000):
            users = [f"u{i}" for i in range(first, min(args.size, first + 10_000))]
            keys = [sale.lottery_key(seed, 1, u) for u in users]
            places = [sale.place_of(key) for key in keys]
            smallest = min(smallest, *((key, u) for key, u in zip(keys, users, strict=True)))
            async with store.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(k.wait, {token: score for score, token in places})
                pipe.zadd(k.seen, {token: opens_ms + 30_000 for _, token in places})
                pipe.zadd(k.draw, dict.fromkeys(keys, 0))
                pipe.hset(k.users, mapping={u: t for u, (_, t) in zip(users, places, strict=True)})
                await pipe.execute()
        print(f"pre-queue of {args.size:,} filled in {time.perf_counter() - started:.1f} s")

        # the opening moves to now: as an operator cannot once anyone is
        # pre-queued, so straight in the record and Redis
        opened = now - dt.timedelta(seconds=1)
        async with store.db.begin() as conn:
            await conn.execute(update(concerts).values(opens_at=opened))
        await redis.hset(k.cfg, "opens_ms", sale.epoch_ms(opened))
        old = (await redis.config_get("slowlog-log-slower-than"))["slowlog-log-slower-than"]
        await redis.config_set("slowlog-log-slower-than", 0)
        await redis.slowlog_reset()
        ticks = await asyncio.gather(*(core.admit(store, 1, f"admitter{i}") for i in range(3)))
        opening_us = await slowest_script(redis)
        await redis.hset(k.cfg, "admit_batch", 1_000)
        await redis.delete(k.tick)
        await redis.slowlog_reset()
        admitting = await core.admit(store, 1, "admitter0")
        admit_us = await slowest_script(redis)
        await redis.config_set("slowlog-log-slower-than", old)

        first_active = await redis.zrange(k.active, 0, -1)
        _, first_token = sale.place_of(smallest[0])
        print(f"opening tick (three admitters racing, k=0): {opening_us / 1000:.2f} ms in Redis")
        entries = await redis.zcard(k.draw)
        print(f"  opened by {sum(t.opened for t in ticks)} of 3 ticks; entries {entries}")
        print(f"next tick admitting {admitting.admitted:,}: {admit_us / 1000:.2f} ms in Redis")
        print(f"  the smallest key's place admitted first: {first_token in first_active}")
        await store.close()


async def slowest_script(redis: object) -> int:
    """The longest EVALSHA in the SLOWLOG, in µs."""
    entries = await redis.slowlog_get(50)  # type: ignore[attr-defined]
    return max(
        (e["duration"] for e in entries if "EVALSHA" in str(e.get("command", ""))), default=0
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.opening", description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="pre-queued places")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
