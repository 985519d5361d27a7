"""What a payment does to holds and to the sold-out flag, failed or concurrent."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sqlalchemy import insert, select

from frontrow import catalog, rules
from frontrow.booking.holds import rebuild_all
from frontrow.queue import core
from frontrow.schema import concerts, schedules
from frontrow.wallet import payments
from tests.booking.test_booking_http import seats_url
from tests.conftest import (
    MakeStore,
    active_token,
    add_date,
    admit_all,
    app_client,
    bearer,
    user_headers,
)
from tests.e2e.test_queue_http import assert_problem
from tests.wallet.test_payments_http import charge, hold, sold_count


async def test_failed_payments_never_lengthen_a_hold(make_store: MakeStore) -> None:
    # The claim pins a hold with less than the grace period left; a 402 must undo it.
    store = await make_store(hold_ttl_s=0.8)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        held = await hold(client, ann, 12)
        deadline = asyncio.get_running_loop().time() + 0.8
        for _ in range(3):
            paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
            assert_problem(paid, 402, "INSUFFICIENT_BALANCE")
            ttl_ms = await store.redis.pttl(store.keys(1).hold(1, 12))
            assert 0 < ttl_ms <= 800
            await asyncio.sleep(0.2)
        await asyncio.sleep(deadline - asyncio.get_running_loop().time() + 0.1)
        bob = await active_token(store, "bob")
        response = await client.post(seats_url(12), headers=bearer(bob))
        assert response.status_code == 201, response.text
        assert await sold_count(store) == 0


async def test_concurrent_failed_payments_never_keep_a_hold_past_its_deadline(
    make_store: MakeStore,
) -> None:
    # Twins pin one hold at once; whichever unclaims last must not restore the
    # deadline a twin pinned (#22.1). Rounds of failing payments for more than
    # two hold lifetimes: the hold still ends at its own deadline.
    ttl_s = 1.2
    store = await make_store(hold_ttl_s=ttl_s)
    await catalog.seed_demo(store.db)
    key = store.keys(1).hold(1, 12)
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        held = await hold(client, ann, 12)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl_s
        bob = await active_token(store, "bob")

        async def pay() -> int:
            paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
            return paid.status_code

        seen_after_deadline = []
        while loop.time() < deadline + 2 * ttl_s:
            codes = await asyncio.gather(*(pay() for _ in range(8)))
            assert set(codes) <= {402, 409}, codes
            ttl_ms = await store.redis.pttl(key)
            left_ms = (deadline - loop.time()) * 1000
            # never longer than its own deadline once every payment has failed
            assert ttl_ms == -2 or ttl_ms <= left_ms + 100, (ttl_ms, left_ms)
            if loop.time() > deadline + 0.1:
                seen_after_deadline.append(ttl_ms)
            await asyncio.sleep(0.1)
        assert seen_after_deadline and set(seen_after_deadline) == {-2}
        response = await client.post(seats_url(12), headers=bearer(bob))
        assert response.status_code == 201, response.text
        assert await sold_count(store) == 0


async def test_a_failed_payment_after_the_deadline_ends_the_hold(make_store: MakeStore) -> None:
    store = await make_store(hold_ttl_s=0.3)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        held = await hold(client, ann, 3)
        paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
        assert_problem(paid, 402, "INSUFFICIENT_BALANCE")
        await asyncio.sleep(0.4)
        assert await store.redis.exists(store.keys(1).hold(1, 3)) == 0
        # the date's index of holds says it lapsed (it is trimmed by score)
        deadline = await store.redis.zscore(store.keys(1).holds(1, "A"), "3")
        assert deadline is None or deadline <= time.time() * 1000


async def test_paying_releases_the_other_holds_of_the_session(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        await charge(client, store, "ann", 1_000_000)
        first, second, third = [await hold(client, ann, n) for n in (21, 22, 23)]
        paid = await client.post(
            "/payments", headers=bearer(ann), json={"hold_ids": [first, second]}
        )
        assert paid.status_code == 201
        bob = await active_token(store, "bob")
        seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
        assert [seats[n - 1]["status"] for n in (21, 22, 23)] == ["SOLD", "SOLD", "AVAILABLE"]
        assert await store.redis.zcard(store.keys(1).uholds("ann")) == 0
        # the paid buyer's DONE token may still let go of a hold: here it is gone already
        released = await client.delete(f"/holds/{third}", headers=bearer(ann))
        assert_problem(released, 404, "NOT_FOUND")


async def test_concurrent_last_seat_payments_sell_out_every_date(make_store: MakeStore) -> None:
    dates, per_date = 30, 2
    store = await make_store()
    first = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)
    days = [first + dt.timedelta(days=i) for i in range(dates)]
    async with store.db.begin() as conn:
        await conn.execute(insert(concerts).values(id=1, title="Run", venue="Hall", on_sale=True))
        for day in days:
            await add_date(conn, 1, day, range(1, per_date + 1))
    async with app_client(store) as client:
        buyers = [(f"b{d}_{n}", day, n) for d, day in enumerate(days) for n in (1, 2)]
        tokens = {}
        for user, _, _ in buyers:
            _, tokens[user], _ = await core.enter(store, user, 1)
        await admit_all(store)
        holds = {}
        for user, day, n in buyers:
            await charge(client, store, user, 10_000)
            holds[user] = await hold(client, tokens[user], n, day.isoformat())

        async def pay(user: str) -> int:
            response = await client.post(
                "/payments", headers=bearer(tokens[user]), json={"hold_ids": [holds[user]]}
            )
            return response.status_code

        assert await asyncio.gather(*(pay(user) for user, _, _ in buyers)) == [201] * len(buyers)
        async with store.db.connect() as conn:
            flags = (await conn.execute(select(schedules.c.sold_out))).scalars().all()
            left = (await conn.execute(select(schedules.c.seats_left))).scalars().all()
        assert flags == [True] * dates and left == [0] * dates
        assert await store.redis.hget(store.keys(1).stats, "sold_out") == "1"
        # the repair job agrees, and a newcomer is told at the door
        await rebuild_all(store)
        assert await store.redis.hget(store.keys(1).stats, "sold_out") == "1"
        entered = await client.post("/concerts/1/queue", headers=user_headers(store, "late"))
        assert_problem(entered, 409, "QUEUE_CLOSED")
        assert entered.json()["sold_out"] is True


async def test_a_replayed_payment_finishes_what_the_first_answer_did_not(
    make_store: MakeStore, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The payment committed but Redis never heard (it died, the answer was
    lost): the same-key retry answers the receipt and finishes the purchase,
    the session DONE and the paid seats no longer held, counted once."""
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await charge(client, store, "ann", 1_000_000)
        ann = await active_token(store, "ann")
        held = [await hold(client, ann, n) for n in (31, 32)]
        other = await hold(client, ann, 33)
        real = store.scripts.finalize

        async def lost(*args: object, **kwargs: object) -> None:
            raise ConnectionError("Redis went away after the commit")

        monkeypatch.setattr(store.scripts, "finalize", lost)
        key = {"Idempotency-Key": "pay-once-31-32"}
        first = await client.post(
            "/payments", headers={**bearer(ann), **key}, json={"hold_ids": held}
        )
        assert first.status_code == 201
        poll = await client.get("/queue/token", headers=bearer(ann))
        assert poll.json()["status"] == "ACTIVE"  # Redis never heard of the sale
        monkeypatch.setattr(store.scripts, "finalize", real)
        again = await client.post(
            "/payments", headers={**bearer(ann), **key}, json={"hold_ids": held}
        )
        assert again.status_code in (200, 201), again.text
        assert again.json()["receipt_id"] == first.json()["receipt_id"]
        poll = await client.get("/queue/token", headers=bearer(ann))
        assert poll.json()["status"] == "DONE"
        assert await store.redis.zcard(store.keys(1).uholds("ann")) == 0
        assert await store.redis.exists(store.keys(1).hold(1, 33)) == 0, other
        bob = await active_token(store, "bob")
        seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
        assert [seats[n - 1]["status"] for n in (31, 32, 33)] == ["SOLD", "SOLD", "AVAILABLE"]
        # and once more: nothing more changes, the seats are counted once
        third = await client.post(
            "/payments", headers={**bearer(ann), **key}, json={"hold_ids": held}
        )
        assert third.json()["receipt_id"] == first.json()["receipt_id"]
        assert await store.redis.hget(store.keys(1).bought, "ann") == "2"
        assert await sold_count(store) == 2


async def test_the_sweeper_finishes_a_payment_redis_never_heard_of(
    make_store: MakeStore, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Committed while Redis was away, and nobody retried: the repair finishes
    it from the record (#24.5): the session DONE, the paid seats sold and no
    longer held, the payer's other hold let go, the seats counted once."""
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await charge(client, store, "ann", 1_000_000)
        ann = await active_token(store, "ann")
        held = [await hold(client, ann, n) for n in (31, 32)]
        await hold(client, ann, 33)
        real = store.scripts.finalize

        async def lost(*args: object, **kwargs: object) -> None:
            raise ConnectionError("Redis went away after the commit")

        monkeypatch.setattr(store.scripts, "finalize", lost)
        paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": held})
        assert paid.status_code == 201
        monkeypatch.setattr(store.scripts, "finalize", real)
        assert await payments.finish_recent(store) == 1
        assert (await client.get("/queue/token", headers=bearer(ann))).json()["status"] == "DONE"
        k = store.keys(1)
        assert await store.redis.zcard(k.uholds("ann")) == 0
        assert await store.redis.exists(k.hold(1, 31), k.hold(1, 32), k.hold(1, 33)) == 0
        assert await store.redis.hget(k.bought, "ann") == "2"
        assert await payments.finish_recent(store) == 0  # finished once
        bob = await active_token(store, "bob")
        seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
        assert [seats[n - 1]["status"] for n in (31, 32, 33)] == ["SOLD", "SOLD", "AVAILABLE"]


async def test_a_paid_token_given_back_by_an_empty_redis_is_done_again(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await charge(client, store, "ann", 1_000_000)
        ann = await active_token(store, "ann")
        frontier = await store.redis.hget(store.keys(1).stats, "admitted_upto")
        await rules.keep_frontier(store, 1, int(frontier))
        held = await hold(client, ann, 7)
        paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]})
        assert paid.status_code == 201
        await store.redis.flushdb()
        polled = await client.get("/queue/token", headers=bearer(ann))
        assert polled.json()["status"] == "ACTIVE"  # admitted, as far as the token says
        assert await payments.finish_recent(store) == 1
        assert (await client.get("/queue/token", headers=bearer(ann))).json()["status"] == "DONE"
