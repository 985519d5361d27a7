"""`frontrow catalog import FILE`: load concerts, dates and priced seats from JSON.

The file:

    {"concerts": [{"id": 2, "title": "...", "venue": "...", "on_sale": true,
                   "timezone": "Asia/Seoul",
                   "dates": [{"date": "2026-12-24", "starts_at": "2026-12-24T19:00:00+09:00",
                              "seats": [{"from": 1, "to": 40, "price": 80000}]}]}]}

Importing the same file again changes nothing. Concerts are matched by id,
dates by (concert, date), seats by number. A seat that is already sold
keeps its price and cannot be removed; the whole import is refused then.
Dates missing from the file are left as they are. `date` is the show's
day in the venue's `timezone` (default UTC); `starts_at` may carry any offset.
A concert may also carry its sale (frontrow/sale.py): `prequeue_from`,
`opens_at`, `mode`, `pow_bits`; fields left out keep their stored value.
"""

from __future__ import annotations

import datetime as dt
import json
import json.decoder
import json.scanner
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, insert, select, text, update

from frontrow import rules, sale
from frontrow.catalog import Box, bump_version, sale_of, sale_values
from frontrow.errors import Problem
from frontrow.schema import concerts, reservations, schedules, seats, section_plans
from frontrow.store import Store

IMPORTED_BY = "catalog import"  # the audit's "address" of a change the import made

MAX_SEAT = 100_000
MAX_PRICE = 1_000_000_000
MAX_SECTION = 32
MAX_ROW = 16
MAX_ROW_SEATS = 1_000


class CatalogError(ValueError):
    """The file cannot be imported; `errors` are 'line N: message' strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class LineDict(dict[str, Any]):
    line: int = 0


def _parse_with_lines(source: str) -> Any:
    """json.loads, but every object remembers the line it starts on."""
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: Any, *args: Any) -> tuple[LineDict, int]:
        s, end = s_and_end
        obj, new_end = json.decoder.JSONObject(s_and_end, *args)  # type: ignore[attr-defined]
        out = LineDict(obj)
        out.line = s.count("\n", 0, end) + 1
        return out, new_end

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    # the C scanner ignores the hook
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(source)


Place = tuple[str, str, int]  # section, row, number in the row


@dataclass
class DateSpec:
    date: dt.date
    starts_at: dt.datetime
    prices: dict[int, int]
    line: int
    places: dict[int, Place] = field(default_factory=dict)
    plan: dict[str, Box] = field(default_factory=dict)  # section -> its box in the picture

    def place(self, seat_no: int) -> Place:
        return self.places.get(seat_no) or ("GA", "1", seat_no)


@dataclass
class ConcertSpec:
    id: int
    title: str
    venue: str
    on_sale: bool
    line: int
    timezone: str = "UTC"
    dates: list[DateSpec] = field(default_factory=list)
    sale: dict[str, Any] = field(default_factory=dict)  # the sale fields the file gives


def _int(value: Any, low: int, high: int) -> TypeGuard[int]:
    return type(value) is int and low <= value <= high


def _line(obj: Any) -> int:
    """The line an object of the file starts on (see _parse_with_lines)."""
    return int(getattr(obj, "line", 0))


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= 200 and "\x00" not in value


def validate(source: str) -> list[ConcertSpec]:
    """Parse and check the whole file; raise CatalogError listing every problem by line."""
    try:
        data = _parse_with_lines(source)
    except json.JSONDecodeError as exc:
        raise CatalogError([f"line {exc.lineno}: not valid JSON: {exc.msg}"]) from None
    errors: list[str] = []

    def err(node: Any, message: str) -> None:
        errors.append(f"line {getattr(node, 'line', 1)}: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("concerts"), list):
        raise CatalogError(['line 1: expected {"concerts": [...]}'])
    specs: list[ConcertSpec] = []
    seen_ids: set[int] = set()
    for c in data["concerts"]:
        if not isinstance(c, dict):
            err(data, "each concert must be an object")
            continue
        if not _int(c.get("id"), 1, 2**53):
            err(c, "concert id must be a positive integer")
            continue
        if c["id"] in seen_ids:
            err(c, f"concert {c['id']} appears twice")
        seen_ids.add(c["id"])
        for name in ("title", "venue"):
            if not _text(c.get(name)):
                err(c, f"concert {c['id']}: {name} must be a string of 1-200 characters")
        on_sale = c.get("on_sale", True)
        if type(on_sale) is not bool:
            err(c, f"concert {c['id']}: on_sale must be true or false")
        zone = _zone(c.get("timezone", "UTC"))
        if zone is None:
            err(c, f"concert {c['id']}: timezone must be an IANA name like Asia/Seoul")
        spec = ConcertSpec(
            c["id"],
            str(c.get("title", "")).strip(),
            str(c.get("venue", "")).strip(),
            on_sale is True,
            _line(c),
            zone.key if zone else "UTC",
            sale={name: c[name] for name in sale.FIELDS if name in c},
        )
        try:
            sale.changed(sale.Sale(), spec.sale)
        except Problem as bad:
            err(c, f"concert {c['id']}: {bad.detail}")
        dates = c.get("dates", [])
        if not isinstance(dates, list):
            err(c, f"concert {c['id']}: dates must be a list")
            dates = []
        for d in dates:
            date_spec = _date(d, c, zone, err, c.get("sections"))
            if date_spec is None:
                continue
            if any(x.date == date_spec.date for x in spec.dates):
                err(d, f"concert {c['id']}: date {date_spec.date} appears twice")
            spec.dates.append(date_spec)
        specs.append(spec)
    if errors:
        raise CatalogError(errors)
    return specs


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def _date(d: Any, c: Any, zone: ZoneInfo | None, err: Any, venue_sections: Any) -> DateSpec | None:
    if not isinstance(d, dict):
        err(c, f"concert {c['id']}: each date must be an object")
        return None
    try:
        raw_day = d.get("date")
        if not isinstance(raw_day, str):
            raise ValueError
        day = dt.date.fromisoformat(raw_day)
    except ValueError:
        err(d, "date must be YYYY-MM-DD")
        return None
    raw = d.get("starts_at")
    try:
        if not isinstance(raw, str):
            raise ValueError
        starts = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
        if starts.tzinfo is None:
            raise ValueError
    except ValueError:
        err(d, f"{day}: starts_at must be an ISO 8601 time with Z or an offset")
        return None
    starts = starts.astimezone(dt.UTC)
    local_day = starts.astimezone(zone).date() if zone else day  # a bad zone is reported once
    if zone and local_day != day:
        err(d, f"{day}: starts_at falls on {local_day} in {zone.key}, not on the date")
    if "seats" in d:
        prices = _flat_seats(d, day, err)
        return None if prices is None else DateSpec(day, starts, prices, _line(d))
    sections = d.get("sections", venue_sections)
    if sections is None:
        err(d, f"{day}: give seats (ranges) or sections, here or on the concert")
        return None
    laid_out = _sections(sections, d, day, err)
    if laid_out is None:
        return None
    prices, places, plan = laid_out
    return DateSpec(day, starts, prices, _line(d), places, plan)


def _flat_seats(d: Any, day: dt.date, err: Any) -> dict[int, int] | None:
    """`seats: [{from, to, price}]`: one general-admission section, GA, row 1."""
    prices: dict[int, int] = {}
    ranges = d.get("seats")
    if not isinstance(ranges, list) or not ranges:
        err(d, f"{day}: seats must be a non-empty list of {{from, to, price}}")
        return None
    for r in ranges:
        if not isinstance(r, dict):
            err(d, f"{day}: each seat range must be an object")
            continue
        low, high, price = r.get("from"), r.get("to"), r.get("price")
        if not (_int(low, 1, MAX_SEAT) and _int(high, 1, MAX_SEAT) and low <= high):
            err(r, f"{day}: from and to must be seat numbers 1-{MAX_SEAT} with from <= to")
            continue
        if not _int(price, 0, MAX_PRICE):
            err(r, f"{day}: price must be an integer number of won, 0-{MAX_PRICE}")
            continue
        overlap = [n for n in range(low, high + 1) if n in prices]
        if overlap:
            err(r, f"{day}: seat {overlap[0]} is in two ranges")
            continue
        prices.update(dict.fromkeys(range(low, high + 1), price))
    return prices


def _name(value: Any, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest and value.isprintable()


def _box(at: Any) -> Box | None:
    """`at: [x, y, width, height]`, whole percent of the picture, inside it."""
    if not isinstance(at, list) or len(at) != 4 or not all(_int(v, 0, 100) for v in at):
        return None
    x, y, w, h = at
    return (x, y, w, h) if w > 0 and h > 0 and x + w <= 100 and y + h <= 100 else None


def _sections(
    sections: Any, d: Any, day: dt.date, err: Any
) -> tuple[dict[int, int], dict[int, Place], dict[str, Box]] | None:
    """`sections: [{name, rows: [{from, to} or {row}, seats, price], at}]`, in
    the venue's order; seat_no counts every seat in that order from 1. `at`
    places a section in the picture of the venue: all of them or none."""
    if not isinstance(sections, list) or not sections:
        err(d, f"{day}: sections must be a non-empty list of {{name, rows}}")
        return None
    prices: dict[int, int] = {}
    places: dict[int, Place] = {}
    plan: dict[str, Box] = {}
    names: set[str] = set()
    for section in sections:
        name = section.get("name") if isinstance(section, dict) else None
        if not isinstance(name, str) or not _name(name, MAX_SECTION) or "-" in name:
            err(section, f"{day}: a section name is 1-{MAX_SECTION} characters, no '-'")
            continue
        if name in names:
            err(section, f"{day}: section {name} appears twice")
        names.add(name)
        if "at" in section:
            box = _box(section["at"])
            if box is None:
                err(
                    section,
                    f"{day}: section {name}: at is [x, y, width, height], whole percent "
                    "of the venue's picture (0-100), width and height above 0, inside it",
                )
            else:
                plan[name] = box
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            err(section, f"{day}: section {name}: rows must be a non-empty list")
            continue
        row_names: set[str] = set()
        for r in rows:
            if not isinstance(r, dict):
                err(section, f"{day}: section {name}: each row entry must be an object")
                continue
            if "row" in r:
                labels = [r["row"]] if _name(r["row"], MAX_ROW) and "-" not in r["row"] else []
            elif _int(r.get("from"), 1, 9999) and _int(r.get("to"), r["from"], 9999):
                labels = [str(n) for n in range(r["from"], r["to"] + 1)]
            else:
                labels = []
            count, price = r.get("seats"), r.get("price")
            if not labels:
                err(r, f"{day}: section {name}: give a row name (row) or numbers (from, to)")
            elif not _int(count, 1, MAX_ROW_SEATS):
                err(r, f"{day}: section {name}: seats must be a row length 1-{MAX_ROW_SEATS}")
            elif not _int(price, 0, MAX_PRICE):
                err(r, f"{day}: price must be an integer number of won, 0-{MAX_PRICE}")
            elif row_names.intersection(labels):
                err(r, f"{day}: section {name}: row {min(row_names & set(labels))} twice")
            elif len(prices) + count * len(labels) > MAX_SEAT:
                err(r, f"{day}: more than {MAX_SEAT} seats")
                return None
            else:
                row_names.update(labels)
                for label in labels:
                    for number in range(1, count + 1):
                        seat_no = len(prices) + 1
                        prices[seat_no] = price
                        places[seat_no] = (name, label, number)
    placed = sum(1 for section in sections if isinstance(section, dict) and "at" in section)
    if placed and placed < len(sections):
        err(
            d, f"{day}: give at for every section or for none ({placed} of {len(sections)} have it)"
        )
    return prices, places, plan


@dataclass
class Report:
    concerts: int = 0
    dates_added: int = 0
    seats_added: int = 0
    seats_changed: int = 0
    seats_removed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.concerts} concerts; {self.dates_added} dates added; seats: "
            f"{self.seats_added} added, {self.seats_changed} repriced or moved, "
            f"{self.seats_removed} removed"
        )


async def apply(store: Store, specs: list[ConcertSpec]) -> Report:
    """Bring the database to the file in one transaction; refuse to touch sold
    seats. Each concert's rules go to Redis inside it (a sale whose times may
    no longer move refuses the whole import), and a changed sale is audited.
    The caller announces the change once it is committed (catalog.announce)."""
    report = Report(concerts=len(specs))
    errors: list[str] = []
    pending = []  # each concert's rules, for Redis once nothing else can fail
    async with store.db.begin() as conn:
        for c in specs:
            exists = await conn.scalar(select(concerts.c.id).where(concerts.c.id == c.id))
            values = {
                "title": c.title,
                "venue": c.venue,
                "on_sale": c.on_sale,
                "timezone": c.timezone,
            }
            if exists is None:
                await conn.execute(insert(concerts).values(id=c.id, **values))
            else:
                await conn.execute(update(concerts).where(concerts.c.id == c.id).values(**values))
            stored = (await conn.execute(select(concerts).where(concerts.c.id == c.id))).one()
            before = sale_of(stored) if exists is not None else sale.Sale()
            try:
                new = sale.changed(sale_of(stored), c.sale) if c.sale else sale_of(stored)
                if c.sale:
                    await conn.execute(
                        update(concerts).where(concerts.c.id == c.id).values(**sale_values(new))
                    )
                    await rules.record(conn, c.id, before.as_dict(), new.as_dict(), IMPORTED_BY)
                pending.append((c, before, new, rules.live_settings(stored)))
            except Problem as bad:
                errors.append(f"line {c.line}: concert {c.id}: {bad.detail}")
            for d in c.dates:
                schedule_id = await conn.scalar(
                    select(schedules.c.id).where(
                        schedules.c.concert_id == c.id, schedules.c.date == d.date
                    )
                )
                if schedule_id is None:
                    schedule_id = await conn.scalar(
                        insert(schedules)
                        .values(
                            concert_id=c.id,
                            date=d.date,
                            starts_at=d.starts_at,
                            sold_out=False,
                            seats_left=len(d.prices),
                        )
                        .returning(schedules.c.id)
                    )
                    report.dates_added += 1
                else:
                    await conn.execute(
                        update(schedules)
                        .where(schedules.c.id == schedule_id)
                        .values(starts_at=d.starts_at)
                    )
                priced = await conn.execute(
                    select(
                        seats.c.seat_no,
                        seats.c.price,
                        seats.c.section,
                        seats.c.seat_row,
                        seats.c.number,
                    ).where(seats.c.schedule_id == schedule_id)
                )
                current = {n: (price, (sec, row, num)) for n, price, sec, row, num in priced}
                wanted = {n: (price, d.place(n)) for n, price in d.prices.items()}
                sold = set(
                    (
                        await conn.execute(
                            select(reservations.c.seat_no).where(
                                reservations.c.schedule_id == schedule_id
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                for n in sorted(sold):
                    if n not in wanted:
                        errors.append(
                            f"line {d.line}: {d.date} seat {n} is sold; it cannot be removed"
                        )
                    elif current.get(n) != wanted[n]:
                        was = current.get(n, (None, ("?", "?", "?")))
                        errors.append(
                            f"line {d.line}: {d.date} seat {n} is sold as "
                            f"{'-'.join(map(str, was[1]))} at {was[0]}; "
                            "its price and place cannot change"
                        )
                added = [n for n in wanted if n not in current]
                changed = [n for n in wanted if n in current and current[n] != wanted[n]]
                removed = [n for n in current if n not in wanted]
                if added:
                    await conn.execute(
                        insert(seats),
                        [
                            {
                                "schedule_id": schedule_id,
                                "seat_no": n,
                                "price": d.prices[n],
                                "section": d.place(n)[0],
                                "seat_row": d.place(n)[1],
                                "number": d.place(n)[2],
                            }
                            for n in added
                        ],
                    )
                for n in changed:
                    section, row, number = d.place(n)
                    await conn.execute(
                        update(seats)
                        .where(seats.c.schedule_id == schedule_id, seats.c.seat_no == n)
                        .values(price=d.prices[n], section=section, seat_row=row, number=number)
                    )
                if removed:
                    await conn.execute(
                        delete(seats).where(
                            seats.c.schedule_id == schedule_id, seats.c.seat_no.in_(removed)
                        )
                    )
                await conn.execute(
                    delete(section_plans).where(section_plans.c.schedule_id == schedule_id)
                )
                if d.plan:
                    await conn.execute(
                        insert(section_plans),
                        [
                            {
                                "schedule_id": schedule_id,
                                "section": name,
                                "x": x,
                                "y": y,
                                "w": w,
                                "h": h,
                            }
                            for name, (x, y, w, h) in d.plan.items()
                        ],
                    )
                report.seats_added += len(added)
                report.seats_changed += len(changed)
                report.seats_removed += len(removed)
                await conn.execute(
                    update(schedules)
                    .where(schedules.c.id == schedule_id)
                    .values(
                        seats_left=len(d.prices) - len(sold), sold_out=len(sold) >= len(d.prices)
                    )
                )
        if errors:
            raise CatalogError(errors)  # rolls the transaction back
        await bump_version(conn)
        for c, before, new, live in pending:
            try:
                await rules.write(store, conn, c.id, before, new, c.on_sale, live)
            except Problem as bad:
                # the rules of the concerts before it are written: they are the
                # database's until this rolls back, so restore those from it
                for done, *_ in pending[: pending.index((c, before, new, live))]:
                    await store.redis.hdel(store.keys(done.id).cfg, "rules")
                raise CatalogError([f"line {c.line}: concert {c.id}: {bad.detail}"]) from None
        if conn.dialect.name == "postgresql":
            # Explicit ids leave the sequence behind; later inserts must not collide.
            await conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('concerts', 'id'), "
                    "(SELECT COALESCE(MAX(id), 1) FROM concerts))"
                )
            )
    return report
