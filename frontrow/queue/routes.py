"""HTTP routes of the waiting queue."""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow import ratelimit, rules, sale
from frontrow.booking import holds
from frontrow.catalog import Concert
from frontrow.errors import Problem, invalid, not_found
from frontrow.http import (
    JSONResponse,
    Rendered,
    client_address,
    queue_claims_of,
    shared,
    store_of,
    user_id_of,
)
from frontrow.queue import core
from frontrow.store import Store


async def _concert(request: Request) -> Concert:
    return await store_of(request).catalog.require(request.path_params["concert_id"])


CHALLENGE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _proof(request: Request) -> tuple[str, str]:
    """(what the Proof-Of-Work header holds for core.enter, its challenge):
    the hash is checked here for the bits the challenge was made for; whether
    the concert asks for a proof, and for how many bits, is enter.lua's to
    judge, with the challenge's owner and its one use."""
    header = request.headers.get("proof-of-work")
    if header is None:
        return "missing", ""
    if len(header) > sale.PROOF_MAX:  # no proof is this long: refused even where none is asked
        raise invalid(f"Proof-Of-Work must be at most {sale.PROOF_MAX} characters")
    challenge, _, nonce = header.partition(":")
    if CHALLENGE.fullmatch(challenge) and 0 < len(nonce) <= 64:
        bits = core.challenge_bits(challenge)
        if bits > 0 and sale.proof_ok(challenge, nonce, bits):
            return "ok", challenge
    return "bad", ""


async def enter(request: Request) -> Response:
    store = store_of(request)
    user_id = user_id_of(request)
    concert = await _concert(request)
    await ratelimit.paced(store, concert.id, "enter", user_id)
    proof, challenge = _proof(request)
    # counted by enter.lua itself: one Redis call
    counted = ratelimit.counters(store, concert.id, "enter", user_id, client_address(request))
    created, token, place = await core.enter(store, user_id, concert.id, proof, challenge, counted)
    body = {"token": token, **place.as_dict(), "concert_id": concert.id}
    return JSONResponse(body, status_code=201 if created else 200)


async def challenge(request: Request) -> Response:
    """A proof-of-work challenge for this user and concert: one use, a life
    that follows its difficulty (sale.challenge_life_s)."""
    store = store_of(request)
    user_id = user_id_of(request)
    concert = await _concert(request)
    await ratelimit.check(store, concert.id, "enter", user_id, client_address(request))
    bits = (await core.overview(store, concert.id))["pow_bits"]
    # the challenge carries the difficulty it was made for (sale.new_challenge)
    given = sale.new_challenge(bits)
    life_s = sale.challenge_life_s(bits)
    await store.redis.set(store.keys(concert.id).pow(given), user_id, px=core.ms(life_s))
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=life_s)
    return JSONResponse(
        {"challenge": given, "bits": bits, "expires_at": sale.iso(expires)}, status_code=201
    )


async def _lottery_of(request: Request) -> tuple[Concert, dict[str, Any]]:
    """The concert and its lottery as Redis records it (opening included)."""
    store = store_of(request)
    concert = await _concert(request)
    drawn = await rules.lottery(store, concert.id)
    if drawn is None:
        raise not_found(f"concert {concert.id} has no pre-queue lottery")
    return concert, drawn


async def lottery(request: Request) -> Response:
    concert, drawn = await _lottery_of(request)
    return JSONResponse({"concert_id": concert.id, **drawn})


KEY = re.compile(r"[0-9a-f]{64}")


# Pages of the draw, whole: the draw never changes after the opening (a
# 300,000-place page was 48 ms of CPU a request). Bounded by count: a page is
# at most 10,000 keys, ~0.7 MB.
DRAW_PAGES_KEPT = 32
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_draw_pages: OrderedDict[tuple[int, int, str, str, int], Rendered] = OrderedDict()


async def lottery_draw(request: Request) -> Response:
    store = store_of(request)
    limit = store.settings.requests_per_ip
    await ratelimit.check_address(store, "draw", client_address(request), limit)
    concert, drawn = await _lottery_of(request)
    if drawn["seed"] is None:
        raise Problem(
            404,
            "NOT_FOUND",
            f"the draw is published at the opening, {drawn['opens_at']}",
            extra={"opens_at": drawn["opens_at"]},
        )
    after = request.query_params.get("after")
    if after is not None and not KEY.fullmatch(after):
        raise invalid("after must be a drawn key: 64 lowercase hex digits")
    raw = request.query_params.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise invalid("limit must be an integer from 1 to 10000")
    key = (id(store), concert.id, drawn["seed"], after or "", int(raw))
    page = _draw_pages.get(key)
    if page is None:
        page = await shared(key, lambda: _draw_page(store, concert.id, after, int(raw)))
        _draw_pages[key] = page
        while len(_draw_pages) > DRAW_PAGES_KEPT:
            _draw_pages.popitem(last=False)
    _draw_pages.move_to_end(key)
    return page.response(request, IMMUTABLE)


async def _draw_page(store: Store, concert_id: int, after: str | None, limit: int) -> Rendered:
    keys = await store.redis.zrangebylex(
        store.keys(concert_id).draw, f"({after}" if after else "-", "+", start=0, num=limit
    )
    return Rendered(orjson.dumps({"keys": keys}))


async def poll(request: Request) -> Response:
    claims = queue_claims_of(request)
    place = await core.status(store_of(request), claims)
    return JSONResponse(core.poll_body(place, claims.concert_id))


async def leave(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)

    async def hold_keys(hold_ids: list[str]) -> list[tuple[str, str, str, int]]:
        concert = await store.catalog.require(claims.concert_id)
        refs = [ref for ref in map(holds.parse_hold_id, hold_ids) if ref is not None]
        return [(ref.hold_id, *holds.hold_keys(store, concert, ref), ref.seat_no) for ref in refs]

    await core.leave(store, claims, hold_keys)
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
