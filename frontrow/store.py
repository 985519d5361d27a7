"""The Redis client (real, cluster or embedded) and the database engine."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fakeredis
import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from frontrow.auth import Tokens
from frontrow.catalog import Catalog
from frontrow.config import Settings
from frontrow.deadline import deadline
from frontrow.keys import ConcertKeys, concert_keys
from frontrow.lua import Scripts
from frontrow.statements import MONEY_CONNECTIONS, Statements
from frontrow.turns import Batch, Turns, fail

REDIS_MAX_CONNECTIONS = 128
log = logging.getLogger("frontrow.store")


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The Sentinels' master through a blocking pool: under a burst, requests
    queue for a connection as they do with one Redis (make_redis)."""


class WaitingCluster(aioredis.RedisCluster):
    """A Redis Cluster client whose commands wait for a connection under a
    burst, as the blocking pool's do, instead of failing: redis-py's cluster
    raises MaxConnectionsError once a node's connections are all in use (163
    of 3,000 entries got 503 in one rush). At most max_connections commands
    are out at once, so no node ever runs out; a command that waits longer
    than the timeout fails as an unreachable Redis does (503). The client is
    initialized before its first command, alone: redis-py's asyncio cluster
    must be (its maintainers' word), and a burst that starts it lazily
    reaches connections its own discovery closes under them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(kwargs.get("max_connections", REDIS_MAX_CONNECTIONS))
        self._wait_s = kwargs.get("socket_timeout") or 1.0
        self._started = False
        self._starting = asyncio.Lock()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if not self._started:
            async with self._starting:
                if not self._started:
                    await self.initialize()
                    self._started = True
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise RedisConnectionError("no Redis connection free in time") from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._slots.release()


def make_redis(settings: Settings) -> Any:
    # A blocking pool: under a burst, requests queue for a connection for up
    # to the timeout instead of failing at the pool's limit.
    timeout = settings.redis_timeout_s
    if settings.embedded:
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
    if settings.redis_sentinels:
        # The master the Sentinels name now, asked again on every new
        # connection: after a failover the next connection goes to the new one.
        # (untyped before redis-py 8)
        sentinel = Sentinel(list(settings.redis_sentinels), **common)  # type: ignore[no-untyped-call, unused-ignore]
        return sentinel.master_for(
            settings.redis_master or "",
            connection_pool_class=BlockingSentinelPool,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=timeout,
        )
    assert settings.redis_url is not None
    if settings.redis_cluster:
        return WaitingCluster.from_url(
            settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, **common
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=timeout, **common
    )
    return aioredis.Redis.from_pool(pool)


def pack(command: tuple[Any, ...]) -> bytes:
    """A command as Redis reads it (an array of bulk strings), packed by
    hiredis in C: redis-py's pack_command spends ~1.5 µs an argument in
    Python, a script call has 20 to 40 of them, and every booking step is
    one. (This was a packer of our own in Python, twice hiredis's time.)"""
    packed: bytes = hiredis.pack_command(command)
    return packed


PIPELINE_MAX = 64  # commands one write carries at most


class Direct(Turns[bytes]):
    """Connections of a store's own, outside redis-py's pool, for its Lua
    scripts: every enter, poll, hold, payment step and admission tick is
    one. redis-py's blocking pool (a lock, a condition, metrics hooks) and
    command path spend about half of a call's CPU (`python -m
    bench.pollpath`), more than sending the command.

    The calls made in one turn of the event loop go to Redis together
    (frontrow.turns): one write on one connection (a pipeline), their
    replies read back in order. A pipeline takes an idle connection or
    opens one, at most `limit` at once: past it, it waits for one as the
    blocking pool's calls do. Failures mean what they mean through the pool: a
    connection that failed is closed and dropped and each of its calls is
    tried once more (the pool's Retry(NoBackoff(), 1)); NOSCRIPT loads the
    script (a Redis that restarted empty). A caller that goes away leaves
    its reply to be read: the connection stays in step."""

    def __init__(self, redis: aioredis.Redis, limit: int, wait_s: float) -> None:
        super().__init__(PIPELINE_MAX, limit, wait_s, "Redis", RedisConnectionError)
        self._redis = redis
        self._idle: list[Any] = []

    async def call(self, command: bytes, script: Any) -> Any:
        retried = loaded = False
        while True:
            try:
                return await self._queue(command)
            except NoScriptError:
                if loaded:
                    raise
                await self._redis.script_load(script.script)
                loaded = True
            except (RedisConnectionError, RedisTimeoutError):
                if retried:
                    raise
                retried = True

    async def _send(self, calls: Batch[bytes]) -> None:
        conn = self._idle.pop() if self._idle else self._connect()
        try:
            with deadline(self._wait_s):  # a Redis that stops answering fails the batch
                await conn.send_packed_command(b"".join(c for c, _ in calls), check_health=False)
                for _, reply in calls:
                    try:
                        value = await conn.read_response()
                    except ResponseError as exc:  # an error reply, read whole: the next follows
                        if not reply.done():
                            reply.set_exception(exc)
                        continue
                    if not reply.done():
                        reply.set_result(value)
        except BaseException as exc:  # the rest of the replies are lost with the connection
            await conn.disconnect(nowait=True)
            failed: Exception = RedisConnectionError(str(exc))
            if isinstance(exc, RedisTimeoutError):
                failed = exc
            elif isinstance(exc, TimeoutError):  # the deadline's
                failed = RedisTimeoutError(f"no answer from Redis in {self._wait_s:g} s")
            fail(calls, failed)
            if not isinstance(exc, Exception):
                raise
        else:
            self._idle.append(conn)

    def _connect(self) -> Any:
        conn = self._redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        # redis-py would arm a timer for each write and each reply (asyncio.timeout):
        # the batch's one deadline (above) bounds them all
        conn.socket_timeout = None
        return conn

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().disconnect()


class DirectScript:
    """A registered script called through a store's Direct connections
    (a pipeline still takes redis-py's own call)."""

    def __init__(self, direct: Direct, script: Any) -> None:
        self.direct = direct
        self.script = script
        self._head = ("EVALSHA", script.sha)

    async def __call__(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        if client is not None:
            return await self.script(keys=keys, args=args, client=client)
        return await self.direct.call(pack((*self._head, len(keys), *keys, *args)), self.script)


def database_connect_args(settings: Settings) -> dict[str, Any]:
    """libpq's own deadlines: a connection that cannot be opened, a sent
    statement the server never acknowledges (packets dropped: the TCP user
    timeout ends it) and an idle pooled connection to a host that went away
    (keepalives) all fail within about the database timeout, as a 503."""
    timeout_s = settings.database_timeout_s
    return {
        "connect_timeout": max(1, round(timeout_s)),
        "tcp_user_timeout": int(timeout_s * 1000),
        "keepalives": 1,
        "keepalives_idle": max(1, round(timeout_s)),
        "keepalives_interval": 1,
        "keepalives_count": 2,
    }


def engine_pool(settings: Settings) -> int:
    """The engine's connections: the money statements have FRONTROW_DATABASE_POOL
    of their own (Statements); reads and everything else share a quarter of that."""
    return max(2, settings.database_pool // 4)


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        # One connection a process: SQLite has one writer at a time, and
        # writers on several connections wait for its lock in the driver's
        # sleeps (up to 100 ms each), where one connection takes them in turn.
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.database_timeout_s,
            connect_args={"timeout": 30},
        )

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
        # A fixed pool: a burst waits for a connection (503 past the database
        # timeout) instead of opening and closing overflow connections, 2,498
        # of them in one rush of 8,000 orders (3 ms of PostgreSQL CPU an order).
        pool_size=engine_pool(settings),
        max_overflow=0,
        pool_timeout=settings.database_timeout_s,
        # No ping per checkout (a round trip on every money move): a pooled
        # connection that died is found by its first statement, which the
        # money paths run again once (once_more_if_dropped).
        connect_args=database_connect_args(settings),
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
    # PostgreSQL's money statements (None on SQLite, which runs them in steps)
    statements: Statements | None = None
    # lottery seeds by concert, as Redis has them (rules.seed): a seed never changes
    seeds: dict[int, str] = field(default_factory=dict)
    # rules being put back into a Redis that has none, by concert (rules.restore)
    restoring: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    # users this process has seen refused (ratelimit.check): (concert, action,
    # user) -> until when, time.monotonic()
    refused: dict[tuple[int, str, str], float] = field(default_factory=dict)

    def keys(self, concert_id: int) -> ConcertKeys:
        return concert_keys(self.settings.key_prefix, concert_id)

    async def close_own(self) -> None:
        """Close the connections this store keeps beside the Redis client's
        pool and the engine (Direct, Statements), which others may share."""
        if isinstance(self.scripts.status, DirectScript):
            await self.scripts.status.direct.close()
        if self.statements is not None:
            await self.statements.close()

    async def close(self) -> None:
        await self.catalog.close()
        await self.close_own()
        await self.redis.aclose()
        await self.db.dispose()


def money_statements(settings: Settings) -> Statements:
    url = make_url(settings.database_url).set(drivername="postgresql")
    return Statements(
        url.render_as_string(hide_password=False),
        # pg_stat_activity tells them apart
        {"application_name": MONEY_CONNECTIONS, **database_connect_args(settings)},
        size=settings.database_pool,
        wait_s=settings.database_timeout_s,
    )


def open_store(settings: Settings, redis: Any = None, db: AsyncEngine | None = None) -> Store:
    redis = make_redis(settings) if redis is None else redis
    db = make_engine(settings) if db is None else db
    scripts = Scripts(redis)
    # not a cluster, not the embedded fakeredis, and not through Sentinel (its
    # connections, made outside the pool, never answered: the pool's do)
    if type(redis) is aioredis.Redis and not settings.redis_sentinels:
        direct = Direct(redis, REDIS_MAX_CONNECTIONS, settings.redis_timeout_s)
        for name in scripts.NAMES:
            setattr(scripts, name, DirectScript(direct, getattr(scripts, name)))
    owner = f"{socket.gethostname()}:{os.getpid()}"
    store = Store(
        settings=settings,
        redis=redis,
        db=db,
        scripts=scripts,
        tokens=Tokens(settings.auth_secret, settings.user_token_max_age_s),
        catalog=Catalog(db, redis=redis, prefix=settings.key_prefix, owner=owner),
        statements=money_statements(settings) if db.dialect.name == "postgresql" else None,
    )
    if settings.embedded:
        # `frontrow catalog import` cannot reach this process's in-memory Redis:
        # the rules of a concert it changed are written here when the copy loads
        store.catalog.on_change = functools.partial(_sync_rules, store)
    return store


async def _sync_rules(store: Store, changed: list[Any]) -> None:
    from frontrow import rules
    from frontrow.errors import Problem

    for concert in changed:
        try:
            await rules.restore(store, concert.id, how="change")
        except Problem as refused:
            log.warning("concert %s: the imported sale is refused: %s", concert.id, refused.detail)


T = TypeVar("T")


_abandoned: set[asyncio.Future[Any]] = set()


async def database_call(store: Store, work: Callable[[], Awaitable[T]]) -> T:
    """Run a request's database work within FRONTROW_DATABASE_TIMEOUT_S: a
    database that stops answering (packets lost, the server stuck, the
    connections open) is a quick 503, TimeoutError being a backend error,
    never a request that hangs. The work itself is not cancelled: psycopg
    spends up to 10 s trying to cancel a statement in flight, so it is left
    to end by itself (its answer is unknown either way: a retry with the
    same Idempotency-Key learns it). Run again once when its connection
    turned out to be dead (the database restarted since the pool last used
    it); the pool has dropped it."""

    async def attempt() -> T:
        try:
            return await work()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return await work()

    running = asyncio.ensure_future(attempt())
    try:
        # asyncio.wait never cancels what it waits for (as wait_for on a
        # shield does, for two more futures and a timeout context a call)
        await asyncio.wait((running,), timeout=store.settings.database_timeout_s)
    except BaseException:  # the request itself was cancelled
        _abandon(running)
        raise
    if not running.done():
        _abandon(running)
        raise TimeoutError("the database did not answer in time")
    return running.result()


async def statement_call(store: Store, sql: str, params: dict[str, Any], again: bool = True) -> Any:
    """A money statement's row (Statements.one) within the same deadline as
    database_call's, and abandoned, not cancelled, past it as that is: its
    batch's task runs on and drops the answer nobody waits for. Without
    database_call's task and timer a call: ~2 % of an order's instructions
    in the app (`python -m bench.orderpath --instructions`)."""
    assert store.statements is not None  # PostgreSQL
    with deadline(store.settings.database_timeout_s):
        return await store.statements.one(sql, params, again)


def _abandon(running: asyncio.Future[Any]) -> None:
    if not running.done():
        _abandoned.add(running)
        running.add_done_callback(_forget)


def _forget(done: asyncio.Future[Any]) -> None:
    _abandoned.discard(done)
    if not done.cancelled() and done.exception() is not None:
        log.warning("database work that outlived its request failed: %r", done.exception())
