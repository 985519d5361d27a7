"""One store fixture, parametrised over the embedded and the real backends.

The real pair is used when FRONTROW_TEST_REDIS_URL and FRONTROW_TEST_DATABASE_URL
are set; with FRONTROW_TEST_REQUIRE_REAL=1 (as in CI) a missing or unreachable
server fails the run instead of skipping.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from frontrow import catalog
from frontrow.app import create_app
from frontrow.config import Settings
from frontrow.keys import concert_keys
from frontrow.schema import metadata
from frontrow.store import Store, make_engine, make_redis, open_store

REAL_REDIS = os.environ.get("FRONTROW_TEST_REDIS_URL")
REAL_DB = os.environ.get("FRONTROW_TEST_DATABASE_URL")
REQUIRE_REAL = os.environ.get("FRONTROW_TEST_REQUIRE_REAL") == "1"
SECRET = "test-secret-0123456789abcdef-0123456789"

MakeStore = Callable[..., Awaitable[Store]]


def base_settings(backend: str, tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_secret": SECRET,
        "admin_token": "admin-secret-0123456789abcdef-01234",
        "demo_login": True,
        "schedulers": False,
        "redis_timeout_s": 1.0,
        # tests burst from one address; tests/test_ratelimit.py turns the limits on
        "enter_per_user": 0,
        "hold_per_user": 0,
        "maps_per_user": 0,
        "requests_per_ip": 0,
        "demo_logins_per_ip": 0,
    }
    if backend == "real":
        values["redis_url"] = REAL_REDIS
        values["database_url"] = REAL_DB
    else:
        values["database_url"] = f"sqlite+aiosqlite:///{tmp_path}/frontrow.db"
    values.update(overrides)
    return Settings(**values)


def unavailable(reason: str) -> NoReturn:
    """A server or tool the test needs is missing: a skip, or in CI a failure."""
    if REQUIRE_REAL:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "real" and not (REAL_REDIS and REAL_DB):
        unavailable("FRONTROW_TEST_REDIS_URL / FRONTROW_TEST_DATABASE_URL not set")
    return str(request.param)


async def _reset_database(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        if db.dialect.name == "postgresql":
            # an earlier test's process or task may still be in a transaction
            # (a server shutting down, a loop's last tick): this test starts
            # alone, or the DROP deadlocks with it
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            await conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)


@pytest.fixture
async def make_store(backend: str, tmp_path: Any) -> AsyncIterator[MakeStore]:
    """Stores that share one Redis and one database, each with its own settings."""
    first = base_settings(backend, tmp_path)
    redis = make_redis(first)
    if backend == "real":
        await redis.flushdb()
    db = make_engine(first)
    if backend == "real":
        await _reset_database(db)
    else:
        await catalog.migrate(db)
    await keep_the_line(redis, first)
    stores: list[Store] = []
    clients = [redis]

    async def make(**overrides: Any) -> Store:
        settings = dataclasses.replace(first, **overrides)
        client = redis
        if backend == "real" and settings.redis_timeout_s != first.redis_timeout_s:
            # the pool's wait is the client's own: a client of its own (same server)
            client = make_redis(settings)
            clients.append(client)
        store = open_store(settings, redis=client, db=db)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.catalog.close()
        await store.close_own()
    for client in clients:
        await client.aclose()
    await db.dispose()


async def keep_the_line(redis: Any, settings: Settings, concert_ids: Any = range(1, 11)) -> None:
    """Tests study the line, so entering waits in it: this interval's pass-through
    budget is spent for these concerts. By default (fifo, nobody waiting) the
    first k entrants of an interval go straight in; tests/queue/test_sale.py
    turns that back on with `let_calm_pass`."""
    for concert_id in concert_ids:
        key = concert_keys(settings.key_prefix, concert_id).calm
        await redis.set(key, 1_000_000_000, px=86_400_000)


async def let_calm_pass(store: Store, concert_id: int = 1) -> None:
    await store.redis.delete(store.keys(concert_id).calm)


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    store = await make_store()
    await catalog.seed_demo(store.db)
    return store


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(store) as c:
        yield c


class app_client:
    """An httpx client over the ASGI app of a store, lifespan included."""

    def __init__(self, store: Store) -> None:
        self.app = create_app(store=store)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://frontrow.test"
        )

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._lifespan.__aenter__()
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


def user_headers(store: Store, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {store.tokens.user_token(user_id)}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def active_token(store: Store, user_id: str, concert_id: int = 1) -> str:
    """A queue token admitted at once (the admission lease is cleared first)."""
    from frontrow.queue import core

    _, token, place = await core.enter(store, user_id, concert_id)
    if place.status != "ACTIVE":
        await store.redis.delete(store.keys(concert_id).tick)
        await core.admit(store, concert_id, "test")
        assert (await core.status(store, store.tokens.verify_queue(token))).status == "ACTIVE"
    return token


async def admit_all(store: Store, concert_id: int = 1) -> None:
    """Admit everyone waiting, ignoring the interval lease."""
    from frontrow.queue import core

    await store.redis.delete(store.keys(concert_id).tick)
    await core.configure(store, concert_id, {"admit_batch": 1_000_000})
    await core.admit(store, concert_id, "test")
    await store.redis.hdel(store.keys(concert_id).cfg, "admit_batch")


async def release(store: Store, concert: Any, hold_id: str, user_id: str) -> None:
    """Let go of a hold by its id, as DELETE /holds/{hold_id} does."""
    from frontrow.booking import holds

    ref = holds.parse_hold_id(hold_id)
    assert ref is not None, hold_id
    await holds.release(store, concert, ref, user_id)


async def add_date(
    conn: Any, concert_id: int, day: Any, seat_nos: Any, price: int = 1000, **schedule: Any
) -> int:
    """Insert a date (20:00 UTC) with priced seats straight into the catalog tables."""
    import datetime as dt

    seat_nos = list(seat_nos)
    from sqlalchemy import insert

    from frontrow.schema import schedules, seats

    schedule_id = await conn.scalar(
        insert(schedules)
        .values(
            concert_id=concert_id,
            date=day,
            sold_out=False,
            seats_left=len(seat_nos),
            starts_at=dt.datetime.combine(day, dt.time(20), dt.UTC),
            **schedule,
        )
        .returning(schedules.c.id)
    )
    await conn.execute(
        insert(seats),
        [{"schedule_id": schedule_id, "seat_no": n, "price": price} for n in seat_nos],
    )
    return int(schedule_id)


async def one_section_concert(
    store: Store, concert_id: int, day: Any, rows: int, seats: int, title: str = "t"
) -> None:
    """Import a concert of one date and one section A of `rows` rows of
    `seats` seats (price 1), and make the catalog read it."""
    import json

    from frontrow.catalog_import import apply, validate

    date = {
        "date": day.isoformat(),
        "starts_at": f"{day.isoformat()}T19:00:00Z",
        "sections": [{"name": "A", "rows": [{"from": 1, "to": rows, "seats": seats, "price": 1}]}],
    }
    concert = {"id": concert_id, "title": title, "venue": "v", "dates": [date]}
    await apply(store, validate(json.dumps({"concerts": [concert]})))
    await store.catalog.invalidate()
