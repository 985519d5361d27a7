"""Payments: all or nothing, one sale per seat, money that adds up."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from frontrow import catalog
from frontrow.metrics import PAYMENTS
from frontrow.schema import reservations, schedules
from frontrow.store import Store
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, add_date, app_client, bearer, user_headers
from tests.e2e.test_queue_http import assert_problem
from tests.wallet.test_wallet_http import ledger_sum


async def charge(client: httpx.AsyncClient, store: Store, user: str, amount: int) -> None:
    response = await client.post(
        "/wallet/charge", headers=user_headers(store, user), json={"amount": amount}
    )
    assert response.status_code == 200


async def hold(client: httpx.AsyncClient, token: str, seat: int, date: str | None = None) -> str:
    response = await client.post(seats_url(seat, date), headers=bearer(token))
    assert response.status_code in (200, 201), response.text
    return response.json()["hold_id"]


async def sold_count(store: Store) -> int:
    async with store.db.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(reservations)))


async def test_pay_for_two_seats(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    await charge(client, store, "ann", 250_000)
    holds = [await hold(client, token, 7), await hold(client, token, 20)]
    response = await client.post("/payments", headers=bearer(token), json={"hold_ids": holds})
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["amount"] == 200_000 and receipt["balance_after"] == 50_000
    assert receipt["user_id"] == "ann" and receipt["concert_id"] == 1
    assert [(s["seat_no"], s["price"]) for s in receipt["seats"]] == [(7, 120_000), (20, 80_000)]
    assert receipt["receipt_id"].startswith("r_") and receipt["paid_at"].endswith("Z")
    assert all(isinstance(s["reservation_id"], int) for s in receipt["seats"])

    assert await ledger_sum(store, "ann") == 50_000
    assert (await client.get("/queue/token", headers=bearer(token))).json()["status"] == "DONE"
    buyer = await active_token(store, "bob")
    seats = (await client.get(seats_url(), headers=bearer(buyer))).json()["seats"]
    assert seats[6]["status"] == seats[19]["status"] == "SOLD"
    assert_problem(await client.post(seats_url(7), headers=bearer(buyer)), 409, "SEAT_UNAVAILABLE")

    h = user_headers(store, "ann")
    assert (await client.get("/receipts", headers=h)).json()["receipts"] == [receipt]
    assert (await client.get(f"/receipts/{receipt['receipt_id']}", headers=h)).json() == receipt
    assert_problem(
        await client.get(f"/receipts/{receipt['receipt_id']}", headers=user_headers(store, "bob")),
        404,
        "NOT_FOUND",
    )
    # a DONE token books nothing more
    assert_problem(await client.post(seats_url(8), headers=bearer(token)), 401, "TOKEN_DONE")


async def test_insufficient_balance_is_402_and_keeps_the_holds(
    client: httpx.AsyncClient, store: Store
) -> None:
    token = await active_token(store, "ann")
    await charge(client, store, "ann", 50_000)
    held = await hold(client, token, 30)
    response = await client.post("/payments", headers=bearer(token), json={"hold_ids": [held]})
    assert_problem(response, 402, "INSUFFICIENT_BALANCE")
    assert await ledger_sum(store, "ann") == 50_000 and await sold_count(store) == 0
    seats = (await client.get(seats_url(), headers=bearer(token))).json()["seats"]
    assert seats[29]["status"] == "HELD"
    await charge(client, store, "ann", 30_000)
    response = await client.post("/payments", headers=bearer(token), json={"hold_ids": [held]})
    assert response.status_code == 201 and response.json()["balance_after"] == 0


async def test_expired_hold_is_409_and_no_debit(make_store: MakeStore) -> None:
    store = await make_store(hold_ttl_s=0.3)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        token = await active_token(store, "ann")
        await charge(client, store, "ann", 500_000)
        held = [await hold(client, token, 1), await hold(client, token, 2)]
        await asyncio.sleep(0.4)
        response = await client.post("/payments", headers=bearer(token), json={"hold_ids": held})
        assert_problem(response, 409, "HOLD_EXPIRED")
        assert await ledger_sum(store, "ann") == 500_000 and await sold_count(store) == 0
        assert (await client.get("/queue/token", headers=bearer(token))).json()[
            "status"
        ] == "ACTIVE"


async def test_payment_input_errors(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    other = await active_token(store, "bob")
    await charge(client, store, "ann", 500_000)
    mine = await hold(client, token, 3)
    theirs = await hold(client, other, 4)
    for body in (
        {},
        {"hold_ids": []},
        {"hold_ids": "h_1"},
        {"hold_ids": [1]},
        {"hold_ids": [mine, mine]},
        {"hold_ids": ["x"] * 5},
        {"hold_ids": ["nope"]},
    ):
        response = await client.post("/payments", headers=bearer(token), json=body)
        assert_problem(response, 422, "VALIDATION_FAILED")
    response = await client.post("/payments", headers=bearer(token), json={"hold_ids": [theirs]})
    assert_problem(response, 409, "HOLD_EXPIRED")
    response = await client.post(
        "/payments", headers=bearer(token), json={"hold_ids": [mine, theirs]}
    )
    assert_problem(response, 409, "HOLD_EXPIRED")
    foreign = "h_2.1.3.AAAAAAAAAAAAAAAA"
    response = await client.post("/payments", headers=bearer(token), json={"hold_ids": [foreign]})
    assert_problem(response, 403, "FORBIDDEN")
    response = await client.post(
        "/payments", headers=user_headers(store, "ann"), json={"hold_ids": [mine]}
    )
    assert_problem(response, 401, "UNAUTHENTICATED")
    assert await ledger_sum(store, "ann") == 500_000 and await sold_count(store) == 0


async def test_retry_with_the_same_key_returns_the_same_receipt(
    client: httpx.AsyncClient, store: Store
) -> None:
    token = await active_token(store, "ann")
    await charge(client, store, "ann", 500_000)
    held = [await hold(client, token, 11)]
    h = {**bearer(token), "Idempotency-Key": "pay-1"}
    paid, replayed = PAYMENTS.labels("1", "paid"), PAYMENTS.labels("1", "replayed")
    paid_before, replayed_before = paid._value.get(), replayed._value.get()
    first = await client.post("/payments", headers=h, json={"hold_ids": held})
    again = await client.post("/payments", headers=h, json={"hold_ids": held})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    # one sale, one replay: the metric does not count the retry as a second sale
    assert paid._value.get() - paid_before == 1
    assert replayed._value.get() - replayed_before == 1
    assert_problem(
        await client.post("/payments", headers=h, json={"hold_ids": ["h_1.1.12.AAAAAAAAAAAAAAAA"]}),
        409,
        "IDEMPOTENCY_MISMATCH",
    )
    assert await ledger_sum(store, "ann") == 500_000 - 80_000
    assert await sold_count(store) == 1


async def test_a_payment_run_again_after_its_answer_was_lost_answers_its_sale(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payment without a key whose connection failed after its commit is
    run again on another (Statements): that run finds its own receipt and
    answers it, not HOLD_EXPIRED for seats it has just bought."""
    if store.statements is None:
        pytest.skip("SQLite runs the payment in one transaction, never twice")
    statements = store.statements
    real = statements.one

    async def answer_lost(sql: str, params: dict[str, Any], again: bool = True) -> Any:
        await real(sql, params, again)  # committed; its answer never came back
        assert again
        return await real(sql, params, again)

    token = await active_token(store, "ann")
    await charge(client, store, "ann", 500_000)
    held = [await hold(client, token, 11), await hold(client, token, 12)]
    monkeypatch.setattr(statements, "one", answer_lost)
    response = await client.post("/payments", headers=bearer(token), json={"hold_ids": held})
    monkeypatch.setattr(statements, "one", real)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert [s["seat_no"] for s in receipt["seats"]] == [11, 12]
    assert receipt["balance_after"] == 500_000 - 160_000
    h = user_headers(store, "ann")
    assert (await client.get("/receipts", headers=h)).json()["receipts"] == [receipt]
    assert await ledger_sum(store, "ann") == 500_000 - 160_000
    assert await sold_count(store) == 2
    assert (await client.get("/queue/token", headers=bearer(token))).json()["status"] == "DONE"


async def test_concurrent_same_key_payments_debit_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    token = await active_token(store, "ann")
    await charge(client, store, "ann", 500_000)
    held = [await hold(client, token, 12), await hold(client, token, 13)]
    h = {**bearer(token), "Idempotency-Key": "double-click"}
    responses = await asyncio.gather(
        *(client.post("/payments", headers=h, json={"hold_ids": held}) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["receipt_id"] for r in responses}) == 1
    assert await ledger_sum(store, "ann") == 500_000 - 160_000


async def test_race_for_one_seat_after_hold_expiry_sells_it_once(make_store: MakeStore) -> None:
    store = await make_store(hold_ttl_s=0.3)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
        for user in ("ann", "bob"):
            await charge(client, store, user, 500_000)
        ann_hold = await hold(client, ann, 40)
        await asyncio.sleep(0.4)  # ann's hold lapses...
        bob_hold = await hold(client, bob, 40)  # ...and bob takes the seat
        ann_pay, bob_pay = await asyncio.gather(
            client.post("/payments", headers=bearer(ann), json={"hold_ids": [ann_hold]}),
            client.post("/payments", headers=bearer(bob), json={"hold_ids": [bob_hold]}),
        )
        assert_problem(ann_pay, 409, "HOLD_EXPIRED")
        assert bob_pay.status_code == 201
        assert await sold_count(store) == 1
        assert await ledger_sum(store, "ann") == 500_000
        assert await ledger_sum(store, "bob") == 420_000


async def test_the_database_refuses_a_second_sale_when_redis_forgot(
    client: httpx.AsyncClient, store: Store
) -> None:
    ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
    for user in ("ann", "bob"):
        await charge(client, store, user, 500_000)
    held = await hold(client, ann, 44)
    assert (
        await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
    ).status_code == 201
    # as if finalize had never reached Redis: the sold copy lacks seat 44
    schedule_id = int(held.split(".")[1])
    await store.redis.setbit(store.keys(1).sold(schedule_id), 44, 0)
    again = await hold(client, bob, 44)
    response = await client.post("/payments", headers=bearer(bob), json={"hold_ids": [again]})
    assert_problem(response, 409, "HOLD_EXPIRED")
    assert await sold_count(store) == 1 and await ledger_sum(store, "bob") == 500_000


async def test_redis_flushed_after_sales_keeps_seats_sold(
    client: httpx.AsyncClient, store: Store
) -> None:
    ann = await active_token(store, "ann")
    await charge(client, store, "ann", 500_000)
    held = await hold(client, ann, 5)
    assert (
        await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
    ).status_code == 201
    await store.redis.flushdb()  # Redis restarted empty: places and the sold copy are gone
    bob = await active_token(store, "bob")
    seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
    assert seats[4]["status"] == "SOLD"
    await store.redis.flushdb()
    bob = await active_token(store, "bob")
    assert_problem(await client.post(seats_url(5), headers=bearer(bob)), 409, "SEAT_UNAVAILABLE")
    dates = (await client.get("/concerts/1/dates", headers=bearer(bob))).json()["dates"]
    assert dates[0]["available_seats"] == 49


async def test_selling_the_last_seat_marks_sold_out_and_stops_admission(
    make_store: MakeStore,
) -> None:
    from sqlalchemy import insert

    from frontrow.queue import core
    from frontrow.schema import concerts

    store = await make_store(admit_batch=10)
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)
    async with store.db.begin() as conn:
        await conn.execute(insert(concerts).values(id=1, title="Tiny", venue="Club", on_sale=True))
        await add_date(conn, 1, day, (1, 2), id=1)
        # a date already played, with a seat never sold: it cannot keep the sale open
        past = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
        await add_date(conn, 1, past, (1,), id=3)
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        _, waiting, _ = await core.enter(store, "late", 1)
        await charge(client, store, "ann", 5000)
        held = [
            await hold(client, ann, 1, day.isoformat()),
            await hold(client, ann, 2, day.isoformat()),
        ]
        response = await client.post("/payments", headers=bearer(ann), json={"hold_ids": held})
        assert response.status_code == 201
        poll = (await client.get("/queue/token", headers=bearer(waiting))).json()
        assert poll["sold_out"] is True and poll["status"] == "WAITING"
        await store.redis.delete(store.keys(1).tick)
        assert (await core.admit(store, 1, "t")).admitted == 0
        entered = await client.post("/concerts/1/queue", headers=user_headers(store, "newcomer"))
        assert assert_problem(entered, 409, "QUEUE_CLOSED")["sold_out"] is True
        assert poll["eta_s"] is None and poll["poll_after_ms"] == core.POLL_MAX_MS
        async with store.db.connect() as conn:
            assert await conn.scalar(select(schedules.c.sold_out).where(schedules.c.id == 1))

        # a date added later (catalog import) reopens the sale at the next reconcile
        later = day + dt.timedelta(days=1)
        async with store.db.begin() as conn:
            await add_date(conn, 1, later, (1,), id=2)
        from frontrow.booking.holds import rebuild_all

        await store.catalog.invalidate()
        await rebuild_all(store)
        await store.redis.delete(store.keys(1).tick)
        newcomer = await client.post("/concerts/1/queue", headers=user_headers(store, "newcomer"))
        assert newcomer.status_code == 201
        assert (await core.admit(store, 1, "t")).admitted == 2  # "late" and "newcomer"
        poll = (await client.get("/queue/token", headers=bearer(waiting))).json()
        assert poll["sold_out"] is False and poll["status"] == "ACTIVE"
