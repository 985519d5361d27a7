"""Receipts as the API shows them, read from the database."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from frontrow.catalog import seat_label
from frontrow.errors import not_found
from frontrow.schema import receipts, reservations, schedules, seats
from frontrow.store import Store, database_call


def _iso(value: dt.datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def render(conn: AsyncConnection, rows: list[Any]) -> list[dict[str, Any]]:
    """Receipts with their seats, in the order of `rows`."""
    if not rows:
        return []
    seat_rows = (
        await conn.execute(
            select(
                reservations.c.receipt_id,
                reservations.c.id,
                reservations.c.seat_no,
                reservations.c.price,
                schedules.c.date,
                seats.c.section,
                seats.c.seat_row,
                seats.c.number,
            )
            .join(schedules, schedules.c.id == reservations.c.schedule_id)
            # outer: a seat removed from the catalog later still shows on its receipt
            .outerjoin(
                seats,
                (seats.c.schedule_id == reservations.c.schedule_id)
                & (seats.c.seat_no == reservations.c.seat_no),
            )
            .where(reservations.c.receipt_id.in_([r.id for r in rows]))
            .order_by(schedules.c.date, reservations.c.seat_no)
        )
    ).all()
    by_receipt: dict[str, list[dict[str, Any]]] = {}
    for s in seat_rows:
        section, row = s.section or "GA", s.seat_row or "1"
        place = {
            "section": section,
            "row": row,
            "label": seat_label(section, row, s.number or s.seat_no),
        }
        by_receipt.setdefault(s.receipt_id, []).append(
            seat_view(s.date, s.seat_no, place, s.price, s.id)
        )
    return [
        receipt_view(
            r.id,
            r.user_id,
            r.concert_id,
            r.amount,
            r.balance_after,
            r.paid_at,
            by_receipt.get(r.id, []),
        )
        for r in rows
    ]


def seat_view(
    date: dt.date, seat_no: int, place: dict[str, str], price: int, reservation_id: int
) -> dict[str, Any]:
    """One seat of a receipt as the API shows it; place is section, row, label."""
    return {
        "date": date.isoformat(),
        "seat_no": seat_no,
        **place,
        "price": price,
        "reservation_id": reservation_id,
    }


def receipt_view(
    receipt_id: str,
    user_id: str,
    concert_id: int,
    amount: int,
    balance_after: int,
    paid_at: dt.datetime,
    seats: list[dict[str, Any]],
) -> dict[str, Any]:
    """A receipt as the API shows it, whether read back or just written."""
    return {
        "receipt_id": receipt_id,
        "user_id": user_id,
        "concert_id": concert_id,
        "amount": amount,
        "balance_after": balance_after,
        "paid_at": _iso(paid_at),
        "seats": seats,
    }


async def by_key(conn: AsyncConnection, user_id: str, key: str) -> Any:
    return (
        await conn.execute(
            select(receipts).where(receipts.c.user_id == user_id, receipts.c.idempotency_key == key)
        )
    ).first()


async def list_receipts(store: Store, user_id: str) -> list[dict[str, Any]]:
    return await database_call(store, lambda: _list_receipts(store, user_id))


async def _list_receipts(store: Store, user_id: str) -> list[dict[str, Any]]:
    async with store.db.connect() as conn:
        rows = (
            await conn.execute(
                select(receipts)
                .where(receipts.c.user_id == user_id)
                .order_by(receipts.c.paid_at.desc(), receipts.c.id.desc())
                .limit(500)
            )
        ).all()
        return await render(conn, list(rows))


RECEIPT_ID = re.compile(r"r_[A-Za-z0-9_-]{1,38}")


async def get_receipt(store: Store, user_id: str, receipt_id: str) -> dict[str, Any]:
    if not RECEIPT_ID.fullmatch(receipt_id):  # also keeps NUL bytes away from PostgreSQL
        raise not_found("no such receipt")
    return await database_call(store, lambda: _get_receipt(store, user_id, receipt_id))


async def _get_receipt(store: Store, user_id: str, receipt_id: str) -> dict[str, Any]:
    async with store.db.connect() as conn:
        row = (
            await conn.execute(
                select(receipts).where(receipts.c.id == receipt_id, receipts.c.user_id == user_id)
            )
        ).first()
        if row is None:
            raise not_found("no such receipt")
        return (await render(conn, [row]))[0]
