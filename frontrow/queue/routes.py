"""HTTP routes of the waiting queue."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow import ratelimit
from frontrow.auth import bearer
from frontrow.booking import holds
from frontrow.catalog import Concert
from frontrow.errors import invalid, not_found, unauthenticated
from frontrow.http import (
    JSONResponse,
    client_address,
    queue_claims_of,
    read_json,
    store_of,
    user_id_of,
)
from frontrow.queue import core


async def enter(request: Request) -> Response:
    store = store_of(request)
    user_id = user_id_of(request)
    concert = await store.catalog.get(request.path_params["concert_id"])
    if concert is None:
        raise not_found("no such concert")
    await ratelimit.check(store, concert.id, "enter", user_id, client_address(request))
    created, token, place = await core.enter(store, user_id, concert.id, concert.on_sale)
    body = {"token": token, **place.as_dict(), "concert_id": concert.id}
    return JSONResponse(body, status_code=201 if created else 200)


async def poll(request: Request) -> Response:
    claims = queue_claims_of(request)
    place = await core.status(store_of(request), claims)
    return JSONResponse(core.poll_body(place, claims.concert_id))


async def leave(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)
    refs = await holds.live_refs(store, claims.concert_id, claims.user_id)
    await core.leave(store, claims, [(r.hold_id, r.schedule_id, r.seat_no) for r, _ in refs])
    return Response(status_code=204)


async def queue_token(request: Request) -> Response:
    # One route per path, so a 405 lists every method the path has.
    return await (leave(request) if request.method == "DELETE" else poll(request))


async def _admin_concert(request: Request) -> Concert:
    store = store_of(request)
    expected = store.settings.admin_token
    if not expected:
        raise not_found("no such route")
    # A missing or malformed credential is a plain 401: it cannot be the token,
    # so it is no guess to count.
    given = bearer(request.headers.get("authorization"))
    address = client_address(request)
    limit = ratelimit.ADMIN_FAILURES_PER_ADDRESS
    await ratelimit.refuse_when_spent(store, "admin", address, limit)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        await ratelimit.check_address(store, "admin", address, limit)
        raise unauthenticated("invalid admin token")
    concert = await store.catalog.get(request.path_params["concert_id"])
    if concert is None:
        raise not_found("no such concert")
    return concert


def _is_int(value: Any) -> bool:
    return type(value) is int


def parse_live_settings(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a PATCH body of live queue settings; reject unknown fields."""
    unknown = sorted(set(body) - set(core.LIVE_SETTINGS))
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}; allowed: {', '.join(core.LIVE_SETTINGS)}")
    if not body:
        raise invalid(f"give at least one of {', '.join(core.LIVE_SETTINGS)}")
    if "admit_batch" in body:
        value = body["admit_batch"]
        if not _is_int(value) or not 0 <= value <= 1_000_000:
            raise invalid("admit_batch must be an integer from 0 to 1000000")
    if "admit_interval_s" in body:
        value = body["admit_interval_s"]
        if type(value) not in (int, float) or not 0.05 <= value <= 3600:
            raise invalid("admit_interval_s must be a number from 0.05 to 3600")
    if "max_active" in body:
        value = body["max_active"]
        if not _is_int(value) or not 0 <= value <= 100_000_000:
            raise invalid("max_active must be an integer >= 0 (0 = no cap)")
    if "open" in body and type(body["open"]) is not bool:
        raise invalid("open must be true or false")
    return body


async def admin_queue(request: Request) -> Response:
    store = store_of(request)
    concert = await _admin_concert(request)
    if request.method == "PATCH":
        changes = parse_live_settings(await read_json(request))
        await core.configure(store, concert.id, changes)
    return JSONResponse(await core.overview(store, concert.id, concert.on_sale))


routes = [
    Route("/admin/concerts/{concert_id:id}/queue", admin_queue, methods=["GET", "PATCH"]),
    Route("/concerts/{concert_id:id}/queue", enter, methods=["POST"]),
    Route("/queue/token", queue_token, methods=["GET", "DELETE"]),
]
