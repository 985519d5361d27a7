"""Request parsing and response rendering shared by every route."""

from __future__ import annotations

import asyncio
import functools
import gzip
from collections.abc import Awaitable, Callable, Hashable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, TypeVar

import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from frontrow.auth import QueueClaims, bearer
from frontrow.config import Network
from frontrow.deadline import deadline
from frontrow.errors import Problem, bad_request
from frontrow.observe import on_behalf
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


GZIP_MIN_BYTES = 1000
GZIP_LEVEL = 5  # a stadium's map stays cheap to compress and still ~20x smaller


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Rendered:
    """An answer's JSON kept for many requests (a seat map, a page of the
    draw), and its gzip made the first time a client takes gzip (~40 ms for a
    stadium's 5 MB map), not once a request."""

    __slots__ = ("_gzipped", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._gzipped: bytes | None = None

    def response(self, request: Request, headers: dict[str, str] | None = None) -> Response:
        headers = dict(headers or {})
        if len(self.body) < GZIP_MIN_BYTES or "gzip" not in request.headers.get(
            "accept-encoding", ""
        ):
            return Response(self.body, media_type="application/json", headers=headers)
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
        # already encoded: app.Outgoing passes it through
        headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(self._gzipped, media_type="application/json", headers=headers)


_in_flight: dict[Hashable, asyncio.Future[Any]] = {}
T = TypeVar("T")


async def shared(key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
    """What `make` makes, made once for every caller of `key` that asks while
    it is being made (a map, a date's sold copy: a thousand identical asks at
    once are one)."""
    flight = _in_flight.get(key)
    if flight is None or flight.get_loop() is not asyncio.get_running_loop():
        # the first asker's CPU account pays for what everyone gets
        flight = _in_flight[key] = asyncio.ensure_future(on_behalf(make()))
        flight.add_done_callback(lambda _: _in_flight.pop(key, None))
    # a caller that goes away does not cancel the others' answer
    result: T = await asyncio.shield(flight)
    return result


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


FORWARDED_READ_CHARS = 1024  # the right end of X-Forwarded-For is all we ever trust


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)  # a buyer's requests come from one address: parsed once
def forwarded_client(peer: str, forwarded: str | None, trusted: tuple[Network, ...]) -> str:
    """The caller's address as a rate-limit key.

    The socket's peer, unless it is a trusted proxy: then X-Forwarded-For is
    walked from the right past trusted hops to the first that is not, and a
    hop that is not an IP address ends the walk. The key is always a parsed
    address (an IPv6 caller by its /64, which one subscriber usually holds
    whole), so no header can make up a key or make it long."""
    address = _ip(peer)
    if address is not None and forwarded and any(address in n for n in trusted):
        for hop in reversed(forwarded[-FORWARDED_READ_CHARS:].split(",")):
            parsed = _ip(hop)
            if parsed is None:
                break
            address = parsed
            if not any(parsed in n for n in trusted):
                break
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ip_network(f"{address}/64", strict=False))
    return str(address)


def client_address(request: Request) -> str:
    """The caller's address (see forwarded_client); FRONTROW_TRUSTED_PROXIES names proxies."""
    peer = request.client.host if request.client else ""
    trusted = store_of(request).settings.trusted_proxies
    return forwarded_client(peer, request.headers.get("x-forwarded-for"), trusted)


def user_id_of(request: Request) -> str:
    return store_of(request).tokens.verify_user(bearer(request.headers.get("authorization")))


def queue_claims_of(request: Request) -> QueueClaims:
    return store_of(request).tokens.verify_queue(bearer(request.headers.get("authorization")))


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past 16 KiB without reading it all, and
    with 415 when it says it is encoded: it would be read as if it were not."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise Problem(
            415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Encoding {encoding[:40]!r} is not accepted"
        )
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
        with deadline(BODY_TIMEOUT_S):
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
