"""The whole flow on a 3-node Redis Cluster, two concerts on different nodes."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import insert

from frontrow import catalog
from frontrow.config import Settings
from frontrow.queue import core
from frontrow.schema import concerts
from frontrow.store import open_store
from tests.conftest import REQUIRE_REAL, SECRET, add_date, app_client, bearer, user_headers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        if REQUIRE_REAL:
            pytest.fail("redis-server and redis-cli are needed for the cluster tests")
        pytest.skip("redis-server is not installed")
    workdir = tmp_path_factory.mktemp("cluster")
    ports = cluster_ports(3)
    procs = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(p),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{p}.conf",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        for p in ports:
            _wait(lambda p=p: redis.Redis(port=p).ping())
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait(
            lambda: (
                b"cluster_state:ok" in redis.Redis(port=ports[0]).execute_command("CLUSTER", "INFO")
            )
        )
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster-bus twin (port + 10000) is a valid, free port too."""
    import socket

    found: list[int] = []
    for port in range(21000, 26000):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free ports for a cluster")


def _wait(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis servers did not come up")
        time.sleep(0.1)


def node_of(ports: list[int], concert_id: int) -> int:
    client = redis.Redis(port=ports[0])
    slot = client.execute_command("CLUSTER", "KEYSLOT", f"{{c{concert_id}}}")
    for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError("slot not served")


async def test_two_concerts_on_two_nodes_sell_seats(cluster: list[int], tmp_path: Path) -> None:
    other = next(c for c in range(2, 100) if node_of(cluster, c) != node_of(cluster, 1))
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{cluster[0]}/0",
        redis_cluster=True,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        auth_secret=SECRET,
        demo_login=True,
        admin_token="admin-secret-0123456789abcdef-01234",
        enter_per_user=5,
        hold_per_user=5,
        requests_per_ip=100,
    )
    store = open_store(settings)
    await catalog.migrate(store.db)
    await catalog.seed_demo(store.db)
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)
    async with store.db.begin() as conn:
        await conn.execute(insert(concerts).values(id=other, title="Two", venue="B", on_sale=True))
        await add_date(conn, other, day, range(1, 11))
    first_day = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)).isoformat()
    try:
        async with app_client(store) as client:
            for concert_id, date in ((1, first_day), (other, day.isoformat())):
                user = f"buyer{concert_id}"
                entered = await client.post(
                    f"/concerts/{concert_id}/queue", headers=user_headers(store, user)
                )
                assert entered.status_code == 201
                token = entered.json()["token"]
                # nobody waits, so fifo lets the buyer in at once (enter.lua, on its node)
                assert entered.json()["status"] == "ACTIVE"
                assert (await core.admit(store, concert_id, "cluster")).admitted == 0
                poll = await client.get("/queue/token", headers=bearer(token))
                assert poll.json()["status"] == "ACTIVE"
                held = await client.post(
                    f"/concerts/{concert_id}/dates/{date}/seats/3/hold", headers=bearer(token)
                )
                assert held.status_code == 201, held.text
                spare = await client.post(
                    f"/concerts/{concert_id}/dates/{date}/seats/4/hold", headers=bearer(token)
                )
                released = await client.delete(
                    f"/holds/{spare.json()['hold_id']}", headers=bearer(token)
                )
                assert released.status_code == 204
                charged = await client.post(
                    "/wallet/charge", headers=user_headers(store, user), json={"amount": 200_000}
                )
                assert charged.status_code == 200
                paid = await client.post(
                    "/payments", headers=bearer(token), json={"hold_ids": [held.json()["hold_id"]]}
                )
                assert paid.status_code == 201, paid.text
                seat_map = await client.get(
                    f"/concerts/{concert_id}/dates/{date}/seats",
                    headers=bearer(await _active(store, concert_id)),
                )
                assert seat_map.json()["seats"][2]["status"] == "SOLD"
                assert (await client.get("/queue/token", headers=bearer(token))).json()[
                    "status"
                ] == "DONE"
                await core.sweep(store, concert_id)
                _, waiting, _ = await core.enter(store, f"leaver{concert_id}", concert_id)
                assert await core.leave(store, store.tokens.verify_queue(waiting))
            metrics = (await client.get("/metrics")).text
            assert f'frontrow_seats_sold{{concert="{other}"}} 1.0' in metrics
            admin = await client.get(
                f"/admin/concerts/{other}/queue",
                headers=bearer("admin-secret-0123456789abcdef-01234"),
            )
            assert admin.json()["admitted_total"] >= 1
    finally:
        await store.close()


async def _active(store: object, concert_id: int) -> str:
    from tests.conftest import active_token

    return await active_token(store, f"viewer{concert_id}", concert_id)  # type: ignore[arg-type]


async def test_a_burst_waits_for_connections_instead_of_failing(
    cluster: list[int], tmp_path: Path
) -> None:
    """3,000 entries at once into one concert (one node): more than a node's
    connections, so they queue for one (#24: 163 of 3,000 got 503)."""
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{cluster[0]}/0",
        redis_cluster=True,
        # a command may wait this long for a connection: the whole burst takes
        # seconds on a busy machine, and each waits its turn
        redis_timeout_s=30.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        auth_secret=SECRET,
        enter_per_user=0,
        hold_per_user=0,
        requests_per_ip=0,
    )
    store = open_store(settings)
    await catalog.migrate(store.db)
    await catalog.seed_demo(store.db)
    try:
        entered = await asyncio.gather(
            *(core.enter(store, f"burst{n}", 1) for n in range(3000)), return_exceptions=True
        )
        failed = [e for e in entered if isinstance(e, BaseException)]
        assert failed == [], failed[:3]
    finally:
        await store.close()
