"""Request parsing and response rendering shared by every route."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from frontrow.auth import QueueClaims, bearer
from frontrow.errors import Problem, bad_request
from frontrow.store import Store

MAX_BODY_BYTES = 16 * 1024
BODY_TIMEOUT_S = 10.0  # a body that trickles in slower than this holds a worker for nothing


class IdConvertor(Convertor[int]):
    """A database id or seat number: at most 18 digits, so it is always an int64
    (Starlette's `int` takes any length, and Python refuses to parse past 4,300)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


class SlugConvertor(Convertor[str]):
    """A date, hold id or receipt id: one bounded path segment."""

    regex = "[^/]{1,128}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())
register_url_convertor("slug", SlugConvertor())


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def user_id_of(request: Request) -> str:
    return store_of(request).tokens.verify_user(bearer(request.headers.get("authorization")))


def queue_claims_of(request: Request) -> QueueClaims:
    return store_of(request).tokens.verify_queue(bearer(request.headers.get("authorization")))


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past 16 KiB without reading it all."""
    too_large = Problem(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request("invalid Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise bad_request(f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None
    return b"".join(chunks)


async def read_json(request: Request, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; `optional` accepts an empty body as {}."""
    body = await read_body(request)
    if not body.strip():
        if optional:
            return {}
        raise bad_request("a JSON body is required")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise bad_request("Content-Type must be application/json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(422, "VALIDATION_FAILED", "body must be a JSON object")
    return data
