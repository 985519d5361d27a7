"""Wallet balances and charges; every balance change is one ledger row."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from frontrow.errors import INTEGRITY_ERRORS, Problem, conflict, invalid
from frontrow.schema import ledger, wallets
from frontrow.store import Store, database_call, statement_call

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")


def idempotency_key(raw: str | None) -> str | None:
    """The Idempotency-Key header, when given: 1-64 visible ASCII characters."""
    if raw is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(raw):
        raise invalid("Idempotency-Key must be 1-64 visible ASCII characters")
    return raw


async def ensure_wallet(conn: AsyncConnection, user_id: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(wallets).values(user_id=user_id, balance=0).on_conflict_do_nothing()
    )


async def balance(store: Store, user_id: str) -> int:
    async def read() -> Any:
        async with store.db.connect() as conn:
            return await conn.scalar(select(wallets.c.balance).where(wallets.c.user_id == user_id))

    return int(await database_call(store, read) or 0)


def parse_amount(body: dict[str, Any], max_charge: int) -> int:
    if "amount" not in body:
        raise invalid("amount is required")
    amount = body["amount"]
    if type(amount) is not int:
        raise invalid("amount must be an integer number of won")
    if not 1 <= amount <= max_charge:
        raise invalid(f"amount must be between 1 and {max_charge}")
    return amount


# built once: an expression built per call costs more than its statement
REPLAY = select(ledger.c.amount, ledger.c.balance_after).where(
    ledger.c.user_id == bindparam("user"),
    ledger.c.kind == "charge",
    ledger.c.idempotency_key == bindparam("key"),
)


async def _replay(store: Store, user_id: str, key: str, amount: int) -> dict[str, Any] | None:
    async with store.db.connect() as conn:
        row = (await conn.execute(REPLAY, {"user": user_id, "key": key})).first()
    return None if row is None else _first(user_id, amount, row.amount, row.balance_after)


# PostgreSQL: the whole charge is one statement, and one round trip in
# autocommit: the replay of a key, the wallet's upsert under the balance
# limit and the ledger row, each step fed by the one before it.
CHARGE_ONCE = """
WITH prior AS (
  SELECT amount, balance_after FROM ledger
  WHERE user_id = %(user)s AND kind = 'charge' AND idempotency_key = %(key)s::varchar
), credited AS (
  INSERT INTO wallets AS w (user_id, balance)
  SELECT %(user)s::varchar, %(amount)s::bigint
  WHERE %(amount)s::bigint <= %(limit)s::bigint AND NOT EXISTS (SELECT 1 FROM prior)
  ON CONFLICT (user_id) DO UPDATE SET balance = w.balance + EXCLUDED.balance
  WHERE w.balance + EXCLUDED.balance <= %(limit)s::bigint
  RETURNING w.balance
), booked AS (
  INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, created_at)
  SELECT %(user)s, 'charge', %(amount)s::bigint, balance, %(key)s, %(now)s FROM credited
  RETURNING balance_after
)
SELECT (SELECT balance_after FROM booked) AS balance,
       (SELECT amount FROM prior) AS prior_amount,
       (SELECT balance_after FROM prior) AS prior_balance
"""


async def charge(store: Store, user_id: str, amount: int, key: str | None) -> dict[str, Any]:
    """Credit the wallet once per Idempotency-Key; the answer to a retry is the first one."""
    limit = store.settings.max_balance
    try:
        if store.db.dialect.name == "postgresql":
            answer = await _charge_in_one_statement(store, user_id, amount, key, limit)
        else:
            answer = await _charge_in_steps(store, user_id, amount, key, limit)
    except INTEGRITY_ERRORS:
        # The same key committed concurrently; our credit was rolled back.
        if (
            key is not None
            and (first := await database_call(store, lambda: _replay(store, user_id, key, amount)))
            is not None
        ):
            return first
        raise
    if answer is None:
        raise Problem(422, "BALANCE_LIMIT", f"the balance may not pass {limit} won")
    return answer


def _first(user_id: str, amount: int, first_amount: int, first_balance: int) -> dict[str, Any]:
    """The first answer to a key, for a retry with the same amount."""
    if first_amount != amount:
        raise conflict("IDEMPOTENCY_MISMATCH", "this Idempotency-Key was used with another amount")
    return {"user_id": user_id, "balance": first_balance, "charged": first_amount}


async def _charge_in_one_statement(
    store: Store, user_id: str, amount: int, key: str | None, limit: int
) -> dict[str, Any] | None:
    """The answer, or None when the balance would pass the limit."""
    params = {
        "user": user_id,
        "amount": amount,
        "key": key,
        "limit": limit,
        "now": dt.datetime.now(dt.UTC),
    }

    # without a key a second run would credit twice: a lost answer is a 503
    row = await statement_call(store, CHARGE_ONCE, params, again=key is not None)
    if row.prior_amount is not None:
        return _first(user_id, amount, row.prior_amount, row.prior_balance)
    if row.balance is None:
        return None
    return {"user_id": user_id, "balance": int(row.balance), "charged": amount}


async def _charge_in_steps(
    store: Store, user_id: str, amount: int, key: str | None, limit: int
) -> dict[str, Any] | None:
    """SQLite (the embedded default) has no data-modifying CTEs: the same
    steps in one IMMEDIATE transaction. The key's replay is read under the
    write lock, so a twin that committed first is always found here."""
    async with store.db.begin() as conn:
        if key is not None:
            prior = (await conn.execute(REPLAY, {"user": user_id, "key": key})).first()
            if prior is not None:
                return _first(user_id, amount, prior.amount, prior.balance_after)
        await ensure_wallet(conn, user_id)
        new_balance = await conn.scalar(
            update(wallets)
            .where(wallets.c.user_id == user_id, wallets.c.balance + amount <= limit)
            .values(balance=wallets.c.balance + amount)
            .returning(wallets.c.balance)
        )
        if new_balance is None:
            return None
        await conn.execute(
            insert(ledger).values(
                user_id=user_id,
                kind="charge",
                amount=amount,
                balance_after=new_balance,
                idempotency_key=key,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return {"user_id": user_id, "balance": int(new_balance), "charged": amount}
