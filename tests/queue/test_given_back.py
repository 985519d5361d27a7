"""A Redis that comes back empty loses no place (#24.1): each queue token
carries its place's score and the state of Redis it came from, and a poll
gives a lost place back, so the line rebuilds in its first order as people
return and an admitted buyer keeps a session."""

from __future__ import annotations

import random

from frontrow import catalog, rules
from frontrow.queue import core
from frontrow.store import Store
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, app_client, bearer, keep_the_line

CONCERT = 1


async def lose_everything(store: Store) -> None:
    """Redis restarts with nothing; the tests' own pass-through budget is set again."""
    await store.redis.flushdb()
    await keep_the_line(store.redis, store.settings)


async def poll(store: Store, token: str) -> core.Place:
    return await core.status(store, store.tokens.verify_queue(token))


async def settle(store: Store) -> None:
    """The people in line are back: admission may go on (rules.RESTORE_CALM_MS)."""
    await store.redis.hdel(store.keys(CONCERT).cfg, "calm_until_ms")


async def test_the_line_comes_back_in_its_order_and_the_admitted_keep_a_session(
    make_store: MakeStore,
) -> None:
    store = await make_store(admit_batch=10)
    await catalog.seed_demo(store.db)
    tokens = [(await core.enter(store, f"u{i}", CONCERT))[1] for i in range(40)]
    await store.redis.delete(store.keys(CONCERT).tick)
    tick = await core.admit(store, CONCERT, "t")
    assert tick.admitted == 10
    await rules.keep_frontier(store, CONCERT, tick.frontier)  # as the admitter loop does

    await lose_everything(store)
    # someone re-enters before their old token asks: a new place, at the back
    _, again, place = await core.enter(store, "u25", CONCERT)
    assert place.status == "WAITING" and place.rank == 1
    order = list(range(40))
    random.shuffle(order)
    places = {i: await poll(store, tokens[i]) for i in order}

    assert [i for i in range(40) if places[i].status == "ACTIVE"] == list(range(10))
    assert all(places[i].status == "WAITING" for i in range(10, 40))
    ranks = [(await poll(store, tokens[i])).rank for i in range(10, 40)]
    assert ranks == list(range(1, 31))  # the first order, whoever asked first
    assert (await poll(store, again)).status == "EXPIRED"  # u25's better place won
    k = store.keys(CONCERT)
    assert await store.redis.hget(k.users, "u25") == store.tokens.verify_queue(tokens[25]).token_id

    # admission waits for the people in line to come back, then goes on in order
    await store.redis.delete(k.tick)
    assert (await core.admit(store, CONCERT, "t")).admitted == 0
    await settle(store)
    await store.redis.delete(k.tick)
    assert (await core.admit(store, CONCERT, "t")).admitted == 10
    assert [(await poll(store, tokens[i])).status for i in range(10, 21)] == ["ACTIVE"] * 10 + [
        "WAITING"
    ]


async def test_a_place_is_given_back_once(make_store: MakeStore) -> None:
    store = await make_store()
    await catalog.seed_demo(store.db)
    _, token, _ = await core.enter(store, "ann", CONCERT)
    await lose_everything(store)
    assert (await poll(store, token)).status == "WAITING"
    claims = store.tokens.verify_queue(token)
    await core.leave(store, claims)  # what ends a given-back place stands
    assert (await poll(store, token)).status == "EXPIRED"


async def test_a_token_of_this_redis_whose_place_ended_is_not_given_back(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    await catalog.seed_demo(store.db)
    _, token, _ = await core.enter(store, "ann", CONCERT)
    await core.leave(store, store.tokens.verify_queue(token))
    assert (await poll(store, token)).status == "EXPIRED"
    # a token with nothing to say for itself (made before tokens carried a place)
    bare = store.tokens.queue_token("bob", CONCERT, "t_bare")
    await lose_everything(store)
    assert (await poll(store, bare)).status == "EXPIRED"


async def test_without_an_admission_on_record_nobody_is_given_a_session(
    make_store: MakeStore,
) -> None:
    # the admitter never recorded how far admission came: a place comes back
    # waiting at the front instead (it scores before everyone else)
    store = await make_store(admit_batch=1)
    await catalog.seed_demo(store.db)
    tokens = [(await core.enter(store, f"u{i}", CONCERT))[1] for i in range(3)]
    await store.redis.delete(store.keys(CONCERT).tick)
    assert (await core.admit(store, CONCERT, "t")).admitted == 1
    await lose_everything(store)
    back = [await poll(store, t) for t in reversed(tokens)]
    assert [p.status for p in back] == ["WAITING"] * 3
    assert [(await poll(store, t)).rank for t in tokens] == [1, 2, 3]


async def test_a_buyer_books_on_at_once_with_a_session_given_back(make_store: MakeStore) -> None:
    # no poll first: the hold's own session check asks for the session back
    store = await make_store()
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        await rules.keep_frontier(store, CONCERT, await frontier_of(store))
        assert (await client.post(seats_url(3), headers=bearer(ann))).status_code == 201
        await lose_everything(store)
        assert (await client.get("/holds", headers=bearer(ann))).json()["holds"] == []
        held = await client.post(seats_url(4), headers=bearer(ann))
        assert held.status_code == 201, held.text
        assert (await poll(store, ann)).status == "ACTIVE"


async def frontier_of(store: Store) -> int:
    return int(await store.redis.hget(store.keys(CONCERT).stats, "admitted_upto"))
