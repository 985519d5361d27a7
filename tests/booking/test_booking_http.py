"""Dates, seat maps and holds over HTTP, on each backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx

from frontrow import catalog
from frontrow.queue import core
from frontrow.store import Store
from tests.conftest import (
    MakeStore,
    active_token,
    add_date,
    admit_all,
    app_client,
    bearer,
    user_headers,
)
from tests.e2e.test_queue_http import assert_problem


def first_date() -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)).isoformat()


def seats_url(seat: int | None = None, date: str | None = None) -> str:
    url = f"/concerts/1/dates/{date or first_date()}/seats"
    return url if seat is None else f"{url}/{seat}/hold"


async def test_dates_list_upcoming_dates_with_counts(
    client: httpx.AsyncClient, store: Store
) -> None:
    token = await active_token(store, "ann")
    body = (await client.get("/concerts/1/dates", headers=bearer(token))).json()
    assert body["concert_id"] == 1 and len(body["dates"]) == 3
    assert body["timezone"] == "Asia/Seoul"
    first = body["dates"][0]
    # 19:00 in Seoul: the date is the venue's day, the time is UTC
    assert first["date"] == first_date() and first["starts_at"] == f"{first_date()}T10:00:00Z"
    assert first["available_seats"] == 50 and first["sold_out"] is False
    await client.post(seats_url(3), headers=bearer(token))
    first = (await client.get("/concerts/1/dates", headers=bearer(token))).json()["dates"][0]
    assert first["available_seats"] == 49


async def test_seat_map_shows_prices_and_states(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    held = await client.post(seats_url(2), headers=bearer(token))
    assert held.status_code == 201
    seats = (await client.get(seats_url(), headers=bearer(token))).json()["seats"]
    assert [s["seat_no"] for s in seats] == list(range(1, 51))
    assert seats[0] == {
        "seat_no": 1,
        "price": 120000,
        "status": "AVAILABLE",
        "section": "A",
        "row": "1",
        "label": "A-1-1",
    }
    assert seats[1]["status"] == "HELD" and seats[49]["price"] == 80000
    assert seats[49]["label"] == "B-4-10"  # the demo's second section, four rows of ten


async def test_sections_and_a_section_s_seats(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    for seat in (2, 15):
        assert (await client.post(seats_url(seat), headers=bearer(token))).status_code == 201
    url = f"/concerts/1/dates/{first_date()}/sections"
    body = (await client.get(url, headers=bearer(token))).json()
    assert body == {
        "concert_id": 1,
        "date": first_date(),
        "sections": [
            {
                "name": "A",
                "rows": 1,
                "total_seats": 10,
                "available_seats": 9,
                "min_price": 120000,
                "max_price": 120000,
                "at": None,  # the demo places no section in a picture
            },
            {
                "name": "B",
                "rows": 4,
                "total_seats": 40,
                "available_seats": 39,
                "min_price": 80000,
                "max_price": 80000,
                "at": None,
            },
        ],
    }
    only_b = (await client.get(seats_url() + "?section=B", headers=bearer(token))).json()
    assert [s["seat_no"] for s in only_b["seats"]] == list(range(11, 51))
    assert only_b["seats"][4] == {
        "seat_no": 15,
        "price": 80000,
        "status": "HELD",
        "section": "B",
        "row": "1",
        "label": "B-1-5",
    }
    rows = (await client.get(seats_url() + "?section=B&form=rows", headers=bearer(token))).json()
    assert rows["section"] == "B" and len(rows["rows"]) == 4
    assert rows["rows"][0] == {
        "section": "B",
        "row": "1",
        "seat_no": 11,
        "number": 1,
        "prices": [[10, 80000]],
        "status": "AAAAHAAAAA",
    }
    whole = (await client.get(seats_url() + "?form=rows", headers=bearer(token))).json()
    assert whole["rows"][0]["status"] == "AHAAAAAAAA" and len(whole["rows"]) == 5
    assert_problem(
        await client.get(seats_url() + "?section=Z", headers=bearer(token)), 404, "NOT_FOUND"
    )
    assert_problem(
        await client.get(seats_url() + "?form=xml", headers=bearer(token)),
        422,
        "VALIDATION_FAILED",
    )


async def test_large_answers_are_compressed(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    gzip_ok = {**bearer(token), "Accept-Encoding": "gzip"}
    big = await client.get(seats_url(), headers=gzip_ok)
    assert len(big.content) >= 1000 and big.headers["content-encoding"] == "gzip"
    assert big.json()["seats"][0]["seat_no"] == 1  # httpx undid the gzip
    assert (
        "content-encoding"
        not in (
            await client.get(seats_url(), headers={**bearer(token), "Accept-Encoding": "identity"})
        ).headers
    )
    small = await client.get("/holds", headers=gzip_ok)  # under 1 KB: not worth it
    assert "content-encoding" not in small.headers


async def test_every_large_answer_is_compressed_whole_or_in_parts(
    client: httpx.AsyncClient,
) -> None:
    from importlib.resources import files

    gzip_ok = {"Accept-Encoding": "gzip"}
    script = await client.get("/static/app.js", headers=gzip_ok)  # a file, sent in parts
    assert script.headers["content-encoding"] == "gzip"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.content == (files("frontrow") / "web" / "app.js").read_bytes()
    document = await client.get("/openapi.json", headers=gzip_ok)  # JSON, whole
    assert document.headers["content-encoding"] == "gzip"
    assert int(document.headers["content-length"]) < len(document.content)
    assert document.json()["openapi"].startswith("3.1")
    page = await client.get("/", headers=gzip_ok)
    assert page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"
    plain = await client.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


async def test_hold_then_rehold_then_release(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    response = await client.post(seats_url(7), headers=bearer(token))
    assert response.status_code == 201
    hold = response.json()
    assert hold["seat_no"] == 7 and hold["price"] == 120000 and hold["date"] == first_date()
    assert hold["hold_id"].startswith("h_") and hold["expires_at"].endswith("Z")
    again = await client.post(seats_url(7), headers=bearer(token), json={})
    assert again.status_code == 200 and again.json()["hold_id"] == hold["hold_id"]

    other = await active_token(store, "bob")
    assert_problem(await client.post(seats_url(7), headers=bearer(other)), 409, "SEAT_UNAVAILABLE")
    assert_problem(
        await client.delete(f"/holds/{hold['hold_id']}", headers=bearer(other)), 403, "FORBIDDEN"
    )
    assert (
        await client.delete(f"/holds/{hold['hold_id']}", headers=bearer(token))
    ).status_code == 204
    assert (await client.post(seats_url(7), headers=bearer(other))).status_code == 201
    assert_problem(
        await client.delete(f"/holds/{hold['hold_id']}", headers=bearer(token)), 404, "NOT_FOUND"
    )
    assert_problem(
        await client.delete("/holds/h_nonsense", headers=bearer(token)), 404, "NOT_FOUND"
    )


async def test_my_holds_lists_every_tab_s_holds(client: httpx.AsyncClient, store: Store) -> None:
    ann = await active_token(store, "ann")
    assert (await client.get("/holds", headers=bearer(ann))).json() == {"holds": []}
    later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=8)).isoformat()
    second = (await client.post(seats_url(5, later), headers=bearer(ann))).json()
    first = (await client.post(seats_url(9), headers=bearer(ann))).json()
    released = (await client.post(seats_url(10), headers=bearer(ann))).json()
    await client.delete(f"/holds/{released['hold_id']}", headers=bearer(ann))
    bob = await active_token(store, "bob")
    await client.post(seats_url(11), headers=bearer(bob))
    # the same user, the same place: what another tab asks for
    entered = await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
    again = entered.json()["token"]
    listed = (await client.get("/holds", headers=bearer(again))).json()["holds"]
    assert listed == [first, second]  # by date, then seat; bob's and the released one absent
    _, waiting, _ = await core.enter(store, "cy", 1)
    assert_problem(await client.get("/holds", headers=bearer(waiting)), 401, "TOKEN_WAITING")


async def test_leaving_releases_the_holds(client: httpx.AsyncClient, store: Store) -> None:
    ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
    for seat in (3, 4):
        assert (await client.post(seats_url(seat), headers=bearer(ann))).status_code == 201
    assert (await client.delete("/queue/token", headers=bearer(ann))).status_code == 204
    seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
    assert [seats[2]["status"], seats[3]["status"]] == ["AVAILABLE", "AVAILABLE"]
    assert (await client.post(seats_url(3), headers=bearer(bob))).status_code == 201
    # ann comes back with a new session; her old token's leave must not end its holds
    ann_again = await active_token(store, "ann")
    assert (await client.post(seats_url(6), headers=bearer(ann_again))).status_code == 201
    assert (await client.delete("/queue/token", headers=bearer(ann))).status_code == 204
    assert len((await client.get("/holds", headers=bearer(ann_again))).json()["holds"]) == 1


async def test_leaving_is_one_redis_call_unless_seats_are_held(
    client: httpx.AsyncClient, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """leave.lua finds the user's holds itself: most who leave hold nothing."""
    calls = []
    script = store.scripts.leave

    async def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["args"][2:])
        return await script(*args, **kwargs)

    monkeypatch.setattr(store.scripts, "leave", counted)
    ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
    assert (await client.delete("/queue/token", headers=bearer(ann))).status_code == 204
    assert calls == [["ask"]]
    held = (await client.post(seats_url(5), headers=bearer(bob))).json()
    calls.clear()
    assert (await client.delete("/queue/token", headers=bearer(bob))).status_code == 204
    assert calls == [["ask"], ["given", held["hold_id"], 5]]
    cy = await active_token(store, "cy")
    seats = (await client.get(seats_url(), headers=bearer(cy))).json()["seats"]
    assert seats[4]["status"] == "AVAILABLE"


async def test_expired_hold_frees_the_seat(make_store: MakeStore) -> None:
    store = await make_store(hold_ttl_s=0.3)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        ann, bob = await active_token(store, "ann"), await active_token(store, "bob")
        assert (await client.post(seats_url(9), headers=bearer(ann))).status_code == 201
        assert (await client.post(seats_url(9), headers=bearer(bob))).status_code == 409
        await asyncio.sleep(0.4)
        seats = (await client.get(seats_url(), headers=bearer(bob))).json()["seats"]
        assert seats[8]["status"] == "AVAILABLE"
        assert (await client.post(seats_url(9), headers=bearer(bob))).status_code == 201


async def test_hold_limit_per_user(make_store: MakeStore) -> None:
    store = await make_store(max_holds_per_user=2)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        token = await active_token(store, "ann")
        for seat in (1, 2):
            assert (await client.post(seats_url(seat), headers=bearer(token))).status_code == 201
        assert_problem(await client.post(seats_url(3), headers=bearer(token)), 409, "HOLD_LIMIT")
        other_date = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=8)).isoformat()
        assert_problem(
            await client.post(seats_url(3, other_date), headers=bearer(token)), 409, "HOLD_LIMIT"
        )


async def test_booking_needs_an_active_token_of_this_concert(
    client: httpx.AsyncClient, store: Store
) -> None:

    _, waiting, _ = await core.enter(store, "wait", 1)
    assert_problem(
        await client.get("/concerts/1/dates", headers=bearer(waiting)), 401, "TOKEN_WAITING"
    )
    active = await active_token(store, "act")
    await core.leave(store, store.tokens.verify_queue(active))
    assert_problem(
        await client.get("/concerts/1/dates", headers=bearer(active)), 401, "TOKEN_EXPIRED"
    )
    other = store.tokens.queue_token("act", 2, "t_other")
    assert_problem(await client.get("/concerts/1/dates", headers=bearer(other)), 403, "FORBIDDEN")
    user_token = store.tokens.user_token("act")
    assert_problem(
        await client.get("/concerts/1/dates", headers=bearer(user_token)), 401, "UNAUTHENTICATED"
    )
    assert_problem(await client.get("/concerts/1/dates"), 401, "UNAUTHENTICATED")


async def test_unknown_date_seat_and_bad_body(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    assert_problem(
        await client.get(seats_url(date="2001-01-01"), headers=bearer(token)), 404, "NOT_FOUND"
    )
    assert_problem(
        await client.get(seats_url(date="tomorrow"), headers=bearer(token)), 404, "NOT_FOUND"
    )
    assert_problem(await client.post(seats_url(51), headers=bearer(token)), 404, "NOT_FOUND")
    assert_problem(await client.post(seats_url(0), headers=bearer(token)), 404, "NOT_FOUND")
    response = await client.post(seats_url(4), headers=bearer(token), json={"seat": 5})
    assert_problem(response, 422, "VALIDATION_FAILED")
    response = await client.post(
        seats_url(4), headers={**bearer(token), "content-type": "application/json"}, content=b"{"
    )
    assert_problem(response, 400, "BAD_REQUEST")
    seats = (await client.get(seats_url(), headers=bearer(token))).json()["seats"]
    assert seats[3]["status"] == "AVAILABLE"  # the rejected requests held nothing


async def test_500_concurrent_holds_on_one_seat_one_wins(store: Store) -> None:
    for i in range(500):
        from frontrow.queue import core

        await core.enter(store, f"u{i}", 1)
    await admit_all(store)
    tokens = [
        store.tokens.queue_token(f"u{i}", 1, (await store.redis.hget(store.keys(1).users, f"u{i}")))
        for i in range(500)
    ]
    async with app_client(store) as client:
        responses = await asyncio.gather(
            *(client.post(seats_url(25), headers=bearer(t)) for t in tokens)
        )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(409) == 499
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"SEAT_UNAVAILABLE"}


async def test_enter_requires_user_token(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "ann")
    assert_problem(
        await client.post("/concerts/1/queue", headers=bearer(token)), 401, "UNAUTHENTICATED"
    )
    assert (
        await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
    ).status_code == 200


async def test_a_date_that_has_started_sells_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    past = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    async with store.db.begin() as conn:
        await add_date(conn, 1, past, (1,), price=10)
    await store.catalog.invalidate()
    token = await active_token(store, "late")
    dates = (await client.get("/concerts/1/dates", headers=bearer(token))).json()["dates"]
    assert past.isoformat() not in [d["date"] for d in dates]
    played = seats_url(date=past.isoformat())
    assert_problem(await client.get(played, headers=bearer(token)), 404, "NOT_FOUND")
    assert_problem(
        await client.post(seats_url(1, past.isoformat()), headers=bearer(token)), 404, "NOT_FOUND"
    )


async def test_a_hold_is_one_redis_call_that_checks_the_session(make_store: MakeStore) -> None:
    """The session check and the rate limits are inside the hold's own script:
    one Redis command a hold; a token that is not ACTIVE holds and counts nothing."""
    store = await make_store(hold_per_user=100, requests_per_ip=100)
    await catalog.seed_demo(store.db)
    async with app_client(store) as client:
        await _one_call_a_hold(client, store)


async def _one_call_a_hold(client: httpx.AsyncClient, store: Store) -> None:
    _, waiting, _ = await core.enter(store, "wait", 1)
    best = f"/concerts/1/dates/{first_date()}/best-available"
    assert_problem(await client.post(seats_url(4), headers=bearer(waiting)), 401, "TOKEN_WAITING")
    assert_problem(
        await client.post(best, headers=bearer(waiting), json={"count": 2}), 401, "TOKEN_WAITING"
    )
    k = store.keys(1)
    assert await store.redis.keys(k.rate("hold", "*")) == []  # nothing counted
    assert await store.redis.zcard(k.holds(await _first_schedule(store), "A")) == 0

    token = await active_token(store, "ann")
    claims = store.tokens.verify_queue(token)
    # two seconds left: the hold must slide it, as a poll would
    await store.redis.zadd(k.active, {claims.token_id: int(time.time() * 1000) + 2000})
    sent: list[str] = []
    real = store.redis.execute_command

    async def counting(*args: object, **options: object) -> object:
        sent.append(str(args[0]))
        return await real(*args, **options)

    store.redis.execute_command = counting  # type: ignore[method-assign]
    direct = getattr(store.scripts.hold, "direct", None)  # a plain Redis: scripts go direct
    if direct is not None:
        real_direct = direct.call

        async def counting_direct(command: bytes, script: object) -> object:
            sent.append(command.split(b"\r\n")[2].decode())
            return await real_direct(command, script)

        direct.call = counting_direct
    try:
        assert (await client.post(seats_url(4), headers=bearer(token))).status_code == 201
        assert len(sent) == 1 and sent[0].upper() in ("EVALSHA", "EVAL")
        sent.clear()
        held = await client.post(best, headers=bearer(token), json={"count": 2})
        assert held.status_code == 201 and len(held.json()["holds"]) == 2
        assert len(sent) == 1
    finally:
        del store.redis.execute_command
        if direct is not None:
            del direct.call
    expires = await store.redis.zscore(k.active, claims.token_id)
    assert expires > time.time() * 1000 + store.settings.session_ttl_s * 1000 - 5000
    assert int(await store.redis.get(k.rate("hold", "u:ann"))) == 2

    await core.leave(store, claims)
    assert_problem(await client.post(seats_url(9), headers=bearer(token)), 401, "TOKEN_EXPIRED")
    assert int(await store.redis.get(k.rate("hold", "u:ann"))) == 2


async def _first_schedule(store: Store) -> int:
    concert = await store.catalog.get(1)
    assert concert is not None
    return concert.schedules[0].id
