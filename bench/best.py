"""python -m bench.best: what best available costs Redis as a date fills.

A rush's Redis time grows as its first date fills: late buyers' best
available walks every row in front of the free ones. This loads the
stadium (as bench.orderpath does), marks the first date's seats sold from
the front up to each fill level (the order best.lua tries them), and asks
best available of new buyers at each level, 16 at once: Redis's own time a
call (its `INFO commandstats`, the scripts of those calls only) and the
app's CPU a call.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import uvloop

from bench.__main__ import scale_backends
from bench.orderpath import stadium_app
from bench.rush import CONCERT


def script_usec(info: dict[str, dict[str, float]]) -> tuple[float, float]:
    stats = info.get("cmdstat_evalsha", {})
    return float(stats.get("usec", 0)), float(stats.get("calls", 0))


async def run(args: argparse.Namespace) -> None:
    from frontrow.booking.holds import _rows_for_best

    random.seed(7)
    async with stadium_app(args) as (store, call):
        concert = await store.catalog.get(CONCERT)
        assert concert is not None
        schedule = concert.schedules[0]
        base = f"/concerts/{CONCERT}/dates/{schedule.date.isoformat()}"
        venue = schedule.venue
        front_first = [
            first + i
            for group in _rows_for_best(venue, list(venue.sections), None)[0].split(";")
            if group
            for _, _, first, count, _ in [map(int, group.split(","))]
            for i in range(count)
        ]
        sold = store.keys(CONCERT).sold(schedule.id)
        counter = iter(range(10**9))

        async def buyer() -> str:
            user = store.tokens.user_token(f"b{next(counter)}")
            _, place = await call("POST", f"/concerts/{CONCERT}/queue", user)
            return str(place["token"])

        async def best(token: str) -> int:
            body = {"count": random.randint(1, 4)}
            status, _ = await call("POST", f"{base}/best-available", token, body)
            return status

        await best(await buyer())  # loads the date's sold copy
        marked = 0
        seats = len(front_first)
        print(f"best available, {seats:,} seats of {schedule.date}, {args.calls} a level")
        for fill in args.fills:
            upto = int(len(front_first) * fill / 100)
            async with store.redis.pipeline(transaction=False) as pipe:
                for seat in front_first[marked:upto]:
                    pipe.setbit(sold, seat, 1)
                await pipe.execute()
            marked = max(marked, upto)
            tokens = [await buyer() for _ in range(args.calls)]
            redis_before, calls_before = script_usec(await store.redis.info("commandstats"))
            cpu_before = time.process_time()
            statuses: list[int] = []
            for i in range(0, len(tokens), 16):
                statuses += await asyncio.gather(*(best(t) for t in tokens[i : i + 16]))
            cpu = time.process_time() - cpu_before
            redis_after, calls_after = script_usec(await store.redis.info("commandstats"))
            scripts = calls_after - calls_before
            print(
                f"  {fill:3d} % sold: Redis {(redis_after - redis_before) / len(tokens):7.1f} µs"
                f" a call ({scripts / len(tokens):.2f} scripts), app CPU"
                f" {cpu / len(tokens) * 1e6:6.0f} µs; held {statuses.count(201)} of {len(tokens)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.best", description=__doc__)
    parser.add_argument("--calls", type=int, default=400, help="best-available calls a level")
    parser.add_argument(
        "--fills", type=lambda raw: [int(x) for x in raw.split(",")], default=[0, 50, 80, 90, 97]
    )
    scale_backends(parser)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
