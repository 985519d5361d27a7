"""The on-sale moment over HTTP: proof of work, the lottery's endpoints, the
admin schedule, and `frontrow lottery verify` against a live server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from frontrow import catalog, sale
from frontrow.schema import concerts
from frontrow.store import Store
from tests.conftest import MakeStore, app_client, bearer, user_headers
from tests.e2e.server import serve
from tests.e2e.test_queue_http import assert_problem
from tests.queue.test_sale import open_now

ADMIN = "admin-secret-0123456789abcdef-01234"


def solve(challenge: str, bits: int) -> str:
    nonce = 0
    while not sale.proof_ok(challenge, str(nonce), bits):
        nonce += 1
    return f"{challenge}:{nonce}"


def wrong(challenge: str, bits: int) -> str:
    nonce = 0
    while sale.proof_ok(challenge, str(nonce), bits):
        nonce += 1
    return f"{challenge}:{nonce}"


async def test_proof_of_work_is_bound_spent_and_short_lived(
    client: httpx.AsyncClient, store: Store
) -> None:
    admin = bearer(store.settings.admin_token or "")
    patched = await client.patch("/admin/concerts/1/queue", headers=admin, json={"pow_bits": 8})
    assert patched.status_code == 200 and patched.json()["pow_bits"] == 8
    ann, bob = user_headers(store, "ann"), user_headers(store, "bob")
    url = "/concerts/1/queue"

    async def challenge(headers: dict[str, str], concert: int = 1) -> str:
        response = await client.post(f"/concerts/{concert}/queue/challenge", headers=headers)
        assert response.status_code == 201 and response.json()["bits"] == 8
        assert response.json()["expires_at"].endswith("Z")
        return str(response.json()["challenge"])

    assert_problem(await client.post(url, headers=ann), 428, "PROOF_OF_WORK_REQUIRED")
    given = await challenge(ann)
    bad = {**ann, "Proof-Of-Work": wrong(given, 8)}
    assert_problem(await client.post(url, headers=bad), 403, "PROOF_OF_WORK_INVALID")
    for junk in ("", "nonsense", f"{given}:", ":1", "a:b:c", f"{given}:{'9' * 65}"):
        response = await client.post(url, headers={**ann, "Proof-Of-Work": junk})
        assert_problem(response, 403, "PROOF_OF_WORK_INVALID")
    # another user's challenge, solved, is still not yours
    theirs = await challenge(bob)
    response = await client.post(url, headers={**ann, "Proof-Of-Work": solve(theirs, 8)})
    assert_problem(response, 403, "PROOF_OF_WORK_INVALID")
    # expired
    late = await challenge(ann)
    await store.redis.pexpire(store.keys(1).pow(late), 1)
    time.sleep(0.01)
    response = await client.post(url, headers={**ann, "Proof-Of-Work": solve(late, 8)})
    assert_problem(response, 403, "PROOF_OF_WORK_INVALID")
    # another concert's challenge (concert 2 exists only for this)
    async with store.db.begin() as conn:
        await conn.execute(
            concerts.insert().values(id=2, title="b", venue="v", on_sale=True, pow_bits=8)
        )
    await store.catalog.invalidate()
    other = await challenge(ann, 2)
    response = await client.post(url, headers={**ann, "Proof-Of-Work": solve(other, 8)})
    assert_problem(response, 403, "PROOF_OF_WORK_INVALID")
    assert await store.redis.zcard(store.keys(1).wait) == 0  # none of that took a place

    good = solve(await challenge(ann), 8)
    entered = await client.post(url, headers={**ann, "Proof-Of-Work": good})
    assert entered.status_code == 201
    # spent: a second user cannot reuse it, even with its owner's place taken
    assert_problem(
        await client.post(url, headers={**bob, "Proof-Of-Work": good}), 403, "PROOF_OF_WORK_INVALID"
    )
    await client.delete("/queue/token", headers=bearer(entered.json()["token"]))
    assert_problem(
        await client.post(url, headers={**ann, "Proof-Of-Work": good}), 403, "PROOF_OF_WORK_INVALID"
    )
    # a user who holds a live place gets it back without a new proof
    fresh = await client.post(url, headers={**ann, "Proof-Of-Work": solve(await challenge(ann), 8)})
    assert fresh.status_code == 201
    again = await client.post(url, headers=ann)
    # the same place (its token id); the token's other claims follow the line
    # (an admitted place carries the admission frontier of the moment)
    same = [store.tokens.verify_queue(r.json()["token"]).token_id for r in (fresh, again)]
    assert again.status_code == 200 and same[0] == same[1]


async def test_a_challenge_lives_as_long_as_its_difficulty_needs(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Ten slow-phone mean solving times, 30 s to 2 minutes; past 21 bits a
    slow phone would run out too often, so the difficulty stops there."""
    admin = bearer(store.settings.admin_token or "")
    for bits, life_s in ((8, 30), (20, 62), (21, 120)):
        patched = await client.patch(
            "/admin/concerts/1/queue", headers=admin, json={"pow_bits": bits}
        )
        assert patched.status_code == 200
        before = dt.datetime.now(dt.UTC)
        given = await client.post("/concerts/1/queue/challenge", headers=user_headers(store, "ann"))
        assert given.json()["bits"] == bits
        expires = dt.datetime.fromisoformat(given.json()["expires_at"])
        assert life_s - 2 <= (expires - before).total_seconds() <= life_s + 2, (bits, expires)
        ttl_ms = await store.redis.pttl(store.keys(1).pow(given.json()["challenge"]))
        assert life_s * 1000 - 2000 <= ttl_ms <= life_s * 1000
    refused = await client.patch("/admin/concerts/1/queue", headers=admin, json={"pow_bits": 22})
    assert_problem(refused, 422, "VALIDATION_FAILED")


async def test_the_schedule_through_the_admin_api(client: httpx.AsyncClient, store: Store) -> None:
    admin = bearer(store.settings.admin_token or "")
    url = "/admin/concerts/1/queue"
    before = (await client.get(url, headers=admin)).json()
    assert before["mode"] == "fifo" and before["opens_at"] is None and before["commitment"] is None
    for body in (
        {"mode": "lifo"},
        {"pow_bits": -1},
        {"opens_at": "soon"},
        {"prequeue_from": "2099-01-01T00:00:00Z"},  # without opens_at
        {"mode": "random", "admit_batch": -1},  # one bad field: nothing applied
    ):
        assert_problem(await client.patch(url, headers=admin, json=body), 422, "VALIDATION_FAILED")
    assert (await client.get(url, headers=admin)).json() == before
    assert_problem(await client.get("/concerts/1/queue/lottery"), 404, "NOT_FOUND")

    opens = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    body = {"prequeue_from": "2020-01-01T09:00:00+09:00", "opens_at": opens.isoformat()}
    after = (await client.patch(url, headers=admin, json=body)).json()
    assert after["prequeue_from"] == "2020-01-01T00:00:00Z"
    assert after["opens_at"] == sale.iso(opens) and len(after["commitment"]) == 64
    listed = (await client.get("/concerts")).json()["concerts"][0]
    assert listed["opens_at"] == sale.iso(opens) and listed["mode"] == "fifo"
    lottery = (await client.get("/concerts/1/queue/lottery")).json()
    assert lottery == {
        "concert_id": 1,
        "prequeue_from": "2020-01-01T00:00:00Z",
        "opens_at": sale.iso(opens),
        "commitment": after["commitment"],
        "seed": None,
        "entries": None,
    }
    assert_problem(await client.get("/concerts/1/queue/lottery/draw"), 404, "NOT_FOUND")
    entered = await client.post("/concerts/1/queue", headers=user_headers(store, "ann"))
    assert entered.status_code == 201
    assert entered.json()["prequeue"] is True and entered.json()["rank"] is None
    # moving the opening keeps the commitment; the seed is never re-made
    later = (opens + dt.timedelta(hours=1)).isoformat()
    moved = (await client.patch(url, headers=admin, json={"opens_at": later})).json()
    assert moved["commitment"] == after["commitment"]
    # the opening: the seed is revealed and the draw is public
    await open_now(store)
    lottery = (await client.get("/concerts/1/queue/lottery")).json()
    seed = lottery["seed"]
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == after["commitment"]
    assert lottery["entries"] == 1
    keys = (await client.get("/concerts/1/queue/lottery/draw")).json()["keys"]
    assert keys == [sale.lottery_key(seed, 1, "ann")]
    for query in ("after=xyz", "limit=0", "limit=10001", "limit=ten"):
        response = await client.get(f"/concerts/1/queue/lottery/draw?{query}")
        assert_problem(response, 422, "VALIDATION_FAILED")
    assert (await client.get(f"/concerts/1/queue/lottery/draw?after={keys[0]}")).json() == {
        "keys": []
    }
    assert_problem(
        await client.patch(url, headers=admin, json={"opens_at": later}), 409, "SALE_STARTED"
    )


async def test_draw_pages_are_kept_whole_and_counted_per_address(
    make_store: MakeStore, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The draw never changes after the opening: a page is read from Redis
    once and answered as immutable; an address asking too often gets 429."""
    store = await make_store(requests_per_ip=6)
    await catalog.seed_demo(store.db)
    admin = {"Authorization": "Bearer admin-secret-0123456789abcdef-01234"}
    async with app_client(store) as client:
        opens = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        body = {"prequeue_from": "2020-01-01T00:00:00Z", "opens_at": opens}
        patched = await client.patch("/admin/concerts/1/queue", headers=admin, json=body)
        assert patched.status_code == 200
        for n in range(3):
            entered = await client.post("/concerts/1/queue", headers=user_headers(store, f"u{n}"))
            assert entered.status_code == 201
        await open_now(store)
        reads = []
        real = store.redis.zrangebylex

        async def counted(*args: object, **kwargs: object) -> object:
            reads.append(args)
            return await real(*args, **kwargs)

        monkeypatch.setattr(store.redis, "zrangebylex", counted)
        pages = [await client.get("/concerts/1/queue/lottery/draw?limit=2") for _ in range(3)]
        assert {p.status_code for p in pages} == {200} and len(reads) == 1
        assert pages[0].headers["cache-control"] == "public, max-age=31536000, immutable"
        assert len(pages[0].json()["keys"]) == 2
        assert len({p.content for p in pages}) == 1
        rest = await client.get(
            f"/concerts/1/queue/lottery/draw?after={pages[0].json()['keys'][1]}"
        )
        assert len(rest.json()["keys"]) == 1 and len(reads) == 2
        for _ in range(2):  # six asks from this address in the window: the seventh is refused
            await client.get("/concerts/1/queue/lottery/draw?limit=2")
        refused = await client.get("/concerts/1/queue/lottery/draw?limit=2")
        assert_problem(refused, 429, "TOO_MANY_REQUESTS")
        assert int(refused.headers["Retry-After"]) >= 1


@contextmanager
def tampered(url: str) -> Iterator[str]:
    """A server that answers like `url` but with another seed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = httpx.get(url + self.path).json()
            if body.get("seed"):  # one hex digit changed, whatever it was
                body["seed"] = ("1" if body["seed"][0] != "1" else "2") + body["seed"][1:]
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def verify(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frontrow", "lottery", "verify", "1", "--url", url, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lottery_verify_passes_on_a_real_draw_and_fails_on_a_tampered_seed(
    tmp_path: pytest.TempPathFactory,
) -> None:
    env = {"FRONTROW_ADMIN_TOKEN": ADMIN, "FRONTROW_ADMIT_BATCH": "0"}
    with serve(env, cwd=str(tmp_path)) as url:
        # room for a slow machine: the check below and the 40 entries must all
        # come before the opening, then the test waits for it
        opens = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)
        body = {"prequeue_from": "2020-01-01T00:00:00Z", "opens_at": opens.isoformat()}
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert httpx.patch(f"{url}/admin/concerts/1/queue", headers=admin, json=body).is_success
        before = verify(url)
        assert before.returncode == 1 and "not published yet" in before.stderr
        users = []
        for _ in range(40):
            demo = httpx.post(f"{url}/auth/demo").json()
            entered = httpx.post(
                f"{url}/concerts/1/queue",
                headers={"Authorization": f"Bearer {demo['access_token']}"},
            )
            assert entered.status_code == 201 and entered.json()["prequeue"] is True
            users.append(demo["user_id"])
        time.sleep(max(0.0, (opens - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
        passed = verify(url, "--user", users[7])
        assert passed.returncode == 0, passed.stderr
        assert "entries    40, keys fetched 40" in passed.stdout
        assert f"user {users[7]}: rank " in passed.stdout and "OK:" in passed.stdout
        with tampered(url) as fake:
            failed = verify(fake)
        assert failed.returncode == 1 and "SHA-256(seed) is not the commitment" in failed.stderr
