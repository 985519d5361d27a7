"""PostgreSQL's money statements (a charge, a payment: each one statement in
autocommit), pipelined on connections of their own.

The statements asked for in one turn of the event loop go to PostgreSQL
together (frontrow.turns), as store.Direct sends the Lua calls: one write on one connection
in libpq's pipeline mode, each statement followed by a Sync (its own
implicit transaction, as in autocommit: an error ends only its own
statement, and answers only its own caller), the results read back in
order. Through psycopg's pool and cursors a statement cost the app 160-250
µs of CPU, its own connection and cursor ~110, and so 25-70 (`python -m
bench.statement`): each of those waits registered the socket with the loop
and armed a timer, and the pool's lock and checks came on top. A payment
makes one statement and most orders a charge too.

Statements are prepared on each connection the first time it runs them
with those parameter types; parameters are adapted and rows loaded by
psycopg's own Transformer, so a statement takes and gives the same values
as through a cursor (named parameters, rows as named tuples)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections import namedtuple
from functools import cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from frontrow.turns import Batch, Turns, fail

MONEY_CONNECTIONS = "frontrow money"
# Statements one write carries at most: PostgreSQL runs a connection's
# statements one after the other, so a larger turn is spread over more
# connections (and more of the database's cores).
BATCH_MAX = 8
PARAMETER = re.compile(rb"%\((\w+)\)s")
log = logging.getLogger("frontrow.statements")


Statement = tuple[str, dict[str, Any]]  # its SQL, its named parameters


class Dropped(psycopg.OperationalError):
    """The connection failed before this statement's answer was read."""


@cache
def positional(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """A statement with %(name)s parameters as PostgreSQL takes it ($1, $2,
    ...; a name used twice is one parameter), and the names in order."""
    names: list[str] = []

    def number(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode()
        if name not in names:
            names.append(name)
        return b"$%d" % (names.index(name) + 1)

    query = PARAMETER.sub(number, sql.encode())
    if b"%" in query:
        raise ValueError("a money statement takes only %(name)s parameters")
    return query, tuple(names)


@cache
def row_type(names: tuple[str, ...]) -> Any:
    row: Any = namedtuple("Row", names)  # type: ignore[misc]  # the statement's columns
    return row._make


class _Line:
    """One connection in pipeline mode, and what it has prepared."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.pg = conn.pgconn
        self.pg.enter_pipeline_mode()
        self.tx = Transformer(conn)
        self.prepared: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self.names = itertools.count()

    def send(self, sql: str, params: dict[str, Any]) -> tuple[str, tuple[int, ...]] | None:
        """Queue the statement and its Sync; the statement's key when it is
        prepared with them (forgotten again if that fails)."""
        query, names = positional(sql)
        values = self.tx.dump_sequence([params[n] for n in names], [PyFormat.AUTO] * len(names))
        key = (sql, tuple(self.tx.types or ()))
        name = self.prepared.get(key)
        preparing = name is None
        if name is None:
            name = self.prepared[key] = b"frontrow_%d" % next(self.names)
            self.pg.send_prepare(name, query, param_types=self.tx.types)
        self.pg.send_query_prepared(name, values, param_formats=self.tx.formats)
        self.pg.pipeline_sync()
        return key if preparing else None

    def answer(self, results: list[pq.abc.PGresult]) -> Any:
        """A statement's one row (None for none) from its results, or its error."""
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                return psycopg.errors.error_from_result(result, encoding=self.conn.info.encoding)
        rows = results[-1]
        if rows.status != pq.ExecStatus.TUPLES_OK:
            return psycopg.OperationalError(f"unexpected result {pq.ExecStatus(rows.status).name}")
        if rows.ntuples == 0:
            return None
        self.tx.set_pgresult(rows)
        names = tuple(rows.fname(i).decode() for i in range(rows.nfields))  # type: ignore[union-attr]
        return self.tx.load_row(0, row_type(names))

    async def run(self, calls: Batch[Statement]) -> None:
        """Send the calls and answer each as its results arrive."""
        sent = []
        for (sql, params), reply in calls:
            try:
                sent.append((reply, self.send(sql, params)))
            except (KeyError, psycopg.DataError, psycopg.ProgrammingError) as exc:
                if not reply.done():  # parameters it cannot take: nothing was queued
                    reply.set_exception(exc)
        while self.pg.flush():  # (libpq reads what came meanwhile itself when it cannot write)
            await self._ready(writing=True)
        waiting = iter(sent)
        results: list[pq.abc.PGresult] = []  # the current statement's so far
        answered = 0
        while answered < len(sent):
            self.pg.consume_input()  # what flush() may have read already comes first
            while not self.pg.is_busy():
                result = self.pg.get_result()
                if result is None:  # a statement's end, or nothing more read yet
                    if not results:
                        break
                    continue
                if result.status != pq.ExecStatus.PIPELINE_SYNC:
                    results.append(result)
                    continue
                reply, key = next(waiting)
                outcome = self.answer(results)
                if key is not None and results[0].status == pq.ExecStatus.FATAL_ERROR:
                    self.prepared.pop(key, None)  # it was not prepared after all
                if not reply.done():  # its caller may have gone (a timeout)
                    if isinstance(outcome, Exception):
                        reply.set_exception(outcome)
                    else:
                        reply.set_result(outcome)
                answered, results = answered + 1, []
            if answered < len(sent):
                await self._ready(writing=False)

    async def _ready(self, writing: bool) -> None:
        loop, fd = asyncio.get_running_loop(), self.pg.socket
        ready: asyncio.Future[None] = loop.create_future()
        (loop.add_writer if writing else loop.add_reader)(fd, ready.set_result, None)
        try:
            await ready
        finally:
            (loop.remove_writer if writing else loop.remove_reader)(fd)


class Statements(Turns[Statement]):
    """At most `size` connections (FRONTROW_DATABASE_POOL), opened as a
    server starts (start()) so that no session is forked in a rush (each
    a process and an authentication), or on first use. A turn's statements
    take an idle connection or open one. A connection that
    fails is closed, with the idle ones beside it (a restarted database
    leaves them all dead), and each of its unanswered statements that may
    (one()'s `again`) runs once more on a new one."""

    def __init__(self, conninfo: str, connect_args: dict[str, Any], size: int, wait_s: float):
        super().__init__(BATCH_MAX, size, wait_s, "database", psycopg.OperationalError)
        self._conninfo = conninfo
        self._connect_args = {"autocommit": True, **connect_args}
        self._size = size
        self._idle: list[_Line] = []
        self._opening: asyncio.Task[None] | None = None

    async def one(self, sql: str, params: dict[str, Any], again: bool = True) -> Any:
        """The statement's one row (a named tuple), None when it has none.
        `again`: whether it may run once more when its connection failed
        before its answer came, which may have been after it committed: only
        a statement that finds its own earlier run (an Idempotency-Key, its
        seats) and moves nothing then."""
        self.start()
        try:
            return await self._queue((sql, params))
        except Dropped:
            if not again:
                raise
            return await self._queue((sql, params))

    def start(self) -> asyncio.Task[None]:
        """Open the connections in the background (once)."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open_all())
        return self._opening

    async def close(self) -> None:
        """Let the statements in flight finish (within the wait: a database
        that stopped answering must not hold a shutdown), then close every
        connection."""
        busy = {*self._running, *([self._opening] if self._opening else [])}
        if busy:
            _, stuck = await asyncio.wait(busy, timeout=self._wait_s)
            for task in stuck:  # a cancelled batch closes its connection
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        while self._idle:
            await self._idle.pop().conn.close()

    async def _open_all(self) -> None:
        async def open_one() -> None:
            async with self._free:
                self._idle.append(await self._connect())

        opened = await asyncio.gather(
            *(open_one() for _ in range(self._size)), return_exceptions=True
        )
        failed = [error for error in opened if error is not None]
        if failed:  # a database not up yet: the first statements open their own
            log.warning("%d money connections not opened at start: %r", len(failed), failed[0])

    async def _connect(self) -> _Line:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._connect_args)
        return _Line(conn)

    async def _send(self, calls: Batch[Statement]) -> None:
        try:
            line = self._idle.pop() if self._idle else await self._connect()
        except BaseException as exc:  # the database is not there: no second try
            fail(calls, psycopg.OperationalError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        try:
            await line.run(calls)
        except BaseException as exc:  # the rest of the answers are lost with the connection
            cancelled = not isinstance(exc, Exception)  # the loop is closing: no second try
            fail(calls, psycopg.OperationalError("cancelled") if cancelled else Dropped(str(exc)))
            dead = [line, *self._idle]
            self._idle.clear()
            for each in dead:
                await each.conn.close()
            if cancelled:
                raise
        else:
            self._idle.append(line)
