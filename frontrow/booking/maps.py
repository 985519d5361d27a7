"""Seat maps and section counts, rendered once for everyone who asks at once.

A stadium date is 50,000 seats: rendered seat by seat it cost ~100 ms of CPU
a request, so one buyer asking in a loop stalled everyone's poll (#22.2).
Four things bound it, none of them stale: a row's JSON is kept per status
string (a row changes only when one of its seats does, so a busy date reuses
almost every row); a map whose seats did not change since it was last made
is the same bytes, gzipped once (not once a request: ~40 ms for a 5 MB
date); requests for the same map while one is being read and rendered share
that one (http.shared); and a user has one map read at a time per process, however many
connections they open. The user's reads are counted too (routes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import orjson

from frontrow.booking import holds
from frontrow.catalog import Concert, Run, Schedule, Section
from frontrow.http import Rendered
from frontrow.store import Store

STATUS = {"A": "AVAILABLE", "H": "HELD", "S": "SOLD"}
FRAGMENTS_KEPT = 20_000  # ~2.5 KB each: a few states of every row of a few stadiums
BODIES_KEPT = 64  # the last body of each map asked lately, whole

_fragments: dict[tuple[int, str], tuple[Run, bytes]] = {}
_row_heads: dict[int, tuple[Run, bytes]] = {}
_bodies: dict[tuple[int, int, str], tuple[tuple[Run, ...], holds.SeatMap, Rendered]] = {}
_readers: dict[str, tuple[asyncio.Lock, list[int]]] = {}


@contextlib.asynccontextmanager
async def one_at_a_time(user_id: str) -> AsyncIterator[None]:
    """A user's map reads in this process, one after another."""
    lock, users = _readers.setdefault(user_id, (asyncio.Lock(), [0]))
    users[0] += 1
    try:
        async with lock:
            yield
    finally:
        users[0] -= 1
        if users[0] == 0:
            del _readers[user_id]


def _price_runs(prices: tuple[int, ...]) -> list[list[int]]:
    """[[count, price], ...]: a row's prices, run-length encoded."""
    out: list[list[int]] = []
    for price in prices:
        if out and out[-1][1] == price:
            out[-1][0] += 1
        else:
            out.append([1, price])
    return out


def _keep(cache: dict, key: object, value: tuple[Run, bytes]) -> bytes:  # type: ignore[type-arg]
    if len(cache) > FRAGMENTS_KEPT:  # old catalog versions' rows, long-gone states
        cache.clear()
    cache[key] = value
    return value[1]


def _seats_of(run: Run, letters: str) -> bytes:
    """The run's seat objects, comma-separated, for these statuses."""
    hit = _fragments.get((id(run), letters))
    if hit is not None and hit[0] is run:
        return hit[1]
    prefix = f"{run.section}-{run.row}-"
    seats = [
        {
            "seat_no": run.first + i,
            "price": price,
            "status": STATUS[letters[i]],
            "section": run.section,
            "row": run.row,
            "label": prefix + str(run.number + i),
        }
        for i, price in enumerate(run.prices)
    ]
    return _keep(_fragments, (id(run), letters), (run, orjson.dumps(seats)[1:-1]))


def _row_of(run: Run, letters: str) -> bytes:
    """The run as one row object: its seat range, prices run-length encoded
    and one status letter a seat (a stadium's date in ~100 KB)."""
    hit = _row_heads.get(id(run))
    if hit is None or hit[0] is not run:
        head = {
            "section": run.section,
            "row": run.row,
            "seat_no": run.first,
            "number": run.number,
            "prices": _price_runs(run.prices),
        }
        hit = (run, orjson.dumps(head)[:-1] + b',"status":"')
        _keep(_row_heads, id(run), hit)
    return hit[1] + letters.encode() + b'"}'


def _span(runs: tuple[Run, ...]) -> tuple[int, int]:
    return (runs[0].first, runs[-1].first + runs[-1].count - 1) if runs else (0, 0)


async def seat_map(
    store: Store, concert: Concert, schedule: Schedule, section: Section | None, form: str
) -> Rendered:
    """GET .../seats: the seats of a date (or of one section), as of now."""
    runs = section.runs if section is not None else schedule.venue.runs
    state = await holds.seat_map(store, concert, schedule, *_span(runs))
    key = (schedule.id, id(runs), form)
    last = _bodies.get(key)
    if last is not None and last[0] is runs and last[1] == state:
        return last[2]  # nothing changed since: the same bytes (5 MB for a stadium's date)
    parts = [orjson.dumps({"concert_id": concert.id, "date": schedule.date.isoformat()})[:-1]]
    if form == "rows":
        name = orjson.dumps(section.name if section is not None else None)
        parts += [b',"section":', name, b',"rows":[']
        parts += _commas(_row_of(run, state.statuses(run.first, run.count)) for run in runs)
    else:
        parts.append(b',"seats":[')
        parts += _commas(_seats_of(run, state.statuses(run.first, run.count)) for run in runs)
    parts.append(b"]}")
    rendered = Rendered(b"".join(parts))  # one copy of the body, not one per piece added
    if len(_bodies) > BODIES_KEPT:
        _bodies.clear()
    _bodies[key] = (runs, state, rendered)
    return rendered


def _commas(items: Iterator[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for item in items:
        out += (item, b",")
    return out[:-1]


async def sections(store: Store, concert: Concert, schedule: Schedule) -> Rendered:
    """GET .../sections: each section's size, prices and seats available now,
    from counts kept in Redis (no seat is read: holds.section_counts)."""
    venue = schedule.venue
    counts = await holds.section_counts(store, concert, schedule)
    body = orjson.dumps(
        {
            "concert_id": concert.id,
            "date": schedule.date.isoformat(),
            "sections": [
                {
                    "name": section.name,
                    "rows": section.rows,
                    "total_seats": section.total,
                    "available_seats": max(0, section.total - sold - held),
                    "min_price": section.min_price,
                    "max_price": section.max_price,
                    "at": section.at,
                }
                for section, (sold, held) in zip(venue.sections, counts, strict=True)
            ],
        }
    )
    return Rendered(body)
