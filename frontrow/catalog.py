"""The concert catalog: durable in the database, served from process memory.

The catalog changes rarely (an import before a sale) and is read on every
booking request, so each process keeps a copy of what is static in it:
titles, venues, dates, seats and prices. (The sale's rules are not decided
from this copy: they live in Redis, frontrow/rules.py.) A change is announced
through Redis once it is committed (`announce`); each process looks for an
announcement four times a second, reads the new version in the background
and in slices, so a 200,000-seat stadium never stalls the requests this
process is serving meanwhile, and says which announcement it has loaded, so
that `frontrow catalog import` returns only once every process has it. A
concert this process does not know is looked for again before a 404. Without
Redis the database's version is asked every few seconds.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from frontrow import keys
from frontrow.errors import BACKEND_ERRORS, not_found
from frontrow.sale import Sale
from frontrow.schema import (
    catalog_version,
    concerts,
    metadata,
    schedules,
    seats,
    section_plans,
)

CHECK_AFTER_S = 5.0
WATCH_S = 0.25  # how often a process looks for an announced change
ACK_EVERY_S = 2.0  # how often it says it is alive and what it has loaded
LOAD_SLICE = 1_000  # seat rows between two yields to the event loop
DEMO_TIMEZONE = "Asia/Seoul"
# (section, rows, seats a row, price): seats 1-10 at 120,000 and 11-50 at 80,000
DEMO_SECTIONS = (("A", 1, 10, 120_000), ("B", 4, 10, 80_000))
DEMO_SEATS = range(1, 1 + sum(rows * per_row for _, rows, per_row, _ in DEMO_SECTIONS))
RETRY_AFTER_FAILURE_S = 1.0
log = logging.getLogger("frontrow.catalog")


def seat_label(section: str, row: str, number: int) -> str:
    return f"{section}-{row}-{number}"


@dataclass(frozen=True, slots=True)
class Run:
    """Seats next to each other in one row: seat_no first .. first + count - 1,
    numbered number .. number + count - 1 in the row."""

    section: str
    row: str
    first: int
    number: int
    prices: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.prices)


Box = tuple[int, int, int, int]  # x, y, width, height in percent, the stage at the top


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    runs: tuple[Run, ...]
    rows: int
    total: int
    min_price: int
    max_price: int
    first: int  # lowest and highest seat_no: the section's span of the sold bitmap
    last: int
    at: Box | None = None  # where it lies in the picture of the venue (schema.section_plans)


@dataclass(frozen=True, slots=True)
class Venue:
    """A date's seats by section (in the venue's order), row and number."""

    sections: tuple[Section, ...]
    runs: tuple[Run, ...]  # in seat_no order
    starts: tuple[int, ...] = field(repr=False)  # first seat_no of each run, for bisect

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def _run(self, seat_no: int) -> Run | None:
        i = bisect.bisect_right(self.starts, seat_no) - 1
        run = self.runs[i] if i >= 0 else None
        return None if run is None or seat_no >= run.first + run.count else run

    def section_of(self, seat_no: int) -> str:
        """The name of the seat's section ("GA" for a seat of no section)."""
        run = self._run(seat_no)
        return "GA" if run is None else run.section

    def place(self, seat_no: int) -> dict[str, str]:
        """The seat's section, row and label, as every seat object carries them."""
        run = self._run(seat_no)
        if run is None:
            return {"section": "GA", "row": "1", "label": seat_label("GA", "1", seat_no)}
        number = run.number + seat_no - run.first
        return {
            "section": run.section,
            "row": run.row,
            "label": seat_label(run.section, run.row, number),
        }


class VenueBuilder:
    """Collects seat rows in seat_no order into runs and sections."""

    def __init__(self) -> None:
        self.prices: dict[int, int] = {}
        self._runs: list[Run] = []
        self._open: list[Any] = []  # section, row, first, number, prices of the run being built

    def add(self, seat_no: int, price: int, section: str, row: str, number: int) -> None:
        self.prices[seat_no] = price
        o = self._open
        if o and (o[0], o[1]) == (section, row) and seat_no == o[2] + len(o[4]):
            if number == o[3] + len(o[4]):
                o[4].append(price)
                return
        self._close()
        self._open = [section, row, seat_no, number, [price]]

    def _close(self) -> None:
        if self._open:
            section, row, first, number, prices = self._open
            self._runs.append(Run(section, row, first, number, tuple(prices)))
            self._open = []

    def build(self, plan: dict[str, Box] | None = None) -> Venue:
        self._close()
        plan = plan or {}
        by_name: dict[str, list[Run]] = {}
        for run in self._runs:  # a section's place in the venue is where its first seat is
            by_name.setdefault(run.section, []).append(run)
        sections = tuple(
            Section(
                name,
                tuple(runs),
                len({r.row for r in runs}),
                sum(r.count for r in runs),
                min(min(r.prices) for r in runs),
                max(max(r.prices) for r in runs),
                runs[0].first,
                runs[-1].first + runs[-1].count - 1,
                plan.get(name),
            )
            for name, runs in by_name.items()
        )
        runs = tuple(self._runs)
        return Venue(sections, runs, tuple(r.first for r in runs))


EMPTY_VENUE = VenueBuilder().build()


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    concert_id: int
    date: dt.date
    starts_at: dt.datetime
    prices: dict[int, int] = field(hash=False)  # seat_no -> price, in seat order
    venue: Venue = field(default=EMPTY_VENUE, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Concert:
    id: int
    title: str
    venue: str
    on_sale: bool
    schedules: tuple[Schedule, ...]
    timezone: str = "UTC"
    sale: Sale = field(default_factory=Sale)

    def upcoming(self, now: dt.datetime | None = None) -> list[Schedule]:
        now = now or dt.datetime.now(dt.UTC)
        return [s for s in self.schedules if s.starts_at > now]

    def schedule_on(self, date: dt.date) -> Schedule | None:
        """The date's schedule while it is still to come: a started show sells nothing."""
        for schedule in self.upcoming():
            if schedule.date == date:
                return schedule
        return None


class Catalog:
    def __init__(
        self,
        db: AsyncEngine,
        check_after_s: float = CHECK_AFTER_S,
        redis: Any = None,
        prefix: str = "",
        owner: str = "",
    ) -> None:
        self._db = db
        self._check_after_s = check_after_s
        self._concerts: dict[int, Concert] = {}
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._loaded = False
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None
        self._redis = redis
        self._announced_key = keys.catalog_announced(prefix)
        self._seen_key = keys.catalog_seen(prefix)
        self._owner = owner
        self._announced: str | None = None
        # called with the concerts whose copy changed (store.open_store: embedded rules)
        self.on_change: Callable[[list[Concert]], Awaitable[None]] | None = None

    async def concerts(self) -> dict[int, Concert]:
        if not self._loaded:
            async with self._lock:  # the first copy: every request waits for it
                if not self._loaded:
                    await self._reload(force=True)
        else:
            self._refresh_when_due()
        return self._concerts

    def cached(self, concert_id: int) -> Concert | None:
        """The concert in the copy this process has, never waiting on the
        database (the poll answers with PostgreSQL down); a missing or stale
        copy is read in the background."""
        self._refresh_when_due()
        return self._concerts.get(concert_id)

    def _refresh_when_due(self) -> None:
        # Later copies are read in the background; requests keep the old one.
        due = not self._loaded or time.monotonic() - self._checked_at > self._check_after_s
        if due and (self._refresh is None or self._refresh.done()):
            self._checked_at = time.monotonic()
            self._refresh = asyncio.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        async with self._lock:
            try:
                await self._reload(force=False)
            except BACKEND_ERRORS as exc:
                # The database is down: queues and seat maps keep working on the
                # copy we have; try again after a short pause.
                log.warning("catalog reload failed (%r); serving the last copy", exc)
                self._checked_at = time.monotonic() - self._check_after_s + RETRY_AFTER_FAILURE_S

    async def _reload(self, force: bool) -> None:
        old = self._concerts
        async with self._db.connect() as conn:
            version = await conn.scalar(select(catalog_version.c.version))
            if force or version != self._version:
                self._concerts = await _load(conn)
                self._version = version
        self._loaded = True
        self._checked_at = time.monotonic()
        if self.on_change is not None and self._concerts is not old:
            changed = [c for i, c in self._concerts.items() if old.get(i) != c]
            if changed:
                await self.on_change(changed)

    async def watch(self, stop: asyncio.Event) -> None:
        """Load each announced change, and say which one this process has
        (a task of the app's lifespan and of an admitter, until `stop`)."""
        if self._redis is None:
            return
        acked_at = float("-inf")
        first = True
        while not stop.is_set():
            try:
                announced = await self._redis.get(self._announced_key)
                if first:  # the copy loaded now has whatever this says
                    await self.concerts()
                    self._announced, first = announced, False
                if announced != self._announced:
                    async with self._lock:
                        await self._reload(force=True)
                    self._announced = announced
                    acked_at = float("-inf")
                if time.monotonic() - acked_at > ACK_EVERY_S:
                    at_ms = int(time.time() * 1000)
                    await self._redis.hset(self._seen_key, self._owner, f"{announced}:{at_ms}")
                    acked_at = time.monotonic()
            except BACKEND_ERRORS as exc:
                log.warning("catalog: cannot look for changes (%r)", exc)
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)
            try:
                await asyncio.wait_for(stop.wait(), WATCH_S)
            except TimeoutError:
                pass

    async def get(self, concert_id: int) -> Concert | None:
        return (await self.concerts()).get(concert_id)

    async def require(self, concert_id: int) -> Concert:
        """The concert, or the 404 every route answers for an unknown one: but
        only after making sure no change this process has not loaded yet has it."""
        concert = await self.get(concert_id)
        if concert is None and self._redis is not None:
            try:
                announced = await self._redis.get(self._announced_key)
            except BACKEND_ERRORS:
                announced = self._announced
            if announced != self._announced:
                async with self._lock:
                    await self._reload(force=True)
                self._announced = announced
                concert = self._concerts.get(concert_id)
        if concert is None:
            raise not_found("no such concert")
        return concert

    async def close(self) -> None:
        """Let a background read in flight finish before the engine goes away."""
        if self._refresh is not None:
            await asyncio.gather(self._refresh, return_exceptions=True)

    def expire(self) -> None:
        """Make the next read check the version (in the background, as usual)."""
        self._checked_at = float("-inf")

    async def invalidate(self) -> None:
        """Read the whole catalog again now, whatever its version says."""
        async with self._lock:
            await self._reload(force=True)


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def load(db: AsyncEngine) -> dict[int, Concert]:
    async with db.connect() as conn:
        return await _load(conn)


async def _load(conn: AsyncConnection) -> dict[int, Concert]:
    concert_rows = (await conn.execute(select(concerts).order_by(concerts.c.id))).all()
    schedule_rows = (await conn.execute(select(schedules).order_by(schedules.c.date))).all()
    builders: dict[int, VenueBuilder] = {}
    plans: dict[int, dict[str, Box]] = {}
    for plan in await conn.execute(select(section_plans)):
        plans.setdefault(plan.schedule_id, {})[plan.section] = (plan.x, plan.y, plan.w, plan.h)
    result = await conn.stream(
        select(
            seats.c.schedule_id,
            seats.c.seat_no,
            seats.c.price,
            seats.c.section,
            seats.c.seat_row,
            seats.c.number,
        ).order_by(seats.c.schedule_id, seats.c.seat_no)
    )
    async for part in result.partitions(LOAD_SLICE):
        for schedule_id, seat_no, price, section, row, number in part:
            builder = builders.get(schedule_id)
            if builder is None:
                builder = builders[schedule_id] = VenueBuilder()
            builder.add(seat_no, price, section, row, number)
        await asyncio.sleep(0)  # let waiting requests run between slices
    by_concert: dict[int, list[Schedule]] = {}
    for row in schedule_rows:
        builder = builders.get(row.id) or VenueBuilder()
        by_concert.setdefault(row.concert_id, []).append(
            Schedule(
                row.id,
                row.concert_id,
                row.date,
                _utc(row.starts_at),
                builder.prices,
                builder.build(plans.get(row.id)),
            )
        )
    return {
        row.id: Concert(
            row.id,
            row.title,
            row.venue,
            row.on_sale,
            tuple(by_concert.get(row.id, ())),
            row.timezone,
            sale_of(row),
        )
        for row in concert_rows
    }


async def announce(store: Any) -> int:
    """Tell every process that a committed change of the catalog is there to
    load; returns the announcement's number (see wait_until_loaded)."""
    return int(await store.redis.incr(keys.catalog_announced(store.settings.key_prefix)))


async def wait_until_loaded(store: Any, announced: int, timeout_s: float = 30.0) -> list[str]:
    """Wait until every live process (one that said so within the last few
    seconds) has loaded `announced`; returns the processes that had not by the timeout."""
    deadline = time.monotonic() + timeout_s
    key = keys.catalog_seen(store.settings.key_prefix)
    while True:
        now_ms = int(time.time() * 1000)
        late = []
        for owner, value in (await store.redis.hgetall(key)).items():
            loaded, _, at_ms = value.rpartition(":")
            silent_ms = now_ms - int(at_ms)
            if silent_ms > 60_000:  # a process that stopped: forget it
                await store.redis.hdel(key, owner)
            elif silent_ms < 3 * ACK_EVERY_S * 1000:
                if not loaded.isdigit() or int(loaded) < announced:
                    late.append(owner)
        if not late or time.monotonic() > deadline:
            return late
        await asyncio.sleep(WATCH_S / 2)


async def bump_version(conn: AsyncConnection) -> None:
    """Tell every process the catalog changed (inside the changing transaction)."""
    await conn.execute(update(catalog_version).values(version=catalog_version.c.version + 1))


def sale_of(row: Any) -> Sale:
    """The sale of a concerts row."""
    return Sale(
        _utc(row.prequeue_from) if row.prequeue_from else None,
        _utc(row.opens_at) if row.opens_at else None,
        row.mode,
        row.pow_bits,
        row.lottery_seed,
    )


def sale_values(sale: Sale) -> dict[str, Any]:
    """A concert row's sale columns; a seed once made is kept (COALESCE)."""
    return {
        "prequeue_from": sale.prequeue_from,
        "opens_at": sale.opens_at,
        "mode": sale.mode,
        "pow_bits": sale.pow_bits,
        "lottery_seed": func.coalesce(concerts.c.lottery_seed, sale.seed),
    }


async def migrate(db: AsyncEngine) -> None:
    """Create every table that does not exist yet, add columns that later
    versions need to tables that do; safe to run again."""
    stamp = "TIMESTAMP WITH TIME ZONE" if db.dialect.name == "postgresql" else "DATETIME"
    async with db.begin() as conn:
        had_tickets = await conn.run_sync(lambda sync: inspect(sync).has_table("buyer_tickets"))
        await conn.run_sync(metadata.create_all)
        if not had_tickets:
            # the ticket limit counts what was bought before it existed too
            await conn.execute(
                text(
                    "INSERT INTO buyer_tickets (user_id, concert_id, seats, ticket_limit)"
                    " SELECT r.user_id, s.concert_id, count(*), 0 FROM reservations r"
                    " JOIN schedules s ON s.id = r.schedule_id GROUP BY r.user_id, s.concert_id"
                )
            )
        columns = await conn.run_sync(
            lambda sync: {
                (table, c["name"])
                for table in ("concerts", "schedules", "seats", "receipts", "admin_audit")
                for c in inspect(sync).get_columns(table)
            }
        )
        if ("seats", "section") not in columns:
            # An older catalog is one general-admission row: GA-1-<seat_no>.
            for ddl in (
                "ALTER TABLE seats ADD COLUMN section VARCHAR(32) NOT NULL DEFAULT 'GA'",
                "ALTER TABLE seats ADD COLUMN seat_row VARCHAR(16) NOT NULL DEFAULT '1'",
                "ALTER TABLE seats ADD COLUMN number INTEGER NOT NULL DEFAULT 0",
                "UPDATE seats SET number = seat_no",
            ):
                await conn.execute(text(ddl))
        if await conn.scalar(select(func.count()).select_from(catalog_version)) == 0:
            await conn.execute(insert(catalog_version).values(id=1, version=1))
        for column, ddl in (
            ("timezone", "VARCHAR(64) NOT NULL DEFAULT 'UTC'"),
            ("prequeue_from", f"{stamp} NULL"),
            ("opens_at", f"{stamp} NULL"),
            ("mode", "VARCHAR(16) NOT NULL DEFAULT 'fifo'"),
            ("pow_bits", "INTEGER NOT NULL DEFAULT 0"),
            ("lottery_seed", "VARCHAR(64) NULL"),
            ("queue_settings", "VARCHAR(1000) NULL"),
        ):
            if ("concerts", column) not in columns:
                await conn.execute(text(f"ALTER TABLE concerts ADD COLUMN {column} {ddl}"))
        for column in ("operator VARCHAR(32) NULL", "reason VARCHAR(200) NULL"):
            if ("admin_audit", column.split()[0]) not in columns:
                await conn.execute(text(f"ALTER TABLE admin_audit ADD COLUMN {column}"))
        if ("receipts", "token_id") not in columns:
            await conn.execute(text("ALTER TABLE receipts ADD COLUMN token_id VARCHAR(64) NULL"))
        await conn.execute(
            text("CREATE INDEX IF NOT EXISTS receipts_paid_at ON receipts (paid_at)")
        )
        if ("schedules", "seats_left") not in columns:
            await conn.execute(
                text("ALTER TABLE schedules ADD COLUMN seats_left INTEGER NOT NULL DEFAULT 0")
            )
            await conn.execute(
                text(
                    "UPDATE schedules SET seats_left ="
                    " (SELECT count(*) FROM seats WHERE seats.schedule_id = schedules.id)"
                    " - (SELECT count(*) FROM reservations"
                    " WHERE reservations.schedule_id = schedules.id)"
                )
            )


async def seed_demo(db: AsyncEngine, today: dt.date | None = None) -> int | None:
    """Load the demo concert when the catalog is empty; return its id."""
    today = today or dt.datetime.now(dt.UTC).date()
    async with db.begin() as conn:
        if (await conn.execute(select(func.count()).select_from(concerts))).scalar_one():
            return None
        concert_id = (
            await conn.execute(
                insert(concerts)
                .values(
                    title="frontrow live: Winter Night",
                    venue="Olympic Hall",
                    on_sale=True,
                    timezone=DEMO_TIMEZONE,
                )
                .returning(concerts.c.id)
            )
        ).scalar_one()
        for offset in (7, 8, 9):
            day = today + dt.timedelta(days=offset)
            local = dt.datetime.combine(day, dt.time(19, 0), tzinfo=ZoneInfo(DEMO_TIMEZONE))
            starts = local.astimezone(dt.UTC)
            schedule_id = (
                await conn.execute(
                    insert(schedules)
                    .values(
                        concert_id=concert_id,
                        date=day,
                        starts_at=starts,
                        sold_out=False,
                        seats_left=len(DEMO_SEATS),
                    )
                    .returning(schedules.c.id)
                )
            ).scalar_one()
            await conn.execute(insert(seats), demo_seats(schedule_id))
        await bump_version(conn)
    return int(concert_id)


def demo_seats(schedule_id: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for section, rows, per_row, price in DEMO_SECTIONS:
        for row in range(1, rows + 1):
            for number in range(1, per_row + 1):
                out.append(
                    {
                        "schedule_id": schedule_id,
                        "seat_no": len(out) + 1,
                        "price": price,
                        "section": section,
                        "seat_row": str(row),
                        "number": number,
                    }
                )
    return out
