"""HTTP routes of the waiting queue."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow.errors import not_found
from frontrow.http import JSONResponse, queue_claims_of, store_of, user_id_of
from frontrow.queue import core


async def enter(request: Request) -> Response:
    store = store_of(request)
    user_id = user_id_of(request)
    concert = await store.catalog.get(request.path_params["concert_id"])
    if concert is None:
        raise not_found("no such concert")
    created, token, place = await core.enter(store, user_id, concert.id, concert.on_sale)
    body = {"token": token, **place.as_dict(), "concert_id": concert.id}
    return JSONResponse(body, status_code=201 if created else 200)


async def poll(request: Request) -> Response:
    claims = queue_claims_of(request)
    place = await core.status(store_of(request), claims)
    return JSONResponse({**place.as_dict(), "concert_id": claims.concert_id})


async def leave(request: Request) -> Response:
    claims = queue_claims_of(request)
    await core.leave(store_of(request), claims)
    return Response(status_code=204)


routes = [
    Route("/concerts/{concert_id:int}/queue", enter, methods=["POST"]),
    Route("/queue/token", poll, methods=["GET"]),
    Route("/queue/token", leave, methods=["DELETE"]),
]
