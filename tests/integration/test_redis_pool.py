"""A replica's Redis client waits briefly for a free connection instead of failing at once.

redis-py's default asyncio pool raises MaxConnectionsError as soon as 100 connections are in
use, fewer than a Serve replica has requests in flight: a burst became 503s with Redis
healthy. matchday.bootstrap builds its client on a BlockingConnectionPool (redis_max_connections,
redis_pool_timeout_s). On the real embedded Redis; nothing of Redis is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from matchday import bootstrap
from matchday.polls.models import OptionIn, PollIn
from matchday.settings import Settings
from matchday.web import polls_api
from tests.conftest import uid
from tests.integration.shop_stack import stack_settings
from tests.logs import messages_of

pytestmark = pytest.mark.integration

# Concurrent commands: past redis-py's default pool of 100. Each needs a new connection whose
# handshake must finish within the 1 s socket timeout; 300 at once did not on a quiet 2-core
# machine (66 timed out, 2026-12-02), which says nothing about the pool under test.
BURST = 150
# The limiter's burst: still past redis-py's default pool, but each of 300 scripts at once
# could outlast the 1 s socket timeout on a busy 2-core machine (a full run once did).
LIMITER_BURST = 120


async def clients(probe: Redis) -> int:
    return len(await probe.client_list())


async def test_a_burst_beyond_redis_py_default_pool_waits_instead_of_failing(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # What the shop's context used to build: the same burst is refused at once.
    plain = Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        got = await asyncio.gather(
            *(plain.incr(uid("old")) for _ in range(BURST)), return_exceptions=True
        )
    finally:
        await plain.aclose()
    assert any(isinstance(g, MaxConnectionsError) for g in got)

    probe = Redis.from_url(settings.redis_url)
    before = await clients(probe)
    ctx = await bootstrap.open_shop(stack_settings(settings))
    try:
        assert isinstance(ctx.redis.connection_pool, BlockingConnectionPool)
        key = uid("burst")
        got = await asyncio.gather(
            *(ctx.redis.incr(key) for _ in range(BURST)), return_exceptions=True
        )
        assert [g for g in got if isinstance(g, BaseException)] == []
        assert int(await ctx.redis.get(key) or 0) == BURST
        assert await clients(probe) > before + 100  # it really had more than 100 open

        # The request path's own Redis users: the rate limiter fails open on a Redis error,
        # so a refused connection would show only as its warning.
        with caplog.at_level(logging.WARNING, logger="matchday.web.ratelimit"):
            await asyncio.gather(*(ctx.limiter.check(uid("shopper")) for _ in range(LIMITER_BURST)))
        assert messages_of(caplog, "matchday.web.ratelimit") == []
    finally:
        await ctx.close()
    # Closing the context closes the pool's connections too.
    deadline = time.monotonic() + 5.0
    while await clients(probe) > before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await clients(probe) <= before
    await probe.aclose()


async def test_an_exhausted_pool_waits_its_timeout_then_is_a_retryable_503(
    settings: Settings,
) -> None:
    s = stack_settings(settings, redis_max_connections=2, redis_pool_timeout_s=0.2)
    ctx = await bootstrap.open_shop(s)
    try:
        polls = ctx.polls
        spec = PollIn(
            question="Which kit?",
            placement="checkout",
            options=[OptionIn(label="Home"), OptionIn(label="Away")],
        )
        poll = await polls.create(spec, uid("req"), None)
        option = poll["options"][0]["option_id"]
        _, token = ctx.identity.new_customer()
        transport = httpx.ASGITransport(app=polls_api.build(ctx), root_path="/api/polls")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://shop.test/api/polls"
        ) as http:

            async def vote() -> httpx.Response:
                return await http.post(
                    f"/{poll['poll_id']}/votes",
                    json={"option_id": option},
                    headers={"Authorization": f"Bearer {token}"},
                )

            held = [ctx.redis.pubsub() for _ in range(2)]  # each keeps a connection, as streams do
            for sub in held:
                await sub.subscribe(uid("channel"))
            try:
                started = time.monotonic()
                with pytest.raises(RedisConnectionError, match="No connection available"):
                    await ctx.redis.get(uid("k"))
                assert 0.15 < time.monotonic() - started < 1.0  # waited, then gave up

                r = await vote()
                assert r.status_code == 503, r.text
                assert r.json()["retryable"] is True
                assert r.headers["Retry-After"] == "1"
            finally:
                for sub in held:
                    await sub.aclose()

            r = await vote()  # a connection is free again: the same vote goes through
            assert r.status_code == 201, r.text
    finally:
        await ctx.close()
