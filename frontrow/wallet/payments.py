"""Payments: claim the holds in Redis, commit the money and the seats in the
database in one transaction, then finalize in Redis (docs/DESIGN.md, three steps)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from sqlalchemy import insert, select, text, update

from frontrow import rules
from frontrow.auth import QueueClaims
from frontrow.booking import holds
from frontrow.booking.holds import HoldRef, parse_hold_id
from frontrow.catalog import Concert, Schedule
from frontrow.errors import BACKEND_ERRORS, INTEGRITY_ERRORS, Problem, conflict, forbidden, invalid
from frontrow.queue.core import ms
from frontrow.schema import buyer_tickets, ledger, receipts, reservations, wallets
from frontrow.store import Store, database_call, statement_call
from frontrow.wallet import receipts as receipt_views
from frontrow.wallet.ledger import ensure_wallet

log = logging.getLogger("frontrow.payments")
CLAIM_GRACE_S = 60
# how far back the sweeper looks for payments Redis has not heard of
REPAIR_WINDOW_S = 600


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
        # may have paid first. Its receipt is the answer, and the purchase is
        # finished again: the first answer may have been lost before Redis
        # heard of it (the session still ACTIVE, the paid seats still held).
        if key is not None and (
            first := await database_call(store, lambda: _replay(store, claims.user_id, key, digest))
        ):
            concert = await store.catalog.get(claims.concert_id)
            if concert is not None:
                await _finish(store, concert, claims, _refs(concert, hold_ids))
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
    claim_keys = [k.uholds(user_id), k.pins(user_id), k.active, k.users, k.cfg, k.stats]
    claim_args: list[Any] = [user_id, ms(CLAIM_GRACE_S), claims.token_id]
    for ref, _, _ in items:
        claim_keys += holds.hold_keys(store, concert, ref)
        claim_args += [ref.hold_id, ref.seat_no]
    outcome = await holds.gated(
        store,
        concert,
        claims,
        lambda: rules.call(store, concert.id, store.scripts.claim, claim_keys, claim_args),
    )
    if outcome[0] == "SALE_NOT_OPEN":
        raise holds.sale_not_open(int(outcome[1]))
    if outcome[0] != "OK":
        raise conflict("HOLD_EXPIRED", f"hold {outcome[1]} has expired or is not yours")
    flags = zip(items, map(int, outcome[1]), strict=True)
    pinned = [ref for (ref, _, _), flag in flags if flag]
    others = [ref for ref in map(parse_hold_id, outcome[2]) if ref is not None]

    # 2. one transaction: debit, reservations, receipt, ledger
    commit = _commit_in_one_statement if store.db.dialect.name == "postgresql" else _commit
    try:
        receipt = await commit(store, concert, claims, items, key, digest)
    except Exception:
        await _unclaim(store, concert, user_id, pinned)
        raise

    # 3. finalize; the sale already stands: a same-key retry finishes it if this fails
    await _finish(store, concert, claims, items, others)
    return receipt


async def _finish(
    store: Store,
    concert: Concert,
    claims: QueueClaims,
    items: list[Item],
    others: list[HoldRef] | None = None,
) -> None:
    """Tell Redis a payment committed: its seats sold, the payer's other holds
    (`others`, or the live ones now) let go, the session DONE. Safe to run
    again: a replay runs it too. Redis failing here fails nothing: the sale
    stands, and the next same-key retry finishes it."""
    k = store.keys(concert.id)
    user_id = claims.user_id
    try:
        if others is None:
            paid = {ref.hold_id for ref, _, _ in items}
            live = await holds.live_refs(store, concert.id, user_id)
            others = [ref for ref, _ in live if ref.hold_id not in paid]
        fin_keys = [k.uholds(user_id), k.active, k.cap, k.done, k.users, k.bought]
        fin_args: list[Any] = [claims.token_id, user_id, len(items)]
        for ref, _, _ in items:
            fin_keys += [*holds.hold_keys(store, concert, ref), k.sold(ref.schedule_id)]
            fin_args += [ref.hold_id, ref.seat_no]
        for ref in others:
            fin_keys += holds.hold_keys(store, concert, ref)
            fin_args += [ref.hold_id, ref.seat_no]
        fin_keys.append(k.stats)
        sold = await store.scripts.finalize(keys=fin_keys, args=fin_args)
        full = {s.id: s for (_, s, _), n in zip(items, sold, strict=True) if n >= len(s.prices)}
        if full:
            await holds.mark_sold_out(store, concert, list(full.values()))
    except BACKEND_ERRORS as exc:
        log.warning(
            "a payment of %s committed but finalize failed (%r); a retry finishes it",
            user_id,
            exc,
        )


async def finish_recent(store: Store) -> int:
    """Finish the payments of the last REPAIR_WINDOW_S that Redis has not
    heard of (it was away between the commit and finalize and nobody
    retried, or it came back empty): their token is not DONE. The sweeper
    runs this; returns how many it finished."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=REPAIR_WINDOW_S)
    query = (
        select(
            receipts.c.id,
            receipts.c.user_id,
            receipts.c.concert_id,
            receipts.c.token_id,
            reservations.c.schedule_id,
            reservations.c.seat_no,
            reservations.c.price,
        )
        .join(reservations, reservations.c.receipt_id == receipts.c.id)
        .where(receipts.c.paid_at > since, receipts.c.token_id.is_not(None))
    )
    async with store.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    by_receipt: dict[str, list[Any]] = {}
    for row in rows:
        by_receipt.setdefault(row.id, []).append(row)
    by_concert: dict[int, list[list[Any]]] = {}
    for seats in by_receipt.values():
        by_concert.setdefault(seats[0].concert_id, []).append(seats)
    concerts = await store.catalog.concerts()
    finished = 0
    for concert_id, paid in by_concert.items():
        concert = concerts.get(concert_id)
        if concert is None:
            continue
        done = await store.redis.zmscore(store.keys(concert_id).done, [p[0].token_id for p in paid])
        for seats, at in zip(paid, done, strict=True):
            if at is None:
                await _finish_recorded(store, concert, seats)
                finished += 1
    return finished


async def _finish_recorded(store: Store, concert: Concert, seats: list[Any]) -> None:
    """_finish for a payment known only from its record: the hold ids are the
    ones still on its seats (if they are the payer's), and the payer's other
    holds are let go only while the paying token is still the payer's place."""
    user_id, token_id = seats[0].user_id, seats[0].token_id
    k = store.keys(concert.id)
    dates = {s.id: s for s in concert.schedules}
    async with store.redis.pipeline(transaction=False) as pipe:
        for seat in seats:
            pipe.get(k.hold(seat.schedule_id, seat.seat_no))
        pipe.hget(k.users, user_id)
        *locks, place = await pipe.execute()
    items: list[Item] = []
    for seat, lock in zip(seats, locks, strict=True):
        schedule = dates.get(seat.schedule_id)
        if schedule is None:
            continue
        hold_id, _, holder = (lock or "").partition("|")
        if holder != user_id:
            hold_id = ""  # nobody's hold of ours to end on it; the seat is sold all the same
        items.append(
            (HoldRef(hold_id, concert.id, seat.schedule_id, seat.seat_no), schedule, seat.price)
        )
    claims = QueueClaims(user_id, concert.id, token_id, 0.0)
    await _finish(store, concert, claims, items, None if place == token_id else [])


# PostgreSQL: the money and the seats in one statement, one round trip in
# autocommit, idempotency decided inside it. Each step is fed by the one
# before (no debit, no receipt, no seats, no ledger row); a seat sold twice
# breaks the unique reservation and undoes the whole statement. No row is
# shared by the payments of a date: whether a date is full is learnt from
# Redis at finalize (holds.mark_sold_out).
PAY_ONCE = """
WITH prior AS (  -- a twin with this key, or this statement's own run before its answer was lost
  -- (two index lookups: a prepared statement's generic plan for an OR of them,
  -- made while the table was small, scanned the whole table every payment)
  SELECT id FROM receipts WHERE user_id = %(user)s AND idempotency_key = %(key)s::varchar
  UNION ALL
  SELECT id FROM receipts WHERE id = %(receipt)s
), debit AS (
  UPDATE wallets SET balance = balance - %(amount)s::bigint
  WHERE user_id = %(user)s AND balance >= %(amount)s::bigint AND NOT EXISTS (SELECT 1 FROM prior)
  RETURNING balance
), receipt AS (
  INSERT INTO receipts (id, user_id, concert_id, amount, balance_after, paid_at,
                        idempotency_key, request_hash, token_id)
  SELECT %(receipt)s, %(user)s, %(concert)s, %(amount)s, balance, %(now)s, %(key)s, %(hash)s,
         %(token)s
  FROM debit
  RETURNING id
), sold AS (
  INSERT INTO reservations (schedule_id, seat_no, user_id, receipt_id, price, created_at)
  SELECT t.schedule_id, t.seat_no, %(user)s, receipt.id, t.price, %(now)s
  FROM receipt, unnest(%(schedules)s::bigint[], %(seats)s::integer[],
                       %(prices)s::bigint[]) AS t(schedule_id, seat_no, price)
  RETURNING id, schedule_id, seat_no
), counted AS (  -- read by nobody; past the ticket limit its CHECK undoes it all
  INSERT INTO buyer_tickets (user_id, concert_id, seats, ticket_limit)
  SELECT %(user)s, %(concert)s, cardinality(%(seats)s::integer[]), %(ticket_limit)s FROM debit
  ON CONFLICT (user_id, concert_id) DO UPDATE
  SET seats = buyer_tickets.seats + excluded.seats, ticket_limit = excluded.ticket_limit
), booked AS (  -- read by nobody: PostgreSQL runs every data-modifying CTE anyway
  INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, receipt_id,
                      created_at)
  SELECT %(user)s, 'payment', -%(amount)s::bigint, balance, %(key)s, %(receipt)s, %(now)s
  FROM debit
)
SELECT (SELECT balance FROM debit) AS balance_after,
       (SELECT id FROM prior LIMIT 1) AS prior_id,  -- its own run with a key is both
       (SELECT json_agg(json_build_array(id, schedule_id, seat_no)) FROM sold) AS seats
"""


async def _commit_in_one_statement(
    store: Store,
    concert: Concert,
    claims: QueueClaims,
    items: list[Item],
    key: str | None,
    digest: str,
) -> dict[str, Any]:
    user_id = claims.user_id
    amount = sum(price for _, _, price in items)
    receipt_id = "r_" + secrets.token_urlsafe(12)
    now = dt.datetime.now(dt.UTC)
    params = {
        "token": claims.token_id,
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
        "ticket_limit": store.settings.max_tickets_per_user,
    }

    try:
        row = await statement_call(store, PAY_ONCE, params)
    except INTEGRITY_ERRORS as exc:
        raise await _refusal(store, concert, user_id, exc) from None
    if row.prior_id == receipt_id:
        # Statements ran it again after its connection failed, and the first
        # run had committed: that sale is this request's answer.
        return await receipt_views.get_receipt(store, user_id, receipt_id)
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
    claims: QueueClaims,
    items: list[Item],
    key: str | None,
    digest: str,
) -> dict[str, Any]:
    """The money and the seats in one transaction (SQLite): the same steps."""
    user_id = claims.user_id
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
                    token_id=claims.token_id,
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
                COUNT_TICKETS,
                {
                    "user": user_id,
                    "concert": concert.id,
                    "seats": len(items),
                    "ticket_limit": store.settings.max_tickets_per_user,
                },
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
    except INTEGRITY_ERRORS as exc:
        raise await _refusal(store, concert, user_id, exc) from None
    return receipt


COUNT_TICKETS = text(
    """
INSERT INTO buyer_tickets (user_id, concert_id, seats, ticket_limit)
VALUES (:user, :concert, :seats, :ticket_limit)
ON CONFLICT (user_id, concert_id) DO UPDATE
SET seats = buyer_tickets.seats + excluded.seats, ticket_limit = excluded.ticket_limit
"""
)


async def _refusal(store: Store, concert: Concert, user_id: str, exc: Exception) -> Problem:
    """What a payment that broke a constraint (and changed nothing) answers."""
    if "buyer_tickets_within_limit" in str(getattr(exc, "orig", exc)):
        async with store.db.connect() as conn:
            bought = await conn.scalar(
                select(buyer_tickets.c.seats).where(
                    buyer_tickets.c.user_id == user_id, buyer_tickets.c.concert_id == concert.id
                )
            )
        return holds.ticket_limit(store.settings.max_tickets_per_user, bought or 0)
    # a seat sold meanwhile, or a same-key twin committed first (pay() replays that)
    return conflict("HOLD_EXPIRED", "a seat of these holds was sold meanwhile")


async def _unclaim(store: Store, concert: Concert, user_id: str, pinned: list[HoldRef]) -> None:
    """Let go of this payment's pins after it failed (best effort: a pin that
    stays lapses by itself one grace period later)."""
    if not pinned:
        return
    k = store.keys(concert.id)
    keys: list[str] = [k.uholds(user_id), k.pins(user_id)]
    args: list[Any] = [user_id]
    for ref in pinned:
        keys += holds.hold_keys(store, concert, ref)
        args += [ref.hold_id, ref.seat_no]
    try:
        await store.scripts.unclaim(keys=keys, args=args)
    except BACKEND_ERRORS as exc:
        log.warning("could not give failed payment's holds their deadlines back: %r", exc)
