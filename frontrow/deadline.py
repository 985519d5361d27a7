"""Deadlines for what every request waits on, kept by one timer a loop.

`async with asyncio.timeout(s)` costs ~28k instructions a use on uvloop
(its state machine in Python, and a timer of the loop's armed and
cancelled), and a request took one for each Redis reply it read (redis-py's
socket timeout) and one for its body: ~6 % of an order's instructions in
the app (`python -m bench.orderpath --instructions`). Here a deadline is an
entry in an ordered dict, and one timer a loop, armed while any deadline is
open, cancels the tasks whose deadlines have passed: TimeoutError in the
block, at most TICK_S after its deadline. Deadlines of one length end in the
order they began, so a check reads each length's entries only up to the
first that is not due.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from weakref import WeakKeyDictionary

TICK_S = 0.05


class deadline:  # lower case, as asyncio.timeout: `with deadline(2.0):`
    """`with deadline(seconds):` in a task: TimeoutError when the block has
    not ended by then (as asyncio.timeout; a cancellation from elsewhere
    stays a cancellation)."""

    __slots__ = ("_cancelling", "_ends", "_fired", "_open", "_task", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline is kept for a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._fired = False
        self._ends = loop.time() + self.seconds
        watch = _watches.get(loop)
        if watch is None:
            watch = _watches[loop] = _Watch(loop)
        self._open = watch.open(self.seconds)
        self._open[self] = None
        watch.arm()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._open.pop(self, None)
        if self._fired and self._task.uncancel() <= self._cancelling:
            if kind is asyncio.CancelledError:
                raise TimeoutError from error

    def _expire(self) -> None:
        self._fired = True
        self._task.cancel()


class _Watch:
    """A loop's open deadlines, by length, and the timer that checks them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lengths: dict[float, dict[deadline, None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def open(self, seconds: float) -> dict[deadline, None]:
        entries = self._lengths.get(seconds)
        if entries is None:
            entries = self._lengths[seconds] = {}
        return entries

    def arm(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(TICK_S, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time()
        waiting = False
        for entries in self._lengths.values():
            while entries:
                first = next(iter(entries))
                if first._ends > now:
                    waiting = True
                    break
                del entries[first]
                first._expire()
        if waiting:
            self.arm()


_watches: WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = WeakKeyDictionary()
