"""Admission that follows capacity: k moves with the booking p99, on each backend."""

from __future__ import annotations

import time

from frontrow import catalog, pace
from frontrow.queue import core
from frontrow.store import Store
from tests.conftest import MakeStore, active_token, app_client, bearer
from tests.e2e.test_queue_http import assert_problem
from tests.queue.test_queue import join

CONCERT = 1


async def tick(store: Store, p99_ms: float, report_ms: int) -> int:
    """One tick with a fresh lease; returns how many were admitted."""
    await store.redis.delete(store.keys(CONCERT).tick)
    return (await core.admit(store, CONCERT, "t", (p99_ms, report_ms))).admitted


async def k_now(store: Store) -> int:
    return int((await core.overview(store, CONCERT))["admit_batch"])


async def test_k_follows_the_booking_p99_within_its_bounds(make_store: MakeStore) -> None:
    store = await make_store(
        admit_batch=40, admit_target_p99_ms=500, admit_batch_min=10, admit_batch_max=60
    )
    for i in range(2_000):
        await join(store, f"u{i}")
    assert await k_now(store) == 40
    assert await tick(store, 900, 1_000) == 40  # over the target: a quarter less next
    assert await k_now(store) == 30
    assert await tick(store, 900, 1_000) == 30  # the same report moves nothing twice
    assert await k_now(store) == 30
    assert await tick(store, 450, 2_000) == 30  # between 0.8 and 1 of the target: hold
    assert await k_now(store) == 30
    assert await tick(store, 100, 3_000) == 30  # well under, batch full: a tenth more
    assert await k_now(store) == 33
    assert await tick(store, 0, 0) == 33  # nobody booked lately: no evidence, no change
    assert await k_now(store) == 33
    for n in range(20):
        await tick(store, 5_000, 4_000 + n)
    assert await k_now(store) == 10  # never under the floor
    for n in range(40):
        await tick(store, 50, 5_000 + n)
    assert await k_now(store) == 60  # nor over the ceiling
    stats = await store.redis.hgetall(store.keys(CONCERT).stats)
    assert stats["batch"] == "60"


async def test_k_grows_only_while_people_wait_for_it(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=20, admit_target_p99_ms=500)
    for i in range(5):
        await join(store, f"u{i}")
    assert await tick(store, 10, 1_000) == 5  # the batch was not full: demand, not k, limits
    assert await k_now(store) == 20


async def test_without_a_target_k_is_the_one_set(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=7)
    for i in range(50):
        await join(store, f"u{i}")
    assert await tick(store, 5_000, 1_000) == 7
    assert await tick(store, 5_000, 2_000) == 7
    assert await k_now(store) == 7


async def test_processes_report_their_booking_p99(store: Store) -> None:
    pace._booking.clear()
    pace._watched.clear()
    pace._answers.clear()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        token = await active_token(store, "ann")
        day = (await client.get("/concerts/1/dates", headers=bearer(token))).json()["dates"][0]
        for seat in (1, 2):
            url = f"/concerts/1/dates/{day['date']}/seats/{seat}/hold"
            assert (await client.post(url, headers=bearer(token))).status_code == 201
    # the app's reporter wrote them at the latest when it stopped: two holds
    # (the dates list is not a booking request)
    (mine,) = (await store.redis.hgetall(pace.key(store))).values()
    assert mine.split("|")[1] == "2"
    await store.redis.delete(pace.key(store))
    pace.sample("/concerts/{concert_id}/dates/{date}/seats/{seat_no}/hold", 0.1)
    await pace.report(store, "w1")
    pace.sample("/payments", 0.9, 1)
    await pace.report(store, "w2")
    worst, newest = await pace.observed(store)
    assert worst == 900.0 and abs(newest - time.time() * 1000) < 5_000
    # a process that stopped reporting stops counting
    stale = f"1.0|1|{int((time.time() - 60) * 1000)}"
    await store.redis.hset(pace.key(store), mapping={"w2": stale})
    worst, _ = await pace.observed(store)
    assert worst < 900.0
    assert set(await store.redis.hkeys(pace.key(store))) == {"w1"}
    # polls and payments are reported for the console per concert, in hashes of their own
    pace.sample("/queue/token", 0.004, 1)
    pace.sample("/queue/token", 0.300, "2")
    await pace.report(store, "w3")
    assert (await pace.observed(store, "poll", 1))[0] == 4.0
    assert (await pace.observed(store, "poll", 2))[0] == 300.0
    assert (await pace.observed(store, "payment", 1))[0] == 900.0
    assert (await pace.observed(store, "payment", 2))[0] == 0.0
    assert "w3" not in await store.redis.hkeys(pace.key(store))  # a poll is not booking


async def test_error_answers_are_counted_per_concert(store: Store) -> None:
    pace._answers.clear()
    route = "/concerts/{concert_id}/dates/{date}/seats/{seat_no}/hold"
    for status in (201, 409, 404, 429, 429, 503, 500):
        pace.sample(route, 0.01, "1", status)
    pace.sample(route, 0.01, "2", 409)
    pace.sample("/wallet/charge", 0.01, None, 500)  # no concert: not any concert's
    await pace.report(store, "w1")
    one = await store.redis.hgetall(store.keys(1).stats)
    assert (one["answers_4xx_total"], one["answers_429_total"], one["answers_5xx_total"]) == (
        "2",
        "2",
        "2",
    )
    assert (await store.redis.hgetall(store.keys(2).stats))["answers_4xx_total"] == "1"
    await pace.report(store, "w1")  # counted once
    assert (await store.redis.hget(store.keys(1).stats, "answers_5xx_total")) == "2"


async def test_the_target_is_a_live_setting(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(store.settings.admin_token or "")
    url = "/admin/concerts/1/queue"
    for bad in (-1, "500", 600_001, 1.5):
        response = await client.patch(url, headers=admin, json={"admit_target_p99_ms": bad})
        assert_problem(response, 422, "VALIDATION_FAILED")
    body = (await client.patch(url, headers=admin, json={"admit_target_p99_ms": 400})).json()
    assert body["admit_target_p99_ms"] == 400
    assert body["admit_batch"] == 100  # the set k, inside [1, 1000], until the admitter moves it
    await store.redis.hset(store.keys(1).stats, "auto_batch", 77)
    assert (await client.get(url, headers=admin)).json()["admit_batch"] == 77
    metrics = (await client.get("/metrics")).text
    assert 'frontrow_queue_admit_batch{concert="1"} 77.0' in metrics
    assert 'frontrow_queue_admit_target_p99_ms{concert="1"} 400.0' in metrics
