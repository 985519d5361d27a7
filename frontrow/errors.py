"""problem+json errors (RFC 9457) with frontrow's stable codes."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
import psycopg
import redis.exceptions
import sqlalchemy.exc
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

log = logging.getLogger("frontrow")

RETRY_AFTER_S = "1"

# Every stable `code` a client may see (docs/API.md); the OpenAPI test checks each is documented.
ERRORS_BY_CODE = {
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "TOKEN_WAITING": 401,
    "TOKEN_EXPIRED": 401,
    "TOKEN_DONE": 401,
    "INSUFFICIENT_BALANCE": 402,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "SEAT_UNAVAILABLE": 409,
    "HOLD_LIMIT": 409,
    "HOLD_EXPIRED": 409,
    "QUEUE_CLOSED": 409,
    "IDEMPOTENCY_MISMATCH": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "VALIDATION_FAILED": 422,
    "BALANCE_LIMIT": 422,
    "TOO_MANY_REQUESTS": 429,
    "BACKEND_UNAVAILABLE": 503,
    "INTERNAL": 500,
}


class Problem(Exception):
    """An error answered to the client; raise it anywhere below a route."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}  # members added to the problem body (RFC 9457 extensions)


def bad_request(detail: str) -> Problem:
    return Problem(400, "BAD_REQUEST", detail)


def unauthenticated(detail: str, code: str = "UNAUTHENTICATED") -> Problem:
    return Problem(401, code, detail, {"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> Problem:
    return Problem(403, "FORBIDDEN", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, "NOT_FOUND", detail)


def conflict(code: str, detail: str) -> Problem:
    return Problem(409, code, detail)


def invalid(detail: str, code: str = "VALIDATION_FAILED") -> Problem:
    return Problem(422, code, detail)


def backend_unavailable(detail: str) -> Problem:
    return Problem(503, "BACKEND_UNAVAILABLE", detail, {"Retry-After": RETRY_AFTER_S})


def problem_response(problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
        **problem.extra,
    }
    return Response(
        orjson.dumps(body),
        status_code=problem.status,
        headers={**problem.headers, "X-Content-Type-Options": "nosniff"},
        media_type="application/problem+json",
    )


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, HTTPStatus(exc.status_code).name)
    detail = "no such route" if exc.status_code == 404 else str(exc.detail)
    problem = Problem(exc.status_code, code, detail, dict(exc.headers or {}))
    return problem_response(problem)


async def on_backend_error(request: Request, exc: Exception) -> Response:
    # Redis or the database did not answer: the request changed nothing we
    # acknowledged, so the client may retry (with the same Idempotency-Key).
    log.warning("backend unavailable on %s %s: %r", request.method, request.url.path, exc)
    return problem_response(backend_unavailable("a backend is unreachable; retry shortly"))


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    # The client left mid-body: nothing was changed and nobody reads the answer.
    return problem_response(bad_request("the client disconnected before sending the body"))


def backend_failed(exc: BaseException) -> bool:
    """Whether `exc` means a backend did not answer. Besides BACKEND_ERRORS:
    under uvloop, redis-py writing to a connection that closed under it (a
    Redis killed mid-write) raises a RuntimeError, "... TCPTransport
    closed=True ...; the handler is closed", not a ConnectionError."""
    return isinstance(exc, BACKEND_ERRORS) or (
        type(exc) is RuntimeError and "closed" in str(exc) and "ransport" in str(exc)
    )


async def on_runtime_error(request: Request, exc: Exception) -> Response:
    if backend_failed(exc):
        return await on_backend_error(request, exc)
    raise exc  # a bug: the 500 handler answers and the server logs it


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(Problem(500, "INTERNAL", "internal error"))


# A statement a constraint refused (it changed nothing), through SQLAlchemy or
# straight from psycopg (the money statements, store.Statements)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.IntegrityError,
    psycopg.IntegrityError,
)

BACKEND_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    # the money statements run on psycopg directly (store.Statements); a pool timeout is one
    psycopg.OperationalError,
    psycopg.InterfaceError,
    ConnectionError,
    TimeoutError,
)


def exception_handlers() -> dict[Any, Any]:
    handlers: dict[Any, Any] = {
        Problem: on_problem,
        HTTPException: on_http_exception,
        ClientDisconnect: on_client_disconnect,
        RuntimeError: on_runtime_error,
        Exception: on_unexpected,
    }
    for exc_type in BACKEND_ERRORS:
        handlers[exc_type] = on_backend_error
    return handlers
