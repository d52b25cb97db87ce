"""A cart's holds are found by a hash index on ``reservations.cart_id`` (021, ADR 0038).

Every reserve inserts a hold, and a B-tree entry for its cart cost a descent of the tree;
the cart index only ever answers one cart at a time, which a hash index does from one bucket.
The migration rebuilds the index of an existing database in place: a cart's holds made
before and after it are read the same, by the shop's own queries, through the index.
"""

from __future__ import annotations

from typing import Any

import pytest

from matchday.inventory.commands import Reserve
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.shop_repo import _CART_LINES, RECENTLY_CLOSED_S, ShopRepository
from tests.conftest import uid
from tests.integration.legacy_engine import database_before
from tests.integration.test_shard_on_postgres import make_sku, reserve

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)
ACCESS_METHOD = (
    "SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
    " WHERE c.relname = 'reservations_by_cart'"
)


async def one(pool: Any, sql: str) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql)).fetchone()
        return row[0]


async def test_the_cart_index_becomes_a_hash_and_finds_the_same_holds(
    settings: Settings,
) -> None:
    with database_before(settings.database_url, "021") as url:
        pool = make_pool(url, name="cart-index")
        await pool.open(wait=True)
        try:
            repo = InventoryRepository(pool)
            sku = await make_sku(repo, 100)
            core = ShardCore(0, ROUTER, repo)
            await core.start()
            cart = uid("cart")
            mine = [Reserve(uid("rq"), sku, 1, cart, "fan", 60.0) for _ in range(3)]
            before = await core.apply([mine[0], *(reserve(sku) for _ in range(40)), mine[1]])
            assert await one(pool, ACCESS_METHOD) == "btree"

            assert migrate(url)[0] == "021_cart_holds_hash_index.sql"
            assert await one(pool, ACCESS_METHOD) == "hash"
            after = await core.apply([reserve(sku), mine[2]])
            holds = {o.unwrap().reservation_id for o in (before[0], before[-1], after[-1])}  # type: ignore[union-attr]

            async with pool.connection() as conn:
                lines = await ShopRepository._cart_lines(conn, cart)
                assert {line.reservation_id for line in lines} == holds
                # The shop's query is answered by the index, whatever the table's size.
                await conn.execute("SET enable_seqscan = off")
                plan = await conn.execute(
                    f"EXPLAIN SELECT r.reservation_id FROM reservations r WHERE {_CART_LINES}",
                    {"cart": cart, "recent": RECENTLY_CLOSED_S},
                )
                text = "\n".join(r[0] for r in await plan.fetchall())
                assert "reservations_by_cart" in text, text
        finally:
            await pool.close()
