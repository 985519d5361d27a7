"""GET /queue/token without Starlette's routing and response machinery.

A million waiting browsers make the poll most of all traffic, so this one
path is answered from a pure ASGI handler in front of Starlette's middleware
stack (see app.App): cached token verification, the batched status call,
one orjson body sent as-is. It records its own metrics and renders its own
errors. Every other request, and every other method on this path, goes
through the regular app.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from frontrow.auth import bearer
from frontrow.errors import BACKEND_ERRORS, Problem, backend_unavailable, problem_response
from frontrow.observe import record_poll
from frontrow.queue import core

log = logging.getLogger("frontrow")
PATH = "/queue/token"
HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def _problem(exc: Exception) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, BACKEND_ERRORS):
        log.warning("backend unavailable on GET %s: %r", PATH, exc)
        return backend_unavailable("a backend is unreachable; retry shortly")
    log.error("unhandled error on GET %s", PATH, exc_info=exc)
    return Problem(500, "INTERNAL", "internal error")


class FastPoll:
    def __init__(self, app: Any, starlette: Any) -> None:
        self.app = app
        self.state = starlette.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        started, clock = time.perf_counter(), time.thread_time
        # CPU of this request's own steps: the loop runs others while it waits for its batch
        began, paused, waited = clock(), 0.0, 0.0
        try:
            store = self.state.store
            claims = store.tokens.verify_queue(bearer(_authorization(scope["headers"])))
            status = core.status(store, claims)
            paused = clock()
            place = await status
            waited = clock() - paused
        except Exception as exc:
            if paused and not waited:
                waited = clock() - paused
            problem = _problem(exc)
            await problem_response(problem)(scope, receive, send)
            cpu = clock() - began - waited
            record_poll(problem.status, time.perf_counter() - started, cpu, None, True)
            return
        body = orjson.dumps(core.poll_body(place, claims.concert_id))
        headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        cpu = clock() - began - waited
        record_poll(200, elapsed, cpu, claims.concert_id, store.settings.log_polls)
