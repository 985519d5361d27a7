"""The Redis client (real, cluster or embedded) and the database engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fakeredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from frontrow.auth import Tokens
from frontrow.catalog import Catalog
from frontrow.config import Settings
from frontrow.keys import ConcertKeys, concert_keys
from frontrow.lua import Scripts


def make_redis(settings: Settings) -> Any:
    if settings.redis_url is None:
        return fakeredis.FakeAsyncRedis(decode_responses=True)
    timeout = settings.redis_timeout_s
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
    return aioredis.Redis.from_url(settings.redis_url, **common)


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

        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=settings.redis_timeout_s * 2,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, int(settings.redis_timeout_s))},
    )


@dataclass
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
        tokens=Tokens(settings.auth_secret),
        catalog=Catalog(db),
    )
