"""`frontrow serve` bounds request heads in size and time, and connections in
number, answering instead of falling over."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.server import serve

LIMITS = ("--max-connections", "40", "--header-timeout", "1", "--max-header-bytes", "4096")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("limits") / "db.sqlite"
    with serve({"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}, args=LIMITS) as base:
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


def test_a_trickled_head_is_408_within_the_header_timeout(url: str) -> None:
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
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert elapsed < 4


def test_idle_sockets_past_the_cap_get_503_and_then_go_away(url: str) -> None:
    idle = []
    try:
        for _ in range(45):
            sock = connect(url)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a request line, then nothing
            idle.append(sock)
        time.sleep(0.2)
        with connect(url) as extra:
            # refused on arrival, before it says anything
            assert read_all(extra).startswith(b"HTTP/1.1 503 ")
        # the head timeout frees them all; the service answers again
        time.sleep(1.5)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_an_ordinary_keep_alive_client_is_untouched(url: str) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
            time.sleep(0.3)  # between requests the keep-alive timer applies, not the head one
