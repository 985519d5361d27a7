"""The poll rule keeps a million waiting browsers cheap and nobody waits long."""

from __future__ import annotations

import random

from bench.sim import simulate_user, total_poll_rate
from frontrow.queue.core import poll_after_ms


def test_far_back_polls_at_most_twice_a_minute() -> None:
    for rank in (1_001, 5_000, 250_000, 1_000_000):
        assert poll_after_ms("WAITING", rank, 0, 0) >= 30_000


def test_nobody_waits_more_than_one_poll_interval_past_admission() -> None:
    rng = random.Random(1)
    for start in (1, 40, 999, 1_000, 1_001, 31_337, 400_000):
        for k, n in ((100, 1.0), (10, 2.0), (1_000, 1.0)):
            user = simulate_user(start, k, n, rng)
            assert 0 <= user["late_s"] <= user["last_interval_s"]


def test_a_million_waiting_cost_about_a_poll_per_30_s_each() -> None:
    rate = total_poll_rate(1_000_000)
    assert 33_000 < rate < 34_000  # ~1e6 / 30 s plus the front of the line
