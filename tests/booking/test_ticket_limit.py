"""Seats per buyer (#22.3) and one claim per seat (#22.4): a buyer gets at most
FRONTROW_MAX_TICKETS_PER_USER seats of a concert, bought plus held, however
often they re-enter; and a claim on one seat lasts one hold lifetime, however
often it is released and taken again."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from frontrow import catalog
from frontrow.auth import QueueClaims
from frontrow.booking import holds
from frontrow.errors import Problem
from frontrow.schema import ledger, wallets
from frontrow.store import Store
from frontrow.wallet import payments
from tests.booking.test_best_available import best_url
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, app_client, bearer
from tests.e2e.test_queue_http import assert_problem
from tests.wallet.test_payments_http import charge, hold, sold_count


async def pay(client: httpx.AsyncClient, token: str, hold_ids: list[str]) -> httpx.Response:
    return await client.post("/payments", headers=bearer(token), json={"hold_ids": hold_ids})


async def test_a_buyer_gets_the_limit_however_often_they_reenter(
    client: httpx.AsyncClient, store: Store
) -> None:
    assert store.settings.max_tickets_per_user == 4
    await charge(client, store, "ann", 10_000_000)
    ann = await active_token(store, "ann")
    paid = await pay(client, ann, [await hold(client, ann, n) for n in (1, 2, 3)])
    assert paid.status_code == 201, paid.text
    ann = await active_token(store, "ann")  # the paid session is DONE: in again
    fourth = await hold(client, ann, 4)
    refused = await client.post(seats_url(5), headers=bearer(ann))
    assert_problem(refused, 409, "TICKET_LIMIT")
    assert refused.json()["limit"] == 4 and refused.json()["bought"] == 3
    assert (await pay(client, ann, [fourth])).status_code == 201
    ann = await active_token(store, "ann")
    refused = await client.post(seats_url(5), headers=bearer(ann))
    assert_problem(refused, 409, "TICKET_LIMIT")
    assert refused.json()["bought"] == 4
    best = await client.post(best_url(), headers=bearer(ann), json={"count": 1})
    assert_problem(best, 409, "TICKET_LIMIT")
    assert await sold_count(store) == 4
    # another buyer is not touched by ann's count
    bob = await active_token(store, "bob")
    assert (await client.post(seats_url(5), headers=bearer(bob))).status_code == 201


async def test_the_payment_itself_refuses_what_would_pass_the_limit(
    make_store: MakeStore,
) -> None:
    """With the early count lost (Redis forgot it), the payment's own statement
    still refuses: holds of four more seats on top of two bought charge nothing."""
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await charge(client, store, "ann", 10_000_000)
        ann = await active_token(store, "ann")
        assert (
            await pay(client, ann, [await hold(client, ann, n) for n in (1, 2)])
        ).status_code == 201
        await store.redis.delete(store.keys(1).bought)
        ann = await active_token(store, "ann")
        held = [await hold(client, ann, n) for n in (11, 12, 13, 14)]
        refused = await pay(client, ann, held)
        assert_problem(refused, 409, "TICKET_LIMIT")
        assert refused.json()["bought"] == 2 and refused.json()["limit"] == 4
        assert await sold_count(store) == 2
        assert (await pay(client, ann, held[:2])).status_code == 201
        assert await sold_count(store) == 4


async def test_concurrent_payments_never_sell_past_the_limit(make_store: MakeStore) -> None:
    """Eight one-seat payments of one buyer at once, straight into the money
    step (no Redis in the way): exactly the limit is sold and charged."""
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await charge(client, store, "ann", 10_000_000)
    concert = await store.catalog.get(1)
    assert concert is not None
    schedule = concert.schedules[0]
    items = payments._refs(concert, [holds.new_hold_id(1, schedule.id, n) for n in range(1, 9)])
    commit = (
        payments._commit_in_one_statement
        if store.db.dialect.name == "postgresql"
        else payments._commit
    )
    outcomes = await asyncio.gather(
        *(
            commit(store, concert, QueueClaims("ann", 1, "t_ann", 0.0), [item], None, "d")
            for item in items
        ),
        return_exceptions=True,
    )
    receipts = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, Problem)]
    assert len(receipts) == 4 and len(refused) == 4, outcomes
    assert {p.code for p in refused} == {"TICKET_LIMIT"}
    assert await sold_count(store) == 4
    async with store.db.connect() as conn:
        balance = await conn.scalar(select(wallets.c.balance).where(wallets.c.user_id == "ann"))
        spent = await conn.scalar(
            select(func.sum(ledger.c.amount)).where(
                ledger.c.user_id == "ann", ledger.c.kind == "payment"
            )
        )
    amounts = sum(r["amount"] for r in receipts)
    assert -spent == amounts and balance == 10_000_000 - amounts


async def test_no_limit_when_it_is_zero(make_store: MakeStore) -> None:
    store = await make_store(max_tickets_per_user=0)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await charge(client, store, "ann", 10_000_000)
        for seats in ((1, 2, 3, 4), (5, 6, 7, 8)):
            ann = await active_token(store, "ann")
            held = [await hold(client, ann, n) for n in seats]
            assert (await pay(client, ann, held)).status_code == 201
        assert await sold_count(store) == 8


async def test_releasing_and_taking_a_seat_again_never_outlasts_one_lifetime(
    make_store: MakeStore,
) -> None:
    ttl_s = 1.0
    store = await make_store(hold_ttl_s=ttl_s, hold_per_user=100)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
        first = (await client.post(seats_url(9), headers=bearer(ann))).json()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl_s
        cycles = 0
        while loop.time() < deadline - 0.2:
            released = await client.delete(f"/holds/{first['hold_id']}", headers=bearer(ann))
            assert released.status_code == 204
            again = await client.post(seats_url(9), headers=bearer(ann))
            assert again.status_code == 201, again.text
            # the same deadline as the first hold of it, not a new lifetime
            assert again.json()["expires_at"] == first["expires_at"]
            first = again.json()
            cycles += 1
            await asyncio.sleep(0.1)
        assert cycles >= 3
        await asyncio.sleep(deadline - loop.time() + 0.05)
        # ann's claim on seat 9 ran its lifetime: the seat is left to others
        assert_problem(
            await client.post(seats_url(9), headers=bearer(ann)), 409, "SEAT_UNAVAILABLE"
        )
        best = await client.post(best_url(), headers=bearer(ann), json={"count": 1})
        assert best.status_code == 201 and best.json()["holds"][0]["seat_no"] != 9
        assert (await client.post(seats_url(9), headers=bearer(bob))).status_code == 201
