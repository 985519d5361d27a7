"""Nobody is let in while every seat on sale is sold or held: they keep
their place, and are let in when a hold ends unpaid. With
FRONTROW_ADMIT_WITHIN_SEATS a tick lets in no more than the free seats less
one for each live session."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

from frontrow.auth import QueueClaims
from frontrow.booking import holds
from frontrow.catalog import Concert
from frontrow.queue import core
from frontrow.schedulers import loops
from frontrow.store import Store
from tests.conftest import MakeStore, one_section_concert, release

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)
CONCERT = 7


async def four_waiting_for_two_seats(store: Store) -> None:
    await one_section_concert(store, CONCERT, DAY, rows=1, seats=2)
    for i in range(4):
        await core.enter(store, f"u{i}", CONCERT)
    assert (await core.admit(store, CONCERT, "a", free_seats=0)).admitted == 0
    await asyncio.sleep(0.06)


async def test_a_tick_with_no_seat_free_lets_nobody_in(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=10, admit_interval_s=0.05)
    await four_waiting_for_two_seats(store)
    # one seat free lets a batch in: any of them may buy it
    assert (await core.admit(store, CONCERT, "a", free_seats=1)).admitted == 4


async def test_within_seats_a_tick_lets_in_no_more_than_the_free_seats_less_those_in(
    make_store: MakeStore,
) -> None:
    store = await make_store(admit_batch=10, admit_interval_s=0.05, admit_within_seats=True)
    await four_waiting_for_two_seats(store)
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


Release = Callable[[holds.Hold], Awaitable[None]]
IsActive = Callable[[float], Awaitable[bool]]


@contextlib.asynccontextmanager
async def ann_holds_every_seat(
    store: Store, seats: int
) -> AsyncIterator[tuple[Concert, list[holds.Hold], Release, IsActive]]:
    """Ann in and holding every seat of the concert, Bob waiting behind
    her, the admitter ticking: (the concert, Ann's holds, a release of
    one of them, whether Bob is let in within some seconds)."""
    await one_section_concert(store, CONCERT, DAY, rows=1, seats=seats)
    concert = await store.catalog.get(CONCERT)
    assert concert is not None
    (schedule,) = concert.schedules
    assert await holds.free_seats(store, concert) == seats
    _, token, _ = await core.enter(store, "ann", CONCERT)
    assert (await core.admit(store, CONCERT, "a")).admitted == 1
    ann = store.tokens.verify_queue(token)
    held = [
        (await holds.hold(store, concert, schedule, seat, ann, "10.0.0.1"))[1]
        for seat in range(1, seats + 1)
    ]
    assert await holds.free_seats(store, concert) == 0
    _, token, _ = await core.enter(store, "bob", CONCERT)
    bob: QueueClaims = store.tokens.verify_queue(token)

    async def bob_is_let_in(within_s: float) -> bool:
        for _ in range(int(within_s / 0.05)):
            if (await core.status(store, bob)).status == "ACTIVE":
                return True
            await asyncio.sleep(0.05)
        return False

    async def release_anns(hold: holds.Hold) -> None:
        await release(store, concert, hold.hold_id, "ann")

    stop = asyncio.Event()
    task = asyncio.create_task(loops.admitter(store, stop, owner="adm"))
    try:
        yield concert, held, release_anns, bob_is_let_in
    finally:
        stop.set()
        await task


async def test_the_admitter_waits_while_every_seat_is_held(make_store: MakeStore) -> None:
    store = await make_store(admit_batch=1, admit_interval_s=0.05)
    async with ann_holds_every_seat(store, 2) as (concert, held, release, bob_is_let_in):
        assert not await bob_is_let_in(1.0)  # ~20 ticks: every seat is in ann's cart
        await release(held[0])
        assert await holds.free_seats(store, concert) == 1
        assert await bob_is_let_in(3.0)


async def test_within_seats_the_admitter_waits_while_the_seats_left_are_no_more_than_those_in(
    make_store: MakeStore,
) -> None:
    store = await make_store(admit_batch=1, admit_interval_s=0.05, admit_within_seats=True)
    async with ann_holds_every_seat(store, 3) as (concert, held, release, bob_is_let_in):
        assert not await bob_is_let_in(1.0)  # ~20 ticks: every seat is in ann's cart
        await release(held[0])
        # one seat free, and ann is still in: she may take it
        assert await holds.free_seats(store, concert) == 1
        assert not await bob_is_let_in(0.5)
        await release(held[1])
        assert await bob_is_let_in(3.0)
