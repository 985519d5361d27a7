"""A store's own Redis connections (store.Direct): the calls of one turn of
the event loop go out as one pipeline, and each caller still gets its own
answer, error or retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.connection import Connection as SyncConnection
from redis.exceptions import ResponseError

from frontrow.store import PIPELINE_MAX, Direct, pack
from tests.conftest import REAL_REDIS, unavailable

ECHO = "return ARGV[1]"
FAIL_ON_X = "if ARGV[1] == 'x' then return redis.error_reply('no x') end return ARGV[1]"
SLOW = "local t = redis.call('TIME') local until_ = t[1] * 1e6 + t[2] + 50000 "  # 50 ms busy
SLOW += "repeat local n = redis.call('TIME') until n[1] * 1e6 + n[2] >= until_ return ARGV[1]"


class Script:
    def __init__(self, source: str) -> None:
        self.script = source
        self.sha = ""


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    if not REAL_REDIS:
        unavailable("FRONTROW_TEST_REDIS_URL not set")
    client = aioredis.Redis.from_url(REAL_REDIS, socket_timeout=2.0, decode_responses=True)
    yield client
    await client.aclose()


async def loaded(redis: Any, source: str) -> Script:
    script = Script(source)
    script.sha = await redis.script_load(source)
    return script


def call(direct: Direct, script: Script, arg: str) -> Any:
    return direct.call(pack(("EVALSHA", script.sha, 0, arg)), script)


@pytest.mark.parametrize(
    "command",
    [
        ("EVALSHA", "ab" * 20, 2, "fr:{c:10}:wait", "fr:{c:10}:seen", "user-1", 0, 300000, 1.5, ""),
        ("EVALSHA", "ab" * 20, 0, "K\u00f6ln", "\uc11c\uc6b8 \u2603"),  # lengths in bytes
        ("SET", b"raw\r\n\x00bytes", -7, 0.25),
    ],
)
def test_a_command_is_packed_as_redis_py_packs_it(command: tuple[Any, ...]) -> None:
    expected = SyncConnection().pack_command(*command)
    assert pack(command) == b"".join(expected)


async def test_one_turn_s_calls_go_out_together_each_with_its_answer(redis: Any) -> None:
    direct = Direct(redis, 8, 1.0)
    echo = await loaded(redis, ECHO)
    answers = await asyncio.gather(*(call(direct, echo, f"a{i}") for i in range(200)))
    assert answers == [f"a{i}" for i in range(200)]
    # pipelines of at most PIPELINE_MAX on as few connections as there were pipelines
    assert len(direct._idle) <= -(-200 // PIPELINE_MAX)
    await direct.close()


async def test_an_error_answers_only_its_own_caller(redis: Any) -> None:
    direct = Direct(redis, 8, 1.0)
    script = await loaded(redis, FAIL_ON_X)
    answers = await asyncio.gather(
        *(call(direct, script, arg) for arg in ("a", "x", "b", "x", "c")), return_exceptions=True
    )
    assert answers[0::2] == ["a", "b", "c"]
    assert all(isinstance(a, ResponseError) and "no x" in str(a) for a in answers[1::2])
    assert answers[1] is not answers[3]  # each caller raises its own
    assert await call(direct, script, "d") == "d"  # the connection stayed in step
    await direct.close()


async def test_a_flushed_script_is_loaded_again_for_a_whole_pipeline(redis: Any) -> None:
    direct = Direct(redis, 8, 1.0)
    echo = await loaded(redis, ECHO)
    await redis.script_flush()
    answers = await asyncio.gather(*(call(direct, echo, f"b{i}") for i in range(10)))
    assert answers == [f"b{i}" for i in range(10)]
    await direct.close()


async def test_a_caller_that_goes_away_leaves_the_others_their_answers(redis: Any) -> None:
    direct = Direct(redis, 1, 1.0)  # one connection: every call shares it
    slow, echo = await loaded(redis, SLOW), await loaded(redis, ECHO)
    first = asyncio.ensure_future(call(direct, slow, "gone"))
    others = [asyncio.ensure_future(call(direct, echo, f"c{i}")) for i in range(5)]
    await asyncio.sleep(0.01)  # in flight
    first.cancel()
    assert await asyncio.gather(*others) == [f"c{i}" for i in range(5)]
    # the next pipeline reads its own replies, not the abandoned one's
    assert await call(direct, echo, "after") == "after"
    assert len(direct._idle) == 1
    await direct.close()


async def test_killed_connections_fail_their_calls_once_then_a_fresh_one_answers(
    redis: Any,
) -> None:
    direct = Direct(redis, 8, 1.0)
    echo = await loaded(redis, ECHO)
    assert await asyncio.gather(*(call(direct, echo, "d") for _ in range(3))) == ["d"] * 3
    await redis.client_kill_filter(_type="normal", skipme=True)
    assert await asyncio.gather(*(call(direct, echo, f"e{i}") for i in range(3))) == [
        "e0",
        "e1",
        "e2",
    ]
    await direct.close()


async def test_a_pipeline_cancelled_while_it_waits_leaves_no_caller_hanging(redis: Any) -> None:
    direct = Direct(redis, 1, 1.0)  # one connection, held by the slow call
    slow, echo = await loaded(redis, SLOW), await loaded(redis, ECHO)
    first = asyncio.ensure_future(call(direct, slow, "slow"))
    await asyncio.sleep(0.01)
    (holding,) = direct._running
    second = asyncio.ensure_future(call(direct, echo, "waits"))
    await asyncio.sleep(0.001)
    (waiting,) = direct._running - {holding}
    waiting.cancel()  # as a closing loop does: the caller hears of it and tries again
    assert await asyncio.wait_for(second, 2) == "waits"
    assert await first == "slow"
    await direct.close()
