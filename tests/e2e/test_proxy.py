"""deploy/nginx.conf in front of `frontrow serve`: it proxies, bounds heads, and
hands frontrow the one client address a caller cannot make up."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import unavailable
from tests.e2e.server import free_port, serve

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = Path(__file__).parents[2] / "deploy" / "nginx.conf"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, module_server: str) -> Iterator[str]:
    if not os.path.exists(NGINX):
        unavailable("nginx is not installed (Debian package nginx)")
    work = tmp_path_factory.mktemp("edge")
    env = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{work}/db.sqlite",
        "FRONTROW_TRUSTED_PROXIES": "127.0.0.1",
        "FRONTROW_DEMO_LOGINS_PER_IP": "3",
    }
    with serve(env, server=module_server) as app_url:
        port = free_port()
        conf = CONF.read_text()
        assert "server 127.0.0.1:8000;" in conf and "listen 127.0.0.1:8080;" in conf
        conf = conf.replace("server 127.0.0.1:8000;", f"server {app_url.split('//')[1]};")
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
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


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
