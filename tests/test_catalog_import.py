"""`frontrow catalog import`: validated by line, idempotent, never touching sold seats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from frontrow import catalog
from frontrow.catalog import load
from frontrow.catalog_import import CatalogError, apply, validate
from frontrow.schema import receipts, reservations, seats
from frontrow.store import Store
from tests.conftest import MakeStore

EXAMPLE = Path(__file__).parent.parent / "examples" / "catalog.json"


def test_errors_name_their_line() -> None:
    source = """{"concerts": [
  {"id": 2, "title": "ok", "venue": "hall",
   "dates": [
     {"date": "2026-12-31", "starts_at": "2026-12-31T11:00:00Z",
      "seats": [{"from": 1, "to": 10, "price": 100},
                {"from": 5, "to": 12, "price": 100}]},
     {"date": "2026-13-01", "starts_at": "x", "seats": []}
   ]},
  {"id": "three", "title": "", "venue": "v"}
]}"""
    with pytest.raises(CatalogError) as caught:
        validate(source)
    assert caught.value.errors == [
        "line 6: 2026-12-31: seat 5 is in two ranges",
        "line 7: date must be YYYY-MM-DD",
        "line 9: concert id must be a positive integer",
    ]
    with pytest.raises(CatalogError, match="line 2: not valid JSON"):
        validate('{"concerts": [\n  {"id": 1,, }]}')


async def test_import_is_idempotent(make_store) -> None:
    store: Store = await make_store()
    specs = validate(EXAMPLE.read_text())
    first = await apply(store, specs)
    assert (first.dates_added, first.seats_added) == (2, 200)
    again = await apply(store, validate(EXAMPLE.read_text()))
    assert (again.dates_added, again.seats_added, again.seats_changed, again.seats_removed) == (
        0,
        0,
        0,
        0,
    )
    concert = (await load(store.db))[2]
    assert [s.date.isoformat() for s in concert.schedules] == ["2026-12-31", "2027-01-01"]
    venue = concert.schedules[0].venue  # a flat file is one general-admission row
    assert [s.name for s in venue.sections] == ["GA"]
    assert venue.place(7) == {"section": "GA", "row": "1", "label": "GA-1-7"}
    assert concert.schedules[0].prices[1] == 150000 and concert.schedules[0].prices[100] == 90000


async def test_sold_seats_keep_price_and_place(make_store) -> None:
    import datetime as dt

    store: Store = await make_store()
    await apply(store, validate(EXAMPLE.read_text()))
    schedule = (await load(store.db))[2].schedules[0]
    now = dt.datetime.now(dt.UTC)
    async with store.db.begin() as conn:
        await conn.execute(
            insert(receipts).values(
                id="r_1",
                user_id="u",
                concert_id=2,
                amount=150000,
                balance_after=0,
                paid_at=now,
                request_hash="x",
            )
        )
        await conn.execute(
            insert(reservations).values(
                schedule_id=schedule.id,
                seat_no=1,
                user_id="u",
                receipt_id="r_1",
                price=150000,
                created_at=now,
            )
        )
    data = json.loads(EXAMPLE.read_text())
    data["concerts"][0]["dates"][0]["seats"] = [{"from": 1, "to": 100, "price": 1}]
    sold_at = "seat 1 is sold as GA-1-1 at 150000; its price and place cannot change"
    with pytest.raises(CatalogError, match=sold_at):
        await apply(store, validate(json.dumps(data)))
    data["concerts"][0]["dates"][0].pop("seats")  # the same price, moved into a section
    data["concerts"][0]["dates"][0]["sections"] = [
        {"name": "A", "rows": [{"row": "1", "seats": 100, "price": 150000}]}
    ]
    with pytest.raises(CatalogError, match="seat 1 is sold as GA-1-1 at 150000"):
        await apply(store, validate(json.dumps(data)))
    data["concerts"][0]["dates"][0]["seats"] = [{"from": 2, "to": 100, "price": 90000}]
    with pytest.raises(CatalogError, match="seat 1 is sold; it cannot be removed"):
        await apply(store, validate(json.dumps(data)))
    async with store.db.connect() as conn:  # the refused imports changed nothing
        assert (
            await conn.scalar(
                select(seats.c.price).where(
                    seats.c.schedule_id == schedule.id, seats.c.seat_no == 1
                )
            )
            == 150000
        )
        assert await conn.scalar(select(func.count()).select_from(seats)) == 200


def test_cli_reports_errors_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"concerts": [\n {"id": 0}\n]}')
    result = subprocess.run(
        [sys.executable, "-m", "frontrow", "catalog", "import", str(bad)],
        env={"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{bad}: line 2: concert id must be a positive integer" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "frontrow", "catalog", "import", str(EXAMPLE)],
        env={"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "2 dates added" in ok.stdout


async def test_dates_are_the_venue_s_days(make_store: MakeStore) -> None:
    store = await make_store()
    la = """{"concerts": [{"id": 5, "title": "t", "venue": "v",
      "timezone": "America/Los_Angeles", "dates": [
      {"date": "2026-12-24", "starts_at": "2026-12-24T19:00:00-08:00",
       "seats": [{"from": 1, "to": 2, "price": 10}]}]}]}"""
    await apply(store, validate(la))
    concert = (await load(store.db))[5]
    assert concert.timezone == "America/Los_Angeles"
    (date,) = concert.schedules
    assert date.date.isoformat() == "2026-12-24"  # the evening in LA is the 25th in UTC
    assert date.starts_at.isoformat() == "2026-12-25T03:00:00+00:00"
    with pytest.raises(CatalogError) as caught:
        validate(la.replace("America/Los_Angeles", "Mars/Base"))
    assert caught.value.errors == [
        "line 1: concert 5: timezone must be an IANA name like Asia/Seoul"
    ]
    with pytest.raises(CatalogError) as caught:
        validate(la.replace("2026-12-24T19:00:00-08:00", "2026-12-24T05:00:00Z"))
    assert caught.value.errors == [
        "line 3: 2026-12-24: starts_at falls on 2026-12-23 in America/Los_Angeles, not on the date"
    ]


async def test_migrate_adds_seats_left_to_an_older_database(make_store: MakeStore) -> None:
    from sqlalchemy import text

    store = await make_store()
    await catalog.seed_demo(store.db)
    async with store.db.begin() as conn:
        await conn.execute(text("ALTER TABLE schedules DROP COLUMN seats_left"))
        await conn.execute(text("ALTER TABLE concerts DROP COLUMN timezone"))
    await catalog.migrate(store.db)
    await catalog.migrate(store.db)  # and again: nothing more to do
    async with store.db.connect() as conn:
        left = (await conn.execute(text("SELECT seats_left FROM schedules"))).scalars().all()
        zones = (await conn.execute(text("SELECT timezone FROM concerts"))).scalars().all()
    assert left == [50, 50, 50]
    assert zones == ["UTC"]  # an older catalog's times were UTC


STADIUM = Path(__file__).parent.parent / "examples" / "stadium.json"


async def test_sections_rows_and_the_stadium(make_store: MakeStore) -> None:
    specs = validate(STADIUM.read_text())
    (date, *_) = specs[0].dates
    assert len(date.prices) == 50_000 and len(specs[0].dates) == 4
    # seat numbers follow the venue's order: section F1 first, row by row
    assert date.place(1) == ("F1", "1", 1) and date.place(101) == ("F1", "2", 1)
    assert date.place(50_000) == ("P", "50", 50)
    store = await make_store()
    small = {
        "concerts": [
            {
                "id": 3,
                "title": "t",
                "venue": "v",
                "sections": [
                    {"name": "Floor", "rows": [{"row": "AA", "seats": 3, "price": 9}]},
                    {"name": "Upper", "rows": [{"from": 1, "to": 2, "seats": 2, "price": 5}]},
                ],
                "dates": [{"date": "2027-01-02", "starts_at": "2027-01-02T10:00:00Z"}],
            }
        ]
    }
    await apply(store, validate(json.dumps(small)))
    venue = (await load(store.db))[3].schedules[0].venue
    assert [(s.name, s.rows, s.total, s.first, s.last) for s in venue.sections] == [
        ("Floor", 1, 3, 1, 3),
        ("Upper", 2, 4, 4, 7),
    ]
    assert venue.place(6)["label"] == "Upper-2-1"
    bad = json.loads(json.dumps(small))
    bad["concerts"][0]["sections"] = [
        {"name": "A-B", "rows": [{"row": "1", "seats": 1, "price": 1}]},
        {"name": "C", "rows": [{"row": "1", "seats": 0, "price": 1}]},
        {
            "name": "D",
            "rows": [
                {"from": 1, "to": 2, "seats": 1, "price": 1},
                {"row": "2", "seats": 1, "price": 1},
            ],
        },
        {"name": "D", "rows": [{"seats": 1, "price": 1}]},
    ]
    with pytest.raises(CatalogError) as caught:
        validate(json.dumps(bad, indent=1))
    text = "\n".join(caught.value.errors)
    assert "a section name is 1-32 characters, no '-'" in text
    assert "seats must be a row length 1-1000" in text
    assert "section D: row 2 twice" in text
    assert "section D appears twice" in text
    assert "give a row name (row) or numbers (from, to)" in text


async def test_sections_placed_in_a_picture_of_the_venue(make_store: MakeStore) -> None:
    """`at` places each section in the venue's picture; kept, replaced by the
    next import, and all of a date's sections or none."""
    store = await make_store()
    placed = {
        "concerts": [
            {
                "id": 4,
                "title": "t",
                "venue": "v",
                "sections": [
                    {
                        "name": "Floor",
                        "at": [30, 0, 40, 50],
                        "rows": [{"row": "1", "seats": 2, "price": 9}],
                    },
                    {
                        "name": "Back",
                        "at": [0, 60, 100, 40],
                        "rows": [{"row": "1", "seats": 2, "price": 5}],
                    },
                ],
                "dates": [{"date": "2027-01-02", "starts_at": "2027-01-02T10:00:00Z"}],
            }
        ]
    }
    await apply(store, validate(json.dumps(placed)))
    venue = (await load(store.db))[4].schedules[0].venue
    assert [(s.name, s.at) for s in venue.sections] == [
        ("Floor", (30, 0, 40, 50)),
        ("Back", (0, 60, 100, 40)),
    ]
    placed["concerts"][0]["sections"][1]["at"] = [0, 70, 100, 30]
    await apply(store, validate(json.dumps(placed)))
    venue = (await load(store.db))[4].schedules[0].venue
    assert venue.section("Back") is not None and venue.section("Back").at == (0, 70, 100, 30)
    for section in placed["concerts"][0]["sections"]:
        del section["at"]
    await apply(store, validate(json.dumps(placed)))  # a list again
    assert all(s.at is None for s in (await load(store.db))[4].schedules[0].venue.sections)
    stadium = validate(STADIUM.read_text())[0].dates[0]
    assert len(stadium.plan) == 20 and stadium.plan["F1"] == (25, 2, 24, 36)
    for at in ([0, 0, 0, 10], [60, 0, 50, 10], [0, 0, 10], [1.5, 0, 10, 10], "0 0 10 10"):
        bad = json.loads(json.dumps(placed))
        bad["concerts"][0]["sections"][0]["at"] = at
        bad["concerts"][0]["sections"][1]["at"] = [0, 60, 100, 40]
        with pytest.raises(CatalogError, match=r"section Floor: at is \[x, y, width, height\]"):
            validate(json.dumps(bad))
    half = json.loads(json.dumps(placed))
    half["concerts"][0]["sections"][0]["at"] = [0, 0, 10, 10]
    with pytest.raises(CatalogError, match=r"give at for every section or for none \(1 of 2"):
        validate(json.dumps(half))


async def test_a_concert_s_sale_from_the_file(make_store: MakeStore) -> None:
    """prequeue_from, opens_at, mode and pow_bits come from the concert object;
    the seed is made once; a field left out keeps its value; bad ones name their line."""
    store = await make_store()
    concert = {
        "id": 5,
        "title": "on sale at ten",
        "venue": "stadium",
        "prequeue_from": "2099-06-01T09:30:00+09:00",
        "opens_at": "2099-06-01T10:00:00+09:00",
        "mode": "fifo",
        "pow_bits": 20,
    }
    await apply(store, validate(json.dumps({"concerts": [concert]})))
    sale = (await load(store.db))[5].sale
    assert sale.opens_at is not None and sale.opens_at.isoformat() == "2099-06-01T01:00:00+00:00"
    assert sale.pow_bits == 20 and sale.seed is not None and sale.commitment
    # again, without pow_bits and with another mode: the seed stays, pow_bits too
    del concert["pow_bits"]
    concert["mode"] = "random"
    await apply(store, validate(json.dumps({"concerts": [concert]})))
    again = (await load(store.db))[5].sale
    assert (again.seed, again.pow_bits, again.mode) == (sale.seed, 20, "random")

    source = """{"concerts": [
  {"id": 6, "title": "t", "venue": "v", "mode": "lifo"},
  {"id": 7, "title": "t", "venue": "v", "pow_bits": 40},
  {"id": 8, "title": "t", "venue": "v", "prequeue_from": "2099-01-01T00:00:00Z"}
]}"""
    with pytest.raises(CatalogError) as caught:
        validate(source)
    assert caught.value.errors == [
        "line 2: concert 6: mode must be one of fifo, random, passthrough, reject",
        "line 3: concert 7: pow_bits must be an integer from 0 to 21",
        "line 4: concert 8: prequeue_from must come before opens_at",
    ]
