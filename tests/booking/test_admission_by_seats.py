"""Nobody is let in while every seat on sale is sold or held: they keep
their place, and are let in when a hold ends unpaid. With
FRONTROW_ADMIT_WITHIN_SEATS a tick lets in no more than the free seats less
one for each live session."""

from __future__ import annotations

import asyncio
import datetime as dt

from frontrow.booking import holds
from frontrow.queue import core
from frontrow.schedulers import loops
from frontrow.store import Store
from tests.conftest import MakeStore, one_section_concert

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)
CONCERT = 7


async def two_seats(store: Store) -> None:
    await one_section_concert(store, CONCERT, DAY, rows=1, seats=2)


async def test_a_tick_with_no_seat_free_lets_nobody_in(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=10, admit_interval_s=0.05)
    await two_seats(store)
    for i in range(4):
        await core.enter(store, f"u{i}", CONCERT)
    assert (await core.admit(store, CONCERT, "a", free_seats=0)).admitted == 0
    await asyncio.sleep(0.06)
    # one seat free lets a batch in: any of them may buy it
    assert (await core.admit(store, CONCERT, "a", free_seats=1)).admitted == 4


async def test_the_admitter_waits_while_every_seat_is_held(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, admit_interval_s=0.05)
    await two_seats(store)
    concert = await store.catalog.get(CONCERT)
    assert concert is not None
    (schedule,) = concert.schedules
    assert await holds.free_seats(store, concert) == 2
    _, token, _ = await core.enter(store, "ann", CONCERT)
    assert (await core.admit(store, CONCERT, "a")).admitted == 1
    ann = store.tokens.verify_queue(token)
    held = [
        (await holds.hold(store, concert, schedule, seat, ann, "10.0.0.1"))[1] for seat in (1, 2)
    ]
    assert await holds.free_seats(store, concert) == 0
    _, token, _ = await core.enter(store, "bob", CONCERT)
    bob = store.tokens.verify_queue(token)

    async def bob_is(state: str, within_s: float) -> bool:
        for _ in range(int(within_s / 0.05)):
            if (await core.status(store, bob)).status == state:
                return True
            await asyncio.sleep(0.05)
        return False

    stop = asyncio.Event()
    task = asyncio.create_task(loops.admitter(store, stop, owner="adm"))
    try:
        assert not await bob_is("ACTIVE", 1.0)  # ~20 ticks: every seat is in ann's cart
        ref = holds.parse_hold_id(held[0].hold_id)
        assert ref is not None
        await holds.release(store, concert, ref, "ann")
        assert await holds.free_seats(store, concert) == 1
        assert await bob_is("ACTIVE", 3.0)
    finally:
        stop.set()
        await task


async def test_within_seats_a_tick_lets_in_no_more_than_the_free_seats_less_those_in(
    make_store: MakeStore,
) -> None:
    store = await make_store(admit_batch=10, admit_interval_s=0.05, admit_within_seats=True)
    await one_section_concert(store, CONCERT, DAY, rows=1, seats=2)
    for i in range(4):
        await core.enter(store, f"u{i}", CONCERT)
    assert (await core.admit(store, CONCERT, "a", free_seats=0)).admitted == 0
    await asyncio.sleep(0.06)
    # one seat free lets the first in line in, not the batch
    assert (await core.admit(store, CONCERT, "a", free_seats=1)).admitted == 1
    await asyncio.sleep(0.06)
    # three free, one of them as good as taken by the session let in: two more
    assert (await core.admit(store, CONCERT, "a", free_seats=3)).admitted == 2
    await asyncio.sleep(0.06)
    assert (await core.admit(store, CONCERT, "a", free_seats=3)).admitted == 0
    await asyncio.sleep(0.06)
    # not known (no date on sale): the batch and the cap alone decide
    assert (await core.admit(store, CONCERT, "a", free_seats=None)).admitted == 1


async def test_within_seats_the_admitter_waits_while_the_seats_left_are_no_more_than_those_in(
    make_store: MakeStore,
) -> None:
    store = await make_store(admit_batch=1, admit_interval_s=0.05, admit_within_seats=True)
    await one_section_concert(store, CONCERT, DAY, rows=1, seats=3)
    concert = await store.catalog.get(CONCERT)
    assert concert is not None
    (schedule,) = concert.schedules
    assert await holds.free_seats(store, concert) == 3
    _, token, _ = await core.enter(store, "ann", CONCERT)
    assert (await core.admit(store, CONCERT, "a")).admitted == 1
    ann = store.tokens.verify_queue(token)
    held = [
        (await holds.hold(store, concert, schedule, seat, ann, "10.0.0.1"))[1] for seat in (1, 2, 3)
    ]
    assert await holds.free_seats(store, concert) == 0
    _, token, _ = await core.enter(store, "bob", CONCERT)
    bob = store.tokens.verify_queue(token)

    async def bob_is(state: str, within_s: float) -> bool:
        for _ in range(int(within_s / 0.05)):
            if (await core.status(store, bob)).status == state:
                return True
            await asyncio.sleep(0.05)
        return False

    async def release(hold: holds.Hold) -> None:
        ref = holds.parse_hold_id(hold.hold_id)
        assert ref is not None
        await holds.release(store, concert, ref, "ann")

    stop = asyncio.Event()
    task = asyncio.create_task(loops.admitter(store, stop, owner="adm"))
    try:
        assert not await bob_is("ACTIVE", 1.0)  # ~20 ticks: every seat is in ann's cart
        await release(held[0])
        # one seat free, and ann is still in: she may take it
        assert await holds.free_seats(store, concert) == 1
        assert not await bob_is("ACTIVE", 0.5)
        await release(held[1])
        assert await bob_is("ACTIVE", 3.0)
    finally:
        stop.set()
        await task
