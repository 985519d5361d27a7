"""The on-sale moment: schedule, pre-queue, the lottery's draw, modes, on each backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac

import pytest
from sqlalchemy import update

from frontrow import catalog, rules, sale
from frontrow.errors import Problem
from frontrow.queue import core
from frontrow.schema import concerts
from frontrow.store import Store
from tests.conftest import MakeStore, admit_all, let_calm_pass

CONCERT = 1


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def schedule(
    store: Store,
    prequeue_from: dt.datetime | None = None,
    opens_at: dt.datetime | None = None,
    mode: str = "fifo",
    pow_bits: int = 0,
) -> sale.Sale:
    """Give the demo concert this sale, as the admin API stores it (a seed is
    made with the first pre-queue and kept)."""
    body = {
        "prequeue_from": prequeue_from.isoformat() if prequeue_from else None,
        "opens_at": opens_at.isoformat() if opens_at else None,
        "mode": mode,
        "pow_bits": pow_bits,
    }
    await rules.change(store, CONCERT, {}, body, "test")
    await store.catalog.invalidate()
    concert = await store.catalog.get(CONCERT)
    assert concert is not None
    return concert.sale


async def open_now(store: Store, at: dt.datetime | None = None) -> None:
    """The opening arrives (or comes to `at`), as time passing would: an
    operator may not move it earlier once anyone is pre-queued (PREQUEUE_TAKEN)."""
    opened = at or now() - dt.timedelta(seconds=1)
    async with store.db.begin() as conn:
        await conn.execute(update(concerts).where(concerts.c.id == CONCERT).values(opens_at=opened))
    await store.redis.hset(store.keys(CONCERT).cfg, "opens_ms", sale.epoch_ms(opened))


async def enter(store: Store, user: str) -> tuple[bool, str, core.Place]:
    concert = await store.catalog.get(CONCERT)
    assert concert is not None
    return await core.enter(store, user, CONCERT)


async def tick(store: Store) -> core.Tick:
    await store.redis.delete(store.keys(CONCERT).tick)
    return await core.admit(store, CONCERT, "t")


def hmac_key(seed: str, user: str) -> str:
    message = f"{CONCERT}:{user}".encode()
    return hmac.new(bytes.fromhex(seed), message, hashlib.sha256).hexdigest()


@pytest.fixture
async def demo(make_store: MakeStore) -> Store:
    store = await make_store(admit_batch=0)  # admission only where a test asks for it
    await catalog.seed_demo(store.db)
    return store


async def test_before_the_window_entering_is_409_with_the_times(demo: Store) -> None:
    opens = now() + dt.timedelta(hours=2)
    await schedule(demo, prequeue_from=now() + dt.timedelta(hours=1), opens_at=opens)
    with pytest.raises(Problem) as refused:
        await enter(demo, "early")
    assert refused.value.status == 409 and refused.value.code == "QUEUE_CLOSED"
    assert refused.value.extra["opens_at"] == sale.iso(opens)
    assert refused.value.extra["prequeue_from"] == sale.iso(opens - dt.timedelta(hours=1))
    # without a pre-queue, nobody enters before the opening either
    await schedule(demo, opens_at=opens)
    with pytest.raises(Problem) as refused:
        await enter(demo, "early")
    assert refused.value.extra == {"opens_at": sale.iso(opens), "prequeue_from": None}
    assert await demo.redis.zcard(demo.keys(CONCERT).wait) == 0


async def test_prequeue_waits_unranked_and_nobody_is_admitted_before_the_opening(
    demo: Store,
) -> None:
    drawn = await schedule(
        demo, prequeue_from=now() - dt.timedelta(minutes=1), opens_at=now() + dt.timedelta(hours=1)
    )
    created, token, place = await enter(demo, "ann")
    assert created and place.status == "WAITING" and place.prequeue
    assert place.rank is None and place.eta_s is None and place.opens_at == sale.iso(drawn.opens_at)
    # an hour before the opening a page still asks again within a minute
    assert place.poll_after_ms == core.PREQUEUE_POLL_MAX_MS
    await admit_all(demo)
    claims = demo.tokens.verify_queue(token)
    assert (await core.status(demo, claims)).status == "WAITING"
    assert (await tick(demo)).admitted == 0
    # re-entering keeps the place (a token minted now: its times may differ by
    # a second), and the draw holds one key
    again, again_token, _ = await enter(demo, "ann")
    kept = demo.tokens.verify_queue(again_token)
    assert not again and (kept.token_id, kept.score, kept.born_ms) == (
        claims.token_id,
        claims.score,
        claims.born_ms,
    )
    await core.leave(demo, claims)
    back, back_token, _ = await enter(demo, "ann")
    assert back and demo.tokens.verify_queue(back_token).token_id == claims.token_id
    assert await demo.redis.zcard(demo.keys(CONCERT).draw) == 1


@pytest.mark.parametrize("size", [10_000])
async def test_the_draw_is_the_hmac_order_and_late_arrivals_come_after(
    demo: Store, backend: str, size: int
) -> None:
    if backend == "embedded":
        size = 600  # the in-process Redis is slow; the real one takes the full 10,000
    drawn = await schedule(
        demo, prequeue_from=now() - dt.timedelta(minutes=1), opens_at=now() + dt.timedelta(hours=1)
    )
    assert drawn.seed is not None
    users = [f"u{i}" for i in range(size)]
    tokens: dict[str, str] = {}
    for start in range(0, size, 500):
        chunk = users[start : start + 500]
        entered = await asyncio.gather(*(enter(demo, u) for u in chunk))
        tokens.update((u, token) for u, (_, token, _) in zip(chunk, entered, strict=True))
    # the opening: nothing moves, the line is already in draw order
    await open_now(demo)
    late = [f"late{i}" for i in range(5)]
    for user in late:
        _, tokens[user], place = await enter(demo, user)
        assert not place.prequeue and place.rank is not None and place.rank > size
    expected = sorted(users, key=lambda u: hmac_key(drawn.seed or "", u)) + late
    ranks = await asyncio.gather(
        *(core.status(demo, demo.tokens.verify_queue(tokens[u])) for u in expected)
    )
    assert [p.rank for p in ranks] == list(range(1, size + 6))
    assert not any(p.prequeue for p in ranks)
    # admission follows the same order
    await demo.redis.hset(demo.keys(CONCERT).cfg, "admit_batch", 7)
    tick_ = await tick(demo)
    assert tick_.admitted == 7 and not tick_.opened  # the first late entry recorded it
    firsts = await asyncio.gather(
        *(core.status(demo, demo.tokens.verify_queue(tokens[u])) for u in expected[:8])
    )
    assert [p.status for p in firsts] == ["ACTIVE"] * 7 + ["WAITING"]
    keys = await demo.redis.zrangebylex(demo.keys(CONCERT).draw, "-", "+")
    assert keys == sorted(hmac_key(drawn.seed, u) for u in users)
    assert (await rules.lottery(demo, CONCERT) or {})["entries"] == size


async def test_the_opening_happens_once_with_three_admitters(demo: Store) -> None:
    drawn = await schedule(
        demo, prequeue_from=now() - dt.timedelta(minutes=1), opens_at=now() + dt.timedelta(hours=1)
    )
    for i in range(30):
        await enter(demo, f"u{i}")
    assert drawn.seed
    await open_now(demo)
    await demo.redis.hset(demo.keys(CONCERT).cfg, "admit_batch", 10)
    ticks = await asyncio.gather(*(core.admit(demo, CONCERT, f"a{i}") for i in range(3)))
    assert sum(t.opened for t in ticks) == 1
    assert sorted(t.admitted for t in ticks) == [-1, -1, 10]
    assert (await tick(demo)).opened is False
    assert (await rules.lottery(demo, CONCERT) or {})["entries"] == 30


async def test_the_schedule_is_final_once_the_opening_is_due(demo: Store) -> None:
    drawn = await schedule(
        demo,
        prequeue_from=now() - dt.timedelta(minutes=2),
        opens_at=now() - dt.timedelta(minutes=1),
    )
    # nobody looked since it passed: the change itself records the opening
    for moved in ({"opens_at": "2099-01-01T00:00:00Z"}, {"prequeue_from": None}):
        with pytest.raises(Problem) as refused:
            await rules.change(demo, CONCERT, {}, moved, "test")
        assert refused.value.status == 409 and refused.value.code == "SALE_STARTED"
    assert (await rules.lottery(demo, CONCERT) or {})["seed"] == drawn.seed
    # the mode and the difficulty may still change; the seed never does
    assert sale.changed(drawn, {"mode": "random", "pow_bits": 3}).seed == drawn.seed
    for bad in (
        {"mode": "lifo"},
        {"pow_bits": 22},  # past what a slow phone solves well within 2 minutes
        {"pow_bits": True},
        {"opens_at": "tomorrow"},
        {"opens_at": "2099-01-01T00:00:00"},  # no offset
        {"prequeue_from": "2099-01-02T00:00:00Z", "opens_at": "2099-01-01T00:00:00Z"},
    ):
        with pytest.raises(Problem):
            sale.changed(sale.Sale(), bad)
    fresh = sale.changed(
        sale.Sale(),
        {"prequeue_from": "2099-01-01T00:00:00Z", "opens_at": "2099-01-01T02:00:00+01:00"},
    )
    assert fresh.seed is not None and fresh.opens_at is not None and fresh.prequeue_from
    assert fresh.opens_at - fresh.prequeue_from == dt.timedelta(hours=1)
    assert hashlib.sha256(bytes.fromhex(fresh.seed)).hexdigest() == fresh.commitment


async def test_random_admits_only_present_places_each_once(demo: Store) -> None:
    await schedule(demo, mode="random")
    tokens = [(await enter(demo, f"u{i}"))[1] for i in range(30)]
    k = demo.keys(CONCERT)
    absent = [demo.tokens.verify_queue(t).token_id for t in tokens[::3]]
    await demo.redis.zadd(k.seen, dict.fromkeys(absent, 1))  # their last poll: long ago
    await demo.redis.hset(k.stats, "rate", "2")
    _, _, place = await enter(demo, "me")
    assert place.rank is None and place.eta_s == 8  # the median of 31 places at 2 a second
    await demo.redis.hset(k.cfg, "admit_batch", 4)
    admitted = abandoned = 0
    for _ in range(20):
        t = await tick(demo)
        admitted, abandoned = admitted + t.admitted, abandoned + t.abandoned
    assert (admitted, abandoned) == (21, 10)
    active = await demo.redis.zrange(k.active, 0, -1)
    assert len(active) == 21 and not set(active) & set(absent)
    assert await demo.redis.zcard(k.wait) == 0


async def test_passthrough_reject_and_fifo_when_calm(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=2, max_active=3)
    await catalog.seed_demo(store.db)
    await schedule(store, mode="passthrough")
    for i in range(5):  # past the cap: passthrough does not apply it
        _, _, place = await enter(store, f"p{i}")
        assert place.status == "ACTIVE"
    stats = await store.redis.hgetall(store.keys(CONCERT).stats)
    assert stats["passthrough_total"] == "5" and stats["admitted_total"] == "5"

    await schedule(store, mode="reject")
    with pytest.raises(Problem) as refused:
        await enter(store, "r")
    assert refused.value.status == 409 and refused.value.code == "QUEUE_CLOSED"
    _, _, kept = await enter(store, "p0")  # a live session is kept
    assert kept.status == "ACTIVE"

    await schedule(store, mode="fifo")
    await store.redis.delete(store.keys(CONCERT).active)
    await let_calm_pass(store)
    states = [(await enter(store, f"f{i}"))[2].status for i in range(4)]
    # calm: let in at once, up to k this interval; then the line forms
    assert states == ["ACTIVE", "ACTIVE", "WAITING", "WAITING"]
    assert (await tick(store)).admitted == 1  # the cap of 3 leaves room for one
    _, _, place = await enter(store, "f9")
    assert place.status == "WAITING"  # the line is not empty: no passing it
