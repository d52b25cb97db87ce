"""Commands of concurrent requests share one pipeline per event-loop turn; each caller still
gets its own reply or error. On the real embedded Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from matchday.web.redis_batch import RedisBatch
from tests.conftest import uid
from tests.integration.redis_fixture import redis_client  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def test_commands_of_one_turn_go_in_one_pipeline_with_their_own_replies(
    redis: Redis,
) -> None:
    batch = RedisBatch(redis)
    keys = [uid("b") for _ in range(50)]
    assert await asyncio.gather(*(batch.execute("SET", k, i) for i, k in enumerate(keys)))
    assert batch.batches == 1
    got = await asyncio.gather(*(batch.execute("GET", k) for k in keys))
    assert got == [str(i).encode() for i in range(50)] and batch.batches == 2


async def test_a_reply_error_stays_with_its_command(redis: Redis) -> None:
    batch = RedisBatch(redis)
    text, number = uid("t"), uid("n")
    await redis.set(text, "not a number")
    got = await asyncio.gather(
        batch.execute("INCR", number), batch.execute("INCR", text), batch.execute("INCR", number),
        return_exceptions=True,
    )  # fmt: skip
    assert got[0] == 1 and got[2] == 2
    assert isinstance(got[1], ResponseError)


async def test_a_batch_over_the_limit_goes_in_several_turns(redis: Redis) -> None:
    batch = RedisBatch(redis, max_batch=10)
    key = uid("c")
    await asyncio.gather(*(batch.execute("INCR", key) for _ in range(35)))
    assert int(await redis.get(key) or 0) == 35 and batch.batches == 4


async def test_redis_away_fails_every_caller_of_the_batch() -> None:
    gone = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    try:
        batch = RedisBatch(gone)
        got = await asyncio.gather(*(batch.execute("GET", "x") for _ in range(3)),
                                   return_exceptions=True)  # fmt: skip
        assert all(isinstance(g, RedisConnectionError) for g in got), got
    finally:
        await gone.aclose()
