"""HTTP routes of booking: dates, seat maps, holds (ACTIVE queue token)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow import ratelimit
from frontrow.auth import QueueClaims
from frontrow.booking import holds
from frontrow.catalog import Concert, Schedule
from frontrow.errors import forbidden, invalid, not_found
from frontrow.http import JSONResponse, client_address, queue_claims_of, read_json, store_of
from frontrow.queue.core import require_active


async def _active_concert(request: Request) -> tuple[QueueClaims, Concert]:
    store = store_of(request)
    claims = queue_claims_of(request)
    concert_id = request.path_params["concert_id"]
    await require_active(store, claims, concert_id)
    concert = await store.catalog.get(concert_id)
    if concert is None:
        raise not_found("no such concert")
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
    states = await holds.seat_states(store_of(request), concert, upcoming, with_seats=False)
    dates = []
    for schedule, state in zip(upcoming, states, strict=True):
        total = len(schedule.prices)
        dates.append(
            {
                "date": schedule.date.isoformat(),
                "schedule_id": schedule.id,
                "starts_at": schedule.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "available_seats": max(0, total - state.sold - state.held),
                "sold_out": state.sold >= total,
            }
        )
    return JSONResponse({"concert_id": concert.id, "timezone": concert.timezone, "dates": dates})


async def seat_map(request: Request) -> Response:
    _, concert = await _active_concert(request)
    schedule = _schedule(concert, request.path_params["date"])
    (state,) = await holds.seat_states(store_of(request), concert, [schedule], with_seats=True)
    seats = [
        {
            "seat_no": seat_no,
            "price": price,
            "status": "SOLD"
            if seat_no in state.sold
            else "HELD"
            if seat_no in state.held
            else "AVAILABLE",
        }
        for seat_no, price in schedule.prices.items()
    ]
    return JSONResponse(
        {"concert_id": concert.id, "date": schedule.date.isoformat(), "seats": seats}
    )


async def hold_seat(request: Request) -> Response:
    claims, concert = await _active_concert(request)
    schedule = _schedule(concert, request.path_params["date"])
    body = await read_json(request, optional=True)
    if body:
        raise invalid("this request takes no fields; send no body or {}")
    store = store_of(request)
    address = client_address(request)
    await ratelimit.check(store, concert.id, "hold", claims.user_id, address)
    created, hold = await holds.hold(
        store, concert, schedule, request.path_params["seat_no"], claims.user_id
    )
    return JSONResponse(hold.as_dict(), status_code=201 if created else 200)


async def release_hold(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)
    ref = holds.parse_hold_id(request.path_params["hold_id"])
    if ref is None:
        raise not_found("no such hold")
    if ref.concert_id != claims.concert_id:
        raise forbidden("this hold belongs to another concert")
    await require_active(store, claims, ref.concert_id, or_done=True)
    await holds.release(store, ref, claims.user_id)
    return Response(status_code=204)


async def my_holds(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)
    await require_active(store, claims, claims.concert_id)
    concert = await store.catalog.get(claims.concert_id)
    if concert is None:
        raise not_found("no such concert")
    found = await holds.mine(store, concert, claims.user_id)
    return JSONResponse({"holds": [h.as_dict() for h in found]})


routes = [
    Route("/concerts/{concert_id:id}/dates", list_dates, methods=["GET"]),
    Route("/concerts/{concert_id:id}/dates/{date:slug}/seats", seat_map, methods=["GET"]),
    Route(
        "/concerts/{concert_id:id}/dates/{date:slug}/seats/{seat_no:id}/hold",
        hold_seat,
        methods=["POST"],
    ),
    Route("/holds", my_holds, methods=["GET"]),
    Route("/holds/{hold_id:slug}", release_hold, methods=["DELETE"]),
]
