"""Admin routes for the catalogue (included by the admin app): categories, and products with
their variants, each change through the admin gate (rate-limited, idempotent, audited).
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from matchday.catalog.models import CategoryIn, ProductIn, ProductOut, ProductPatch
from matchday.catalog.service import CatalogService
from matchday.inventory.routing import Router
from matchday.web.admin_session import ADMIN_RESPONSES, AdminCall, AdminGate
from matchday.web.base import router as api_router
from matchday.web.context import ShopContext

SlugPath = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class DeactivatedOut(BaseModel):
    slug: str
    active: bool


def routers(gate: AdminGate, ctx: ShopContext, *, router: Router) -> list[APIRouter]:
    """The catalogue routes, for the admin app to include: categories, products."""
    return [categories_router(gate, ctx.catalog), products_router(gate, ctx.catalog, router)]


def categories_router(gate: AdminGate, catalog: CatalogService) -> APIRouter:
    """``POST /categories``: create or update a category."""
    Putter = Annotated[AdminCall, Depends(gate.require("category.put"))]
    routes = api_router(responses=ADMIN_RESPONSES, tags=["catalogue"])

    @routes.post("/categories", status_code=201, response_model=CategoryIn)
    async def put_category(request: Request, body: CategoryIn, call: Putter) -> JSONResponse:
        """Create a category, or rename and reorder the one with this slug."""

        async def produce(rid: str) -> tuple[int, Any]:
            await catalog.put_category(body)
            return 201, body.model_dump()

        return await gate.run(request, call, body.model_dump(), produce, target=body.slug)

    return routes


def products_router(gate: AdminGate, catalog: CatalogService, router: Router) -> APIRouter:
    """Products with their variants: create (each SKU gets its inventory row), change, hide."""
    Creator = Annotated[AdminCall, Depends(gate.require("product.create"))]
    Updater = Annotated[AdminCall, Depends(gate.require("product.update"))]
    Deactivator = Annotated[AdminCall, Depends(gate.require("product.deactivate"))]
    routes = api_router(responses=ADMIN_RESPONSES, tags=["catalogue"])

    @routes.post("/products", status_code=201, response_model=ProductOut)
    async def create_product(request: Request, body: ProductIn, call: Creator) -> JSONResponse:
        """A product with its variants; each variant's SKU gets its inventory row."""

        async def produce(rid: str) -> tuple[int, Any]:
            product = await catalog.create_product(body, router)
            return 201, product.model_dump(mode="json")

        return await gate.run(request, call, body.model_dump(), produce, target=body.slug)

    @routes.patch("/products/{slug}", response_model=ProductOut)
    async def update_product(
        request: Request, slug: SlugPath, body: ProductPatch, call: Updater
    ) -> JSONResponse:
        """Change the fields given; the others stay."""
        patch = body.model_dump(exclude_unset=True)

        async def produce(rid: str) -> tuple[int, Any]:
            product = await catalog.update_product(slug, body)
            return 200, product.model_dump(mode="json")

        return await gate.run(request, call, patch, produce)

    @routes.delete("/products/{slug}", response_model=DeactivatedOut)
    async def deactivate_product(
        request: Request, slug: SlugPath, call: Deactivator
    ) -> JSONResponse:
        """Hide the product everywhere; its SKUs, stock and order history stay."""

        async def produce(rid: str) -> tuple[int, Any]:
            await catalog.deactivate_product(slug)
            return 200, DeactivatedOut(slug=slug, active=False).model_dump()

        return await gate.run(request, call, {}, produce)

    return routes
