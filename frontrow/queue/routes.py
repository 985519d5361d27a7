"""HTTP routes of the waiting queue."""

from __future__ import annotations

import datetime as dt
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow import ratelimit, sale
from frontrow.booking import holds
from frontrow.catalog import Concert
from frontrow.errors import Problem, invalid, not_found
from frontrow.http import (
    JSONResponse,
    client_address,
    queue_claims_of,
    store_of,
    user_id_of,
)
from frontrow.queue import core


async def _concert(request: Request) -> Concert:
    return await store_of(request).catalog.require(request.path_params["concert_id"])


CHALLENGE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _proof(request: Request, bits: int) -> tuple[str, str]:
    """(what the Proof-Of-Work header holds for core.enter, its challenge):
    the hash is checked here, the challenge's owner and one use in Redis."""
    if bits == 0:
        return "", ""
    header = request.headers.get("proof-of-work")
    if header is None:
        return "missing", ""
    challenge, _, nonce = header.partition(":")
    if CHALLENGE.fullmatch(challenge) and 0 < len(nonce) <= 64:
        if sale.proof_ok(challenge, nonce, bits):
            return "ok", challenge
    return "bad", ""


async def enter(request: Request) -> Response:
    store = store_of(request)
    user_id = user_id_of(request)
    concert = await _concert(request)
    await ratelimit.check(store, concert.id, "enter", user_id, client_address(request))
    proof, challenge = _proof(request, concert.sale.pow_bits)
    created, token, place = await core.enter(
        store, user_id, concert.id, concert.on_sale, concert.sale, proof, challenge
    )
    body = {"token": token, **place.as_dict(), "concert_id": concert.id}
    return JSONResponse(body, status_code=201 if created else 200)


async def challenge(request: Request) -> Response:
    """A proof-of-work challenge for this user and concert: 2 minutes, one use."""
    store = store_of(request)
    user_id = user_id_of(request)
    concert = await _concert(request)
    await ratelimit.check(store, concert.id, "enter", user_id, client_address(request))
    given = secrets.token_urlsafe(16)
    await store.redis.set(
        store.keys(concert.id).pow(given), user_id, px=core.ms(sale.CHALLENGE_LIFE_S)
    )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=sale.CHALLENGE_LIFE_S)
    return JSONResponse(
        {"challenge": given, "bits": concert.sale.pow_bits, "expires_at": sale.iso(expires)},
        status_code=201,
    )


def _lottery_of(concert: Concert) -> sale.Sale:
    if not concert.sale.has_lottery:
        raise not_found(f"concert {concert.id} has no pre-queue lottery")
    return concert.sale


async def lottery(request: Request) -> Response:
    store = store_of(request)
    concert = await _concert(request)
    drawn = _lottery_of(concert)
    opened = drawn.opened()
    entries = await store.redis.zcard(store.keys(concert.id).draw) if opened else None
    return JSONResponse(
        {
            "concert_id": concert.id,
            "prequeue_from": sale.iso(drawn.prequeue_from),
            "opens_at": sale.iso(drawn.opens_at),
            "commitment": drawn.commitment,
            "seed": drawn.seed if opened else None,
            "entries": entries,
        }
    )


KEY = re.compile(r"[0-9a-f]{64}")


async def lottery_draw(request: Request) -> Response:
    store = store_of(request)
    concert = await _concert(request)
    drawn = _lottery_of(concert)
    if not drawn.opened():
        raise Problem(
            404,
            "NOT_FOUND",
            f"the draw is published at {sale.iso(drawn.opens_at)}",
            extra={"opens_at": sale.iso(drawn.opens_at)},
        )
    after = request.query_params.get("after")
    if after is not None and not KEY.fullmatch(after):
        raise invalid("after must be a drawn key: 64 lowercase hex digits")
    raw = request.query_params.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise invalid("limit must be an integer from 1 to 10000")
    keys = await store.redis.zrangebylex(
        store.keys(concert.id).draw, f"({after}" if after else "-", "+", start=0, num=int(raw)
    )
    return JSONResponse({"keys": keys})


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


routes = [
    Route("/concerts/{concert_id:id}/queue", enter, methods=["POST"]),
    Route("/concerts/{concert_id:id}/queue/challenge", challenge, methods=["POST"]),
    Route("/concerts/{concert_id:id}/queue/lottery", lottery, methods=["GET"]),
    Route("/concerts/{concert_id:id}/queue/lottery/draw", lottery_draw, methods=["GET"]),
    Route("/queue/token", queue_token, methods=["GET", "DELETE"]),
]
