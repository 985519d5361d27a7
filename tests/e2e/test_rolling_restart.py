"""A rolling deploy behind deploy/nginx.conf with no failed request (#24.7):
two `frontrow serve` instances under load, each stopped with SIGTERM and
started again in turn, while buyers poll and charge their wallets through
the edge."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from frontrow.store import Store
from tests.conftest import unavailable
from tests.e2e.server import SERVERS, free_port, serve
from tests.e2e.test_proxy import CONF, NGINX
from tests.reliability.test_many_processes import env_for, real_only  # noqa: F401

BUYERS = 24


def edge_conf(upstreams: list[int], port: int, down: int | None = None) -> str:
    """deploy/nginx.conf before these upstreams (`down` marked so), on this
    port, without the per-address rates (every buyer of the test shares one
    address)."""
    conf = CONF.read_text()
    line = next(x for x in conf.splitlines() if "server 127.0.0.1:8000 " in x)
    servers = "\n".join(
        line.replace(":8000 ", f":{p} ").replace(";", " down;" if p == down else ";")
        for p in upstreams
    )
    conf = conf.replace(line, servers)
    conf = conf.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    return "\n".join(line for line in conf.splitlines() if "limit_req zone=" not in line)


@pytest.mark.parametrize("server", SERVERS)
async def test_a_rolling_restart_fails_no_request(
    real_only: None,  # noqa: F811
    store: Store,
    server: str,
    tmp_path: Path,
) -> None:
    if not os.path.exists(NGINX):
        unavailable("nginx is not installed (Debian package nginx)")
    env = env_for(store)
    ports = [free_port(), free_port()]
    edge_port = free_port()
    (tmp_path / "nginx.conf").write_text(edge_conf(ports, edge_port))
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async def send(c: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
        """As a browser sends: a request whose reused connection was closed
        before any answer came (the edge reloading closes its idle client
        connections) is sent again once on a new one, as Chromium and Firefox
        do; every answer that does come is counted."""
        try:
            return await c.request(method, path, **kw)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            outcomes["resent on a new connection"] += 1
            return await c.request(method, path, **kw)

    async def buyer(c: httpx.AsyncClient, n: int) -> None:
        user = {"Authorization": f"Bearer {store.tokens.user_token(f'b{n}')}"}
        entered = await c.post("/concerts/1/queue", headers=user)
        if entered.status_code not in (200, 201):
            outcomes[f"entering {entered.status_code} {entered.text}"] += 1
            return
        token = {"Authorization": f"Bearer {entered.json()['token']}"}
        i = 0
        while not stop.is_set():
            i += 1
            try:
                polled = await send(c, "GET", "/queue/token", headers=token)
                key = {**user, "Idempotency-Key": f"b{n}-{i}"}
                charged = await send(c, "POST", "/wallet/charge", headers=key, json={"amount": 1})
                outcomes[f"{polled.status_code} {charged.status_code}"] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
            await asyncio.sleep(0.02)

    with ExitStack() as running:
        # every instance's log, old and new, read when something failed
        log = running.enter_context(open(tmp_path / "servers.log", "w+"))
        instances = [running.enter_context(ExitStack()) for _ in ports]
        for stack, port in zip(instances, ports, strict=True):
            stack.enter_context(serve(env, workers=2, server=server, port=port, output=log))
        edge = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=running.enter_context(open(tmp_path / "edge.log", "w")),
        )
        running.callback(edge.wait, 10)
        running.callback(edge.terminate)
        url = f"http://127.0.0.1:{edge_port}"
        for _ in range(100):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)

        def reload(down: int | None) -> None:
            (tmp_path / "nginx.conf").write_text(edge_conf(ports, edge_port, down))
            edge.send_signal(signal.SIGHUP)  # a graceful reload: old workers finish first
            time.sleep(1.5)

        def roll() -> None:
            # README, "Deploying without a failed request": out of the edge,
            # SIGTERM, the new one started and ready, back into the edge
            time.sleep(1.5)
            for i, port in enumerate(ports):
                reload(down=port)
                instances[i].close()
                instances[i] = ExitStack()
                instances[i].enter_context(
                    serve(env, workers=2, server=server, port=port, output=log)
                )
                running.callback(instances[i].close)
                reload(down=None)

        async with httpx.AsyncClient(base_url=url, timeout=15) as c, asyncio.TaskGroup() as tg:
            for n in range(BUYERS):
                tg.create_task(buyer(c, n))
            await asyncio.to_thread(roll)
            stop.set()
    resent = outcomes.pop("resent on a new connection", 0)
    logs = [(tmp_path / name).read_text()[-3000:] for name in ("edge.log", "servers.log")]
    assert set(outcomes) == {"200 200"}, (outcomes, *logs)
    assert resent < 20, resent
    assert outcomes["200 200"] > 10 * BUYERS
