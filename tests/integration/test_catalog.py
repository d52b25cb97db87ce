"""The catalogue on real PostgreSQL and Redis: storage, cache, availability, outages.

Every test works in a category, cache prefix and availability hash of its own, so tests
share one database without seeing each other's products.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from matchday.catalog.demo import DEMO_CATEGORIES, demo_products, seed_catalog
from matchday.catalog.models import CategoryIn, ListQuery, ProductIn, ProductPatch
from matchday.catalog.service import CatalogService
from matchday.demo import demo_stock
from matchday.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from matchday.embedded import EmbeddedPostgres, EmbeddedRedis
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.catalog_repo import CatalogRepository
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration

ROUTER = Router(2)


def slug() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


def sku() -> str:
    return f"T-{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    pool = make_pool(settings.database_url, max_size=4, name="catalog-test")
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def make_service(pool: AsyncConnectionPool, redis: aioredis.Redis, **kw: Any) -> CatalogService:
    kw.setdefault("availability_key", uid("avail"))
    kw.setdefault("cache_prefix", uid("catalog"))
    return CatalogService(CatalogRepository(pool), redis, **kw)


@pytest.fixture
def service(pool: AsyncConnectionPool, redis: aioredis.Redis) -> CatalogService:
    return make_service(pool, redis)


@pytest.fixture
async def category(service: CatalogService) -> str:
    name = f"c-{uuid.uuid4().hex[:12]}"
    await service.put_category(CategoryIn(slug=name, name="Test category"))
    return name


def product_in(category: str, **overrides: Any) -> ProductIn:
    body: dict[str, Any] = {
        "slug": slug(),
        "name": "Argentina Home Jersey 2026",
        "category": category,
        "price_cents": 8999,
        "image_url": "/static/img/x.svg",
        "variants": [
            {"sku": sku(), "size": "S", "colour": "Blue", "initial_stock": 5, "position": 0},
            {"sku": sku(), "size": "M", "colour": "Blue", "initial_stock": 0, "position": 1},
        ],
    }
    body.update(overrides)
    return ProductIn.model_validate(body)


async def sql(pool: AsyncConnectionPool, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []


# -- creation and detail ---------------------------------------------------------------------


async def test_a_created_product_is_served_with_its_variants_and_initial_stock(
    service: CatalogService, pool: AsyncConnectionPool, category: str
) -> None:
    p = product_in(category, per_customer_limit=2, team="Argentina", tags=["home"])
    created = await service.create_product(p, ROUTER)
    got = await service.get_product(p.slug)

    assert got == created
    assert (got.name, got.price_cents, got.currency, got.team, got.tags, got.active) == (
        "Argentina Home Jersey 2026", 8999, "EUR", "Argentina", ["home"], True
    )  # fmt: skip
    assert [(v.sku, v.size, v.available, v.in_stock) for v in got.variants] == [
        (p.variants[0].sku, "S", 5, True),
        (p.variants[1].sku, "M", 0, False),
    ]
    assert got.in_stock
    rows = await sql(
        pool,
        "SELECT sku, shard_id, on_hand, reserved, sold, per_customer_limit FROM inventory"
        " WHERE sku = ANY(%s) ORDER BY sku",
        [v.sku for v in p.variants],
    )
    expected = sorted((v.sku, ROUTER.owner(v.sku), v.initial_stock, 0, 0, 2) for v in p.variants)
    assert rows == expected


async def test_a_variant_price_override_is_its_price_and_checkout_sees_it(
    service: CatalogService, category: str
) -> None:
    p = product_in(category)
    p.variants[1].price_cents = 7999
    await service.create_product(p, ROUTER)

    got = await service.get_product(p.slug)
    assert [v.price_cents for v in got.variants] == [8999, 7999]
    prices = await service.price_of([p.variants[0].sku, p.variants[1].sku, "NO-SUCH-SKU"])
    assert prices == {
        p.variants[0].sku: (8999, "EUR", p.name, "S", "Blue"),
        p.variants[1].sku: (7999, "EUR", p.name, "M", "Blue"),
    }


async def test_variant_skus_come_in_display_order(service: CatalogService, category: str) -> None:
    p = product_in(category)
    p.variants[0].position, p.variants[1].position = 5, 1
    await service.create_product(p, ROUTER)
    assert await service.variant_skus(p.slug) == [p.variants[1].sku, p.variants[0].sku]


# -- duplicates and refusals -----------------------------------------------------------------


async def test_a_second_product_with_the_same_slug_is_refused(
    service: CatalogService, category: str
) -> None:
    first = product_in(category)
    await service.create_product(first, ROUTER)
    again = product_in(category, slug=first.slug)
    with pytest.raises(Conflict, match="product already exists"):
        await service.create_product(again, ROUTER)
    assert (await service.get_product(first.slug)).variants[0].sku == first.variants[0].sku


async def test_a_product_reusing_an_existing_sku_is_refused_and_leaves_nothing_behind(
    service: CatalogService, pool: AsyncConnectionPool, category: str
) -> None:
    first = product_in(category)
    await service.create_product(first, ROUTER)
    taken = first.variants[0].sku
    fresh = sku()
    second = product_in(
        category,
        variants=[{"sku": fresh, "size": "L", "initial_stock": 3}, {"sku": taken, "size": "XL"}],
    )
    with pytest.raises(Conflict, match=taken):
        await service.create_product(second, ROUTER)

    with pytest.raises(NotFound):
        await service.get_product(second.slug)
    assert await sql(pool, "SELECT 1 FROM inventory WHERE sku = %s", fresh) == []
    assert await sql(pool, "SELECT on_hand FROM inventory WHERE sku = %s", taken) == [(5,)]


async def test_of_two_concurrent_creations_of_one_slug_exactly_one_wins(
    service: CatalogService, category: str
) -> None:
    a = product_in(category)
    b = product_in(category, slug=a.slug)
    results = await asyncio.gather(
        service.create_product(a, ROUTER), service.create_product(b, ROUTER), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "ProductOut"]
    winner = next(r for r in results if not isinstance(r, BaseException))
    assert (await service.get_product(a.slug)).variants == winner.variants  # type: ignore[union-attr]


async def test_a_product_in_an_unknown_category_is_refused_without_creating_stock(
    service: CatalogService, pool: AsyncConnectionPool
) -> None:
    p = product_in("no-such-category")
    with pytest.raises(InvalidInput, match="category"):
        await service.create_product(p, ROUTER)
    assert await sql(pool, "SELECT 1 FROM inventory WHERE sku = %s", p.variants[0].sku) == []


async def test_missing_and_malformed_slugs_are_not_found(service: CatalogService) -> None:
    for bad in (slug(), "Not A Slug", "../../etc/passwd", "x" * 500):
        with pytest.raises(NotFound):
            await service.get_product(bad)
        with pytest.raises(NotFound):
            await service.variant_skus(bad)
        with pytest.raises(NotFound):
            await service.update_product(bad, ProductPatch(price_cents=1))
        with pytest.raises(NotFound):
            await service.deactivate_product(bad)


async def test_out_of_range_lookups_are_refused(service: CatalogService) -> None:
    with pytest.raises(InvalidInput):
        await service.best_sellers(0)
    with pytest.raises(InvalidInput):
        await service.best_sellers(51)
    with pytest.raises(InvalidInput):
        await service.price_of([f"SKU-{i}" for i in range(1001)])
    assert await service.price_of(["lower-case", "BAD SKU", "", "X" * 65]) == {}


# -- updates and deactivation ----------------------------------------------------------------


async def test_an_update_changes_only_the_fields_sent_and_can_clear_the_team(
    service: CatalogService, category: str
) -> None:
    p = product_in(category, team="Brazil", description="Old")
    before = await service.create_product(p, ROUTER)
    after = await service.update_product(p.slug, ProductPatch(price_cents=6999, team=None))

    assert (after.price_cents, after.team, after.description) == (6999, None, "Old")
    assert after.updated_at > before.updated_at
    assert [v.price_cents for v in after.variants] == [6999, 6999]
    assert (await service.price_of([p.variants[0].sku]))[p.variants[0].sku][0] == 6999
    unchanged = await service.update_product(p.slug, ProductPatch())
    assert unchanged.price_cents == 6999


async def test_moving_a_product_to_an_unknown_category_is_refused(
    service: CatalogService, category: str
) -> None:
    p = product_in(category)
    await service.create_product(p, ROUTER)
    with pytest.raises(InvalidInput, match="category"):
        await service.update_product(p.slug, ProductPatch(category="no-such-category"))
    assert (await service.get_product(p.slug)).category == category


async def test_a_deactivated_product_disappears_from_pages_listings_and_checkout(
    service: CatalogService, category: str
) -> None:
    p = product_in(category)
    await service.create_product(p, ROUTER)
    await service.get_product(p.slug)  # cached before the change
    await service.deactivate_product(p.slug)
    await service.deactivate_product(p.slug)  # idempotent

    with pytest.raises(NotFound):
        await service.get_product(p.slug)
    assert (await service.list_products(ListQuery(category=category))).total == 0
    assert await service.price_of([p.variants[0].sku]) == {}
    with pytest.raises(NotFound):
        await service.variant_skus(p.slug)
    assert len(await service.variant_skus(p.slug, include_inactive=True)) == 2
    cats = {c.slug: c.products for c in await service.categories()}
    assert cats[category] == 0

    back = await service.update_product(p.slug, ProductPatch(active=True))
    assert back.active
    assert (await service.get_product(p.slug)).slug == p.slug


# -- listing ---------------------------------------------------------------------------------


async def make_range(service: CatalogService, category: str) -> list[ProductIn]:
    """Five products in ``category``: prices 1000..5000, sizes and colours that differ."""
    made = []
    for i in range(5):
        p = product_in(
            category,
            name=f"{['Argentina', 'Brazil', 'France', 'Germany', 'Spain'][i]} Jersey",
            team=["Argentina", "Brazil", "France", "Germany", "Spain"][i],
            tags=["home" if i % 2 == 0 else "away"],
            price_cents=1000 * (i + 1),
            featured_rank=10 - i,
            variants=[
                {"sku": sku(), "size": "S" if i < 3 else "XL", "colour": "Red" if i else "Sky"},
                {"sku": sku(), "size": "M", "colour": "Red" if i else "Sky", "initial_stock": i},
            ],
        )
        await service.create_product(p, ROUTER)
        made.append(p)
    return made


async def names(service: CatalogService, **query: Any) -> list[str]:
    page = await service.list_products(ListQuery.model_validate(query))
    return [p.name.split()[0] for p in page.items]


async def test_listings_filter_by_category_size_colour_price_team_tag_and_stock(
    service: CatalogService, category: str
) -> None:
    await make_range(service, category)
    c = {"category": category, "sort": "price_asc"}
    assert await names(service, **c) == ["Argentina", "Brazil", "France", "Germany", "Spain"]
    assert await names(service, **c, size="XL") == ["Germany", "Spain"]
    assert await names(service, **c, colour="Sky") == ["Argentina"]
    assert await names(service, **c, min_price_cents=2000, max_price_cents=4000) == [
        "Brazil", "France", "Germany"
    ]  # fmt: skip
    assert await names(service, **c, team="France") == ["France"]
    assert await names(service, **c, tag="away") == ["Brazil", "Germany"]
    # Argentina's only stock is none at all: initial stock 0 on both variants.
    assert await names(service, **c, in_stock=True) == ["Brazil", "France", "Germany", "Spain"]
    assert await names(service, **c, size="XXS") == []


async def test_listings_sort_by_price_rank_and_age(service: CatalogService, category: str) -> None:
    await make_range(service, category)
    c = {"category": category}
    assert await names(service, **c, sort="price_desc") == [
        "Spain", "Germany", "France", "Brazil", "Argentina"
    ]  # fmt: skip
    assert await names(service, **c, sort="featured") == [
        "Spain", "Germany", "France", "Brazil", "Argentina"
    ]  # fmt: skip
    assert await names(service, **c, sort="newest") == [
        "Spain", "Germany", "France", "Brazil", "Argentina"
    ]  # fmt: skip


async def test_text_search_matches_word_prefixes_of_name_and_team(
    service: CatalogService, category: str
) -> None:
    await make_range(service, category)
    c = {"category": category, "sort": "price_asc"}
    assert await names(service, **c, q="germ") == ["Germany"]
    assert await names(service, **c, q="JERSEY spa") == ["Spain"]
    assert len(await names(service, **c, q="jers")) == 5
    assert await names(service, **c, q="cricket") == []
    # Punctuation a tsquery would choke on is dropped, not passed through.
    assert await names(service, **c, q="fra' & | !(") == ["France"]
    assert len(await names(service, **c, q="&&& !!!")) == 5


async def test_pages_cover_every_product_once_and_say_where_the_next_starts(
    service: CatalogService, category: str
) -> None:
    await make_range(service, category)
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await service.list_products(
            ListQuery(category=category, sort="price_asc", limit=2, offset=offset)
        )
        assert page.total == 5
        assert page.limit == 2
        seen += [p.slug for p in page.items]
        offset = page.next_offset
    assert len(seen) == len(set(seen)) == 5
    beyond = await service.list_products(ListQuery(category=category, offset=10))
    assert (beyond.items, beyond.total, beyond.next_offset) == ([], 5, None)


async def test_best_sellers_rank_products_by_units_sold_over_all_variants(
    service: CatalogService, pool: AsyncConnectionPool, category: str
) -> None:
    made = await make_range(service, category)
    # The engine's counters, as its group commits leave them; far above any other test's.
    big = 10**9
    sold = [(made[1], (big + 5, big + 10)), (made[3], (big + 30, 0)), (made[4], (big, big))]
    for p, (s0, s1) in sold:
        for v, units in zip(p.variants, (s0, s1), strict=True):
            await sql(
                pool, "UPDATE inventory SET on_hand = %s, sold = %s WHERE sku = %s", 3 * big, units,
                v.sku,
            )  # fmt: skip
    best = await service.best_sellers(3)
    assert [(b.product.slug, b.units_sold) for b in best] == [
        (made[1].slug, 2 * big + 15), (made[4].slug, 2 * big), (made[3].slug, big + 30)
    ]  # fmt: skip
    ranked = await names(service, category=category, sort="best_selling")
    assert ranked[:3] == ["Brazil", "Spain", "Germany"]


async def test_categories_count_their_active_products(
    service: CatalogService, category: str
) -> None:
    await make_range(service, category)
    other = f"c-{uuid.uuid4().hex[:12]}"
    await service.put_category(CategoryIn(slug=other, name="Empty", position=9999))
    counts = {c.slug: (c.name, c.products) for c in await service.categories()}
    assert counts[category] == ("Test category", 5)
    assert counts[other] == ("Empty", 0)


# -- the cache -------------------------------------------------------------------------------


async def test_a_read_is_served_from_the_cache_until_a_change_invalidates_it(
    service: CatalogService, pool: AsyncConnectionPool, category: str
) -> None:
    p = product_in(category)
    await service.create_product(p, ROUTER)
    await service.get_product(p.slug)
    await service.list_products(ListQuery(category=category))
    # Behind the service's back: a cached read cannot see this.
    await sql(pool, "UPDATE products SET name = 'Renamed' WHERE product_id = %s", p.slug)
    assert (await service.get_product(p.slug)).name == p.name
    listed = await service.list_products(ListQuery(category=category))
    assert listed.items[0].name == p.name

    await service.update_product(p.slug, ProductPatch(price_cents=100))
    fresh = await service.get_product(p.slug)
    assert (fresh.name, fresh.price_cents) == ("Renamed", 100)
    assert (await service.list_products(ListQuery(category=category))).items[0].name == "Renamed"


async def test_every_replica_sees_a_change_at_once(
    pool: AsyncConnectionPool, redis: aioredis.Redis, category: str
) -> None:
    prefix, avail = uid("catalog"), uid("avail")
    one = make_service(pool, redis, cache_prefix=prefix, availability_key=avail)
    two = make_service(pool, redis, cache_prefix=prefix, availability_key=avail)
    p = product_in(category)
    await one.create_product(p, ROUTER)
    assert (await two.list_products(ListQuery(category=category))).total == 1
    assert (await two.get_product(p.slug)).price_cents == 8999

    await one.update_product(p.slug, ProductPatch(price_cents=4999))
    await one.create_product(product_in(category), ROUTER)
    assert (await two.get_product(p.slug)).price_cents == 4999
    assert (await two.list_products(ListQuery(category=category))).total == 2


async def test_a_missing_product_is_cached_as_missing_until_it_is_created(
    service: CatalogService, category: str
) -> None:
    p = product_in(category)
    with pytest.raises(NotFound):
        await service.get_product(p.slug)
    await service.create_product(p, ROUTER)
    assert (await service.get_product(p.slug)).slug == p.slug


async def test_a_garbled_cache_entry_is_reloaded_from_postgres(
    service: CatalogService, redis: aioredis.Redis, category: str
) -> None:
    p = product_in(category)
    await service.create_product(p, ROUTER)
    await service.get_product(p.slug)
    keys = [k async for k in redis.scan_iter(match=f"{service.prefix}:v*:product:{p.slug}")]
    assert len(keys) == 1
    await redis.set(keys[0], b"{not json")
    assert (await service.get_product(p.slug)).name == p.name


# -- availability ----------------------------------------------------------------------------


async def test_availability_comes_from_the_relay_hash_and_is_never_cached(
    service: CatalogService, redis: aioredis.Redis, category: str
) -> None:
    p = product_in(category)
    await service.create_product(p, ROUTER)
    a, b = (v.sku for v in p.variants)
    await redis.hset(service.availability_key, mapping={a: 7, b: 2})
    assert [v.available for v in (await service.get_product(p.slug)).variants] == [7, 2]

    await redis.hset(service.availability_key, mapping={a: 0, b: 1})
    got = await service.get_product(p.slug)
    assert [(v.available, v.in_stock) for v in got.variants] == [(0, False), (1, True)]
    listed = await service.list_products(ListQuery(category=category))
    assert [v.available for v in listed.items[0].variants] == [0, 1]


async def test_skus_missing_from_the_hash_fall_back_to_postgres_and_fill_it_without_overwriting(
    service: CatalogService, pool: AsyncConnectionPool, redis: aioredis.Redis, category: str
) -> None:
    p = product_in(category)
    await service.create_product(p, ROUTER)
    a, b = (v.sku for v in p.variants)
    # Creating answered with the initial stock and recorded it in the hash.
    assert await redis.hgetall(service.availability_key) == {a.encode(): b"5", b.encode(): b"0"}
    await redis.delete(service.availability_key)  # as if never published
    await sql(pool, "UPDATE inventory SET reserved = 2, sold = 1 WHERE sku = %s", a)
    await redis.hset(service.availability_key, b, 9)

    got = await service.get_product(p.slug)
    assert [v.available for v in got.variants] == [5 - 2 - 1, 9]
    assert await redis.hgetall(service.availability_key) == {a.encode(): b"2", b.encode(): b"9"}
    # From now on the hash answers: PostgreSQL moving on alone changes nothing shown.
    await sql(pool, "UPDATE inventory SET sold = 3 WHERE sku = %s", a)
    assert (await service.get_product(p.slug)).variants[0].available == 2


# -- outages ---------------------------------------------------------------------------------


async def test_with_redis_stopped_everything_is_served_from_postgres_and_then_recovers(
    pool: AsyncConnectionPool,
    own_redis: EmbeddedRedis,
    category: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=1)
    service = make_service(pool, client, redis_retry_s=0.0)
    try:
        p = product_in(category)
        await service.create_product(p, ROUTER)
        await client.hset(service.availability_key, p.variants[0].sku, 1)
        assert (await service.get_product(p.slug)).variants[0].available == 1
        own_redis.stop()

        with caplog.at_level(logging.WARNING, logger="matchday.catalog.service"):
            got = await service.get_product(p.slug)
            updated = await service.update_product(p.slug, ProductPatch(price_cents=500))
            listed = await service.list_products(ListQuery(category=category))
            best = await service.best_sellers(1)
            cats = await service.categories()
        assert [v.available for v in got.variants] == [5, 0]  # PostgreSQL's counters
        assert updated.price_cents == 500
        assert listed.items[0].price_cents == 500
        assert len(best) == 1
        assert category in {c.slug for c in cats}
        assert "serving the catalogue from PostgreSQL" in caplog.text
        assert "not invalidated" in caplog.text

        # Back with its old entries: the change made during the outage is not hidden by them.
        own_redis.start()
        assert (await service.get_product(p.slug)).price_cents == 500
        assert (await service.get_product(p.slug)).variants[0].available == 1
    finally:
        await client.aclose()


async def test_a_hung_redis_costs_a_bounded_wait_not_a_failed_read(
    service: CatalogService, pool: AsyncConnectionPool, category: str
) -> None:
    class Hanging:
        """Every call waits forever, like a Redis that accepts and never answers."""

        def __getattr__(self, name: str) -> Any:
            async def hang(*args: Any, **kwargs: Any) -> None:
                await asyncio.sleep(3600)

            return hang

        def pipeline(self, **kwargs: Any) -> Any:
            return self

    p = product_in(category)
    await service.create_product(p, ROUTER)
    hung = CatalogService(
        CatalogRepository(pool),
        Hanging(),
        availability_key=uid("a"),
        redis_timeout_s=0.05,  # type: ignore[arg-type]
    )
    got = await asyncio.wait_for(hung.get_product(p.slug), 5)
    assert got.variants[0].available == 5


async def test_with_postgres_down_reads_say_unavailable_and_cached_pages_still_answer(
    own_postgres: EmbeddedPostgres, redis: aioredis.Redis
) -> None:
    pool = AsyncConnectionPool(
        own_postgres.url, min_size=1, max_size=2, open=False, timeout=2.0,
        check=AsyncConnectionPool.check_connection,
    )  # fmt: skip
    await pool.open()
    try:
        service = make_service(pool, redis)
        category = f"c-{uuid.uuid4().hex[:12]}"
        await service.put_category(CategoryIn(slug=category, name="Outage"))
        p = product_in(category)
        await service.create_product(p, ROUTER)
        await service.get_product(p.slug)  # cached, and availability now in the hash
        own_postgres.stop("immediate")

        assert (await service.get_product(p.slug)).variants[0].available == 5
        with pytest.raises(Unavailable):
            await service.list_products(ListQuery(category=category, sort="newest"))
        with pytest.raises(Unavailable):
            await service.price_of([p.variants[0].sku])
        with pytest.raises(Unavailable):
            await service.create_product(product_in(category), ROUTER)
    finally:
        await pool.close()


# -- the demo catalogue ----------------------------------------------------------------------


async def test_the_demo_seed_is_idempotent_and_serves_every_demo_sku(
    pool: AsyncConnectionPool, service: CatalogService
) -> None:
    await InventoryRepository(pool).create_skus(demo_stock(), ROUTER)
    first = await seed_catalog(CatalogRepository(pool))
    store = CatalogRepository(pool)
    again, concurrently = await asyncio.gather(seed_catalog(store), seed_catalog(store))
    assert first in (0, len(demo_products()))  # 0 if an earlier test in this run seeded
    assert again == concurrently == 0

    rows = await sql(pool, "SELECT count(*) FROM variants WHERE sku = ANY(%s)",
                     [r.sku for r in demo_stock()])  # fmt: skip
    assert rows == [(len(demo_stock()),)]
    jersey = await service.get_product("jersey-arg-home")
    assert jersey.name == "Argentina Home Jersey 2026"
    assert [v.size for v in jersey.variants] == ["XS", "S", "M", "L", "XL", "XXL"]
    assert jersey.variants[2].sku == "JERSEY-ARG-HOME-M"
    page = await service.list_products(ListQuery(category="boots", size="42"))
    assert {p.slug for p in page.items} >= {"boots-striker", "boots-keeper"}
    cats = {c.slug for c in await service.categories()}
    assert {c.slug for c in DEMO_CATEGORIES} <= cats
    prices = await service.price_of(["BALL-TRAINING-4", "BALL-TRAINING-5"])
    assert prices["BALL-TRAINING-4"][0] < prices["BALL-TRAINING-5"][0]
