"""Wallet balances and charges; every balance change is one ledger row."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from frontrow.errors import Problem, conflict, invalid
from frontrow.schema import ledger, wallets
from frontrow.store import Store

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
    async with store.db.connect() as conn:
        value = await conn.scalar(select(wallets.c.balance).where(wallets.c.user_id == user_id))
    return int(value or 0)


def parse_amount(body: dict[str, Any], max_charge: int) -> int:
    if "amount" not in body:
        raise invalid("amount is required")
    amount = body["amount"]
    if type(amount) is not int:
        raise invalid("amount must be an integer number of won")
    if not 1 <= amount <= max_charge:
        raise invalid(f"amount must be between 1 and {max_charge}")
    return amount


async def _replay(store: Store, user_id: str, key: str, amount: int) -> dict[str, Any] | None:
    async with store.db.connect() as conn:
        row = (
            await conn.execute(
                select(ledger.c.amount, ledger.c.balance_after).where(
                    ledger.c.user_id == user_id,
                    ledger.c.kind == "charge",
                    ledger.c.idempotency_key == key,
                )
            )
        ).first()
    if row is None:
        return None
    if row.amount != amount:
        raise conflict("IDEMPOTENCY_MISMATCH", "this Idempotency-Key was used with another amount")
    return {"user_id": user_id, "balance": row.balance_after, "charged": row.amount}


async def charge(store: Store, user_id: str, amount: int, key: str | None) -> dict[str, Any]:
    """Credit the wallet once per Idempotency-Key; the answer to a retry is the first one."""
    if key is not None and (first := await _replay(store, user_id, key, amount)) is not None:
        return first
    limit = store.settings.max_balance
    try:
        async with store.db.begin() as conn:
            await ensure_wallet(conn, user_id)
            new_balance = await conn.scalar(
                update(wallets)
                .where(wallets.c.user_id == user_id, wallets.c.balance + amount <= limit)
                .values(balance=wallets.c.balance + amount)
                .returning(wallets.c.balance)
            )
            if new_balance is None:
                raise Problem(422, "BALANCE_LIMIT", f"the balance may not pass {limit} won")
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
    except IntegrityError:
        # The same key committed concurrently; our credit was rolled back.
        if key is not None and (first := await _replay(store, user_id, key, amount)) is not None:
            return first
        raise
    return {"user_id": user_id, "balance": new_balance, "charged": amount}
