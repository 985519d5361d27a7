"""The admin API and the operations console: live queue settings and the
sale schedule (PATCH), the console's page and numbers, and the audit of
every change. All of it answers 404 unless FRONTROW_ADMIN_TOKEN is set.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from importlib.resources import files
from typing import Any

import orjson
import sqlalchemy.exc
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from frontrow import catalog, live, ratelimit, sale
from frontrow.auth import bearer
from frontrow.catalog import Concert
from frontrow.errors import invalid, not_found, unauthenticated
from frontrow.http import JSONResponse, client_address, read_json, store_of
from frontrow.queue import core
from frontrow.schema import admin_audit
from frontrow.store import Store

log = logging.getLogger("frontrow.admin")
AUDIT_SHOWN = 100
DATABASE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)
WEB = files("frontrow") / "web"


async def _admin_concert(request: Request) -> Concert:
    store = store_of(request)
    expected = store.settings.admin_token
    if not expected:
        raise not_found("no such route")
    # A missing or malformed credential is a plain 401: it cannot be the token,
    # so it is no guess to count.
    given = bearer(request.headers.get("authorization"))
    address = client_address(request)
    limit = ratelimit.ADMIN_FAILURES_PER_ADDRESS
    await ratelimit.refuse_when_spent(store, "admin", address, limit)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        await ratelimit.check_address(store, "admin", address, limit)
        raise unauthenticated("invalid admin token")
    return await store.catalog.require(request.path_params["concert_id"])


def _is_int(value: Any) -> bool:
    return type(value) is int


def parse_live_settings(body: dict[str, Any]) -> dict[str, Any]:
    """Validate the live queue settings of a PATCH body (admin_queue has
    already refused unknown fields and an empty body)."""
    if "admit_batch" in body:
        value = body["admit_batch"]
        if not _is_int(value) or not 0 <= value <= 1_000_000:
            raise invalid("admit_batch must be an integer from 0 to 1000000")
    if "admit_interval_s" in body:
        value = body["admit_interval_s"]
        if type(value) not in (int, float) or not 0.05 <= value <= 3600:
            raise invalid("admit_interval_s must be a number from 0.05 to 3600")
    if "max_active" in body:
        value = body["max_active"]
        if not _is_int(value) or not 0 <= value <= 100_000_000:
            raise invalid("max_active must be an integer >= 0 (0 = no cap)")
    if "admit_target_p99_ms" in body:
        value = body["admit_target_p99_ms"]
        if not _is_int(value) or not 0 <= value <= 600_000:
            raise invalid("admit_target_p99_ms must be an integer from 0 (fixed k) to 600000")
    if "open" in body and type(body["open"]) is not bool:
        raise invalid("open must be true or false")
    return body


ADMIN_FIELDS = (*core.LIVE_SETTINGS, *sale.FIELDS)
INT_FIELDS = ("admit_batch", "max_active", "admit_target_p99_ms", "pow_bits")


async def _reread(store: Store, concert_id: int) -> Concert:
    await store.catalog.invalidate()
    return await store.catalog.require(concert_id)


async def _settings_view(store: Store, concert: Concert) -> dict[str, Any]:
    queue = await core.overview(store, concert.id, concert.on_sale)
    return {**queue, **concert.sale.as_dict(), "commitment": concert.sale.commitment}


async def admin_queue(request: Request) -> Response:
    store = store_of(request)
    concert = await _admin_concert(request)
    if request.method == "PATCH":
        # JSON has one number type: 500.0 is the integer 500, as JSON Schema says
        body = {
            name: int(v) if type(v) is float and v.is_integer() and name in INT_FIELDS else v
            for name, v in (await read_json(request)).items()
        }
        unknown = sorted(set(body) - set(ADMIN_FIELDS))
        if unknown or not body:
            raise invalid(f"give one or more of {', '.join(ADMIN_FIELDS)}")
        # everything is checked before anything is stored
        queue_changes = {n: v for n, v in body.items() if n in core.LIVE_SETTINGS}
        sale_changes = {n: v for n, v in body.items() if n in sale.FIELDS}
        if queue_changes:
            parse_live_settings(queue_changes)
        new_values = dict(queue_changes)
        if sale_changes:
            # from the database, not this process's copy: another process may
            # have changed the sale in the last seconds, and every field is written
            concert = await _reread(store, concert.id)
            new_sale = sale.changed(concert.sale, sale_changes)
            new_values.update({n: new_sale.as_dict()[n] for n in sale_changes})
        before = await _settings_view(store, concert)
        # with a p99 target the view's k is the admitter's own; the audit
        # compares with the k that was set
        configured = await store.redis.hget(store.keys(concert.id).cfg, "admit_batch")
        before["admit_batch"] = int(configured or store.settings.admit_batch)
        address = client_address(request)
        try:
            async with store.db.begin() as conn:
                if sale_changes:
                    await catalog.write_sale(conn, concert.id, new_sale)
                await _record(conn, concert.id, before, new_values, address)
                # Redis last, inside the transaction: if it fails, the sale and
                # the record of the change roll back with it
                await core.configure(store, concert.id, queue_changes)
        except DATABASE_ERRORS:
            if sale_changes:
                raise
            # PostgreSQL down: admission can still be steered (k = 0 stops
            # letting in people who could not pay), recorded in the log instead
            await core.configure(store, concert.id, queue_changes)
            log.warning(
                "admin change not audited: the database is unreachable",
                extra={"concert": concert.id, "changes": new_values, "address": address},
            )
        if sale_changes:
            concert = await _reread(store, concert.id)
    return JSONResponse(await _settings_view(store, concert))


async def _record(
    conn: AsyncConnection,
    concert_id: int,
    before: dict[str, Any],
    after: dict[str, Any],
    address: str,
) -> None:
    """One audit row per field whose value the change moved."""
    at = dt.datetime.now(dt.UTC)
    rows = [
        {
            "at": at,
            "concert_id": concert_id,
            "field": name,
            "old": orjson.dumps(before.get(name)).decode(),
            "new": orjson.dumps(value).decode(),
            "address": address[:64],
        }
        for name, value in after.items()
        if before.get(name) != value
    ]
    if rows:
        await conn.execute(insert(admin_audit), rows)


async def admin_audit_list(request: Request) -> Response:
    """The latest changes of a concert's settings, newest first."""
    store = store_of(request)
    concert = await _admin_concert(request)
    async with store.db.connect() as conn:
        result = await conn.execute(
            select(admin_audit)
            .where(admin_audit.c.concert_id == concert.id)
            .order_by(admin_audit.c.id.desc())
            .limit(AUDIT_SHOWN)
        )
        rows = result.mappings().all()
    changes = [
        {
            "at": sale.iso(row["at"]),
            "field": row["field"],
            "old": orjson.loads(row["old"]),
            "new": orjson.loads(row["new"]),
            "address": row["address"],
        }
        for row in rows
    ]
    return JSONResponse({"concert_id": concert.id, "changes": changes})


async def admin_live(request: Request) -> Response:
    store = store_of(request)
    concert = await _admin_concert(request)
    body = await live.view(store, concert)
    body["settings"] = await _settings_view(store, concert)
    return JSONResponse(body)


async def console(request: Request) -> Response:
    """The operations console's page; it signs in with the admin token itself."""
    if not store_of(request).settings.admin_token:
        raise not_found("no such route")
    return HTMLResponse((WEB / "admin.html").read_text(encoding="utf-8"))


routes = [
    Route("/admin", console, methods=["GET"]),
    Route("/admin/concerts/{concert_id:id}/queue", admin_queue, methods=["GET", "PATCH"]),
    Route("/admin/concerts/{concert_id:id}/live", admin_live, methods=["GET"]),
    Route("/admin/concerts/{concert_id:id}/audit", admin_audit_list, methods=["GET"]),
]
