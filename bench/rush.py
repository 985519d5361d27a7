"""python -m bench rush: an on-sale end to end, in one command.

Real Redis and PostgreSQL (databases it may wipe). Imports the stadium
(examples/stadium.json, 4 dates x 50,000 seats), starts `frontrow serve`
and one `frontrow admitter`, then lets N buyers loose, each an asyncio task
of this process over one pool of kept-alive connections (bench/http1.py):
enter the queue, poll as told, list the dates, then either
ask for the best seats or open a section's map and hold seats in it (1-4),
charge what the wallet lacks, pay. Every buyer wants the first date that is
not sold out, so the first date sells out on the way.

Reports orders/s and seats/s, the time the first date took from its first
sale to its last seat, p50/p99 per route from the server's own metrics,
the 5xx count, this client's own CPU time (so nobody mistakes the client
for the server), and the invariants read back from PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from bench.__main__ import (
    _PIDS,
    ROOT,
    SECRET,
    ceiling_server,
    free_port,
    fresh_database,
    frontrow_env,
    scale_backends,
    server,
    tree_cpu_s,
)
from bench.http1 import Client
from frontrow.config import Settings
from frontrow.observe import FLUSH_S

STADIUM = ROOT / "examples" / "stadium.json"
CONCERT = 10


class Rush:
    def __init__(self, url: str, buyers: int) -> None:
        self.url = url
        self.buyers = buyers
        self.orders: list[tuple[float, str, int]] = []  # (time, date, seats)
        self.gave_up = Counter[str]()
        self.refused_payments = 0
        self.statuses = Counter[int]()
        self.started = time.monotonic()

    async def call(
        self,
        client: Client,
        method: str,
        path: str,
        token: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON body or None); 429/503 and dropped connections are retried."""
        headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        payload = b""
        if json is not None:
            payload = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        status, body = 0, None
        for _ in range(20):
            try:
                r = await client.request(method, path, headers, payload)
            except ConnectionError:  # a kept-alive connection the server closed
                self.statuses[0] += 1
                continue
            status = r.status
            kind = r.headers.get(b"content-type", b"").partition(b";")[0].strip()
            body = orjson.loads(r.body) if kind == b"application/json" else None
            retry_after = float(r.headers.get(b"retry-after", b"1"))
            self.statuses[status] += 1
            if status not in (429, 503):
                break
            await asyncio.sleep(retry_after)
        return status, body

    async def buyer(self, client: Client, i: int) -> None:
        from frontrow.auth import Tokens

        user = Tokens(SECRET, 86_400).user_token(f"r{i}")
        status, place = await self.call(client, "POST", f"/concerts/{CONCERT}/queue", user)
        if status not in (200, 201):
            self.gave_up["closed"] += 1
            return
        token = place["token"]
        while place["status"] == "WAITING" and not place.get("sold_out"):
            await asyncio.sleep(place["poll_after_ms"] / 1000)
            _, place = await self.call(client, "GET", "/queue/token", token)
        if place.get("sold_out") and place["status"] == "WAITING":
            self.gave_up["told sold out in line"] += 1
            return
        if place["status"] != "ACTIVE":
            self.gave_up[place["status"].lower()] += 1
            return
        want = random.randint(1, 4)
        for _ in range(4):
            _, dates = await self.call(client, "GET", f"/concerts/{CONCERT}/dates", token)
            open_dates = [d for d in dates.get("dates", []) if d["available_seats"] >= want]
            if not open_dates:
                self.gave_up["let in, found nothing"] += 1
                break
            date = open_dates[0]["date"]
            held = await self.pick(client, token, date, want)
            if not held:
                continue
            total = sum(h["price"] for h in held)
            await self.call(
                client,
                "POST",
                "/wallet/charge",
                user,
                json={"amount": total},
                headers={"Idempotency-Key": f"c-{i}-{uuid.uuid4().hex}"},
            )
            paid, _ = await self.call(
                client,
                "POST",
                "/payments",
                token,
                json={"hold_ids": [h["hold_id"] for h in held]},
                headers={"Idempotency-Key": f"p-{i}"},
            )
            if paid == 201:
                self.orders.append((time.monotonic(), date, len(held)))
                return
            # its own live holds refused (a seat handed to two buyers at once
            # shows here; nothing else should)
            self.refused_payments += 1
            if paid != 409:
                break
        else:
            self.gave_up["no seats after 4 tries"] += 1
            return
        await self.call(client, "DELETE", "/queue/token", token)

    async def pick(self, client: Client, token: str, date: str, want: int) -> list[dict[str, Any]]:
        base = f"/concerts/{CONCERT}/dates/{date}"
        if random.random() < 0.5:  # let the house choose
            status, best = await self.call(
                client, "POST", f"{base}/best-available", token, json={"count": want}
            )
            return list(best["holds"]) if status == 201 else []
        _, overview = await self.call(client, "GET", f"{base}/sections", token)
        sections = overview["sections"]
        roomy = [s for s in sections if s["available_seats"] >= want]
        if not roomy:
            return []
        name = random.choice(roomy[:5])["name"]  # most buyers want the front
        _, seat_map = await self.call(
            client, "GET", f"{base}/seats?section={name}&form=rows", token
        )
        rows = seat_map["rows"]
        free = [r["seat_no"] + j for r in rows for j, c in enumerate(r["status"]) if c == "A"]
        held = []
        for seat_no in random.sample(free, min(want, len(free))):
            status, hold = await self.call(client, "POST", f"{base}/seats/{seat_no}/hold", token)
            if status in (200, 201):
                held.append(hold)
        return held

    async def run(self, connections: int) -> None:
        client = Client(self.url, connections)
        try:
            await asyncio.gather(*(self.buyer(client, i) for i in range(self.buyers)))
        finally:
            client.close()


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """A quantile from cumulative histogram buckets, interpolated inside the bucket."""
    total = buckets[-1][1]
    if not total:
        return 0.0
    target, low_bound, low_count = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            if bound == float("inf"):
                return low_bound
            share = (target - low_count) / max(count - low_count, 1e-9)
            return low_bound + (bound - low_bound) * share
        low_bound, low_count = bound, count
    return low_bound


def route_latencies(metrics: str) -> dict[str, tuple[float, float, float]]:
    """(count, p50 ms, p99 ms) per method and route, from the server's histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "frontrow_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                name = f"{sample.labels['method']} {sample.labels['route']}"
                found.setdefault(name, []).append((float(sample.labels["le"]), sample.value))
    out = {}
    for name, buckets in found.items():
        buckets.sort()
        out[name] = (buckets[-1][1], quantile(buckets, 0.5) * 1000, quantile(buckets, 0.99) * 1000)
    return out


async def invariants(database_url: str) -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        one = lambda sql: conn.scalar(text(sql))  # noqa: E731
        out = {
            "seats sold": await one("SELECT count(*) FROM reservations"),
            "seats sold twice": await one(
                "SELECT count(*) FROM (SELECT schedule_id, seat_no FROM reservations"
                " GROUP BY 1, 2 HAVING count(*) > 1) AS twice"
            ),
            "wallets whose balance is not their ledger": await one(
                "SELECT count(*) FROM wallets w WHERE w.balance <>"
                " (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.user_id = w.user_id)"
            ),
            "receipts whose amount is not their seats": await one(
                "SELECT count(*) FROM receipts r WHERE r.amount <>"
                " (SELECT coalesce(sum(price), 0) FROM reservations s WHERE s.receipt_id = r.id)"
            ),
            "money in = money paid + money left": await one(
                "SELECT (SELECT sum(amount) FROM ledger WHERE kind = 'charge') ="
                " (SELECT -sum(amount) FROM ledger WHERE kind = 'payment')"
                " + (SELECT sum(balance) FROM wallets)"
            ),
            "dates flagged sold out": await one("SELECT count(*) FROM schedules WHERE sold_out"),
        }
    await engine.dispose()
    return out


@contextmanager
def admitter(env: dict[str, str], root: Path = ROOT) -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "frontrow", "admitter"],
        env={**os.environ, **env, "PYTHONPATH": str(root)},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        settle(proc.pid)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def settle(pid: int, timeout_s: float = 30) -> None:
    """Wait until a process that just started is idle (under 2 % of a core
    over 0.5 s): its imports and first ticks (~0.4 s of CPU) are not the
    rush's. They were counted before, ~1 ms an order of the demo hall's."""
    deadline = time.monotonic() + timeout_s
    used = tree_cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = tree_cpu_s(pid)
        if now - used < 0.01:
            return
        used = now


async def reset(args: argparse.Namespace) -> None:
    from frontrow.config import Settings
    from frontrow.store import open_store

    await fresh_database(args.database_url)
    store = open_store(
        Settings(redis_url=args.redis_url, database_url=args.database_url, auth_secret=SECRET)
    )
    await store.redis.flushdb()
    await store.close()


def import_catalog(args: argparse.Namespace, root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "frontrow", "catalog", "import", str(args.catalog)],
        env={**os.environ, **frontrow_env(args), "PYTHONPATH": str(root)},
        cwd=root,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


class Meter:
    """CPU seconds of each server process (Linux /proc, and Redis's own
    INFO), and PostgreSQL sessions opened, read at the start and the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    async def _database(self) -> tuple[int, int]:
        """(the postmaster's pid, sessions opened in the database so far)."""
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.args.database_url)
        async with engine.connect() as conn:
            backend = await conn.scalar(text("SELECT pg_backend_pid()"))
            sessions = await conn.scalar(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            )
            # the session's parent, read while the session lives (a local server)
            stat = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()  # noqa: ASYNC240
        await engine.dispose()
        return int(stat[1]), int(sessions)

    def read(self, app: int, admitter: int) -> dict[str, float]:
        postmaster, sessions = asyncio.run(self._database())
        return {
            "app": tree_cpu_s(app),
            "redis": redis_cpu_s(self.args.redis_url),
            "postgresql": tree_cpu_s(postmaster),
            "admitter": tree_cpu_s(admitter),
            "sessions": sessions,
        }


def redis_cpu_s(url: str) -> float:
    """CPU seconds the Redis server at url has used (its own INFO)."""
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def route_cpu(metrics: str) -> dict[str, tuple[float, float]]:
    """(requests, CPU seconds) per method and route: frontrow_request_cpu_seconds."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "frontrow_request_cpu_seconds":
            continue
        for sample in family.samples:
            name = f"{sample.labels['method']} {sample.labels['route']}"
            pair = out.setdefault(name, [0.0, 0.0])
            if sample.name.endswith("_count"):
                pair[0] += sample.value
            elif sample.name.endswith("_sum"):
                pair[1] += sample.value
    return {name: (n, cpu) for name, (n, cpu) in out.items()}


DEFAULTS = Settings()


async def paced(url: str, rate: float, requests: int, connections: int) -> None:
    """`requests` GETs of url at about `rate` a second over `connections`."""
    left = requests
    pause = connections / rate

    client = Client(url, connections)
    path = urlsplit(url).path

    async def asker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.request("GET", path, {})
            await asyncio.sleep(random.uniform(0, 2 * pause))

    try:
        await asyncio.gather(*(asker() for _ in range(connections)))
    finally:
        client.close()


def request_cycle_s(args: argparse.Namespace, rate: float, requests: int) -> float:
    """Server CPU seconds a request of the server's own request cycle: a bare
    Starlette endpoint (bench.ceiling) on the same server and workers, asked
    as often as the rush asked frontrow. At a rush's rate a worker sleeps and
    wakes between requests, which costs far more than the same endpoint
    flooded (the poll benchmark): this is what any request costs here before
    frontrow does anything."""
    argv = ceiling_server(args.server, args.workers)
    with server(argv, {}, ready_path="/queue/token") as url:
        pid = _PIDS[url]
        settle(pid)
        asyncio.run(paced(url + "/queue/token", rate, 300, args.connections))
        before = tree_cpu_s(pid)
        asyncio.run(paced(url + "/queue/token", rate, requests, args.connections))
        return (tree_cpu_s(pid) - before) / requests


def rush_env(args: argparse.Namespace) -> dict[str, str]:
    return frontrow_env(
        args,
        FRONTROW_ADMIT_BATCH=str(args.admit_batch),
        FRONTROW_ADMIT_INTERVAL_S=str(args.admit_interval),
        FRONTROW_MAX_ACTIVE=str(args.max_active),
        FRONTROW_ADMIT_TARGET_P99_MS=str(args.target_p99_ms),
        FRONTROW_ADMIT_BATCH_MAX=str(args.batch_max),
        FRONTROW_ABANDON_AFTER_S="300",
        # each buyer is a user of its own: its limits are the day's, as
        # production runs them; only the per-address one stays off (one client)
        FRONTROW_ENTER_PER_USER=str(DEFAULTS.enter_per_user),
        FRONTROW_HOLD_PER_USER=str(DEFAULTS.hold_per_user),
        FRONTROW_ADMIT_WITHIN_SEATS="1" if args.within_seats else "0",
        FRONTROW_LOG_LEVEL=args.log_level,
    )


def serve_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "frontrow", "serve", "--workers", str(args.workers)]
    return [*argv, "--server", args.server]


def one_rush(args: argparse.Namespace, root: Path, label: str) -> dict[str, Any]:
    """A whole rush on `root`'s code (this checkout, or --baseline's); prints its report."""
    asyncio.run(reset(args))
    import_s = import_catalog(args, root)
    env = rush_env(args)
    meter = Meter(args)
    with server(serve_argv(args), env, root=root) as url:
        with admitter(env, root) as admitting:
            app_pid = _PIDS[url]
            settle(app_pid)  # every worker, not only the one that answered /healthz
            before = meter.read(app_pid, admitting.pid)
            cpu0 = time.process_time()
            rush = Rush(url, args.buyers)
            asyncio.run(rush.run(args.connections))
            client_cpu = time.process_time() - cpu0
            after = meter.read(app_pid, admitting.pid)
        # each worker adds its tallied requests to the shared metrics every
        # FLUSH_S: read before that, a 3 s rush's routes missed a third
        time.sleep(FLUSH_S + 0.5)
        metrics = httpx.get(url + "/metrics").text
    wall = time.monotonic() - rush.started
    facts = asyncio.run(invariants(args.database_url))
    used = {name: after[name] - before[name] for name in before}
    orders = len(rush.orders)

    first_date = rush.orders and min(d for _, d, _ in rush.orders)
    on_first = sorted((t, n) for t, d, n in rush.orders if d == first_date)
    seats = sum(n for _, _, n in rush.orders)
    k = f"k={args.admit_batch}"
    if args.target_p99_ms:
        final = re.search(r"^frontrow_queue_admit_batch\{[^}]*\} (\S+)", metrics, re.M)
        k = (
            f"k chosen for a booking p99 of {args.target_p99_ms} ms (from {args.admit_batch},"
            f" at most {args.batch_max}; {float(final[1]) if final else '?':g} at the end)"
        )
    print(f"=== {label}")
    print(
        f"{args.catalog.name} import: {import_s:.1f} s; {args.buyers:,} buyers,"
        f" {args.workers} workers ({args.server}), {k} every {args.admit_interval} s,"
        f" at most {args.max_active} active" + (", within the seats" if args.within_seats else "")
    )
    print(
        f"orders: {orders:,} in {wall:.0f} s = {orders / wall:.1f} orders/s,"
        f" {seats / wall:.1f} seats/s"
    )
    sold_span = None
    if on_first:
        sold = sum(n for _, n in on_first)
        sold_span = on_first[-1][0] - on_first[0][0]
        print(
            f"first date {first_date}: {sold:,} seats sold in {sold_span:.0f} s from its first sale"
        )
    print(f"buyers who gave up: {dict(rush.gave_up)}; payments refused: {rush.refused_payments}")
    errors_5xx = sum(n for s, n in rush.statuses.items() if s >= 500)
    print(f"answers by status: {dict(sorted(rush.statuses.items()))}; 5xx: {errors_5xx}")
    server_cpu = sum(used[p] for p in ("app", "redis", "postgresql", "admitter"))
    per_order = {
        p: used[p] / max(orders, 1) * 1000 for p in ("app", "redis", "postgresql", "admitter")
    }
    print(
        f"server CPU per order: {server_cpu / max(orders, 1) * 1000:.2f} ms ("
        + ", ".join(f"{p} {ms:.2f}" for p, ms in per_order.items())
        + f"); server CPU {server_cpu:.0f} s of {wall:.0f} s wall;"
        f" this client's CPU: {client_cpu:.0f} s (not counted)"
    )
    # The demo hall's buyers who find nothing make the per-order figure move
    # with when they arrive (a place and its polls before the last seat sells,
    # one 409 after): per request is steadier between two codes.
    requests = sum(rush.statuses.values())
    print(
        f"server CPU per request: {server_cpu / max(requests, 1) * 1000:.3f} ms"
        f" ({requests:,} requests, {requests / max(orders, 1):.1f} an order)"
    )
    print(f"PostgreSQL sessions opened during the rush: {used['sessions']:.0f}")
    cycle_ms = None
    if args.cycle:
        cycle_ms = request_cycle_s(args, requests / wall, requests) * 1000
        print(
            f"the server's own request cycle (a bare Starlette endpoint, {args.server},"
            f" {args.workers} workers, asked {requests / wall:,.0f} times a second as this rush"
            f" asked): {cycle_ms:.3f} ms a request, {cycle_ms * requests / max(orders, 1):.2f} ms"
            f" an order ({cycle_ms * requests / 1000 / max(server_cpu, 1e-9):.0%} of the server"
            " CPU)"
        )
    cpu_routes = route_cpu(metrics)
    print("by route (server latency and the CPU of each request's own steps, from /metrics):")
    for name, (count, p50, p99) in sorted(route_latencies(metrics).items()):
        if count:
            n, cpu = cpu_routes.get(name, (0.0, 0.0))
            own = ""
            if n:
                each, total = cpu / n * 1000, cpu / max(orders, 1) * 1000
                own = f"  CPU {each:6.2f} ms a request, {total:5.2f} ms an order"
            print(f"  {name:56} {count:>9,.0f}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms{own}")
    print("invariants (PostgreSQL):")
    for name, value in facts.items():
        print(f"  {name}: {value}")
    result = {
        "label": label,
        "orders": orders,
        "seats": seats,
        "wall_s": round(wall, 1),
        "first_date_sold_s": sold_span and round(sold_span, 1),
        "cpu_ms_per_order": round(server_cpu / max(orders, 1) * 1000, 2),
        "cpu_ms_per_request": round(server_cpu / max(requests, 1) * 1000, 3),
        "requests": requests,
        "gave_up": dict(rush.gave_up),
        **{f"{p}_ms_per_order": round(ms, 2) for p, ms in per_order.items()},
        "sessions_opened": used["sessions"],
        "cycle_ms_per_request": cycle_ms and round(cycle_ms, 3),
        "payments_refused": rush.refused_payments,
        "errors_5xx": errors_5xx,
        "invariants": facts,
    }
    print(json.dumps(result))
    return result


def _sessions(conn: Any, database: str) -> list[int]:
    """The pids of the sessions open on a database (a local server)."""
    query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    return [row[0] for row in conn.execute(query, (database,))]


def side_by_side(args: argparse.Namespace, flip: bool = False) -> float:
    """This checkout and --baseline's in the same moment: each its own
    servers, admitter, Redis database and PostgreSQL database, and as many
    buyers, all let loose at once by this one client. On a day the box's
    speed moves by a third within minutes, runs one after the other compare
    moments more than codes; side by side, the drift falls on both alike.
    Each code's CPU is its app workers, its admitter and the PostgreSQL
    sessions of its database; Redis is one server for both (its CPU is
    reported for the two together), or with --own-redis a server of each
    side's own, counted in its CPU. `flip` swaps which code has the first
    databases and whose buyers are started first. Each fleet keeps 16 money
    connections a worker (FRONTROW_DATABASE_POOL) so that both fit in
    PostgreSQL's default 100. Returns this checkout's server CPU an order
    (without Redis, unless --own-redis) over the baseline's."""
    with ExitStack() as redis_servers:
        own = [redis_servers.enter_context(redis_server()) for _ in range(2 * args.own_redis)]
        return _side_by_side(args, flip, own)


@contextmanager
def redis_server() -> Any:
    """A Redis server of its own on a free port, nothing kept on disk: its URL."""
    import redis

    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*argv, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait()


def _side_by_side(args: argparse.Namespace, flip: bool, own: list[str]) -> float:
    import psycopg
    from sqlalchemy.engine import make_url

    sides = []
    codes = [(ROOT, "this checkout"), (Path(args.baseline).resolve(), "baseline")]
    for n, (root, label) in enumerate(codes[::-1] if flip else codes):
        side = argparse.Namespace(**vars(args))
        head, _, db = args.redis_url.rpartition("/")
        side.redis_url = own[n] if own else f"{head}/{int(db or 0) + n}"
        url = make_url(args.database_url)
        side.database_url = url.set(database=f"{url.database}{'_b' * n}").render_as_string(
            hide_password=False
        )
        asyncio.run(reset(side))
        import_catalog(side, root)
        sides.append((root, label, side))
    meter = make_url(args.database_url).set(drivername="postgresql", database="postgres")
    with ExitStack() as stack:
        # opened before the fleets, which may take every other connection
        conn = stack.enter_context(
            psycopg.connect(meter.render_as_string(hide_password=False), autocommit=True)
        )
        running = []
        for root, label, side in sides:
            env = {**rush_env(side), "FRONTROW_DATABASE_POOL": "16"}
            url = stack.enter_context(server(serve_argv(side), env, root=root))
            admitting = stack.enter_context(admitter(env, root))
            settle(_PIDS[url])
            running.append((label, side, _PIDS[url], admitting.pid, Rush(url, args.buyers)))

        def cpu() -> list[dict[str, Any]]:
            return [
                {
                    "app": tree_cpu_s(app),
                    "admitter": tree_cpu_s(admitter_pid),
                    "postgresql": {
                        pid: tree_cpu_s(pid)
                        for pid in _sessions(conn, make_url(side.database_url).database)
                    },
                    "redis": redis_cpu_s(side.redis_url) if own else 0.0,
                }
                for _, side, app, admitter_pid, _ in running
            ]

        before, redis0 = cpu(), redis_cpu_s(args.redis_url)
        ended: dict[str, float] = {}

        async def run(label: str, rush: Rush) -> None:
            rush.started = time.monotonic()
            await rush.run(args.connections)
            ended[label] = time.monotonic() - rush.started

        async def all_at_once() -> None:
            await asyncio.gather(*(run(label, rush) for label, *_, rush in running))

        asyncio.run(all_at_once())
        after, redis1 = cpu(), redis_cpu_s(args.redis_url)
    spent = {}
    orders_all = 0
    print(f"=== side by side: {args.buyers:,} buyers each, {args.catalog.name}")
    for (label, side, *_, rush), then, now in zip(running, before, after, strict=True):
        orders = max(len(rush.orders), 1)
        orders_all += len(rush.orders)
        # a session gone by the end took its last CPU with it: counted as of the start
        pg = sum(
            now["postgresql"].get(pid, 0.0) - then["postgresql"].get(pid, 0.0)
            for pid in now["postgresql"]
        )
        used = {
            "app": now["app"] - then["app"],
            "postgresql": max(pg, 0.0),
            "admitter": now["admitter"] - then["admitter"],
        }
        if own:
            used["redis"] = now["redis"] - then["redis"]
        spent[label] = sum(used.values()) / orders
        facts = asyncio.run(invariants(side.database_url))
        held = (
            facts["seats sold twice"] == 0
            and facts["wallets whose balance is not their ledger"] == 0
            and facts["receipts whose amount is not their seats"] == 0
            and facts["money in = money paid + money left"]
        )
        requests = sum(rush.statuses.values())
        print(
            f"{label}: {len(rush.orders):,} orders in {ended[label]:.0f} s;"
            f" server CPU an order{'' if own else ' without Redis'}"
            f" {spent[label] * 1000:.2f} ms ("
            + ", ".join(f"{p} {v / orders * 1000:.2f}" for p, v in used.items())
            + f"); app {used['app'] / max(requests, 1) * 1000:.3f} ms a request"
            f" ({requests:,} requests); gave up {dict(rush.gave_up)};"
            f" 5xx {sum(n for st, n in rush.statuses.items() if st >= 500)};"
            f" invariants {'hold' if held else f'BROKEN {facts}'}"
        )
    if not own:
        print(f"Redis, both: {(redis1 - redis0) / max(orders_all, 1) * 1000:.2f} ms an order")
    ratio = spent["this checkout"] / spent["baseline"]
    what = "" if own else " without Redis"
    print(f"this checkout / baseline, server CPU an order{what}: x{ratio:.3f}")
    return ratio


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench rush", description=__doc__)
    parser.add_argument("--buyers", type=int, default=22_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--connections", type=int, default=128, help="the client's pool")
    parser.add_argument("--admit-batch", type=int, default=200, help="k")
    parser.add_argument("--admit-interval", type=float, default=0.5, help="n, seconds")
    parser.add_argument("--max-active", type=int, default=400)
    parser.add_argument(
        "--within-seats",
        action="store_true",
        help="FRONTROW_ADMIT_WITHIN_SEATS=1: no tick lets in more than the seats left can serve",
    )
    parser.add_argument(
        "--target-p99-ms",
        type=int,
        default=0,
        help="let the admitter choose k for this booking p99 (0: k is --admit-batch)",
    )
    parser.add_argument("--batch-max", type=int, default=1000, help="largest k with a target")
    parser.add_argument(
        "--catalog",
        type=Path,
        default=STADIUM,
        help="the concert on sale (id 10): the stadium, or examples/hall.json (900 seats)",
    )
    parser.add_argument(
        "--baseline",
        help="a checkout of other code (git worktree): the same rush on it right after",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="with --baseline: this many pairs (rounds, side by side), every other one the"
        " other way round",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="with --baseline: both codes at once, each its own servers and databases",
    )
    parser.add_argument(
        "--own-redis",
        action="store_true",
        help="with --side-by-side: a Redis server of each side's own (redis-server on a"
        " free port), its CPU counted in the side's",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="the servers' FRONTROW_LOG_LEVEL: INFO (the default of `frontrow serve`: an access"
        " line a request but a poll, to the discarded stderr) or WARNING",
    )
    parser.add_argument(
        "--cycle",
        action="store_true",
        help="after each rush, measure the server's own request cycle at the rush's rate",
    )
    scale_backends(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    cli = parser()
    args = cli.parse_args(argv)
    if args.side_by_side:
        if not args.baseline:
            cli.error("--side-by-side needs --baseline")
        ratios = [side_by_side(args, flip=i % 2 == 1) for i in range(args.pairs)]
        listed = ", ".join(f"{r:.3f}" for r in ratios)
        print(f"side by side: x{statistics.median(ratios):.3f} of the baseline, median of {listed}")
        return
    if not args.baseline:
        one_rush(args, ROOT, "this checkout")
        return
    # The box drifts within a run: pairs, each other one in the other order,
    # and the ratio within each pair.
    ratios: dict[str, list[float]] = {"cpu_ms_per_order": [], "cpu_ms_per_request": []}
    for i in range(args.pairs):
        runs = [(ROOT, "this checkout"), (Path(args.baseline).resolve(), "baseline")]
        done = {label: one_rush(args, root, label) for root, label in runs[:: -1 if i % 2 else 1]}
        now, then = done["this checkout"], done["baseline"]
        for name, each in ratios.items():
            each.append(now[name] / then[name])
        print(
            f"pair {i + 1}: server CPU per order {now['cpu_ms_per_order']} ms against the"
            f" baseline's {then['cpu_ms_per_order']} ms (x{ratios['cpu_ms_per_order'][-1]:.3f}),"
            f" per request x{ratios['cpu_ms_per_request'][-1]:.3f}"
        )
    for name, each in ratios.items():
        listed = ", ".join(f"{r:.3f}" for r in each)
        print(f"{name}: x{statistics.median(each):.3f} of the baseline, median of {listed}")
