"""The catalogue over HTTP (mounted at /api/catalog): read-only, cached, never touches actors.

Product pages take availability from the Redis copy the inventory engine publishes, so a
surge of browsers costs Redis reads, not shard calls.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import RootModel
from starlette.middleware.gzip import GZipMiddleware

from matchday.catalog.models import BestSeller, CategoryOut, ListQuery, ProductOut, ProductPage
from matchday.web.base import include, make_app, router
from matchday.web.context import ShopContext
from matchday.web.schemas import ErrorBody

Slug = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Skus = Annotated[
    list[
        Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    ],
    Query(max_length=100),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such product"}
}


class Availability(RootModel[dict[str, int]]):
    """Units available now per SKU asked for; an unknown SKU is left out."""


def build(ctx: ShopContext) -> FastAPI:
    app = make_app(
        "matchday catalogue",
        "Products with sizes and colours, prices, live availability and best-sellers.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
    )
    # A page of products is ~25 KB of JSON, half of what a first visit to the storefront
    # downloads; gzip takes it to a few KB. Level 5: most of level 9's gain at a fraction of
    # the CPU, on the most requested app. Small answers (availability) go as they are.
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)
    include(app, catalog_router(ctx))
    return app


def catalog_router(ctx: ShopContext) -> APIRouter:
    """Products, best-sellers, categories and availability, rate-limited by client address."""
    catalog = ctx.catalog

    async def limited(request: Request) -> None:
        await ctx.limiter.check(f"ip:{request.client.host if request.client else '-'}")

    routes = router(dependencies=[Depends(limited)], tags=["catalogue"])

    @routes.get("/products", response_model=ProductPage)
    async def list_products(query: Annotated[ListQuery, Query()]) -> ProductPage:
        """Filter by category, team, tag, size, colour, price range, words, and in-stock."""
        return await catalog.list_products(query)

    @routes.get("/products/{slug}", response_model=ProductOut, responses=NOT_FOUND)
    async def product(slug: Slug) -> ProductOut:
        return await catalog.get_product(slug)

    @routes.get("/best-sellers", response_model=list[BestSeller])
    async def best_sellers(limit: Annotated[int, Query(ge=1, le=50)] = 10) -> list[BestSeller]:
        return await catalog.best_sellers(limit)

    @routes.get("/categories", response_model=list[CategoryOut])
    async def categories() -> list[CategoryOut]:
        return await catalog.categories()

    @routes.get("/availability", response_model=Availability)
    async def availability(sku: Skus) -> Availability:
        """Units available now per SKU (unknown SKUs are left out)."""
        return Availability(root=await catalog.availability(sku))

    return routes
