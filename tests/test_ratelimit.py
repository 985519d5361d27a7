"""Per-user and per-address limits on enter and hold answer 429 with Retry-After."""

from __future__ import annotations

import httpx

from frontrow import catalog
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
        seats = (await client.get(seats_url(), headers=bearer(token))).json()["seats"]
        assert seats[2]["status"] == "AVAILABLE"
        import asyncio

        await asyncio.sleep(0.6)  # the window passes
        assert (await client.post(seats_url(3), headers=bearer(token))).status_code == 201


async def test_limits_are_off_when_zero(client: httpx.AsyncClient, store) -> None:
    for _ in range(30):
        response = await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
        assert response.status_code in (200, 201)
