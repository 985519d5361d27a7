"""The poll rule keeps a million waiting browsers cheap and nobody waits long."""

from __future__ import annotations

import random

from bench.sim import run, simulate_user, total_poll_rate
from frontrow.queue.pollrule import WAIT_POLL_MAX_MS, waiting_poll_ms


def test_the_interval_is_half_the_expected_wait_within_bounds() -> None:
    assert waiting_poll_ms(1, 100) == 1_000  # the front asks every second
    assert waiting_poll_ms(1_000, 100) == 5_000  # 10 s away: in 5 s
    assert waiting_poll_ms(10_000, 100) == 50_000
    assert waiting_poll_ms(40_000, 100) == WAIT_POLL_MAX_MS == 60_000  # 400 s away: a minute
    assert waiting_poll_ms(1_000_000, 100) == WAIT_POLL_MAX_MS
    # admission paused: the front still asks often, the back rarely
    assert waiting_poll_ms(5, 0) == 1_000 and waiting_poll_ms(1_000, 0) == 30_000
    assert waiting_poll_ms(100_000, 0) == WAIT_POLL_MAX_MS


def test_a_million_waiting_cost_under_twenty_thousand_polls_a_second() -> None:
    # was 33,400 at two a minute each; 4,474 with a 5-minute ceiling, which let pages sleep
    assert total_poll_rate(1_000_000, 100.0) < 20_000


def test_no_browser_is_told_to_wait_more_than_a_minute() -> None:
    for place in (1, 1_000, 100_000, 10_000_000):
        for rate in (0.0, 0.01, 1.0, 100.0):
            assert waiting_poll_ms(place, rate) <= 60_000


def test_nobody_learns_of_admission_later_than_2_s_or_5_percent_of_the_wait() -> None:
    rng = random.Random(1)
    for start in (1, 40, 999, 1_000, 1_001, 31_337, 400_000):
        for k, n in ((100, 1.0), (10, 2.0), (1_000, 1.0)):
            for leave in (0.0, 0.3):
                user = simulate_user(start, k, n, leave, rng)
                assert 0 <= user["late_s"] <= user["allowed_s"], (start, k, n, leave, user)
                assert user["eta_rises"] == 0


def test_the_simulated_line_meets_every_goal() -> None:
    result = run(1_000_000, 100, 1.0, 0.1, sample=300)
    assert result["over_max_2s_or_5pct"] == 0 and result["eta_rises_over_10pct"] == 0
    assert result["notice_delay_s"]["max"] <= 2.0
