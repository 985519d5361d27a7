"""Redis killed mid-rush and back empty, on a fleet (#24.1): 2 workers and an
admitter on real PostgreSQL and a redis-server of our own without
persistence. Nobody loses their place or their order among the others,
nobody admitted loses their session, the settings in force stay in force,
and the outage answers 503, never another 5xx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from frontrow.store import Store
from tests.conftest import REQUIRE_REAL
from tests.e2e.server import serve
from tests.reliability.helpers import OwnRedis
from tests.reliability.test_many_processes import env_for, real_only  # noqa: F401

ADMIN = "admin-secret-0123456789abcdef-01234"
USERS = 300


async def test_a_rush_keeps_every_place_and_session_when_redis_comes_back_empty(
    real_only: None,  # noqa: F811
    store: Store,
    tmp_path: Path,
) -> None:
    import shutil

    if not shutil.which("redis-server"):
        if REQUIRE_REAL:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    own = OwnRedis(tmp_path)
    own.start()
    env = {
        **env_for(store),
        "FRONTROW_REDIS_URL": own.url,
        "FRONTROW_REDIS_TIMEOUT_S": "0.5",
        "FRONTROW_ADMIN_TOKEN": ADMIN,
        "FRONTROW_ADMIT_BATCH": "10",
    }
    admitter = subprocess.Popen(
        [sys.executable, "-m", "frontrow", "admitter"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis = own.client()
    k = store.keys(1)
    codes: dict[int, int] = {}
    try:
        with serve(env, workers=2) as url:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as c:
                admin = {"Authorization": f"Bearer {ADMIN}"}
                patched = await c.patch(
                    "/admin/concerts/1/queue", headers=admin, json={"admit_batch": 4}
                )
                assert patched.status_code == 200
                tokens: dict[str, str] = {}  # token id -> token

                async def enter(n: int) -> None:
                    user = {"Authorization": f"Bearer {store.tokens.user_token(f'u{n}')}"}
                    entered = await c.post("/concerts/1/queue", headers=user)
                    assert entered.status_code == 201, entered.text
                    token = entered.json()["token"]
                    tokens[store.tokens.verify_queue(token).token_id] = token

                await asyncio.gather(*(enter(n) for n in range(USERS)))

                async def poll(token: str) -> dict[str, object] | None:
                    try:
                        r = await c.get(
                            "/queue/token", headers={"Authorization": f"Bearer {token}"}
                        )
                    except httpx.HTTPError:
                        return None
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    return r.json() if r.status_code == 200 else None

                async def everyone() -> dict[str, dict[str, object] | None]:
                    answers = await asyncio.gather(*(poll(t) for t in tokens.values()))
                    return dict(zip(tokens, answers, strict=True))

                while await redis.zcard(k.active) < 20:  # admission under way, people polling
                    await everyone()
                    await asyncio.sleep(0.3)
                line = await redis.zrange(k.wait, 0, -1)
                admitted = set(await redis.zrange(k.active, 0, -1))
                own.kill()
                await redis.aclose()
                during = await everyone()
                assert all(a is None for a in during.values())
                own.start()  # back, and empty
                redis = own.client()

                after: dict[str, dict[str, object] | None] = {}
                for _ in range(40):  # browsers come back as they would, within seconds
                    after = await everyone()
                    if all(a is not None for a in after.values()):
                        break
                    await asyncio.sleep(0.25)
                assert admitted <= {t for t, a in after.items() if a and a["status"] == "ACTIVE"}
                # in the first order: admitted from the front, the rest ranked as before
                assert all(after[t]["status"] in ("ACTIVE", "WAITING") for t in line)  # type: ignore[index]
                now_active = set(await redis.zrange(k.active, 0, -1))
                now_line = {t: n for n, t in enumerate(await redis.zrange(k.wait, 0, -1), 1)}
                positions = [0 if t in now_active else now_line[t] for t in line]
                assert positions == sorted(positions), positions
                shown = (await c.get("/admin/concerts/1/queue", headers=admin)).json()
                assert shown["admit_batch"] == 4  # the operator's k, not the environment's
    finally:
        admitter.terminate()
        admitter.wait(timeout=15)
        await redis.aclose()
        own.kill()
    assert set(codes) <= {200, 503}, codes
