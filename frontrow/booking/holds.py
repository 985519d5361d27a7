"""Seat state in Redis: holds, the sold copy, and its rebuild from the database."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import select, update

from frontrow import metrics, ratelimit, rules
from frontrow.auth import QueueClaims
from frontrow.catalog import Concert, Run, Schedule, Section, Venue
from frontrow.errors import Problem, conflict, forbidden, not_found, unauthenticated
from frontrow.http import shared
from frontrow.keys import concert_keys
from frontrow.metrics import HOLDS
from frontrow.queue.core import iso_ms, ms, require_active
from frontrow.sale import iso_of_ms
from frontrow.schema import reservations, schedules
from frontrow.store import Store, database_call

HOLD_ID = re.compile(r"h_([0-9]{1,15})\.([0-9]{1,15})\.([0-9]{1,9})\.[A-Za-z0-9_-]{16}")


@dataclass(frozen=True, slots=True)
class HoldRef:
    """What a hold id names; the id itself carries it, so no lookup is needed."""

    hold_id: str
    concert_id: int
    schedule_id: int
    seat_no: int


def new_hold_id(concert_id: int, schedule_id: int, seat_no: int) -> str:
    return f"h_{concert_id}.{schedule_id}.{seat_no}.{secrets.token_urlsafe(12)}"


def parse_hold_id(hold_id: str) -> HoldRef | None:
    match = HOLD_ID.fullmatch(hold_id)
    if match is None:
        return None
    concert_id, schedule_id, seat_no = (int(g) for g in match.groups())
    return HoldRef(hold_id, concert_id, schedule_id, seat_no)


async def load_sold(store: Store, concert: Concert, schedule: Schedule) -> int:
    """Rebuild one date's sold copy in Redis from the reservations in the
    database; returns how many of its seats are sold. Concurrent calls for
    one date share one load: after a Redis loss every hold of a busy date
    finds the copy missing at once, and a thousand identical queries would
    drain the database pool for nothing."""
    return await shared(
        ("sold", id(store), schedule.id),
        lambda: database_call(store, lambda: _load_sold(store, concert, schedule)),
    )


async def _load_sold(store: Store, concert: Concert, schedule: Schedule) -> int:
    async with store.db.connect() as conn:
        sold = (
            (
                await conn.execute(
                    select(reservations.c.seat_no).where(reservations.c.schedule_id == schedule.id)
                )
            )
            .scalars()
            .all()
        )
    return int(
        await store.scripts.load_sold(keys=[store.keys(concert.id).sold(schedule.id)], args=sold)
    )


async def refresh_sold_out(store: Store, concert: Concert) -> bool:
    """Derive the concert's sold-out flag (which stops admission) from the sold copies."""
    k = store.keys(concert.id)
    dates = concert.upcoming()
    flag = await store.scripts.sold_out(
        keys=[k.stats, *(k.sold(s.id) for s in dates)], args=[len(s.prices) for s in dates]
    )
    return bool(flag)


async def mark_sold_out(store: Store, concert: Concert, full: list[Schedule]) -> None:
    """Dates found full in Redis: flag them in the database (once a date, not
    on every sale, so no row is a lock every payment of a date queues on) and
    derive the concert's flag."""
    if full:
        async with store.db.begin() as conn:
            await conn.execute(
                update(schedules)
                .where(schedules.c.id.in_([s.id for s in full]), ~schedules.c.sold_out)
                .values(sold_out=True, seats_left=0)
            )
    await refresh_sold_out(store, concert)


async def rebuild_all(store: Store) -> None:
    """Load every upcoming date's sold copy (start-up and periodic repair)."""
    for concert in (await store.catalog.concerts()).values():
        full = []
        for schedule in concert.upcoming():
            if await load_sold(store, concert, schedule) >= len(schedule.prices):
                full.append(schedule)
        await mark_sold_out(store, concert, full)


SOLD_OR_FREE = str.maketrans("01", "AS")


@dataclass(frozen=True, slots=True)
class SeatMap:
    """The state of a span of a date's seats: A(vailable), H(eld) or S(old)."""

    base: int  # the seat number of bits[0]
    bits: str  # '1' = sold, one character per seat
    held: tuple[int, ...]  # sorted: a row finds its own by bisection

    def statuses(self, first: int, count: int) -> str:
        """One letter per seat for seats first .. first + count - 1."""
        i = first - self.base
        letters = self.bits[i : i + count].ljust(count, "0").translate(SOLD_OR_FREE)
        lo = bisect.bisect_left(self.held, first)
        hi = bisect.bisect_left(self.held, first + count, lo)
        if lo == hi:
            return letters
        held = [n - first for n in self.held[lo:hi]]
        chars = list(letters)
        for j in held:
            if chars[j] == "A":
                chars[j] = "H"
        return "".join(chars)


def holds_key(store: Store, schedule: Schedule, seat_no: int) -> str:
    """The held seats of the seat's section of its date (keys.holds)."""
    return store.keys(schedule.concert_id).holds(schedule.id, schedule.venue.section_of(seat_no))


def _section_names(venue: Venue, first: int = 0, last: int = 2**62) -> list[str]:
    """The sections whose seats lie in first .. last (GA for a venue of none)."""
    names = [s.name for s in venue.sections if s.first <= last and s.last >= first]
    return names or ["GA"]


async def _loaded(
    store: Store, concert: Concert, dates: list[Schedule], call: Callable[[], Awaitable[Any]]
) -> list[Any]:
    """A reply per date of a script that reads the sold copies (its first
    field is 0 for a copy that is not loaded); missing ones are loaded from
    the database and the script asked again (two calls after a Redis loss)."""
    for _ in range(2):
        rows = await call()
        missing = [s for s, row in zip(dates, rows, strict=True) if not row[0]]
        if not missing:
            break
        for schedule in missing:
            await load_sold(store, concert, schedule)
    return list(rows)


@functools.lru_cache(maxsize=1024)
def _count_call(
    prefix: str, concert_id: int, groups: tuple[tuple[int, tuple[str, ...], int, int], ...]
) -> tuple[list[str], list[int]]:
    """counts.lua's keys and arguments for groups of (schedule id, section
    names, first, last): the same for every request of the same dates."""
    k = concert_keys(prefix, concert_id)
    keys: list[str] = []
    args: list[int] = []
    for schedule_id, names, first, last in groups:
        keys += [k.sold(schedule_id), *(k.holds(schedule_id, name) for name in names)]
        args += [len(names), first, last]
    return keys, args


async def _counts(
    store: Store, concert: Concert, groups: list[tuple[Schedule, tuple[str, ...], int, int]]
) -> list[tuple[int, int]]:
    """(sold, held) of each group: a date (first = last = 0) or a span of one
    with its sections (counts.lua: O(groups + sections), no seat read).
    Callers asking for the same groups at once share one call."""
    shape = tuple((s.id, names, first, last) for s, names, first, last in groups)
    keys, args = _count_call(store.settings.key_prefix, concert.id, shape)

    async def read() -> list[tuple[int, int]]:
        rows = await _loaded(
            store,
            concert,
            [schedule for schedule, *_ in groups],
            lambda: store.scripts.counts(keys=keys, args=args),
        )
        return [(int(sold), int(held)) for _, sold, held in rows]

    return await shared(("counts", id(store), concert.id, shape), read)


async def seat_counts(
    store: Store, concert: Concert, dates: list[Schedule]
) -> list[tuple[int, int]]:
    """(sold, held) of each date."""
    return await _counts(store, concert, [(s, tuple(_section_names(s.venue)), 0, 0) for s in dates])


async def free_seats(store: Store, concert: Concert) -> int | None:
    """Seats of the dates on sale that are neither sold nor held (None with
    no date on sale: whether that concert admits is sold_out.lua's to say)."""
    dates = concert.upcoming()
    if not dates:
        return None
    counts = await seat_counts(store, concert, dates)
    return sum(len(s.prices) - sold - held for s, (sold, held) in zip(dates, counts, strict=True))


async def section_counts(
    store: Store, concert: Concert, schedule: Schedule
) -> list[tuple[int, int]]:
    """(sold, held) of each section of a date, in the venue's order."""
    groups: list[tuple[Schedule, tuple[str, ...], int, int]] = [
        (schedule, (s.name,), s.first, s.last) for s in schedule.venue.sections
    ]
    return await _counts(store, concert, groups)


async def seat_map(
    store: Store, concert: Concert, schedule: Schedule, first: int, last: int
) -> SeatMap:
    """The state of seats first .. last of a date: the bitmap bytes of that
    span and the holds of its sections only, so a section of a stadium costs
    what the section weighs."""
    lo, hi = first // 8, last // 8
    k = store.keys(concert.id)
    names = _section_names(schedule.venue, first, last)
    keys = [k.sold(schedule.id), *(k.holds(schedule.id, name) for name in names)]
    ((_, sold, held),) = await _loaded(
        store,
        concert,
        [schedule],
        lambda: _one(store.scripts.seats(keys=keys, args=[lo, hi])),
    )
    bits = bin(int(sold, 16))[2:].zfill(len(sold) * 4) if sold else ""
    return SeatMap(lo * 8, bits, tuple(sorted(int(n) for n in held)))


async def _one(reply: Awaitable[Any]) -> list[Any]:
    return [await reply]


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    concert_id: int
    date: dt.date
    seat_no: int
    price: int
    expires_at_ms: int
    place: dict[str, str]  # section, row, label

    def as_dict(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "concert_id": self.concert_id,
            "date": self.date.isoformat(),
            "seat_no": self.seat_no,
            **self.place,
            "price": self.price,
            "expires_at": iso_ms(self.expires_at_ms),
        }


def _gate(store: Store, claims: QueueClaims, address: str) -> tuple[list[str], list[Any]]:
    """The keys and arguments with which a hold script checks the token's
    session and counts the attempt against the rate limits itself, so a hold
    is one Redis call (_lib.lua: live_session, count_attempt)."""
    s = store.settings
    k = store.keys(claims.concert_id)
    (user_key, per_user), (address_key, per_address) = ratelimit.counters(
        store, claims.concert_id, "hold", claims.user_id, address
    )
    return (
        [k.active, k.cap, k.users, user_key, address_key],
        [claims.token_id, ms(s.session_ttl_s), ms(s.rate_window_s), per_user, per_address],
    )


def sale_not_open(opens_ms: int) -> Problem:
    opens_at = iso_of_ms(opens_ms)
    return Problem(
        409, "SALE_NOT_OPEN", f"the sale opens at {opens_at}", extra={"opens_at": opens_at}
    )


def ticket_limit(limit: int, bought: int) -> Problem:
    return Problem(
        409,
        "TICKET_LIMIT",
        f"one buyer gets at most {limit} seats of this concert, bought and held; {bought} bought",
        extra={"limit": limit, "bought": bought},
    )


async def gated(
    store: Store,
    concert: Concert,
    claims: QueueClaims,
    run: Callable[[], Awaitable[Any]],
    schedule: Schedule | None = None,
) -> Any:
    """Run a script that checks the token's session itself (hold, best
    available, a payment's claim) and return its reply. A sold copy it finds
    missing is loaded and the script asked again; a session it finds not live
    is asked of the poll's status once: that says which state it is (401), or
    gives back a session Redis lost (status.lua), and the script runs again."""
    asked = False
    for _ in range(3):
        reply = await run()
        if reply[0] == "RELOAD" and schedule is not None:
            await load_sold(store, concert, schedule)
        elif reply[0] == "NOT_ACTIVE" and not asked:
            await require_active(store, claims, claims.concert_id)
            asked = True
        else:
            break
    if reply[0] == "NOT_ACTIVE":
        raise unauthenticated("the queue token is not ACTIVE", code="TOKEN_EXPIRED")
    return reply


def _refused(outcome: str, ms_: int) -> None:
    """Raise what a hold script's refusal of the caller means, if it is one;
    `ms_` is the ms to wait (RATE) or the opening (SALE_NOT_OPEN)."""
    if outcome == "SALE_NOT_OPEN":
        raise sale_not_open(ms_)
    if outcome == "RATE":
        raise ratelimit.too_many("hold", ms_)


async def hold(
    store: Store,
    concert: Concert,
    schedule: Schedule,
    seat_no: int,
    claims: QueueClaims,
    address: str,
) -> tuple[bool, Hold]:
    """Hold a seat for the token's user; returns (new, hold). Re-holding your
    seat is not new. The session check and rate limits are in the same call."""
    price = schedule.prices.get(seat_no)
    if price is None:
        raise not_found(f"no seat {seat_no} on {schedule.date.isoformat()}")
    s = store.settings
    k = store.keys(concert.id)
    user_id = claims.user_id
    gate_keys, gate_args = _gate(store, claims, address)
    outcome, hold_id, expires = await gated(
        store,
        concert,
        claims,
        lambda: rules.call(
            store,
            concert.id,
            store.scripts.hold,
            keys=[
                k.hold(schedule.id, seat_no),
                holds_key(store, schedule, seat_no),
                k.uholds(user_id),
                k.sold(schedule.id),
                *gate_keys,
                k.stats,
                k.cfg,
                k.bought,
                k.claims(user_id),
                k.held(schedule.id),
            ],
            args=[
                seat_no,
                new_hold_id(concert.id, schedule.id, seat_no),
                user_id,
                ms(s.hold_ttl_s),
                s.max_holds_per_user,
                *gate_args,
                s.max_tickets_per_user,
            ],
        ),
        schedule,
    )
    _refused(outcome, expires)
    HOLDS.labels(str(concert.id), outcome.lower()).inc()
    if outcome in ("SOLD", "TAKEN", "RELOAD"):
        raise conflict("SEAT_UNAVAILABLE", f"seat {seat_no} is already held or sold")
    if outcome == "COOLING":
        raise conflict(
            "SEAT_UNAVAILABLE",
            f"you held seat {seat_no} for a whole hold lifetime already; it is left to others"
            f" for the next {s.hold_ttl_s} s",
        )
    if outcome == "TICKET_LIMIT":
        raise ticket_limit(s.max_tickets_per_user, expires)
    if outcome == "LIMIT":
        raise conflict(
            "HOLD_LIMIT", f"you already hold {s.max_holds_per_user} seats of this concert"
        )
    return outcome == "HELD", Hold(
        hold_id, concert.id, schedule.date, seat_no, price, expires, schedule.venue.place(seat_no)
    )


async def live_refs(store: Store, concert_id: int, user_id: str) -> list[tuple[HoldRef, int]]:
    """The user's live holds in the concert with their expiry (ms), one read."""
    now_ms = int(time.time() * 1000)
    entries = await store.redis.zrangebyscore(
        store.keys(concert_id).uholds(user_id), f"({now_ms}", "+inf", withscores=True
    )
    return [
        (ref, int(expires))
        for ref, expires in ((parse_hold_id(hold_id), expires) for hold_id, expires in entries)
        if ref is not None
    ]


async def mine(store: Store, concert: Concert, user_id: str) -> list[Hold]:
    """The user's live holds, whichever tab took them, by date and seat."""
    dates = {s.id: s for s in concert.schedules}
    found = []
    for ref, expires in await live_refs(store, concert.id, user_id):
        schedule = dates.get(ref.schedule_id)
        price = schedule.prices.get(ref.seat_no) if schedule else None
        if schedule is not None and price is not None:
            place = schedule.venue.place(ref.seat_no)
            found.append(
                Hold(ref.hold_id, concert.id, schedule.date, ref.seat_no, price, expires, place)
            )
    return sorted(found, key=lambda h: (h.date, h.seat_no))


_best_rows: dict[tuple[int, tuple[str, ...], int | None], tuple[Venue, tuple[str, str]]] = {}
_price_levels: dict[tuple[int, tuple[str, ...]], tuple[Venue, list[int]]] = {}


def _cap(
    venue: Venue, sections: list[Section], names: tuple[str, ...], max_price: int
) -> int | None:
    """max_price as the dearest price these sections have at or under it (None:
    no cap bites, -1: nothing fits): any cap a client sends lands on one of a
    few rows lists, so a new max_price on every request builds nothing."""
    cached = _price_levels.get((id(venue), names))
    if cached is None or cached[0] is not venue:
        levels = sorted({p for section in sections for run in section.runs for p in run.prices})
        cached = _price_levels[(id(venue), names)] = (venue, levels)
    levels = cached[1]
    if not levels or max_price >= levels[-1]:
        return None
    at = bisect.bisect_right(levels, max_price)
    return levels[at - 1] if at else -1


def _rows_for_best(venue: Venue, sections: list[Section], max_price: int | None) -> tuple[str, str]:
    """best.lua's rows, best first, as one string of 'section,rank,first,count,
    centre2;' groups for the seats of these sections at or under max_price
    (section: the section's place in the venue, from 1), and its id (a
    digest: best.lua keeps where its walks of these rows start). One string,
    not thousands of arguments (packing those was a seventh of a worker's CPU
    in a rush), built once per venue and price level: the venue never changes."""
    names = tuple(s.name for s in sections)
    if max_price is not None:
        max_price = _cap(venue, sections, names, max_price)
    key = (id(venue), names, max_price)
    cached = _best_rows.get(key)
    if cached is not None and cached[0] is venue:
        return cached[1]
    groups: list[str] = []
    rows: dict[tuple[int, str], list[Run]] = {}
    places = {section.name: place for place, section in enumerate(venue.sections, 1)}
    for section in sections:
        place = places[section.name]
        for run in section.runs:
            rows.setdefault((place, run.row), []).append(run)
    for rank, ((place, _), runs) in enumerate(rows.items()):
        centre2 = runs[0].first + runs[-1].first + runs[-1].count - 1
        for run in runs:
            start = None  # split the run where a seat costs more than the cap
            for i, price in enumerate((*run.prices, None)):
                fits = price is not None and (max_price is None or price <= max_price)
                if fits and start is None:
                    start = i
                elif not fits and start is not None:
                    groups.append(f"{place},{rank},{run.first + start},{i - start},{centre2};")
                    start = None
    if len(_best_rows) > 1024:  # old catalog versions' venues
        _best_rows.clear()
        _price_levels.clear()
    packed = "".join(groups)
    digest = hashlib.blake2b(packed.encode(), digest_size=8).hexdigest()
    _best_rows[key] = (venue, (packed, digest))
    return packed, digest


async def best_available(
    store: Store,
    concert: Concert,
    schedule: Schedule,
    claims: QueueClaims,
    address: str,
    count: int,
    section: str | None,
    max_price: int | None,
) -> list[Hold]:
    """Hold `count` adjacent seats of one row for the token's user, the best
    block first, all or none; the session check and rate limits are in the
    same call."""
    venue = schedule.venue
    sections = list(venue.sections)
    if section is not None:
        chosen = venue.section(section)
        if chosen is None:
            raise not_found(f"no section {section!r} on {schedule.date.isoformat()}")
        sections = [chosen]
    s = store.settings
    k = store.keys(concert.id)
    rows, rows_id = _rows_for_best(venue, sections, max_price)
    user_id = claims.user_id
    gate_keys, gate_args = _gate(store, claims, address)
    outcome = await gated(
        store,
        concert,
        claims,
        lambda: rules.call(
            store,
            concert.id,
            store.scripts.best,
            keys=[
                k.sold(schedule.id),
                k.uholds(user_id),
                *gate_keys,
                k.stats,
                k.cfg,
                k.bought,
                k.claims(user_id),
                k.best_skip(schedule.id),
                k.held(schedule.id),
                k.taken(schedule.id),
                # every section's: a rebuild of the held bitmap reads them all
                *(k.holds(schedule.id, section.name) for section in venue.sections),
            ],
            args=[
                count,
                user_id,
                ms(s.hold_ttl_s),
                s.max_holds_per_user,
                k.hold_prefix(schedule.id),
                f"h_{concert.id}.{schedule.id}.",
                rows,
                *gate_args,
                s.max_tickets_per_user,
                rows_id,
                *(secrets.token_urlsafe(12) for _ in range(count)),
            ],
        ),
        schedule,
    )
    refusal = outcome[0] in ("RATE", "SALE_NOT_OPEN")
    _refused(outcome[0], int(outcome[1]) if refusal else 0)
    if outcome[0] == "TICKET_LIMIT":
        HOLDS.labels(str(concert.id), "ticket_limit").inc()
        raise ticket_limit(s.max_tickets_per_user, int(outcome[1]))
    if outcome[0] == "LIMIT":
        HOLDS.labels(str(concert.id), "limit").inc()
        raise conflict(
            "HOLD_LIMIT", f"{count} more seats would pass {s.max_holds_per_user} for one person"
        )
    if outcome[0] != "HELD":
        HOLDS.labels(str(concert.id), "taken").inc()
        raise conflict("SEAT_UNAVAILABLE", f"no {count} adjacent seats are free in one row now")
    HOLDS.labels(str(concert.id), "held").inc(count)
    expires = int(outcome[1])
    pairs = outcome[2:]
    return [
        Hold(
            hold_id,
            concert.id,
            schedule.date,
            int(seat_no),
            schedule.prices[int(seat_no)],
            expires,
            venue.place(int(seat_no)),
        )
        for seat_no, hold_id in zip(pairs[::2], pairs[1::2], strict=True)
    ]


def hold_keys(store: Store, concert: Concert, ref: HoldRef) -> tuple[str, str]:
    """The seat lock of a hold named by its id, and its section's held seats."""
    schedule = next((s for s in concert.schedules if s.id == ref.schedule_id), None)
    section = schedule.venue.section_of(ref.seat_no) if schedule is not None else "GA"
    k = store.keys(ref.concert_id)
    return k.hold(ref.schedule_id, ref.seat_no), k.holds(ref.schedule_id, section)


async def release(store: Store, concert: Concert, ref: HoldRef, user_id: str) -> None:
    k = store.keys(ref.concert_id)
    outcome = await store.scripts.release(
        keys=[*hold_keys(store, concert, ref), k.uholds(user_id), k.stats],
        args=[ref.seat_no, ref.hold_id, user_id],
    )
    if outcome == "NOT_YOURS":
        raise forbidden("this hold belongs to another user")
    if outcome == "GONE":
        raise not_found("no such hold (it may have expired or been paid)")


@metrics.live
async def seat_families(store: Store, concerts: list[Concert]) -> list[Metric]:
    """Sold and held seats of every upcoming date, read from Redis at scrape time."""
    sold = metrics.concert_gauge("frontrow_seats_sold", "Seats sold on upcoming dates")
    held = metrics.concert_gauge("frontrow_seats_held", "Seats held right now on upcoming dates")
    left = GaugeMetricFamily(
        "frontrow_seats_left", "Seats not sold of each upcoming date", labels=["concert", "date"]
    )
    for concert in concerts:
        dates = concert.upcoming()
        counts = await seat_counts(store, concert, dates) if dates else []
        sold.add_metric([str(concert.id)], sum(n for n, _ in counts))
        held.add_metric([str(concert.id)], sum(n for _, n in counts))
        for schedule, (n, _) in zip(dates, counts, strict=True):
            left.add_metric([str(concert.id), schedule.date.isoformat()], len(schedule.prices) - n)
    return [sold, held, left]
