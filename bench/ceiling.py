"""The ceiling: a bare Starlette endpoint returning a poll-sized JSON body."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = {
    "status": "WAITING",
    "rank": 51532,
    "eta_s": 516,
    "poll_after_ms": 30000,
    "expires_at": None,
    "sold_out": False,
    "concert_id": 1,
}


async def poll(request: Request) -> Response:
    return Response(orjson.dumps(BODY), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # The same garbage-collector tuning as `frontrow serve`, so the ratio is fair.
    gc.set_threshold(50_000, 20, 20)
    gc.collect()
    gc.freeze()
    yield


app = Starlette(routes=[Route("/queue/token", poll)], lifespan=lifespan)
