"""The concert catalog: durable in the database, served from process memory.

The catalog changes rarely (an import before a sale) and is read on every
booking request, so each process keeps a copy and reloads it every few
seconds instead of asking the database per request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from frontrow.errors import BACKEND_ERRORS
from frontrow.schema import concerts, metadata, schedules, seats

RELOAD_AFTER_S = 5.0
DEMO_SEATS = range(1, 51)
DEMO_TIMEZONE = "Asia/Seoul"
RETRY_AFTER_FAILURE_S = 1.0
log = logging.getLogger("frontrow.catalog")


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    concert_id: int
    date: dt.date
    starts_at: dt.datetime
    prices: dict[int, int] = field(hash=False)  # seat_no -> price, in seat order


@dataclass(frozen=True, slots=True)
class Concert:
    id: int
    title: str
    venue: str
    on_sale: bool
    schedules: tuple[Schedule, ...]
    timezone: str = "UTC"

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
    def __init__(self, db: AsyncEngine, reload_after_s: float = RELOAD_AFTER_S) -> None:
        self._db = db
        self._reload_after_s = reload_after_s
        self._concerts: dict[int, Concert] = {}
        self._loaded_at = float("-inf")
        self._loaded = False
        self._lock = asyncio.Lock()

    async def concerts(self) -> dict[int, Concert]:
        if time.monotonic() - self._loaded_at > self._reload_after_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._reload_after_s:
                    await self._reload()
        return self._concerts

    async def _reload(self) -> None:
        try:
            self._concerts = await load(self._db)
        except BACKEND_ERRORS as exc:
            if not self._loaded:
                raise
            # The database is down: queues and seat maps keep working on the
            # copy we have; try again after a short pause, not on every request.
            log.warning("catalog reload failed (%r); serving the last copy", exc)
            self._loaded_at = time.monotonic() - self._reload_after_s + RETRY_AFTER_FAILURE_S
            return
        self._loaded = True
        self._loaded_at = time.monotonic()

    async def get(self, concert_id: int) -> Concert | None:
        return (await self.concerts()).get(concert_id)

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def load(db: AsyncEngine) -> dict[int, Concert]:
    async with db.connect() as conn:
        concert_rows = (await conn.execute(select(concerts).order_by(concerts.c.id))).all()
        schedule_rows = (await conn.execute(select(schedules).order_by(schedules.c.date))).all()
        seat_rows = (
            await conn.execute(
                select(seats.c.schedule_id, seats.c.seat_no, seats.c.price).order_by(
                    seats.c.schedule_id, seats.c.seat_no
                )
            )
        ).all()
    prices: dict[int, dict[int, int]] = {}
    for schedule_id, seat_no, price in seat_rows:
        prices.setdefault(schedule_id, {})[seat_no] = price
    by_concert: dict[int, list[Schedule]] = {}
    for row in schedule_rows:
        by_concert.setdefault(row.concert_id, []).append(
            Schedule(row.id, row.concert_id, row.date, _utc(row.starts_at), prices.get(row.id, {}))
        )
    return {
        row.id: Concert(
            row.id,
            row.title,
            row.venue,
            row.on_sale,
            tuple(by_concert.get(row.id, ())),
            row.timezone,
        )
        for row in concert_rows
    }


async def migrate(db: AsyncEngine) -> None:
    """Create every table that does not exist yet, add columns that later
    versions need to tables that do; safe to run again."""
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
        columns = await conn.run_sync(
            lambda sync: {
                (table, c["name"])
                for table in ("concerts", "schedules")
                for c in inspect(sync).get_columns(table)
            }
        )
        if ("concerts", "timezone") not in columns:
            await conn.execute(
                text("ALTER TABLE concerts ADD COLUMN timezone VARCHAR(64) NOT NULL DEFAULT 'UTC'")
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
            await conn.execute(
                insert(seats),
                [
                    {
                        "schedule_id": schedule_id,
                        "seat_no": n,
                        "price": 120_000 if n <= 10 else 80_000,
                    }
                    for n in DEMO_SEATS
                ],
            )
    return int(concert_id)
