"""The seeds' relational design, as a baseline: a PostgreSQL waiting table,
rank by COUNT(*), admission by SELECT ... FOR UPDATE. It lives in bench/ only."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCHEMA = """
DROP TABLE IF EXISTS bench_waiting;
CREATE TABLE bench_waiting (
    id bigserial PRIMARY KEY,
    token text NOT NULL UNIQUE,
    status text NOT NULL DEFAULT 'WAITING',
    entered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bench_waiting_status_id ON bench_waiting (status, id);
"""
RANK = text(
    "SELECT w.status, (SELECT count(*) FROM bench_waiting o"
    " WHERE o.status = 'WAITING' AND o.id <= w.id) AS rank"
    " FROM bench_waiting w WHERE w.token = :token"
)


def engine(url: str, pool: int = 20) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool, max_overflow=0)


async def load(db: AsyncEngine, size: int) -> None:
    """size waiting rows with tokens 'w1'..'w<size>', in arrival order."""
    async with db.begin() as conn:
        for statement in SCHEMA.strip().split(";"):
            if statement.strip():
                await conn.execute(text(statement))
        await conn.execute(
            text("INSERT INTO bench_waiting (token) SELECT 'w' || g FROM generate_series(1, :n) g"),
            {"n": size},
        )
        await conn.execute(text("ANALYZE bench_waiting"))


async def admit(db: AsyncEngine, k: int) -> float:
    """One admission tick of k tokens; returns seconds."""
    started = time.perf_counter()
    async with db.begin() as conn:
        await conn.execute(
            text(
                "UPDATE bench_waiting SET status = 'ACTIVE' WHERE id IN ("
                " SELECT id FROM bench_waiting WHERE status = 'WAITING' ORDER BY id"
                " LIMIT :k FOR UPDATE SKIP LOCKED)"
            ),
            {"k": k},
        )
    return time.perf_counter() - started


def create_app() -> Starlette:
    state: dict[str, AsyncEngine] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["db"] = engine(os.environ["BENCH_DATABASE_URL"])
        yield
        await state["db"].dispose()

    async def poll(request: Request) -> Response:
        token = request.headers.get("authorization", "")[7:]
        async with state["db"].connect() as conn:
            row = (await conn.execute(RANK, {"token": token})).first()
        if row is None:
            return Response(status_code=401)
        body = {
            "status": row.status,
            "rank": row.rank,
            "eta_s": None,
            "poll_after_ms": 5000,
            "expires_at": None,
            "concert_id": 1,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/queue/token", poll)], lifespan=lifespan)
