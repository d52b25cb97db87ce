"""The rate limiter's local leases against one real Redis: two limiter instances stand for two
replicas serving the same client. The bucket is never overdrawn beyond the stated tolerance,
and the Redis round trips per request are gone."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from matchday.domain.errors import RateLimited
from matchday.web.ratelimit import RateLimiter
from tests.conftest import uid
from tests.integration.redis_fixture import redis_client  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def admitted(limiter: RateLimiter, client: str) -> bool:
    try:
        await limiter.check(client)
    except RateLimited:
        return False
    return True


async def test_a_client_spread_over_two_replicas_gets_one_budget_within_the_tolerance(
    redis: Redis,
) -> None:
    prefix = uid("rl")
    per_s, burst = 4.0, 40
    a = RateLimiter(redis, per_s=per_s, burst=burst, prefix=prefix, lease=8, lease_s=0.5)
    b = RateLimiter(redis, per_s=per_s, burst=burst, prefix=prefix, lease=8, lease_s=0.5)
    started = time.monotonic()
    ok = [await admitted((a, b)[n % 2], "c:fan") for n in range(400)]
    took = time.monotonic() - started
    # Never more than the one bucket allows, leases included (ratelimit.py's docstring) ...
    assert sum(ok) <= burst + per_s * took + 2 * (8 - 1)
    # ... and refused early by at most the other replica's unspent lease.
    assert sum(ok) >= burst - (8 - 1)
    assert not any(ok[-20:])  # the budget is spent: both replicas refuse


async def test_the_limit_holds_across_replicas_over_time(redis: Redis) -> None:
    prefix = uid("rl")
    per_s, burst = 20.0, 10
    replicas = [RateLimiter(redis, per_s=per_s, burst=burst, prefix=prefix) for _ in range(3)]
    lease = replicas[0].lease
    assert lease == 5  # min(burst // 2, per_s * LEASE_EARN_S)
    started = time.monotonic()
    count = 0
    n = 0
    while time.monotonic() - started < 1.5:
        count += await admitted(replicas[n % 3], "c:spread")
        n += 1
    took = time.monotonic() - started
    assert count <= burst + per_s * took + 3 * (lease - 1)
    assert count >= burst + per_s * took * 0.25  # and much of the refill reached the client
    assert n > count  # it was refused in between


async def test_leases_drawn_before_a_window_add_at_most_one_each_to_it(redis: Redis) -> None:
    prefix = uid("rl")
    per_s, burst = 20.0, 30
    replicas = [RateLimiter(redis, per_s=per_s, burst=burst, prefix=prefix) for _ in range(3)]
    lease = replicas[0].lease
    assert lease == 10
    for r in replicas:  # each replica holds a lease, one token of it spent
        assert await admitted(r, "c:stash")
    await asyncio.sleep(burst / per_s + 0.1)  # the bucket itself is full again
    started = time.monotonic()
    count = 0
    n = 0
    while time.monotonic() - started < 0.5:
        count += await admitted(replicas[n % 3], "c:stash")
        n += 1
    took = time.monotonic() - started
    assert count <= burst + per_s * took + 3 * (lease - 1)  # the stated tolerance ...
    assert count >= burst + 3 * (lease - 1)  # ... is what the stashes really add
    assert n > count


async def test_an_ordinary_shopper_pays_a_redis_trip_per_lease_not_per_add(redis: Redis) -> None:
    now = [0.0]
    limiter = RateLimiter(redis, per_s=20.0, burst=40, prefix=uid("rl"), clock=lambda: now[0])
    assert limiter.lease == 10
    before = await evalsha_calls(redis)
    for _ in range(30):  # an add every 2 s for a minute: no lease runs out
        assert await admitted(limiter, "c:shopper")
        now[0] += 2.0
    assert await evalsha_calls(redis) - before == 3
    now[0] += limiter.lease_s  # the last lease has run out: a trip, and a new lease
    assert await admitted(limiter, "c:shopper")
    assert await evalsha_calls(redis) - before == 4


async def test_requests_within_a_lease_and_refused_ones_cost_no_redis_trip(redis: Redis) -> None:
    prefix = uid("rl")
    limiter = RateLimiter(redis, per_s=1.0, burst=20, prefix=prefix, lease=10, lease_s=30.0)
    before = await evalsha_calls(redis)
    results = [await admitted(limiter, "c:busy") for _ in range(200)]
    trips = await evalsha_calls(redis) - before
    assert sum(results) == 20
    assert trips <= 4, trips  # two leases of 10, one refusal (remembered), maybe a partial
    with pytest.raises(RateLimited) as refused:
        await limiter.check("c:busy")
    assert refused.value.retry_after_s >= 1


async def test_each_client_has_its_own_bucket_and_a_small_one_is_not_leased(redis: Redis) -> None:
    prefix = uid("rl")
    votes = RateLimiter(redis, per_s=2.0, burst=10, prefix=prefix)
    assert votes.lease == 1  # 2/s earns one token per lease period: nothing lost to expiry
    assert [await admitted(votes, "c:one") for _ in range(11)].count(True) == 10
    assert await admitted(votes, "c:two")


async def test_redis_away_lets_requests_through(redis: Redis) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    try:
        limiter = RateLimiter(gone, per_s=1.0, burst=1)
        assert all([await admitted(limiter, "c:x") for _ in range(5)])
    finally:
        await gone.aclose()
