"""Admin routes for the catalogue (included by the admin app): categories, and products with
their variants, each change through the admin gate (rate-limited, idempotent, audited).
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from matchday.catalog.models import CategoryIn, ProductIn, ProductOut, ProductPatch
from matchday.inventory.routing import Router
from matchday.web.admin_session import ADMIN_RESPONSES, AdminCall, AdminGate
from matchday.web.context import ShopContext

SlugPath = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class DeactivatedOut(BaseModel):
    slug: str
    active: bool


def include(app: FastAPI, gate: AdminGate, ctx: ShopContext, *, router: Router) -> None:
    # -- catalogue ---------------------------------------------------------------------------

    @app.post(
        "/categories",
        status_code=201,
        response_model=CategoryIn,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def put_category(
        request: Request,
        body: CategoryIn,
        call: Annotated[AdminCall, Depends(gate.require("category.put"))],
    ) -> JSONResponse:
        """Create a category, or rename and reorder the one with this slug."""

        async def produce(rid: str) -> tuple[int, Any]:
            await ctx.catalog.put_category(body)
            return 201, body.model_dump()

        return await gate.run(request, call, body.model_dump(), produce, target=body.slug)

    @app.post(
        "/products",
        status_code=201,
        response_model=ProductOut,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def create_product(
        request: Request,
        body: ProductIn,
        call: Annotated[AdminCall, Depends(gate.require("product.create"))],
    ) -> JSONResponse:
        """A product with its variants; each variant's SKU gets its inventory row."""

        async def produce(rid: str) -> tuple[int, Any]:
            product = await ctx.catalog.create_product(body, router)
            return 201, product.model_dump(mode="json")

        return await gate.run(request, call, body.model_dump(), produce, target=body.slug)

    @app.patch(
        "/products/{slug}",
        response_model=ProductOut,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def update_product(
        request: Request,
        slug: SlugPath,
        body: ProductPatch,
        call: Annotated[AdminCall, Depends(gate.require("product.update"))],
    ) -> JSONResponse:
        """Change the fields given; the others stay."""
        patch = body.model_dump(exclude_unset=True)

        async def produce(rid: str) -> tuple[int, Any]:
            product = await ctx.catalog.update_product(slug, body)
            return 200, product.model_dump(mode="json")

        return await gate.run(request, call, patch, produce)

    @app.delete(
        "/products/{slug}",
        response_model=DeactivatedOut,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def deactivate_product(
        request: Request,
        slug: SlugPath,
        call: Annotated[AdminCall, Depends(gate.require("product.deactivate"))],
    ) -> JSONResponse:
        """Hide the product everywhere; its SKUs, stock and order history stay."""

        async def produce(rid: str) -> tuple[int, Any]:
            await ctx.catalog.deactivate_product(slug)
            return 200, {"slug": slug, "active": False}

        return await gate.run(request, call, {}, produce)
