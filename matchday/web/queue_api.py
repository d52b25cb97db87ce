"""The waiting room over HTTP, for fans (included in the shop app, at /api/shop/drops).

- ``GET /drops?sku=``: the drop a SKU is in (the storefront asks after a ``pass_required``).
- ``GET /drops/{id}``: the drop as fans see it (state, opening time, SKUs, work asked).
- ``POST /drops/{id}/challenge``: a proof-of-work puzzle bound to the shopper.
- ``POST /drops/{id}/tickets``: the shopper's ticket (with the puzzle's answer, if any);
  the same again answers the same place.
- ``GET /drops/{id}/status?ticket=``: position and estimated wait; polling advances the queue.
- ``GET /drops/{id}/events?ticket=``: the same as server-sent events (EventSource cannot send
  an Authorization header: the ticket, signed and bound to the shopper, is the credential).
- ``POST /drops/{id}/pass``: the pass of an admitted fan; send it as ``X-Matchday-Pass`` on
  add-to-cart and checkout of the drop's SKUs.
"""

# No "from __future__ import annotations": FastAPI resolves the routes' annotations.

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from matchday.domain.errors import MatchdayError, NotFound
from matchday.inventory.commands import SKU_RE
from matchday.waitingroom.models import ADMITTED, CLOSED, DROP_ID_RE
from matchday.waitingroom.service import EXPIRED, WaitingRoom
from matchday.web.base import router
from matchday.web.context import ShopContext, WaitingRoomParts
from matchday.web.schemas import ErrorBody

DropPath = Annotated[str, Path(min_length=18, max_length=18, pattern=f"^{DROP_ID_RE.pattern}$")]
TicketQuery = Annotated[str, Query(min_length=1, max_length=300)]
SkuQuery = Annotated[str, Query(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid shopper token"},
    403: {"model": ErrorBody, "description": "Forged or another shopper's token; a bot"},
    404: {"model": ErrorBody, "description": "No such drop"},
    409: {"model": ErrorBody, "description": "Drop closed, or not admitted yet"},
    410: {"model": ErrorBody, "description": "Ticket or pass expired"},
    422: {"model": ErrorBody, "description": "Malformed ticket, pass or proof of work"},
}
# A status event at most this often per stream: a fan's position moves by rate * this.
STREAM_POLL_S = 1.0
STREAM_MAX_S = 300.0  # then the client reconnects (EventSource does so by itself)
KEEPALIVE_S = 15.0
_FINAL = frozenset({ADMITTED, CLOSED, EXPIRED})


def waiting_room(ctx: ShopContext) -> WaitingRoomParts:
    """The process's one waiting room (built by matchday.bootstrap)."""
    return ctx.waitingroom


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    challenge: str | None = Field(None, max_length=300)
    nonce: str | None = Field(None, max_length=64)


class DropOfSku(BaseModel):
    sku: str
    drop_id: str


class DropInfo(BaseModel):
    """A drop as fans see it (admin_drops shows operators the rest)."""

    drop_id: str
    name: str
    skus: list[str]
    state: str
    opens_at: float | None
    pow_bits: int


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ticket: str = Field(min_length=1, max_length=300)


class ChallengeOut(BaseModel):
    challenge: str
    bits: int = Field(description="zero bits sha256(challenge + '.' + nonce) must start with")
    expires_in_s: int


class TicketStatus(BaseModel):
    """Where a fan stands: ``state`` is scheduled, waiting, admitted, expired, paused,
    sold_out or closed."""

    drop_id: str
    state: str
    position: int | None = Field(description="1 = next in line")
    waiting: int
    estimated_wait_s: float | None
    held: int = Field(description="units in carts that may still come back (sold out)")
    pass_expires_at: float | None


class Joined(TicketStatus):
    ticket: str = Field(description="signed, bound to the shopper: the place in the queue")


class PassOut(BaseModel):
    pass_: str = Field(alias="pass", description="send as X-Matchday-Pass")
    expires_at: int
    skus: list[str]


def routers(ctx: ShopContext, shopper: Callable[..., Awaitable[str]]) -> list[APIRouter]:
    """The waiting room's routes, for the shop app to include: drops, then tickets."""
    return [drops_router(ctx, shopper), tickets_router(ctx, shopper)]


def drops_router(ctx: ShopContext, shopper: Callable[..., Awaitable[str]]) -> APIRouter:
    """A drop as fans see it: which drop a SKU is in, the drop, its proof-of-work puzzle."""
    parts = waiting_room(ctx)
    room = parts.room
    Shopper = Annotated[str, Depends(shopper)]
    drops = router(responses=RESPONSES, tags=["waiting room"])

    async def by_address(request: Request) -> str:
        address = request.client.host if request.client else "-"
        await ctx.limiter.check(f"ip:{address}")
        return address

    @drops.get("/drops", response_model=DropOfSku)
    async def drop_of(sku: SkuQuery, _: Annotated[str, Depends(by_address)]) -> DropOfSku:
        """The drop that ``sku`` is in (404: none; it needs no pass)."""
        await parts.gate.fresh()
        drop_id = parts.gate.skus.get(sku)
        if drop_id is None:
            raise NotFound("drop of SKU", sku)
        return DropOfSku(sku=sku, drop_id=drop_id)

    @drops.get("/drops/{drop_id}", response_model=DropInfo)
    async def drop_info(drop_id: DropPath, _: Annotated[str, Depends(by_address)]) -> DropInfo:
        """The drop as fans see it."""
        drop = await room.drop(drop_id)
        return DropInfo(
            drop_id=drop.drop_id,
            name=drop.name,
            skus=list(drop.skus),
            state=drop.state_at(time.time()),
            opens_at=drop.opens_at,
            pow_bits=drop.pow_bits,
        )

    @drops.post("/drops/{drop_id}/challenge", response_model=ChallengeOut)
    async def challenge(drop_id: DropPath, customer: Shopper) -> ChallengeOut:
        """A proof-of-work puzzle: find a nonce with sha256(challenge + "." + nonce) starting
        with ``bits`` zero bits, and send both when joining."""
        return ChallengeOut.model_validate(await room.challenge(drop_id, customer))

    return drops


def tickets_router(ctx: ShopContext, shopper: Callable[..., Awaitable[str]]) -> APIRouter:
    """A fan's place in a drop's queue: the ticket, its status (polled or streamed), the pass."""
    parts = waiting_room(ctx)
    room = parts.room
    Shopper = Annotated[str, Depends(shopper)]
    tickets = router(responses=RESPONSES, tags=["waiting room"])

    async def by_ticket(drop_id: str, ticket: str) -> None:
        held = room.tokens.read_ticket(ticket, drop_id, time.time())
        await ctx.limiter.check(f"c:{held.customer}")

    @tickets.post("/drops/{drop_id}/tickets", status_code=201, response_model=Joined)
    async def join(request: Request, drop_id: DropPath, body: JoinIn, customer: Shopper) -> Joined:
        """Join the queue: a signed ticket holding your place. One per shopper per drop."""
        address = request.client.host if request.client else "-"
        status = await room.join(drop_id, customer, address, body.challenge, body.nonce)
        return Joined.model_validate(status.to_dict())

    @tickets.get("/drops/{drop_id}/status", response_model=TicketStatus)
    async def status(drop_id: DropPath, ticket: TicketQuery) -> TicketStatus:
        """Your position and estimated wait (``admitted``: claim your pass)."""
        await by_ticket(drop_id, ticket)
        parts.tick()  # an automatic drop's fans keep its demand measured while they wait
        return TicketStatus.model_validate((await room.status(drop_id, ticket)).to_dict())

    @tickets.get(
        "/drops/{drop_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(drop_id: DropPath, ticket: TicketQuery) -> StreamingResponse:
        """The status as server-sent events, each time it changes; ends once admitted."""
        await by_ticket(drop_id, ticket)
        first = await room.status(drop_id, ticket)  # refusals before the stream starts
        return StreamingResponse(
            _follow(room, drop_id, ticket, first.to_dict()),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @tickets.post("/drops/{drop_id}/pass", response_model=PassOut)
    async def claim(drop_id: DropPath, body: ClaimIn, customer: Shopper) -> PassOut:
        """The pass of an admitted fan: send it as X-Matchday-Pass when adding the drop's
        SKUs to a cart and at checkout."""
        return PassOut.model_validate(await room.claim(drop_id, body.ticket, customer))

    return tickets


async def _follow(
    room: WaitingRoom, drop_id: str, ticket: str, first: dict[str, Any]
) -> AsyncIterator[str]:
    deadline = time.monotonic() + STREAM_MAX_S
    shown: dict[str, Any] | None = None
    current = first
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        if current != shown:
            yield f"event: status\ndata: {json.dumps(current)}\n\n"
            shown, quiet_since = current, time.monotonic()
            if current["state"] in _FINAL:
                return
        if time.monotonic() >= deadline:
            return
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(STREAM_POLL_S)
        try:
            current = (await room.status(drop_id, ticket)).to_dict()
        except MatchdayError as exc:  # Redis away, ticket expired: say so and end
            yield f"event: error\ndata: {json.dumps(exc.to_dict())}\n\n"
            return
