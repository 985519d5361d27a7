"""uvicorn's httptools protocol with the bounds it lacks: request-head size,
request-head time and connections per worker.

uvicorn reads a request head of any size for as long as the client takes,
and accepts connections until the process runs out of file descriptors. A
reverse proxy in front should bound these too (deploy/nginx.conf); this is
what keeps one worker standing when it is reached directly.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from frontrow.config import Settings

log = logging.getLogger("frontrow.server")
REQUESTS_PER_CONNECTION = 100  # a poll every 2 s: a new connection every ~3 minutes


class Limits:
    """This worker's bounds, from its settings (app lifespan, in every worker)."""

    max_connections = 2048
    header_timeout_s = 10.0
    max_header_bytes = 16 * 1024

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.max_connections = settings.max_connections
        cls.header_timeout_s = settings.header_timeout_s
        cls.max_header_bytes = settings.max_header_bytes


def raise_file_limit(connections: int) -> None:
    """Let the process hold its connection cap, with room for Redis, the database
    and log files; warn when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open-file limit %s is below --max-connections %s + 256", target, connections)


class GuardedHttpTools(HttpToolsProtocol):
    """Answers 431 to a head over the size limit, 408 to one that takes longer
    than the time limit, 503 to a connection over the cap; each then closes.

    The head's clock is a timestamp, not a timer per request: arming and
    cancelling a loop timer costs ~30 times reading the clock, on every
    poll (python -m bench.pollpath). So is the keep-alive's (uvicorn arms a
    timer after every answer and cancels it at the next request's first
    byte). One sweep per worker (`_sweep`, a few times per timeout) cuts off
    the heads that ran over and closes the connections idle past the
    keep-alive timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._served = 0  # requests on this connection
        self._draining = False  # the server is stopping: this connection's last answer says close
        self._tail = b""  # the head's last bytes so far: its end may straddle two reads
        self._head_since: float | None = None  # loop time the current head began
        self._idle_since: float | None = None  # loop time the last answer ended, while idle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > Limits.max_connections:
            self._refuse(503, b"server busy; retry shortly")
            return
        self._head_since = self.loop.time()  # connected and silent counts too
        _start_sweeping(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        self._idle_since = None
        if self._in_head:
            room = Limits.max_header_bytes - self._head_bytes
            # A whole head in one read is parsed and served in the same call:
            # judge its size first, by where it ends (the blank line).
            if (
                len(data) > room
                and (self._tail + data).find(b"\r\n\r\n", 0, len(self._tail) + room) < 0
            ):
                self._refuse(431, b"request head too large")
                return
            self._head_bytes += len(data)
            self._tail = data[-3:]
            if self._head_since is None:
                self._head_since = self.loop.time()
        super().data_received(data)
        # Counted before parsing, judged after: a chunk may carry the head's end and a body.
        if self._in_head and self._head_bytes > Limits.max_header_bytes:
            self._refuse(431, b"request head too large")

    def on_headers_complete(self) -> None:
        self._in_head, self._head_since = False, None
        super().on_headers_complete()
        self._served += 1
        if (self._draining or self._served >= REQUESTS_PER_CONNECTION) and self.cycle is not None:
            # "Connection: close" on this answer: the client opens a new
            # connection, which any worker may accept, so a worker started
            # after the others (a restart, a deploy) gets its share.
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        """The server is stopping. uvicorn closes an idle keep-alive
        connection here at once, and a request the client is sending on it
        at that moment meets a reset: a failed request in every rolling
        deploy (#24.8). So an idle connection is left to its client: the
        next request on it is answered with "Connection: close", and one
        that stays idle ends at the client's own idle close (the edge's 8 s)
        or at the keep-alive timeout; a connection mid-request closes after
        its answer, as before."""
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive's clock a timestamp in place of its
        # timer; the next head's clock starts with its first byte.
        self._in_head, self._head_bytes, self._tail = True, 0, b""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:  # a request pipelined behind this one starts now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since = self.loop.time()

    def _head_too_slow(self) -> None:
        self._head_since = None
        if self._head_bytes:
            self._refuse(408, b"request head not received in time")
        else:
            self.transport.close()  # connected and silent: nothing to answer

    def _refuse(self, status: int, message: bytes) -> None:
        if self.transport.is_closing():
            return
        self._head_since = None
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(message)).encode() + b"\r\n",
                    b"connection: close\r\n",
                    b"\r\n",
                    message,
                ]
            )
        )
        self.transport.close()


_sweeping: set[asyncio.AbstractEventLoop] = set()


def _start_sweeping(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    if loop not in _sweeping:
        _sweeping.add(loop)
        _sweep(loop, connections)


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Cut off every head older than the time limit and close every
    connection idle past the keep-alive timeout, then come back: a late head
    is answered between 1 and 1.25 times the limit after it began (at most 1 s
    late, and the sweep never runs more than 20 times a second); an idle
    connection is closed at most as late."""
    timeout = Limits.header_timeout_s
    now = loop.time()
    for protocol in list(connections):
        since = getattr(protocol, "_head_since", None)
        if since is not None and now - since > timeout:
            protocol._head_too_slow()
        idle = getattr(protocol, "_idle_since", None)
        if idle is not None and now - idle > protocol.timeout_keep_alive:
            protocol._idle_since = None
            protocol.timeout_keep_alive_handler()
    loop.call_later(max(0.05, min(1.0, timeout / 4)), _sweep, loop, connections)
