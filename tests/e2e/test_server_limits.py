"""`frontrow serve` bounds request heads in size and time, and connections in
number, answering instead of falling over."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from frontrow.server import REQUESTS_PER_CONNECTION
from tests.e2e.server import SERVERS, serve

LIMITS = ("--max-connections", "40", "--header-timeout", "1", "--max-header-bytes", "4096")


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def url(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("limits") / "db.sqlite"
    env = {"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    with serve(env, args=LIMITS, server=server) as base:
        yield base


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass  # a server that closes on unread input resets; what came before counts
    return b"".join(chunks)


def test_an_oversized_head_is_431_and_closed(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        try:
            for _ in range(64):
                sock.sendall(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us mid-send, as it should
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]


@pytest.mark.parametrize(
    "head",
    [
        b"Authorization: Bearer " + b"a" * 100_000 + b"\r\n",
        b"".join(b"X-H-%d: 1\r\n" % i for i in range(6_000)),
    ],
    ids=["one 100 KB header", "6,000 headers"],
)
def test_a_head_over_the_limit_in_one_write_is_431(url: str, head: bytes) -> None:
    """A whole oversized head in one read is refused too, not only one that
    is still arriving (uvicorn parsed it and answered 401 or 200)."""
    with connect(url) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]


def test_a_head_just_under_the_limit_is_served(url: str) -> None:
    with connect(url) as sock:
        filler = b"X-Fill: " + b"a" * 3000 + b"\r\n"
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"Connection: close\r\n\r\n"
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]


def test_a_trickled_head_is_cut_off_within_the_header_timeout(url: str, server: str) -> None:
    with connect(url) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = b""
        for i in range(20):
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
        answer = read_all(sock)
        elapsed = time.monotonic() - started
    # uvicorn (GuardedHttpTools) says 408; granian closes without a word
    assert answer.startswith(b"HTTP/1.1 408 " if server == "uvicorn" else b""), answer[:80]
    assert elapsed < 4


def test_idle_sockets_past_the_cap_are_refused_or_outlived(url: str, server: str) -> None:
    idle = []
    try:
        for _ in range(45):
            sock = connect(url)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a request line, then nothing
            idle.append(sock)
        time.sleep(0.2)
        with connect(url) as extra:
            if server == "uvicorn":
                # refused on arrival, before it says anything
                assert read_all(extra).startswith(b"HTTP/1.1 503 ")
            else:
                # granian caps requests in flight, not sockets: a real request still passes
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert read_all(extra).startswith(b"HTTP/1.1 200 ")
        # the head timeout frees them all; the service answers again
        time.sleep(1.5)
        # each idle socket was closed by the server (a hang would time out the read)
        said = {read_all(sock)[:12] for sock in idle}
        assert said <= ({b"HTTP/1.1 408", b"HTTP/1.1 503"} if server == "uvicorn" else {b""})
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_an_ordinary_keep_alive_client_is_untouched(url: str) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
            time.sleep(0.3)  # between requests the keep-alive timer applies, not the head one


def test_a_connection_is_closed_after_its_hundredth_request(url: str, server: str) -> None:
    """So that clients spread over the workers again after one restarts: a
    keep-alive connection lives 100 requests on uvicorn (granian keeps its
    connections; README, "The edge")."""
    if server != "uvicorn":
        pytest.skip("frontrow.server bounds uvicorn's connections; granian's are its own")
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    headers = []
    for _ in range(REQUESTS_PER_CONNECTION):
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        headers.append(response.getheader("connection"))
    assert headers[:-1] == [None] * (REQUESTS_PER_CONNECTION - 1)
    assert headers[-1] == "close"
    conn.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    server: str, tmp_path: Path
) -> None:
    """uvicorn's keep-alive timer is a timestamp the worker's sweep reads
    (frontrow.server): a connection idle past FRONTROW_KEEP_ALIVE_S is
    closed, one that asks again in time is kept."""
    if server != "uvicorn":
        pytest.skip("granian closes idle connections at its head timeout (README)")
    env = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "FRONTROW_KEEP_ALIVE_S": "1",
    }
    with serve(env, args=LIMITS, server=server) as base:
        parts = urlsplit(base)
        kept = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        idle = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            for conn in (kept, idle):
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            for _ in range(6):  # 3 s: kept asks every half second
                time.sleep(0.5)
                kept.request("GET", "/healthz")
                response = kept.getresponse()
                response.read()
                assert response.status == 200 and response.getheader("connection") is None
            # idle for 3 s against a timeout of 1 s (swept every second): closed by the server
            assert idle.sock is not None and idle.sock.recv(1) == b""
        finally:
            kept.close()
            idle.close()
