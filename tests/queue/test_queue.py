"""The queue's promises, checked on the domain functions over each backend."""

from __future__ import annotations

import asyncio
import time

from frontrow.auth import QueueClaims
from frontrow.queue import core
from frontrow.queue.pollrule import POLL_MIN_MS
from frontrow.schedulers import loops
from frontrow.store import Store
from tests.conftest import MakeStore

CONCERT = 1
# A waiting place is told to come back within this at the soonest, and is
# lost only when not back within the abandon window after that.
BACK_S = POLL_MIN_MS / 1000


async def join(store: Store, user: str, concert_id: int = CONCERT) -> QueueClaims:
    _, token, _ = await core.enter(store, user, concert_id)
    return store.tokens.verify_queue(token)


async def state(store: Store, claims: QueueClaims) -> str:
    return (await core.status(store, claims)).status


async def test_ranks_follow_arrival_order(store: Store) -> None:
    tokens = [await join(store, f"u{i}") for i in range(5)]
    ranks = [(await core.status(store, c)).rank for c in tokens]
    assert ranks == [1, 2, 3, 4, 5]


async def test_reentry_returns_the_same_place(store: Store) -> None:
    await join(store, "first")
    created, token, place = await core.enter(store, "me", CONCERT)
    again_created, again_token, again_place = await core.enter(store, "me", CONCERT)
    assert created and not again_created
    assert (
        store.tokens.verify_queue(again_token).token_id == store.tokens.verify_queue(token).token_id
    )
    assert place.rank == again_place.rank == 2


async def test_reentry_while_active_returns_the_session(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1)
    claims = await join(store, "me")
    await core.admit(store, CONCERT, "t")
    created, token, place = await core.enter(store, "me", CONCERT)
    assert not created and place.status == "ACTIVE"
    assert store.tokens.verify_queue(token).token_id == claims.token_id


async def test_admission_is_fifo_and_k_per_tick(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=2, admit_interval_s=60)
    tokens = [await join(store, f"u{i}") for i in range(5)]
    tick = await core.admit(store, CONCERT, "a")
    assert tick.admitted == 2
    assert [await state(store, c) for c in tokens] == ["ACTIVE"] * 2 + ["WAITING"] * 3
    assert (await core.status(store, tokens[2])).rank == 1
    # same interval: the lease is taken, nobody else is admitted
    assert (await core.admit(store, CONCERT, "b")).admitted == -1
    assert await state(store, tokens[2]) == "WAITING"


async def test_three_racing_admitters_admit_exactly_k(make_store: MakeStore) -> None:
    stores = [await make_store(admit_batch=3, admit_interval_s=60) for _ in range(3)]
    for i in range(20):
        await join(stores[0], f"u{i}")
    ticks = await asyncio.gather(*(core.admit(s, CONCERT, f"a{i}") for i, s in enumerate(stores)))
    assert sorted(t.admitted for t in ticks) == [-1, -1, 3]
    overview = await core.overview(stores[0], CONCERT)
    assert overview["active"] == 3 and overview["waiting"] == 17


async def test_three_admitter_loops_never_pass_k_per_interval(make_store: MakeStore) -> None:
    k, interval = 5, 0.25
    stores = [await make_store(admit_batch=k, admit_interval_s=interval) for _ in range(3)]
    from frontrow import catalog

    await catalog.seed_demo(stores[0].db)
    for i in range(200):
        await join(stores[0], f"u{i}")
    stop = asyncio.Event()
    started = time.monotonic()
    tasks = [
        asyncio.create_task(loops.admitter(s, stop, owner=f"adm{i}")) for i, s in enumerate(stores)
    ]
    await asyncio.sleep(1.2)
    stop.set()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    admitted = (await core.overview(stores[0], CONCERT))["admitted_total"]
    intervals = int(elapsed / interval) + 1
    assert admitted % k == 0
    assert k * 2 <= admitted <= k * intervals


async def test_max_active_caps_admission(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=10, max_active=3, admit_interval_s=0.05)
    tokens = [await join(store, f"u{i}") for i in range(6)]
    assert (await core.admit(store, CONCERT, "a")).admitted == 3
    await asyncio.sleep(0.06)
    assert (await core.admit(store, CONCERT, "a")).admitted == 0
    await core.leave(store, tokens[0])
    await asyncio.sleep(0.06)
    assert (await core.admit(store, CONCERT, "a")).admitted == 1
    assert [await state(store, c) for c in tokens] == [
        "EXPIRED",
        "ACTIVE",
        "ACTIVE",
        "ACTIVE",
        "WAITING",
        "WAITING",
    ]


async def test_abandoned_tokens_are_skipped_at_admission(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, abandon_after_s=0.3)
    gone = await join(store, "gone")
    present = await join(store, "present")
    # both were told to come back within BACK_S; only one does
    await asyncio.sleep(BACK_S + 0.2)
    await core.status(store, present)  # heartbeat
    await asyncio.sleep(0.2)
    tick = await core.admit(store, CONCERT, "a")
    assert (tick.admitted, tick.abandoned) == (1, 1)
    assert await state(store, present) == "ACTIVE"
    assert await state(store, gone) == "EXPIRED"


async def test_abandoned_waiter_reads_expired_and_loses_its_place(make_store: MakeStore) -> None:
    store = await make_store(abandon_after_s=0.2)
    gone = await join(store, "gone")
    await asyncio.sleep(BACK_S + 0.3)  # not back within the window after its poll time
    assert await state(store, gone) == "EXPIRED"
    again = await join(store, "gone")
    assert again.token_id != gone.token_id


async def test_sessions_expire_by_ttl_and_the_sweep_counts_them(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=5, session_ttl_s=0.3)
    tokens = [await join(store, f"u{i}") for i in range(2)]
    await core.admit(store, CONCERT, "a")
    assert await state(store, tokens[0]) == "ACTIVE"
    await asyncio.sleep(0.4)
    # expired by time alone, before any sweep
    assert [await state(store, c) for c in tokens] == ["EXPIRED", "EXPIRED"]
    assert (await core.overview(store, CONCERT))["active"] == 0
    assert await core.sweep(store, CONCERT) == (2, 0)
    assert (await core.overview(store, CONCERT))["expired_total"] == 2
    assert await core.sweep(store, CONCERT) == (0, 0)


async def test_sweep_drops_abandoned_waiters(make_store: MakeStore) -> None:
    store = await make_store(abandon_after_s=0.2)
    await join(store, "gone")
    stays = await join(store, "stays")
    await asyncio.sleep(BACK_S + 0.3)
    await core.status(store, stays)
    # stays' own poll was late too, so the status call already dropped it;
    # what matters is that gone is removed by the sweep and counted once
    expired, abandoned = await core.sweep(store, CONCERT)
    assert (expired, abandoned) == (0, 1)
    assert (await core.overview(store, CONCERT))["abandoned_total"] == 2


async def test_sweep_forgets_users_whose_place_ended(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, abandon_after_s=0.2, session_ttl_s=0.2)
    await join(store, "admitted")
    await core.admit(store, CONCERT, "a")
    await join(store, "abandons")
    left = await join(store, "leaves")
    await core.leave(store, left)
    # the admitted session expired, "abandons" stopped polling
    await asyncio.sleep(BACK_S + 0.3)
    fresh = await join(store, "fresh")  # a live place the sweep must keep
    await core.sweep(store, CONCERT)
    assert set(await store.redis.hkeys(store.keys(CONCERT).users)) == {"fresh"}
    created, _, _ = await core.enter(store, "fresh", CONCERT)
    assert not created  # the live place is still found
    assert (await core.status(store, fresh)).status == "WAITING"


async def test_polling_slides_the_session(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, session_ttl_s=0.5)
    claims = await join(store, "me")
    await core.admit(store, CONCERT, "a")
    first = (await core.status(store, claims)).expires_at
    for _ in range(4):
        await asyncio.sleep(0.25)
        assert await state(store, claims) == "ACTIVE"
    assert (await core.status(store, claims)).expires_at > first
    await asyncio.sleep(0.6)
    assert await state(store, claims) == "EXPIRED"


async def test_session_max_caps_the_sliding(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, session_ttl_s=0.4, session_max_s=0.6)
    claims = await join(store, "me")
    await core.admit(store, CONCERT, "a")
    for _ in range(3):
        await asyncio.sleep(0.2)
        await core.status(store, claims)
    await asyncio.sleep(0.15)
    assert await state(store, claims) == "EXPIRED"


async def test_leave_frees_the_slot_for_the_next(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, max_active=1, admit_interval_s=0.05)
    first, second = await join(store, "a"), await join(store, "b")
    await core.admit(store, CONCERT, "x")
    assert await core.leave(store, first)
    assert await core.leave(store, first) is False  # idempotent
    await asyncio.sleep(0.06)
    await core.admit(store, CONCERT, "x")
    assert await state(store, second) == "ACTIVE"
    assert await state(store, first) == "EXPIRED"


async def test_closed_queue_refuses_new_places_but_keeps_existing(store: Store) -> None:
    mine = await join(store, "early")
    await core.configure(store, CONCERT, {"open": False})
    try:
        await core.enter(store, "late", CONCERT)
    except Exception as exc:
        assert getattr(exc, "code", None) == "QUEUE_CLOSED"
    else:
        raise AssertionError("a closed queue admitted a new place")
    _, token, place = await core.enter(store, "early", CONCERT)
    assert store.tokens.verify_queue(token).token_id == mine.token_id
    assert place.status == "WAITING"


async def test_live_settings_apply_on_the_next_tick(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, admit_interval_s=0.05)
    for i in range(10):
        await join(store, f"u{i}")
    await core.configure(store, CONCERT, {"admit_batch": 4})
    assert (await core.admit(store, CONCERT, "a")).admitted == 4
    await core.configure(store, CONCERT, {"admit_batch": 0})
    await asyncio.sleep(0.06)
    assert (await core.admit(store, CONCERT, "a")).admitted == 0


async def test_a_shorter_interval_frees_the_running_lease(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1)
    await core.configure(store, CONCERT, {"admit_interval_s": 3600})
    await join(store, "first")
    assert (await core.admit(store, CONCERT, "a")).admitted == 1
    await core.configure(store, CONCERT, {"admit_interval_s": 0.2})
    await join(store, "second")
    await asyncio.sleep(0.25)
    assert (await core.admit(store, CONCERT, "a")).admitted == 1


async def test_the_admitter_loop_follows_a_shortened_interval(make_store: MakeStore) -> None:
    from frontrow import catalog

    store = await make_store(admit_batch=1)
    await catalog.seed_demo(store.db)
    await core.configure(store, CONCERT, {"admit_interval_s": 3600})
    await join(store, "first")
    stop = asyncio.Event()
    task = asyncio.create_task(loops.admitter(store, stop, owner="adm"))
    try:
        for _ in range(50):
            if (await core.overview(store, CONCERT))["admitted_total"] == 1:
                break
            await asyncio.sleep(0.05)
        await core.configure(store, CONCERT, {"admit_interval_s": 0.5})
        claims = await join(store, "second")
        for _ in range(60):  # the loop asks again within a second: 3 s is plenty
            if await state(store, claims) == "ACTIVE":
                break
            await asyncio.sleep(0.05)
        assert await state(store, claims) == "ACTIVE"
    finally:
        stop.set()
        await task


async def test_eta_uses_the_configured_rate_then_the_observed_one(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=2, admit_interval_s=0.05)
    tokens = [await join(store, f"u{i}") for i in range(40)]
    # nothing observed yet: configured 40/s, rank 40 -> 1 s
    assert (await core.status(store, tokens[-1])).eta_s == 1
    await core.configure(store, CONCERT, {"max_active": 2})
    for _ in range(12):
        await core.admit(store, CONCERT, "a")
        await asyncio.sleep(0.055)
    # the cap holds admission at zero: the observed rate falls, the eta grows
    assert (await core.status(store, tokens[-1])).eta_s > 3


async def test_the_poll_rule_in_redis_is_its_python_twin(store: Store) -> None:
    """_lib.lua's poll_interval, which the server uses, and pollrule.waiting_poll_ms,
    which bench.sim uses, give the same interval."""
    from importlib.resources import files

    from frontrow.queue.pollrule import POLL_MIN_MS, WAIT_POLL_MAX_MS, waiting_poll_ms

    lib = files("frontrow.lua").joinpath("_lib.lua").read_text(encoding="utf-8")
    numbers = ", ".join(f"tonumber(ARGV[{i}])" for i in range(1, 5))
    call = f"return poll_interval({numbers})"
    probe = store.redis.register_script(lib + call)
    for place in (1, 2, 7, 99, 100, 101, 1_000, 33_333, 1_000_000):
        for rate in (0.0, 0.5, 3.0, 100.0, 333.3, 2_000.0):
            got = await probe(args=[place, rate, POLL_MIN_MS, WAIT_POLL_MAX_MS])
            assert got == waiting_poll_ms(place, rate), (place, rate)
