"""The frontrow command line: serve, admitter, migrate, seed-demo, user-token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from frontrow import catalog
from frontrow.config import ConfigError, Settings
from frontrow.store import make_engine, open_store

log = logging.getLogger("frontrow")
SERVE_LIMITS = {
    "max_connections": "FRONTROW_MAX_CONNECTIONS",
    "header_timeout": "FRONTROW_HEADER_TIMEOUT_S",
    "max_header_bytes": "FRONTROW_MAX_HEADER_BYTES",
}


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"frontrow: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    from frontrow.logs import configure

    configure(settings)
    log.info("effective config", extra={"config": settings.masked()})


async def _migrate(settings: Settings, seed: bool) -> int | None:
    engine = make_engine(settings)
    try:
        await catalog.migrate(engine)
        return await catalog.seed_demo(engine) if seed else None
    finally:
        await engine.dispose()


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from frontrow.server import GuardedHttpTools, raise_file_limit

    # Options win over the environment; workers are fresh processes that read it.
    for option, var in SERVE_LIMITS.items():
        if getattr(args, option) is not None:
            os.environ[var] = str(getattr(args, option))
    settings = _settings()
    _logging(settings)
    if settings.embedded and args.workers != 1:
        print(
            "frontrow: the embedded Redis lives in one process; use --workers 1 "
            "or set FRONTROW_REDIS_URL",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers share request counters through files; a fresh directory per start.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="frontrow-metrics-")
    raise_file_limit(settings.max_connections)
    # Schema once, before any worker starts, so workers never race on DDL.
    asyncio.run(_migrate(settings, seed=settings.embedded))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"frontrow: serving on http://{host}:{args.port}/", flush=True)
    if args.server == "granian":
        _granian(args, settings)
        return
    uvicorn.run(
        "frontrow.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=GuardedHttpTools,
        log_level="warning",
        access_log=False,
        backlog=4096,
        # Over the cap a request is answered 503 (GuardedHttpTools refuses whole
        # connections past it); forwarded headers are read by frontrow.http, and
        # only from FRONTROW_TRUSTED_PROXIES.
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=int(settings.keep_alive_s),
        proxy_headers=False,
        server_header=False,
    )


def _granian(args: argparse.Namespace, settings: Settings) -> None:
    """The same app behind granian (Rust HTTP/1.1, frontrow[granian])."""
    try:
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.http import HTTP1Settings
        from granian.server import Server
    except ImportError:
        print(
            "frontrow: --server granian needs the granian extra: pip install 'frontrow[granian]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    Server(
        "frontrow.app:create_app",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backlog=4096,
        # granian bounds requests in flight per worker, not open sockets: past
        # the cap a connection waits for its turn instead of getting a 503.
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout_s * 1000),
            # the request head must fit; hyper refuses a buffer under 8 KiB
            max_buffer_size=max(8192, settings.max_header_bytes),
        ),
        log_enabled=False,
        log_access=False,
    ).serve()


def admitter(args: argparse.Namespace) -> None:
    from frontrow.schedulers import loops

    settings = _settings()
    _logging(settings)
    if settings.embedded:
        print(
            "frontrow: an admitter process needs FRONTROW_REDIS_URL (the embedded "
            "server runs its schedulers in-process)",
            file=sys.stderr,
        )
        raise SystemExit(2)

    async def run() -> None:
        store = open_store(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("admitter %s started", loops.owner_id())
        try:
            await asyncio.gather(*loops.start(store, stop), store.catalog.watch(stop))
        finally:
            await store.close()
        log.info("admitter stopped")

    import uvloop  # the loop the servers' workers run on

    uvloop.run(run())


def stats(args: argparse.Namespace) -> None:
    from frontrow.stats import watch

    settings = _settings()
    if settings.embedded:
        print("frontrow: stats reads a shared Redis; set FRONTROW_REDIS_URL", file=sys.stderr)
        raise SystemExit(2)

    async def run() -> None:
        store = open_store(settings)
        try:
            await watch(store, args.interval, args.once)
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


def catalog_import(args: argparse.Namespace) -> None:
    from frontrow.catalog_import import CatalogError, apply, validate

    settings = _settings()
    try:
        with open(args.file, encoding="utf-8") as f:
            specs = validate(f.read())
    except OSError as exc:
        print(f"frontrow: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    except CatalogError as exc:
        for line in exc.errors:
            print(f"{args.file}: {line}", file=sys.stderr)
        raise SystemExit(2) from None

    async def run() -> str:
        store = open_store(settings)
        try:
            await catalog.migrate(store.db)
            report = await apply(store, specs)
            # returns once every running process serves the new catalog
            late = await catalog.wait_until_loaded(store, await catalog.announce(store))
            if late:
                print(f"frontrow: not loaded yet by {', '.join(late)}", file=sys.stderr)
            return str(report)
        finally:
            await store.close()

    try:
        print(f"frontrow: imported {args.file}: {asyncio.run(run())}")
    except CatalogError as exc:
        for line in exc.errors:
            print(f"{args.file}: {line}", file=sys.stderr)
        print("frontrow: nothing was imported", file=sys.stderr)
        raise SystemExit(2) from None


def migrate(args: argparse.Namespace) -> None:
    asyncio.run(_migrate(_settings(), seed=False))
    print("frontrow: schema is up to date")


def seed_demo(args: argparse.Namespace) -> None:
    concert_id = asyncio.run(_migrate(_settings(), seed=True))
    if concert_id is None:
        print("frontrow: catalog not empty; nothing seeded")
    else:
        print(f"frontrow: seeded demo concert {concert_id}")


def user_token(args: argparse.Namespace) -> None:
    from frontrow.auth import Tokens

    settings = _settings()
    if settings.embedded and not os.environ.get("FRONTROW_AUTH_SECRET"):
        print(
            "frontrow: set FRONTROW_AUTH_SECRET (the same as the server's) to mint "
            "a token it accepts",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        tokens = Tokens(settings.auth_secret, settings.user_token_max_age_s)
        print(tokens.user_token(args.user_id, args.lifetime))
    except ValueError as exc:
        print(f"frontrow: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def lottery_verify(args: argparse.Namespace) -> None:
    """Fetch a concert's lottery and its whole draw from public endpoints and
    check them; exit 1 when anything does not hold."""
    import json
    import urllib.request

    from frontrow.sale import check_draw

    base = f"{args.url.rstrip('/')}/concerts/{args.concert_id}/queue/lottery"

    def get(url: str) -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=30) as response:
            body: dict[str, Any] = json.load(response)
        return body

    lottery = get(base)
    keys: list[str] = []
    while lottery.get("seed"):
        after = f"&after={keys[-1]}" if keys else ""
        page = get(f"{base}/draw?limit=10000{after}")["keys"]
        keys += page
        if len(page) < 10_000:
            break
    problems, rank = check_draw(lottery, keys, args.concert_id, args.user)
    print(f"commitment {lottery.get('commitment')}")
    print(f"seed       {lottery.get('seed')}")
    print(f"entries    {lottery.get('entries')}, keys fetched {len(keys)}")
    if args.user is not None:
        where = f"rank {rank:,} of {len(keys):,}" if rank else "not in the draw"
        print(f"user {args.user}: {where}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print("OK: the seed matches the commitment; the draw is complete and in key order")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="frontrow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="HTTP server: uvicorn (default) or granian (the granian extra)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        help="open connections per worker, past it 503; with granian requests in flight "
        "(FRONTROW_MAX_CONNECTIONS, 2048)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        help="seconds a request head may take to arrive (FRONTROW_HEADER_TIMEOUT_S, 10)",
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        help="largest request line + headers; past it 431 (FRONTROW_MAX_HEADER_BYTES, 16384)",
    )
    p.set_defaults(func=serve)

    p = sub.add_parser("admitter", help="run the admission and sweep loops")
    p.set_defaults(func=admitter)

    p = sub.add_parser("stats", help="watch every concert's queue in the terminal")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.set_defaults(func=stats)

    p = sub.add_parser("catalog", help="manage the catalog")
    catalog_sub = p.add_subparsers(dest="catalog_command", required=True)
    p = catalog_sub.add_parser("import", help="import concerts, dates and seats from JSON")
    p.add_argument("file")
    p.set_defaults(func=catalog_import)

    p = sub.add_parser("migrate", help="create the database schema (idempotent)")
    p.set_defaults(func=migrate)

    p = sub.add_parser("seed-demo", help="load the demo concert into an empty catalog")
    p.set_defaults(func=seed_demo)

    p = sub.add_parser("lottery", help="check a concert's pre-queue lottery")
    lottery_sub = p.add_subparsers(dest="lottery_command", required=True)
    p = lottery_sub.add_parser("verify", help="check the seed, the draw and a user's rank")
    p.add_argument("concert_id", type=int)
    p.add_argument(
        "--url", required=True, help="the frontrow service, e.g. https://tickets.example"
    )
    p.add_argument("--user", help="a user id whose rank to find")
    p.set_defaults(func=lottery_verify)

    p = sub.add_parser("user-token", help="print a user token for USER_ID")
    p.add_argument("user_id")
    p.add_argument("--lifetime", type=int, default=24 * 3600, help="seconds")
    p.set_defaults(func=user_token)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
