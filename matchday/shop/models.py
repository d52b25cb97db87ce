"""What carts and orders look like to a client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Order statuses. Terminal ones never change again, except paid -> refunded.
PENDING = "pending_payment"  # created, payment not yet asked for
AMBIGUOUS = "payment_pending"  # the gateway did not answer: resolved later, never guessed
REQUIRES_ACTION = "requires_action"
PAID = "paid"
FAILED = "payment_failed"
CANCELLED = "cancelled"
REFUNDED = "refunded"
REVIEW = "review"  # held by the velocity rules before any charge, until an operator decides
UNSETTLED = frozenset({PENDING, AMBIGUOUS})
# An order that a payment may still be taken for (and claimed for capture).
PAYABLE = frozenset({PENDING, AMBIGUOUS, REQUIRES_ACTION})
# An order whose payment may still go through: its cart's lines stay as the order took them.
IN_FLIGHT = frozenset({PENDING, AMBIGUOUS, REQUIRES_ACTION, REVIEW})
TERMINAL = frozenset({PAID, FAILED, CANCELLED, REFUNDED})

# What a customer is told at each status (pushed with the status on the order's stream).
CUSTOMER_MESSAGES = {
    PENDING: "We are taking your payment.",
    AMBIGUOUS: (
        "The payment provider has not answered yet: we are checking and will confirm here. "
        "Do not pay again; if it fails you can try again or pay another way."
    ),
    REQUIRES_ACTION: "Your bank asks you to confirm this payment.",
    REVIEW: "Your order is being reviewed; we will confirm it shortly.",
    PAID: "Paid, thank you.",
    FAILED: "The payment was declined: try another card or another way to pay.",
    CANCELLED: "The order was cancelled; any payment taken has been refunded.",
    REFUNDED: "Your payment has been refunded.",
}


def customer_message(status: str) -> str:
    return CUSTOMER_MESSAGES.get(status, "")


@dataclass(frozen=True, slots=True)
class CartLine:
    reservation_id: str
    sku: str
    qty: int
    status: str  # held, expired (its timer may not have run yet), released, revoked, ...
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "reservation_id": self.reservation_id,
            "sku": self.sku,
            "qty": self.qty,
            "status": self.status,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class Cart:
    cart_id: str
    customer_id: str
    status: str
    created_at: float
    order_id: str | None
    lines: tuple[CartLine, ...] = field(default=())

    @property
    def held(self) -> list[CartLine]:
        return [line for line in self.lines if line.status == "held"]

    def to_dict(self, now: float) -> dict[str, Any]:
        held = self.held
        return {
            "cart_id": self.cart_id,
            "customer_id": self.customer_id,
            "status": self.status,
            "order_id": self.order_id,
            "lines": [
                {**line.to_dict(), "expires_in_s": max(0.0, round(line.expires_at - now, 1))}
                for line in self.lines
            ],
            "units": sum(line.qty for line in held),
            "expires_at": min((line.expires_at for line in held), default=None),
        }


@dataclass(frozen=True, slots=True)
class OrderLine:
    reservation_id: str
    sku: str
    qty: int
    unit_price_cents: int
    title: str


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    cart_id: str
    customer_id: str
    status: str
    total_cents: int
    currency: str
    payment_token: str
    attempts: int
    gateway: str | None
    payment_ref: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: float
    updated_at: float
    lines: tuple[OrderLine, ...] = field(default=())
    discount_cents: int = 0  # what a poll's offer took off (issue 7)
    offer_code: str | None = None
    # When its payment must be confirmed by (epoch s; set as its first charge begins): past
    # it, an order still in flight fails as payment_timeout (ADR 0008, issue 13).
    pay_by: float | None = None

    @property
    def charged_cents(self) -> int:
        """What the customer pays (and can be refunded): the lines less the discount."""
        return self.total_cents - self.discount_cents

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "cart_id": self.cart_id,
            "status": self.status,
            "total_cents": self.total_cents,
            "discount_cents": self.discount_cents,
            "offer_code": self.offer_code,
            "currency": self.currency,
            "gateway": self.gateway,
            "payment_ref": self.payment_ref,
            "failure": (
                {"code": self.failure_code, "message": self.failure_message}
                if self.failure_code
                else None
            ),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "pay_by": self.pay_by,
            "lines": [
                {
                    "sku": line.sku,
                    "qty": line.qty,
                    "unit_price_cents": line.unit_price_cents,
                    "title": line.title,
                }
                for line in self.lines
            ],
        }
