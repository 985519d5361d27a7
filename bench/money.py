"""python -m bench.money: a charge and a payment against the one-statement ceiling.

In one run, on real Redis and PostgreSQL (databases it may wipe), with wrk
(-t1, 32 connections, a fresh Idempotency-Key on every request):
- ceilings: a bare Starlette endpoint doing one `UPDATE ... RETURNING`, in
  one round trip on psycopg's pool as frontrow's money statements are, and
  (the first ceiling) through SQLAlchemy's async engine in a transaction
  (bench/money_ceiling.py);
- frontrow charge: `POST /wallet/charge` by 500 users;
- frontrow payment: `POST /payments`, each request a different buyer who is
  admitted, holds one seat of the stadium and has the money (prepared first).
Every server gets the same number of uvicorn workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.__main__ import (
    ROOT,
    SECRET,
    fresh_database,
    frontrow_env,
    row,
    scale_backends,
    server,
    uvicorn,
)

WRK_MONEY = Path(__file__).with_name("wrk_money.lua")


def wrk_post(
    url: str, path: str, tokens: list[str], body: str | list[str], seconds: int
) -> dict[str, Any]:
    """One body for every request, or a body per token (a file wrk reads)."""
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp, "tokens")
        token_file.write_text("\n".join(tokens) + "\n")
        if isinstance(body, list):
            Path(tmp, "bodies").write_text("\n".join(body) + "\n")
            body = "@" + str(Path(tmp, "bodies"))
        out = subprocess.run(
            [
                *("wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(WRK_MONEY), url + path),
                *("--", str(token_file), path, body),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    stats["rps"] = (stats["requests"] - stats["non2xx"]) / (stats["duration_us"] / 1e6)
    return stats


async def prepare(args: argparse.Namespace, buyers: int) -> tuple[list[str], list[str]]:
    """Reset both databases, load one stadium date, and make `buyers` buyers
    ready to pay: admitted, one seat held each, the money in the wallet."""

    from bench import money_ceiling
    from frontrow import rules
    from frontrow.auth import QueueClaims
    from frontrow.booking import holds
    from frontrow.catalog_import import apply, validate
    from frontrow.config import Settings
    from frontrow.queue import core
    from frontrow.store import open_store
    from frontrow.wallet import ledger

    await fresh_database(args.database_url)
    store = open_store(
        Settings(
            redis_url=args.redis_url,
            database_url=args.database_url,
            auth_secret=SECRET,
            hold_ttl_s=3600,
        )
    )
    await store.redis.flushdb()
    venue = json.loads((ROOT / "examples" / "stadium.json").read_text())
    venue["concerts"][0]["dates"] = venue["concerts"][0]["dates"][:1]
    await apply(store, validate(json.dumps(venue)))
    await money_ceiling.prepare(args.database_url)
    concert = await store.catalog.get(10)
    assert concert is not None
    schedule = concert.schedules[0]
    k = store.keys(10)
    users = [f"p{i}" for i in range(buyers)]
    await rules.restore(store, 10)  # a pipeline cannot restore them midway
    async with store.redis.pipeline(transaction=False) as pipe:
        for user in users:
            keys, argv = core.enter_call(store, user, 10, token_id=f"t_{user}")
            await store.scripts.enter(keys=keys, args=argv, client=pipe)
        await pipe.execute()
    await store.redis.hset(k.cfg, mapping={"admit_batch": buyers})
    await core.admit(store, 10, "bench")

    async def ready(i: int, user: str) -> str:
        claims = QueueClaims(user, 10, f"t_{user}", 0)
        _, hold = await holds.hold(store, concert, schedule, i + 1, claims, f"bench{i}")
        await ledger.charge(store, user, hold.price, None)
        return json.dumps({"hold_ids": [hold.hold_id]})

    bodies: list[str] = []
    for start in range(0, buyers, 200):
        chunk = users[start : start + 200]
        bodies += await asyncio.gather(*(ready(start + j, u) for j, u in enumerate(chunk)))
    tokens = [store.tokens.queue_token(user, 10, f"t_{user}") for user in users]
    await store.close()
    return tokens, bodies


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.money", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--buyers", type=int, default=20_000, help="payments prepared")
    scale_backends(parser)
    args = parser.parse_args()
    tokens, bodies = asyncio.run(prepare(args, args.buyers))
    from frontrow.auth import Tokens

    users = [Tokens(SECRET, 86_400).user_token(f"c{i}") for i in range(500)]
    rows = []
    w = args.workers
    with server(
        uvicorn("bench.money_ceiling:app", w), {"BENCH_DATABASE_URL": args.database_url}, "/x"
    ) as url:
        wallets = [f"u{i}" for i in range(500)]
        ceiling = wrk_post(url, "/credit", wallets, "{}", args.duration)
        first = wrk_post(url, "/credit-sqlalchemy", wallets, "{}", args.duration)
    rows.append(row("ceiling: one UPDATE, psycopg's pool", w, None, ceiling))
    rows.append(row("ceiling: one UPDATE via SQLAlchemy", w, None, first))
    with server(
        [sys.executable, "-m", "frontrow", "serve", "--workers", str(w)], frontrow_env(args)
    ) as url:
        charge = wrk_post(url, "/wallet/charge", users, '{"amount": 1}', args.duration)
        rows.append(row("frontrow charge", w, None, charge, "500 users, a key each"))
        payment = wrk_post(url, "/payments", tokens, bodies, args.duration)
        rows.append(row("frontrow payment", w, None, payment, "one seat, a buyer each"))
    for r, stats in zip(rows, (ceiling, first, charge, payment), strict=True):
        print(
            f"{r['name']:38} {stats['rps']:>7.0f} ok/s  p50 {r['p50_ms']:6.1f} ms"
            f"  p99 {r['p99_ms']:6.1f} ms  non-2xx {r['non2xx']:>5}"
            f"  x ceiling {stats['rps'] / ceiling['rps']:.2f}"
            f"  x first ceiling {stats['rps'] / first['rps']:.2f}  {r['note']}"
        )
    if payment["non2xx"]:
        print(f"(payment: {payment['non2xx']} answers past the {args.buyers} prepared buyers)")


if __name__ == "__main__":
    main()
