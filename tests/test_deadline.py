"""frontrow.deadline: asyncio.timeout's meaning at a fraction of its cost."""

from __future__ import annotations

import asyncio
import time

import pytest

from frontrow.deadline import TICK_S, deadline


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with deadline(0.1):
            await asyncio.sleep(5)
    assert 0.1 <= time.monotonic() - started < 2


async def test_a_block_in_time_ends_as_it_would_and_leaves_nothing_armed() -> None:
    with deadline(0.1):
        await asyncio.sleep(0.01)
    # no cancellation was left for the task to meet later
    await asyncio.sleep(0.2 + 2 * TICK_S)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    entered = asyncio.Event()

    async def waits() -> None:
        with deadline(10):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(waits())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_only_the_deadlines_that_passed_fire() -> None:
    """Deadlines of one length end in the order they began; the check stops
    at the first not due, and a shorter one inside a longer one fires alone."""
    outcomes: dict[str, str] = {}

    async def wait(name: str, seconds: float, sleep_s: float) -> None:
        try:
            with deadline(seconds):
                await asyncio.sleep(sleep_s)
            outcomes[name] = "done"
        except TimeoutError:
            outcomes[name] = "timed out"

    async def nested() -> None:
        with deadline(5):
            await wait("inner", 0.1, 5)
            await asyncio.sleep(0.01)
        outcomes["outer"] = "done"

    await asyncio.gather(
        wait("late", 0.2, 5),
        wait("in time", 0.2, 0.05),
        wait("long", 5, 0.3),
        nested(),
    )
    assert outcomes == {
        "late": "timed out",
        "in time": "done",
        "long": "done",
        "inner": "timed out",
        "outer": "done",
    }


async def test_the_first_of_a_length_ending_early_does_not_hide_the_next() -> None:
    """The first deadline of a length is left in time; the next, later, must
    still fire."""
    first_done = asyncio.Event()

    async def first() -> None:
        with deadline(0.3):
            await asyncio.sleep(0.05)
        first_done.set()

    async def second() -> str:
        await asyncio.sleep(0.01)
        try:
            with deadline(0.3):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "done"

    _, outcome = await asyncio.gather(first(), second())
    assert first_done.is_set() and outcome == "timed out"
