"""Admin routes for the waiting room's drops (included by the admin app): every change
audited and idempotent by ``Idempotency-Key`` through the admin gate (ADR 0026).

- ``POST /drops`` a drop (``DropIn``): 201; the same key creates it once.
- ``GET /drops`` the newest drops; ``GET /drops/{id}`` one with its queue's statistics.
- ``POST /drops/{id}/open|pause|resume|close``; ``PUT /drops/{id}/rate``.

A rate (``rate_per_s``) is fans/s, or ``"auto"``: derived from the capacity profile that
MATCHDAY_CAPACITY_PROFILE names (422 ``invalid_input`` without a readable one); the drop keeps
where it came from in ``rate_source``.
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from matchday.waitingroom.models import DROP_ID_RE, Drop, DropIn, RateIn
from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.base import body_of
from matchday.web.base import router as api_router
from matchday.web.context import ShopContext
from matchday.web.queue_api import waiting_room
from matchday.web.schemas import ErrorBody

DropPath = Annotated[str, Path(min_length=18, max_length=18, pattern=f"^{DROP_ID_RE.pattern}$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid admin session"},
    404: {"model": ErrorBody, "description": "No such drop"},
    409: {"model": ErrorBody, "description": "A SKU in another drop; a change the state refuses"},
    422: {"model": ErrorBody, "description": "Bad input; rate 'auto' without a capacity profile"},
}
MOVES = ("open", "pause", "resume", "close")


class DropOut(BaseModel):
    """A drop as operators see it (queue_api.DropInfo is what fans see)."""

    drop_id: str
    name: str
    skus: list[str]
    state: str = Field(description="scheduled, open, paused or closed")
    opens_at: float | None
    rate_per_s: float = Field(description="fans admitted per second")
    pass_ttl_s: float
    pow_bits: int
    address_limit: int
    created_at: float
    origin: str = Field(description="operator, or auto (MATCHDAY_AUTO_DROP)")
    rate_source: str = Field(
        description="operator, or 'auto: ...': the capacity profile it came from"
    )


class DropsOut(BaseModel):
    drops: list[DropOut]


class QueueStats(BaseModel):
    waiting: int
    admitted: int
    pending: int = Field(description="admitted, no hold yet")
    tickets: int
    refused: int = Field(description="refused as bots")
    behind: int = Field(description="pushed back as bots")


class DropStats(DropOut):
    available: int
    held: int
    queue: QueueStats


def router(gate: AdminGate, ctx: ShopContext) -> APIRouter:
    """The waiting room's drops: create, list, read, move, and set the rate."""
    admin = waiting_room(ctx).admin
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    drops = api_router(responses=RESPONSES, tags=["drops"])

    def shown(drop: Drop) -> dict[str, Any]:
        """The answer about ``drop``: its state as of now."""
        return body_of(DropOut, drop.to_dict(admin.clock.now()))

    @drops.post("/drops", status_code=201, response_model=DropOut)
    async def create_drop(
        request: Request,
        body: DropIn,
        call: Annotated[AdminCall, Depends(gate.require("drop.create"))],
    ) -> JSONResponse:
        """A drop of these SKUs: scheduled (open at ``opens_at``, or when opened)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 201, shown(await admin.create(body, rid))

        return await gate.run(request, call, body.model_dump(), produce, target=body.name)

    @drops.get("/drops", response_model=DropsOut)
    async def list_drops(call: Reader, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> DropsOut:
        now = admin.clock.now()
        recent = await admin.drops.recent(limit)
        return DropsOut(drops=[DropOut.model_validate(d.to_dict(now)) for d in recent])

    @drops.get("/drops/{drop_id}", response_model=DropStats)
    async def drop_stats(drop_id: DropPath, call: Reader) -> DropStats:
        """The drop, its stock, and its queue: waiting, admitted, pending (admitted, no hold
        yet), tickets, refused and pushed back as bots."""
        return DropStats.model_validate(await admin.stats(drop_id))

    for verb in MOVES:
        _move_route(drops, gate, verb, getattr(admin, verb), shown)

    @drops.put("/drops/{drop_id}/rate", response_model=DropOut)
    async def set_rate(
        request: Request,
        drop_id: DropPath,
        body: RateIn,
        call: Annotated[AdminCall, Depends(gate.require("drop.rate"))],
    ) -> JSONResponse:
        """Fans admitted per second from now on."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, shown(await admin.set_rate(drop_id, body.rate_per_s))

        return await gate.run(request, call, body.model_dump(), produce)

    return drops


def _move_route(
    drops: APIRouter,
    gate: AdminGate,
    verb: str,
    move: Callable[[str], Awaitable[Drop]],
    shown: Callable[[Drop], dict[str, Any]],
) -> None:
    Mover = Annotated[AdminCall, Depends(gate.require(f"drop.{verb}"))]

    async def route(request: Request, drop_id: DropPath, call: Mover) -> JSONResponse:
        async def produce(rid: str) -> tuple[int, Any]:
            return 200, shown(await move(drop_id))

        return await gate.run(request, call, {}, produce)

    drops.post(
        f"/drops/{{drop_id}}/{verb}",
        name=f"{verb}_drop",
        summary=f"{verb.capitalize()} the drop",
        response_model=DropOut,
    )(route)
