"""Polls when Redis fails: a vote is a clear 503 (reads fall back to PostgreSQL), tallies are
rebuilt from PostgreSQL after Redis lost its data, and the drain stores a vote once even
when a dead consumer's entries are delivered again. Each test has its own Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from matchday.embedded import EmbeddedRedis
from matchday.polls.drain import GROUP, VoteDrain
from matchday.settings import Settings
from matchday.storage.polls_repo import PollsRepository
from tests.integration.test_polls_api import Polls, open_polls

pytestmark = pytest.mark.integration


@pytest.fixture
async def polls(settings: Settings, own_redis: EmbeddedRedis) -> AsyncIterator[Polls]:
    async with open_polls(settings, redis_url=own_redis.url) as p:
        yield p


async def test_a_redis_outage_is_a_503_for_votes_and_reads_fall_back(
    polls: Polls, own_redis: EmbeddedRedis
) -> None:
    pid = (await polls.create())["poll_id"]
    fan = await polls.shopper()
    assert (await polls.vote(pid, "o1", fan)).status_code == 201
    await polls.drained()
    own_redis.stop()
    r = await polls.vote(pid, "o2", await polls.shopper())
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "unavailable" and r.json()["retryable"] is True
    assert r.headers["Retry-After"] == "1"
    # Results and the shopper's own vote still answer, from PostgreSQL.
    seen = await polls.http.get(f"/{pid}", headers=fan)
    assert seen.status_code == 200, seen.text
    assert seen.json()["total"] == 1 and seen.json()["my_vote"] == "o1"


async def test_tallies_are_rebuilt_from_postgresql_after_redis_loses_its_data(
    polls: Polls,
) -> None:
    pid = (await polls.create())["poll_id"]
    fans = [await polls.shopper() for _ in range(6)]
    for n, fan in enumerate(fans):
        assert (await polls.vote(pid, f"o{1 + n % 2}", fan)).status_code == 201
    before = (await polls.http.get(f"/{pid}")).json()["results"]
    await polls.drained()
    await polls.admin.stack.ctx.redis.flushall()

    after = (await polls.http.get(f"/{pid}")).json()
    assert after["results"] == before == {"o1": 3, "o2": 3, "o3": 0}
    # The rebuilt voters still bind: no second vote, and a repeat is not counted again.
    again = await polls.vote(pid, "o3", fans[0])
    assert again.status_code == 409 and again.json()["code"] == "already_voted"
    same = await polls.vote(pid, "o1", fans[0])
    assert same.status_code == 200 and same.json()["total"] == 6
    # A new vote after the rebuild is counted and drained (the group is made again).
    assert (await polls.vote(pid, "o3", await polls.shopper())).status_code == 201
    await polls.drained()
    assert await polls.service.repo.tally(pid) == {"o1": 3, "o2": 3, "o3": 1}


async def test_a_closed_poll_rebuilt_from_postgresql_stays_closed(polls: Polls) -> None:
    pid = (await polls.create())["poll_id"]
    await polls.admin.http.post(f"/polls/{pid}/close", headers=polls.session)
    await polls.admin.stack.ctx.redis.flushall()
    polls.service._polls.clear()  # as another replica that never saw the close
    r = await polls.vote(pid, "o1", await polls.shopper())
    assert r.status_code == 409 and r.json()["code"] == "poll_closed"


async def test_entries_of_a_dead_consumer_are_claimed_and_stored_once(polls: Polls) -> None:
    pid = (await polls.create())["poll_id"]
    for _ in range(3):
        assert (await polls.vote(pid, "o2", await polls.shopper())).status_code == 201
    ctx = polls.admin.stack.ctx
    stream = polls.service.tally.stream
    repo = PollsRepository(ctx.pool)
    dead = VoteDrain(ctx.redis, repo, stream, consumer="dead")
    await dead._ensure_group()
    taken = await ctx.redis.xreadgroup(GROUP, "dead", {stream: ">"}, count=10)
    assert len(taken[0][1]) == 3  # read, never acknowledged: it "died"
    await repo.store_votes([(pid, "u_half", "o1", 1.0)])  # and one it had already stored
    heir = VoteDrain(ctx.redis, repo, stream, consumer="heir", claim_idle_ms=0)
    assert await heir.drain_once(block_ms=10) == 3
    assert await repo.tally(pid) == {"o1": 1, "o2": 3}
    assert await heir.drain_once(block_ms=10) == 0
    assert await ctx.redis.xlen(stream) == 0  # acknowledged entries are deleted


async def test_a_steady_trickle_of_votes_is_stored_in_batches_not_a_transaction_each(
    polls: Polls,
) -> None:
    """Without the linger, XREADGROUP returns at the first entry and every vote became its own
    PostgreSQL transaction (bench/polls.py: 1.0 vote per commit at 300 votes/s)."""
    pid = (await polls.create())["poll_id"]
    ctx = polls.admin.stack.ctx
    repo = PollsRepository(ctx.pool)
    drain = VoteDrain(ctx.redis, repo, polls.service.tally.stream, linger_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(drain.run(stop))
    try:
        fans = [await polls.shopper() for _ in range(21)]
        for fan in fans:  # a trickle, as votes arrive from a live page
            assert (await polls.vote(pid, "o1", fan)).status_code == 201
            await asyncio.sleep(0.03)
        async with asyncio.timeout(10):
            while drain.stored < 21:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert await repo.tally(pid) == {"o1": 21}
    async with ctx.pool.connection() as conn:
        # now() is the transaction's start: one stored_at per INSERT transaction.
        row = await (
            await conn.execute(
                "SELECT count(DISTINCT stored_at) FROM poll_votes WHERE poll_id = %s", (pid,)
            )
        ).fetchone()
    assert row is not None and row[0] <= 6, f"{row[0]} transactions for 21 votes"
