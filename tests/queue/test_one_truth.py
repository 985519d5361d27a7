"""One sale, one truth (#23): the rules live in Redis beside the queue, and
every entry, admission, hold and payment is judged by them and by Redis's
clock inside its own atomic step, whatever a process has in its copy."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import random
from typing import Any

import pytest
from sqlalchemy import select, update

from frontrow import catalog, rules
from frontrow.catalog_import import apply, validate
from frontrow.errors import Problem
from frontrow.queue import core
from frontrow.schema import admin_audit, concerts
from frontrow.store import Store
from tests.booking.test_booking_http import seats_url
from tests.conftest import MakeStore, active_token, app_client, bearer, user_headers
from tests.e2e.test_queue_http import assert_problem
from tests.e2e.test_sale_http import ADMIN, solve
from tests.queue.test_sale import CONCERT, now, open_now, schedule
from tests.wallet.test_payments_http import charge, hold


@pytest.fixture
async def demo(make_store: MakeStore) -> Store:
    store = await make_store(admit_batch=0)  # admission only where a test asks for it
    await catalog.seed_demo(store.db)
    return store


async def tick(store: Store) -> core.Tick:
    await store.redis.delete(store.keys(CONCERT).tick)
    return await core.admit(store, CONCERT, "t")


async def test_nobody_books_before_the_opening(store: Store) -> None:
    async with app_client(store) as client:
        ann = await active_token(store, "ann")
        await charge(client, store, "ann", 1_000_000)
        held = await hold(client, ann, 3)
        # a sale is scheduled while ann is ACTIVE: her session books nothing before it
        opens = now() + dt.timedelta(minutes=10)
        await schedule(store, opens_at=opens)
        opens_at = opens.strftime("%Y-%m-%dT%H:%M:%SZ")
        for response in (
            await client.post(seats_url(4), headers=bearer(ann)),
            await client.post(
                seats_url().replace("/seats", "/best-available"),
                headers=bearer(ann),
                json={"count": 2},
            ),
            await client.post("/payments", headers=bearer(ann), json={"hold_ids": [held]}),
        ):
            assert assert_problem(response, 409, "SALE_NOT_OPEN")["opens_at"] == opens_at
        # the poll says what it waits for
        polled = (await client.get("/queue/token", headers=bearer(ann))).json()
        assert polled["opens_at"] == opens_at
        assert await store.redis.zcard(store.keys(CONCERT).holds(1, "A")) == 1  # only the first


async def test_passthrough_drains_the_line_before_any_newcomer(demo: Store) -> None:
    for i in range(10):
        _, _, place = await core.enter(demo, f"w{i}", CONCERT)
        assert place.status == "WAITING"
    await schedule(demo, mode="passthrough")
    _, _, place = await core.enter(demo, "new", CONCERT)
    assert place.status == "WAITING" and place.rank == 11  # nobody waiting is passed
    assert (await tick(demo)).admitted == 11  # k = 0 and no cap: the room is off
    assert await demo.redis.zcard(demo.keys(CONCERT).wait) == 0
    _, _, straight = await core.enter(demo, "later", CONCERT)
    assert straight.status == "ACTIVE"


async def test_an_opening_in_passthrough_admits_the_whole_prequeue(demo: Store) -> None:
    await schedule(
        demo,
        prequeue_from=now() - dt.timedelta(minutes=1),
        opens_at=now() + dt.timedelta(hours=1),
        mode="passthrough",
    )
    for i in range(20):
        _, _, place = await core.enter(demo, f"p{i}", CONCERT)
        assert place.prequeue
    assert (await tick(demo)).admitted == 0
    await open_now(demo)
    _, _, late = await core.enter(demo, "late", CONCERT)
    assert late.status == "WAITING" and late.rank == 21
    assert (await tick(demo)).admitted == 21


async def test_moving_the_opening_earlier_is_refused_once_anyone_is_prequeued(
    demo: Store,
) -> None:
    opens = now() + dt.timedelta(hours=1)
    await schedule(demo, prequeue_from=now() - dt.timedelta(minutes=1), opens_at=opens)
    earlier = {"opens_at": (opens - dt.timedelta(minutes=5)).isoformat()}
    await rules.change(demo, CONCERT, {}, earlier, "test")  # nobody pre-queued yet
    await core.enter(demo, "ann", CONCERT)
    with pytest.raises(Problem) as refused:
        sooner = {"opens_at": (opens - dt.timedelta(minutes=10)).isoformat()}
        await rules.change(demo, CONCERT, {}, sooner, "test")
    assert refused.value.code == "PREQUEUE_TAKEN"
    with pytest.raises(Problem):
        await rules.change(demo, CONCERT, {}, {"opens_at": None}, "test")
    later = {"opens_at": (opens + dt.timedelta(minutes=30)).isoformat()}
    assert (await rules.change(demo, CONCERT, {}, later, "test"))["opens_at"]
    async with demo.db.connect() as conn:
        stored = await conn.scalar(select(concerts.c.opens_at))
    assert abs(catalog._utc(stored) - (opens + dt.timedelta(minutes=30))) < dt.timedelta(seconds=1)


async def test_the_seed_never_shows_while_places_can_be_prequeued(
    demo: Store, backend: str
) -> None:
    """Race a postponement, lottery reads, entries and admission ticks around
    the opening, round after round: a revealed seed always comes with the
    final draw (no place pre-queued after it), and nobody is admitted before
    the opening in force."""
    rounds = 1000 if backend == "real" else 60
    k = demo.keys(CONCERT)
    await demo.redis.hset(k.cfg, "admit_batch", 1000)
    revealed = postponed = 0
    # How far ahead the opening is set: it follows how long a change takes
    # on this machine (longer when the change came too late, shorter when
    # it came in time), so the opening keeps landing inside the race.
    lead_s = 0.04
    for n in range(rounds):
        await demo.redis.delete(k.cfg, k.stats, k.draw, k.wait, k.seen, k.users, k.active)
        async with demo.db.begin() as conn:
            await conn.execute(update(concerts).values(prequeue_from=None, opens_at=None))
        await schedule(
            demo,
            prequeue_from=now() - dt.timedelta(seconds=1),
            opens_at=now() + dt.timedelta(hours=1),
        )
        for i in range(3):
            await core.enter(demo, f"r{n}-early{i}", CONCERT)
        opens = now() + dt.timedelta(seconds=lead_s)
        await open_now(demo, opens)

        async def later(delay_s: float, work):  # type: ignore[no-untyped-def]
            await asyncio.sleep(delay_s)
            try:
                return await work()
            except Problem as refused:
                return refused

        postpone = {"opens_at": (opens + dt.timedelta(minutes=2)).isoformat()}
        # the reads, entries and ticks straddle the opening
        jitter = [lead_s * random.uniform(0.5, 1.5) for _ in range(15)]
        results = await asyncio.gather(
            later(0, lambda p=postpone: rules.change(demo, CONCERT, {}, p, "race")),
            *(later(jitter[i], lambda: rules.lottery(demo, CONCERT)) for i in range(5)),
            *(
                later(jitter[5 + i], lambda u=f"r{n}-u{i}": core.enter(demo, u, CONCERT))
                for i in range(8)
            ),
            *(later(jitter[13 + i], lambda: core.admit(demo, CONCERT, "race")) for i in range(2)),
        )
        lead_s = min(2.0, max(0.005, lead_s * (1.25 if isinstance(results[0], Problem) else 0.8)))
        change, reads = results[0], results[1:6]
        draw = await demo.redis.zcard(k.draw)
        for read in reads:
            if isinstance(read, dict) and read["seed"] is not None:
                revealed += 1
                assert read["entries"] == draw, (n, read, draw)
        if isinstance(change, Problem):
            assert change.code == "SALE_STARTED"
        else:
            postponed += 1
            assert all(r["seed"] is None for r in reads if isinstance(r, dict)), n
            assert await demo.redis.zcard(k.active) == 0, n
            assert await demo.redis.hget(k.stats, "opened_ms") is None
    # both outcomes happened, or the race tested nothing
    assert revealed and postponed, (revealed, postponed)


async def test_a_proof_made_for_fewer_bits_than_asked_now_is_refused(demo: Store) -> None:
    admin = bearer(ADMIN)
    async with app_client(demo) as client:
        assert (
            await client.patch("/admin/concerts/1/queue", headers=admin, json={"pow_bits": 8})
        ).json()["pow_bits"] == 8
        ann = user_headers(demo, "ann")
        given = (await client.post("/concerts/1/queue/challenge", headers=ann)).json()
        assert given["bits"] == 8
        await client.patch("/admin/concerts/1/queue", headers=admin, json={"pow_bits": 12})
        proof = {**ann, "Proof-Of-Work": solve(given["challenge"], 8)}
        response = await client.post("/concerts/1/queue", headers=proof)
        assert_problem(response, 403, "PROOF_OF_WORK_INVALID")
        given = (await client.post("/concerts/1/queue/challenge", headers=ann)).json()
        proof = {**ann, "Proof-Of-Work": solve(given["challenge"], 12)}
        assert (await client.post("/concerts/1/queue", headers=proof)).status_code == 201


async def test_the_audit_is_a_chain_under_concurrent_changes(demo: Store) -> None:
    admin = bearer(ADMIN)
    async with app_client(demo) as client:
        changes = await asyncio.gather(
            *(
                client.patch("/admin/concerts/1/queue", headers=admin, json={"admit_batch": v})
                for v in range(1, 11)
            )
        )
        assert all(c.status_code == 200 for c in changes)
    async with demo.db.connect() as conn:
        rows = (await conn.execute(select(admin_audit).order_by(admin_audit.c.id))).all()
    assert len(rows) == 10
    assert json.loads(rows[0].old) == 0  # this store's k
    for before, after in itertools.pairwise(rows):
        assert after.old == before.new
    assert await demo.redis.hget(demo.keys(CONCERT).cfg, "admit_batch") == rows[-1].new


async def test_an_import_that_changes_the_sale_is_audited_and_in_force(demo: Store) -> None:
    data = {
        "concerts": [
            {
                "id": 1,
                "title": "frontrow live: Winter Night",
                "venue": "Olympic Hall",
                "mode": "reject",
                "pow_bits": 20,
                "dates": [],
            }
        ]
    }
    await apply(demo, validate(json.dumps(data)))
    async with demo.db.connect() as conn:
        rows = (await conn.execute(select(admin_audit.c.field, admin_audit.c.new))).all()
    assert sorted(rows) == [("mode", '"reject"'), ("pow_bits", "20")]
    with pytest.raises(Problem) as refused:
        await core.enter(demo, "ann", CONCERT)
    assert refused.value.code == "QUEUE_CLOSED"


async def test_a_concert_imported_elsewhere_is_found_at_once(make_store: MakeStore) -> None:
    serving = await make_store()
    await catalog.seed_demo(serving.db)
    assert set(await serving.catalog.concerts()) == {1}
    importer = await make_store()
    data = {"concerts": [{"id": 7, "title": "New", "venue": "Hall", "dates": []}]}
    await apply(importer, validate(json.dumps(data)))
    await catalog.announce(importer)
    assert (await serving.catalog.require(7)).title == "New"  # no 5 s wait, no 404


async def test_every_process_decides_from_redis_not_its_copy(make_store: MakeStore) -> None:
    """Two stores stand for two processes: one changes the sale, the other
    (whose catalog copy is older) enters and books by the new rules at once."""
    first, second = await make_store(), await make_store()
    await catalog.seed_demo(first.db)
    await second.catalog.concerts()  # its copy: open now, fifo
    await schedule(
        first,
        prequeue_from=now() - dt.timedelta(seconds=1),
        opens_at=now() + dt.timedelta(minutes=5),
    )
    _, _, place = await core.enter(second, "ann", CONCERT)
    assert place.prequeue and place.rank is None  # not a FIFO place, not ACTIVE
    async with app_client(second) as client:
        r = await client.get("/concerts/1/queue/lottery")
        assert r.status_code == 200 and r.json()["seed"] is None and r.json()["commitment"]


async def test_live_settings_outlive_a_redis_that_comes_back_empty(make_store: MakeStore) -> None:
    """k, the cap and open set through the admin API stay in force after
    Redis loses everything: they are restored from PostgreSQL before anyone
    enters or is admitted, never replaced by the environment's (#24)."""
    store = await make_store(admit_batch=100)
    await catalog.seed_demo(store.db)
    admin = bearer(ADMIN)
    async with app_client(store) as client:
        for body in ({"admit_batch": 0, "max_active": 10}, {"open": False}):
            patched = await client.patch("/admin/concerts/1/queue", headers=admin, json=body)
            assert patched.status_code == 200
        await store.redis.flushdb()  # Redis restarted with nothing
        shown = (await client.get("/admin/concerts/1/queue", headers=admin)).json()
        assert (shown["admit_batch"], shown["max_active"], shown["open"]) == (0, 10, False)
        closed = await client.post("/concerts/1/queue", headers=user_headers(store, "new"))
        assert_problem(closed, 409, "QUEUE_CLOSED")
        patched = await client.patch("/admin/concerts/1/queue", headers=admin, json={"open": True})
        assert patched.status_code == 200
        await store.redis.flushdb()
        entered = await client.post("/concerts/1/queue", headers=user_headers(store, "new"))
        assert entered.status_code == 201 and entered.json()["status"] == "WAITING"
        await store.redis.delete(store.keys(1).tick)
        assert (await core.admit(store, 1, "t")).admitted == 0  # k = 0 still


async def test_the_callers_that_find_no_rules_share_one_restore(
    demo: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everyone entering when Redis came back empty is let in on one database
    read a process, not one each (each would wait for one of the worker's
    few connections); a later loss is restored again."""
    reads = 0
    read = rules.database_call

    async def slow_read(store: Store, work: Any) -> Any:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)  # every caller below finds no rules meanwhile
        return await read(store, work)

    monkeypatch.setattr(rules, "database_call", slow_read)
    await demo.redis.flushdb()
    entered = await asyncio.gather(*(core.enter(demo, f"u{n}", CONCERT) for n in range(24)))
    assert reads == 1 and all(created for created, _, _ in entered)
    assert demo.restoring == {}
    await demo.redis.flushdb()
    assert (await core.enter(demo, "late", CONCERT))[0]
    assert reads == 2


async def test_a_redis_that_loses_the_rules_again_as_they_come_back_is_a_503(
    demo: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script is asked again after the restore; when Redis has no rules
    even then, the request is told the backend is unavailable, and nothing
    reads NO_RULES as an answer."""

    async def lost_again(store: Store, concert_id: int, how: str = "restore") -> None:
        await store.redis.flushdb()

    async with app_client(demo) as client:
        monkeypatch.setattr(rules, "restore", lost_again)
        await demo.redis.flushdb()
        entered = await client.post("/concerts/1/queue", headers=user_headers(demo, "ann"))
        assert_problem(entered, 503, "BACKEND_UNAVAILABLE")
        assert await demo.redis.zcard(demo.keys(CONCERT).wait) == 0
