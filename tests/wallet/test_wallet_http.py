"""Wallet, charges and receipts over HTTP, on each backend."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from frontrow.schema import ledger, wallets
from frontrow.store import Store
from tests.conftest import MakeStore, app_client, user_headers
from tests.e2e.test_queue_http import assert_problem


async def ledger_sum(store: Store, user_id: str) -> int:
    async with store.db.connect() as conn:
        total = await conn.scalar(
            select(func.sum(ledger.c.amount)).where(ledger.c.user_id == user_id)
        )
        balance = await conn.scalar(select(wallets.c.balance).where(wallets.c.user_id == user_id))
    assert int(total or 0) == int(balance or 0), "balance differs from its ledger"
    return int(balance or 0)


async def test_new_user_has_zero(client: httpx.AsyncClient, store: Store) -> None:
    assert (await client.get("/wallet", headers=user_headers(store, "new"))).json() == {
        "user_id": "new",
        "balance": 0,
    }


async def test_charge_credits_and_returns_balance(client: httpx.AsyncClient, store: Store) -> None:
    h = user_headers(store, "ann")
    response = await client.post("/wallet/charge", headers=h, json={"amount": 100000})
    assert response.status_code == 200
    assert response.json() == {"user_id": "ann", "balance": 100000, "charged": 100000}
    response = await client.post("/wallet/charge", headers=h, json={"amount": 5})
    assert response.json()["balance"] == 100005
    assert await ledger_sum(store, "ann") == 100005


async def test_invalid_amounts_are_422_and_change_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    h = user_headers(store, "ann")
    for body in (
        {},
        {"amount": 1.5},
        {"amount": "100"},
        {"amount": True},
        {"amount": 0},
        {"amount": -5},
        {"amount": 10_000_001},
        {"amount": None},
        {"amount": [1]},
    ):
        assert_problem(
            await client.post("/wallet/charge", headers=h, json=body), 422, "VALIDATION_FAILED"
        )
    assert_problem(
        await client.post(
            "/wallet/charge",
            headers=h,
            content=b"[1]",
        ),
        400,
        "BAD_REQUEST",
    )
    assert_problem(
        await client.post(
            "/wallet/charge", headers={**h, "content-type": "application/json"}, content=b"[1]"
        ),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(
        await client.post(
            "/wallet/charge", headers={**h, "content-type": "text/plain"}, content=b'{"amount": 5}'
        ),
        400,
        "BAD_REQUEST",
    )
    assert_problem(
        await client.post(
            "/wallet/charge", headers={**h, "Idempotency-Key": "x" * 65}, json={"amount": 5}
        ),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(await client.post("/wallet/charge", json={"amount": 5}), 401, "UNAUTHENTICATED")
    assert (await client.get("/wallet", headers=h)).json()["balance"] == 0


async def test_balance_limit(make_store: MakeStore) -> None:
    store = await make_store(max_balance=1000)
    async with app_client(store) as client:
        h = user_headers(store, "ann")
        assert (
            await client.post("/wallet/charge", headers=h, json={"amount": 900})
        ).status_code == 200
        assert_problem(
            await client.post("/wallet/charge", headers=h, json={"amount": 101}),
            422,
            "BALANCE_LIMIT",
        )
        assert (await client.get("/wallet", headers=h)).json()["balance"] == 900
        assert await ledger_sum(store, "ann") == 900


async def test_idempotent_charge_credits_once(client: httpx.AsyncClient, store: Store) -> None:
    h = {**user_headers(store, "ann"), "Idempotency-Key": "charge-1"}
    first = await client.post("/wallet/charge", headers=h, json={"amount": 700})
    again = await client.post("/wallet/charge", headers=h, json={"amount": 700})
    assert first.json() == again.json() == {"user_id": "ann", "balance": 700, "charged": 700}
    assert_problem(
        await client.post("/wallet/charge", headers=h, json={"amount": 701}),
        409,
        "IDEMPOTENCY_MISMATCH",
    )
    # a key is the user's own: another user's same key is another charge
    other = {**user_headers(store, "bob"), "Idempotency-Key": "charge-1"}
    assert (await client.post("/wallet/charge", headers=other, json={"amount": 1})).json()[
        "balance"
    ] == 1
    assert await ledger_sum(store, "ann") == 700


async def test_200_concurrent_charges_add_up(client: httpx.AsyncClient, store: Store) -> None:
    h = user_headers(store, "ann")
    responses = await asyncio.gather(
        *(client.post("/wallet/charge", headers=h, json={"amount": i}) for i in range(1, 201))
    )
    assert all(r.status_code == 200 for r in responses)
    assert await ledger_sum(store, "ann") == sum(range(1, 201))


async def test_200_concurrent_charges_with_one_key_credit_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    h = {**user_headers(store, "ann"), "Idempotency-Key": "same"}
    responses = await asyncio.gather(
        *(client.post("/wallet/charge", headers=h, json={"amount": 300}) for _ in range(200))
    )
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["balance"] for r in responses} == {300}
    assert await ledger_sum(store, "ann") == 300


async def test_receipts_of_nobody(client: httpx.AsyncClient, store: Store) -> None:
    h = user_headers(store, "ann")
    assert (await client.get("/receipts", headers=h)).json() == {"receipts": []}
    assert_problem(await client.get("/receipts/r_missing", headers=h), 404, "NOT_FOUND")


async def test_the_largest_allowed_money_settings_never_overflow(make_store: MakeStore) -> None:
    from frontrow.config import MONEY_LIMIT

    store = await make_store(max_charge=MONEY_LIMIT, max_balance=MONEY_LIMIT)
    async with app_client(store) as client:
        headers = user_headers(store, "rich")
        first = await client.post("/wallet/charge", headers=headers, json={"amount": MONEY_LIMIT})
        assert first.json()["balance"] == MONEY_LIMIT
        again = await client.post("/wallet/charge", headers=headers, json={"amount": MONEY_LIMIT})
        assert_problem(again, 422, "BALANCE_LIMIT")


async def test_a_connection_the_database_dropped_is_used_once_more(store: Store) -> None:
    """No ping before each checkout: a pooled connection that died fails its
    first statement, and the charge runs once more on a fresh one."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from frontrow.wallet import ledger as money

    if store.db.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    await money.charge(store, "dropped", 10, None)  # the pool now holds a connection
    other = create_async_engine(store.settings.database_url)  # not the pool's own connection
    async with other.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state = 'idle'"
            )
        )
    await other.dispose()
    assert killed >= 1
    answer = await money.charge(store, "dropped", 5, "after-the-drop")
    assert answer == {"user_id": "dropped", "balance": 15, "charged": 5}
    assert await money.charge(store, "dropped", 5, "after-the-drop") == answer  # once
