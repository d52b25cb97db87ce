"""Request and response bodies of the shopper APIs (the catalogue's are in catalog.models)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from matchday.inventory.commands import SKU_RE

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Token = Annotated[str, Field(min_length=4, max_length=80, pattern=r"^(pm|tok)_[A-Za-z0-9_]+$")]


class _In(BaseModel):
    # Strict: JSON true, "1" and 1.0 are not the quantity 1 (strict_json.py).
    model_config = ConfigDict(extra="forbid", strict=True)


class AddItem(_In):
    sku: Sku
    qty: int = Field(default=1, ge=1, le=100)


class SetQuantity(_In):
    qty: int = Field(ge=0, le=100, description="0 removes the line")


OfferCode = Annotated[
    str | None,
    Field(
        default=None,
        max_length=80,
        pattern=r"^[a-z0-9_-]*$",
        description="A personal offer code earned by voting in a poll (empty: none)",
    ),
]


class CheckoutIn(_In):
    cart_id: Id
    payment_token: Token = Field(
        description="A payment-method token (pm_... or tok_...); never card data"
    )
    offer_code: OfferCode = None


class QuoteIn(_In):
    cart_id: Id
    offer_code: OfferCode = None


class ErrorBody(BaseModel):
    code: str
    message: str
    retryable: bool = False


class SessionOut(BaseModel):
    customer_id: str
    token: str = Field(description="Send as 'Authorization: Bearer <token>'")


class LineOut(BaseModel):
    reservation_id: str
    sku: str
    qty: int
    status: str
    expires_at: float
    expires_in_s: float = 0.0


class CartOut(BaseModel):
    cart_id: str
    customer_id: str
    status: str
    order_id: str | None
    lines: list[LineOut]
    units: int
    expires_at: float | None


class OrderLineOut(BaseModel):
    sku: str
    qty: int
    unit_price_cents: int
    title: str


class FailureOut(BaseModel):
    code: str
    message: str | None


class OrderOut(BaseModel):
    order_id: str
    cart_id: str
    status: str
    total_cents: int
    discount_cents: int = 0
    offer_code: str | None = None
    currency: str
    gateway: str | None
    payment_ref: str | None
    failure: FailureOut | None
    created_at: float
    updated_at: float
    # The payment's deadline (epoch s) once a charge began: an order not paid by then fails
    # as payment_timeout, with its holds released.
    pay_by: float | None = None
    lines: list[OrderLineOut]


class QuoteOut(BaseModel):
    """What placing the order would charge now; holds can still expire before it is placed."""

    cart_id: str
    currency: str
    total_cents: int
    discount_cents: int
    charged_cents: int
    offer_code: str | None
    lines: list[OrderLineOut]


class OrderList(BaseModel):
    orders: list[OrderOut]
    next_before: float | None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
