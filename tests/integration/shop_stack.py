"""The shop's HTTP apps in-process over real PostgreSQL, Redis and the engine's shard core.

No Ray: the inventory client sends its batches straight to in-process ShardCores, so these
tests exercise everything but the actor hop (tests/e2e covers that, over real HTTP).

Building the apps costs ~0.7 s of CPU (FastAPI makes a validator per route parameter), so a
module whose tests isolate by fresh SKUs, carts and keys shares one stack (a module-scoped
fixture). A test there that needs other settings opens its own apps over the shared
stack's engine (``engine=``): a second ShardCore for shard 0 would claim the shard's epoch
and fence the shared one for the rest of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from matchday import bootstrap
from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.payments.gateway import TestGateway
from matchday.settings import Settings
from matchday.storage.inventory_repo import InventoryRepository
from matchday.web import catalog_api, orders_api, shop_api
from matchday.web.context import CheckoutContext
from tests.background import stop
from tests.conftest import uid

ROUTER = Router(1, 0)


@dataclass
class Stack:
    ctx: CheckoutContext
    shop: httpx.AsyncClient
    orders: httpx.AsyncClient
    catalog: httpx.AsyncClient
    gateway: TestGateway
    inventory: InventoryRepository
    client: InventoryClient  # the inventory engine's, over ``core``
    core: ShardCore
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def session(self) -> dict[str, str]:
        r = await self.shop.post("/session")
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def cart(self, auth: dict[str, str]) -> str:
        r = await self.shop.post("/carts", headers=auth)
        assert r.status_code == 201, r.text
        return str(r.json()["cart_id"])

    async def product(
        self, stock: int = 10, *, limit: int | None = None, price: int = 8999, sizes: int = 1
    ) -> list[str]:
        """A fresh product with ``sizes`` variants of ``stock`` units each; its SKUs."""
        slug = uid("kit").lower()
        skus = [f"{slug.upper()}-{n}" for n in range(sizes)]
        await self.ctx.catalog.create_product(
            ProductIn(
                slug=slug,
                name=f"Kit {slug}",
                category="jerseys",
                price_cents=price,
                image_url=f"/static/img/{slug}.svg",
                per_customer_limit=limit,
                variants=[
                    VariantIn(sku=sku, size=str(40 + n), initial_stock=stock)
                    for n, sku in enumerate(skus)
                ],
            ),
            ROUTER,
        )
        return skus

    async def stock(self, sku: str) -> tuple[int, int, int]:
        row = (await self.inventory.stock_rows([sku]))[sku]
        return row.on_hand, row.reserved, row.sold


def stack_settings(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **settings.payload(),
        "secret_key": secrets.token_hex(24),
        "rate_limit_per_s": 10_000.0,
        "rate_limit_burst": 10_000,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def open_stack(
    settings: Settings, *, engine: Stack | None = None, **overrides: Any
) -> AsyncIterator[Stack]:
    """The apps over a shard core of their own, or over ``engine``'s (its core, client and
    repository; the overrides may then change the apps, not the engine's policy)."""
    s = stack_settings(settings, **overrides)
    async with contextlib.AsyncExitStack() as exits:
        if engine is None:
            ctx0 = await bootstrap.open_shop(s)  # the pool the shard core and fixtures share
            exits.push_async_callback(ctx0.close)
            repo = InventoryRepository(ctx0.pool)
            core = ShardCore(0, ROUTER, repo, policy=s.policy())
            await core.start()
            stock = InventoryClient(
                lambda _shard, batch: core.apply_wire(batch), ROUTER, policy=s.policy()
            )
            timers = [asyncio.create_task(core.run_timers(core.apply))]
            exits.push_async_callback(stop, timers[0])  # before the pool closes
        else:
            if s.policy() != engine.core.policy:
                raise ValueError("overrides that change the engine's policy need an engine")
            repo, core, stock, timers = engine.inventory, engine.core, engine.client, []
        async with _apps(s, repo, core, stock) as stack:
            stack.tasks.extend(timers)
            yield stack


@contextlib.asynccontextmanager
async def _apps(
    s: Settings,
    repo: InventoryRepository,
    core: ShardCore,
    stock: InventoryClient,
) -> AsyncIterator[Stack]:
    gateway = TestGateway()
    # No velocity rules: tests place many orders from one address (test_payments_admin
    # sets its own).
    ctx = bootstrap.with_checkout(
        bootstrap.with_engine(await bootstrap.open_shop(s), stock), gateway, screen_orders=False
    )
    await ctx.catalog.put_category(CategoryIn(slug="jerseys", name="Jerseys"))

    def client(app: Any, prefix: str) -> httpx.AsyncClient:
        # Serve mounts each app under its route prefix as the ASGI root_path: so do we.
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, root_path=prefix),
            base_url=f"http://shop.test{prefix}",
        )

    shop = client(shop_api.build(ctx), "/api/shop")
    orders = client(orders_api.build(ctx), "/api/orders")
    catalog = client(catalog_api.build(ctx), "/api/catalog")
    try:
        yield Stack(ctx, shop, orders, catalog, gateway, repo, stock, core)
    finally:
        for c in (shop, orders, catalog):
            await c.aclose()
        await ctx.close()
