"""`frontrow stats`: every concert's queue on a terminal, refreshing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sys
from typing import Any, TextIO

from frontrow.queue.core import overview
from frontrow.store import Store

CLEAR = "\x1b[H\x1b[2J"
COLUMNS = (
    "concert",
    "title",
    "open",
    "waiting",
    "active",
    "cap",
    "k/n",
    "rate/s",
    "last in line",
    "admitted",
    "abandoned",
    "expired",
)


def _eta(waiting: int, rate: float) -> str:
    if waiting == 0:
        return "-"
    if rate <= 0:
        return "stalled"
    seconds = math.ceil(waiting / rate)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )


async def rows(store: Store) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for concert in (await store.catalog.concerts()).values():
        q: dict[str, Any] = await overview(store, concert.id)
        out.append(
            (
                str(concert.id),
                concert.title[:28],
                "yes" if q["open"] else "no",
                f"{q['waiting']:,}",
                f"{q['active']:,}",
                str(q["max_active"] or "-"),
                # k chosen by the admitter for a p99 target reads "auto 40/1s (p99 500ms)"
                (f"auto {q['admit_batch']}" if q["admit_target_p99_ms"] else str(q["admit_batch"]))
                + f"/{q['admit_interval_s']:g}s"
                + (f" (p99 {q['admit_target_p99_ms']}ms)" if q["admit_target_p99_ms"] else ""),
                f"{q['admit_rate_per_s']:.1f}",
                _eta(q["waiting"], q["admit_rate_per_s"]),
                f"{q['admitted_total']:,}",
                f"{q['abandoned_total']:,}",
                f"{q['expired_total']:,}",
            )
        )
    return out


def render(table: list[tuple[str, ...]]) -> str:
    widths = [
        max(len(c), *(len(r[i]) for r in table)) if table else len(c) for i, c in enumerate(COLUMNS)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return "\n".join([f"frontrow queues at {now}", line, "-" * len(line), *body]) + "\n"


async def watch(store: Store, interval_s: float, once: bool, out: TextIO = sys.stdout) -> None:
    while True:
        text = render(await rows(store))
        out.write(text if once else CLEAR + text)
        out.flush()
        if once:
            return
        await asyncio.sleep(interval_s)
