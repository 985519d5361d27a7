"""Polling economy: N waiting browsers that follow poll_after_ms while the
admitter admits k every n seconds. No server: frontrow's own poll rule
(frontrow.queue.core.poll_after_ms) is applied to simulated users.

python -m bench.sim [--waiting 1000000] [--batch 100] [--interval 1]

Users are independent (admission is FIFO at a fixed rate, whoever polls),
so a sample of users spread over the line stands for all of them; the
total poll rate is the sum over every rank of 1 / poll interval.
"""

from __future__ import annotations

import argparse
import json
import random

from frontrow.queue.core import poll_after_ms

BUCKETS = [(1, 100), (101, 1_000), (1_001, 10_000), (10_001, 100_000), (100_001, 10**9)]


def rank_at(start_rank: int, t: float, k: int, n: float) -> int:
    """Rank at time t of a user who was at start_rank at t=0 (ticks at n, 2n, ...)."""
    return start_rank - k * int(t // n)


def simulate_user(start_rank: int, k: int, n: float, rng: random.Random) -> dict:
    admitted_at = n * ((start_rank - 1) // k + 1)
    t = rng.uniform(0, 1.0)  # first poll: whenever the page loaded
    polls: dict[int, int] = {}
    time_in: dict[int, float] = {}
    last_interval = 1.0
    while True:
        rank = rank_at(start_rank, t, k, n)
        if rank <= 0:
            return {
                "late_s": t - admitted_at,
                "polls": polls,
                "time_in": time_in,
                "last_interval_s": last_interval,
            }
        interval = poll_after_ms("WAITING", rank, 0, 0) / 1000
        bucket = next(i for i, (lo, hi) in enumerate(BUCKETS) if lo <= rank <= hi)
        polls[bucket] = polls.get(bucket, 0) + 1
        time_in[bucket] = time_in.get(bucket, 0.0) + interval
        last_interval = interval
        t += interval


def total_poll_rate(waiting: int) -> float:
    """Polls per second from a full line of `waiting` users, each at its rank's interval."""
    rate = 0.0
    for rank in range(1, min(waiting, 1_000) + 1):
        rate += 1000 / poll_after_ms("WAITING", rank, 0, 0)
    if waiting > 1_000:
        rate += (waiting - 1_000) * 1000 / poll_after_ms("WAITING", 1_001, 0, 0)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sim")
    parser.add_argument("--waiting", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100, help="k per tick")
    parser.add_argument("--interval", type=float, default=1.0, help="n seconds per tick")
    parser.add_argument("--sample", type=int, default=400)
    args = parser.parse_args()
    rng = random.Random(7)
    starts = sorted(
        {1, 50, 500, 2_000, *(rng.randint(1, args.waiting) for _ in range(args.sample))}
    )
    polls = [0] * len(BUCKETS)
    minutes = [0.0] * len(BUCKETS)
    worst_late, worst_ratio = 0.0, 0.0
    for start in starts:
        user = simulate_user(start, args.batch, args.interval, rng)
        for b, count in user["polls"].items():
            polls[b] += count
            minutes[b] += user["time_in"][b] / 60
        worst_late = max(worst_late, user["late_s"])
        worst_ratio = max(worst_ratio, user["late_s"] / user["last_interval_s"])
    rows = []
    for (lo, hi), p, m in zip(BUCKETS, polls, minutes, strict=True):
        if m:
            rows.append(
                {
                    "ranks": f"{lo:,}-{min(hi, args.waiting):,}",
                    "polls_per_user_per_min": round(p / m, 2),
                }
            )
    result = {
        "waiting": args.waiting,
        "admit": f"{args.batch} per {args.interval:g}s",
        "by_distance": rows,
        "total_polls_per_s_full_line": round(total_poll_rate(args.waiting)),
        "worst_seconds_past_admission": round(worst_late, 2),
        "worst_lateness_in_poll_intervals": round(worst_ratio, 3),
    }
    for r in rows:
        print(f"ranks {r['ranks']:>20}: {r['polls_per_user_per_min']:6.2f} polls/user/min")
    print(
        f"total poll rate with {args.waiting:,} waiting: "
        f"{result['total_polls_per_s_full_line']:,} polls/s"
    )
    print(
        f"worst wait past admission: {result['worst_seconds_past_admission']} s "
        f"({result['worst_lateness_in_poll_intervals']} of that user's last poll interval)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
