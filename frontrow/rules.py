"""A concert's sale rules and live settings, one truth for every process.

The database keeps the record: the concert row's sale columns and its
`queue_settings` (the live settings an operator set). Redis keeps them whole
in the concert's cfg hash, beside the queue, and every script that enters,
admits, holds or pays reads them there inside its own atomic step and judges
time by Redis's clock (lua/_lib.lua: sale_rules, sale_open). No process
decides the sale from a copy of its own.

A Redis that has no rules for a concert (it came back empty) makes those
scripts answer NO_RULES and do nothing; `call` then restores the rules from
the database and asks again, so nobody is admitted on defaults meanwhile.
With them comes the admission frontier the admitter keeps in the database
(`keep_frontier`): how far admission had come, so that a returning token
whose place scores no more gets its session back (lua/status.lua).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from frontrow import sale as sales
from frontrow.catalog import bump_version, sale_of, sale_values
from frontrow.errors import Problem, not_found
from frontrow.sale import Sale, epoch_ms, iso_of_ms
from frontrow.schema import admin_audit, concerts, queue_progress
from frontrow.store import Store, database_call

# What an operator steers live (PATCH .../queue); unset ones are the environment's.
LIVE_SETTINGS = ("admit_batch", "admit_interval_s", "max_active", "open", "admit_target_p99_ms")
NO_RULES = "NO_RULES"
# After rules come back into an empty Redis, admission waits this long for
# the people in line to come back and take their places again (their
# browsers were refused with 503 meanwhile, and ask again within seconds).
RESTORE_CALM_MS = 5_000


def redis_value(name: str, value: Any) -> str:
    if name == "open":
        return "1" if value else "0"
    return str(value)


def live_settings(row: Any) -> dict[str, Any]:
    """The live settings an operator set for a concert, as its row keeps them."""
    raw = row.queue_settings if row is not None else None
    return orjson.loads(raw) if raw else {}


def mapping(sale: Sale, on_sale: bool, settings: dict[str, Any]) -> list[str]:
    """The cfg hash's fields as rules.lua takes them: field, value, ... ('' deletes)."""
    fields = {
        "mode": sale.mode,
        "opens_ms": str(epoch_ms(sale.opens_at)),
        "prequeue_ms": str(epoch_ms(sale.prequeue_from)),
        "pow_bits": str(sale.pow_bits),
        "on_sale": "1" if on_sale else "0",
        "seed": sale.seed or "",
        "commitment": sale.commitment or "",
    }
    for name in LIVE_SETTINGS:
        fields[name] = redis_value(name, settings[name]) if name in settings else ""
    return [part for pair in fields.items() for part in pair]


async def _frontier(conn: AsyncConnection, concert_id: int) -> int | None:
    query = select(queue_progress.c.admitted_upto).where(queue_progress.c.concert_id == concert_id)
    value = await conn.scalar(query)
    return None if value is None else int(value)


async def restore(store: Store, concert_id: int, how: str = "restore") -> None:
    """Put the database's rules of a concert into a Redis that has none (or,
    with how='change', over the ones it has: a change Redis was not told of).
    The callers of a process that find none share one restore: a Redis that
    came back empty is met by every request in flight at once, and each
    would otherwise wait for a database connection of the few a worker has
    (FRONTROW_DATABASE_POOL / 4), 503 past the database timeout, to read the
    same row."""
    if how != "restore":
        return await _put(store, concert_id, how)
    running = store.restoring.get(concert_id)
    if running is None:
        running = asyncio.ensure_future(_put(store, concert_id, how))
        store.restoring[concert_id] = running
        running.add_done_callback(functools.partial(_restored, store.restoring, concert_id))
    # a caller that gives up (its client left) leaves the others' restore running
    await asyncio.shield(running)


def _restored(restoring: dict[int, Any], concert_id: int, done: asyncio.Future[None]) -> None:
    restoring.pop(concert_id, None)
    if not done.cancelled():
        done.exception()  # seen by its callers; read here too for when they all left


async def _put(store: Store, concert_id: int, how: str) -> None:
    async def read() -> tuple[Any, int | None]:
        async with store.db.connect() as conn:
            query = select(concerts).where(concerts.c.id == concert_id)
            return (await conn.execute(query)).first(), await _frontier(conn, concert_id)

    row, frontier = await database_call(store, read)
    # A concert the database does not have is reached only by the core's own
    # tests and the benchmarks (every route answers 404 first): open now, fifo.
    sale, on_sale = (sale_of(row), bool(row.on_sale)) if row is not None else (Sale(), True)
    await _run(store, concert_id, how, sale, sale, on_sale, live_settings(row), frontier)


async def write(
    store: Store,
    conn: AsyncConnection,
    concert_id: int,
    before: Sale,
    after: Sale,
    on_sale: bool,
    settings: dict[str, Any],
) -> None:
    """Write a changed sale (and the live settings) whole; 409 when its times
    may no longer move. Called inside the change's database transaction."""
    frontier = await _frontier(conn, concert_id)
    await _run(store, concert_id, "change", before, after, on_sale, settings, frontier)


async def _run(
    store: Store,
    concert_id: int,
    how: str,
    before: Sale,
    after: Sale,
    on_sale: bool,
    settings: dict[str, Any],
    frontier: int | None,
) -> None:
    k = store.keys(concert_id)
    outcome = await store.scripts.rules(
        keys=[k.cfg, k.stats, k.draw],
        args=[
            how,
            epoch_ms(before.opens_at),
            epoch_ms(before.prequeue_from),
            epoch_ms(after.opens_at),
            epoch_ms(after.prequeue_from),
            "" if frontier is None else frontier,
            RESTORE_CALM_MS,
            *mapping(after, on_sale, settings),
        ],
    )
    if outcome == "SALE_STARTED":
        raise Problem(
            409, "SALE_STARTED", "the sale has opened: its times are final and its draw published"
        )
    if outcome == "PREQUEUE_TAKEN":
        raise Problem(
            409,
            "PREQUEUE_TAKEN",
            "people are pre-queued for this opening: it may move later, not earlier",
        )


def sale_view(cfg: dict[str, str]) -> dict[str, Any]:
    """The sale's fields of the admin API, from the rules in Redis."""
    return {
        "prequeue_from": iso_of_ms(int(cfg.get("prequeue_ms", 0))),
        "opens_at": iso_of_ms(int(cfg.get("opens_ms", 0))),
        "mode": cfg.get("mode", "fifo"),
        "pow_bits": int(cfg.get("pow_bits", 0)),
        "commitment": cfg.get("commitment") or None,
    }


def refused(reply: Any) -> bool:
    return reply == NO_RULES or (isinstance(reply, list) and bool(reply) and reply[0] == NO_RULES)


async def call(store: Store, concert_id: int, script: Any, keys: list[Any], args: list[Any]) -> Any:
    """Run a script that reads the rules; where Redis has none, restore them
    and run it again. A Redis that lost them again in between is an
    unavailable one (503), not a reply for the caller to read."""
    reply = await script(keys=keys, args=args)
    if refused(reply):
        await restore(store, concert_id)
        reply = await script(keys=keys, args=args)
        if refused(reply):
            raise RedisConnectionError("Redis lost the sale's rules again as they were restored")
    return reply


async def seed(store: Store, concert_id: int) -> str:
    """The concert's lottery seed, as Redis has it ('' before any pre-queue is
    scheduled); kept once known, since a seed never changes."""
    known = store.seeds.get(concert_id)
    if known:
        return known
    value = await store.redis.hget(store.keys(concert_id).cfg, "seed") or ""
    if value:
        store.seeds[concert_id] = value
    return value


async def lottery(store: Store, concert_id: int) -> dict[str, Any] | None:
    """The lottery's public fields (None when no pre-queue is scheduled): the
    seed and the number of entries only from the recorded opening on."""
    k = store.keys(concert_id)
    reply = await call(store, concert_id, store.scripts.lottery, [k.cfg, k.stats, k.draw], [])
    if reply[0] != "LOTTERY":
        return None
    _, prequeue_ms, opens_ms, commitment, seed, entries = reply
    return {
        "prequeue_from": iso_of_ms(int(prequeue_ms)),
        "opens_at": iso_of_ms(int(opens_ms)),
        "commitment": commitment,
        "seed": seed or None,
        "entries": int(entries) if seed else None,
    }


async def change(
    store: Store,
    concert_id: int,
    live: dict[str, Any],
    sale_changes: dict[str, Any],
    who: str,
    operator: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Apply a change of live settings and sale fields (the live ones already
    validated, as PATCH .../queue gives them) in one transaction: the
    concert's row is read locked, the record and one audit row per moved
    field written, and Redis last, so a refusal there (SALE_STARTED,
    PREQUEUE_TAKEN) rolls the record back. Concurrent changes queue on the
    row lock: each audit row's old value is the new value of the one before.
    Returns the new values."""
    async with store.db.begin() as conn:
        query = select(concerts).where(concerts.c.id == concert_id)
        row = (await conn.execute(query.with_for_update())).first()
        if row is None:
            raise not_found("no such concert")
        before_sale = sale_of(row)
        before_live = live_settings(row)
        after_sale = sales.changed(before_sale, sale_changes) if sale_changes else before_sale
        after_live = {**before_live, **live}
        values: dict[str, Any] = {"queue_settings": orjson.dumps(after_live).decode()}
        if sale_changes:
            values.update(sale_values(after_sale))
        await conn.execute(update(concerts).where(concerts.c.id == concert_id).values(**values))
        if sale_changes:
            await bump_version(conn)
        defaults = {"open": bool(row.on_sale)}
        old = {
            name: before_live.get(name, defaults.get(name, getattr(store.settings, name, None)))
            for name in live
        }
        old.update({name: before_sale.as_dict()[name] for name in sale_changes})
        new = {**live, **{name: after_sale.as_dict()[name] for name in sale_changes}}
        await record(conn, concert_id, old, new, who, operator, reason)
        await write(store, conn, concert_id, before_sale, after_sale, bool(row.on_sale), after_live)
        return new


async def keep_frontier(store: Store, concert_id: int, frontier: int) -> None:
    """Record how far admission has come (lua/admit.lua); it only grows."""
    dialect = postgresql if store.db.dialect.name == "postgresql" else sqlite
    greatest = func.greatest if dialect is postgresql else func.max
    statement = dialect.insert(queue_progress).values(concert_id=concert_id, admitted_upto=frontier)
    statement = statement.on_conflict_do_update(
        index_elements=[queue_progress.c.concert_id],
        set_={"admitted_upto": greatest(queue_progress.c.admitted_upto, frontier)},
    )
    async with store.db.begin() as conn:
        await conn.execute(statement)


async def record(
    conn: AsyncConnection,
    concert_id: int,
    old: dict[str, Any],
    new: dict[str, Any],
    who: str,
    operator: str | None = None,
    reason: str | None = None,
) -> None:
    """One audit row per field whose value the change moved, signed by the
    operator (their admin token's name) with the reason they gave."""
    at = dt.datetime.now(dt.UTC)
    rows = [
        {
            "at": at,
            "concert_id": concert_id,
            "field": name,
            "old": orjson.dumps(old.get(name)).decode(),
            "new": orjson.dumps(value).decode(),
            "address": who[:64],
            "operator": operator,
            "reason": reason,
        }
        for name, value in new.items()
        if old.get(name) != value
    ]
    if rows:
        await conn.execute(insert(admin_audit), rows)
