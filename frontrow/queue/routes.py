"""HTTP routes of the waiting queue."""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow import catalog, ratelimit, sale
from frontrow.auth import bearer
from frontrow.booking import holds
from frontrow.catalog import Concert
from frontrow.errors import Problem, invalid, not_found, unauthenticated
from frontrow.http import (
    JSONResponse,
    client_address,
    queue_claims_of,
    read_json,
    store_of,
    user_id_of,
)
from frontrow.queue import core
from frontrow.store import Store


async def _concert(request: Request) -> Concert:
    concert = await store_of(request).catalog.get(request.path_params["concert_id"])
    if concert is None:
        raise not_found("no such concert")
    return concert


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
    if "admit_target_p99_ms" in body:
        value = body["admit_target_p99_ms"]
        if not _is_int(value) or not 0 <= value <= 600_000:
            raise invalid("admit_target_p99_ms must be an integer from 0 (fixed k) to 600000")
    if "open" in body and type(body["open"]) is not bool:
        raise invalid("open must be true or false")
    return body


ADMIN_FIELDS = (*core.LIVE_SETTINGS, *sale.FIELDS)


async def _reread(store: Store, concert_id: int) -> Concert:
    await store.catalog.invalidate()
    concert = await store.catalog.get(concert_id)
    if concert is None:
        raise not_found("no such concert")
    return concert


def _admin_view(queue: dict[str, Any], concert: Concert) -> dict[str, Any]:
    return {**queue, **concert.sale.as_dict(), "commitment": concert.sale.commitment}


async def admin_queue(request: Request) -> Response:
    store = store_of(request)
    concert = await _admin_concert(request)
    if request.method == "PATCH":
        body = await read_json(request)
        unknown = sorted(set(body) - set(ADMIN_FIELDS))
        if unknown or not body:
            raise invalid(f"give one or more of {', '.join(ADMIN_FIELDS)}")
        # everything is checked before anything is stored
        queue_changes = {n: v for n, v in body.items() if n in core.LIVE_SETTINGS}
        sale_changes = {n: v for n, v in body.items() if n in sale.FIELDS}
        if queue_changes:
            parse_live_settings(queue_changes)
        if sale_changes:
            # from the database, not this process's copy: another process may
            # have changed the sale in the last seconds, and every field is written
            concert = await _reread(store, concert.id)
            new_sale = sale.changed(concert.sale, sale_changes)
            await catalog.save_sale(store.db, concert.id, new_sale)
            concert = await _reread(store, concert.id)
        await core.configure(store, concert.id, queue_changes)
    queue = await core.overview(store, concert.id, concert.on_sale)
    return JSONResponse(_admin_view(queue, concert))


routes = [
    Route("/admin/concerts/{concert_id:id}/queue", admin_queue, methods=["GET", "PATCH"]),
    Route("/concerts/{concert_id:id}/queue", enter, methods=["POST"]),
    Route("/concerts/{concert_id:id}/queue/challenge", challenge, methods=["POST"]),
    Route("/concerts/{concert_id:id}/queue/lottery", lottery, methods=["GET"]),
    Route("/concerts/{concert_id:id}/queue/lottery/draw", lottery_draw, methods=["GET"]),
    Route("/queue/token", queue_token, methods=["GET", "DELETE"]),
]
