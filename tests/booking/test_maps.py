"""Seat maps rendered once (#22.2): reused rows and bodies never go stale,
the same map asked at once is read and rendered once, a user reads one map at
a time per process, and map reads are counted per user."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from frontrow import catalog, http
from frontrow.booking import holds, maps
from frontrow.store import Store
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, app_client, bearer
from tests.e2e.test_queue_http import assert_problem
from tests.wallet.test_payments_http import charge, hold

STATUS = {"A": "AVAILABLE", "H": "HELD", "S": "SOLD"}


async def reference(store: Store, section: str | None) -> list[dict[str, Any]]:
    """The map as the seat-by-seat rendering made it, from Redis as it is now."""
    concert = await store.catalog.get(1)
    assert concert is not None
    schedule = concert.schedules[0]
    venue = schedule.venue
    runs = venue.section(section).runs if section else venue.runs
    state = await holds.seat_map(store, concert, schedule, 0, len(schedule.prices) + 1)
    seats = []
    for run in runs:
        letters = state.statuses(run.first, run.count)
        for i, price in enumerate(run.prices):
            label = f"{run.section}-{run.row}-{run.number + i}"
            seats.append(
                {
                    "seat_no": run.first + i,
                    "price": price,
                    "status": STATUS[letters[i]],
                    "section": run.section,
                    "row": run.row,
                    "label": label,
                }
            )
    return seats


async def test_maps_follow_every_change(client: httpx.AsyncClient, store: Store) -> None:
    ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
    await charge(client, store, "ann", 1_000_000)

    async def agree() -> None:
        for section in (None, "A", "B"):
            query = f"?section={section}" if section else ""
            seats = (await client.get(seats_url() + query, headers=bearer(bob))).json()["seats"]
            assert seats == await reference(store, section)
            rows_url = f"{seats_url()}?form=rows" + query.replace("?", "&")
            rows = (await client.get(rows_url, headers=bearer(bob))).json()
            letters = "".join(r["status"] for r in rows["rows"])
            assert letters == "".join(s["status"][0] for s in seats)
            assert rows["section"] == section

    await agree()
    first = await hold(client, ann, 3)
    await agree()
    second = await hold(client, ann, 14)
    await agree()
    assert (await client.delete(f"/holds/{first}", headers=bearer(ann))).status_code == 204
    await agree()
    paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [second]})
    assert paid.status_code == 201
    await agree()
    seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
    assert [seats[n - 1]["status"] for n in (3, 14)] == ["AVAILABLE", "SOLD"]


async def test_the_same_map_asked_at_once_is_read_and_rendered_once(
    client: httpx.AsyncClient, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    reads = []
    real = holds.seat_map

    async def slow(*args: Any) -> Any:
        reads.append(args[3:])
        await asyncio.sleep(0.1)
        return await real(*args)

    monkeypatch.setattr(holds, "seat_map", slow)
    tokens = [await active_token(store, f"u{n}") for n in range(10)]
    answers = await asyncio.gather(*(client.get(seats_url(), headers=bearer(t)) for t in tokens))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert len(reads) == 1


async def test_a_user_reads_one_map_at_a_time(
    client: httpx.AsyncClient, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    running, most = [0], [0]
    real = holds.seat_map

    async def counted(*args: Any) -> Any:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            await asyncio.sleep(0.05)
            return await real(*args)
        finally:
            running[0] -= 1

    monkeypatch.setattr(holds, "seat_map", counted)
    ann = bearer(await active_token(store, "ann"))
    paths = [f"{seats_url()}{q}" for q in ("", "?form=rows", "?section=A", "?section=B")]
    paths.append(seats_url().replace("/seats", "/sections"))
    answers = await asyncio.gather(*(client.get(p, headers=ann) for p in paths))
    assert {r.status_code for r in answers} == {200}
    assert most[0] == 1
    assert maps._readers == {}  # nothing kept once the user's reads are done
    bob = bearer(await active_token(store, "bob"))
    most[0] = 0
    both = [client.get(paths[0], headers=ann), client.get(paths[2], headers=bob)]
    assert {r.status_code for r in await asyncio.gather(*both)} == {200}
    assert most[0] == 2  # another user is not behind ann


async def test_map_reads_are_counted_per_user(make_store: MakeStore) -> None:
    store = await make_store(maps_per_user=3)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
        overview = seats_url().replace("/seats", "/sections")
        for path in (seats_url(), overview, f"{seats_url()}?form=rows"):
            assert (await client.get(path, headers=bearer(ann))).status_code == 200
        refused = await client.get(seats_url(), headers=bearer(ann))
        assert_problem(refused, 429, "TOO_MANY_REQUESTS")
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await client.get(seats_url(), headers=bearer(bob))).status_code == 200


async def test_a_map_is_gzipped_once_while_its_seats_stay_the_same(
    client: httpx.AsyncClient, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    made = []
    real = http.gzip.compress
    monkeypatch.setattr(http.gzip, "compress", lambda *a, **k: made.append(1) or real(*a, **k))
    ann, bob = bearer(await active_token(store, "ann")), bearer(await active_token(store, "bob"))
    gz = {"Accept-Encoding": "gzip"}
    plain = await client.get(seats_url(), headers={**bob, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    for _ in range(3):
        zipped = await client.get(seats_url(), headers={**bob, **gz})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["vary"] == "Accept-Encoding"
        assert zipped.json() == plain.json()
    assert len(made) == 1
    await client.post(seats_url(5), headers=ann)
    changed = await client.get(seats_url(), headers={**bob, **gz})
    assert changed.json()["seats"][4]["status"] == "HELD" and len(made) == 2


async def test_counts_are_kept_to_the_seat_through_holds_expiry_and_sales(
    make_store: MakeStore,
) -> None:
    """/sections and /dates count from the kept counts (no seat read): every
    hold, release, expiry and sale shows at once, section by section (#25.2)."""
    store = await make_store(hold_ttl_s=0.6)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann, viewer = await active_token(store, "ann"), await active_token(store, "viewer")
        await charge(client, store, "ann", 1_000_000)
        sections_url = seats_url().replace("/seats", "/sections")
        look = bearer(viewer)

        async def left() -> tuple[dict[str, int], int]:
            listed = (await client.get(sections_url, headers=look)).json()["sections"]
            dates = (await client.get("/concerts/1/dates", headers=look)).json()["dates"]
            return {s["name"]: s["available_seats"] for s in listed}, dates[0]["available_seats"]

        assert await left() == ({"A": 10, "B": 40}, 50)
        a, b = await hold(client, ann, 3), await hold(client, ann, 30)
        assert await left() == ({"A": 9, "B": 39}, 48)
        assert (await client.delete(f"/holds/{b}", headers=bearer(ann))).status_code == 204
        assert await left() == ({"A": 9, "B": 40}, 49)
        paid = await client.post("/payments", headers=bearer(ann), json={"hold_ids": [a]})
        assert paid.status_code == 201
        assert await left() == ({"A": 9, "B": 40}, 49)  # sold now, not held
        bob = await active_token(store, "bob")
        await hold(client, bob, 11)  # B
        best = seats_url().replace("/seats", "/best-available")
        held = await client.post(best, headers=bearer(bob), json={"count": 2, "section": "A"})
        assert held.status_code == 201
        assert await left() == ({"A": 7, "B": 39}, 46)
        await asyncio.sleep(0.7)  # the holds run out; nothing tells Redis
        assert await left() == ({"A": 9, "B": 40}, 49)
