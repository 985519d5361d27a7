"""HTTP routes of booking: dates, seat maps, holds (ACTIVE queue token)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow import ratelimit, sale
from frontrow.auth import QueueClaims
from frontrow.booking import holds, maps
from frontrow.catalog import Concert, Schedule
from frontrow.errors import forbidden, invalid, not_found
from frontrow.http import (
    JSONResponse,
    client_address,
    queue_claims_of,
    read_json,
    shared,
    store_of,
)
from frontrow.queue.core import require_active


async def _concert(request: Request) -> tuple[QueueClaims, Concert]:
    """The token's claims and the path's concert (the token must be for it);
    the session is checked by the caller: a hold checks it inside its script."""
    claims = queue_claims_of(request)
    concert_id = request.path_params["concert_id"]
    if claims.concert_id != concert_id:
        raise forbidden("this queue token is for another concert")
    return claims, await store_of(request).catalog.require(concert_id)


async def _active_concert(request: Request) -> tuple[QueueClaims, Concert]:
    claims, concert = await _concert(request)
    await require_active(store_of(request), claims, concert.id)
    return claims, concert


def _schedule(concert: Concert, raw_date: str) -> Schedule:
    try:
        date = dt.date.fromisoformat(raw_date)
    except ValueError:
        raise not_found(f"no date {raw_date!r} (expected YYYY-MM-DD)") from None
    schedule = concert.schedule_on(date) if len(raw_date) == 10 else None
    if schedule is None:
        raise not_found(f"concert {concert.id} has no date {raw_date}")
    return schedule


async def list_dates(request: Request) -> Response:
    _, concert = await _active_concert(request)
    upcoming = concert.upcoming()
    counts = await holds.seat_counts(store_of(request), concert, upcoming)
    dates = []
    for schedule, (sold, held) in zip(upcoming, counts, strict=True):
        total = len(schedule.prices)
        dates.append(
            {
                "date": schedule.date.isoformat(),
                "schedule_id": schedule.id,
                "starts_at": sale.iso(schedule.starts_at),
                "available_seats": max(0, total - sold - held),
                "sold_out": sold >= total,
            }
        )
    return JSONResponse({"concert_id": concert.id, "timezone": concert.timezone, "dates": dates})


async def _map_reader(request: Request) -> tuple[QueueClaims, Concert]:
    """A map read is counted against the user's and the address's limit
    before anything else is asked of Redis: a buyer asking in a loop is
    refused at the cost of a count."""
    claims, concert = await _concert(request)
    store = store_of(request)
    await ratelimit.check(store, concert.id, "map", claims.user_id, client_address(request))
    await require_active(store, claims, concert.id)
    return claims, concert


async def seat_map(request: Request) -> Response:
    claims, concert = await _map_reader(request)
    schedule = _schedule(concert, request.path_params["date"])
    form = request.query_params.get("form", "seats")
    if form not in ("seats", "rows"):
        raise invalid("form must be seats (one object a seat) or rows (one a row)")
    name = request.query_params.get("section")
    section = None
    if name is not None:
        section = schedule.venue.section(name)
        if section is None:
            raise not_found(f"no section {name!r} on {schedule.date.isoformat()}")
    store = store_of(request)
    async with maps.one_at_a_time(claims.user_id):
        rendered = await shared(
            ("seats", id(store), schedule.id, name, form),
            lambda: maps.seat_map(store, concert, schedule, section, form),
        )
    return rendered.response(request)


async def list_sections(request: Request) -> Response:
    claims, concert = await _map_reader(request)
    schedule = _schedule(concert, request.path_params["date"])
    store = store_of(request)
    async with maps.one_at_a_time(claims.user_id):
        rendered = await shared(
            ("sections", id(store), schedule.id), lambda: maps.sections(store, concert, schedule)
        )
    return rendered.response(request)


async def hold_seat(request: Request) -> Response:
    claims, concert = await _concert(request)
    schedule = _schedule(concert, request.path_params["date"])
    body = await read_json(request, optional=True)
    if body:
        raise invalid("this request takes no fields; send no body or {}")
    created, hold = await holds.hold(
        store_of(request),
        concert,
        schedule,
        request.path_params["seat_no"],
        claims,
        client_address(request),
    )
    return JSONResponse(hold.as_dict(), status_code=201 if created else 200)


BEST_FIELDS = ("count", "section", "max_price")


async def best_available(request: Request) -> Response:
    claims, concert = await _concert(request)
    schedule = _schedule(concert, request.path_params["date"])
    store = store_of(request)
    body = await read_json(request)
    unknown = sorted(set(body) - set(BEST_FIELDS))
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}; allowed: {', '.join(BEST_FIELDS)}")
    limit = store.settings.max_holds_per_user
    count, section, max_price = body.get("count"), body.get("section"), body.get("max_price")
    if type(count) is not int or not 1 <= count <= limit:
        raise invalid(f"count must be an integer from 1 to {limit}")
    if section is not None and (type(section) is not str or not 0 < len(section) <= 32):
        raise invalid("section must be a section's name")
    if max_price is not None and (type(max_price) is not int or max_price < 0):
        raise invalid("max_price must be a whole number of won >= 0")
    held = await holds.best_available(
        store, concert, schedule, claims, client_address(request), count, section, max_price
    )
    return JSONResponse({"holds": [h.as_dict() for h in held]}, status_code=201)


async def release_hold(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)
    ref = holds.parse_hold_id(request.path_params["hold_id"])
    if ref is None:
        raise not_found("no such hold")
    if ref.concert_id != claims.concert_id:
        raise forbidden("this hold belongs to another concert")
    await require_active(store, claims, ref.concert_id, or_done=True)
    concert = await store.catalog.require(ref.concert_id)
    await holds.release(store, concert, ref, claims.user_id)
    return Response(status_code=204)


async def my_holds(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)
    await require_active(store, claims, claims.concert_id)
    concert = await store.catalog.require(claims.concert_id)
    found = await holds.mine(store, concert, claims.user_id)
    return JSONResponse({"holds": [h.as_dict() for h in found]})


routes = [
    Route("/concerts/{concert_id:id}/dates", list_dates, methods=["GET"]),
    Route("/concerts/{concert_id:id}/dates/{date:slug}/seats", seat_map, methods=["GET"]),
    Route("/concerts/{concert_id:id}/dates/{date:slug}/sections", list_sections, methods=["GET"]),
    Route(
        "/concerts/{concert_id:id}/dates/{date:slug}/seats/{seat_no:id}/hold",
        hold_seat,
        methods=["POST"],
    ),
    Route(
        "/concerts/{concert_id:id}/dates/{date:slug}/best-available",
        best_available,
        methods=["POST"],
    ),
    Route("/holds", my_holds, methods=["GET"]),
    Route("/holds/{hold_id:slug}", release_hold, methods=["DELETE"]),
]
