"""The queue part of docs/API.md over HTTP, on each backend."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import jwt
import pytest

from frontrow.auth import QUEUE_AUDIENCE
from frontrow.booking import holds
from frontrow.store import Store, open_store
from tests.conftest import SECRET, app_client, bearer, user_headers


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == "about:blank" and body["title"] and body["detail"]
    return body


async def enter(client: httpx.AsyncClient, store: Store, user: str, concert: int = 1) -> dict:
    response = await client.post(f"/concerts/{concert}/queue", headers=user_headers(store, user))
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


async def test_concert_list(client: httpx.AsyncClient, store: Store) -> None:
    body = (await client.get("/concerts")).json()
    assert body["concerts"] == [
        {
            "concert_id": 1,
            "title": "frontrow live: Winter Night",
            "venue": "Olympic Hall",
            "timezone": "Asia/Seoul",
            "open": True,
            "sold_out": False,
            "dates": 3,
            "prequeue_from": None,
            "opens_at": None,
            "mode": "fifo",
            "pow_bits": 0,
        }
    ]
    # every seat of every date sold: the flag the last payment derives (sold_out.lua)
    concert = await store.catalog.get(1)
    assert concert is not None
    for schedule in concert.upcoming():
        await holds.load_sold(store, concert, schedule)
        async with store.redis.pipeline(transaction=False) as pipe:
            for seat in range(1, len(schedule.prices) + 1):
                pipe.setbit(store.keys(1).sold(schedule.id), seat, 1)
            await pipe.execute()
    assert await holds.refresh_sold_out(store, concert)
    assert (await client.get("/concerts")).json()["concerts"][0]["sold_out"] is True


async def test_demo_login_mints_a_user_token(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.post("/auth/demo")
    assert response.status_code == 201
    body = response.json()
    assert store.tokens.verify_user(body["access_token"]) == body["user_id"]


async def test_demo_login_is_404_when_disabled(make_store, store: Store) -> None:
    off = await make_store(demo_login=False)
    async with app_client(off) as client:
        assert_problem(await client.post("/auth/demo"), 404, "NOT_FOUND")


async def test_enter_then_poll_then_leave(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.post("/concerts/1/queue", headers=user_headers(store, "alice"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "WAITING" and body["rank"] == 1
    assert body["eta_s"] == 1 and body["poll_after_ms"] == 1000 and body["expires_at"] is None
    token = body["token"]

    again = await client.post("/concerts/1/queue", headers=user_headers(store, "alice"))
    assert again.status_code == 200
    assert store.tokens.verify_queue(again.json()["token"]).token_id == (
        store.tokens.verify_queue(token).token_id
    )

    poll = (await client.get("/queue/token", headers=bearer(token))).json()
    assert poll == {
        "status": "WAITING",
        "rank": 1,
        "eta_s": 1,
        "poll_after_ms": 1000,
        "expires_at": None,
        "concert_id": 1,
        "sold_out": False,
        "prequeue": False,
        "opens_at": None,
    }

    assert (await client.delete("/queue/token", headers=bearer(token))).status_code == 204
    assert (await client.delete("/queue/token", headers=bearer(token))).status_code == 204
    poll = (await client.get("/queue/token", headers=bearer(token))).json()
    assert poll["status"] == "EXPIRED" and poll["rank"] is None and poll["eta_s"] is None


async def test_active_poll_shows_expiry(make_store) -> None:
    from frontrow import catalog
    from frontrow.queue import core

    store = await make_store(admit_batch=1)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        token = (await enter(client, store, "bob"))["token"]
        await core.admit(store, 1, "test")
        poll = (await client.get("/queue/token", headers=bearer(token))).json()
    assert poll["status"] == "ACTIVE" and poll["rank"] == 0 and poll["eta_s"] == 0
    assert poll["expires_at"].endswith("Z")


async def test_unknown_concert_is_404(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.post("/concerts/99/queue", headers=user_headers(store, "a"))
    assert_problem(response, 404, "NOT_FOUND")
    assert_problem(await client.post("/concerts/x/queue"), 404, "NOT_FOUND")


async def test_closed_queue_is_409(client: httpx.AsyncClient, store: Store) -> None:
    admin = bearer("admin-secret-0123456789abcdef-01234")
    response = await client.patch("/admin/concerts/1/queue", json={"open": False}, headers=admin)
    assert response.status_code == 200 and response.json()["open"] is False
    response = await client.post("/concerts/1/queue", headers=user_headers(store, "a"))
    assert_problem(response, 409, "QUEUE_CLOSED")
    assert (await client.get("/concerts")).json()["concerts"][0]["open"] is False


def forge(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_bad_credentials_are_401(client: httpx.AsyncClient, store: Store) -> None:
    queue_token = (await enter(client, store, "carol"))["token"]
    user_token = store.tokens.user_token("carol")
    head, payload, signature = queue_token.split(".")
    tampered_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    now = int(time.time())
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {queue_token}"},
        "garbage": bearer("not-a-jwt"),
        "tampered": bearer(f"{head}.{tampered_payload}.{signature}"),
        "forged": bearer(
            forge(
                {"aud": QUEUE_AUDIENCE, "sub": "carol", "cid": 1, "tid": "t_x", "exp": now + 60},
                secret="another-secret-" + "x" * 32,
            )
        ),
        "expired": bearer(
            forge({"aud": QUEUE_AUDIENCE, "sub": "carol", "cid": 1, "tid": "t_x", "exp": now - 10})
        ),
        "user token as queue token": bearer(user_token),
        # signed, but its token id could not travel in a batch of polls
        "token id with a space": bearer(
            forge({"aud": QUEUE_AUDIENCE, "sub": "carol", "cid": 1, "tid": "t x", "exp": now + 60})
        ),
        "alg none": bearer(
            jwt.encode(
                {"aud": QUEUE_AUDIENCE, "sub": "c", "cid": 1, "tid": "t", "exp": now + 60},
                None,
                algorithm="none",
            )
        ),
    }
    for name, headers in cases.items():
        response = await client.get("/queue/token", headers=headers)
        assert response.status_code == 401, name
        assert_problem(response, 401, "UNAUTHENTICATED")

    user_cases = {
        "queue token as user token": bearer(queue_token),
        "expired user token": bearer(forge({"sub": "carol", "exp": now - 10})),
        "bad subject": bearer(forge({"sub": "no spaces allowed", "exp": now + 60})),
        "forged user token": bearer(forge({"sub": "carol"}, secret="z" * 40)),
        "neither iat nor exp": bearer(forge({"sub": "carol"})),
        "issued two days ago": bearer(forge({"sub": "carol", "iat": now - 2 * 86400})),
        "good for a month": bearer(forge({"sub": "carol", "exp": now + 30 * 86400})),
    }
    for name, headers in user_cases.items():
        response = await client.post("/concerts/1/queue", headers=headers)
        assert response.status_code == 401, name


async def test_user_tokens_within_the_maximum_age_pass(
    client: httpx.AsyncClient, store: Store
) -> None:
    now = int(time.time())
    for claims in ({"sub": "dee", "iat": now - 60}, {"sub": "dee", "exp": now + 3600}):
        response = await client.post("/concerts/1/queue", headers=bearer(forge(claims)))
        assert response.status_code in (200, 201), claims


async def test_a_user_token_seen_before_still_ends_at_its_exp(
    client: httpx.AsyncClient, store: Store
) -> None:
    # verified tokens are kept: the time checks are made again on every use
    # a few seconds of life: two requests on a loaded machine fit in it
    ends = time.time() + 3
    token = bearer(forge({"sub": "eve", "exp": ends}))
    assert (await client.get("/wallet", headers=token)).status_code == 200
    assert (await client.get("/wallet", headers=token)).status_code == 200
    await asyncio.sleep(max(0.0, ends - time.time()) + 0.1)
    assert_problem(await client.get("/wallet", headers=token), 401, "UNAUTHENTICATED")


async def test_a_token_pairing_a_user_with_another_place_books_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    from tests.conftest import active_token

    ann = await active_token(store, "ann")
    ann_tid = store.tokens.verify_queue(ann).token_id
    now = int(time.time())
    forged = forge(
        {"aud": QUEUE_AUDIENCE, "sub": "mallory", "cid": 1, "tid": ann_tid, "exp": now + 60}
    )
    assert_problem(
        await client.get("/concerts/1/dates", headers=bearer(forged)), 401, "TOKEN_EXPIRED"
    )
    assert (await client.get("/concerts/1/dates", headers=bearer(ann))).status_code == 200


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404, "NOT_FOUND")
    assert_problem(await client.put("/queue/token"), 405, "METHOD_NOT_ALLOWED")


async def test_redis_down_is_503_not_500(store: Store) -> None:
    settings = dataclasses.replace(
        store.settings, redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.5
    )
    down = open_store(settings, db=store.db)
    async with app_client(down) as client:
        started = time.monotonic()
        response = await client.post("/concerts/1/queue", headers=user_headers(store, "d"))
        body = assert_problem(response, 503, "BACKEND_UNAVAILABLE")
        assert response.headers["retry-after"] == "1" and "Traceback" not in body["detail"]
        token = store.tokens.queue_token("d", 1, "t_d")
        assert_problem(
            await client.get("/queue/token", headers=bearer(token)), 503, "BACKEND_UNAVAILABLE"
        )
        assert_problem(await client.get("/readyz"), 503, "BACKEND_UNAVAILABLE")
        assert time.monotonic() - started < 10
    await down.close_own()
    await down.redis.aclose()


async def test_a_connection_that_closed_mid_write_is_503_not_500(
    client: httpx.AsyncClient, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # what uvloop raises when redis-py writes to a Redis killed under it (#24)
    async def closed(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True reading=False"
            " 0x7f0000000000>; the handler is closed"
        )

    monkeypatch.setattr(store.scripts, "enter", closed)
    response = await client.post("/concerts/1/queue", headers=user_headers(store, "k"))
    assert_problem(response, 503, "BACKEND_UNAVAILABLE")

    async def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a plain bug stays a 500")

    monkeypatch.setattr(store.scripts, "enter", bug)
    with pytest.raises(
        RuntimeError, match="plain bug"
    ):  # the 500 handler's, re-raised to the server
        await client.post("/concerts/1/queue", headers=user_headers(store, "k"))


async def test_admin_routes(client: httpx.AsyncClient, make_store, store: Store) -> None:
    assert_problem(await client.get("/admin/concerts/1/queue"), 401, "UNAUTHENTICATED")
    assert_problem(
        await client.get("/admin/concerts/1/queue", headers=bearer("wrong")), 401, "UNAUTHENTICATED"
    )
    admin = bearer("admin-secret-0123456789abcdef-01234")
    await enter(client, store, "e1")
    body = (await client.get("/admin/concerts/1/queue", headers=admin)).json()
    assert body["waiting"] == 1 and body["active"] == 0 and body["admit_batch"] == 100
    response = await client.patch(
        "/admin/concerts/1/queue",
        headers=admin,
        json={"admit_batch": 7, "admit_interval_s": 2, "max_active": 50},
    )
    body = response.json()
    assert (body["admit_batch"], body["admit_interval_s"], body["max_active"]) == (7, 2.0, 50)
    # 7.0 is the integer 7 in JSON (schemathesis sends such numbers)
    whole = {"admit_batch": 7.0, "admit_target_p99_ms": 300.0, "max_active": 50.0}
    body = (await client.patch("/admin/concerts/1/queue", headers=admin, json=whole)).json()
    assert (body["admit_target_p99_ms"], body["max_active"]) == (300, 50)
    await client.patch("/admin/concerts/1/queue", headers=admin, json={"admit_target_p99_ms": 0})
    for bad in (
        {"admit_batch": -1},
        {"admit_batch": 1.5},
        {"admit_batch": True},
        {"max_active": "3"},
        {"admit_interval_s": 0},
        {"open": 1},
        {"nope": 1},
        {},
    ):
        response = await client.patch("/admin/concerts/1/queue", headers=admin, json=bad)
        assert_problem(response, 422, "VALIDATION_FAILED")
    response = await client.patch(
        "/admin/concerts/1/queue",
        headers={**admin, "content-type": "application/json"},
        content=b"{nope",
    )
    assert_problem(response, 400, "BAD_REQUEST")
    response = await client.patch(
        "/admin/concerts/1/queue",
        headers={**admin, "content-type": "application/json"},
        content=b'{"open": true, "pad": "' + b"x" * 17000 + b'"}',
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    for encoding in ("gzip", "br, identity"):  # a body that says it is encoded is not read raw
        response = await client.patch(
            "/admin/concerts/1/queue",
            headers={**admin, "content-type": "application/json", "content-encoding": encoding},
            content=b'{"admit_batch": 3}',
        )
        assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    body = (await client.get("/admin/concerts/1/queue", headers=admin)).json()
    assert body["admit_batch"] == 7  # nothing changed by the rejected requests
    assert_problem(await client.get("/admin/concerts/9/queue", headers=admin), 404, "NOT_FOUND")

    no_admin = await make_store(admin_token=None)
    async with app_client(no_admin) as other:
        assert_problem(await other.get("/admin/concerts/1/queue", headers=admin), 404, "NOT_FOUND")


async def test_the_page_carries_its_policy_on_every_path(client: httpx.AsyncClient) -> None:
    for path in ("/", "/static/index.html"):
        response = await client.get(path)
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert response.headers["x-frame-options"] == "DENY"


async def test_nosniff_on_every_answer(client: httpx.AsyncClient, store: Store) -> None:
    token = (await enter(client, store, "sniff"))["token"]
    answers = [
        await client.get("/healthz"),
        await client.get("/static/app.js"),
        await client.get("/no/such/route"),
        await client.get("/queue/token", headers=bearer(token)),  # the fast path
        await client.get("/queue/token"),  # the fast path's 401
        await client.post("/wallet/charge", content=b"{"),
    ]
    for response in answers:
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
