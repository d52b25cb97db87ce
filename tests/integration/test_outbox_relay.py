"""Committed changes reach the Redis Stream, in order, even across a Redis restart."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from matchday.embedded import EmbeddedPostgres, EmbeddedRedis
from matchday.events.relay import _RELAY_LOCK, OutboxRelay
from matchday.inventory.commands import Reserve, Restock, SetOnHand
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository
from tests.background import stop
from tests.conftest import uid
from tests.integration.test_pool_outage import kill_postmaster, start_again

pytestmark = pytest.mark.integration


async def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_outbox_reaches_the_stream_after_a_redis_restart(
    repo: InventoryRepository, own_redis: EmbeddedRedis
) -> None:
    router = Router(1)
    sku = uid("SKU")
    await repo.create_skus([SkuRow(sku, 100, 0, 0)], router)
    core = ShardCore(0, router, repo)
    await core.start()
    stream, avail = uid("stream"), uid("avail")
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=2, socket_connect_timeout=2)
    relay = OutboxRelay(repo.pool, client, stream=stream, availability_key=avail)
    task = asyncio.create_task(relay.run(idle_s=0.02, max_backoff_s=0.2))
    try:
        await core.apply([Reserve(uid("rq"), sku, 1, "c", "u", 60)])
        await wait_for(lambda: _mine(client, stream, sku, 1))

        await asyncio.to_thread(own_redis.stop)
        for n in range(5):  # commits go on while Redis is down; the outbox holds them
            await core.apply([Reserve(uid("rq"), sku, 2, "c", f"u{n}", 60)])
        await core.apply([Restock(uid("rq"), sku, 10)])
        await asyncio.sleep(0.3)
        assert relay.failures > 0

        await asyncio.to_thread(own_redis.start)
        await wait_for(lambda: _mine(client, stream, sku, 7))
        entries = await client.xrange(stream)
        mine = [e for _, e in entries if e[b"sku"] == sku.encode()]
        ids = [int(e[b"outbox_id"]) for e in mine]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, per SKU
        reserved = [int(e[b"reserved"]) for e in mine]
        assert reserved == [1, 3, 5, 7, 9, 11, 11]
        assert json.loads(mine[-1][b"events"])[0]["type"] == "restocked"
        assert int(await client.hget(avail, sku)) == 110 - 11
    finally:
        await stop(task)
        await client.aclose()


async def _mine(client: aioredis.Redis, stream: str, sku: str, n: int) -> bool:
    """At least n entries of this SKU (other tests' rows share the outbox)."""
    try:
        entries = await client.xrange(stream)
    except Exception:  # Redis still down
        return False
    return sum(1 for _, e in entries if e[b"sku"] == sku.encode()) >= n


@pytest.mark.parametrize("carts", ["stored", "before-019"])
async def test_each_batch_is_one_outbox_row_and_its_events_are_derived_from_the_journal(
    repo: InventoryRepository, settings: Settings, carts: str
) -> None:
    """The carts come from the batch's own array, or for a batch written before 019 (which
    has none) from the reservations: the same events either way."""
    router = Router(1)
    sku = uid("SKU")
    await repo.create_skus([SkuRow(sku, 5, 0, 0, low_stock_threshold=2)], router)
    core = ShardCore(0, router, repo)
    await core.start()
    stream, avail = uid("stream"), uid("avail")
    client = aioredis.Redis.from_url(settings.redis_url)
    relay = OutboxRelay(repo.pool, client, stream=stream, availability_key=avail)
    try:
        held = await core.apply([Reserve(uid("rq"), sku, 2, "cart-a", "u", 60),
                                 Reserve(uid("rq"), sku, 2, "cart-b", "u", 60)])  # fmt: skip
        rid = held[1].unwrap().reservation_id  # type: ignore[union-attr]
        await core.apply([SetOnHand(uid("rq"), sku, 2)])  # revokes cart-b's hold
        if carts == "before-019":
            async with repo.pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE inventory_batches SET carts = NULL WHERE id IN"
                    " (SELECT batch FROM inventory_outbox WHERE %s = ANY(skus))",
                    (sku,),
                )
                assert cur.rowcount == 2
        while await relay.run_once():
            pass
        mine = [e for _, e in await client.xrange(stream) if e[b"sku"] == sku.encode()]
        assert len(mine) == 2  # one per batch that touched the SKU
        first = json.loads(mine[0][b"events"])
        assert [(e["type"], e.get("cart_id"), e["available"]) for e in first] == [
            ("reserved", "cart-a", 3),
            ("reserved", "cart-b", 1),
            ("low_stock", None, 1),
        ]
        assert first[-1]["threshold"] == 2
        second = json.loads(mine[1][b"events"])
        assert [(e["type"], e.get("reservation_id"), e.get("cart_id")) for e in second] == [
            ("revoked", rid, "cart-b"),
            ("stock_set", None, None),
            ("sold_out", None, None),
        ]
        assert all(e["available"] == 0 for e in second)  # each as the count left it
        assert int(await client.hget(avail, sku)) == 0
    finally:
        await client.aclose()


async def test_a_crash_between_the_stream_and_the_delete_sends_the_rows_again(
    repo: InventoryRepository, settings: Settings
) -> None:
    router = Router(1)
    sku = uid("SKU")
    await repo.create_skus([SkuRow(sku, 50, 0, 0)], router)
    core = ShardCore(0, router, repo)
    await core.start()
    stream, avail = uid("stream"), uid("avail")
    client = aioredis.Redis.from_url(settings.redis_url)
    relay = OutboxRelay(repo.pool, client, stream=stream, availability_key=avail)
    publish = relay._publish
    crashes = [1]

    async def crash_after_publishing(rows) -> None:  # type: ignore[no-untyped-def]
        await publish(rows)
        if crashes:
            crashes.pop()
            raise ConnectionError("relay died before its delete committed")

    relay._publish = crash_after_publishing  # type: ignore[method-assign]
    try:
        for n in range(3):
            await core.apply([Reserve(uid("rq"), sku, 1, "c", f"u{n}", 60)])
        with pytest.raises(ConnectionError):
            await relay.run_once()
        assert await relay.run_once() >= 3  # the same rows, again
        while await relay.run_once():
            pass
        mine = [e for _, e in await client.xrange(stream) if e[b"sku"] == sku.encode()]
        keys = [(int(e[b"outbox_id"]), e[b"events"]) for e in mine]
        assert len(keys) == 6 and keys[:3] == keys[3:]  # each twice: consumers de-duplicate
        assert [int(e[b"reserved"]) for e in mine[3:]] == [1, 2, 3]
    finally:
        await client.aclose()


async def test_a_relay_without_the_lock_publishes_nothing(
    repo: InventoryRepository, settings: Settings
) -> None:
    router = Router(1)
    sku = uid("SKU")
    await repo.create_skus([SkuRow(sku, 5, 0, 0)], router)
    core = ShardCore(0, router, repo)
    await core.start()
    stream, avail = uid("stream"), uid("avail")
    client = aioredis.Redis.from_url(settings.redis_url)
    relay = OutboxRelay(repo.pool, client, stream=stream, availability_key=avail)
    try:
        await relay.run_once()  # past the rows from before 010, if any
        await core.apply([Reserve(uid("rq"), sku, 1, "c", "u", 60)])
        async with repo.pool.connection() as other, other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock(%s)", (_RELAY_LOCK,))
            assert await relay.run_once() == 0
            assert await client.xlen(stream) == 0
        assert await relay.run_once() >= 1
        assert await _mine(client, stream, sku, 1)
    finally:
        await client.aclose()


async def test_stream_entries_carry_the_text_xadd_sent_for_every_field(
    repo: InventoryRepository, settings: Settings
) -> None:
    router = Router(1)
    sku = uid("SKU-ü☃😀")  # the stream holds SKUs as UTF-8, as redis-py encoded them
    await repo.create_skus([SkuRow(sku, 7, 0, 0)], router)
    core = ShardCore(0, router, repo)
    await core.start()
    stream, avail = uid("stream"), uid("avail")
    client = aioredis.Redis.from_url(settings.redis_url)
    relay = OutboxRelay(repo.pool, client, stream=stream, availability_key=avail)
    try:
        (held,) = await core.apply([Reserve(uid("rq"), sku, 3, "cart-u", "u", 60)])
        assert held.error is None, held.error
        while await relay.run_once():
            pass
        (entry,) = [e for _, e in await client.xrange(stream) if e[b"sku"] == sku.encode()]
        assert list(entry) == [b"outbox_id", b"sku", b"events", b"on_hand", b"reserved",
                               b"sold", b"available", b"at"]  # fmt: skip
        assert (entry[b"on_hand"], entry[b"reserved"], entry[b"sold"]) == (b"7", b"3", b"0")
        assert entry[b"available"] == b"4" and await client.hget(avail, sku) == b"4"
        assert repr(float(entry[b"at"])).encode() == entry[b"at"]  # full precision
        [event] = json.loads(entry[b"events"])
        assert (event["type"], event["cart_id"], event["sku"]) == ("reserved", "cart-u", sku)
        assert entry[b"events"].isascii()  # json.dumps' escapes, as before
    finally:
        await client.aclose()


async def test_the_relay_carries_on_after_postgres_dies_mid_poll(
    own_postgres: EmbeddedPostgres, settings: Settings
) -> None:
    """A connection that dies under the relay (left in autocommit mode by the run) is not
    lent again; the relay's next runs publish what was committed before and after."""
    shard_pool = make_pool(own_postgres.url, max_size=2, check=False)
    relay_pool = make_pool(own_postgres.url, min_size=1, max_size=2, check=False)
    await shard_pool.open()
    await relay_pool.open()
    repo = InventoryRepository(shard_pool)
    router = Router(1)
    sku = uid("SKU")
    stream, avail = uid("stream"), uid("avail")
    client = aioredis.Redis.from_url(settings.redis_url)
    relay = OutboxRelay(relay_pool, client, stream=stream, availability_key=avail)
    try:
        await repo.create_skus([SkuRow(sku, 10, 0, 0)], router)
        core = ShardCore(0, router, repo)
        await core.start()
        await core.apply([Reserve(uid("rq"), sku, 1, "c", "u0", 60)])
        assert await relay.run_once() >= 1

        await core.apply([Reserve(uid("rq"), sku, 1, "c", "u1", 60)])
        await asyncio.to_thread(kill_postmaster, own_postgres)
        with pytest.raises(Exception):  # noqa: B017 - whichever error the dead socket gives
            await relay.run_once()
        await asyncio.to_thread(start_again, own_postgres)

        async def published() -> bool:
            try:
                await relay.run_once()
            except Exception:  # the pool still reconnecting
                return False
            return await _mine(client, stream, sku, 2)

        await wait_for(published)
        mine = [e for _, e in await client.xrange(stream) if e[b"sku"] == sku.encode()]
        assert [int(e[b"reserved"]) for e in mine] == [1, 2]
        async with relay_pool.connection() as conn:
            assert not conn.autocommit  # a live connection goes back as it came
    finally:
        await client.aclose()
        await relay_pool.close()
        await shard_pool.close()
