"""The Redis client (real, cluster or embedded) and the database engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import fakeredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
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


class DirectScript:
    """A script run on connections of its own, outside the pool, for the
    poll's batched status call, the hottest call there is: redis-py's
    blocking pool (a lock, a condition, metrics hooks) and command path
    spend about half of such a call's CPU (`python -m bench.pollpath`),
    more than sending the command. A call takes an idle connection or opens
    one, so calls for different concerts still run side by side. Failures
    mean what they mean through the pool: a connection that failed is
    closed and dropped, one more try on a fresh one (the pool's
    Retry(NoBackoff(), 1)), NOSCRIPT loads the script (a Redis that
    restarted empty)."""

    def __init__(self, redis: aioredis.Redis, script: Any) -> None:
        self._redis = redis
        self._script = script
        self._idle: list[Any] = []

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        command = ("EVALSHA", self._script.sha, len(keys), *keys, *args)
        retried = loaded = False
        while True:
            conn = self._idle.pop() if self._idle else self._connect()
            try:
                await conn.send_packed_command(conn.pack_command(*command), check_health=False)
                reply = await conn.read_response()
            except ResponseError as exc:
                self._idle.append(conn)  # an error reply was read whole: the connection is fine
                if not isinstance(exc, NoScriptError) or loaded:
                    raise
                await self._redis.script_load(self._script.script)
                loaded = True
                continue
            except (RedisConnectionError, RedisTimeoutError):
                await conn.disconnect(nowait=True)
                if retried:
                    raise
                retried = True
                continue
            except BaseException:  # cancelled mid-call: the reply may still come
                await conn.disconnect(nowait=True)
                raise
            self._idle.append(conn)
            return reply

    def _connect(self) -> Any:
        return self._redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().disconnect()


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

    async def close_scripts(self) -> None:
        """Close the connections a script keeps outside the pool (DirectScript)."""
        if isinstance(self.scripts.status, DirectScript):
            await self.scripts.status.close()

    async def close(self) -> None:
        await self.catalog.close()
        await self.close_scripts()
        await self.redis.aclose()
        await self.db.dispose()


def open_store(settings: Settings, redis: Any = None, db: AsyncEngine | None = None) -> Store:
    redis = make_redis(settings) if redis is None else redis
    db = make_engine(settings) if db is None else db
    scripts = Scripts(redis)
    if type(redis) is aioredis.Redis:  # not a cluster, not the embedded fakeredis
        scripts.status = DirectScript(redis, scripts.status)
    return Store(
        settings=settings,
        redis=redis,
        db=db,
        scripts=scripts,
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
