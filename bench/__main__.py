"""python -m bench: frontrow's poll against the ceiling and the relational baseline.

One run starts every server itself, on loopback, and measures them side by
side with wrk (Debian's package; one thread, 32 connections), so every
figure is a ratio taken on the same machine in the same minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).with_name("wrk_rotate.lua")
SECRET = "bench-secret-bench-secret-bench-secret-0123"
SAMPLE = 10_000  # distinct tokens wrk rotates through


_PIDS: dict[str, int] = {}  # a running server's URL -> its pid, for its CPU per request


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux
    /proc): a server's workers and threads included, and children that have
    ended and been waited for (a PostgreSQL session that closed). CPU per
    request is far steadier than requests per second on a shared machine."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parent[int(entry)] = int(fields[1])
        # utime, stime, and cutime, cstime: the ended children it waited for
        ticks[int(entry)] = sum(int(f) for f in fields[11:15])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, up in parent.items() if up in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(argv: list[str], env: dict[str, str], ready_path: str = "/healthz", root: Path = ROOT):
    """A server started from `root`'s code (another checkout for --baseline)."""
    port = free_port()
    full = {**os.environ, **env, "PYTHONPATH": str(root)}
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        env=full,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    _PIDS[url] = proc.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited: {Path(log.name).read_text()[-2000:]}")
            try:
                httpx.get(url + ready_path, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} not answering") from None
                time.sleep(0.2)
        time.sleep(0.5)  # let every worker finish its start-up
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if os.environ.get("BENCH_DEBUG"):
            print(f"--- {argv[-3:]}\n{Path(log.name).read_text()[-3000:]}", file=sys.stderr)
        os.unlink(log.name)


def uvicorn(app: str, workers: int, factory: bool = False) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    return [*argv, "--factory"] if factory else argv


def granian(app: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        app,
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--no-log",
        "--backlog",
        "4096",
    ]


def fastpysgi(target: str, workers: int) -> list[str]:
    """bench/fastpysgi_run.py: TARGET is an app, or "frontrow"."""
    return [sys.executable, "-m", "bench.fastpysgi_run", target, "--workers", str(workers)]


def ceiling_server(name: str, workers: int) -> list[str]:
    if name == "fastpysgi":
        return fastpysgi("bench.ceiling:app", workers)
    return (uvicorn if name == "uvicorn" else granian)("bench.ceiling:app", workers)


def frontrow_server(name: str, workers: int) -> list[str]:
    if name == "fastpysgi":  # a comparison only: frontrow serve runs uvicorn or granian
        return fastpysgi("frontrow", workers)
    return [sys.executable, "-m", "frontrow", "serve", "--workers", str(workers), "--server", name]


def wrk(
    url: str,
    tokens: list[str],
    duration: int,
    connections: int,
    method: str = "GET",
    paths: list[str] | None = None,
    path: str = "/queue/token",
    warmup: int = 2,
) -> dict[str, Any]:
    """Measure; a short unmeasured run first lets the server warm its token cache."""
    if warmup:
        wrk(url, tokens, warmup, connections, method, paths, path, warmup=0)
    pid = _PIDS.get(url)
    cpu0 = tree_cpu_s(pid) if pid else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp, "tokens")
        token_file.write_text("\n".join(tokens) + "\n")
        extra = [str(token_file), method]
        if paths:
            Path(tmp, "paths").write_text("\n".join(paths) + "\n")
            extra.append(str(Path(tmp, "paths")))
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "-s",
                str(WRK_SCRIPT),
                url + path,
                "--",
                *extra,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
        ).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    if not stats["requests"]:
        raise RuntimeError(f"wrk sent nothing: {out[-1500:]}")
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    if pid:
        stats["cpu_us"] = (tree_cpu_s(pid) - cpu0) / stats["requests"] * 1e6
    return stats


def row(
    name: str, workers: int, size: int | None, stats: dict[str, Any], note: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "workers": workers,
        "waiting": size,
        "rps": round(stats["rps"]),
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "non2xx": stats["non2xx"],
        "errors": stats["socket_errors"],
        "cpu_us": round(stats["cpu_us"], 1) if "cpu_us" in stats else None,
        "note": note,
    }


class Queue:
    """Waiting tokens put into real Redis through frontrow's own enter script."""

    def __init__(self, redis_url: str) -> None:
        from frontrow.config import Settings
        from frontrow.store import open_store

        # the rules of a concert no database has: open now, fifo (rules.restore)
        self._db_dir = tempfile.TemporaryDirectory(prefix="bench-queue-")
        self.settings = Settings(
            redis_url=redis_url,
            auth_secret=SECRET,
            database_url=f"sqlite+aiosqlite:///{self._db_dir.name}/none.db",
        )
        self.store = open_store(self.settings)
        self.size = 0

    async def flush(self) -> None:
        await self.store.redis.flushdb()
        self.size = 0

    async def grow(self, size: int, concert_id: int = 1) -> None:
        from frontrow import rules
        from frontrow.catalog import migrate
        from frontrow.queue.core import enter_call

        await migrate(self.store.db)

        # a line, not a calm queue: nobody is let straight in (enter.lua's fifo rule)
        await self.store.redis.set(self.store.keys(concert_id).calm, 10**12, px=86_400_000)
        await rules.restore(self.store, concert_id)  # a pipeline cannot restore them midway
        batch = 5_000
        for start in range(self.size, size, batch):
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(size, start + batch)):
                    keys, args = enter_call(self.store, f"b{i}", concert_id, token_id=f"t_b{i}")
                    await self.store.scripts.enter(keys=keys, args=args, client=pipe)
                await pipe.execute()
        self.size = max(self.size, size)

    def tokens(self, count: int, concert_id: int = 1) -> list[str]:
        picks = random.sample(range(self.size), min(count, self.size))
        return [self.store.tokens.queue_token(f"b{i}", concert_id, f"t_b{i}") for i in picks]


async def fresh_database(database_url: str) -> None:
    """Drop frontrow's tables and create them again (benches that load a
    catalog); the database itself is created first where it is missing."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from frontrow.catalog import migrate
    from frontrow.schema import metadata

    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        await admin.dispose()
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await migrate(engine)
    await engine.dispose()


def scale_backends(parser: argparse.ArgumentParser) -> None:
    """--redis-url and --database-url of a bench that loads a catalog: a Redis
    database and a PostgreSQL database (created when missing) it may wipe."""
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/frontrow_scale"
    )


def frontrow_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    return {
        "FRONTROW_REDIS_URL": args.redis_url,
        "FRONTROW_DATABASE_URL": args.database_url,
        "FRONTROW_AUTH_SECRET": SECRET,
        "FRONTROW_SCHEDULERS": "0",
        "FRONTROW_LOG_LEVEL": "WARNING",
        "FRONTROW_ABANDON_AFTER_S": "86400",
        # one client address and a few users make every request: no rate limits
        "FRONTROW_ENTER_PER_USER": "0",
        "FRONTROW_HOLD_PER_USER": "0",
        "FRONTROW_REQUESTS_PER_IP": "0",
        "FRONTROW_DEMO_LOGINS_PER_IP": "0",
        **extra,
    }


async def bench_polls(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from bench import relational

    queue = Queue(args.redis_url)
    for workers in args.workers:
        # the first ceiling row of a worker count (uvicorn's) is what x ceiling divides by
        servers = [n for n in args.servers if n != "fastpysgi" or workers == 1]
        for name in servers:
            with server(ceiling_server(name, workers), {}) as url:
                ceiling = wrk(url, ["x"] * 10, args.duration, args.connections)
            rows.append(row(f"ceiling (bare Starlette, {name})", workers, None, ceiling))
        await queue.flush()
        # --baseline: the same poll served from another checkout, right after this one's
        trees = [("", ROOT)] + ([(", baseline", Path(args.baseline))] if args.baseline else [])
        for size in args.sizes:
            await queue.grow(size)
            tokens = queue.tokens(SAMPLE)
            for name in servers:
                for label, root in trees:
                    argv = frontrow_server(name, workers)
                    with server(argv, frontrow_env(args), root=root) as url:
                        stats = wrk(url, tokens, args.duration, args.connections)
                    note = f"{SAMPLE} tokens rotated"
                    rows.append(row(f"frontrow poll ({name}{label})", workers, size, stats, note))
        if args.skip_relational:
            continue
        db = relational.engine(args.database_url)
        for size in args.sizes:
            await relational.load(db, size)
            tokens = [f"w{random.randint(1, size)}" for _ in range(SAMPLE)]
            with server(
                uvicorn("bench.relational:create_app", workers, factory=True),
                {"BENCH_DATABASE_URL": args.database_url},
            ) as url:
                stats = wrk(url, tokens, args.duration, args.connections)
            rows.append(row("relational poll (COUNT(*))", workers, size, stats))
        await db.dispose()
    await queue.store.close()


async def bench_extras(
    args: argparse.Namespace, rows: list[dict[str, Any]], extras: dict[str, Any]
) -> None:
    from bench import relational
    from frontrow import catalog
    from frontrow.queue import core
    from frontrow.store import make_engine

    queue = Queue(args.redis_url)
    await queue.flush()
    engine = make_engine(
        queue.settings.__class__(auth_secret=SECRET, database_url=args.database_url)
    )
    await catalog.migrate(engine)
    await catalog.seed_demo(engine)
    concert_id = min((await catalog.load(engine)).keys())
    await engine.dispose()

    # enter throughput: distinct users entering the demo concert's queue
    users = [queue.store.tokens.user_token(f"e{i}") for i in range(50_000)]
    with server(
        [sys.executable, "-m", "frontrow", "serve", "--workers", "1"], frontrow_env(args)
    ) as url:
        stats = wrk(
            url,
            users,
            args.duration,
            args.connections,
            method="POST",
            path=f"/concerts/{concert_id}/queue",
            warmup=0,  # every measured request is a new place
        )
    rows.append(row("frontrow enter", 1, None, stats, "distinct users, POST"))

    # one admission tick of 10k, timed inside Redis (SLOWLOG) and in PostgreSQL
    await queue.flush()
    await queue.grow(10_000, concert_id=99)
    redis = queue.store.redis
    old = (await redis.config_get("slowlog-log-slower-than"))["slowlog-log-slower-than"]
    await redis.config_set("slowlog-log-slower-than", 0)
    await redis.slowlog_reset()
    await redis.hset(queue.store.keys(99).cfg, mapping={"admit_batch": 10_000})
    tick = await core.admit(queue.store, 99, "bench")
    entries = [
        e
        for e in await redis.slowlog_get(20)
        if b"EVALSHA" in str(e.get("command", "")).encode()
        or "EVALSHA" in str(e.get("command", ""))
    ]
    await redis.config_set("slowlog-log-slower-than", old)
    redis_us = max((e["duration"] for e in entries), default=0)
    db = relational.engine(args.database_url)
    await relational.load(db, 10_000)
    pg_s = await relational.admit(db, 10_000)
    await db.dispose()
    extras["admit_10k"] = {
        "admitted": tick.admitted,
        "redis_ms": redis_us / 1000,
        "relational_ms": round(pg_s * 1000, 2),
    }

    # a flash crowd on one date: 2,000 active users holding random seats, mostly 409
    await queue.flush()
    await queue.grow(2_000, concert_id=concert_id)
    await redis.hset(queue.store.keys(concert_id).cfg, mapping={"admit_batch": 2_000})
    await core.admit(queue.store, concert_id, "bench")
    tokens = queue.tokens(2_000, concert_id=concert_id)
    day = (
        (
            await catalog.load(
                make_engine(
                    queue.settings.__class__(auth_secret=SECRET, database_url=args.database_url)
                )
            )
        )[concert_id]
        .schedules[0]
        .date
    )
    paths = [
        f"/concerts/{concert_id}/dates/{day}/seats/{random.randint(1, 50)}/hold" for _ in tokens
    ]
    with server(
        [sys.executable, "-m", "frontrow", "serve", "--workers", "1"],
        frontrow_env(args, FRONTROW_MAX_HOLDS_PER_USER="100"),
    ) as url:
        stats = wrk(
            url, tokens, args.duration, args.connections, method="POST", paths=paths, warmup=0
        )
    rows.append(row("frontrow hold (flash crowd)", 1, None, stats, "mostly 409 SEAT_UNAVAILABLE"))
    await queue.store.close()


def ratios(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        ceiling = next(
            (c for c in rows if c["name"].startswith("ceiling") and c["workers"] == r["workers"]),
            None,
        )
        base = next(
            (
                b
                for b in rows
                if b["name"].startswith("relational")
                and b["workers"] == r["workers"]
                and b["waiting"] == r["waiting"]
            ),
            None,
        )
        r["x_ceiling"] = round(r["rps"] / ceiling["rps"], 3) if ceiling else None
        r["x_relational"] = round(r["rps"] / base["rps"], 1) if base and base["rps"] else None


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "case",
        "workers",
        "waiting",
        "rps",
        "p50 ms",
        "p99 ms",
        "x ceiling",
        "x relational",
        "non-2xx",
        "server CPU µs/req",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (
            r["name"],
            r["workers"],
            f"{r['waiting']:,}" if r["waiting"] else "-",
            f"{r['rps']:,}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            r["x_ceiling"] if r["x_ceiling"] is not None else "-",
            r["x_relational"] if r["x_relational"] is not None else "-",
            r["non2xx"],
            r["cpu_us"] if r.get("cpu_us") is not None else "-",
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["rush"]:  # python -m bench rush: a whole on-sale (bench/rush.py)
        from bench import rush

        rush.main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="waiting tokens")
    parser.add_argument(
        "--servers",
        default="uvicorn,granian",
        help="HTTP servers to measure: uvicorn, granian, fastpysgi (one worker only)",
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="a Redis database the bench may flush",
    )
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also serve the poll from this checkout (git worktree add ... <commit>)",
    )
    parser.add_argument("--skip-relational", action="store_true")
    parser.add_argument("--skip-extras", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.servers = args.servers.split(",")
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is missing (apt-get install wrk)")

    rows: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    asyncio.run(bench_polls(args, rows))
    if not args.skip_extras:
        asyncio.run(bench_extras(args, rows, extras))
    ratios(rows)
    text = table(rows)
    print(text)
    for name, value in extras.items():
        print(f"{name}: {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cpus": os.cpu_count(),
                "args": {k: v for k, v in vars(args).items()},
                "rows": rows,
                "extras": extras,
            },
            indent=2,
        )
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
