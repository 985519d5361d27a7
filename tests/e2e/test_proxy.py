"""deploy/nginx.conf in front of `frontrow serve`: it proxies, bounds heads, and
hands frontrow the one client address a caller cannot make up."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import unavailable
from tests.e2e.server import free_port, serve

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = Path(__file__).parents[2] / "deploy" / "nginx.conf"


@pytest.fixture(scope="module")
def edges(
    tmp_path_factory: pytest.TempPathFactory, module_server: str
) -> Iterator[tuple[str, str]]:
    if not os.path.exists(NGINX):
        unavailable("nginx is not installed (Debian package nginx)")
    work = tmp_path_factory.mktemp("edge")
    env = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{work}/db.sqlite",
        "FRONTROW_TRUSTED_PROXIES": "127.0.0.1",
        "FRONTROW_DEMO_LOGINS_PER_IP": "3",
    }
    # a worker full with 100 sockets (nginx opens at most 64 for one address)
    with serve(env, server=module_server, args=("--max-connections", "100")) as app_url:
        port = free_port()
        conf = CONF.read_text()
        assert "server 127.0.0.1:8000 " in conf and "listen 127.0.0.1:8080;" in conf
        conf = conf.replace("server 127.0.0.1:8000 ", f"server {app_url.split('//')[1]} ")
        conf = conf.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
        (work / "nginx.conf").write_text(conf)
        proc = subprocess.Popen(
            [NGINX, "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            yield url, app_url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def edge(edges: tuple[str, str]) -> str:
    return edges[0]


def test_the_edge_proxies_the_service(edge: str) -> None:
    response = httpx.get(edge + "/concerts", timeout=5)
    assert response.status_code == 200 and response.json()["concerts"]


def test_a_made_up_forwarded_address_buys_no_new_limit(edge: str) -> None:
    codes = [
        httpx.post(
            edge + "/auth/demo", headers={"X-Forwarded-For": f"198.51.100.{i}"}, timeout=5
        ).status_code
        for i in range(5)
    ]
    assert codes == [201] * 3 + [429] * 2


def test_the_edge_refuses_an_oversized_head(edge: str) -> None:
    response = httpx.get(edge + "/healthz", headers={"Authorization": "x" * 20_000}, timeout=5)
    assert response.status_code in (400, 431)


@contextmanager
def idle_sockets(url: str, count: int) -> Iterator[None]:
    """`count` connected sockets that send nothing, all closed on the way out."""
    host, port = url.split("//")[1].split(":")
    with ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(socket.create_connection((host, int(port)), timeout=5))
        yield


def test_idle_sockets_from_one_address_never_reach_the_service(edges: tuple[str, str]) -> None:
    """300 silent sockets from one address: straight at a worker capped at
    100 they turn everyone away; at the edge nobody else notices."""
    edge, app = edges
    with idle_sockets(edge, 300):
        for _ in range(5):
            assert httpx.get(edge + "/healthz", timeout=5).status_code == 200
    with idle_sockets(app, 120), pytest.raises(httpx.HTTPError):
        response = httpx.get(app + "/healthz", timeout=3)
        response.raise_for_status()  # a worker past its cap answers 503 or hangs


def test_the_edge_bounds_how_fast_one_address_enters(edge: str) -> None:
    started = time.monotonic()
    answers = [httpx.post(edge + "/concerts/1/queue", timeout=5) for _ in range(20)]
    took = time.monotonic() - started
    codes = [r.status_code for r in answers]
    # through: the burst of 10, the first, and 2 a second since (deploy/nginx.conf)
    assert codes.count(401) <= 11 + math.ceil(2 * took), (codes, took)
    refused = [r for r in answers if r.status_code == 429]
    assert refused, codes
    # nginx's own answer: frontrow's would be problem+json
    assert all("problem+json" not in r.headers.get("content-type", "") for r in refused)


async def test_the_edge_bounds_one_address_flooding_any_path(edge: str) -> None:
    """A buyer hammering maps, or anything, from one address: past the burst,
    nginx answers 429 before a worker spends anything on it."""
    # every request on a connection of its own, as many clients would send them
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=300)) as client:
        answers = await asyncio.gather(*(client.get(edge + "/healthz") for _ in range(300)))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429} and codes.count(429) >= 100, codes.count(429)
