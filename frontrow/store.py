"""The Redis client (real, cluster or embedded) and the database engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import fakeredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from frontrow.auth import Tokens
from frontrow.catalog import Catalog
from frontrow.config import Settings
from frontrow.keys import ConcertKeys, concert_keys
from frontrow.lua import Scripts

REDIS_MAX_CONNECTIONS = 128


def make_redis(settings: Settings) -> Any:
    # A blocking pool: under a burst, requests queue for a connection for up
    # to the timeout instead of failing at the pool's limit.
    timeout = settings.redis_timeout_s
    if settings.redis_url is None:
        return fakeredis.FakeAsyncRedis(
            decode_responses=True,
            connection_pool_class=aioredis.BlockingConnectionPool,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=timeout,
        )
    # One quick retry only: during an outage a request must fail fast with a
    # 503, not sit in redis-py's default backoff.
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
    }
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url, **common)
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=timeout, **common
    )
    return aioredis.Redis.from_pool(pool)


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # Let SQLAlchemy, not the driver, open transactions (below).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A deferred transaction that reads, then writes, fails at once with
            # SQLITE_BUSY when another writer went first; IMMEDIATE takes the
            # write lock up front, so concurrent money changes queue up instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        # No ping per checkout (a round trip on every money move): a pooled
        # connection that died is found by its first statement, which the
        # money paths run again once (once_more_if_dropped).
        connect_args={"connect_timeout": max(1, int(settings.redis_timeout_s))},
    )


@dataclass(eq=False)
class Store:
    """Everything a request handler needs, created once per process in lifespan."""

    settings: Settings
    redis: Any
    db: AsyncEngine
    scripts: Scripts
    tokens: Tokens
    catalog: Catalog

    def keys(self, concert_id: int) -> ConcertKeys:
        return concert_keys(self.settings.key_prefix, concert_id)

    async def close(self) -> None:
        await self.catalog.close()
        await self.redis.aclose()
        await self.db.dispose()


def open_store(settings: Settings, redis: Any = None, db: AsyncEngine | None = None) -> Store:
    redis = make_redis(settings) if redis is None else redis
    db = make_engine(settings) if db is None else db
    return Store(
        settings=settings,
        redis=redis,
        db=db,
        scripts=Scripts(redis),
        tokens=Tokens(settings.auth_secret, settings.user_token_max_age_s),
        catalog=Catalog(db),
    )


T = TypeVar("T")


async def once_more_if_dropped(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` again once when its connection turned out to be dead (the
    database restarted since the pool last used it); the pool has dropped it."""
    try:
        return await work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        return await work()
