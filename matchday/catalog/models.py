"""What the catalogue accepts and answers.

Input models refuse unknown fields and bound every string, list and number, so that nothing
a client sends can reach PostgreSQL or Redis unchecked. Output models are built by the
service, never from client input.

Patterns use only what both pydantic's Rust regex engine and PostgreSQL accept (no
look-arounds).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# A product's or category's id, as it appears in URLs.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
# A strict subset of matchday.inventory.commands.SKU_RE: every SKU the catalogue accepts, the
# engine accepts too; upper case only so that one SKU cannot exist in two spellings.
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{0,63}$"
# 100,000.00 in any currency: far above anything a sports shop sells, far below overflow.
MAX_PRICE_CENTS = 10_000_000
MAX_STOCK = 1_000_000
MAX_OFFSET = 10_000
MAX_VARIANTS = 100

# Text ends up in HTML, logs and CSV exports: control characters are never legitimate in it,
# except tabs and line feeds in a description.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_TAB_LF = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line_text(value: str) -> str:
    """Stripped, not blank, no control characters (PostgreSQL refuses NUL in text, too)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _description(value: str) -> str:
    if _CONTROL_BUT_TAB_LF.search(value):
        raise ValueError("must not contain control characters")
    return value.strip()


Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
Sku = Annotated[str, Field(pattern=SKU_PATTERN, max_length=64)]
Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", max_length=32)]
Size = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./-]{0,15}$", max_length=16)]
Colour = Annotated[str, Field(pattern=r"^\w[\w /-]{0,31}$", max_length=32)]
Team = Annotated[str, Field(pattern=r"^\w[\w .'-]{0,39}$", max_length=40)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", min_length=3, max_length=3)]
PriceCents = Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS, strict=True)]
# Filters arrive as query-string text, so they may not be strict.
PriceFilter = Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS)]
Name = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(one_line_text)]
Description = Annotated[str, Field(max_length=4000), AfterValidator(_description)]
# A path on this site ("/static/img/x.svg", never "//host") or an https URL (a CDN).
ImageUrl = Annotated[
    str,
    Field(
        pattern=r"^(/[A-Za-z0-9._~%-][A-Za-z0-9._~%/-]*|https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~%/-]*)?)$",
        max_length=500,
    ),
]
FeaturedRank = Annotated[int, Field(ge=0, le=1_000_000)]

Sort = Literal["featured", "price_asc", "price_desc", "newest", "best_selling"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Body(_Input):
    """A JSON body: strict types (true, "1" and 1.0 are not 1); query models stay lax, their
    values arrive as strings."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CategoryIn(_Body):
    slug: Slug
    name: Name
    position: int = Field(default=0, ge=0, le=10_000)


class VariantIn(_Body):
    sku: Sku
    size: Size | None = None
    colour: Colour | None = None
    price_cents: PriceCents | None = None  # overrides the product's price
    position: int = Field(default=0, ge=0, le=10_000)
    # Only when the product is created; later stock changes go through the inventory engine.
    initial_stock: int = Field(default=0, ge=0, le=MAX_STOCK, strict=True)


class ProductIn(_Body):
    slug: Slug
    name: Name
    description: Description = ""
    category: Slug
    team: Team | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=10)
    price_cents: PriceCents
    currency: Currency = "EUR"
    image_url: ImageUrl
    featured_rank: FeaturedRank = 1000
    # Units one customer may hold or buy of each variant, enforced by the inventory engine.
    per_customer_limit: int | None = Field(default=None, ge=1, le=1000)
    variants: list[VariantIn] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def _distinct_variants(self) -> Self:
        skus = [v.sku for v in self.variants]
        if len(set(skus)) != len(skus):
            raise ValueError("variants must have distinct SKUs")
        options = [(v.size, v.colour) for v in self.variants]
        if len(set(options)) != len(options):
            raise ValueError("variants must differ in size or colour")
        return self


class ProductPatch(_Body):
    """Fields to change; absent fields stay. Only ``team`` may be set to null (cleared)."""

    name: Name | None = None
    description: Description | None = None
    category: Slug | None = None
    team: Team | None = None
    tags: list[Tag] | None = Field(default=None, max_length=10)
    price_cents: PriceCents | None = None
    currency: Currency | None = None
    image_url: ImageUrl | None = None
    featured_rank: FeaturedRank | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in self.model_fields_set - {"team"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class ListQuery(_Input):
    category: Slug | None = None
    team: Team | None = None
    tag: Tag | None = None
    size: Size | None = None
    colour: Colour | None = None
    min_price_cents: PriceFilter | None = None
    max_price_cents: PriceFilter | None = None
    q: str | None = Field(default=None, max_length=100)
    in_stock: bool = False
    sort: Sort = "featured"
    limit: int = Field(default=24, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)

    @model_validator(mode="after")
    def _price_range(self) -> Self:
        lo, hi = self.min_price_cents, self.max_price_cents
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_price_cents must not exceed max_price_cents")
        return self

    def search_words(self) -> list[str]:
        """Words of ``q`` safe to put into a tsquery: letters and digits only, at most 8."""
        return re.findall(r"\w+", (self.q or "").lower())[:8]


# -- answers ----------------------------------------------------------------------------------


class CategoryOut(BaseModel):
    slug: str
    name: str
    position: int
    products: int  # active products in it


class VariantRecord(BaseModel):
    """A variant as stored: what the product cache holds (never availability)."""

    sku: str
    size: str | None
    colour: str | None
    price_cents: int  # the override, or the product's price
    position: int


class VariantOut(VariantRecord):
    available: int
    in_stock: bool


class _ProductFields(BaseModel):
    slug: str
    name: str
    description: str
    category: str
    team: str | None
    tags: list[str]
    price_cents: int
    currency: str
    image_url: str
    featured_rank: int
    active: bool
    created_at: datetime
    updated_at: datetime


class ProductRecord(_ProductFields):
    """A product as stored, with its variants: the unit of the product cache."""

    variants: list[VariantRecord]


class ProductOut(_ProductFields):
    variants: list[VariantOut]
    in_stock: bool  # any variant available

    @classmethod
    def merge(cls, record: ProductRecord, available: dict[str, int]) -> ProductOut:
        variants = []
        for v in record.variants:
            units = available.get(v.sku, 0)
            variants.append(VariantOut(**v.model_dump(), available=units, in_stock=units > 0))
        fields = record.model_dump(exclude={"variants"})
        return cls(**fields, variants=variants, in_stock=any(v.in_stock for v in variants))


class ProductPage(BaseModel):
    items: list[ProductOut]
    total: int
    offset: int
    limit: int
    next_offset: int | None  # None on the last page


class PageRecord(BaseModel):
    """A listing as cached: products without availability."""

    items: list[ProductRecord]
    total: int


class BestSeller(BaseModel):
    product: ProductOut
    units_sold: int


class BestSellerRecord(BaseModel):
    product: ProductRecord
    units_sold: int
