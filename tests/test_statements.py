"""The money statements pipelined (frontrow.statements): the statements of
one turn of the event loop go to PostgreSQL as one write, and each caller
still gets its own row, its own error, or its one second try."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from frontrow.schema import metadata
from frontrow.statements import Statements, positional
from frontrow.wallet.ledger import CHARGE_ONCE
from frontrow.wallet.payments import PAY_ONCE
from tests.conftest import REAL_DB, unavailable

NAME = "frontrow statements test"  # and a number: each test counts its own sessions
TYPED = """
SELECT %(n)s::bigint + 1 AS n, %(user)s::text AS who, %(missing)s::varchar AS missing,
       %(now)s::timestamptz AS at, json_build_array(%(n)s::bigint, %(user)s::text) AS pair,
       (SELECT sum(x) FROM unnest(%(many)s::int[]) AS x) AS total
"""
DIVIDE = "SELECT 10 / %(by)s::int AS q"


def conninfo() -> str:
    """libpq's form of the real PostgreSQL (a newcomer's plain pytest has none: a skip)."""
    if not (REAL_DB or "").startswith("postgresql"):
        unavailable("FRONTROW_TEST_DATABASE_URL (PostgreSQL) not set")
    return make_url(REAL_DB).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def name() -> str:
    return f"{NAME} {uuid.uuid4().hex[:8]}"


@pytest.fixture
async def statements(name: str) -> AsyncIterator[Statements]:
    made = Statements(conninfo(), {"application_name": name}, size=2, wait_s=2.0)
    yield made
    await made.close()


async def sessions(name: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
        )
        return [pid for (pid,) in await cursor.fetchall()]


def test_named_parameters_become_positional_ones() -> None:
    query, names = positional("SELECT %(a)s, %(b)s, %(a)s")
    assert (query, names) == (b"SELECT $1, $2, $1", ("a", "b"))
    with pytest.raises(ValueError):
        positional("SELECT %(a)s, 5 % 2")


async def test_rows_come_back_typed_as_through_a_cursor(statements: Statements) -> None:
    now = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
    params = {"n": 41, "user": "ann", "missing": None, "now": now, "many": [1, 2, 3]}
    row = await statements.one(TYPED, params)
    assert (row.n, row.who, row.missing, row.at, row.pair, row.total) == (
        42,
        "ann",
        None,
        now,
        [41, "ann"],
        6,
    )
    assert await statements.one("SELECT 1 AS one WHERE false", {}) is None


async def test_an_error_answers_only_its_own_caller(statements: Statements) -> None:
    """One write carries all five (one turn of the loop); the failed one in
    the middle ends only its own implicit transaction."""
    answers = await asyncio.gather(
        *(statements.one(DIVIDE, {"by": by}) for by in (1, 2, 0, 5, 10)),
        return_exceptions=True,
    )
    assert [a.q if not isinstance(a, Exception) else type(a) for a in answers] == [
        10,
        5,
        psycopg.errors.DivisionByZero,
        2,
        1,
    ]


async def test_a_statement_that_cannot_be_prepared_fails_alone_every_time(
    statements: Statements,
) -> None:
    for _ in range(2):  # not remembered as prepared: the second try fails the same way
        bad, good = await asyncio.gather(
            statements.one("SELEC %(x)s::int", {"x": 1}),
            statements.one(DIVIDE, {"by": 2}),
            return_exceptions=True,
        )
        assert isinstance(bad, psycopg.errors.SyntaxError)
        assert not isinstance(good, Exception) and good.q == 5


async def test_a_dead_connection_is_replaced_and_its_statement_runs_again(
    statements: Statements, name: str
) -> None:
    """The database restarted (its sessions ended under us): the statement
    runs once more on a new connection, and the dead idle ones beside it
    are not used again."""
    await asyncio.wait_for(statements.start(), 10)
    before = await sessions(name)
    assert len(before) == 2
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
        for pid in before:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await asyncio.sleep(0.1)
    answers = await asyncio.gather(*(statements.one(DIVIDE, {"by": by}) for by in (1, 2)))
    assert [a.q for a in answers] == [10, 5]
    after = await sessions(name)
    assert after and not set(after) & set(before)
    assert (await statements.one(DIVIDE, {"by": 5})).q == 2


async def test_a_statement_that_may_not_run_twice_is_not_run_again(
    statements: Statements, name: str
) -> None:
    """A charge without an Idempotency-Key: its connection failing before
    the answer came may have been after it committed, so it is not sent
    again (the caller answers 503); the connections after it are new."""
    await asyncio.wait_for(statements.start(), 10)
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
        for pid in await sessions(name):
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await asyncio.sleep(0.1)
    with pytest.raises(psycopg.OperationalError):
        await statements.one(DIVIDE, {"by": 1}, again=False)
    assert (await statements.one(DIVIDE, {"by": 1}, again=False)).q == 10


async def test_past_its_connections_a_statement_waits_then_fails_as_unreachable(
    name: str,
) -> None:
    one = Statements(conninfo(), {"application_name": name}, size=1, wait_s=0.3)
    try:
        slow = asyncio.ensure_future(one.one("SELECT pg_sleep(1) IS NULL AS slept", {}))
        await asyncio.sleep(0.1)  # its write has gone; the next turn needs a second connection
        with pytest.raises(psycopg.OperationalError, match="no database connection free"):
            await one.one(DIVIDE, {"by": 1})
        assert (await slow).slept is False
        assert (await one.one(DIVIDE, {"by": 1})).q == 10
    finally:
        await one.close()


async def test_parameters_it_cannot_take_fail_their_statement_alone(
    statements: Statements,
) -> None:
    missing, unadaptable, good = await asyncio.gather(
        statements.one(DIVIDE, {}),
        statements.one(DIVIDE, {"by": object()}),
        statements.one(DIVIDE, {"by": 2}),
        return_exceptions=True,
    )
    assert isinstance(missing, KeyError) and isinstance(unadaptable, psycopg.ProgrammingError)
    assert not isinstance(good, Exception) and good.q == 5


async def test_closing_does_not_wait_past_the_wait_for_a_statement_in_flight(
    name: str,
) -> None:
    """A database that stopped answering does not hold a shutdown: the
    statement in flight is given up after the wait (0.3 s here, against its
    30 s) and its caller told."""
    one = Statements(conninfo(), {"application_name": name}, size=1, wait_s=0.3)
    stuck = asyncio.ensure_future(one.one("SELECT pg_sleep(30) IS NULL AS slept", {}))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(one.close(), 10)
    with pytest.raises(psycopg.OperationalError, match="cancelled"):
        await stuck


def _scanned(plan: dict[str, Any]) -> list[str]:
    """The tables a plan reads whole."""
    node = plan.get("Plan", plan)
    found = [node["Relation Name"]] if node.get("Node Type") == "Seq Scan" else []
    return found + [name for child in node.get("Plans", []) for name in _scanned(child)]


async def test_the_money_statements_read_no_table_whole_in_their_generic_plan() -> None:
    """A prepared statement's generic plan is made once, when the tables may
    still be empty, and kept as they grow to millions of rows: every lookup
    of the charge and the payment must be an index's in it. (The payment's
    receipt lookup written as an OR of two keys was planned as a scan of
    every receipt, each payment of a rush.)"""
    schema = f"plans_{uuid.uuid4().hex[:8]}"
    now = dt.datetime.now(dt.UTC)
    charge = {"user": "u", "amount": 1, "key": "k", "limit": 9, "now": now}
    payment = {"token": "t", "user": "v", "key": "k", "amount": 1, "receipt": "r_1", "now": now}
    payment |= {"concert": 1, "hash": "h", "ticket_limit": 4}
    payment |= {"schedules": [1], "seats": [1], "prices": [1]}
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        try:
            await conn.execute(f"SET search_path = {schema}")
            dialect = postgresql.dialect()
            for table in metadata.sorted_tables:
                await conn.execute(str(CreateTable(table).compile(dialect=dialect)))
                for index in table.indexes:
                    await conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            for sql, params in ((CHARGE_ONCE, charge), (PAY_ONCE, payment)):
                await conn.execute("DEALLOCATE ALL")
                # prepared with the parameter types Statements gives it (psycopg's own)
                await conn.execute(sql, params, prepare=True)
                cursor = await conn.execute(
                    "SELECT name, parameter_types FROM pg_prepared_statements"
                )
                ((name, types),) = await cursor.fetchall()
                nulls = ", ".join("NULL" for _ in types)
                cursor = await conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})")
                row = await cursor.fetchone()
                assert row is not None and _scanned(row[0][0]) == [], row
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
