"""Payments: claim the holds in Redis, commit the money and the seats in the
database in one transaction, then finalize in Redis (docs/DESIGN.md, three steps)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from frontrow.auth import QueueClaims
from frontrow.booking import holds
from frontrow.booking.holds import HoldRef, parse_hold_id
from frontrow.catalog import Concert, Schedule
from frontrow.errors import BACKEND_ERRORS, Problem, conflict, forbidden, invalid
from frontrow.queue.core import ms, require_active
from frontrow.schema import ledger, receipts, reservations, wallets
from frontrow.store import Store, once_more_if_dropped
from frontrow.wallet import receipts as receipt_views
from frontrow.wallet.ledger import ensure_wallet

log = logging.getLogger("frontrow.payments")
CLAIM_GRACE_S = 60


def parse_hold_ids(body: dict[str, Any], limit: int) -> list[str]:
    hold_ids = body.get("hold_ids")
    if not isinstance(hold_ids, list) or not hold_ids:
        raise invalid("hold_ids must be a non-empty list of hold ids")
    if len(hold_ids) > limit:
        raise invalid(f"hold_ids may name at most {limit} holds")
    if not all(isinstance(h, str) for h in hold_ids):
        raise invalid("hold_ids must contain strings")
    if len(set(hold_ids)) != len(hold_ids):
        raise invalid("hold_ids must not repeat a hold")
    return hold_ids


Item = tuple[HoldRef, Schedule, int]  # a named hold, its date, its price


def _refs(concert: Concert, hold_ids: list[str]) -> list[Item]:
    """Each hold with its date and price; malformed ids are 422, foreign ones 403."""
    dates = {s.id: s for s in concert.upcoming()}
    out = []
    for hold_id in hold_ids:
        ref = parse_hold_id(hold_id)
        if ref is None:
            raise invalid(f"hold_ids: {hold_id[:80]!r} is not a hold id")
        if ref.concert_id != concert.id:
            raise forbidden(f"hold {hold_id} belongs to another concert")
        schedule = dates.get(ref.schedule_id)
        if schedule is None or ref.seat_no not in schedule.prices:
            raise conflict("HOLD_EXPIRED", f"hold {hold_id} is not a live hold")
        out.append((ref, schedule, schedule.prices[ref.seat_no]))
    return out


def request_hash(hold_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(hold_ids)).encode()).hexdigest()


async def _replay(store: Store, user_id: str, key: str, digest: str) -> dict[str, Any] | None:
    async with store.db.connect() as conn:
        row = await receipt_views.by_key(conn, user_id, key)
        if row is None:
            return None
        if row.request_hash != digest:
            raise conflict("IDEMPOTENCY_MISMATCH", "this Idempotency-Key was used for other holds")
        return (await receipt_views.render(conn, [row]))[0]


async def pay(
    store: Store, claims: QueueClaims, hold_ids: list[str], key: str | None
) -> tuple[dict[str, Any], bool]:
    """Buy the held seats, all or nothing; returns (receipt, replayed).

    A retry with the same key gets the first receipt and is not a second sale."""
    digest = request_hash(hold_ids)
    try:
        return await _purchase(store, claims, hold_ids, key, digest), False
    except Problem:
        # A key that already paid is looked up only when paying fails: its
        # retry finds the token DONE and the holds gone, and a concurrent twin
        # may have paid first. Its receipt is the answer.
        if key is not None and (first := await _replay(store, claims.user_id, key, digest)):
            return first, True
        raise


async def _purchase(
    store: Store, claims: QueueClaims, hold_ids: list[str], key: str | None, digest: str
) -> dict[str, Any]:
    user_id = claims.user_id
    concert = await store.catalog.get(claims.concert_id)
    if concert is None:
        raise conflict("HOLD_EXPIRED", "the concert of these holds no longer exists")
    items = _refs(concert, hold_ids)
    k = store.keys(concert.id)

    # 1. claim: every hold live and this user's, pinned while we commit
    claim_keys = [k.uholds(user_id), k.active, k.users]
    claim_args: list[Any] = [user_id, ms(CLAIM_GRACE_S), claims.token_id]
    for ref, _, _ in items:
        claim_keys += [k.hold(ref.schedule_id, ref.seat_no), k.holds(ref.schedule_id)]
        claim_args += [ref.hold_id, ref.seat_no]
    outcome = await store.scripts.claim(keys=claim_keys, args=claim_args)
    if outcome[0] == "NOT_ACTIVE":
        await require_active(store, claims, concert.id)  # says which state (401)
        raise conflict("HOLD_EXPIRED", "the session ended while paying; nothing was charged")
    if outcome[0] != "OK":
        raise conflict("HOLD_EXPIRED", f"hold {outcome[1]} has expired or is not yours")
    deadlines = zip(items, map(int, outcome[1]), strict=True)
    pinned = [(ref, deadline) for (ref, _, _), deadline in deadlines if deadline]
    others = [ref for ref in map(parse_hold_id, outcome[2]) if ref is not None]

    # 2. one transaction: debit, reservations, receipt, ledger
    commit = _commit_in_one_statement if store.db.dialect.name == "postgresql" else _commit
    try:
        receipt = await commit(store, concert, user_id, items, key, digest)
    except Exception:
        await _unclaim(store, concert.id, user_id, pinned)
        raise

    # 3. finalize; the sale already stands, the reconciler repairs Redis if this fails
    fin_keys = [k.uholds(user_id), k.active, k.cap, k.done, k.users]
    fin_args: list[Any] = [claims.token_id, user_id, len(items)]
    for ref, _, _ in items:
        fin_keys += [
            k.hold(ref.schedule_id, ref.seat_no),
            k.holds(ref.schedule_id),
            k.sold(ref.schedule_id),
        ]
        fin_args += [ref.hold_id, ref.seat_no]
    for ref in others:
        fin_keys += [k.hold(ref.schedule_id, ref.seat_no), k.holds(ref.schedule_id)]
        fin_args += [ref.hold_id, ref.seat_no]
    try:
        sold = await store.scripts.finalize(keys=fin_keys, args=fin_args)
        full = {s.id: s for (_, s, _), n in zip(items, sold, strict=True) if n >= len(s.prices)}
        if full:
            await holds.mark_sold_out(store, concert, list(full.values()))
    except BACKEND_ERRORS as exc:
        log.warning(
            "payment %s committed but finalize failed (%r); reconciler repairs",
            receipt["receipt_id"],
            exc,
        )
    return receipt


# PostgreSQL: the money and the seats in one statement, one round trip in
# autocommit, idempotency decided inside it. Each step is fed by the one
# before (no debit, no receipt, no seats, no ledger row); a seat sold twice
# breaks the unique reservation and undoes the whole statement. No row is
# shared by the payments of a date: whether a date is full is learnt from
# Redis at finalize (holds.mark_sold_out).
PAY_ONCE = text(
    """
WITH prior AS (
  SELECT id FROM receipts
  WHERE user_id = :user AND idempotency_key = CAST(:key AS VARCHAR)
), debit AS (
  UPDATE wallets SET balance = balance - :amount
  WHERE user_id = :user AND balance >= :amount AND NOT EXISTS (SELECT 1 FROM prior)
  RETURNING balance
), receipt AS (
  INSERT INTO receipts (id, user_id, concert_id, amount, balance_after, paid_at,
                        idempotency_key, request_hash)
  SELECT :receipt, :user, :concert, :amount, balance, :now, :key, :hash FROM debit
  RETURNING id
), sold AS (
  INSERT INTO reservations (schedule_id, seat_no, user_id, receipt_id, price, created_at)
  SELECT t.schedule_id, t.seat_no, :user, receipt.id, t.price, :now
  FROM receipt, unnest(CAST(:schedules AS BIGINT[]), CAST(:seats AS INTEGER[]),
                       CAST(:prices AS BIGINT[])) AS t(schedule_id, seat_no, price)
  RETURNING id, schedule_id, seat_no
), booked AS (  -- read by nobody: PostgreSQL runs every data-modifying CTE anyway
  INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, receipt_id,
                      created_at)
  SELECT :user, 'payment', -CAST(:amount AS BIGINT), balance, :key, :receipt, :now FROM debit
)
SELECT (SELECT balance FROM debit) AS balance_after,
       (SELECT id FROM prior) AS prior_id,
       (SELECT json_agg(json_build_array(id, schedule_id, seat_no)) FROM sold) AS seats
"""
)


async def _commit_in_one_statement(
    store: Store,
    concert: Concert,
    user_id: str,
    items: list[Item],
    key: str | None,
    digest: str,
) -> dict[str, Any]:
    amount = sum(price for _, _, price in items)
    receipt_id = "r_" + secrets.token_urlsafe(12)
    now = dt.datetime.now(dt.UTC)
    params = {
        "user": user_id,
        "key": key,
        "amount": amount,
        "receipt": receipt_id,
        "concert": concert.id,
        "now": now,
        "hash": digest,
        "schedules": [ref.schedule_id for ref, _, _ in items],
        "seats": [ref.seat_no for ref, _, _ in items],
        "prices": [price for _, _, price in items],
    }

    async def run() -> Any:
        async with store.db.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return (await conn.execute(PAY_ONCE, params)).one()

    try:
        # again on a dead connection: a second run of a statement that did
        # commit finds its receipt (same key) or its seats sold, never pays twice
        row = await once_more_if_dropped(run)
    except IntegrityError:
        # a seat sold meanwhile, or a same-key twin committed first (pay() replays that)
        raise conflict("HOLD_EXPIRED", "a seat of these holds was sold meanwhile") from None
    if row.prior_id is not None:
        # a twin with this key paid first; pay() answers with its receipt
        raise conflict("HOLD_EXPIRED", "these holds were paid by a request with this key")
    if row.balance_after is None:
        raise Problem(
            402,
            "INSUFFICIENT_BALANCE",
            f"the wallet holds less than {amount} won; charge it and retry",
        )
    dates = {ref.schedule_id: schedule for ref, schedule, _ in items}
    prices = {(ref.schedule_id, ref.seat_no): price for ref, _, price in items}
    seats = [
        receipt_views.seat_view(
            dates[schedule_id].date,
            seat_no,
            dates[schedule_id].venue.place(seat_no),
            prices[(schedule_id, seat_no)],
            reservation_id,
        )
        for reservation_id, schedule_id, seat_no in row.seats
    ]
    seats.sort(key=lambda seat: (seat["date"], seat["seat_no"]))  # as a receipt read back
    receipt = receipt_views.receipt_view(
        receipt_id, user_id, concert.id, amount, int(row.balance_after), now, seats
    )
    return receipt


async def _commit(
    store: Store,
    concert: Concert,
    user_id: str,
    items: list[Item],
    key: str | None,
    digest: str,
) -> dict[str, Any]:
    """The money and the seats in one transaction (SQLite): the same steps."""
    amount = sum(price for _, _, price in items)
    receipt_id = "r_" + secrets.token_urlsafe(12)
    now = dt.datetime.now(dt.UTC)
    try:
        async with store.db.begin() as conn:
            await ensure_wallet(conn, user_id)
            balance_after = await conn.scalar(
                update(wallets)
                .where(wallets.c.user_id == user_id, wallets.c.balance >= amount)
                .values(balance=wallets.c.balance - amount)
                .returning(wallets.c.balance)
            )
            if balance_after is None:
                raise Problem(
                    402,
                    "INSUFFICIENT_BALANCE",
                    f"the wallet holds less than {amount} won; charge it and retry",
                )
            await conn.execute(
                insert(receipts).values(
                    id=receipt_id,
                    user_id=user_id,
                    concert_id=concert.id,
                    amount=amount,
                    balance_after=balance_after,
                    paid_at=now,
                    idempotency_key=key,
                    request_hash=digest,
                )
            )
            await conn.execute(
                insert(reservations),
                [
                    {
                        "schedule_id": ref.schedule_id,
                        "seat_no": ref.seat_no,
                        "user_id": user_id,
                        "receipt_id": receipt_id,
                        "price": price,
                        "created_at": now,
                    }
                    for ref, _, price in items
                ],
            )
            await conn.execute(
                insert(ledger).values(
                    user_id=user_id,
                    kind="payment",
                    amount=-amount,
                    balance_after=balance_after,
                    idempotency_key=key,
                    receipt_id=receipt_id,
                    created_at=now,
                )
            )
            row = (await conn.execute(select(receipts).where(receipts.c.id == receipt_id))).one()
            receipt = (await receipt_views.render(conn, [row]))[0]
    except IntegrityError:
        # a seat sold meanwhile, or a same-key twin committed first (pay() replays that)
        raise conflict("HOLD_EXPIRED", "a seat of these holds was sold meanwhile") from None
    return receipt


async def _unclaim(
    store: Store, concert_id: int, user_id: str, pinned: list[tuple[HoldRef, int]]
) -> None:
    """Give pinned holds back their own deadlines after a failed payment (best effort:
    a pin that stays lapses by itself one grace period later)."""
    if not pinned:
        return
    k = store.keys(concert_id)
    keys: list[str] = [k.uholds(user_id)]
    args: list[Any] = [user_id]
    for ref, deadline in pinned:
        keys += [k.hold(ref.schedule_id, ref.seat_no), k.holds(ref.schedule_id)]
        args += [ref.hold_id, ref.seat_no, deadline]
    try:
        await store.scripts.unclaim(keys=keys, args=args)
    except BACKEND_ERRORS as exc:
        log.warning("could not give failed payment's holds their deadlines back: %r", exc)
