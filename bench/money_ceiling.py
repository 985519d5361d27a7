"""The money ceiling: a bare Starlette endpoint on the same SQLAlchemy async
+ psycopg stack doing one `UPDATE ... RETURNING` in a transaction."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

USERS = 500
state: dict[str, Any] = {}


async def credit(request: Request) -> Response:
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
    state["db"] = create_async_engine(
        os.environ["BENCH_DATABASE_URL"], pool_size=10, max_overflow=20
    )
    gc.collect()
    gc.freeze()
    yield
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


app = Starlette(routes=[Route("/credit", credit, methods=["POST"])], lifespan=lifespan)
