"""python -m bench.statement: what one backend call costs the app's CPU.

A trivial prepared statement through psycopg's async pool (the money
statements' path, store.Statements) beside a trivial Lua call through the
store's own Redis connections (store.Direct, every script's path), one at a
time and 16 at once, on real PostgreSQL and Redis. The CPU is this process's
only: what the call costs the app before the server does any work. A
payment makes one of each kind or more, so this says which path the next
saving of the app's CPU is on.

A third path is not frontrow's yet: the same statement from the callers of
one turn of the event loop sent on one connection in libpq's pipeline mode,
each with a Sync of its own (its own implicit transaction, as in autocommit),
the way store.Direct sends Lua calls. It answers how much batching the money
statements would save before anyone builds it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import redis.asyncio as aioredis
import uvloop
from psycopg import pq
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from bench.__main__ import scale_backends
from frontrow.store import Direct, pack

ECHO = "return ARGV[1]"


class Script:
    def __init__(self, source: str, sha: str) -> None:
        self.script, self.sha = source, sha


class Pipelined:
    """The callers of one turn of the loop: one write, one Sync a statement,
    the results read back in order (a prototype: no retry, no timeout)."""

    NAME = b"bench_statement"

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.queued: list[tuple[list[bytes | None], asyncio.Future[bytes | None]]] = []
        self.lock = asyncio.Lock()
        self.flushing: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, dsn: str) -> Pipelined:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await conn.execute(
            "PREPARE bench_statement (bigint, text) AS SELECT $1 + 1 AS n, $2 AS user"
        )
        conn.pgconn.enter_pipeline_mode()
        return cls(conn)

    def call(self, n: int, user: str) -> asyncio.Future[bytes | None]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes | None] = loop.create_future()
        if not self.queued:
            loop.call_soon(self._start)
        self.queued.append(([str(n).encode(), user.encode()], reply))
        return reply

    def _start(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self.flushing.add(task)  # the loop keeps only weak references
        task.add_done_callback(self.flushing.discard)

    async def _wait(self, writing: bool) -> None:
        loop, fd = asyncio.get_running_loop(), self.conn.pgconn.socket
        ready: asyncio.Future[None] = loop.create_future()
        (loop.add_writer if writing else loop.add_reader)(fd, ready.set_result, None)
        try:
            await ready
        finally:
            (loop.remove_writer if writing else loop.remove_reader)(fd)

    async def _flush(self) -> None:
        async with self.lock:  # one batch at a time on the connection
            calls, self.queued = self.queued, []
            if not calls:
                return
            pg = self.conn.pgconn
            for params, _ in calls:
                pg.send_query_prepared(self.NAME, params)
                pg.pipeline_sync()
            while pg.flush():
                await self._wait(writing=True)
            replies = iter(calls)
            synced, got = 0, []  # got: the current statement's results so far
            while True:  # what flush() may already have read is taken first
                pg.consume_input()
                while not pg.is_busy():
                    result = pg.get_result()
                    if result is None:  # a statement's end, or nothing more read yet
                        if not got:
                            break
                        continue
                    if result.status == pq.ExecStatus.PIPELINE_SYNC:
                        _, reply = next(replies)
                        ok = got and got[0].status == pq.ExecStatus.TUPLES_OK
                        reply.set_result(got[0].get_value(0, 0) if ok else None)
                        synced, got = synced + 1, []
                    else:  # its rows, or its error (its own Sync still follows)
                        got.append(result)
                if synced == len(calls):
                    return
                await self._wait(writing=False)


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
            cursor = await conn.execute(
                "SELECT %(n)s::bigint + 1 AS n, %(user)s::text AS user",
                {"n": i, "user": f"u{i}"},
                prepare=True,
            )
            return await cursor.fetchone()

    async def script(i: int) -> Any:
        return await direct.call(pack(("EVALSHA", echo.sha, 0, f"u{i}")), echo)

    batcher = await Pipelined.open(dsn.render_as_string(hide_password=False))

    async def pipelined(i: int) -> Any:
        answer = await batcher.call(i, f"u{i}")
        assert answer == str(i + 1).encode(), answer
        return answer

    paths = (
        ("PostgreSQL statement (psycopg pool)", statement),
        ("PostgreSQL statement pipelined", pipelined),
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
            f"{name:38} {at_once:>2} at once: median {statistics.median(each):5.0f} us of"
            f" the app's CPU a call ({listed})"
        )
    await batcher.conn.close()
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
