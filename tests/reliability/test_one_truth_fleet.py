"""One sale, one truth on a fleet (#23): 2 workers and one admitter (and three
racing) on real Redis and PostgreSQL, on each server. Right after `frontrow
catalog import` returns, and right after an admin change, every answer of
every worker agrees with it; nobody books, is admitted or learns the seed
before the opening; in passthrough nobody passes a place that waits."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from frontrow import sale
from frontrow.store import Store
from tests.e2e.server import SERVERS, serve
from tests.reliability.helpers import admitters
from tests.reliability.test_many_processes import env_for, real_only  # noqa: F401

ADMIN = "admin-secret-0123456789abcdef-01234"
READS = 20


def fresh_client(url: str) -> httpx.AsyncClient:
    # a new connection per request, so the kernel spreads them over both workers
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, timeout=10, limits=limits)


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("server", SERVERS)
async def test_every_worker_agrees_at_once(
    real_only: None,  # noqa: F811
    store: Store,
    server: str,
    count: int,
    tmp_path: Path,
) -> None:
    env = {**env_for(store), "FRONTROW_ADMIN_TOKEN": ADMIN}
    with admitters(env, count):
        with serve(env, workers=2, server=server) as url:
            async with fresh_client(url) as c:
                # let both workers load the catalog and say so
                for _ in range(READS):
                    assert (await c.get("/concerts")).status_code == 200
                catalog_file = tmp_path / "new.json"
                concert = {"id": 5, "title": "Just imported", "venue": "Hall", "dates": []}
                day = dt.date.today() + dt.timedelta(days=30)
                seated = {
                    "id": 6,
                    "title": "Opens soon",
                    "venue": "Hall",
                    "sections": [
                        {"name": "A", "rows": [{"from": 1, "to": 3, "seats": 10, "price": 9}]}
                    ],
                    "dates": [{"date": day.isoformat(), "starts_at": f"{day}T19:00:00Z"}],
                }
                catalog_file.write_text(json.dumps({"concerts": [concert, seated]}))
                subprocess.run(
                    [sys.executable, "-m", "frontrow", "catalog", "import", str(catalog_file)],
                    env={**os.environ, **env},
                    check=True,
                    capture_output=True,
                )
                for n in range(READS):
                    user = {"Authorization": f"Bearer {store.tokens.user_token(f'n{n}')}"}
                    entered = await c.post("/concerts/5/queue", headers=user)
                    assert entered.status_code == 201, (n, entered.text)
                    listed = (await c.get("/concerts")).json()["concerts"]
                    assert "Just imported" in {x["title"] for x in listed}, n

                # a pre-queue from now: every newcomer on every worker is pre-queued
                opens = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
                window = {
                    "prequeue_from": dt.datetime.now(dt.UTC).isoformat(),
                    "opens_at": opens.isoformat(),
                }
                admin = {"Authorization": f"Bearer {ADMIN}"}
                patched = await c.patch("/admin/concerts/1/queue", headers=admin, json=window)
                assert patched.status_code == 200, patched.text
                for n in range(READS):
                    user = {"Authorization": f"Bearer {store.tokens.user_token(f'p{n}')}"}
                    entered = (await c.post("/concerts/1/queue", headers=user)).json()
                    assert entered["prequeue"] and entered["rank"] is None, (n, entered)
                    assert entered["status"] == "WAITING", (n, entered)
                    lottery = (await c.get("/concerts/1/queue/lottery")).json()
                    assert lottery["seed"] is None and lottery["commitment"], n
                # and the admitter lets nobody in before the opening
                assert await store.redis.zcard(store.keys(1).active) == 0

                # reject: no newcomer anywhere
                patched = await c.patch(
                    "/admin/concerts/1/queue", headers=admin, json={"mode": "reject"}
                )
                assert patched.status_code == 200
                for n in range(READS):
                    user = {"Authorization": f"Bearer {store.tokens.user_token(f'r{n}')}"}
                    refused = await c.post("/concerts/1/queue", headers=user)
                    assert refused.status_code == 409, (n, refused.text)
                await _nobody_before_the_opening(c, store, day)
                await _passthrough_never_passes_a_waiting_place(c, store)


def user(store: Store, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {store.tokens.user_token(name)}"}


async def _nobody_before_the_opening(c: httpx.AsyncClient, store: Store, day: dt.date) -> None:
    """Concert 6: a buyer in before the sale was scheduled holds and pays
    nothing until the opening; nobody is admitted and no seed shows before it;
    the pre-queue is admitted in the draw's order, k a tick, by racing admitters."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    early = (await c.post("/concerts/6/queue", headers=user(store, "early"))).json()
    for _ in range(50):
        if early["status"] == "ACTIVE":
            break
        await asyncio.sleep(0.1)
        early = (
            await c.get("/queue/token", headers={"Authorization": f"Bearer {early['token']}"})
        ).json() | {"token": early["token"]}
    assert early["status"] == "ACTIVE", early
    token = {"Authorization": f"Bearer {early['token']}"}
    charged = await c.post("/wallet/charge", headers=user(store, "early"), json={"amount": 100})
    assert charged.status_code == 200
    held = await c.post(f"/concerts/6/dates/{day}/seats/1/hold", headers=token)
    assert held.status_code == 201, held.text

    opens = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    window = {
        "prequeue_from": dt.datetime.now(dt.UTC).isoformat(),
        "opens_at": opens.isoformat(),
        "admit_batch": 5,
    }
    assert (await c.patch("/admin/concerts/6/queue", headers=admin, json=window)).status_code == 200
    for n in range(READS):
        hold = await c.post(f"/concerts/6/dates/{day}/seats/{2 + n}/hold", headers=token)
        assert hold.status_code == 409 and hold.json()["code"] == "SALE_NOT_OPEN", (n, hold.text)
        paid = await c.post("/payments", headers=token, json={"hold_ids": [held.json()["hold_id"]]})
        assert paid.status_code == 409 and paid.json()["code"] == "SALE_NOT_OPEN", (n, paid.text)
    places = {}
    for n in range(READS):
        entered = (await c.post("/concerts/6/queue", headers=user(store, f"q{n}"))).json()
        assert entered["prequeue"] and entered["status"] == "WAITING", entered
        places[f"q{n}"] = entered["token"]
    # the console's sale tile, from whichever worker answers: pre-queue, 20 in
    for n in range(READS):
        view = (await c.get("/admin/concerts/6/queue", headers=admin)).json()
        assert (view["state"], view["waiting"]) == ("prequeue", READS), (n, view)

    # nobody polls these tokens, so each session's score stays its admission + ttl
    ttl_ms = int(store.settings.session_ttl_s * 1000)
    ids = {name: store.tokens.verify_queue(tok).token_id for name, tok in places.items()}
    opens_ms = int(await store.redis.hget(store.keys(6).cfg, "opens_ms"))
    seed_seen = None
    admitted: dict[str, int] = {}
    while time.time() * 1000 < opens_ms + 6000 and len(admitted) < len(ids):
        lottery = (await c.get("/concerts/6/queue/lottery")).json()
        if lottery["seed"] is not None and seed_seen is None:
            seed_seen = time.time() * 1000
        for name, token_id in ids.items():
            score = await store.redis.zscore(store.keys(6).active, token_id)
            if score is not None:
                admitted.setdefault(name, int(score) - ttl_ms)
        await asyncio.sleep(0.02)
    assert seed_seen is not None and seed_seen >= opens_ms, (seed_seen, opens_ms)
    assert len(admitted) == len(ids), admitted
    assert min(admitted.values()) >= opens_ms, (admitted, opens_ms)
    opened_ms = int(await store.redis.hget(store.keys(6).stats, "opened_ms"))
    assert opened_ms >= opens_ms
    # the draw's order, five a tick: an earlier key is never admitted after a later one
    seed = (await c.get("/concerts/6/queue/lottery")).json()["seed"]
    order = sorted(ids, key=lambda name: sale.lottery_key(seed, 6, name))
    times = [admitted[name] for name in order]
    assert times == sorted(times), list(zip(order, times, strict=True))
    assert len(set(times)) >= len(ids) // 5  # in ticks of k, not all at once
    # every worker's console: open now, and none of the twenty (nobody polls
    # them) is back yet to hear it; "early" was, long ago
    for n in range(READS):
        view = (await c.get("/admin/concerts/6/live", headers=admin)).json()["settings"]
        assert (view["state"], view["not_back"]) == ("open", len(ids)), (n, view)


async def _passthrough_never_passes_a_waiting_place(c: httpx.AsyncClient, store: Store) -> None:
    """Concert 5: ten places wait (k = 0), then passthrough: no newcomer on any
    worker is admitted before all ten (sessions start at admission, nobody polls)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    patched = await c.patch("/admin/concerts/5/queue", headers=admin, json={"admit_batch": 0})
    assert patched.status_code == 200
    waiting = []
    for n in range(10):
        entered = (await c.post("/concerts/5/queue", headers=user(store, f"w{n}"))).json()
        assert entered["status"] == "WAITING", entered
        waiting.append(entered["token"])
    patched = await c.patch("/admin/concerts/5/queue", headers=admin, json={"mode": "passthrough"})
    assert patched.status_code == 200
    newcomers = []
    for n in range(READS):
        entered = (await c.post("/concerts/5/queue", headers=user(store, f"x{n}"))).json()
        newcomers.append(entered["token"])
    claims = [store.tokens.verify_queue(t).token_id for t in waiting + newcomers]
    active = store.keys(5).active
    for _ in range(50):
        scores = [await store.redis.zscore(active, t) for t in claims]
        if None not in scores:
            break
        await asyncio.sleep(0.1)
    assert None not in scores, scores
    assert max(scores[:10]) <= min(scores[10:]), scores
