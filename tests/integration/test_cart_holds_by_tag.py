"""A shop cart's holds are found by their tag in the primary key (022, ADR 0041).

Every shop add is tagged with its cart's creation time, so the cart's holds lie in one range
of ``reservations_pkey``; only holds without a tag go into the (now partial) cart index. The
migration keeps every hold of an existing database where the shop's queries find it: holds
made before it, tagged or not, and holds made after it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from matchday.inventory.commands import Reserve
from matchday.inventory.ids import reservation_id, tagged
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.shop_repo import (
    _CART_LINES,
    _CHECK_CART,
    RECENTLY_CLOSED_S,
    ShopRepository,
)
from tests.conftest import uid
from tests.integration.legacy_engine import database_before
from tests.integration.test_shard_on_postgres import make_sku, reserve

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)
COLLATION = (
    "SELECT collation_name FROM information_schema.columns"
    " WHERE table_name = 'reservations' AND column_name = 'reservation_id'"
)


async def one(pool: Any, sql: str, *params: Any) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
        return row[0]


def add(sku: str, cart: Any, *, tag: bool = True) -> Reserve:
    """A reserve as the shop's add makes it: tagged with the cart's creation time."""
    rid = uid("add")
    return Reserve(tagged(rid, cart.created_at) if tag else rid, sku, 1, cart.cart_id, "fan", 60.0)


@contextlib.asynccontextmanager
async def shop_on(url: str) -> AsyncIterator[tuple[Any, ShopRepository, ShardCore, str]]:
    """A pool on ``url``, the shop's repository, a started shard core and a SKU of it."""
    pool = make_pool(url, name="cart-tags")
    await pool.open(wait=True)
    try:
        repo = InventoryRepository(pool)
        sku = await make_sku(repo, 1_000)
        core = ShardCore(0, ROUTER, repo)
        await core.start()
        yield pool, ShopRepository(pool), core, sku
    finally:
        await pool.close()


async def test_a_carts_holds_before_and_after_the_migration_are_all_found(
    settings: Settings,
) -> None:
    with database_before(settings.database_url, "022") as url:
        async with shop_on(url) as (pool, shop, core, sku):
            cart = await shop.create_cart(uid("cart"), "fan")
            # Neighbours: carts made in the same milliseconds, whose holds share the range.
            others = [await shop.create_cart(uid("cart"), "fan") for _ in range(3)]
            noise = [add(sku, c) for c in others] + [reserve(sku) for _ in range(20)]
            before = await core.apply([add(sku, cart), add(sku, cart, tag=False), *noise])
            assert await one(pool, COLLATION) is None  # the database's

            assert migrate(url) == ["022_cart_holds_by_their_tag.sql"]
            assert await one(pool, COLLATION) == "C"  # byte order: the tags' order
            indexdef = await one(
                pool, "SELECT indexdef FROM pg_indexes WHERE indexname = 'reservations_by_cart'"
            )
            assert "USING hash (cart_id) WHERE (\"left\"(reservation_id, 1) <> 't'" in indexdef
            after = await core.apply([add(sku, cart), add(sku, cart, tag=False), *noise[:2]])
            mine = {o.unwrap().reservation_id for o in (*before[:2], *after[:2])}  # type: ignore[union-attr]
            assert sum(h.startswith("t") for h in mine) == 2

            seen = await shop.cart(cart.cart_id)
            assert seen is not None
            assert {line.reservation_id for line in seen.lines} == mine
            async with pool.connection() as conn:
                lines = await ShopRepository._cart_lines(conn, cart.cart_id)
                assert {line.reservation_id for line in lines} == mine
                # The shop's query reads the key's range and the partial index, never the
                # table, whatever its size.
                await conn.execute("SET enable_seqscan = off")
                plan = await conn.execute(
                    f"EXPLAIN SELECT r.reservation_id FROM reservations r WHERE {_CART_LINES}",
                    {"cart": cart.cart_id, "recent": RECENTLY_CLOSED_S},
                )
                text = "\n".join(r[0] for r in await plan.fetchall())
                assert "reservations_pkey" in text, text
                assert "reservations_by_cart" in text, text
                assert "Seq Scan on reservations" not in text, text


async def test_checkout_counts_a_tagged_hold_the_order_did_not_see(settings: Settings) -> None:
    async with shop_on(settings.database_url) as (pool, shop, core, sku):
        cart = await shop.create_cart(uid("cart"), "fan")
        seen, late = await core.apply([add(sku, cart), add(sku, cart)])
        held_id = seen.unwrap().reservation_id  # type: ignore[union-attr]
        async with pool.connection() as conn:
            row = await (
                await conn.execute(_CHECK_CART, {"cart": cart.cart_id, "lines": [held_id]})
            ).fetchone()
        assert row is not None
        assert [h for h, _ in row[0]] == [held_id]
        assert row[1] == 1, late.unwrap()  # the other tagged hold is the cart's, and live


async def test_the_range_holds_the_tag_python_gives_every_creation_time(
    settings: Settings,
) -> None:
    """The shop tags with round(float(epoch) * 1000), the SQL bounds use exact numerics: every
    microsecond, half-millisecond ties included, lands inside [from, until)."""
    rng = random.Random(22)
    base = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    times = [base + timedelta(microseconds=us) for us in (0, 1, 499, 500, 501, 999, 1_500)]
    times += [base + timedelta(microseconds=rng.randrange(10**13)) for _ in range(2_000)]
    times += [datetime(2527, 6, 1, tzinfo=UTC) - timedelta(microseconds=rng.randrange(10**9))]
    pool = make_pool(settings.database_url, name="cart-tags-range")
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT extract(epoch FROM t), cart_holds_from(t), cart_holds_until(t)"
                    " FROM unnest(%s::timestamptz[]) AS t",
                    (times,),
                )
            ).fetchall()
    finally:
        await pool.close()
    assert len(rows) == len(times)
    for epoch, low, high in rows:
        hold = reservation_id(tagged("add:c:k", float(epoch)))
        assert low <= hold < high, (epoch, low, hold, high)  # byte order, as "C" compares
        assert high[:1] == "t" and len(low) == len(high) == 12
