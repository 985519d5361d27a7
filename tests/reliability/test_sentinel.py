"""Redis with failover through Sentinel (#24): a primary, a replica and three
Sentinels (`redis-server --sentinel`); the primary is killed mid-rush. Every
place the replica had survives, the failures in between are 503s (never a
500), and the service goes on against the new primary without a restart."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import REQUIRE_REAL, app_client, bearer, user_headers
from tests.e2e.server import free_port
from tests.reliability.helpers import demo_store
from tests.reliability.test_cluster import _wait

MASTER = "frontrow"


def _server(args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", *args, "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[dict[str, object]]:
    if not shutil.which("redis-server"):
        if REQUIRE_REAL:
            pytest.fail("redis-server is needed for the Sentinel test")
        pytest.skip("redis-server is not installed")
    primary, replica = free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs = {
        "primary": _server(["--port", str(primary), *common], tmp_path),
        "replica": _server(
            ["--port", str(replica), *common, "--replicaof", "127.0.0.1", str(primary)], tmp_path
        ),
    }
    ports = [free_port() for _ in range(3)]
    for n, port in enumerate(ports):
        conf = tmp_path / f"sentinel-{n}.conf"  # Sentinel rewrites its own file
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
        )
        procs[f"sentinel{n}"] = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    clients = {port: redis.Redis(port=port) for port in (primary, replica, *ports)}
    try:
        _wait(lambda: clients[replica].info("replication")["master_link_status"] == "up")
        for port in ports:
            _wait(lambda p=port: clients[p].sentinel_masters()[MASTER]["num-slaves"] >= 1)
        yield {
            "primary": clients[primary],
            "replica": clients[replica],
            "sentinels": ports,
            "procs": procs,
        }
    finally:
        for client in clients.values():
            client.close()
        for proc in procs.values():
            proc.kill()
            proc.wait()


async def test_a_failover_mid_rush_loses_no_place_and_answers_503_meanwhile(
    sentinels: dict[str, object], tmp_path: Path
) -> None:
    ports: list[int] = sentinels["sentinels"]  # type: ignore[assignment]
    store = await demo_store(
        tmp_path,
        redis_sentinels=tuple(("127.0.0.1", p) for p in ports),
        redis_master=MASTER,
        demo_login=True,
        admin_token="admin-secret-0123456789abcdef-01234",
        enter_per_user=0,
        hold_per_user=0,
        requests_per_ip=0,
    )
    try:
        async with app_client(store) as client:
            before = {}
            for n in range(50):
                entered = await client.post(
                    "/concerts/1/queue", headers=user_headers(store, f"b{n}")
                )
                assert entered.status_code == 201, entered.text
                before[f"b{n}"] = entered.json()["token"]
            # what the replica has: everything acknowledged so far
            assert sentinels["primary"].wait(1, 2000) == 1  # type: ignore[attr-defined]

            codes: list[tuple[float, int]] = []
            stop = asyncio.Event()

            async def rush() -> None:
                n = 0
                while not stop.is_set():
                    try:
                        response = await client.post(
                            "/concerts/1/queue", headers=user_headers(store, f"r{n}")
                        )
                        codes.append((time.monotonic(), response.status_code))
                    except httpx.HTTPError:
                        codes.append((time.monotonic(), 0))
                    n += 1
                    await asyncio.sleep(0.02)

            rushing = asyncio.create_task(rush())
            await asyncio.sleep(0.5)
            killed = time.monotonic()
            sentinels["procs"]["primary"].kill()  # type: ignore[index]
            deadline = killed + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                recent = [code for at, code in codes if at > killed + 0.5]
                if len(recent) > 10 and all(c == 201 for c in recent[-10:]):
                    break
            stop.set()
            await rushing

            after = [code for at, code in codes if at > killed]
            assert set(after) <= {201, 503}, sorted(set(after))  # never a 500
            failing = [at for at, code in codes if at > killed and code == 503]
            outage = (max(failing) - killed) if failing else 0.0
            assert after[-1] == 201 and outage < 20, (outage, after[-20:])
            print(f"Sentinel failover: 503s for {outage:.1f} s after the primary died")
            replica = sentinels["replica"]
            assert replica.info("replication")["role"] == "master"  # type: ignore[attr-defined]
            # every place the replica had is still there, with its status
            for user, token in before.items():
                poll = await client.get("/queue/token", headers=bearer(token))
                assert poll.status_code == 200, (user, poll.text)
                assert poll.json()["status"] in ("WAITING", "ACTIVE"), (user, poll.json())
    finally:
        await store.close()
