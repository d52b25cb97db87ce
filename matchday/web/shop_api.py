"""The shopper's carts over HTTP (mounted at /api/shop): session, carts, items.

Adding an item is the hot path of a match-day surge: a token check (one HMAC), the client's
rate-limit lease, a cart lookup, a price lookup and one coalesced call to the inventory
engine. Nothing here blocks on another shopper. Ordinary adds skip FastAPI altogether
(fast_add.py); the route below is what the OpenAPI document shows and what serves the rest.
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency aliases
# defined inside build(), which string annotations would hide from it.

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse

from matchday.waitingroom.gate import PASS_HEADER
from matchday.web import queue_api
from matchday.web.base import idempotent, make_app
from matchday.web.context import EngineContext
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


def build(ctx: EngineContext, *, lean_route: bool = True) -> FastAPI:
    """The shop app; ``lean_route=False`` leaves every add to the FastAPI route (the
    equivalence tests compare the two)."""
    carts = ctx.carts
    app = make_app(
        "matchday shop",
        "Shopper sessions and carts. Adding an item reserves stock for a while; "
        "the cart shows each hold's expiry.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
        app_class=LeanFastAPI,
    )

    async def shopper(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> str:
        customer = ctx.identity.customer(authorization)
        await ctx.limiter.check(f"c:{customer}")
        return customer

    async def anonymous(request: Request) -> None:
        await ctx.limiter.check(f"ip:{request.client.host if request.client else '-'}")

    Shopper = Annotated[str, Depends(shopper)]
    gate = queue_api.waiting_room(ctx).gate
    lean = LeanAdd(ctx, carts, gate)

    @app.post(
        "/session",
        status_code=201,
        response_model=SessionOut,
        dependencies=[Depends(anonymous)],
        tags=["session"],
    )
    async def new_session() -> SessionOut:
        """A new shopper id and its bearer token."""
        customer_id, token = ctx.identity.new_customer()
        return SessionOut(customer_id=customer_id, token=token)

    @app.post(
        "/carts",
        status_code=201,
        response_model=CartOut,
        responses=SHOPPER_RESPONSES,
        tags=["carts"],
    )
    async def create_cart(request: Request, customer: Shopper) -> JSONResponse:
        """Open a cart. With the same Idempotency-Key, the same cart comes back."""

        async def produce(key: str) -> tuple[int, Any]:
            cart = await carts.create(customer, key)
            return 201, cart.to_dict(time.time())

        return await idempotent(request, ctx.idempotency, f"cart:{customer}", None, produce)

    @app.get(
        "/carts/{cart_id}", response_model=CartOut, responses=SHOPPER_RESPONSES, tags=["carts"]
    )
    async def view_cart(cart_id: CartId, customer: Shopper) -> dict[str, Any]:
        """The cart's lines, each with its hold's expiry (expired lines show as expired)."""
        return (await carts.view(customer, cart_id)).to_dict(time.time())

    @app.post(
        ADD_PATH,
        status_code=201,
        response_model=LineOut,
        responses=SHOPPER_RESPONSES,
        tags=["carts"],
    )
    async def add_item(
        request: Request, cart_id: CartId, item: AddItem, customer: Shopper
    ) -> JSONResponse:
        """Reserve ``qty`` units of ``sku`` in this cart until the hold expires."""
        # Ordinary requests never get here: fast_add.LeanAdd answers them with this same
        # function; this route serves the rest (and documents the operation).
        headers = request.headers
        return await lean.add(
            headers.get("idempotency-key"),
            request.url.path,
            customer,
            cart_id,
            item,
            headers.get(PASS_HEADER),
        )

    @app.put(
        "/carts/{cart_id}/items/{sku}",
        response_model=CartOut,
        responses=SHOPPER_RESPONSES,
        tags=["carts"],
    )
    async def set_quantity(
        request: Request, cart_id: CartId, sku: SkuPath, body: SetQuantity, customer: Shopper
    ) -> JSONResponse:
        """Change a line's quantity in place (0 removes it)."""
        if body.qty > 0 and gate.needs(sku):  # a drop's SKU grows only with its pass
            await gate.require(sku, request.headers.get(PASS_HEADER), customer)

        async def produce(key: str) -> tuple[int, Any]:
            cart = await carts.set_quantity(customer, cart_id, sku, body.qty, key)
            return 200, cart.to_dict(time.time())

        return await idempotent(
            request, ctx.idempotency, f"qty:{customer}", body.model_dump(), produce
        )

    @app.delete(
        "/carts/{cart_id}/items/{sku}",
        response_model=CartOut,
        responses=SHOPPER_RESPONSES,
        tags=["carts"],
    )
    async def remove_item(
        request: Request, cart_id: CartId, sku: SkuPath, customer: Shopper
    ) -> JSONResponse:
        """Release the line's hold: its units are back on sale at once."""

        async def produce(key: str) -> tuple[int, Any]:
            cart = await carts.remove(customer, cart_id, sku, key)
            return 200, cart.to_dict(time.time())

        return await idempotent(request, ctx.idempotency, f"del:{customer}", None, produce)

    queue_api.include(app, ctx, shopper)
    app.state.lean_add = lean
    if lean_route:  # in front of the app's whole stack and the documented route: fast_add.py
        assert isinstance(app, LeanFastAPI)
        app.put_in_front(lean)
    front_route(app, ADD_PATH, "POST")
    return app
