"""Coalesce concurrent status calls into one Redis round trip per concert.

At a ticket rush most requests are polls; each costs far more in the client
(pack, send, wake, parse) than in Redis. So each concert has at most one
status call in flight: polls that arrive meanwhile wait for it to return and
then go together in the next EVALSHA of status.lua, which answers many
tokens. Under load the batches grow by themselves; when idle, a poll waits
for nobody (it is sent on the next loop iteration).
"""

from __future__ import annotations

import asyncio
from typing import Any

from frontrow import rules
from frontrow.auth import QueueClaims
from frontrow.queue.pollrule import POLL_MIN_MS, WAIT_POLL_MAX_MS, default_rate
from frontrow.store import Store

# state, rank, poll interval (waiting) or session expiry (active), all in ms,
# then the line's: rate, sold_out, now_ms (Redis), waiting, and the rules'
# mode and opening (ms)
Result = tuple[str, int, int, str, str, int, int, str, int]
# token id, user id, born (ms) and score as the token carries them, answer
Waiter = tuple[str, str, int, int, asyncio.Future[Result]]
MAX_BATCH = 500
HEARTBEAT_MAX_MS = 5_000


def heartbeat_ms(abandon_after_s: float) -> int:
    """How stale a presence mark may get: a tenth of the abandon window, at most 5 s."""
    return min(HEARTBEAT_MAX_MS, int(abandon_after_s * 100))


class StatusBatcher:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: dict[int, list[Waiter]] = {}
        self._in_flight: set[int] = set()  # concerts with a call out
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def status(self, claims: QueueClaims) -> asyncio.Future[Result]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        concert_id = claims.concert_id
        waiting = self._waiting.setdefault(concert_id, [])
        waiting.append((claims.token_id, claims.user_id, claims.born_ms, claims.score, future))
        if len(waiting) == 1 and concert_id not in self._in_flight:
            self._in_flight.add(concert_id)
            loop.call_soon(self._send, concert_id)
        return future

    def _send(self, concert_id: int) -> None:
        waiting = self._waiting.pop(concert_id, [])
        if not waiting:
            self._in_flight.discard(concert_id)
            return
        batch, rest = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
        if rest:
            self._waiting[concert_id] = rest
        task = asyncio.ensure_future(self._run(concert_id, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, concert_id: int, batch: list[Waiter]) -> None:
        try:
            await self._call(concert_id, batch)
        finally:
            self._send(concert_id)  # whatever queued up meanwhile goes next

    async def _call(self, concert_id: int, batch: list[Waiter]) -> None:
        s = self._store.settings
        k = self._store.keys(concert_id)
        try:
            reply: list[Any] = await rules.call(
                self._store,
                concert_id,
                self._store.scripts.status,
                keys=[
                    k.wait,
                    k.seen,
                    k.active,
                    k.cap,
                    k.done,
                    k.stats,
                    k.users,
                    k.cfg,
                    k.back,
                    k.fresh,
                ],
                args=[
                    int(s.session_ttl_s * 1000),
                    int(s.abandon_after_s * 1000),
                    heartbeat_ms(s.abandon_after_s),
                    default_rate(s),
                    POLL_MIN_MS,
                    WAIT_POLL_MAX_MS,
                    int(s.session_max_s * 1000),
                    " ".join(f"{t} {u} {born} {score}" for t, u, born, score, _ in batch),
                ],
            )
        except BaseException as exc:  # every waiter must hear about it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        line = (reply[0], reply[1], int(reply[2]), int(reply[3]), reply[4], int(reply[5]))
        for i, (*_, future) in enumerate(batch):
            if not future.done():
                base = 6 + 3 * i
                future.set_result((reply[base], reply[base + 1], reply[base + 2], *line))
