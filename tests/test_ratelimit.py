"""Per-user and per-address limits on enter and hold answer 429 with Retry-After."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

import httpx

from frontrow import catalog, ratelimit
from frontrow.http import forwarded_client
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, app_client, bearer, user_headers
from tests.e2e.test_queue_http import assert_problem


async def test_enter_is_limited_per_user(make_store: MakeStore) -> None:
    store = await make_store(enter_per_user=3, rate_window_s=30)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        for _ in range(3):
            assert (
                await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
            ).status_code in (200, 201)
        response = await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
        assert_problem(response, 429, "TOO_MANY_REQUESTS")
        assert 1 <= int(response.headers["retry-after"]) <= 30
        # another user is not held back by ann
        other = await client.post("/concerts/1/queue", headers=user_headers(store, "bob"))
        assert other.status_code == 201


async def test_one_address_is_limited_across_users(make_store: MakeStore) -> None:
    store = await make_store(requests_per_ip=5, rate_window_s=30)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        codes = [
            (
                await client.post("/concerts/1/queue", headers=user_headers(store, f"u{i}"))
            ).status_code
            for i in range(7)
        ]
    assert codes == [201] * 5 + [429] * 2


async def test_holds_are_limited_per_user_and_refusals_change_nothing(
    make_store: MakeStore,
) -> None:
    store = await make_store(hold_per_user=2, rate_window_s=0.5)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        token = await active_token(store, "ann")
        assert (await client.post(seats_url(1), headers=bearer(token))).status_code == 201
        assert (await client.post(seats_url(2), headers=bearer(token))).status_code == 201
        response = await client.post(seats_url(3), headers=bearer(token))
        assert_problem(response, 429, "TOO_MANY_REQUESTS")
        best = seats_url().replace("/seats", "/best-available")
        response = await client.post(best, headers=bearer(token), json={"count": 1})
        assert_problem(response, 429, "TOO_MANY_REQUESTS")
        assert int(response.headers["Retry-After"]) >= 1
        seats = (await client.get(seats_url(), headers=bearer(token))).json()["seats"]
        assert [s["status"] for s in seats].count("HELD") == 2
        assert seats[2]["status"] == "AVAILABLE"
        import asyncio

        await asyncio.sleep(0.6)  # the window passes
        assert (await client.post(seats_url(3), headers=bearer(token))).status_code == 201


async def test_a_refused_user_is_answered_slowly_and_without_redis(
    make_store: MakeStore, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A client that ignores Retry-After is paced, not served: until its
    window resets, each attempt waits REFUSED_PAUSE_S and is refused by the
    process that saw the first refusal, with no call to Redis."""
    store = await make_store(enter_per_user=2, rate_window_s=0.6)
    await catalog.seed_demo(store.db)
    calls, pauses = [], []
    script = store.scripts.enter

    async def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return await script(*args, **kwargs)

    async def not_asked(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("entering counts its attempt in enter.lua's own call")

    real_sleep = asyncio.sleep

    async def paused(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0.2)

    monkeypatch.setattr(store.scripts, "enter", counted)
    monkeypatch.setattr(store.scripts, "ratelimit", not_asked)
    monkeypatch.setattr(ratelimit, "sleep", paused)
    async with app_client(store) as client:
        enter = lambda user: client.post("/concerts/1/queue", headers=user_headers(store, user))  # noqa: E731
        assert (await enter("warm")).status_code == 201  # the sale's rules are in Redis now
        calls.clear()
        assert [(await enter("ann")).status_code for _ in range(3)] == [201, 200, 429]
        assert len(calls) == 3 and not pauses
        again = await enter("ann")
        assert_problem(again, 429, "TOO_MANY_REQUESTS")
        assert int(again.headers["retry-after"]) >= 1
        assert len(calls) == 3  # answered from memory
        assert pauses and 0 < pauses[0] <= ratelimit.REFUSED_PAUSE_S
        # another user is asked of Redis, and let in
        assert (await enter("bob")).status_code == 201
        await real_sleep(0.7)  # the window resets: ann is counted again, and let in
        assert (await enter("ann")).status_code == 200
        assert len(calls) == 5


async def test_limits_are_off_when_zero(client: httpx.AsyncClient, store) -> None:
    for _ in range(30):
        response = await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
        assert response.status_code in (200, 201)


async def test_demo_logins_are_limited_per_address(make_store: MakeStore) -> None:
    store = await make_store(demo_logins_per_ip=3, rate_window_s=30)
    async with app_client(store) as client:
        codes = [(await client.post("/auth/demo")).status_code for _ in range(5)]
    assert codes == [201] * 3 + [429] * 2


async def test_wrong_admin_tokens_lock_the_address_out(make_store: MakeStore) -> None:
    store = await make_store(rate_window_s=30)
    await catalog.seed_demo(store.db)
    good = bearer(store.settings.admin_token or "")
    async with app_client(store) as client:
        assert (await client.get("/admin/concerts/1/queue", headers=good)).status_code == 200
        wrong = [
            (await client.get("/admin/concerts/1/queue", headers=bearer(f"guess-{i}"))).status_code
            for i in range(store.settings.admin_failures_per_ip + 2)
        ]
        assert wrong == [401] * store.settings.admin_failures_per_ip + [429] * 2
        locked = await client.get("/admin/concerts/1/queue", headers=bearer("guess-x"))
        assert_problem(locked, 429, "TOO_MANY_REQUESTS")
        assert int(locked.headers["retry-after"]) >= 1
        # the right token is never refused: an operator's emergency change goes through
        assert (await client.get("/admin/concerts/1/queue", headers=good)).status_code == 200
        paused = await client.patch(
            "/admin/concerts/1/queue", headers=good, json={"admit_batch": 0}
        )
        assert paused.status_code == 200


def test_forwarded_addresses_count_only_behind_trusted_proxies() -> None:
    lan = (ip_network("10.0.0.0/8"),)
    assert forwarded_client("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"
    assert forwarded_client("203.0.113.5", "198.51.100.1", lan) == "203.0.113.5"
    assert forwarded_client("10.0.0.2", "198.51.100.1, 10.0.0.7", lan) == "198.51.100.1"
    assert forwarded_client("10.0.0.2", "spoofed, 198.51.100.1", lan) == "198.51.100.1"
    assert forwarded_client("10.0.0.2", "x" * 1_000_000, lan) == "10.0.0.2"
    assert forwarded_client("2001:db8:1:2:3:4:5:6", None, ()) == "2001:db8:1:2::/64"
    assert forwarded_client("", None, ()) == "unknown"


async def test_a_huge_forwarded_header_cannot_make_a_key(make_store: MakeStore) -> None:
    store = await make_store(requests_per_ip=100, trusted_proxies=(ip_network("127.0.0.1"),))
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        headers = {**user_headers(store, "ann"), "X-Forwarded-For": "1" * 100_000}
        assert (await client.post("/concerts/1/queue", headers=headers)).status_code == 201
    keys = [k async for k in store.redis.scan_iter(match="*:rl:*")]
    assert keys and max(len(k) for k in keys) < 100
