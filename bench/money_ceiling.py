"""The money ceilings: bare Starlette endpoints doing one `UPDATE ...
RETURNING`. /credit the fastest way frontrow's stack has: psycopg's pool,
autocommit, a prepared statement, one round trip (what frontrow's money
statements use, store.Statements); /credit-sqlalchemy the way the first
ceiling did it, through SQLAlchemy's async engine in a transaction."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

USERS = 500
state: dict[str, Any] = {}


async def credit(request: Request) -> Response:
    user = request.headers.get("authorization", "Bearer u0")[7:]
    async with state["pool"].connection() as conn:
        cursor = await conn.execute(
            "UPDATE bench_wallets SET balance = balance + 1"
            " WHERE user_id = %(u)s RETURNING balance",
            {"u": user},
            prepare=True,
        )
        (balance,) = await cursor.fetchone()
    return Response(
        orjson.dumps({"user_id": user, "balance": balance}), media_type="application/json"
    )


async def credit_sqlalchemy(request: Request) -> Response:
    user = request.headers.get("authorization", "Bearer u0")[7:]
    async with state["db"].begin() as conn:
        balance = await conn.scalar(
            text(
                "UPDATE bench_wallets SET balance = balance + 1"
                " WHERE user_id = :u RETURNING balance"
            ),
            {"u": user},
        )
    return Response(
        orjson.dumps({"user_id": user, "balance": balance}), media_type="application/json"
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    gc.set_threshold(50_000, 20, 20)
    url = make_url(os.environ["BENCH_DATABASE_URL"]).set(drivername="postgresql")
    state["pool"] = AsyncConnectionPool(
        url.render_as_string(hide_password=False),
        min_size=20,
        max_size=20,
        kwargs={"autocommit": True},
        open=False,
    )
    await state["pool"].open(wait=True)
    state["db"] = create_async_engine(
        os.environ["BENCH_DATABASE_URL"], pool_size=20, max_overflow=0
    )
    gc.collect()
    gc.freeze()
    yield
    await state["pool"].close()
    await state["db"].dispose()


async def prepare(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS bench_wallets"))
        await conn.execute(
            text("CREATE TABLE bench_wallets (user_id TEXT PRIMARY KEY, balance BIGINT NOT NULL)")
        )
        await conn.execute(
            text("INSERT INTO bench_wallets SELECT 'u' || i, 0 FROM generate_series(0, :n) AS i"),
            {"n": USERS - 1},
        )
    await engine.dispose()


app = Starlette(
    routes=[
        Route("/credit", credit, methods=["POST"]),
        Route("/credit-sqlalchemy", credit_sqlalchemy, methods=["POST"]),
    ],
    lifespan=lifespan,
)
