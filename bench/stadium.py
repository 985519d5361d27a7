"""python -m bench.stadium: a 4-date x 50,000-seat stadium in one server.

Against real Redis and PostgreSQL (databases it may wipe), one `frontrow
serve` with its schedulers running (they read the catalog on every tick):
1. the poll's p50/p99 with wrk (-t1 -c32, 10,000 rotating tokens) on an
   empty catalog;
2. `frontrow catalog import examples/stadium.json` (timed) while wrk runs
   again, so the window holds the import and every reload it causes, then a
   steady window after; the ratio after/before of p99 is the figure;
3. the seat map's size on the wire, raw and gzip: a whole date as seat
   objects, a whole date as rows (form=rows), one section as rows, the
   section overview.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx

from bench.__main__ import (
    ROOT,
    SAMPLE,
    SECRET,
    Queue,
    fresh_database,
    frontrow_env,
    row,
    scale_backends,
    server,
    wrk,
)

STADIUM = ROOT / "examples" / "stadium.json"


async def bump_every(args: argparse.Namespace, every_s: float, stop: threading.Event) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from frontrow.catalog import bump_version

    engine = create_async_engine(args.database_url)
    while not stop.wait(every_s):
        async with engine.begin() as conn:
            await bump_version(conn)
    await engine.dispose()


def import_stadium(env: dict[str, str]) -> float:
    """`frontrow catalog import examples/stadium.json`; returns the seconds it took."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "frontrow", "catalog", "import", str(STADIUM)],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def admitted_buyer(url: str, name: str) -> tuple[str, str]:
    """An ACTIVE queue token of the stadium concert and its first date's path."""
    from frontrow.auth import Tokens

    user = Tokens(SECRET, 86_400).user_token(name)
    entered = httpx.post(f"{url}/concerts/10/queue", headers={"Authorization": f"Bearer {user}"})
    token = entered.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 30
    while httpx.get(url + "/queue/token", headers=auth).json()["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was never admitted")
        time.sleep(0.2)
    dates = httpx.get(f"{url}/concerts/10/dates", headers=auth).json()["dates"]
    return token, f"/concerts/10/dates/{dates[0]['date']}"


def sizes(url: str) -> dict[str, Any]:
    token, date = admitted_buyer(url, "bench-map")
    auth = {"Authorization": f"Bearer {token}"}
    base = url + date
    out = {}
    for name, path in (
        ("whole date, seat objects", "/seats"),
        ("whole date, form=rows", "/seats?form=rows"),
        ("one section, seat objects", "/seats?section=A"),
        ("one section, form=rows", "/seats?section=A&form=rows"),
        ("section overview", "/sections"),
    ):
        started = time.perf_counter()
        response = httpx.get(base + path, headers={**auth, "Accept-Encoding": "gzip"}, timeout=60)
        took = time.perf_counter() - started
        response.raise_for_status()
        out[name] = {
            "raw_bytes": len(response.content),
            "wire_bytes": response.num_bytes_downloaded,
            "encoding": response.headers.get("content-encoding", "identity"),
            "ms": round(took * 1000, 1),
        }
    return out


async def run(args: argparse.Namespace) -> None:
    await fresh_database(args.database_url)
    queue = Queue(args.redis_url)
    await queue.flush()
    await queue.grow(100_000)
    tokens = queue.tokens(SAMPLE)
    env = frontrow_env(args, FRONTROW_SCHEDULERS="1", FRONTROW_ADMIT_BATCH="50")
    rows: list[dict[str, Any]] = []
    with server([sys.executable, "-m", "frontrow", "serve"], env) as url:
        before = wrk(url, tokens, args.duration, args.connections)
        rows.append(row("poll, empty catalog", 1, 100_000, before))
        timing: dict[str, float] = {}

        def load() -> None:
            timing["import_s"] = import_stadium(env)

        importer = threading.Thread(target=load)
        importer.start()
        during = wrk(url, tokens, args.duration + 10, args.connections, warmup=0)
        importer.join()
        rows.append(row("poll, stadium importing", 1, 100_000, during, "import + reloads"))
        after = wrk(url, tokens, args.duration, args.connections, warmup=0)
        rows.append(row("poll, stadium loaded", 1, 100_000, after))
        # the worst case: a new catalog version every 5 s, so the server
        # rereads all 200,000 seats as often as the old code did
        stop = threading.Event()
        bumper = threading.Thread(target=lambda: asyncio.run(bump_every(args, 5.0, stop)))
        bumper.start()
        reloading = wrk(url, tokens, args.duration, args.connections, warmup=0)
        stop.set()
        bumper.join()
        rows.append(row("poll, reloading every 5 s", 1, 100_000, reloading, "version bumped"))
        wire = sizes(url)
    await queue.store.close()
    for r in rows:
        print(
            f"{r['name']:26} {r['rps']:>7} req/s  p50 {r['p50_ms']:6.1f} ms"
            f"  p99 {r['p99_ms']:6.1f} ms  non-2xx {r['non2xx']}  {r['note']}"
        )
    for name, stats in (("loaded", after), ("reloading every 5 s", reloading)):
        print(f"poll p99 {name} / empty catalog: {stats['p99_us'] / before['p99_us']:.2f}")
    print(
        f"poll p99 while the import runs on this box / empty catalog: "
        f"{during['p99_us'] / before['p99_us']:.2f} (the importer and PostgreSQL share the CPUs)"
    )
    print(f"import of {STADIUM.name} (4 dates x 50,000 seats): {timing['import_s']:.1f} s")
    for name, s in wire.items():
        print(
            f"{name:28} {s['raw_bytes']:>9,} B raw  {s['wire_bytes']:>9,} B on the wire"
            f" ({s['encoding']}), {s['ms']} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stadium", description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    scale_backends(parser)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
