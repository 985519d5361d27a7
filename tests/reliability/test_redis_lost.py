"""Redis killed mid-rush and back empty, on a fleet (#24.1): 2 workers and an
admitter on real PostgreSQL and a redis-server of our own without
persistence. Nobody loses their place or their order among the others,
nobody admitted loses their session, the settings in force stay in force,
and the outage answers 503, never another 5xx; no seat PostgreSQL sold is
offered again, and no lost hold is paid for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from frontrow.schema import reservations
from frontrow.store import Store
from tests.e2e.server import SERVERS, serve
from tests.reliability.helpers import OwnRedis, admitters
from tests.reliability.test_many_processes import env_for, real_only  # noqa: F401

ADMIN = "admin-secret-0123456789abcdef-01234"
USERS = 300


@contextlib.contextmanager
def fleet(store: Store, own: OwnRedis, server: str = "uvicorn", **env: str) -> Iterator[str]:
    """2 workers and an admitter on `own` and the test's PostgreSQL: the base URL."""
    env = {
        **env_for(store),
        "FRONTROW_REDIS_URL": own.url,
        "FRONTROW_REDIS_TIMEOUT_S": "0.5",
        "FRONTROW_ADMIN_TOKEN": ADMIN,
        **env,
    }
    with admitters(env), serve(env, workers=2, server=server) as url:
        yield url


async def test_a_rush_keeps_every_place_and_session_when_redis_comes_back_empty(
    real_only: None,  # noqa: F811
    own: OwnRedis,
    store: Store,
) -> None:
    redis = own.client()
    k = store.keys(1)
    codes: dict[int, int] = {}
    try:
        with fleet(store, own, FRONTROW_ADMIT_BATCH="10") as url:
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
        await redis.aclose()
    assert set(codes) <= {200, 503}, codes


PAID_BEFORE = 12  # buyers who paid for two seats before Redis went
HELD_BEFORE = 6  # buyers holding two seats, unpaid, when it went
IDLE = 6  # admitted buyers who had not asked for a seat yet


@pytest.mark.parametrize("server", SERVERS)
async def test_seats_sold_before_redis_came_back_empty_are_never_offered_again(
    real_only: None,  # noqa: F811
    own: OwnRedis,
    store: Store,
    server: str,
) -> None:
    """Redis killed and back empty in the middle of a date's sale: the seats
    PostgreSQL sold are still sold to every process (counts, maps, best
    available), the holds Redis lost are refused at payment with nothing
    debited, and the seats they held are sold to others, once."""
    # the last one only looks: a buyer's token is done once it has paid
    users = [f"b{n}" for n in range(PAID_BEFORE + HELD_BEFORE + IDLE + 1)]
    payers, holders = users[:PAID_BEFORE], users[PAID_BEFORE : PAID_BEFORE + HELD_BEFORE]
    idle, watcher = users[PAID_BEFORE + HELD_BEFORE : -1], users[-1]
    with fleet(store, own, server, FRONTROW_ADMIT_BATCH="100") as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            user = {u: {"Authorization": f"Bearer {store.tokens.user_token(u)}"} for u in users}
            queue: dict[str, dict[str, str]] = {}
            for u in users:
                charged = await c.post("/wallet/charge", headers=user[u], json={"amount": 10**6})
                assert charged.status_code == 200, charged.text
                entered = await c.post("/concerts/1/queue", headers=user[u])
                assert entered.status_code == 201, entered.text
                queue[u] = {"Authorization": f"Bearer {entered.json()['token']}"}

            async def until_active(u: str) -> None:
                """Polls as a browser does, through the outage's 503s."""
                for _ in range(80):
                    polled = await c.get("/queue/token", headers=queue[u])
                    if polled.status_code == 200 and polled.json()["status"] == "ACTIVE":
                        return
                    assert polled.status_code in (200, 503), polled.text
                    await asyncio.sleep(0.25)
                pytest.fail(f"{u} was not active again")

            for u in users:
                await until_active(u)
            first = (await c.get("/concerts/1/dates", headers=queue[watcher])).json()["dates"][0]
            date, capacity = first["date"], first["available_seats"]
            base = f"/concerts/1/dates/{date}"

            async def best(u: str) -> list[dict[str, Any]]:
                held = await c.post(f"{base}/best-available", headers=queue[u], json={"count": 2})
                assert held.status_code == 201, held.text
                return list(held.json()["holds"])

            async def pay(u: str, holds: list[dict[str, Any]]) -> httpx.Response:
                ids = {"hold_ids": [h["hold_id"] for h in holds]}
                return await c.post("/payments", headers=queue[u], json=ids)

            lost = {}
            for u in payers + holders:
                lost[u] = await best(u)
            for u in payers:
                paid = await pay(u, lost.pop(u))
                assert paid.status_code == 201, paid.text

            async def sold() -> set[int]:
                async with store.db.connect() as conn:
                    rows = await conn.execute(
                        select(reservations.c.seat_no).where(
                            reservations.c.schedule_id == first["schedule_id"]
                        )
                    )
                    return {seat for (seat,) in rows}

            sold_before = await sold()
            assert len(sold_before) == 2 * PAID_BEFORE
            balances = {u: (await c.get("/wallet", headers=user[u])).json() for u in holders}

            own.kill()
            own.start()  # back, and empty
            for u in [*holders, *idle, watcher]:
                await until_active(u)

            for u in holders:  # Redis lost their holds: refused, nothing taken
                refused = await pay(u, lost[u])
                assert refused.status_code == 409, refused.text
                assert refused.json()["code"] == "HOLD_EXPIRED"
                assert (await c.get("/wallet", headers=user[u])).json() == balances[u]

            # every process counts and draws from what PostgreSQL sold, to the seat
            looker = queue[watcher]
            dates = (await c.get("/concerts/1/dates", headers=looker)).json()["dates"]
            assert dates[0]["available_seats"] == capacity - len(sold_before)
            seats = (await c.get(f"{base}/seats", headers=looker)).json()["seats"]
            assert {s["seat_no"] for s in seats if s["status"] == "SOLD"} == sold_before
            assert all(s["status"] == "AVAILABLE" for s in seats if s["seat_no"] not in sold_before)
            overview = (await c.get(f"{base}/sections", headers=looker)).json()["sections"]
            for section in overview:
                free = [s for s in seats if s["section"] == section["name"]]
                free = [s for s in free if s["seat_no"] not in sold_before]
                assert section["available_seats"] == len(free), section

            bought_after: list[int] = []
            for u in holders + idle:
                holds = await best(u)
                assert not {h["seat_no"] for h in holds} & sold_before
                paid = await pay(u, holds)
                assert paid.status_code == 201, paid.text
                bought_after += [s["seat_no"] for s in paid.json()["seats"]]

            assert len(bought_after) == len(set(bought_after)) == 2 * (HELD_BEFORE + IDLE)
            assert await sold() == sold_before | set(bought_after)
            dates = (await c.get("/concerts/1/dates", headers=looker)).json()["dates"]
            assert dates[0]["available_seats"] == capacity - len(await sold())
