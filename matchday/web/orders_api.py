"""Checkout and orders over HTTP (mounted at /api/orders).

``POST /`` turns a cart into an order and pays for it; the answer is the order in whatever
status the payment reached (paid, payment_failed with the reason, requires_action, or
payment_pending when the gateway did not answer). ``GET /{id}/events`` streams its status
changes as server-sent events: history first, from PostgreSQL, then live.
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency aliases
# defined inside the router factories, which string annotations would hide from it.

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from redis.exceptions import RedisError

from matchday.metrics import CHECKOUT_LATENCY
from matchday.shop.models import TERMINAL
from matchday.waitingroom.gate import PASS_HEADER
from matchday.web import queue_api
from matchday.web.base import idempotent, include, make_app, router
from matchday.web.context import CheckoutContext, ShopContext
from matchday.web.schemas import CheckoutIn, ErrorBody, OrderList, OrderOut, QuoteIn, QuoteOut

log = logging.getLogger(__name__)

OrderId = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^o_[a-z2-7]+$")]

ORDER_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid shopper token"},
    404: {"model": ErrorBody, "description": "No such cart or order"},
    409: {"model": ErrorBody, "description": "Cart empty, closed, or already checking out"},
}

QUOTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Cart empty or closed; offer code refused"},
}

# A stream ends after this long (the client reconnects with Last-Event-ID), so replicas never
# collect connections that outlived their shoppers.
STREAM_MAX_S = 300.0
KEEPALIVE_S = 15.0
# One XREAD BLOCK; under the Redis client's socket timeout (1 s, bootstrap.redis_client).
BLOCK_S = 0.8


def build(ctx: CheckoutContext) -> FastAPI:
    app = make_app(
        "matchday orders",
        "Checkout (cart to paid order), order status, history, and live status events.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
    )
    shopper = shopper_of(ctx)
    include(app, checkout_router(ctx, shopper), orders_router(ctx, shopper))
    return app


def shopper_of(ctx: ShopContext) -> Callable[..., Awaitable[str]]:
    """The dependency naming the shopper: the bearer token, then the shopper's rate limit."""

    async def shopper(authorization: Annotated[str | None, Header()] = None) -> str:
        customer = ctx.identity.customer(authorization)
        await ctx.limiter.check(f"c:{customer}")
        return customer

    return shopper


def checkout_router(ctx: CheckoutContext, shopper: Callable[..., Awaitable[str]]) -> APIRouter:
    """Placing an order (``POST /``) and what it would charge (``POST /quote``)."""
    checkout, gate = ctx.checkout, queue_api.waiting_room(ctx).gate
    Shopper = Annotated[str, Depends(shopper)]
    routes = router(responses=ORDER_RESPONSES, tags=["checkout"])

    @routes.post("/", status_code=201, response_model=OrderOut)
    async def place_order(request: Request, body: CheckoutIn, customer: Shopper) -> JSONResponse:
        """Check the cart out and pay. Retrying with the same Idempotency-Key resumes the same
        order and can never charge twice."""
        await gate.fresh()
        if gate.skus:  # a drop's SKUs need its pass (ADR 0026)
            cart = await ctx.carts.view(customer, body.cart_id)
            held = [line.sku for line in cart.lines if line.status == "held"]
            await gate.require_all(held, request.headers.get(PASS_HEADER), customer)

        async def produce(key: str) -> tuple[int, Any]:
            ip = request.client.host if request.client else None
            started = time.perf_counter()
            order = await checkout.checkout(
                customer, body.cart_id, body.payment_token, key, ip, offer_code=body.offer_code
            )
            took = time.perf_counter() - started
            ctx.metrics.observe(CHECKOUT_LATENCY, took, {"status": order.status})
            return 201, order.to_dict()

        scope = f"order:{customer}"
        return await idempotent(request, ctx.idempotency, scope, body.model_dump(), produce)

    @routes.post("/quote", response_model=QuoteOut, responses=QUOTE_RESPONSES)
    async def quote(body: QuoteIn, customer: Shopper) -> dict[str, Any]:
        """What placing the order would charge now, a poll offer's discount included: the
        checkout page shows it before the shopper pays. Creates and claims nothing."""
        return await checkout.quote(customer, body.cart_id, body.offer_code or None)

    return routes


def orders_router(ctx: CheckoutContext, shopper: Callable[..., Awaitable[str]]) -> APIRouter:
    """The shopper's orders: history, one order, and its status changes as a stream."""
    checkout = ctx.checkout
    Shopper = Annotated[str, Depends(shopper)]
    orders = router(responses=ORDER_RESPONSES, tags=["orders"])

    @orders.get("/", response_model=OrderList)
    async def history(
        customer: Shopper,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        before: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    ) -> OrderList:
        """Your orders, newest first; pass ``next_before`` back as ``before`` for more."""
        found = await ctx.repo.orders_of(customer, limit, before)
        more = len(found) == limit
        return OrderList(
            orders=[OrderOut.model_validate(o.to_dict()) for o in found],
            next_before=found[-1].created_at if more else None,
        )

    @orders.get("/{order_id}", response_model=OrderOut)
    async def get_order(order_id: OrderId, customer: Shopper) -> dict[str, Any]:
        return (await checkout.order(customer, order_id)).to_dict()

    @orders.get(
        "/{order_id}/events",
        responses={200: {"content": {"text/event-stream": {}}}},
        response_class=StreamingResponse,
    )
    async def order_events(
        order_id: OrderId,
        customer: Shopper,
        last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    ) -> StreamingResponse:
        """Server-sent events, one per status the order reaches; ends at a final status."""
        await checkout.order(customer, order_id)  # 404 before the stream starts
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        return StreamingResponse(
            _follow(ctx, order_id, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return orders


async def _follow(ctx: ShopContext, order_id: str, after: int) -> AsyncIterator[str]:
    """PostgreSQL says what happened; the Redis stream only says when to look again.

    Each wait blocks for less than the Redis client's 1 s socket timeout: a longer XREAD
    BLOCK is cut off by that timeout as an error, and every open stream then logged a warning
    and polled PostgreSQL every two seconds. Without a signal, PostgreSQL is still read once
    per keep-alive, so a signal lost with Redis delays an update by at most that long."""
    deadline = time.monotonic() + STREAM_MAX_S
    try:  # taken before PostgreSQL is read, so no event can fall between the two
        redis_id = await ctx.events.last_id(order_id)
    except (RedisError, OSError):
        redis_id = "$"
    look = True
    quiet_since = time.monotonic()
    while True:
        if look:
            for event in await ctx.repo.order_events(order_id, after):
                after = event["seq"]
                yield f"id: {after}\nevent: status\ndata: {json.dumps(event, default=str)}\n\n"
                quiet_since = time.monotonic()
                if event["status"] in TERMINAL:
                    return
            look = False
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            return
        if now - quiet_since >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since, look = now, True
        try:
            woke = await ctx.events.wait(order_id, redis_id, int(min(BLOCK_S, left) * 1000))
            if woke:
                (redis_id, _status), look = woke[-1], True
        except (RedisError, OSError) as exc:
            log.warning("order stream %s polling PostgreSQL, Redis: %s", order_id, exc)
            look = True
            await asyncio.sleep(1.0)
