"""The engine as deployed: shard actors on Ray, clients coalescing calls, real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from actors.client import connect_client, start_inventory, stop_inventory
from actors.pinning import pin_sku
from matchday.domain.errors import AllocationExceeded, OutOfStock
from matchday.inventory.client import InventoryClient
from matchday.inventory.commands import Commit, Reserve
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(settings: Settings, ray_session: Any) -> Iterator[tuple[Settings, dict[int, Any]]]:
    s = settings.model_copy(update={"shards": 2, "dedicated_shards": 1})
    handles = start_inventory(s)
    try:
        yield s, handles
    finally:
        stop_inventory(s)


async def new_sku(repo: InventoryRepository, s: Settings, on_hand: int, **limits: int) -> str:
    sku = uid("HOT")
    await repo.create_skus(
        [SkuRow(sku, on_hand, 0, 0, **limits)], Router(s.shards, s.dedicated_shards)
    )
    return sku


async def db_scalar(repo: InventoryRepository, sql: str, *params: Any) -> Any:
    async with repo.pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
        return row[0] if row else None


async def buyers(
    clients: list[InventoryClient], sku: str, workers: int, ledger: dict[str, Any]
) -> None:
    """Fans who reserve one unit and pay for it at once, until the SKU is sold out."""

    async def fan(n: int) -> None:
        client = clients[n % len(clients)]
        while True:
            m = Reserve(uid("rq"), sku, 1, uid("cart"), uid("fan"), 300)
            out = await client.submit(m)
            if isinstance(out.error, OutOfStock):
                return
            if out.error is not None:
                ledger["errors"].append(out.error)
                continue
            ledger["reserved"][m.request_id] = out.value
            order = uid("order")
            rid = out.value.reservation_id  # type: ignore[union-attr]
            done = await client.submit(Commit(uid("rq"), sku, rid, order))
            if done.error is None:
                ledger["sold"][rid] = order
            else:
                ledger["errors"].append(done.error)

    await asyncio.gather(*(fan(n) for n in range(workers)))


async def test_thousands_of_concurrent_reserves_on_one_sku_sell_exactly_its_stock(
    engine: tuple[Settings, dict[int, Any]], repo: InventoryRepository
) -> None:
    s, handles = engine
    stock = 400
    sku = await new_sku(repo, s, stock)
    clients = [connect_client(s, handles) for _ in range(4)]  # four Serve replicas
    attempts = [Reserve(uid("rq"), sku, 1, uid("cart"), uid("fan"), 300) for _ in range(3000)]
    outs = await asyncio.gather(*(clients[i % 4].submit(m) for i, m in enumerate(attempts)))
    won = [o for o in outs if o.error is None]
    assert len(won) == stock
    assert all(isinstance(o.error, OutOfStock) for o in outs if o.error is not None)
    assert len({o.value.reservation_id for o in won}) == stock  # type: ignore[union-attr]
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.reserved, row.sold) == (stock, 0)
    calls = sum(b for c in clients for b, _ in c.stats().values())
    assert calls < len(attempts) / 5, "callers were not coalesced into batches"
    owner = handles[Router(s.shards, s.dedicated_shards).owner(sku)]
    assert (await owner.stats.remote())["link_calls"] > 0  # over the direct link (ADR 0031)


async def test_killing_a_shard_mid_surge_loses_no_acknowledged_sale_and_sells_nothing_twice(
    engine: tuple[Settings, dict[int, Any]], repo: InventoryRepository, ray_session: Any
) -> None:
    s, handles = engine
    stock = 3000
    sku = await new_sku(repo, s, stock)
    owner = handles[Router(s.shards, s.dedicated_shards).owner(sku)]
    epoch_before = (await owner.stats.remote())["epoch"]
    clients = [connect_client(s, handles) for _ in range(3)]
    ledger: dict[str, Any] = {"reserved": {}, "sold": {}, "errors": []}
    surge = asyncio.create_task(buyers(clients, sku, 48, ledger))
    killed = 0
    for fraction in (0.2, 0.6):  # kill the owner twice, with sales in flight each time
        while not surge.done() and len(ledger["sold"]) < stock * fraction:
            await asyncio.sleep(0.005)
        if not surge.done():
            ray_session.kill(
                owner, no_restart=False
            )  # Ray restarts it; it recovers from PostgreSQL
            killed += 1
    await asyncio.wait_for(surge, 120)
    assert killed == 2
    assert (await owner.stats.remote())["epoch"] >= epoch_before + 2  # two real restarts

    row = (await repo.stock_rows([sku]))[sku]
    assert row.sold == len(ledger["sold"]) == stock  # every acked sale is durable, none twice
    assert row.reserved == 0 and row.on_hand == stock
    committed = await db_scalar(
        repo,
        "SELECT count(DISTINCT reservation_id) FROM reservations"
        " WHERE sku = %s AND status = 'committed'",
        sku,
    )
    assert committed == stock
    for rid, order in ledger["sold"].items():
        got = await db_scalar(
            repo, "SELECT order_id FROM reservations WHERE reservation_id = %s", rid
        )
        assert got == order
    # Retrying any acknowledged request, even across the restarts, returns its first answer.
    sample = random.sample(sorted(ledger["reserved"]), 50)
    for request_id in sample:
        first = ledger["reserved"][request_id]
        again = await clients[0].submit(Reserve(request_id, sku, 1, "other", "other", 300))
        assert again.value == first
    assert not [e for e in ledger["errors"] if not e.retryable]


async def test_a_reservation_expires_by_its_own_timer_on_the_shard_actor(
    engine: tuple[Settings, dict[int, Any]], repo: InventoryRepository
) -> None:
    s, handles = engine
    sku = await new_sku(repo, s, 3)
    client = connect_client(s, handles)
    held = await client.reserve(uid("rq"), sku, 2, uid("cart"), uid("fan"), 1.0)
    assert (await repo.stock_rows([sku]))[sku].reserved == 2
    for _ in range(50):
        await asyncio.sleep(0.1)
        if (await repo.stock_rows([sku]))[sku].reserved == 0:
            break
    assert (await repo.stock_rows([sku]))[sku].reserved == 0
    status = await db_scalar(
        repo, "SELECT status FROM reservations WHERE reservation_id = %s", held.reservation_id
    )
    assert status == "expired"


async def test_pinning_a_hot_sku_mid_surge_moves_it_without_losing_a_sale(
    engine: tuple[Settings, dict[int, Any]], repo: InventoryRepository
) -> None:
    s, handles = engine
    stock = 200
    sku = await new_sku(repo, s, stock)
    clients = [connect_client(s, handles) for _ in range(2)]
    ledger: dict[str, Any] = {"reserved": {}, "sold": {}, "errors": []}
    surge = asyncio.create_task(buyers(clients, sku, 24, ledger))
    await asyncio.sleep(0.2)
    router = Router(s.shards, s.dedicated_shards)
    assert await pin_sku(repo, router, handles, sku) == 2
    await asyncio.wait_for(surge, 120)
    row = (await repo.stock_rows([sku]))[sku]
    assert row.sold == len(ledger["sold"]) == stock
    assert await db_scalar(repo, "SELECT shard_id FROM inventory WHERE sku = %s", sku) == 2
    assert (await repo.pins())[sku] == 2
    assert all(c.router.owner(sku) == 2 for c in clients if sku in c.router.pins)


async def channel_buyers(
    client: InventoryClient, sku: str, channel: str | None, workers: int, sold: dict[str, str]
) -> list[Exception]:
    """Fans of the shop (``channel`` None) or of a marketplace channel, who reserve one unit
    and pay for it at once until the SKU is sold out or the channel's allocation is used."""
    errors: list[Exception] = []

    async def fan() -> None:
        while True:
            rq = uid("rq")
            try:
                if channel is None:
                    held = await client.reserve(rq, sku, 1, uid("cart"), uid("fan"), 300)
                else:
                    held = await client.reserve_for(
                        channel, rq, sku, 1, uid("ord"), uid("buyer"), 300
                    )
                done = await client.commit(uid("rq"), sku, held.reservation_id, uid("order"))
            except (OutOfStock, AllocationExceeded):
                return
            except Exception as exc:
                errors.append(exc)
                continue
            sold[done.reservation_id] = channel or "shop"

    await asyncio.gather(*(fan() for _ in range(workers)))
    return errors


async def test_two_channels_and_the_shop_sell_exactly_the_stock_within_allocations(
    engine: tuple[Settings, dict[int, Any]], repo: InventoryRepository, ray_session: Any
) -> None:
    s, handles = engine
    stock = 240
    sku = await new_sku(repo, s, stock)
    client = connect_client(s, handles)
    await client.allocate(uid("al"), sku, "ebay", max_units=60)
    await client.allocate(uid("al"), sku, "amazon", max_percent=25)  # 60 of 240
    owner = handles[Router(s.shards, s.dedicated_shards).owner(sku)]
    epoch_before = (await owner.stats.remote())["epoch"]
    sold: dict[str, str] = {}
    race = asyncio.gather(
        channel_buyers(client, sku, None, 12, sold),
        channel_buyers(client, sku, "ebay", 12, sold),
        channel_buyers(client, sku, "amazon", 12, sold),
    )
    task = asyncio.ensure_future(race)
    while not task.done() and len(sold) < stock // 3:
        await asyncio.sleep(0.005)
    ray_session.kill(owner, no_restart=False)  # it recovers its channel counts from PostgreSQL
    errors = await asyncio.wait_for(task, 120)
    assert not [e for group in errors for e in group if not getattr(e, "retryable", False)]
    assert (await owner.stats.remote())["epoch"] > epoch_before

    by_channel = {c: sum(1 for v in sold.values() if v == c) for c in ("shop", "ebay", "amazon")}
    assert sum(by_channel.values()) == stock  # every unit sold once, on one channel
    assert by_channel["ebay"] <= 60 and by_channel["amazon"] <= 60
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.sold, row.reserved, row.on_hand) == (stock, 0, stock)
    async with repo.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT channel_id, held, sold FROM channel_stock WHERE sku = %s ORDER BY 1", (sku,)
        )
        counts = {c: (h, n) for c, h, n in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT coalesce(channel_id, 'shop'), count(*) FROM reservations"
            " WHERE sku = %s AND status = 'committed' GROUP BY 1",
            (sku,),
        )
        rows = dict(await cur.fetchall())
    assert counts == {"amazon": (0, by_channel["amazon"]), "ebay": (0, by_channel["ebay"])}
    assert rows == {c: n for c, n in by_channel.items() if n}
