"""Polling economy: N waiting browsers that follow poll_after_ms while the
admitter admits k every n seconds. No server: frontrow's own poll rule
(frontrow.queue.pollrule.waiting_poll_ms, the twin of _lib.lua's) is applied
to simulated users.

python -m bench.sim [--waiting 1000000] [--batch 100] [--interval 1] [--leave 0.1]

Admission is FIFO at k per tick. A share `--leave` of the places ahead of
anyone also goes away while they wait (people who give up), so a rank falls
faster than admissions alone say, and the estimate the server gives (rank /
admissions per second) is too long: the rule has to hold anyway. A sample of
users spread over the line stands for all of them (users are independent);
the total poll rate is the sum over every rank of 1 / its poll interval.

The goals: a full line of 1,000,000 costs at most 10,000 polls/s; nobody
learns of their admission more than max(2 s, 5 % of their own wait) after
it; the ETA a browser shows never goes up by more than 10 % between polls.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics

from frontrow.queue.pollrule import waiting_poll_ms


def simulate_user(start_rank: int, k: int, n: float, leave: float, rng: random.Random) -> dict:
    """One browser from its first poll to the poll that finds it admitted."""
    rate = k / n  # what the server observes: admissions per second
    fall = k / (1 - leave)  # what a rank loses per tick: admissions and leavers
    admitted_at = n * math.ceil(start_rank / fall)
    t = rng.uniform(0, 1.0)  # first poll: whenever the page loaded
    polls, eta_rises, last_eta = 0, 0, None
    while True:
        rank = math.ceil(start_rank - fall * math.floor(t / n))
        if rank <= 0:
            late = t - admitted_at
            return {
                "late_s": late,
                "wait_s": admitted_at,
                "allowed_s": max(2.0, 0.05 * admitted_at),
                "polls": polls,
                "eta_rises": eta_rises,
            }
        polls += 1
        eta = math.ceil(rank / rate)
        if last_eta is not None and eta > last_eta * 1.1:
            eta_rises += 1
        last_eta = eta
        t += waiting_poll_ms(rank, rate) / 1000


def total_poll_rate(waiting: int, rate: float) -> float:
    """Polls per second from a full line of `waiting` users, each at its rank's interval."""
    return sum(1000 / waiting_poll_ms(rank, rate) for rank in range(1, waiting + 1))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def run(waiting: int, k: int, n: float, leave: float, sample: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    starts = sorted({1, 50, 500, 2_000, *(rng.randint(1, waiting) for _ in range(sample))})
    users = [simulate_user(start, k, n, leave, rng) for start in starts]
    late = [u["late_s"] for u in users]
    return {
        "waiting": waiting,
        "admit": f"{k} per {n:g}s",
        "leave": leave,
        "users": len(users),
        "total_polls_per_s_full_line": round(total_poll_rate(waiting, k / n)),
        "notice_delay_s": {
            "p50": round(statistics.median(late), 2),
            "p99": round(percentile(late, 0.99), 2),
            "max": round(max(late), 2),
        },
        "over_max_2s_or_5pct": sum(u["late_s"] > u["allowed_s"] for u in users),
        "polls_per_user": {
            "p50": statistics.median(u["polls"] for u in users),
            "max": max(u["polls"] for u in users),
        },
        "eta_rises_over_10pct": sum(u["eta_rises"] for u in users),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    parser.add_argument("--waiting", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100, help="k per tick")
    parser.add_argument("--interval", type=float, default=1.0, help="n seconds per tick")
    parser.add_argument("--leave", type=float, default=0.1, help="share of places that go away")
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()
    result = run(args.waiting, args.batch, args.interval, args.leave, args.sample)
    delay = result["notice_delay_s"]
    print(
        f"{args.waiting:,} waiting, admitting {result['admit']}, {args.leave:.0%} leave: "
        f"{result['total_polls_per_s_full_line']:,} polls/s for the full line"
    )
    print(
        f"notice delay over {result['users']:,} users: p50 {delay['p50']} s, "
        f"p99 {delay['p99']} s, max {delay['max']} s; "
        f"over max(2 s, 5 % of the wait): {result['over_max_2s_or_5pct']}"
    )
    print(
        f"polls per user: p50 {result['polls_per_user']['p50']}, "
        f"max {result['polls_per_user']['max']}; "
        f"ETA rises over 10 % between polls: {result['eta_rises_over_10pct']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
