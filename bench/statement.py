"""python -m bench.statement: what one backend call costs the app's CPU.

A trivial statement through psycopg's async pool and cursors (the money
statements' path before session 13), the same statement pipelined through
frontrow.statements (their path now: the statements of one turn of the
event loop are one write on one connection in libpq's pipeline mode), and a
trivial Lua call through the store's own Redis connections (store.Direct,
every script's path), one at a time and 16 at once, on real PostgreSQL and
Redis. The CPU is this process's only: what the call costs the app before
the server does any work. A payment makes one of each kind or more.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import uvloop
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from bench.__main__ import scale_backends
from frontrow.statements import Statements
from frontrow.store import Direct, pack

ECHO = "return ARGV[1]"
SQL = "SELECT %(n)s::bigint + 1 AS n, %(user)s::text AS user"


class Script:
    def __init__(self, source: str, sha: str) -> None:
        self.script, self.sha = source, sha


async def cpu_us(call: Callable[[int], Awaitable[Any]], at_once: int, calls: int) -> float:
    """This process's CPU µs a call, `at_once` calls at a time."""
    started = time.process_time()
    for first in range(0, calls, at_once):
        await asyncio.gather(*(call(i) for i in range(first, first + at_once)))
    return (time.process_time() - started) / calls * 1e6


async def run(args: argparse.Namespace) -> None:
    dsn = make_url(args.database_url).set(drivername="postgresql")
    pool = AsyncConnectionPool(
        dsn.render_as_string(hide_password=False),
        min_size=16,
        max_size=16,
        kwargs={"autocommit": True, "row_factory": namedtuple_row},
        open=False,
    )
    await pool.open(wait=True)
    redis = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    direct = Direct(redis, 128, 2.0)
    echo = Script(ECHO, await redis.script_load(ECHO))

    async def statement(i: int) -> Any:
        async with pool.connection() as conn:
            cursor = await conn.execute(SQL, {"n": i, "user": f"u{i}"}, prepare=True)
            return await cursor.fetchone()

    async def script(i: int) -> Any:
        return await direct.call(pack(("EVALSHA", echo.sha, 0, f"u{i}")), echo)

    statements = Statements(dsn.render_as_string(hide_password=False), {}, 16, 2.0)

    async def pipelined(i: int) -> Any:
        row = await statements.one(SQL, {"n": i, "user": f"u{i}"})
        assert row.n == i + 1, row
        return row

    paths = (
        ("PostgreSQL statement (psycopg pool)", statement),
        ("PostgreSQL statement (frontrow.statements)", pipelined),
        ("Redis script (store.Direct)", script),
    )
    for _, call in paths:  # warm: connections, prepared statements
        await cpu_us(call, 16, 320)
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):  # alternated, so the box's drift falls on both
        for name, call in paths:
            for at_once in (1, 16):
                results.setdefault((name, at_once), []).append(
                    await cpu_us(call, at_once, args.calls)
                )
    for (name, at_once), each in results.items():
        listed = ", ".join(f"{us:.0f}" for us in each)
        print(
            f"{name:42} {at_once:>2} at once: median {statistics.median(each):5.0f} us of"
            f" the app's CPU a call ({listed})"
        )
    await statements.close()
    await direct.close()
    await redis.aclose()
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.statement", description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    scale_backends(parser)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
