"""The waiting room over the real stores: drops in PostgreSQL, the queue's Lua scripts in
Redis, stock levels from the engine's counters; and a Redis restart mid-drop, with its data
kept (AOF) and lost."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from matchday.domain.errors import Conflict, InvalidInput, Unavailable
from matchday.embedded import EmbeddedRedis
from matchday.inventory.records import SkuRow
from matchday.settings import Settings
from matchday.storage.db import make_pool
from matchday.storage.drops_repo import DropsRepository, InventoryLevels
from matchday.storage.inventory_repo import InventoryRepository
from matchday.waitingroom.models import DropIn
from matchday.waitingroom.redis_store import RedisQueue
from matchday.waitingroom.service import DropAdmin, WaitingRoom
from matchday.waitingroom.tokens import Tokens
from tests.conftest import uid
from tests.fakes import ManualClock
from tests.integration.shop_stack import ROUTER

pytestmark = pytest.mark.integration
T = TypeVar("T")


@dataclass
class Parts:
    pool: AsyncConnectionPool
    inventory: InventoryRepository
    drops: DropsRepository
    clock: ManualClock
    tokens: Tokens

    def room(self, queue: RedisQueue) -> WaitingRoom:
        levels = InventoryLevels(self.pool)
        return WaitingRoom(
            self.drops, queue, levels, self.tokens, self.clock, monotonic=self.clock.now
        )

    def admin(self, queue: RedisQueue) -> DropAdmin:
        return DropAdmin(self.drops, queue, InventoryLevels(self.pool), self.clock)

    async def skus(self, *stock: int) -> list[str]:
        skus = [uid("DROP").upper() for _ in stock]
        await self.inventory.create_skus(
            [SkuRow(s, n, 0, 0) for s, n in zip(skus, stock, strict=True)], ROUTER
        )
        return skus


@pytest.fixture
async def parts(settings: Settings) -> AsyncIterator[Parts]:
    pool = make_pool(settings.database_url, max_size=4)
    await pool.open()
    try:
        yield Parts(
            pool, InventoryRepository(pool), DropsRepository(pool), ManualClock(),
            Tokens(secrets.token_hex(24)),
        )  # fmt: skip
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def redis_at(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url, socket_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


def spec(skus: list[str], **kw: object) -> DropIn:
    return DropIn.model_validate({"name": "Final", "skus": skus, "pow_bits": 0, **kw})


async def test_drops_are_durable_one_live_drop_per_sku_and_closing_frees_them(
    parts: Parts, settings: Settings
) -> None:
    async with redis_at(settings.redis_url) as redis:
        admin = parts.admin(RedisQueue(redis, prefix=uid("wr")))
        a, b = await parts.skus(5, 3)
        rid = uid("rid")
        drop = await admin.create(spec([a], rate_per_s=2.5, opens_at=1_900_000_000.0), rid)
        assert await admin.create(spec([a, b]), rid) == drop  # the same request, the same drop
        assert (drop.state, drop.rate_per_s, drop.opens_at) == ("scheduled", 2.5, 1.9e9)
        with pytest.raises(Conflict):
            await admin.create(spec([b, a]), uid("rid"))
        with pytest.raises(InvalidInput):
            await admin.create(spec(["NO-SUCH-SKU-" + uid().upper()]), uid("rid"))
        assert (await parts.drops.live_skus())[a] == drop.drop_id
        assert b not in await parts.drops.live_skus()  # the refused drop bound nothing
        await admin.open(drop.drop_id)
        assert (await admin.set_rate(drop.drop_id, 7.0)).rate_per_s == 7.0
        await admin.close(drop.drop_id)
        assert a not in await parts.drops.live_skus()
        with pytest.raises(Conflict):
            await admin.set_rate(drop.drop_id, 1.0)
        assert (await parts.drops.get(drop.drop_id)) == await admin.get(drop.drop_id)
        assert drop.drop_id in {d.drop_id for d in await parts.drops.recent(50)}
        await admin.create(spec([a, b]), uid("rid"))  # closed, its SKU is free again


async def test_two_drops_racing_for_one_sku_exactly_one_wins(
    parts: Parts, settings: Settings
) -> None:
    async with redis_at(settings.redis_url) as redis:
        admin = parts.admin(RedisQueue(redis, prefix=uid("wr")))
        (sku,) = await parts.skus(1)
        results = await asyncio.gather(
            *(admin.create(spec([sku]), uid("rid")) for _ in range(2)), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "Drop"]


async def test_fans_are_admitted_in_order_within_the_stock_and_told_sold_out(
    parts: Parts, settings: Settings
) -> None:
    async with redis_at(settings.redis_url) as redis:
        queue = RedisQueue(redis, prefix=uid("wr"))
        room, admin = parts.room(queue), parts.admin(queue)
        skus = await parts.skus(2, 1)
        drop = await admin.create(spec(skus, rate_per_s=2.0, address_limit=3), uid("rid"))
        await admin.open(drop.drop_id)
        tickets = {}
        for i in range(8):
            status = await room.join(drop.drop_id, f"fan{i}", "10.0.0.1")
            tickets[f"fan{i}"] = status.ticket
            parts.clock.advance(0.001)
        assert [(await room.status(drop.drop_id, tickets[f"fan{i}"])).position
                for i in range(8)] == [1, 2, 3, 4, 5, 6, 7, 8]  # fmt: skip
        stats = await admin.stats(drop.drop_id)
        queued = stats["queue"]
        assert (stats["available"], queued["behind"], queued["tickets"]) == (3, 5, 8)
        parts.clock.advance(1.0)
        first = await room.claim(drop.drop_id, tickets["fan0"], "fan0")
        parts.tokens.check_pass(first["pass"], drop.drop_id, "fan0", parts.clock.now())
        await room.claim(drop.drop_id, tickets["fan1"], "fan1")
        parts.clock.advance(1.0)  # two more seconds of credit, one unit of headroom left
        states = [(await room.status(drop.drop_id, t)).state for t in tickets.values()]
        assert states == ["admitted"] * 3 + ["waiting"] * 5
        await room.spent(drop.drop_id, "fan0")
        assert (await admin.stats(drop.drop_id))["queue"]["pending"] == 2
        # Every unit sold or held (the engine's counters): the rest is told at once.
        async with parts.pool.connection() as conn:
            await conn.execute(
                "UPDATE inventory SET reserved = on_hand WHERE sku = ANY(%s)", (skus,)
            )
        parts.clock.advance(1.0)
        last = await room.status(drop.drop_id, tickets["fan7"])
        assert (last.state, last.held, last.position) == ("sold_out", 3, 5)


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """The first command after a restart may meet the old connection: a 503 a client retries."""
    for _ in range(20):
        try:
            return await call()
        except Unavailable:
            await asyncio.sleep(0.1)
    return await call()


@pytest.mark.parametrize("keeps_data", [True, False], ids=["aof-kept", "data-lost"])
async def test_a_redis_restart_mid_drop_keeps_or_rebuilds_the_order(
    parts: Parts, own_redis: EmbeddedRedis, keeps_data: bool
) -> None:
    async with redis_at(own_redis.url) as redis:
        queue = RedisQueue(redis)
        room, admin = parts.room(queue), parts.admin(queue)
        skus = await parts.skus(100)
        drop = await admin.create(spec(skus, rate_per_s=1.0), uid("rid"))
        await admin.open(drop.drop_id)
        tickets = []
        for i in range(6):
            tickets.append((await room.join(drop.drop_id, f"fan{i}", f"10.0.{i}.1")).ticket)
            parts.clock.advance(0.001)
        parts.clock.advance(1.0)
        granted = await room.claim(drop.drop_id, tickets[0], "fan0")
        await asyncio.sleep(1.1)  # appendfsync everysec
        own_redis.stop()
        if not keeps_data:
            for f in own_redis.data_dir.glob("appendonly*"):
                f.unlink()
        own_redis.start()
        late = await retrying(lambda: room.join(drop.drop_id, "late", "10.9.9.9"))
        # fan4, then fan2 come back first: whichever way, they stand before "late".
        positions = [
            (await retrying(lambda t=t: room.status(drop.drop_id, t))).position
            for t in (tickets[4], tickets[2], late.ticket)
        ]
        assert positions == ([4, 2, 6] if keeps_data else [1, 1, 3])
        parts.clock.advance(1.0)
        await room.status(drop.drop_id, late.ticket)
        stats = await admin.stats(drop.drop_id)
        assert stats["queue"]["admitted"] == (2 if keeps_data else 1)
        next_in = tickets[1 if keeps_data else 2]
        assert (await room.status(drop.drop_id, next_in)).state == "admitted"
        # The pass of the fan admitted before the restart needs no Redis at all.
        parts.tokens.check_pass(granted["pass"], drop.drop_id, "fan0", parts.clock.now())
