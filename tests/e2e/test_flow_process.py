"""The whole docs/API.md flow against a real `frontrow serve` process, on each backend."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from frontrow.store import MONEY_CONNECTIONS, Store
from tests.conftest import SECRET
from tests.e2e.server import serve


def server_env(store: Store, tmp_path: object) -> dict[str, str]:
    s = store.settings
    env = {
        "FRONTROW_ADMIT_INTERVAL_S": "0.2",
        "FRONTROW_ADMIT_BATCH": "1",
        "FRONTROW_ADMIN_TOKEN": "admin-secret-0123456789abcdef-01234",
    }
    if not s.embedded:
        env.update(
            {
                "FRONTROW_REDIS_URL": s.redis_url or "",
                "FRONTROW_DATABASE_URL": s.database_url,
                "FRONTROW_AUTH_SECRET": SECRET,
                "FRONTROW_SCHEDULERS": "1",
                "FRONTROW_DEMO_LOGIN": "1",
            }
        )
    else:
        env["FRONTROW_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/served.db"
    return env


def wait_until_active(client: httpx.Client, token: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        poll = client.get("/queue/token", headers={"Authorization": f"Bearer {token}"}).json()
        if poll["status"] == "ACTIVE":
            return poll
        assert poll["status"] == "WAITING"
        time.sleep(0.1)  # faster than poll_after_ms: the test's own clock, not a browser's
    raise AssertionError("never admitted")


def test_queue_to_receipt(make_store, store: Store, tmp_path, http_server: str) -> None:
    env = server_env(store, tmp_path)
    with serve(env, server=http_server) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        login = c.post("/auth/demo").json()
        user = {"Authorization": f"Bearer {login['access_token']}"}
        concert = c.get("/concerts").json()["concerts"][0]
        assert concert["open"] is True and concert["dates"] == 3

        entered = c.post(f"/concerts/{concert['concert_id']}/queue", headers=user)
        assert entered.status_code == 201
        token = entered.json()["token"]
        queue = {"Authorization": f"Bearer {token}"}
        active = wait_until_active(c, token)
        assert active["expires_at"] and active["rank"] == 0

        dates = c.get(f"/concerts/{concert['concert_id']}/dates", headers=queue).json()["dates"]
        date = dates[0]["date"]
        seats = c.get(f"/concerts/1/dates/{date}/seats", headers=queue).json()["seats"]
        free = [s for s in seats if s["status"] == "AVAILABLE"][:2]
        holds = [
            c.post(f"/concerts/1/dates/{date}/seats/{s['seat_no']}/hold", headers=queue).json()
            for s in free
        ]
        total = sum(h["price"] for h in holds)

        assert c.post("/wallet/charge", headers=user, json={"amount": total}).status_code == 200
        paid = c.post(
            "/payments",
            headers={**queue, "Idempotency-Key": "k1"},
            json={"hold_ids": [h["hold_id"] for h in holds]},
        )
        assert paid.status_code == 201, paid.text
        receipt = paid.json()
        assert receipt["amount"] == total and receipt["balance_after"] == 0
        assert c.get("/wallet", headers=user).json()["balance"] == 0
        assert c.get("/receipts", headers=user).json()["receipts"][0] == receipt
        assert c.get("/queue/token", headers=queue).json()["status"] == "DONE"
        admin = c.get(
            "/admin/concerts/1/queue",
            headers={"Authorization": "Bearer admin-secret-0123456789abcdef-01234"},
        )
        assert admin.json()["admitted_total"] >= 1


def test_serve_logs_its_config_and_one_json_line_per_request(tmp_path, http_server: str) -> None:
    import json

    env = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        "FRONTROW_ADMIN_TOKEN": "do-not-log-me-0123456789abcdef-0123456",
        "FRONTROW_LOG_LEVEL": "INFO",
    }
    with open(tmp_path / "out.log", "w+") as out:
        with serve(env, output=out, server=http_server) as url:
            assert httpx.get(url + "/concerts").status_code == 200
        out.seek(0)
        text = out.read()
    assert "do-not-log-me-0123456789abcdef-0123456" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    config = next(line for line in lines if line["msg"] == "effective config")
    assert config["config"]["admin_token"] == "***"
    access = [line for line in lines if line["msg"] == "request" and line["route"] == "/concerts"]
    assert len(access) == 1
    assert access[0]["method"] == "GET" and access[0]["status"] == 200
    assert access[0]["duration_ms"] >= 0


def test_no_database_session_is_opened_in_a_burst(store: Store, tmp_path, http_server: str) -> None:
    """Each worker opens its money connections as it starts: a burst of
    charges waits for them and never forks a PostgreSQL session (#25.4)."""
    if store.settings.embedded:
        pytest.skip("SQLite has no sessions to open")
    import psycopg
    from sqlalchemy import make_url

    env = {**server_env(store, tmp_path), "FRONTROW_DATABASE_POOL": "4"}
    dsn = make_url(store.settings.database_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as pg:

        def money_sessions() -> set[int]:
            rows = pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (MONEY_CONNECTIONS,),
            ).fetchall()
            return {int(pid) for (pid,) in rows}

        with serve(env, workers=2, server=http_server) as url:
            deadline = time.monotonic() + 20
            while len(before := money_sessions()) < 2 * 4:  # each worker's pool, whole
                assert time.monotonic() < deadline, "the pools were not opened at start"
                time.sleep(0.1)

            async def burst() -> list[int]:
                async with httpx.AsyncClient(base_url=url, timeout=10) as c:
                    users = [(await c.post("/auth/demo")).json()["access_token"] for _ in range(8)]
                    answers = await asyncio.gather(
                        *(
                            c.post(
                                "/wallet/charge",
                                headers={"Authorization": f"Bearer {users[i % 8]}"},
                                json={"amount": 1000},
                            )
                            for i in range(64)
                        )
                    )
                return [a.status_code for a in answers]

            assert asyncio.run(burst()) == [200] * 64
            assert money_sessions() == before  # the same sessions: none opened, none closed
