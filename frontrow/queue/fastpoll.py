"""GET /queue/token without Starlette's routing and response machinery.

A million waiting browsers make the poll most of all traffic, so this one
path is answered from a pure ASGI middleware: cached token verification,
the batched status call, one orjson body sent as-is. Every other request,
and every other method on this path, goes through the regular app.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from frontrow.auth import bearer
from frontrow.errors import BACKEND_ERRORS, Problem, backend_unavailable, problem_response
from frontrow.queue import core

log = logging.getLogger("frontrow")
PATH = "/queue/token"
HEADERS = [(b"content-type", b"application/json")]


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


class FastPoll:
    def __init__(self, app: Any, route: Any = None) -> None:
        self.app = app
        self.route = route  # what the metrics middleware labels the request with

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        store = scope["app"].state.store
        try:
            claims = store.tokens.verify_queue(bearer(_authorization(scope["headers"])))
            place = await core.status(store, claims)
        except Problem as problem:
            await problem_response(problem)(scope, receive, send)
            return
        except BACKEND_ERRORS:
            problem = backend_unavailable("a backend is unreachable; retry shortly")
            await problem_response(problem)(scope, receive, send)
            return
        body = orjson.dumps(core.poll_body(place, claims.concert_id))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
