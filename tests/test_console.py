"""The operations console's endpoints, on each backend: the live series read
from Redis, the audit of every admin change, and 404 without the token."""

from __future__ import annotations

import datetime as dt

import httpx

from frontrow import live, pace
from frontrow.queue import core
from frontrow.store import Store
from tests.conftest import MakeStore, active_token, app_client, bearer
from tests.e2e.test_queue_http import assert_problem
from tests.queue.test_queue import join

ADMIN = "admin-secret-0123456789abcdef-01234"


async def fresh_sample(store: Store) -> None:
    """A sample now, whatever the lease says (samples are 2 s apart in life)."""
    concert = await store.catalog.get(1)
    assert concert is not None
    await store.redis.delete(store.keys(1).base + ":livelease")
    assert await live.sample(store, concert)


async def test_the_live_series_follow_the_queue(client: httpx.AsyncClient, store: Store) -> None:
    admin = bearer(ADMIN)
    waiting = [await join(store, f"w{i}") for i in range(5)]
    first = (await client.get("/admin/concerts/1/live", headers=admin)).json()
    assert first["series"]["waiting"][-1] == 5 and first["series"]["active"][-1] == 0
    assert first["settings"]["waiting"] == 5  # the controls' values come along

    token = await active_token(store, "buyer")  # admits the line too
    day = (await client.get("/concerts/1/dates", headers=bearer(token))).json()["dates"][0]
    for seat in (1, 2):
        url = f"/concerts/1/dates/{day['date']}/seats/{seat}/hold"
        assert (await client.post(url, headers=bearer(token))).status_code == 201
    await fresh_sample(store)
    body = (await client.get("/admin/concerts/1/live", headers=admin)).json()
    series = body["series"]
    assert len(series["t"]) >= 2 and series["t"] == sorted(series["t"])
    assert series["waiting"][-1] == 0 and series["active"][-1] == 6
    assert series["admitted_per_min"][0] is None and series["admitted_per_min"][-1] > 0
    assert series["holds_per_min"][-1] > 0 and series["sales_per_min"][-1] == 0
    # is the line growing: six arrived (five in line, the buyer) beside those admitted
    assert series["arrivals_per_min"][0] is None and series["arrivals_per_min"][-1] > 0
    assert series["sold_out_in_min"][-1] is None  # nothing sold yet: no rate to project
    held = next(d for d in body["dates"] if d["date"] == day["date"])
    assert held["held"] == 2 and held["left"] == held["seats"]
    assert set(series["seats_left"]) == {d["date"] for d in body["dates"]}
    # the five in line were admitted with the buyer, whose poll brought them back
    assert series["not_back"][-1] == 5

    # one comes back; a hold of a seat that does not exist is a 404, a poll's
    # p99 is this concert's own
    await core.status(store, waiting[0])
    url = f"/concerts/1/dates/{day['date']}/seats/99999/hold"
    assert (await client.post(url, headers=bearer(token))).status_code == 404
    assert (await client.get("/queue/token", headers=bearer(token))).status_code == 200
    await pace.report(store, "test")
    await fresh_sample(store)
    series = (await client.get("/admin/concerts/1/live", headers=admin)).json()["series"]
    assert series["not_back"][-1] == 4
    assert series["answers_4xx_per_min"][-1] > 0
    assert series["answers_5xx_per_min"][-1] == 0 and series["answers_429_per_min"][-1] == 0
    assert series["poll_p99_ms"][-1] > 0


async def test_one_sampler_per_interval(store: Store) -> None:
    concert = await store.catalog.get(1)
    assert concert is not None
    assert await live.sample(store, concert)
    assert not await live.sample(store, concert)  # another process within 2 s: skipped
    assert await store.redis.llen(store.keys(1).base + ":live") == 1


def test_a_rate_is_taken_over_the_last_minute() -> None:
    t = [0, 30_000, 60_000, 90_000, 120_000]
    assert live._per_minute(t, [0, 10, 20, 30, 10]) == [None, 20.0, 20.0, 20.0, 0.0]


async def test_every_admin_change_is_audited(client: httpx.AsyncClient, store: Store) -> None:
    admin = bearer(ADMIN)
    url = "/admin/concerts/1/queue"
    assert (await client.patch(url, headers=admin, json={"admit_batch": 7})).is_success
    assert (await client.patch(url, headers=admin, json={"admit_batch": 7})).is_success  # no-op
    change = {"mode": "random", "open": False, "pow_bits": 12}
    assert (await client.patch(url, headers=admin, json=change)).is_success
    rejected = await client.patch(url, headers=admin, json={"admit_batch": -1, "mode": "fifo"})
    assert_problem(rejected, 422, "VALIDATION_FAILED")
    changes = (await client.get("/admin/concerts/1/audit", headers=admin)).json()["changes"]
    moved = [(c["field"], c["old"], c["new"]) for c in changes]
    assert sorted(moved[:3]) == [
        ("mode", "fifo", "random"),
        ("open", True, False),
        ("pow_bits", 0, 12),
    ]
    assert moved[3:] == [("admit_batch", 100, 7)]  # newest first; the no-op and the 422 left none
    assert all(c["address"] and c["at"].endswith("Z") for c in changes)
    # with a p99 target the admitter picks k; the audit still compares with the k set
    await store.redis.hset(store.keys(1).stats, "auto_batch", 55)
    assert (await client.patch(url, headers=admin, json={"admit_target_p99_ms": 300})).is_success
    assert (await client.get(url, headers=admin)).json()["admit_batch"] == 55
    assert (await client.patch(url, headers=admin, json={"admit_batch": 9})).is_success
    latest = (await client.get("/admin/concerts/1/audit", headers=admin)).json()["changes"][0]
    assert (latest["field"], latest["old"], latest["new"]) == ("admit_batch", 7, 9)


async def test_a_change_that_fails_is_not_audited(
    client: httpx.AsyncClient, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from frontrow import rules

    async def redis_down(*args: object) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(rules, "write", redis_down)
    admin = bearer(ADMIN)
    body = {"admit_batch": 3, "pow_bits": 8}
    failed = await client.patch("/admin/concerts/1/queue", headers=admin, json=body)
    assert failed.status_code == 503
    monkeypatch.undo()
    assert (await client.get("/admin/concerts/1/audit", headers=admin)).json()["changes"] == []
    settings = (await client.get("/admin/concerts/1/queue", headers=admin)).json()
    assert settings["pow_bits"] == 0  # the sale's change rolled back with the record


async def test_the_console_is_404_without_an_admin_token(make_store: MakeStore) -> None:
    store = await make_store(admin_token=None)
    async with app_client(store) as client:
        for path in ("/admin", "/admin/concerts/1/live", "/admin/concerts/1/audit"):
            assert_problem(await client.get(path, headers=bearer(ADMIN)), 404, "NOT_FOUND")


async def test_the_console_page_and_its_endpoints_need_the_token(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/admin")
    assert page.status_code == 200 and "Operations console" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # 'self' only
    for path in ("/admin/concerts/1/live", "/admin/concerts/1/audit"):
        assert_problem(await client.get(path), 401, "UNAUTHENTICATED")


async def test_admission_can_be_steered_while_the_database_is_down(
    client: httpx.AsyncClient, store: Store, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy.exc

    from frontrow import rules

    async def database_down(*args: object) -> None:
        raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError())

    admin = bearer(ADMIN)
    monkeypatch.setattr(rules, "record", database_down)
    # k = 0 stops letting in people who could not pay: it takes effect, logged
    paused = await client.patch("/admin/concerts/1/queue", headers=admin, json={"admit_batch": 0})
    assert paused.status_code == 200 and paused.json()["admit_batch"] == 0
    assert any("not audited" in r.getMessage() for r in caplog.records)
    # a sale change lives in the database: 503, nothing changed
    moved = await client.patch("/admin/concerts/1/queue", headers=admin, json={"pow_bits": 9})
    assert_problem(moved, 503, "BACKEND_UNAVAILABLE")
    monkeypatch.undo()
    settings = (await client.get("/admin/concerts/1/queue", headers=admin)).json()
    assert (settings["admit_batch"], settings["pow_bits"]) == (0, 0)


def test_the_sale_is_one_word_at_every_stage() -> None:
    from frontrow.queue.core import sale_state

    base = {"sold_out": False, "open": True, "mode": "fifo", "admit_batch": 10}
    view = {**base, "admit_target_p99_ms": 0}
    now, opens, pre = 1_000_000, 1_060_000, 990_000
    assert sale_state(view, now, opens, 0, 0) == "scheduled"
    assert sale_state(view, now, opens, now + 1, 0) == "scheduled"  # pre-queue still to come
    assert sale_state(view, now, opens, pre, 0) == "prequeue"
    assert sale_state(view, opens + 1, opens, pre, 0) == "opening"  # the draw not made yet
    assert sale_state(view, opens + 1, opens, pre, opens) == "open"
    assert sale_state(view, now, 0, 0, 0) == "open"
    assert sale_state({**view, "admit_batch": 0}, now, 0, 0, 0) == "paused"
    assert (
        sale_state({**view, "admit_batch": 0, "admit_target_p99_ms": 300}, now, 0, 0, 0) == "open"
    )
    assert sale_state({**view, "mode": "reject"}, now, 0, 0, 0) == "closed"
    assert sale_state({**view, "open": False}, now, opens, pre, 0) == "closed"
    assert sale_state({**view, "sold_out": True}, now, 0, 0, 0) == "sold_out"


async def test_the_admin_view_says_what_the_sale_is(client: httpx.AsyncClient) -> None:
    admin = bearer(ADMIN)
    url = "/admin/concerts/1/queue"
    assert (await client.get(url, headers=admin)).json()["state"] == "open"
    assert (await client.patch(url, headers=admin, json={"admit_batch": 0})).json()["state"] == (
        "paused"
    )
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    later = {"opens_at": soon.isoformat(), "admit_batch": 10}
    assert (await client.patch(url, headers=admin, json=later)).json()["state"] == "scheduled"
    pre = {"prequeue_from": "2020-01-01T00:00:00Z"}
    assert (await client.patch(url, headers=admin, json=pre)).json()["state"] == "prequeue"
    assert (await client.patch(url, headers=admin, json={"open": False})).json()["state"] == (
        "closed"
    )
