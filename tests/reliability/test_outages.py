"""Redis or PostgreSQL goes away mid-sale: quick 503s, no money moved, recovery
without a restart, and no seat sold twice."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from frontrow import catalog
from frontrow.store import Store, make_engine, open_store
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, app_client, bearer
from tests.e2e.test_queue_http import assert_problem
from tests.reliability.helpers import CuttableProxy, OwnRedis, demo_store
from tests.wallet.test_payments_http import charge, hold, sold_count
from tests.wallet.test_wallet_http import ledger_sum


async def timed(request: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request  # type: ignore[misc]
    return response, time.monotonic() - started


async def test_redis_dies_and_returns_empty(own: OwnRedis, tmp_path: Path) -> None:
    store = await demo_store(tmp_path, redis_url=own.url, demo_login=True)
    try:
        async with app_client(store) as client:
            ann = await active_token(store, "ann")
            await charge(client, store, "ann", 500_000)
            held = await hold(client, ann, 5)
            paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
            assert paid.status_code == 201

            own.kill()
            bob_user = {"Authorization": f"Bearer {store.tokens.user_token('bob')}"}
            for request in (
                client.get("/queue/token", headers=bearer(ann)),
                client.post("/concerts/1/queue", headers=bob_user),
                client.get(seats_url(), headers=bearer(ann)),
                client.post(seats_url(6), headers=bearer(ann)),
            ):
                response, took = await timed(request)
                assert_problem(response, 503, "BACKEND_UNAVAILABLE")
                assert response.headers["retry-after"]
                assert took < 5, f"a request hung {took:.1f} s during the outage"

            own.start()  # back, and empty: every place in line is gone, the sales are not
            bob = await active_token(store, "bob")
            seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
            assert seats[4]["status"] == "SOLD"
            assert_problem(
                await client.post(seats_url(5), headers=bearer(bob)), 409, "SEAT_UNAVAILABLE"
            )
            assert (await client.post(seats_url(6), headers=bearer(bob))).status_code == 201
            assert await sold_count(store) == 1
    finally:
        await store.close()


async def test_a_redis_that_stops_answering_is_a_503_within_its_timeout(
    own: OwnRedis, tmp_path: Path
) -> None:
    """Connections open, nothing back (packets lost, a server stuck): the
    polls, entries and holds in flight answer 503 within about
    FRONTROW_REDIS_TIMEOUT_S and its one retry, instead of hanging (the
    script calls' own connections carry no socket timeout: one deadline a
    batch, frontrow.deadline), and the next ones work once it answers."""
    proxy = CuttableProxy("127.0.0.1", own.port)
    await proxy.start()
    store = await demo_store(tmp_path, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    try:
        async with app_client(store) as client:
            ann = await active_token(store, "ann")
            assert (await client.post(seats_url(1), headers=bearer(ann))).status_code == 201
            bob_user = {"Authorization": f"Bearer {store.tokens.user_token('bob')}"}
            proxy.freeze()
            for request in (
                client.get("/queue/token", headers=bearer(ann)),
                client.post("/concerts/1/queue", headers=bob_user),
                client.post(seats_url(2), headers=bearer(ann)),
            ):
                response, took = await asyncio.wait_for(timed(request), 30)
                assert_problem(response, 503, "BACKEND_UNAVAILABLE")
                assert took < 5, f"a request waited {took:.1f} s for a silent Redis"
            proxy.thaw()
            await proxy.cut()  # what the frozen connections held is dropped with them
            await proxy.restore()
            polled = await client.get("/queue/token", headers=bearer(ann))
            assert polled.json()["status"] == "ACTIVE"
            assert (await client.post(seats_url(3), headers=bearer(ann))).status_code == 201
    finally:
        proxy.thaw()
        await proxy.cut()
        await store.close()


@pytest.fixture
def real_only(backend: str) -> None:
    if backend != "real":
        pytest.skip("needs a real PostgreSQL to cut")


async def test_database_dies_and_returns(real_only: None, make_store: MakeStore) -> None:
    base = await make_store()
    await catalog.seed_demo(base.db)
    store, proxy = await proxied_store(base)
    try:
        async with app_client(store) as client:
            ann = await active_token(store, "ann")
            await charge(client, store, "ann", 500_000)
            holds = [await hold(client, ann, 1), await hold(client, ann, 2)]

            await proxy.cut()
            store.catalog.expire()  # the next read checks the version: it must not need the DB
            assert (await client.get("/queue/token", headers=bearer(ann))).json()["status"] == (
                "ACTIVE"
            )
            assert (await client.get("/concerts/1/dates", headers=bearer(ann))).status_code == 200
            seats = (await client.get(seats_url(), headers=bearer(ann))).json()["seats"]
            assert seats[0]["status"] == "HELD"
            user = {"Authorization": f"Bearer {store.tokens.user_token('ann')}"}
            pay = {**bearer(ann), "Idempotency-Key": "pay-once"}
            for request in (
                client.post("/wallet/charge", headers=user, json={"amount": 5}),
                client.get("/wallet", headers=user),
                client.post("/payments", headers=pay, json={"hold_ids": holds}),
            ):
                response, took = await timed(request)
                assert_problem(response, 503, "BACKEND_UNAVAILABLE")
                assert took < 10

            await proxy.restore()
            await asyncio.sleep(0.1)
            assert await ledger_sum(base, "ann") == 500_000  # nothing moved during the outage
            assert await sold_count(base) == 0
            first = await client.post("/payments", headers=pay, json={"hold_ids": holds})
            again = await client.post("/payments", headers=pay, json={"hold_ids": holds})
            assert first.status_code == again.status_code == 201
            assert first.json() == again.json()
            assert await ledger_sum(base, "ann") == 500_000 - 240_000
            assert await sold_count(base) == 2
    finally:
        await proxy.cut()
        await store.close_own()
        await store.db.dispose()


async def proxied_store(base: Store) -> tuple[Store, CuttableProxy]:
    """A store like `base` whose database is reached through a proxy of the test's."""
    target = urlsplit(base.settings.database_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    netloc = target.netloc.rsplit("@", 1)
    creds = f"{netloc[0]}@" if len(netloc) == 2 else ""
    proxied_url = target._replace(netloc=f"{creds}127.0.0.1:{proxy.port}").geturl()
    settings = dataclasses.replace(base.settings, database_url=proxied_url)
    return open_store(settings, redis=base.redis, db=make_engine(settings)), proxy


async def test_a_database_that_stops_answering_is_a_503_within_its_deadline(
    real_only: None, make_store: MakeStore
) -> None:
    """Connections stay open but nothing comes back (packets lost, a server
    stuck): charges and payments in flight answer 503 within about
    FRONTROW_DATABASE_TIMEOUT_S instead of hanging, and once it answers
    again the same keys move the money once (#24.4)."""
    base = await make_store(database_timeout_s=1.5)
    await catalog.seed_demo(base.db)
    store, proxy = await proxied_store(base)
    try:
        async with app_client(store) as client:
            ann = await active_token(store, "ann")
            await charge(client, store, "ann", 500_000)  # the pool holds a live connection
            held = [await hold(client, ann, 1)]
            user = {"Authorization": f"Bearer {store.tokens.user_token('ann')}"}
            topup = {**user, "Idempotency-Key": "topup-frozen"}
            pay = {**bearer(ann), "Idempotency-Key": "pay-frozen"}
            proxy.freeze()
            for request in (
                client.post("/wallet/charge", headers=topup, json={"amount": 5}),
                client.post("/payments", headers=pay, json={"hold_ids": held}),
                client.get("/wallet", headers=user),
            ):
                response, took = await timed(request)
                assert_problem(response, 503, "BACKEND_UNAVAILABLE")
                assert took < 1.5 + 1.5, f"a request waited {took:.1f} s for a silent database"
            proxy.thaw()
            for _ in range(2):  # the retries with the same keys: once each
                assert (
                    await client.post("/wallet/charge", headers=topup, json={"amount": 5})
                ).status_code == 200
                paid = await client.post("/payments", headers=pay, json={"hold_ids": held})
                assert paid.status_code in (200, 201), paid.text
            assert await ledger_sum(base, "ann") == 500_000 + 5 - 120_000
            assert await sold_count(base) == 1
    finally:
        proxy.thaw()
        await proxy.cut()
        await store.close_own()
        await store.db.dispose()


async def test_database_connections_carry_their_own_deadlines(store: Store) -> None:
    """A PostgreSQL whose packets are lost fails a statement within the
    database timeout (TCP user timeout), and a dead idle connection is found
    by keepalives, instead of hanging a request (#24)."""
    if store.db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite is a file")
    async with store.db.connect() as conn:
        raw = await conn.get_raw_connection()
        params = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    timeout_ms = int(store.settings.database_timeout_s * 1000)
    assert params["tcp_user_timeout"] == str(timeout_ms)
    assert params["keepalives"] == "1" and int(params["connect_timeout"]) >= 1
