"""python -m bench.maps: one buyer hammering seat maps against everyone's poll.

Against real Redis and PostgreSQL (databases it may wipe): the stadium
catalog (4 dates x 50,000 seats) in `frontrow serve --workers 2` (uvicorn or
granian), one admitted buyer, and wrk:
1. quiet: other users' polls (-c4, 10,000 rotating tokens), p50/p99;
2. the same polls while the buyer hammers one map over 8 connections, for
   each map form (a whole date as seat objects, as rows, one section, the
   section overview); the figure is p99 flooded / p99 quiet (goal <= 2);
3. the CPU each map request costs the server (from /proc, the map asked
   alone on one connection), beside a poll's. With a per-user limit the
   first buyer's window is spent after its first maps: its later figures
   are of refusals, each paused (ratelimit.REFUSED_PAUSE_S).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from bench.__main__ import (
    SAMPLE,
    Queue,
    fresh_database,
    frontrow_env,
    frontrow_server,
    scale_backends,
    server,
    wrk,
)
from bench.stadium import admitted_buyer, import_stadium

MAPS = (
    ("whole date, seat objects", "/seats"),
    ("whole date, form=rows", "/seats?form=rows"),
    ("one section, seat objects", "/seats?section=A"),
    ("section overview", "/sections"),
)


def flooded(
    url: str, polls: list[str], buyer: str, path: str, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the polls' figures, the map requests' figures) measured together."""
    out: dict[str, Any] = {}

    def hammer() -> None:
        out["map"] = wrk(url, [buyer], args.duration + 2, 8, path=path, warmup=0)

    flood = threading.Thread(target=hammer)
    flood.start()
    time.sleep(1)
    polled = wrk(url, polls, args.duration, 4, warmup=0)
    flood.join()
    return polled, out["map"]


async def prepare(args: argparse.Namespace) -> list[str]:
    """A fresh database, and a line of waiting places whose tokens poll."""
    await fresh_database(args.database_url)
    queue = Queue(args.redis_url)
    await queue.flush()
    await queue.grow(SAMPLE)
    await queue.store.close()
    return queue.tokens(SAMPLE)


def run(args: argparse.Namespace) -> None:
    polls = asyncio.run(prepare(args))
    env = frontrow_env(
        args,
        FRONTROW_SCHEDULERS="1",
        FRONTROW_ADMIT_BATCH="50",
        FRONTROW_MAPS_PER_USER=str(args.maps_per_user),
    )
    with server(frontrow_server(args.server, 2), env) as url:
        import_stadium(env)
        buyer, date = admitted_buyer(url, "bench-hammer")
        quiet = wrk(url, polls, args.duration, 4)
        print(
            f"{args.server}, 2 workers, maps per user {args.maps_per_user or 'unlimited'}:"
            f" poll quiet p50 {quiet['p50_us'] / 1000:.1f} ms"
            f"  p99 {quiet['p99_us'] / 1000:.1f} ms  {quiet['cpu_us']:.0f} us CPU a poll"
        )
        for i, (name, path) in enumerate(MAPS):
            alone = wrk(url, [buyer], 5, 1, path=date + path, warmup=1)
            # a buyer of its own, whose window opens with the flood: its
            # first maps (up to the limit) are rendered inside the flood
            hammer, _ = admitted_buyer(url, f"bench-hammer-{i}")
            polled, hammered = flooded(url, polls, hammer, date + path, args)
            print(
                f"{name:26} {alone['cpu_us'] / 1000:6.2f} ms CPU a map; flood"
                f" {hammered['rps']:6.0f} req/s ({hammered['non2xx']} non-2xx);"
                f" poll p50 {polled['p50_us'] / 1000:5.1f} ms p99 {polled['p99_us'] / 1000:6.1f} ms"
                f" = {polled['p99_us'] / quiet['p99_us']:.2f}x quiet"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.maps", description=__doc__)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--maps-per-user",
        type=int,
        default=0,
        help="FRONTROW_MAPS_PER_USER (0: every map rendered)",
    )
    scale_backends(parser)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
