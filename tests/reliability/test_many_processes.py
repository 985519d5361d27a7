"""A sale on real processes: 2 uvicorn workers, 3 admitters, a few hundred users
doing the whole flow against one Redis and one PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from frontrow.schema import ledger, receipts, reservations, wallets
from frontrow.store import Store
from tests.conftest import SECRET
from tests.e2e.server import serve
from tests.reliability.helpers import admitters

USERS = 240
K = 20
INTERVAL_S = 0.5


@pytest.fixture
def real_only(backend: str) -> None:
    if backend != "real":
        pytest.skip("processes share state only through real Redis and PostgreSQL")


def env_for(store: Store) -> dict[str, str]:
    return {
        "FRONTROW_REDIS_URL": store.settings.redis_url or "",
        "FRONTROW_DATABASE_URL": store.settings.database_url,
        "FRONTROW_AUTH_SECRET": SECRET,
        "FRONTROW_DEMO_LOGIN": "1",
        "FRONTROW_ADMIT_BATCH": str(K),
        "FRONTROW_ADMIT_INTERVAL_S": str(INTERVAL_S),
        # a session's absolute deadline is its tick's Redis time + this: the
        # admission tick of every token, exact (see watch_admissions)
        "FRONTROW_SESSION_MAX_S": "3600",
        "FRONTROW_LOG_LEVEL": "WARNING",
    }


async def watch_admissions(
    store: Store, stop: asyncio.Event, seen: dict[str, float], tick: dict[str, int]
) -> None:
    """Record each token seen among the active sessions, and the tick that
    admitted it: its absolute deadline, set once by admit.lua from that
    tick's Redis time (the same for every token of a tick, never slid), so
    ticks are told apart exactly however late this loop runs on a busy box."""
    k = store.keys(1)
    while not stop.is_set():
        now = time.monotonic()
        for token in await store.redis.zrange(k.active, 0, -1):
            seen.setdefault(token, now)
        for token, deadline in (await store.redis.hgetall(k.cap)).items():
            tick.setdefault(token, int(deadline))
        await asyncio.sleep(0.02)


async def shopper(c: httpx.AsyncClient, token: str, user: str) -> dict[str, Any]:
    q = {"Authorization": f"Bearer {token}"}
    while (await c.get("/queue/token", headers=q)).json()["status"] != "ACTIVE":
        await asyncio.sleep(0.1)
    dates = [
        d
        for d in (await c.get("/concerts/1/dates", headers=q)).json()["dates"]
        if d["available_seats"]
    ]
    random.shuffle(dates)
    for d in dates:
        seats = (await c.get(f"/concerts/1/dates/{d['date']}/seats", headers=q)).json()["seats"]
        free = [s["seat_no"] for s in seats if s["status"] == "AVAILABLE"]
        random.shuffle(free)
        for seat in free[:5]:
            r = await c.post(f"/concerts/1/dates/{d['date']}/seats/{seat}/hold", headers=q)
            if r.status_code == 201:
                key = {"Idempotency-Key": f"pay-{user}"}
                paid = await c.post(
                    "/payments", headers={**q, **key}, json={"hold_ids": [r.json()["hold_id"]]}
                )
                assert paid.status_code == 201, paid.text
                again = await c.post(
                    "/payments", headers={**q, **key}, json={"hold_ids": [r.json()["hold_id"]]}
                )
                assert again.json() == paid.json()
                return {"user": user, "outcome": "bought", "receipt": paid.json()}
            assert r.status_code == 409, r.text
    await c.delete("/queue/token", headers=q)
    return {"user": user, "outcome": "no seat"}


async def test_a_sale_on_many_processes(real_only: None, store: Store) -> None:
    env = env_for(store)
    seen: dict[str, float] = {}
    tick: dict[str, int] = {}
    stop = asyncio.Event()
    with admitters(env, 3):
        try:
            with serve(env, workers=2) as url:
                limits = httpx.Limits(max_connections=64)
                async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
                    # pause admission while everyone enters, one after another: arrival order known
                    admin_off = await c.post("/auth/demo")
                    assert admin_off.status_code == 201
                    await store.redis.hset(store.keys(1).cfg, "admit_batch", 0)
                    people = []
                    for i in range(USERS):
                        login = (await c.post("/auth/demo")).json()
                        user = {"Authorization": f"Bearer {login['access_token']}"}
                        charged = await c.post(
                            "/wallet/charge", headers=user, json={"amount": 200_000}
                        )
                        assert charged.status_code == 200
                        entered = await c.post("/concerts/1/queue", headers=user)
                        assert entered.status_code == 201 and entered.json()["rank"] == i + 1
                        people.append((login["user_id"], entered.json()["token"]))
                    # some change their mind while admission is paused: never admitted
                    for n, (_, token) in enumerate(people):
                        if n % 12 == 5:
                            left = await c.delete(
                                "/queue/token", headers={"Authorization": f"Bearer {token}"}
                            )
                            assert left.status_code == 204
                    watcher = asyncio.create_task(watch_admissions(store, stop, seen, tick))
                    await store.redis.hdel(store.keys(1).cfg, "admit_batch")
                    started = time.monotonic()
                    results = await asyncio.gather(
                        *(
                            shopper(c, token, user)
                            for n, (user, token) in enumerate(people)
                            if n % 12 != 5
                        )
                    )
                    elapsed = time.monotonic() - started
                    stop.set()
                    await watcher
                    stats = (await c.get("/metrics")).text
        finally:
            stop.set()

    tokens = [store.tokens.verify_queue(token).token_id for _, token in people]
    left = {tokens[n] for n in range(USERS) if n % 12 == 5}
    admitted = [t for t in tokens if t in seen]
    assert not (set(admitted) & left)
    assert set(tick) == set(admitted)  # every admission's tick is known
    # arrival order: nobody was let in a tick before someone who arrived earlier
    for earlier, later in itertools.pairwise(admitted):
        assert tick[earlier] <= tick[later], (earlier, later)
    # never more than k in one tick, and no more ticks than the time allows
    per_tick = Counter(tick.values())
    assert max(per_tick.values()) <= K
    assert len(per_tick) <= elapsed / INTERVAL_S + 2
    ticks = sorted(per_tick)
    assert all(b - a >= INTERVAL_S * 1000 * 0.9 for a, b in itertools.pairwise(ticks))
    assert "frontrow_queue_admitted_total" in stats

    bought = [r for r in results if r["outcome"] == "bought"]
    assert len(bought) == 150  # every demo seat sold, once: more buyers than seats
    async with store.db.connect() as conn:
        per_seat = await conn.execute(
            select(reservations.c.schedule_id, reservations.c.seat_no, func.count()).group_by(
                reservations.c.schedule_id, reservations.c.seat_no
            )
        )
        assert all(n == 1 for *_, n in per_seat)
        for r in bought:
            receipt = r["receipt"]
            prices = await conn.scalar(
                select(func.sum(reservations.c.price)).where(
                    reservations.c.receipt_id == receipt["receipt_id"]
                )
            )
            assert prices == receipt["amount"] == sum(s["price"] for s in receipt["seats"])
        balances = dict((await conn.execute(select(wallets.c.user_id, wallets.c.balance))).all())
        sums = dict(
            (
                await conn.execute(
                    select(ledger.c.user_id, func.sum(ledger.c.amount)).group_by(ledger.c.user_id)
                )
            ).all()
        )
        paid = dict(
            (
                await conn.execute(
                    select(receipts.c.user_id, func.sum(receipts.c.amount)).group_by(
                        receipts.c.user_id
                    )
                )
            ).all()
        )
    for user, _ in people:
        assert balances[user] == sums[user] == 200_000 - paid.get(user, 0)
