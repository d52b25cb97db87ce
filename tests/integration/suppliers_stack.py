"""The supplier services and push app on the in-process shop stack (tests/integration/shop_stack):
real PostgreSQL, Redis and shard core; the push app over ASGI, as Serve would mount it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from matchday import bootstrap
from matchday.settings import Settings
from matchday.suppliers.admin import MappingIn, MappingsIn, SupplierIn
from matchday.suppliers.config import SupplierServices, SupplierSettings
from matchday.suppliers.ports import StockEngine
from matchday.suppliers.signing import signed_headers
from matchday.web import suppliers_api
from tests.conftest import uid
from tests.integration.shop_stack import Stack, open_stack


@dataclass
class SupplierStack:
    shop: Stack
    services: SupplierServices
    push: httpx.AsyncClient

    async def supplier(self, **spec: Any) -> tuple[str, str]:
        """A fresh supplier: (id, signing secret)."""
        supplier_id = uid("sup").lower()
        issued = await self.services.admin.create(
            SupplierIn(supplier_id=supplier_id, name=f"Supplier {supplier_id}", **spec)
        )
        return supplier_id, issued.secret

    async def mapped(self, supplier_id: str, stock: int = 10, n: int = 1) -> list[str]:
        """``n`` fresh SKUs of ``stock`` units, mapped from supplier SKUs ``S-<sku>``."""
        skus = await self.shop.product(stock=stock, sizes=n)
        await self.services.admin.map(
            supplier_id,
            MappingsIn(mappings=[MappingIn(supplier_sku=f"S-{s}", sku=s) for s in skus]),
        )
        return skus

    async def send(
        self,
        supplier_id: str,
        secret: str,
        lines: list[dict[str, Any]],
        *,
        message_id: str | None = None,
        at: float | None = None,
        **extra: Any,
    ) -> httpx.Response:
        doc = {"message_id": message_id or uid("m"), "lines": lines, **extra}
        return await self.post(supplier_id, secret, json.dumps(doc).encode(), at=at)

    async def post(
        self, supplier_id: str, secret: str, body: bytes, *, at: float | None = None
    ) -> httpx.Response:
        headers = signed_headers(secret, int(at or time.time()), body)
        return await self.push.post(
            f"/{supplier_id}/stock",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )


@contextlib.asynccontextmanager
async def open_supplier_stack(
    settings: Settings, *, engine: StockEngine | None = None, **tuning: Any
) -> AsyncIterator[SupplierStack]:
    async with open_stack(settings) as shop:
        ctx = shop.ctx
        services = bootstrap.supplier_services(
            ctx.pool,
            engine or ctx.stock,
            ctx.settings.secret_key.get_secret_value(),
            settings=SupplierSettings(**tuning),
        )
        app = suppliers_api.build(ctx, services.push)
        push = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, root_path="/api/suppliers"),
            base_url="http://shop.test/api/suppliers",
        )
        try:
            yield SupplierStack(shop, services, push)
        finally:
            await push.aclose()
