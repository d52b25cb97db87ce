"""What the catalogue needs from storage (matchday/storage/catalog_repo.py implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from matchday.catalog.models import (
    CategoryIn,
    CategoryOut,
    ListQuery,
    ProductIn,
    ProductPatch,
    ProductRecord,
)
from matchday.domain.prices import PriceInfo
from matchday.inventory.routing import Router


class CatalogStore(Protocol):
    """Categories, products and their variants; prices and durable availability."""

    async def put_category(self, category: CategoryIn) -> None: ...

    async def categories(self) -> list[CategoryOut]: ...

    async def create_product(self, product: ProductIn, router: Router) -> ProductRecord:
        """Insert the product, its SKUs' inventory rows and its variants, all or nothing."""
        ...

    async def seed_products(
        self, categories: Sequence[CategoryIn], products: Sequence[ProductIn]
    ) -> int:
        """Insert the categories and products that are missing; return products inserted."""
        ...

    async def update_product(self, slug: str, patch: ProductPatch) -> ProductRecord: ...

    async def deactivate(self, slug: str) -> None: ...

    async def product(self, slug: str) -> ProductRecord | None:
        """The active product ``slug`` with its variants, or None."""
        ...

    async def list_products(self, query: ListQuery) -> tuple[list[ProductRecord], int]:
        """One page of active products matching ``query``, and how many match in all."""
        ...

    async def best_sellers(self, limit: int) -> list[tuple[ProductRecord, int]]:
        """Active products by units sold over all their variants, most first."""
        ...

    async def variant_skus(self, slug: str, *, include_inactive: bool = False) -> list[str] | None:
        """The product's SKUs in display order; None if there is no such product."""
        ...

    async def prices(self, skus: Sequence[str]) -> dict[str, PriceInfo]:
        """Prices of SKUs of active products; other SKUs are absent."""
        ...

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        """Units available per SKU from the durable counters; unknown SKUs are absent."""
        ...
