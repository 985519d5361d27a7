"""python -m bench.orderpath: what one order costs the app, in one process.

The requests of an order (enter, dates, a section overview and its map or
best available, holds, a charge, the payment) driven straight into the ASGI
app, 32 buyers at a time, on real Redis and PostgreSQL with the stadium
loaded, with no HTTP server and no client in the way: the app's CPU per
order, and with --profile where it goes (cProfile, sorted by own time).
`python -m bench rush` measures the same on a whole server; this is the
quick, repeatable look between two changes.

With --instructions it runs itself under valgrind's callgrind and counts
the instructions the app's process executes per order (the measured orders
only): the same for the same code whatever else the box is doing, where CPU
seconds on this shared 2-core machine move by a third within an hour.
--baseline <checkout> counts the same orders on another checkout's
frontrow (this bench's driver) and prints the ratio. Instructions are not
seconds (a cache miss costs more than an add), so a change is judged on
both: the ratio here, and `bench rush` for the whole server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import logging
import os
import pstats
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvloop

import frontrow
from bench.__main__ import ROOT, SECRET, fresh_database, scale_backends
from bench.rush import CONCERT, STADIUM

# set in the process callgrind runs: count only the measured orders
UNDER_CALLGRIND = "FRONTROW_BENCH_CALLGRIND"
# where the frontrow this process imported lives (--baseline's, under --instructions)
CODE = Path(frontrow.__file__).parent.parent


class Driver:
    """ASGI requests without a server: (status, JSON body)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, method: str, path: str, token: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        raw = b"" if body is None else orjson.dumps(body)
        headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
        if body is not None:
            headers.append((b"content-type", b"application/json"))
        if key is not None:
            headers.append((b"idempotency-key", key.encode()))
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "scheme": "http",
            "http_version": "1.1",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        status, chunks = 0, []

        async def receive() -> Any:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        data = b"".join(chunks)
        return status, orjson.loads(data) if data else None


async def order(call: Driver, tokens: Any, n: int) -> bool:
    user = tokens.user_token(f"o{n}")
    status, place = await call("POST", f"/concerts/{CONCERT}/queue", user)
    if place.get("status") != "ACTIVE":
        return False
    token = place["token"]
    _, dates = await call("GET", f"/concerts/{CONCERT}/dates", token)
    want = random.randint(1, 4)
    date = next(d["date"] for d in dates["dates"] if d["available_seats"] >= want)
    base = f"/concerts/{CONCERT}/dates/{date}"
    if n % 2:
        status, best = await call("POST", f"{base}/best-available", token, {"count": want})
        held = best["holds"] if status == 201 else []
    else:
        _, overview = await call("GET", f"{base}/sections", token)
        roomy = [s for s in overview["sections"] if s["available_seats"] >= want]
        name = random.choice(roomy[:5])["name"]
        _, seats = await call("GET", f"{base}/seats?section={name}&form=rows", token)
        free = [
            r["seat_no"] + j for r in seats["rows"] for j, c in enumerate(r["status"]) if c == "A"
        ]
        held = []
        for seat in random.sample(free, min(want, len(free))):
            status, hold = await call("POST", f"{base}/seats/{seat}/hold", token)
            if status in (200, 201):
                held.append(hold)
    if not held:
        return False
    total = sum(h["price"] for h in held)
    await call("POST", "/wallet/charge", user, {"amount": total}, key=f"c{n}")
    status, _ = await call(
        "POST", "/payments", token, {"hold_ids": [h["hold_id"] for h in held]}, key=f"p{n}"
    )
    return status == 201


@contextlib.asynccontextmanager
async def stadium_app(args: argparse.Namespace) -> AsyncIterator[tuple[Any, Driver]]:
    """The app in this process on real Redis and PostgreSQL, the stadium
    loaded into a fresh database, everyone admitted at once: (store, driver)."""
    from frontrow.app import create_app
    from frontrow.config import Settings
    from frontrow.store import open_store

    await fresh_database(args.database_url)
    env = {
        **os.environ,
        "FRONTROW_REDIS_URL": args.redis_url,
        "FRONTROW_DATABASE_URL": args.database_url,
        "FRONTROW_AUTH_SECRET": SECRET,
    }
    subprocess.run(  # noqa: ASYNC221 (before the measurement)
        [sys.executable, "-m", "frontrow", "catalog", "import", str(STADIUM)],
        env=env,
        cwd=CODE,
        check=True,
        capture_output=True,
    )
    settings = Settings(
        redis_url=args.redis_url,
        database_url=args.database_url,
        auth_secret=SECRET,
        admit_batch=1_000_000,  # everyone goes straight in: this measures the booking path
        log_level="INFO" if args.access_log else "WARNING",
        enter_per_user=0,
        hold_per_user=0,
        maps_per_user=0,
        requests_per_ip=0,
    )
    if args.access_log:  # as a served worker logs, each line a write (line buffered)
        from frontrow import logs

        logs.configure(settings)
        sink = open(os.devnull, "w", buffering=1)  # noqa: ASYNC230 (before the measurement)
        logging.getLogger().handlers[0].setStream(sink)  # type: ignore[attr-defined]
    store = open_store(settings)
    await store.redis.flushdb()
    app = create_app(settings, store)
    async with app.router.lifespan_context(app):
        app.state.store = store
        yield store, Driver(app)
    await store.close()


async def run(args: argparse.Namespace) -> None:
    from frontrow.app import GC_THRESHOLD

    random.seed(0)  # the same orders each run: instruction counts compare
    async with stadium_app(args) as (store, call):
        counter = iter(range(10**9))

        async def wave(count: int) -> int:
            done = 0
            for _ in range(0, count, 32):
                results = await asyncio.gather(
                    *(order(call, store.tokens, next(counter)) for _ in range(32))
                )
                done += sum(results)
            return done

        await wave(320)  # warm: catalog copies, connections, rendered rows
        # what a served worker's lifespan does (app.create_app, for a store
        # it owns): without it this process collects every 700 objects
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)
        profiler = cProfile.Profile() if args.profile else None
        counted = os.environ.get(UNDER_CALLGRIND) == "1"
        if counted:
            _callgrind("on")
        started = time.process_time()
        if profiler:
            profiler.enable()
        orders = await wave(args.orders)
        if profiler:
            profiler.disable()
        spent = time.process_time() - started
        if counted:
            _callgrind("off")
    print(f"{orders} orders, app CPU {spent / max(orders, 1) * 1000:.2f} ms an order")
    if profiler:
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())


def _callgrind(state: str) -> None:
    """Switch callgrind's counting of this process on or off."""
    subprocess.run(
        ["callgrind_control", "--instr", state, str(os.getpid())],
        check=True,
        capture_output=True,
        timeout=120,
    )


def instructions(args: argparse.Namespace, code: Path) -> tuple[int, float]:
    """(orders, instructions an order) of the measured orders, with `code`'s
    frontrow under this checkout's driver, counted by callgrind."""
    with tempfile.TemporaryDirectory(prefix="orderpath-") as scratch:
        # frontrow from `code`, bench from here (a checkout's own bench would shadow it)
        (Path(scratch) / "frontrow").symlink_to(code / "frontrow")
        env = {
            **os.environ,
            UNDER_CALLGRIND: "1",
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": os.pathsep.join((scratch, str(ROOT))),
        }
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={scratch}/callgrind.out",
            sys.executable,
            "-m",
            "bench.orderpath",
            *("--orders", str(args.orders)),
            *(["--access-log"] if args.access_log else []),
            *("--redis-url", args.redis_url),
            *("--database-url", args.database_url),
        ]
        # run from the scratch directory: a module's own directory comes first on its path
        done = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True)
    counted = re.search(r"Collected : (\d+)", done.stderr)
    orders = re.search(r"^(\d+) orders", done.stdout, re.M)
    if done.returncode or not counted or not orders:
        sys.exit(f"bench.orderpath under callgrind failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return int(orders[1]), int(counted[1]) / max(int(orders[1]), 1)


def count(args: argparse.Namespace) -> None:
    if not shutil.which("valgrind"):
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    codes = [(ROOT, "this checkout")]
    if args.baseline:
        codes.append((Path(args.baseline).resolve(), "baseline"))
    counted = {}
    for code, label in codes:
        orders, each = counted[label] = instructions(args, code)
        print(f"{label} ({code}): {orders} orders, {each / 1e6:.3f} M instructions an order")
    if args.baseline:
        ratio = counted["this checkout"][1] / counted["baseline"][1]
        print(f"this checkout / baseline, instructions an order: x{ratio:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.orderpath", description=__doc__)
    parser.add_argument("--orders", type=int, default=1_600)
    parser.add_argument("--profile", type=int, default=0, help="show this many functions")
    parser.add_argument("--profile-out", help="write the profile here (pstats)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the app's instructions an order under callgrind (needs valgrind)",
    )
    parser.add_argument(
        "--baseline", help="with --instructions: a checkout of other code (git worktree)"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log each request at INFO as a served worker does by default (to /dev/null)",
    )
    scale_backends(parser)
    args = parser.parse_args()
    if args.baseline and not args.instructions:
        parser.error("--baseline needs --instructions")
    if args.instructions:
        count(args)
        return
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
