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

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse

from matchday.channels.admin import AllocationIn, ChannelIn
from matchday.domain.errors import MatchdayError
from matchday.inventory.commands import CHANNEL_RE
from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.context import AdminContext
from matchday.web.schemas import ErrorBody

ChannelPath = Annotated[str, Path(max_length=32, pattern=f"^{CHANNEL_RE.pattern}$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid admin session"},
    404: {"model": ErrorBody, "description": "No such channel or SKU"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; nothing was changed"},
}


def include(app: FastAPI, gate: AdminGate, ctx: AdminContext) -> None:
    admin = ctx.channels
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Creator = Annotated[AdminCall, Depends(gate.require("channel.create"))]
    Rotator = Annotated[AdminCall, Depends(gate.require("channel.rotate"))]
    Disabler = Annotated[AdminCall, Depends(gate.require("channel.disable"))]
    Enabler = Annotated[AdminCall, Depends(gate.require("channel.enable"))]
    Allocator = Annotated[AdminCall, Depends(gate.require("channel.allocate"))]

    async def issue(call: AdminCall, target: str, params: dict[str, Any], make: Any) -> Any:
        try:
            issued = await make()
        except MatchdayError as exc:
            await gate.record(call.who, call.action, target, params, exc.code)
            raise
        await gate.record(call.who, call.action, target, params, "ok")
        headers = {"Cache-Control": "no-store"}
        return JSONResponse(issued.public(), status_code=201, headers=headers)

    @app.get("/channels", responses=RESPONSES, tags=["channels"])
    async def list_channels(call: Reader) -> dict[str, Any]:
        return {"channels": [c.public() for c in await admin.channels()]}

    @app.post("/channels", status_code=201, responses=RESPONSES, tags=["channels"])
    async def create_channel(body: ChannelIn, call: Creator) -> Any:
        """A channel and its API key, shown in this answer only."""
        return await issue(call, body.channel_id, body.model_dump(), lambda: admin.create(body))

    @app.get("/channels/{channel}", responses=RESPONSES, tags=["channels"])
    async def get_channel(channel: ChannelPath, call: Reader) -> dict[str, Any]:
        return (await admin.get(channel)).public()

    @app.post("/channels/{channel}/key", status_code=201, responses=RESPONSES, tags=["channels"])
    async def rotate_key(channel: ChannelPath, call: Rotator) -> Any:
        """A new API key; the previous one is refused from now on."""
        return await issue(call, channel, {}, lambda: admin.rotate(channel))

    async def flip(request: Request, call: AdminCall, channel: str, active: bool) -> JSONResponse:
        async def produce(rid: str) -> tuple[int, Any]:
            return 200, (await admin.set_active(channel, active)).public()

        return await gate.run(request, call, {"active": active}, produce)

    @app.post("/channels/{channel}/disable", responses=RESPONSES, tags=["channels"])
    async def disable(request: Request, channel: ChannelPath, call: Disabler) -> JSONResponse:
        """Its key is refused from now on; its holds expire or are committed as usual."""
        return await flip(request, call, channel, False)

    @app.post("/channels/{channel}/enable", responses=RESPONSES, tags=["channels"])
    async def enable(request: Request, channel: ChannelPath, call: Enabler) -> JSONResponse:
        return await flip(request, call, channel, True)

    @app.put("/channels/{channel}/allocations", responses=RESPONSES, tags=["channels"])
    async def allocate(
        request: Request, channel: ChannelPath, body: AllocationIn, call: Allocator
    ) -> JSONResponse:
        """At most ``max_units``, or ``max_percent`` of the SKU's stock, held or sold on the
        channel at once; neither removes the allocation. Enforced by the engine."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, (await admin.allocate(channel, body, rid)).public()

        return await gate.run(request, call, body.model_dump(), produce)

    @app.get("/channels/{channel}/allocations", responses=RESPONSES, tags=["channels"])
    async def allocations(channel: ChannelPath, call: Reader) -> dict[str, Any]:
        await admin.get(channel)
        return {"stock": [v.public() for v in await admin.stock(channel)]}
