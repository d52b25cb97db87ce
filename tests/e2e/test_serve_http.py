"""A shopper's whole path over real HTTP: Serve proxy, replicas, shard actors, PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest

from matchday import bootstrap
from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
from matchday.inventory.routing import Router
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e


async def new_product(served: Served, stock: int, limit: int | None = None) -> tuple[str, str]:
    s = served.settings
    ctx = await bootstrap.open_shop(s)
    try:
        await ctx.catalog.put_category(CategoryIn(slug="jerseys", name="Jerseys"))
        slug = uid("e2e").lower()
        sku = f"{slug.upper()}-M"
        await ctx.catalog.create_product(
            ProductIn(
                slug=slug, name=f"Kit {slug}", category="jerseys", price_cents=9999,
                image_url=f"/static/img/{slug}.svg", per_customer_limit=limit,
                variants=[VariantIn(sku=sku, size="M", initial_stock=stock)],
            ),
            Router(s.shards, s.dedicated_shards),
        )  # fmt: skip
    finally:
        await ctx.close()
    return slug, sku


async def stock_of(served: Served, sku: str) -> tuple[int, int, int]:
    pool = make_pool(served.settings.database_url)
    await pool.open()
    try:
        row = (await InventoryRepository(pool).stock_rows([sku]))[sku]
        return row.on_hand, row.reserved, row.sold
    finally:
        await pool.close()


async def test_browse_add_to_cart_and_check_out_over_http(served: Served) -> None:
    slug, sku = await new_product(served, stock=5)
    async with (
        served.client("/api/catalog") as catalog,
        served.client("/api/shop") as shop,
        served.client("/api/orders") as orders,
    ):
        page = (await catalog.get(f"/products/{slug}")).json()
        assert [(v["sku"], v["available"]) for v in page["variants"]] == [(sku, 5)]
        listing = await catalog.get("/products", params={"category": "jerseys", "limit": 100})
        assert listing.status_code == 200

        token = (await shop.post("/session")).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        r = await shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=auth)
        assert r.status_code == 201, r.text
        assert (await stock_of(served, sku)) == (5, 2, 0)

        r = await orders.post(
            "/", json={"cart_id": cart, "payment_token": "pm_card_visa"},
            headers={**auth, "Idempotency-Key": "e2e-1"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["status"] == "paid"
        assert (await stock_of(served, sku)) == (5, 0, 2)

        async with orders.stream("GET", f"/{order['order_id']}/events", headers=auth) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            statuses = [
                json.loads(line[6:])["status"]
                async for line in s.aiter_lines()
                if line.startswith("data: ")
            ]
        assert statuses == ["pending_payment", "paid"]

        # Availability on the product page follows the sale through the relay's Redis copy.
        for _ in range(50):
            page = (await catalog.get(f"/products/{slug}")).json()
            if page["variants"][0]["available"] == 3:
                break
            await asyncio.sleep(0.1)
        assert page["variants"][0]["available"] == 3


async def test_a_declined_card_over_http_releases_the_stock(served: Served) -> None:
    _, sku = await new_product(served, stock=2)
    async with served.client("/api/shop") as shop, served.client("/api/orders") as orders:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        await shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=auth)
        r = await orders.post(
            "/", json={"cart_id": cart, "payment_token": "pm_card_chargeDeclined"}, headers=auth
        )
        assert r.json()["status"] == "payment_failed"
        assert (await stock_of(served, sku)) == (2, 0, 0)


async def test_a_surge_on_one_sku_over_http_sells_exactly_the_stock(served: Served) -> None:
    _, sku = await new_product(served, stock=40)
    async with served.client("/api/shop") as shop:

        async def fan() -> int:
            auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
            cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
            r = await shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
            return r.status_code

        codes = await asyncio.gather(*(fan() for _ in range(120)))
    assert codes.count(201) == 40
    assert set(codes) <= {201, 409}
    assert (await stock_of(served, sku)) == (40, 40, 0)


async def test_malformed_requests_over_http_are_4xx_json(served: Served) -> None:
    async with served.client("/api/shop") as shop, served.client("/api/catalog") as catalog:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        for body in ({"sku": "X", "qty": -1}, {"nope": 1}, "garbage"):
            kw = {"content": body} if isinstance(body, str) else {"json": body}
            r = await shop.post(f"/carts/{cart}/items", headers=auth, **kw)
            assert r.status_code == 422 and r.json()["code"] == "invalid_input"
        assert (await catalog.get("/products", params={"limit": 1000})).status_code == 422
        assert (await catalog.get("/products/NOT A SLUG")).status_code in (404, 422)
        assert (await shop.get("/openapi.json")).json()["info"]["title"] == "matchday shop"


async def test_a_hold_expires_by_itself_over_http_and_the_cart_says_so(served: Served) -> None:
    import copy

    from cluster.serving import deploy, load_config

    port = int(served.base.rsplit(":", 1)[1])
    config = load_config(settings=served.settings.payload(), port=port)
    short = copy.deepcopy(next(a for a in config["applications"] if a["name"] == "shop"))
    short["name"], short["route_prefix"] = "shop-short", "/api/shop-short"
    short["args"]["settings"] = {**short["args"]["settings"], "default_ttl_s": 1.0}
    deploy({**config, "applications": [*config["applications"], short]}, say=lambda _: None)
    try:
        _, sku = await new_product(served, stock=3)
        async with served.client("/api/shop-short") as shop:
            auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
            cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
            r = await shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=auth)
            assert r.status_code == 201 and r.json()["expires_in_s"] <= 1.0
            assert (await stock_of(served, sku)) == (3, 2, 0)
            for _ in range(50):  # the shard's own timer releases it: no request needed
                await asyncio.sleep(0.1)
                if await stock_of(served, sku) == (3, 0, 0):
                    break
            assert (await stock_of(served, sku)) == (3, 0, 0)
            view = (await shop.get(f"/carts/{cart}", headers=auth)).json()
            assert [ln["status"] for ln in view["lines"]] == ["expired"]
    finally:
        deploy(config, say=lambda _: None)
