"""The admin API and the operations console: live queue settings and the
sale schedule (PATCH), the console's page and numbers, and the audit of
every change, signed by the operator's name. All of it answers 404 unless
FRONTROW_ADMIN_TOKEN or FRONTROW_ADMIN_TOKENS is set.
"""

from __future__ import annotations

import hmac
import logging
from importlib.resources import files
from typing import Any

import orjson
import sqlalchemy.exc
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from frontrow import live, ratelimit, rules, sale
from frontrow.auth import bearer
from frontrow.catalog import Concert, announce
from frontrow.errors import invalid, not_found, unauthenticated
from frontrow.http import JSONResponse, client_address, read_json, store_of
from frontrow.queue import core
from frontrow.schema import REASON_MAX, admin_audit
from frontrow.store import Store

log = logging.getLogger("frontrow.admin")
AUDIT_SHOWN = 100
DATABASE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)
WEB = files("frontrow") / "web"


def operator_of(operators: tuple[tuple[str, str], ...], given: str) -> str | None:
    """The name whose token this is, or None; every token is compared, so
    the time taken says nothing about which one came close."""
    found = None
    for name, token in operators:
        if hmac.compare_digest(given.encode(), token.encode()):
            found = name
    return found


async def _admin(request: Request) -> tuple[Concert, str]:
    """The concert asked about and the operator asking."""
    store = store_of(request)
    operators = store.settings.operators
    if not operators:
        raise not_found("no such route")
    # The right token always works: an operator's emergency k = 0 is never
    # locked out (a token of 32+ characters is no guess to throttle). Wrong
    # ones count, and past the limit are refused before they are counted.
    operator = operator_of(operators, bearer(request.headers.get("authorization")))
    if operator is None:
        address = client_address(request)
        limit = store.settings.admin_failures_per_ip
        await ratelimit.refuse_when_spent(store, "admin", address, limit)
        await ratelimit.check_address(store, "admin", address, limit)
        raise unauthenticated("invalid admin token")
    return await store.catalog.require(request.path_params["concert_id"]), operator


async def _admin_concert(request: Request) -> Concert:
    return (await _admin(request))[0]


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


ADMIN_FIELDS = (*rules.LIVE_SETTINGS, *sale.FIELDS)
INT_FIELDS = ("admit_batch", "max_active", "admit_target_p99_ms", "pow_bits")


async def _settings_view(store: Store, concert_id: int) -> dict[str, Any]:
    return await core.overview(store, concert_id)


async def admin_queue(request: Request) -> Response:
    store = store_of(request)
    concert, operator = await _admin(request)
    if request.method == "PATCH":
        # JSON has one number type: 500.0 is the integer 500, as JSON Schema says
        body = {
            name: int(v) if type(v) is float and v.is_integer() and name in INT_FIELDS else v
            for name, v in (await read_json(request)).items()
        }
        reason = body.pop("reason", None)  # said with the change, kept in its audit rows
        if reason is not None:
            if type(reason) is not str or len(reason.strip()) > REASON_MAX:
                raise invalid(f"reason must be text of at most {REASON_MAX} characters")
            reason = reason.strip() or None
        unknown = sorted(set(body) - set(ADMIN_FIELDS))
        if unknown or not body:
            raise invalid(f"give one or more of {', '.join(ADMIN_FIELDS)}")
        # everything is checked before anything is stored
        queue_changes = parse_live_settings(
            {n: v for n, v in body.items() if n in rules.LIVE_SETTINGS}
        )
        sale_changes = {n: v for n, v in body.items() if n in sale.FIELDS}
        address = client_address(request)
        try:
            await rules.change(
                store, concert.id, queue_changes, sale_changes, address, operator, reason
            )
        except DATABASE_ERRORS:
            if sale_changes:
                raise
            # PostgreSQL down: admission can still be steered (k = 0 stops
            # letting in people who could not pay), recorded in the log instead
            await core.configure(store, concert.id, queue_changes)
            log.warning(
                "admin change not audited: the database is unreachable",
                extra={
                    "concert": concert.id,
                    "changes": queue_changes,
                    "address": address,
                    "operator": operator,
                    "reason": reason,
                },
            )
        if sale_changes:
            await announce(store)
    return JSONResponse(await _settings_view(store, concert.id))


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
            "operator": row["operator"],
            "reason": row["reason"],
        }
        for row in rows
    ]
    return JSONResponse({"concert_id": concert.id, "changes": changes})


async def admin_live(request: Request) -> Response:
    store = store_of(request)
    concert = await _admin_concert(request)
    body = await live.view(store, concert)
    body["settings"] = await _settings_view(store, concert.id)
    return JSONResponse(body)


async def console(request: Request) -> Response:
    """The operations console's page; it signs in with the admin token itself."""
    if not store_of(request).settings.operators:
        raise not_found("no such route")
    return HTMLResponse((WEB / "admin.html").read_text(encoding="utf-8"))


routes = [
    Route("/admin", console, methods=["GET"]),
    Route("/admin/concerts/{concert_id:id}/queue", admin_queue, methods=["GET", "PATCH"]),
    Route("/admin/concerts/{concert_id:id}/live", admin_live, methods=["GET"]),
    Route("/admin/concerts/{concert_id:id}/audit", admin_audit_list, methods=["GET"]),
]
