"""Admin routes for marketplace channels (included by the admin app, ADR 0028).

Behind the admin session, rate limit and audit of every other admin route (``gate``):

- ``GET /channels``, ``GET /channels/{id}``: channels (never a key).
- ``POST /channels`` (``ChannelIn``): 201 with the channel and its API key, shown once.
- ``POST /channels/{id}/key``: a new key; the old one stops working at once.
- ``POST /channels/{id}/disable``, ``/enable``: a disabled channel's key is refused.
- ``PUT /channels/{id}/allocations`` (``AllocationIn``): a SKU's allocation, set through the
  engine (which enforces it); ``GET /channels/{id}/allocations`` every SKU it has a share of.

A key is in one answer only: the two routes that issue one are audited without it and never
go through the idempotency store (a stored answer would be a stored credential).
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from matchday.channels.admin import AllocationIn, ChannelAdmin, ChannelIn, Issued
from matchday.domain.errors import MatchdayError
from matchday.inventory.commands import CHANNEL_RE
from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.base import body_of, router
from matchday.web.channels_api import ChannelStockOut
from matchday.web.context import AdminContext
from matchday.web.schemas import ErrorBody

ChannelPath = Annotated[str, Path(max_length=32, pattern=f"^{CHANNEL_RE.pattern}$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid admin session"},
    404: {"model": ErrorBody, "description": "No such channel or SKU"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; nothing was changed"},
}


class ChannelOut(BaseModel):
    """A channel, never its key."""

    channel_id: str
    name: str
    active: bool
    created_at: float
    updated_at: float
    key_issued_at: float


class ChannelsOut(BaseModel):
    channels: list[ChannelOut]


class ChannelIssued(ChannelOut):
    """A channel and the API key it was just given: in this answer only."""

    api_key: str = Field(description="Send as 'Authorization: Bearer <api_key>'; not stored")


class AllocationsOut(BaseModel):
    stock: list[ChannelStockOut]


def routers(gate: AdminGate, ctx: AdminContext) -> list[APIRouter]:
    """The channel routes, for the admin app to include: channels, their allocations."""
    return [channels_router(gate, ctx.channels), allocations_router(gate, ctx.channels)]


def channels_router(gate: AdminGate, admin: ChannelAdmin) -> APIRouter:
    """Channels: list, create, read, rotate the key, disable and enable."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Creator = Annotated[AdminCall, Depends(gate.require("channel.create"))]
    Rotator = Annotated[AdminCall, Depends(gate.require("channel.rotate"))]
    Disabler = Annotated[AdminCall, Depends(gate.require("channel.disable"))]
    Enabler = Annotated[AdminCall, Depends(gate.require("channel.enable"))]
    channels = router(responses=RESPONSES, tags=["channels"])

    @channels.get("/channels", response_model=ChannelsOut)
    async def list_channels(call: Reader) -> ChannelsOut:
        found = await admin.channels()
        return ChannelsOut(channels=[ChannelOut.model_validate(c.public()) for c in found])

    @channels.post("/channels", status_code=201, response_model=ChannelIssued)
    async def create_channel(body: ChannelIn, call: Creator) -> JSONResponse:
        """A channel and its API key, shown in this answer only."""
        made = admin.create(body)
        return await _issue(gate, call, body.channel_id, body.model_dump(), made)

    @channels.get("/channels/{channel}", response_model=ChannelOut)
    async def get_channel(channel: ChannelPath, call: Reader) -> ChannelOut:
        return ChannelOut.model_validate((await admin.get(channel)).public())

    @channels.post("/channels/{channel}/key", status_code=201, response_model=ChannelIssued)
    async def rotate_key(channel: ChannelPath, call: Rotator) -> JSONResponse:
        """A new API key; the previous one is refused from now on."""
        return await _issue(gate, call, channel, {}, admin.rotate(channel))

    @channels.post("/channels/{channel}/disable", response_model=ChannelOut)
    async def disable(request: Request, channel: ChannelPath, call: Disabler) -> JSONResponse:
        """Its key is refused from now on; its holds expire or are committed as usual."""
        return await _flip(gate, admin, request, call, channel, active=False)

    @channels.post("/channels/{channel}/enable", response_model=ChannelOut)
    async def enable(request: Request, channel: ChannelPath, call: Enabler) -> JSONResponse:
        return await _flip(gate, admin, request, call, channel, active=True)

    return channels


def allocations_router(gate: AdminGate, admin: ChannelAdmin) -> APIRouter:
    """What share of a SKU's stock a channel may hold or sell: set one, list them."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Allocator = Annotated[AdminCall, Depends(gate.require("channel.allocate"))]
    shares = router(responses=RESPONSES, tags=["channels"])

    @shares.put("/channels/{channel}/allocations", response_model=ChannelStockOut)
    async def allocate(
        request: Request, channel: ChannelPath, body: AllocationIn, call: Allocator
    ) -> JSONResponse:
        """At most ``max_units``, or ``max_percent`` of the SKU's stock, held or sold on the
        channel at once; neither removes the allocation. Enforced by the engine."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, body_of(
                ChannelStockOut, (await admin.allocate(channel, body, rid)).public()
            )

        return await gate.run(request, call, body.model_dump(), produce)

    @shares.get("/channels/{channel}/allocations", response_model=AllocationsOut)
    async def allocations(channel: ChannelPath, call: Reader) -> AllocationsOut:
        await admin.get(channel)
        found = await admin.stock(channel)
        return AllocationsOut(stock=[ChannelStockOut.model_validate(v.public()) for v in found])

    return shares


async def _issue(
    gate: AdminGate, call: AdminCall, target: str, params: dict[str, Any], made: Awaitable[Issued]
) -> JSONResponse:
    """Await the issuing call and audit it, the key left out of both."""
    try:
        issued = await made
    except MatchdayError as exc:
        await gate.record(call.who, call.action, target, params, exc.code)
        raise
    await gate.record(call.who, call.action, target, params, "ok")
    headers = {"Cache-Control": "no-store"}
    return JSONResponse(body_of(ChannelIssued, issued.public()), status_code=201, headers=headers)


async def _flip(
    gate: AdminGate,
    admin: ChannelAdmin,
    request: Request,
    call: AdminCall,
    channel: str,
    *,
    active: bool,
) -> JSONResponse:
    async def produce(rid: str) -> tuple[int, Any]:
        return 200, body_of(ChannelOut, (await admin.set_active(channel, active)).public())

    return await gate.run(request, call, {"active": active}, produce)
