"""The OpenAPI 3.1 document of docs/API.md, served at /openapi.json.

Written by hand, next to nothing else: a test compares it with the app's
routes, so a route added without being documented fails the build.
"""

from __future__ import annotations

from typing import Any

from frontrow.booking.holds import HOLD_ID
from frontrow.config import Settings
from frontrow.sale import PROOF_MAX
from frontrow.schema import REASON_MAX

HOLD_ID_PATTERN = f"^{HOLD_ID.pattern}$"
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
WON = {"type": "integer", "minimum": 0, "description": "won (KRW)"}
TIME = {"type": "string", "format": "date-time", "pattern": "Z$"}
DATE = {"type": "string", "format": "date"}
PLACE = {"section": STR, "row": STR, "label": STR}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


SCHEMAS: dict[str, Any] = {
    "Problem": obj(
        {
            "type": STR,
            "title": STR,
            "status": INT,
            "detail": STR,
            "code": {"type": "string", "pattern": "^[A-Z_]+$"},
        }
    ),
    "Place": obj(
        {
            "status": {"enum": ["WAITING", "ACTIVE", "EXPIRED", "DONE"]},
            "rank": nullable({"type": "integer", "minimum": 0}),
            "eta_s": nullable({"type": "integer", "minimum": 0}),
            "poll_after_ms": {"type": "integer", "minimum": 0},
            "expires_at": nullable(TIME),
            "concert_id": INT,
            "sold_out": BOOL,
        },
        {
            "prequeue": {
                "type": "boolean",
                "description": "true while the place waits unranked for the opening's draw",
            },
            "opens_at": nullable(TIME),
        },
    ),
    "Concerts": obj(
        {
            "concerts": {
                "type": "array",
                "items": obj(
                    {
                        "concert_id": INT,
                        "title": STR,
                        "venue": STR,
                        "timezone": STR,
                        "open": BOOL,
                        "sold_out": BOOL,
                        "dates": INT,
                    },
                    {
                        "prequeue_from": nullable(TIME),
                        "opens_at": nullable(TIME),
                        "mode": STR,
                        "pow_bits": INT,
                    },
                ),
            }
        }
    ),
    "Dates": obj(
        {
            "concert_id": INT,
            "timezone": STR,
            "dates": {
                "type": "array",
                "items": obj(
                    {
                        "date": DATE,
                        "schedule_id": INT,
                        "starts_at": TIME,
                        "available_seats": {"type": "integer", "minimum": 0},
                        "sold_out": BOOL,
                    }
                ),
            },
        }
    ),
    "Seats": obj(
        {"concert_id": INT, "date": DATE},
        {
            "seats": {
                "type": "array",
                "items": obj(
                    {
                        "seat_no": INT,
                        "price": WON,
                        "status": {"enum": ["AVAILABLE", "HELD", "SOLD"]},
                        **PLACE,
                    }
                ),
            },
            "section": nullable(STR),
            "rows": {
                "type": "array",
                "description": "with form=rows: seats seat_no .. seat_no + len(status) - 1,"
                " numbered number .. in the row; prices as [count, price] runs;"
                " status one letter a seat: A available, H held, S sold",
                "items": obj(
                    {
                        "section": STR,
                        "row": STR,
                        "seat_no": INT,
                        "number": INT,
                        "prices": {
                            "type": "array",
                            "items": {"type": "array", "items": INT, "minItems": 2, "maxItems": 2},
                        },
                        "status": {"type": "string", "pattern": "^[AHS]*$"},
                    }
                ),
            },
        },
    ),
    "Sections": obj(
        {
            "concert_id": INT,
            "date": DATE,
            "sections": {
                "type": "array",
                "items": obj(
                    {
                        "name": STR,
                        "rows": INT,
                        "total_seats": INT,
                        "available_seats": INT,
                        "min_price": WON,
                        "max_price": WON,
                        # where it lies in the venue's picture: x, y, width,
                        # height in percent, the stage along the top
                        "at": nullable(
                            {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 0, "maximum": 100},
                                "minItems": 4,
                                "maxItems": 4,
                            }
                        ),
                    }
                ),
            },
        }
    ),
    "Hold": obj(
        {
            "hold_id": STR,
            "concert_id": INT,
            "date": DATE,
            "seat_no": INT,
            **PLACE,
            "price": WON,
            "expires_at": TIME,
        }
    ),
    "Holds": obj({"holds": {"type": "array", "items": ref("Hold")}}),
    "HeldBlock": obj({"holds": {"type": "array", "minItems": 1, "items": ref("Hold")}}),
    "Wallet": obj({"user_id": STR, "balance": WON}),
    "Charge": obj({"amount": {"type": "integer", "minimum": 1}}),
    "Charged": obj({"user_id": STR, "balance": WON, "charged": WON}),
    "Payment": obj(
        {"hold_ids": {"type": "array", "minItems": 1, "uniqueItems": True, "items": STR}}
    ),
    "Receipt": obj(
        {
            "receipt_id": STR,
            "user_id": STR,
            "concert_id": INT,
            "amount": WON,
            "balance_after": WON,
            "paid_at": TIME,
            "seats": {
                "type": "array",
                "items": obj(
                    {"date": DATE, "seat_no": INT, **PLACE, "price": WON, "reservation_id": INT}
                ),
            },
        }
    ),
    "Receipts": obj({"receipts": {"type": "array", "items": ref("Receipt")}}),
    "DemoUser": obj({"user_id": STR, "access_token": STR}),
    "QueueSettings": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "admit_batch": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            "admit_interval_s": {"type": "number", "minimum": 0.05, "maximum": 3600},
            "max_active": {"type": "integer", "minimum": 0, "maximum": 100_000_000},
            "open": BOOL,
            "admit_target_p99_ms": {
                "type": "integer",
                "minimum": 0,
                "maximum": 600_000,
                "description": "booking p99 the admitter steers k to (0 = fixed k)",
            },
            "prequeue_from": nullable({"type": "string", "format": "date-time"}),
            "opens_at": nullable({"type": "string", "format": "date-time"}),
            "mode": {"enum": ["fifo", "random", "passthrough", "reject"]},
            "pow_bits": {"type": "integer", "minimum": 0, "maximum": 21},
            "reason": {
                "type": "string",
                "maxLength": REASON_MAX,
                "description": "why: kept with the change in the audit (not a setting)",
            },
        },
    },
    "QueueStats": obj(
        {
            "waiting": INT,
            "active": INT,
            "admitted_total": INT,
            "entered_total": INT,
            "not_back": INT,
            "answers": obj({"4xx": INT, "429": INT, "5xx": INT}),
            "abandoned_total": INT,
            "expired_total": INT,
            "admit_batch": INT,
            "admit_interval_s": {"type": "number"},
            "admit_target_p99_ms": INT,
            "max_active": INT,
            "admit_rate_per_s": {"type": "number"},
        },
        {
            "open": BOOL,
            "sold_out": BOOL,
            "prequeue_from": nullable(TIME),
            "opens_at": nullable(TIME),
            "mode": STR,
            "pow_bits": INT,
            "commitment": nullable(STR),
            "opened_at": nullable(TIME),
            "state": {
                "enum": ["scheduled", "prequeue", "opening", "open", "paused", "closed", "sold_out"]
            },
        },
    ),
    "Challenge": obj({"challenge": STR, "bits": INT, "expires_at": TIME}),
    "Lottery": obj(
        {
            "concert_id": INT,
            "prequeue_from": TIME,
            "opens_at": TIME,
            "commitment": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "seed": nullable({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
            "entries": nullable(INT),
        }
    ),
    "Draw": obj(
        {"keys": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}
    ),
}

ERRORS = {
    400: "BAD_REQUEST: malformed JSON or wrong content type",
    401: "UNAUTHENTICATED, TOKEN_WAITING, TOKEN_EXPIRED or TOKEN_DONE",
    402: "INSUFFICIENT_BALANCE",
    403: "FORBIDDEN: another concert's token or another user's resource;"
    " PROOF_OF_WORK_INVALID: a wrong, spent, expired or another user's proof",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "SEAT_UNAVAILABLE, HOLD_LIMIT, TICKET_LIMIT (with limit and bought), HOLD_EXPIRED,"
    " QUEUE_CLOSED (with opens_at and prequeue_from), IDEMPOTENCY_MISMATCH,"
    " SALE_NOT_OPEN (with opens_at), SALE_STARTED or PREQUEUE_TAKEN",
    413: "PAYLOAD_TOO_LARGE: body over 16 KiB",
    415: "UNSUPPORTED_MEDIA_TYPE: a body with a Content-Encoding other than identity",
    428: "PROOF_OF_WORK_REQUIRED: entering needs a Proof-Of-Work header",
    422: "VALIDATION_FAILED or BALANCE_LIMIT",
    429: "TOO_MANY_REQUESTS: a per-user or per-address limit (Retry-After set)",
    503: "BACKEND_UNAVAILABLE: Redis or the database is unreachable (Retry-After set)",
}


def problem(status: int) -> dict[str, Any]:
    return {
        "description": ERRORS[status],
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def ok(schema: str | None, description: str = "OK") -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def op(
    summary: str,
    responses: dict[int, dict[str, Any]],
    errors: tuple[int, ...],
    auth: str | None = None,
    body: str | None = None,
    params: tuple[dict[str, Any], ...] = (),
    body_required: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "responses": {}}
    for status, response in responses.items():
        out["responses"][str(status)] = response
    for status in (*errors, 503) if auth or body else errors:
        out["responses"].setdefault(str(status), problem(status))
    if auth:
        out["security"] = [{auth: []}]
        out["responses"].setdefault("401", problem(401))
    if body:
        out["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref(body)}},
        }
        for status in (400, 413, 415, 422):
            out["responses"].setdefault(str(status), problem(status))
    if params:
        out["parameters"] = list(params)
    return out


def path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$"},
}
CONCERT = path_param("concert_id", {"type": "integer", "minimum": 0})
PROOF_OF_WORK = {
    "name": "Proof-Of-Work",
    "in": "header",
    "required": False,
    "description": "<challenge>:<nonce> when the concert's pow_bits is above 0",
    "schema": {"type": "string", "maxLength": PROOF_MAX},
}
DATE_P = path_param("date", DATE)
SEAT = path_param("seat_no", {"type": "integer", "minimum": 0})
PAGE = {"description": "the waiting-room page", "content": {"text/html": {}}}

PATHS: dict[str, dict[str, Any]] = {
    "/": {"get": op("The waiting-room page", {200: PAGE}, ())},
    "/favicon.ico": {
        "get": op(
            "The site's icon", {200: {"description": "SVG", "content": {"image/svg+xml": {}}}}, ()
        )
    },
    "/healthz": {"get": op("Liveness", {200: ok(None, "the process runs")}, ())},
    "/readyz": {
        "get": op("Readiness: Redis and the database answer", {200: ok(None, "ready")}, (503,))
    },
    "/metrics": {
        "get": op(
            "Prometheus text exposition",
            {200: {"description": "metrics", "content": {"text/plain": {}}}},
            (503,),
        )
    },
    "/openapi.json": {"get": op("This document", {200: ok(None)}, ())},
    "/auth/demo": {
        "post": op(
            "Mint a demo user (when demo login is on)", {201: ok("DemoUser", "created")}, (404, 429)
        )
    },
    "/concerts": {
        "get": op("Concerts on sale or with future dates", {200: ok("Concerts")}, (503,))
    },
    "/concerts/{concert_id}/queue": {
        "post": op(
            "Enter the queue (201 new place, 200 the place you already hold)",
            {201: ok("Entered", "a new place"), 200: ok("Entered", "your existing place")},
            (403, 404, 409, 422, 428, 429),
            auth="userToken",
            params=(CONCERT, PROOF_OF_WORK),
        )
    },
    "/concerts/{concert_id}/queue/challenge": {
        "post": op(
            "A proof-of-work challenge for entering (a life that follows its bits, one use)",
            {201: ok("Challenge", "created")},
            (404, 429),
            auth="userToken",
            params=(CONCERT,),
        )
    },
    "/concerts/{concert_id}/queue/lottery": {
        "get": op(
            "The pre-queue lottery: commitment, then the seed from opens_at",
            {200: ok("Lottery")},
            (404, 503),
            params=(CONCERT,),
        )
    },
    "/concerts/{concert_id}/queue/lottery/draw": {
        "get": op(
            "The drawn keys in order (after the opening), a page at a time (immutable)",
            {200: ok("Draw")},
            (404, 422, 429, 503),
            params=(
                CONCERT,
                query_param("after", {"type": "string", "pattern": "^[0-9a-f]{64}$"}),
                query_param("limit", {"type": "integer", "minimum": 1, "maximum": 10_000}),
            ),
        )
    },
    "/queue/token": {
        "get": op("Poll your place", {200: ok("Place")}, (), auth="queueToken"),
        "delete": op(
            "Leave the queue or end the session", {204: ok(None, "left")}, (), auth="queueToken"
        ),
    },
    "/concerts/{concert_id}/dates": {
        "get": op(
            "Upcoming dates with seats left",
            {200: ok("Dates")},
            (403, 404),
            auth="queueToken",
            params=(CONCERT,),
        )
    },
    "/concerts/{concert_id}/dates/{date}/seats": {
        "get": op(
            "Seat map of one date, or of one section (?section=); form=rows for a stadium",
            {200: ok("Seats")},
            (403, 404, 422, 429),
            auth="queueToken",
            params=(
                CONCERT,
                DATE_P,
                query_param("section", {"type": "string", "minLength": 1, "maxLength": 32}),
                query_param("form", {"enum": ["seats", "rows"], "default": "seats"}),
            ),
        )
    },
    "/concerts/{concert_id}/dates/{date}/sections": {
        "get": op(
            "Sections of one date in the venue's order, with seats available",
            {200: ok("Sections")},
            (403, 404, 429),
            auth="queueToken",
            params=(CONCERT, DATE_P),
        )
    },
    "/concerts/{concert_id}/dates/{date}/seats/{seat_no}/hold": {
        "post": op(
            "Hold a seat for the hold TTL (200: you already hold it)",
            {201: ok("Hold", "held"), 200: ok("Hold", "already yours")},
            (403, 404, 409, 429),
            auth="queueToken",
            params=(CONCERT, DATE_P, SEAT),
            body="Empty",
            body_required=False,
        )
    },
    "/concerts/{concert_id}/dates/{date}/best-available": {
        "post": op(
            "Hold the best block of count adjacent seats in one row, all or none",
            {201: ok("HeldBlock", "held")},
            (403, 404, 409, 429),
            auth="queueToken",
            params=(CONCERT, DATE_P),
            body="BestAvailable",
        )
    },
    "/holds": {
        "get": op(
            "Your live holds in the token's concert, every tab's",
            {200: ok("Holds")},
            (),
            auth="queueToken",
        )
    },
    "/holds/{hold_id}": {
        "delete": op(
            "Release your hold",
            {204: ok(None, "released")},
            (403, 404),
            auth="queueToken",
            params=(path_param("hold_id", STR),),
        )
    },
    "/wallet": {"get": op("Your balance", {200: ok("Wallet")}, (503,), auth="userToken")},
    "/wallet/charge": {
        "post": op(
            "Add money (idempotent with Idempotency-Key)",
            {200: ok("Charged")},
            (409,),
            auth="userToken",
            body="Charge",
            params=(IDEMPOTENCY,),
        )
    },
    "/receipts": {
        "get": op("Your receipts, newest first", {200: ok("Receipts")}, (503,), auth="userToken")
    },
    "/receipts/{receipt_id}": {
        "get": op(
            "One of your receipts",
            {200: ok("Receipt")},
            (404, 503),
            auth="userToken",
            params=(path_param("receipt_id", STR),),
        )
    },
    "/payments": {
        "post": op(
            "Pay for held seats, all or nothing",
            {201: ok("Receipt", "paid")},
            (402, 403, 409),
            auth="queueToken",
            body="Payment",
            params=(IDEMPOTENCY,),
        )
    },
    "/admin/concerts/{concert_id}/queue": {
        "get": op(
            "Queue numbers and live settings",
            {200: ok("QueueStats")},
            (404, 429),
            auth="adminToken",
            params=(CONCERT,),
        ),
        "patch": op(
            "Change live settings; in force from the next tick",
            {200: ok("QueueStats")},
            (404, 429),
            auth="adminToken",
            body="QueueSettings",
            params=(CONCERT,),
        ),
    },
    "/admin/concerts/{concert_id}/live": {
        "get": op(
            "The last 15 minutes, sampled every 2 s in Redis, and the live settings",
            {200: ok("Live")},
            (404, 429),
            auth="adminToken",
            params=(CONCERT,),
        )
    },
    "/admin/concerts/{concert_id}/audit": {
        "get": op(
            "The latest 100 changes of the settings, newest first",
            {200: ok("Audit")},
            (404, 429),
            auth="adminToken",
            params=(CONCERT,),
        )
    },
    "/admin": {
        "get": op(
            "The operations console (HTML); 404 without FRONTROW_ADMIN_TOKEN",
            {200: {"description": "the page", "content": {"text/html": {}}}},
            (404,),
        )
    },
}
SERIES = {"type": "array", "items": nullable({"type": "number"})}
SCHEMAS["Live"] = obj(
    {
        "concert_id": INT,
        "interval_s": {"type": "number", "description": "seconds between two samples"},
        "series": obj(
            {
                "t": {"type": "array", "items": INT, "description": "sample times, epoch ms"},
                "waiting": SERIES,
                "active": SERIES,
                "admitted_per_min": SERIES,
                "abandoned_per_min": SERIES,
                "eta_last_s": SERIES,
                "holds_per_min": SERIES,
                "sales_per_min": SERIES,
                "seats_left": {"type": "object", "additionalProperties": SERIES},
                "poll_p99_ms": SERIES,
                "payment_p99_ms": SERIES,
                "not_back": SERIES,
                "answers_4xx_per_min": SERIES,
                "answers_429_per_min": SERIES,
                "answers_5xx_per_min": SERIES,
            }
        ),
        "dates": {
            "type": "array",
            "items": obj({"date": DATE, "seats": INT, "left": nullable(INT), "held": INT}),
        },
        "settings": ref("QueueStats"),
    }
)
SCHEMAS["Audit"] = obj(
    {
        "concert_id": INT,
        "changes": {
            "type": "array",
            "items": obj(
                {
                    "at": TIME,
                    "field": STR,
                    "old": {},
                    "new": {},
                    "address": STR,
                    "operator": nullable(STR),
                    "reason": nullable(STR),
                }
            ),
        },
    }
)
SCHEMAS["Empty"] = {"type": "object", "maxProperties": 0}
SCHEMAS["Entered"] = {
    **SCHEMAS["Place"],
    "required": [*SCHEMAS["Place"]["required"], "token"],
    "properties": {**SCHEMAS["Place"]["properties"], "token": STR},
}


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The document, with the limits of these settings (the defaults when None)."""
    settings = settings or Settings(auth_secret="-" * 32)
    schemas = {
        **SCHEMAS,
        "Charge": obj(
            {"amount": {"type": "integer", "minimum": 1, "maximum": settings.max_charge}}
        ),
        "BestAvailable": {
            "type": "object",
            "required": ["count"],
            "additionalProperties": False,
            "properties": {
                "count": {"type": "integer", "minimum": 1, "maximum": settings.max_holds_per_user},
                "section": {"type": "string", "minLength": 1, "maxLength": 32},
                "max_price": {"type": "integer", "minimum": 0},
            },
        },
        "Payment": obj(
            {
                "hold_ids": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "maxItems": settings.max_holds_per_user,
                    "items": {"type": "string", "pattern": HOLD_ID_PATTERN},
                }
            }
        ),
    }
    bearer = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "frontrow",
            "version": "1.0.0",
            "description": (
                "Virtual waiting room and concert ticket booking. Errors are "
                "application/problem+json with a stable `code`; any path answers 404 "
                "NOT_FOUND when unknown and 405 METHOD_NOT_ALLOWED for a method it lacks; "
                "500 INTERNAL is a bug (never with a traceback)."
            ),
        },
        "paths": PATHS,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "userToken": {**bearer, "description": "user token (sub = user id)"},
                "queueToken": {**bearer, "description": "queue token from POST .../queue"},
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "FRONTROW_ADMIN_TOKEN",
                },
            },
        },
    }
