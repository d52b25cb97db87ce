"""The inventory turnover report on real PostgreSQL (008_turnover.sql, 009_initial_stock.sql).

Each SKU's unsold units over the last 30 days are rebuilt from the stock it was created with
(inventory.initial_stock, at inventory.created_at) and the engine's journal; every test
writes its history through the real catalogue and shard, then dates the creation, the
journal rows and the sales back, and checks the average against hand-computed unit-days.
The database is shared with the other tests, so each test looks only at its own SKUs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matchday.inventory.commands import AdjustLimits, Restock, SetOnHand
from matchday.inventory.records import SkuRow
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.catalog_repo import CatalogRepository
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.payments_repo import PaymentsRepository
from matchday.storage.reports_repo import ReportsRepository
from matchday.storage.shop_repo import ShopRepository
from tests.conftest import uid
from tests.integration import test_reports as reports_tests
from tests.integration.legacy_engine import LegacyRepository, database_before
from tests.integration.test_reports import DAY, ROUTER, Repos, backdate, make_product, sell

pytestmark = pytest.mark.integration

repos = reports_tests.repos  # the same fixture: a pool on the session's database

WINDOW_DAYS = 30


async def created(r: Repos, skus: list[str], ago_s: float) -> None:
    """Date the SKUs' creation back, as their history is dated back in the journal."""
    async with r.pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE inventory SET created_at = now() - make_interval(secs => %s)"
            " WHERE sku = ANY(%s)",
            (ago_s, skus),
        )
        assert cur.rowcount == len(skus)


async def change_stock(
    r: Repos, mutation: Restock | SetOnHand | AdjustLimits, ago_s: float
) -> None:
    """A restock, a count or a limits change through the shard, dated ``ago_s`` back."""
    core = ShardCore(0, ROUTER, r.inventory)
    await core.start()
    (done,) = await core.apply([mutation])
    done.unwrap()
    await backdate(r, mutation.request_id, ago_s)


async def turnover(r: Repos) -> dict[str, Any]:
    await r.reports.refresh()
    return {t.sku: t for t in await r.reports.turnover(1_000_000)}


def check(row: Any, *, sold: int, on_hand: int, unit_days: float) -> None:
    assert (row.units_sold_30d, row.units_on_hand) == (sold, on_hand)
    average = unit_days / WINDOW_DAYS
    assert row.average_on_hand == pytest.approx(average, abs=1e-3)
    assert row.turnover == pytest.approx(sold / average if average else 0.0, abs=1e-4)


async def test_turnover_is_units_sold_over_the_average_of_the_30_days(repos: Repos) -> None:
    _, (fast, stale) = await make_product(repos, [100, 10])
    await created(repos, [fast, stale], ago_s=60 * DAY)
    await sell(repos, fast, 4, ago_s=DAY)
    await sell(repos, stale, 2, ago_s=40 * DAY)

    rows = await turnover(repos)
    # 4 sold a day ago: 100 on hand for 29 days, 96 for the last one.
    check(rows[fast], sold=4, on_hand=96, unit_days=100 * 29 + 96)
    # Nothing sold in the window: 8 on hand throughout, turnover 0.
    check(rows[stale], sold=0, on_hand=8, unit_days=8 * 30)


async def test_turnover_averages_the_stock_history_with_restocks_and_counts(
    repos: Repos,
) -> None:
    _, (restocked, counted, first_count) = await make_product(repos, [12, 50, 50])
    await created(repos, [restocked, counted, first_count], ago_s=45 * DAY)
    # Each SKU's history in time order, through the shard, then dated back in the journal.
    await sell(repos, restocked, 2, ago_s=40 * DAY)  # before the window: 10 when it opens
    await sell(repos, restocked, 4, ago_s=20 * DAY)  # 6
    await change_stock(repos, Restock(uid("rq"), restocked, 30), ago_s=15 * DAY)  # 36
    await sell(repos, restocked, 6, ago_s=10 * DAY)  # 30

    await change_stock(repos, Restock(uid("rq"), counted, 10), ago_s=35 * DAY)  # 60
    await sell(repos, counted, 5, ago_s=25 * DAY)  # 55
    await change_stock(repos, SetOnHand(uid("rq"), counted, 40), ago_s=12 * DAY)  # lost 15
    await sell(repos, counted, 3, ago_s=5 * DAY)  # 37

    # No restock before the count: the 50 it was created with comes from initial_stock.
    await sell(repos, first_count, 5, ago_s=25 * DAY)  # 45
    await change_stock(repos, SetOnHand(uid("rq"), first_count, 20), ago_s=12 * DAY)  # 20
    await sell(repos, first_count, 3, ago_s=5 * DAY)  # 17

    rows = await turnover(repos)
    # Days at each level over the 30: 10x10, 6x5, 36x5, 30x10 = 610 unit-days.
    check(rows[restocked], sold=10, on_hand=30, unit_days=10 * 10 + 6 * 5 + 36 * 5 + 30 * 10)
    # 60x5, 55x13, 40x7, 37x5 = 1480 unit-days.
    check(rows[counted], sold=8, on_hand=37, unit_days=60 * 5 + 55 * 13 + 40 * 7 + 37 * 5)
    # 50x5, 45x13, 20x7, 17x5 = 1060 unit-days (008 alone read the first 18 days as 25, 20).
    check(rows[first_count], sold=8, on_hand=17, unit_days=50 * 5 + 45 * 13 + 20 * 7 + 17 * 5)


async def test_a_sku_created_inside_the_window_had_nothing_on_hand_before(
    repos: Repos,
) -> None:
    _, (busy, counted, idle) = await make_product(repos, [40, 40, 30])
    await created(repos, [busy, counted], ago_s=20 * DAY)
    await created(repos, [idle], ago_s=6 * DAY)
    # Created 20 days ago with 40: the 10 days before count 0 unit-days.
    await sell(repos, busy, 4, ago_s=15 * DAY)  # 36
    await change_stock(repos, Restock(uid("rq"), busy, 20), ago_s=10 * DAY)  # 56
    await change_stock(repos, SetOnHand(uid("rq"), busy, 50), ago_s=6 * DAY)  # lost 6: 50
    await sell(repos, busy, 10, ago_s=2 * DAY)  # 40

    # A count as the first change: the level before it is the 40 it was created with, not
    # the count plus the units sold before it (34).
    await sell(repos, counted, 4, ago_s=15 * DAY)  # 36
    await change_stock(repos, SetOnHand(uid("rq"), counted, 30), ago_s=10 * DAY)  # 30
    await sell(repos, counted, 5, ago_s=5 * DAY)  # 25

    rows = await turnover(repos)
    # 0x10, 40x5, 36x5, 56x4, 50x4, 40x2 = 884 unit-days.
    check(rows[busy], sold=14, on_hand=40, unit_days=40 * 5 + 36 * 5 + 56 * 4 + 50 * 4 + 40 * 2)
    # 0x10, 40x5, 36x5, 30x5, 25x5 = 655 unit-days.
    check(rows[counted], sold=9, on_hand=25, unit_days=40 * 5 + 36 * 5 + 30 * 5 + 25 * 5)
    # Never changed: 30 units for its last 6 days.
    check(rows[idle], sold=0, on_hand=30, unit_days=30 * 6)


async def test_a_sku_created_before_the_window_starts_at_the_stock_it_was_created_with(
    repos: Repos,
) -> None:
    _, (shrunk, untouched) = await make_product(repos, [80, 25])
    await created(repos, [shrunk, untouched], ago_s=45 * DAY)
    # Nothing journaled before the window opens: it opens at the 80 it was created with.
    await change_stock(repos, SetOnHand(uid("rq"), shrunk, 60), ago_s=20 * DAY)  # lost 20
    await sell(repos, shrunk, 6, ago_s=8 * DAY)  # 54

    rows = await turnover(repos)
    # 80x10, 60x12, 54x8 = 1952 unit-days (008 alone read the first 10 days as 60).
    check(rows[shrunk], sold=6, on_hand=54, unit_days=80 * 10 + 60 * 12 + 54 * 8)
    check(rows[untouched], sold=0, on_hand=25, unit_days=25 * 30)


async def test_a_sku_from_before_009_without_its_initial_stock_keeps_the_estimate(
    repos: Repos,
) -> None:
    _, (first_count,) = await make_product(repos, [50])
    async with repos.pool.connection() as conn:
        # As 009 leaves a SKU it cannot backfill: its first change a count, no product.
        await conn.execute(
            "UPDATE inventory SET initial_stock = NULL, created_at = NULL WHERE sku = %s",
            (first_count,),
        )
    await sell(repos, first_count, 5, ago_s=25 * DAY)  # 45, read as 25
    await change_stock(repos, SetOnHand(uid("rq"), first_count, 20), ago_s=12 * DAY)  # 20
    await sell(repos, first_count, 3, ago_s=5 * DAY)  # 17

    rows = await turnover(repos)
    # The level before the count is the count plus what sold before it: 25x5 (truly 50x5),
    # 20x13, 20x7, 17x5 = 610 unit-days; taken as stocked since before the window.
    check(rows[first_count], sold=8, on_hand=17, unit_days=25 * 5 + 20 * 13 + 20 * 7 + 17 * 5)


async def _initial(r: Repos, skus: list[str]) -> dict[str, tuple[int | None, bool]]:
    async with r.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sku, initial_stock, created_at > now() - interval '1 minute'"
            " FROM inventory WHERE sku = ANY(%s)",
            (skus,),
        )
        return {sku: (initial, recent) for sku, initial, recent in await cur.fetchall()}


async def test_every_way_of_creating_stock_records_it_and_nothing_after_changes_it(
    repos: Repos,
) -> None:
    _, (variant,) = await make_product(repos, [40])  # the admin API's path
    seeded, sold_out = uid("R").upper(), uid("R").upper()
    rows = [SkuRow(seeded, 10, 2, 3), SkuRow(sold_out, 5, 0, 5)]
    assert await repos.inventory.create_skus(rows, ROUTER) == 2
    # Created again: nothing changes, the first row stands.
    assert await repos.inventory.create_skus([SkuRow(seeded, 99, 0, 0)], ROUTER) == 0
    await sell(repos, variant, 3, ago_s=0)
    await change_stock(repos, Restock(uid("rq"), variant, 7), ago_s=0)

    # initial_stock is on_hand - sold when created; the shards never write it.
    assert await _initial(repos, [variant, seeded, sold_out]) == {
        variant: (40, True),
        seeded: (7, True),
        sold_out: (0, True),
    }
    state = await repos.inventory.stock_rows([variant])
    assert (state[variant].on_hand, state[variant].sold) == (47, 3)


# -- 009 on a database created before it -----------------------------------------------------


@pytest.fixture
def db_at_008(settings: Settings) -> Iterator[str]:
    """A new database migrated up to 008 only, as a deployment before 009 left it."""
    with database_before(settings.database_url, "009") as url:
        yield url


async def test_009_backfills_an_existing_database_where_the_journal_is_exact(
    db_at_008: str,
) -> None:
    pool = make_pool(db_at_008, max_size=2, name="turnover-009-test")
    await pool.open()
    try:
        # Filled as the engine wrote before 010: the journal's JSONB rows are what 009 reads.
        r = Repos(
            pool,
            ReportsRepository(pool),
            CatalogRepository(pool),
            LegacyRepository(pool),
            ShopRepository(pool),
            PaymentsRepository(pool),
        )
        slug, (plain, restocked, limited, counted) = await make_product(r, [50, 20, 15, 30])
        bare = uid("R").upper()
        await r.inventory.create_skus([SkuRow(bare, 9, 0, 0)], ROUTER)
        await sell(r, plain, 5, ago_s=0)  # no anchor: 45 + 5 sold
        await sell(r, restocked, 2, ago_s=0)
        await change_stock(r, Restock(uid("rq"), restocked, 10), ago_s=0)  # 28 - 10 + 2 sold
        await sell(r, limited, 1, ago_s=0)
        limits = AdjustLimits(uid("rq"), limited, per_customer_limit=2)
        await change_stock(r, limits, ago_s=0)  # 14 + 1 sold
        await sell(r, counted, 3, ago_s=0)
        await change_stock(r, SetOnHand(uid("rq"), counted, 20), ago_s=0)  # 30: not recorded

        assert migrate(db_at_008)[:2] == ["009_initial_stock.sql", "010_compact_journal.sql"]
        r.inventory = InventoryRepository(pool)  # the engine as it is, after 010

        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT i.sku, i.initial_stock, i.created_at = p.created_at,"
                " i.created_at IS NULL FROM inventory i"
                " LEFT JOIN variants v USING (sku) LEFT JOIN products p USING (product_id)"
            )
            got = {row[0]: tuple(row[1:]) for row in await cur.fetchall()}
        assert got == {
            plain: (50, True, False),
            restocked: (20, True, False),
            limited: (15, True, False),
            counted: (None, True, False),
            bare: (9, None, True),
        }
        # After 009 every new SKU records its stock, and the rebuilt view refreshes.
        _, (fresh,) = await make_product(r, [12])
        assert (await _initial(r, [fresh]))[fresh] == (12, True)
        rows = await turnover(r)
        assert {plain, restocked, limited, counted, bare, fresh} <= set(rows)
        assert rows[bare].average_on_hand == pytest.approx(9.0)  # stocked since before
        assert rows[plain].product_id == slug
    finally:
        await pool.close()
