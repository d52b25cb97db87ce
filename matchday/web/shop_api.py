"""The shopper's carts over HTTP (mounted at /api/shop): session, carts, items.

Adding an item is the hot path of a match-day surge: a token check (one HMAC), the client's
rate-limit lease, a cart lookup, a price lookup and one coalesced call to the inventory
engine. Nothing here blocks on another shopper. Ordinary adds skip FastAPI altogether
(fast_add.py); the route below is what the OpenAPI document shows and what serves the rest.
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency aliases
# defined inside the router factories, which string annotations would hide from it.

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse

from matchday.waitingroom.gate import PASS_HEADER, PassGate
from matchday.web import queue_api
from matchday.web.base import idempotent, include, make_app, router
from matchday.web.context import EngineContext, ShopContext
from matchday.web.fast_add import (
    ADD_PATH,
    CART_ID_PATTERN,
    LeanAdd,
    LeanFastAPI,
    front_route,
)
from matchday.web.schemas import AddItem, CartOut, ErrorBody, LineOut, SessionOut, SetQuantity

CartId = Annotated[str, Path(min_length=3, max_length=64, pattern=CART_ID_PATTERN)]
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]

SHOPPER_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid shopper token"},
    404: {"model": ErrorBody, "description": "No such cart, product or line"},
    409: {"model": ErrorBody, "description": "Out of stock, over a limit, or cart closed"},
    410: {"model": ErrorBody, "description": "The hold expired"},
}
Shopper = Callable[..., Awaitable[str]]


def build(ctx: EngineContext, *, lean_route: bool = True) -> FastAPI:
    """The shop app; ``lean_route=False`` leaves every add to the FastAPI route (the
    equivalence tests compare the two)."""
    app = make_app(
        "matchday shop",
        "Shopper sessions and carts. Adding an item reserves stock for a while; "
        "the cart shows each hold's expiry.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
        app_class=LeanFastAPI,
    )
    shopper = shopper_of(ctx)
    gate = queue_api.waiting_room(ctx).gate
    lean = LeanAdd(ctx=ctx, carts=ctx.carts, gate=gate)
    include(
        app,
        session_router(ctx),
        carts_router(ctx, shopper),
        items_router(ctx, shopper, lean, gate),
        *queue_api.routers(ctx, shopper),
    )
    app.state.lean_add = lean
    if lean_route:  # in front of the app's whole stack and the documented route: fast_add.py
        assert isinstance(app, LeanFastAPI)
        app.put_in_front(lean)
    front_route(app, ADD_PATH, "POST")
    return app


def shopper_of(ctx: ShopContext) -> Shopper:
    """The dependency naming the shopper: the bearer token, then the shopper's rate limit."""

    async def shopper(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> str:
        customer = ctx.identity.customer(authorization)
        await ctx.limiter.check(f"c:{customer}")
        return customer

    return shopper


def session_router(ctx: ShopContext) -> APIRouter:
    """``POST /session``: a new shopper, rate-limited by client address."""
    sessions = router(tags=["session"])

    async def anonymous(request: Request) -> None:
        await ctx.limiter.check(f"ip:{request.client.host if request.client else '-'}")

    @sessions.post(
        "/session", status_code=201, response_model=SessionOut, dependencies=[Depends(anonymous)]
    )
    async def new_session() -> SessionOut:
        """A new shopper id and its bearer token."""
        customer_id, token = ctx.identity.new_customer()
        return SessionOut(customer_id=customer_id, token=token)

    return sessions


def carts_router(ctx: EngineContext, shopper: Shopper) -> APIRouter:
    """``POST /carts`` (idempotent) and ``GET /carts/{cart_id}``."""
    carts = ctx.carts
    Customer = Annotated[str, Depends(shopper)]
    routes = router(responses=SHOPPER_RESPONSES, tags=["carts"])

    @routes.post("/carts", status_code=201, response_model=CartOut)
    async def create_cart(request: Request, customer: Customer) -> JSONResponse:
        """Open a cart. With the same Idempotency-Key, the same cart comes back."""

        async def produce(key: str) -> tuple[int, Any]:
            cart = await carts.create(customer, key)
            return 201, cart.to_dict(time.time())

        return await idempotent(request, ctx.idempotency, f"cart:{customer}", None, produce)

    @routes.get("/carts/{cart_id}", response_model=CartOut)
    async def view_cart(cart_id: CartId, customer: Customer) -> dict[str, Any]:
        """The cart's lines, each with its hold's expiry (expired lines show as expired)."""
        return (await carts.view(customer, cart_id)).to_dict(time.time())

    return routes


def items_router(ctx: EngineContext, shopper: Shopper, lean: LeanAdd, gate: PassGate) -> APIRouter:
    """A cart's lines: add (reserve), change the quantity, remove (release)."""
    carts = ctx.carts
    Customer = Annotated[str, Depends(shopper)]
    items = router(responses=SHOPPER_RESPONSES, tags=["carts"])
    line = "/carts/{cart_id}/items/{sku}"

    @items.post(ADD_PATH, status_code=201, response_model=LineOut)
    async def add_item(
        request: Request, cart_id: CartId, item: AddItem, customer: Customer
    ) -> JSONResponse:
        """Reserve ``qty`` units of ``sku`` in this cart until the hold expires."""
        # Ordinary requests never get here: fast_add.LeanAdd answers them with this same
        # function; this route serves the rest (and documents the operation).
        key, passes = request.headers.get("idempotency-key"), request.headers.get(PASS_HEADER)
        return await lean.add(key, request.url.path, customer, cart_id, item, passes)

    @items.put(line, response_model=CartOut)
    async def set_quantity(
        request: Request, cart_id: CartId, sku: SkuPath, body: SetQuantity, customer: Customer
    ) -> JSONResponse:
        """Change a line's quantity in place (0 removes it)."""
        if body.qty > 0 and gate.needs(sku):  # a drop's SKU grows only with its pass
            await gate.require(sku, request.headers.get(PASS_HEADER), customer)

        async def produce(key: str) -> tuple[int, Any]:
            cart = await carts.set_quantity(customer, cart_id, sku, body.qty, key)
            return 200, cart.to_dict(time.time())

        scope = f"qty:{customer}"
        return await idempotent(request, ctx.idempotency, scope, body.model_dump(), produce)

    @items.delete(line, response_model=CartOut)
    async def remove_item(
        request: Request, cart_id: CartId, sku: SkuPath, customer: Customer
    ) -> JSONResponse:
        """Release the line's hold: its units are back on sale at once."""

        async def produce(key: str) -> tuple[int, Any]:
            cart = await carts.remove(customer, cart_id, sku, key)
            return 200, cart.to_dict(time.time())

        return await idempotent(request, ctx.idempotency, f"del:{customer}", None, produce)

    return items
