"""A lean HTTP/1.1 keep-alive client for the load generator of `bench rush`.

The rush's buyers run on the same two cores as the servers they measure;
aiohttp's client took ~0.24 ms of CPU a request there (13 s of an
8,000-buyer rush, 40 s of a whole date), and every second of it was a
second the servers could not run. This client does what the rush needs and
nothing else: a bounded pool of kept-alive connections to one server, a
request written as one buffer, the answer parsed by httptools (the parser
uvicorn uses) and handed back as (status, headers, body).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httptools


class Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One kept-alive connection: one request at a time, answers parsed as they come."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.closed = True
        answer = Answer(self.parser.get_status_code(), self.headers, b"".join(self.body))
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)
        if self.closed and self.transport is not None:
            self.transport.close()


class Client:
    """At most `limit` connections to the server at `url`, kept alive and reused."""

    def __init__(self, url: str, limit: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_line = f"Host: {parts.netloc}\r\n"
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[_Connection] = []

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Answer:
        """One request; ConnectionError when the connection failed before its answer."""
        head = [f"{method} {path} HTTP/1.1\r\n", self.host_line]
        head += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}\r\n")
        head.append("\r\n")
        data = "".join(head).encode() + body
        async with self.slots:
            connection = await self._connection()
            assert connection.transport is not None
            connection.waiter = asyncio.get_running_loop().create_future()
            connection.transport.write(data)
            try:
                answer = await connection.waiter
            finally:
                if connection.closed or connection.waiter is not None:  # failed or cancelled
                    connection._fail(ConnectionError("abandoned"))
                else:
                    self.idle.append(connection)
        return answer

    async def _connection(self) -> _Connection:
        """A kept-alive connection the server has not closed, or a new one."""
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        return connection

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()
        self.idle.clear()
