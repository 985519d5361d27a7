"""The backend calls of one turn of the event loop, sent together.

In a rush each turn of the loop brings many requests to their Redis or
database call at once, and on these machines a write, and a wake-up of the
backend and of this process a reply, cost more than most calls themselves.
So the calls queued in one turn go out in batches of at most `most`, each
on one connection of the subclass's; at most `limit` batches are out at
once, and past that a batch waits for one, failing as an unreachable
backend after `wait_s`. store.Direct sends the Lua calls so, and
statements.Statements the money statements."""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

Call = TypeVar("Call")
Batch = list[tuple[Call, asyncio.Future[Any]]]


class Turns(Generic[Call]):
    def __init__(
        self, most: int, limit: int, wait_s: float, backend: str, unreachable: type[Exception]
    ) -> None:
        self._most = most
        self._free = asyncio.Semaphore(limit)
        self._wait_s = wait_s
        self._backend = backend
        self._unreachable = unreachable
        self._queued: Batch[Call] = []
        self._running: set[asyncio.Task[None]] = set()  # the loop keeps weak references

    async def _send(self, calls: Batch[Call]) -> None:
        """Send one batch on one connection and answer each of its calls."""
        raise NotImplementedError

    def _queue(self, call: Call) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((call, reply))
        return reply

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        for first in range(0, len(queued), self._most):
            task = asyncio.ensure_future(self._batch(queued[first : first + self._most]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _batch(self, calls: Batch[Call]) -> None:
        try:
            if self._free.locked():  # a timer only where there may be a wait
                async with asyncio.timeout(self._wait_s):
                    await self._free.acquire()
            else:
                await self._free.acquire()
        except TimeoutError:
            fail(calls, self._unreachable(f"no {self._backend} connection free in time"))
            return
        except BaseException:  # cancelled while waiting (the loop is closing): tell them
            fail(calls, self._unreachable(f"{self._backend} call cancelled"))
            raise
        try:
            await self._send(calls)
        finally:
            self._free.release()


def fail(calls: Batch[Any], error: Exception) -> None:
    for _, reply in calls:
        if not reply.done():
            reply.set_exception(type(error)(*error.args))  # each caller its own
