"""Admin routes for payments: refunds and review decisions (included by the admin app).

``router(gate, ctx)`` has, behind the admin session and audit of every other admin
change (``gate``), idempotent by ``Idempotency-Key``:

- ``POST /orders/{order_id}/refund`` ``{"amount_cents": n | null}``: gives back part or all
  of a paid order (all that is left when null) through the gateway that took the payment;
  a full refund moves the order to ``refunded``; the customer's status stream says so.
- ``POST /orders/{order_id}/review`` ``{"decision": "approve" | "reject"}``: an order held
  by the velocity rules is paid now, or cancelled and its holds released.
- ``GET /orders/{order_id}/payment`` (any admin session): the order's payment as operators
  see it: status and reason, its deadline, each attempt per gateway, the retry queue's row,
  the capture claim and the suspicious-activity log (ADR 0008).
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.base import body_of
from matchday.web.base import router as api_router
from matchday.web.context import CheckoutContext
from matchday.web.schemas import ErrorBody, OrderOut

OrderPath = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^o_[a-z2-7]+$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid admin session"},
    404: {"model": ErrorBody, "description": "No such order"},
    409: {"model": ErrorBody, "description": "The order is not in a state that allows it"},
}


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_cents: int | None = Field(default=None, ge=1, le=10**9)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    decision: Literal["approve", "reject"]


class AttemptOut(BaseModel):
    """One charge attempt at one gateway."""

    attempt: int
    gateway: str
    intent: str | None
    status: str
    error: str | None
    risk_level: str | None


class RetryOut(BaseModel):
    """The order's row in the payments worker's retry queue."""

    tries: int
    next_at: float


class CaptureOut(BaseModel):
    """Which gateway's intent claimed the capture."""

    gateway: str
    intent: str


class SuspicionOut(BaseModel):
    kind: str
    detail: dict[str, Any]


class PaymentStory(BaseModel):
    """How an order's payment went, as operators see it."""

    order: OrderOut
    deadline: float | None = Field(description="pay by then (epoch s), once a charge began")
    attempts: list[AttemptOut]
    queue: RetryOut | None
    capture: CaptureOut | None
    suspicious: list[SuspicionOut]


def router(gate: AdminGate, ctx: CheckoutContext) -> APIRouter:
    """An order's payment: refund, review decision, and the payment's story."""
    checkout = ctx.checkout

    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Refunder = Annotated[AdminCall, Depends(gate.require("order.refund"))]
    Reviewer = Annotated[AdminCall, Depends(gate.require("order.review"))]
    orders = api_router(responses=RESPONSES, tags=["orders"])

    @orders.post("/orders/{order_id}/refund", response_model=OrderOut)
    async def refund(
        request: Request, order_id: OrderPath, body: RefundIn, call: Refunder
    ) -> JSONResponse:
        """Refund a paid order, in part or in full. The same Idempotency-Key refunds once."""

        async def produce(rid: str) -> tuple[int, Any]:
            order = await checkout.refund(order_id, body.amount_cents, rid[:64])
            return 200, body_of(OrderOut, order.to_dict())

        return await gate.run(request, call, body.model_dump(), produce)

    @orders.post("/orders/{order_id}/review", response_model=OrderOut)
    async def review(
        request: Request, order_id: OrderPath, body: ReviewIn, call: Reviewer
    ) -> JSONResponse:
        """Approve (pay now) or reject (cancel, release the stock) an order held for review."""

        async def produce(rid: str) -> tuple[int, Any]:
            order = await checkout.decide_review(order_id, body.decision == "approve")
            return 200, body_of(OrderOut, order.to_dict())

        return await gate.run(request, call, body.model_dump(), produce)

    @orders.get("/orders/{order_id}/payment", response_model=PaymentStory)
    async def payment(order_id: OrderPath, call: Reader) -> PaymentStory:
        """How an order's payment went: why it ended, its deadline, every attempt, the
        retry queue, the capture claim and anything suspicious about it."""
        return PaymentStory.model_validate(await checkout.payment_story(order_id))

    return orders
