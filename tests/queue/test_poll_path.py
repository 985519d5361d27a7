"""The poll's hot path: batched status calls on connections of their own,
and request metrics tallied then added to Prometheus in bulk."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import shutil
from pathlib import Path

import pytest

from frontrow import catalog, observe
from frontrow.config import Settings
from frontrow.errors import BACKEND_ERRORS
from frontrow.metrics import CPU, LATENCY, REQUESTS
from frontrow.queue import core
from frontrow.sale import iso_of_ms
from frontrow.store import DirectScript, Store, open_store
from tests.conftest import SECRET, app_client, keep_the_line, unavailable


async def test_a_batch_of_polls_answers_each_token(store: Store) -> None:
    claims = []
    for i in range(40):
        _, token, _ = await core.enter(store, f"b{i}", 1)
        claims.append(store.tokens.verify_queue(token))
    # concurrent polls go out together in one status.lua call (batch.py)
    places = await asyncio.gather(*(core.status(store, c) for c in claims))
    assert [p.rank for p in places] == list(range(1, 41))
    assert {p.status for p in places} == {"WAITING"}


async def test_status_calls_survive_a_flushed_script_and_killed_connections(
    store: Store, backend: str
) -> None:
    if backend != "real":
        pytest.skip("the embedded backend runs scripts through fakeredis's client")
    assert isinstance(store.scripts.status, DirectScript)
    _, token, _ = await core.enter(store, "ann", 1)
    ann = store.tokens.verify_queue(token)
    assert (await core.status(store, ann)).rank == 1

    await store.redis.script_flush()  # as after a Redis restart: NOSCRIPT, then loaded again
    assert (await core.status(store, ann)).rank == 1

    # every connection but this one is cut: the idle one fails, a fresh one answers
    await store.redis.client_kill_filter(_type="normal", skipme=True)
    assert (await core.status(store, ann)).rank == 1
    assert (await core.status(store, ann)).rank == 1


async def test_direct_script_connections_are_closed_with_the_store(
    store: Store, backend: str
) -> None:
    if backend != "real":
        pytest.skip("the embedded backend has no direct connections")
    _, token, _ = await core.enter(store, "ann", 1)
    await core.status(store, store.tokens.verify_queue(token))
    # the direct connection, as the server lists it: by its id
    direct = store.scripts.status
    assert isinstance(direct, DirectScript) and len(direct.direct._idle) == 1
    conn = direct.direct._idle[0]
    await conn.send_command("CLIENT", "ID")
    own_id = str(await conn.read_response())

    async def listed() -> bool:
        return own_id in {str(c["id"]) for c in await store.redis.client_list(_type="normal")}

    assert await listed()
    await store.close_own()
    for _ in range(50):  # the server notices a closed socket a moment later
        if not await listed():
            break
        await asyncio.sleep(0.02)
    assert not await listed()


def test_tallied_requests_reach_the_metrics_as_if_observed_one_by_one() -> None:
    route = "/concerts/{concert_id}/dates"
    polls = REQUESTS.labels("GET", "/queue/token", "200")
    ok, refused = REQUESTS.labels("GET", route, "200"), REQUESTS.labels("GET", route, "409")
    latency, cpu = LATENCY.labels("GET", route), CPU.labels("GET", route)
    observe.flush()
    before = [c._value.get() for c in (polls, ok, refused)]
    sum0, cpu0 = latency._sum.get(), (cpu._count.get(), cpu._sum.get())
    buckets0 = [b.get() for b in latency._buckets]
    durations = [0.0004, 0.001, 0.0011, 0.003, 0.07, 0.2, 0.49, 0.0004]
    for elapsed in durations:
        observe.record_poll(200, elapsed, 0.0001, 1, every=False)
        observe.record("GET", route, 200, elapsed, 0.0002, 1, log=False)
    observe.record("GET", route, 409, 0.002, 0.0002, 1, log=False)
    assert [c._value.get() for c in (polls, ok, refused)] == before  # not yet: tallied
    observe.flush()
    n = len(durations)
    assert [c._value.get() for c in (polls, ok, refused)] == [
        before[0] + n,
        before[1] + n,
        before[2] + 1,
    ]
    assert latency._sum.get() == pytest.approx(sum0 + sum(durations) + 0.002)
    expected = list(buckets0)
    for elapsed in [*durations, 0.002]:  # what Histogram.observe does, one by one
        expected[bisect.bisect_left(latency._upper_bounds, elapsed)] += 1
    assert [b.get() for b in latency._buckets] == expected
    assert cpu._count.get() == cpu0[0] + n + 1
    assert cpu._sum.get() == pytest.approx(cpu0[1] + 0.0002 * (n + 1))
    observe.flush()  # nothing new: nothing added twice
    assert [c._value.get() for c in (polls, ok, refused)] == [
        before[0] + n,
        before[1] + n,
        before[2] + 1,
    ]


def test_a_sales_times_are_formatted_once_and_stay_right() -> None:
    opens = dt.datetime(2026, 12, 24, 10, 0, tzinfo=dt.UTC)
    opens_ms = int(opens.timestamp() * 1000)
    line = core.Line("", "", opens_ms - 5_000, 3, "fifo", opens_ms)
    settings = Settings(auth_secret="s" * 40)
    core.place(settings, "t_a", "WAITING", 1, 0, line)
    hits = iso_of_ms.cache_info().hits
    place = core.place(settings, "t_a", "WAITING", 1, 0, line)
    assert iso_of_ms.cache_info().hits > hits  # the second poll formats nothing
    assert place.prequeue and place.opens_at == "2026-12-24T10:00:00Z"
    assert place.poll_after_ms >= 5_000


async def test_polls_over_a_unix_socket(tmp_path: Path) -> None:
    """Redis on the same box is best reached over a Unix socket (README,
    Performance): the whole poll path, its own connections included, works so."""
    from tests.reliability.helpers import OwnRedis

    if not shutil.which("redis-server"):
        unavailable("redis-server is not installed")
    own = OwnRedis(tmp_path)
    own.start()
    settings = Settings(
        redis_url=own.unix_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        auth_secret=SECRET,
    )
    store = open_store(settings)
    try:
        await catalog.migrate(store.db)
        assert isinstance(store.scripts.status, DirectScript)
        await keep_the_line(store.redis, settings)
        _, token, _ = await core.enter(store, "ann", 1)
        async with app_client(store) as client:
            answer = await client.get("/queue/token", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["rank"] == 1
        own.kill()  # gone: a problem, not a hang
        with pytest.raises(BACKEND_ERRORS):
            await core.status(store, store.tokens.verify_queue(token))
    finally:
        own.kill()
        await store.close()
