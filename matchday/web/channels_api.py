"""Marketplace channels over HTTP (mounted at /api/channels, ADR 0028).

Every route needs the channel's API key (``Authorization: Bearer mdch_...``): 401 without a
valid one, 403 for a disabled channel. The channel sells through the same engine calls as
the shop, each idempotent by the channel's ``request_id`` (a retry gets the first answer):

- ``POST /reserve``: hold units for one of its orders, within its allocation (201; 409
  ``allocation_exceeded`` or ``out_of_stock`` with what is left).
- ``POST /commit``: the order was paid: held becomes sold.
- ``POST /release``: the order was cancelled: the units go back.
- ``GET /stock?sku=..``: its allocation and what it can still sell, per SKU (every SKU it has
  a share of, without ``sku``), from durable counters.

Bad input is a 4xx in matchday's error shape and changes nothing; a busy engine is a 503
with Retry-After (the shop's handlers).
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from matchday.channels.sales import DEFAULT_TTL_S, ChannelSales, public
from matchday.inventory.commands import SKU_RE
from matchday.web.base import include, make_app, router
from matchday.web.context import ShopContext
from matchday.web.schemas import ErrorBody

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
RequestId = Annotated[str, Field(pattern=_ID, description="the channel's idempotency key")]
Ref = Annotated[str, Field(pattern=_ID)]
Sku = Annotated[str, Field(pattern=f"^{SKU_RE.pattern}$")]
BEARER = HTTPBearer(auto_error=False)
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid channel API key"},
    403: {"model": ErrorBody, "description": "The channel is disabled"},
    404: {"model": ErrorBody, "description": "No such SKU or reservation (of this channel)"},
    409: {"model": ErrorBody, "description": "Allocation used, out of stock, or closed"},
    410: {"model": ErrorBody, "description": "The reservation expired"},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReserveIn(_In):
    request_id: RequestId
    sku: Sku
    qty: Annotated[int, Field(ge=1, le=1000, strict=True)]
    order_id: Ref = Field(description="the marketplace's order")
    customer_id: Ref = Field(description="the marketplace's buyer (per-customer limits)")
    ttl_s: Annotated[float, Field(ge=60, le=24 * 3600)] = DEFAULT_TTL_S


class CommitIn(_In):
    request_id: RequestId
    reservation_id: Ref
    order_id: Ref


class ReleaseIn(_In):
    request_id: RequestId
    reservation_id: Ref


class HeldOut(BaseModel):
    reservation_id: str
    sku: str
    qty: int
    order_id: str | None
    status: str
    expires_at: float


class ChannelStockOut(BaseModel):
    """A SKU as one channel sees it, from durable counters (as of the last group commit)."""

    sku: str
    channel_id: str
    available: int = Field(description="the SKU's available units, for everyone")
    max_units: int | None
    max_percent: int | None
    cap: int | None = Field(description="the allocation in units now; null: no allocation")
    held: int
    sold: int
    remaining_allocation: int | None
    available_to_channel: int


class StockOut(BaseModel):
    channel_id: str
    stock: list[ChannelStockOut]


def build(ctx: ShopContext, sales: ChannelSales) -> FastAPI:
    app = make_app(
        "matchday channels",
        "Marketplace channels sell against the shop's inventory engine, within their "
        "allocations. Send 'Authorization: Bearer <channel API key>'. ADR 0028.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
    )
    include(app, sales_router(ctx, sales))
    return app


def sales_router(ctx: ShopContext, sales: ChannelSales) -> APIRouter:
    """A channel's sales: reserve, commit, release, and its stock; each behind its API key."""

    async def channel_of(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> str:
        channel = await sales.authenticate(credentials.credentials if credentials else None)
        await ctx.limiter.check(f"channel:{channel}")
        return channel

    Channel = Annotated[str, Depends(channel_of)]
    routes = router(responses=RESPONSES)

    @routes.post("/reserve", status_code=201, response_model=HeldOut)
    async def reserve(body: ReserveIn, channel: Channel) -> Any:
        held = await sales.reserve(
            channel,
            body.request_id,
            body.sku,
            body.qty,
            body.order_id,
            body.customer_id,
            body.ttl_s,
        )
        return public(held)

    @routes.post("/commit", response_model=HeldOut)
    async def commit(body: CommitIn, channel: Channel) -> Any:
        return public(
            await sales.commit(channel, body.request_id, body.reservation_id, body.order_id)
        )

    @routes.post("/release", response_model=HeldOut)
    async def release(body: ReleaseIn, channel: Channel) -> Any:
        return public(await sales.release(channel, body.request_id, body.reservation_id))

    @routes.get("/stock", response_model=StockOut)
    async def stock(
        channel: Channel,
        sku: Annotated[list[Sku] | None, Query(max_length=100)] = None,
    ) -> StockOut:
        """Per SKU: its allocation, held and sold units, and ``available_to_channel``."""
        views = await sales.stock(channel, sku)
        return StockOut(
            channel_id=channel, stock=[ChannelStockOut.model_validate(v.public()) for v in views]
        )

    return routes
