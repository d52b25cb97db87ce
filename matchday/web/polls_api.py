"""Live polls over HTTP (mounted at /api/polls): open polls by placement, one poll, voting,
and live results as server-sent events. Admins create and close polls (admin_polls.py).

A vote is one Lua call in Redis (matchday.polls.tally); it never reaches the inventory engine
or checkout. Votes have their own, tighter rate limit per shopper.
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency aliases
# defined inside polls_router(), which string annotations would hide from it.

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from matchday.domain.errors import Unavailable
from matchday.polls.models import CLOSED, PLACEMENT_RE, POLL_ID_RE, VoteIn
from matchday.polls.service import PollService
from matchday.web.base import body_of, idempotent, include, make_app, router
from matchday.web.context import ShopContext
from matchday.web.ratelimit import RateLimiter
from matchday.web.schemas import ErrorBody

PollId = Annotated[str, Path(min_length=6, max_length=42, pattern=POLL_ID_RE.pattern)]
PlacementQ = Annotated[str, Query(max_length=72, pattern=PLACEMENT_RE.pattern)]

# A shopper votes a handful of times a page, not tens per second.
VOTE_PER_S = 2.0
VOTE_BURST = 10
# A results stream ends after this long (the client reconnects); keep-alives in between.
STREAM_MAX_S = 300.0
KEEPALIVE_S = 15.0

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid shopper token"},
    404: {"model": ErrorBody, "description": "No such poll"},
    409: {"model": ErrorBody, "description": "Poll closed, or you voted another option"},
}


class OptionOut(BaseModel):
    option_id: str
    label: str
    sku: str | None


class OfferOut(BaseModel):
    """A voter's personal offer: ``code`` is what checkout takes as ``offer_code``."""

    code: str
    percent_off: int
    sku_prefix: str | None = Field(description="always null: an offer scopes a whole product")
    product_slug: str
    expires_at: float


class PollOut(BaseModel):
    """A poll with its results; ``my_vote`` and ``offer`` are the caller's (null without a
    shopper token, and in the admin API)."""

    poll_id: str
    question: str
    placement: str
    status: str = Field(description="open or closed")
    closes_at: float | None
    options: list[OptionOut]
    has_offer: bool
    results: dict[str, int] = Field(description="votes per option_id")
    total: int
    my_vote: str | None
    offer: OfferOut | None


class PollsOut(BaseModel):
    polls: list[PollOut]


class VoteOut(BaseModel):
    poll_id: str
    option_id: str
    results: dict[str, int] = Field(description="votes per option_id")
    total: int
    offer: OfferOut | None = Field(description="the voter's offer, when the poll carries one")


# A vote answers a repeat of itself 200, with the same results.
REPEAT: dict[int | str, dict[str, Any]] = {
    200: {"model": VoteOut, "description": "A repeat of your vote: the results"}
}


def build(ctx: ShopContext) -> FastAPI:
    app = make_app(
        "matchday polls",
        "Live polls on product and checkout pages: one vote per shopper, live results, and "
        "a personal offer code for voters when the poll carries one.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
    )
    include(app, polls_router(ctx))
    return app


def polls_router(ctx: ShopContext) -> APIRouter:
    """Open polls by placement, one poll, a vote, and the live results."""
    polls = ctx.polls  # the process's one (its memo and live hub are shared by its apps)
    votes_limiter = RateLimiter(
        ctx.redis, per_s=VOTE_PER_S, burst=VOTE_BURST, prefix="matchday:rl:vote"
    )

    async def shopper(authorization: Annotated[str | None, Header()] = None) -> str:
        customer = ctx.identity.customer(authorization)
        await votes_limiter.check(customer)
        return customer

    async def maybe_shopper(authorization: Annotated[str | None, Header()] = None) -> str | None:
        return ctx.identity.customer(authorization) if authorization else None

    Shopper = Annotated[str, Depends(shopper)]
    MaybeShopper = Annotated[str | None, Depends(maybe_shopper)]
    routes = router(responses=RESPONSES, tags=["polls"])

    @routes.get("/", response_model=PollsOut)
    async def list_polls(placement: PlacementQ, customer: MaybeShopper) -> PollsOut:
        """Open polls for ``product:<slug>`` or ``checkout``, newest first."""
        return PollsOut.model_validate({"polls": await polls.listing(placement, customer)})

    @routes.get("/{poll_id}", response_model=PollOut)
    async def get_poll(poll_id: PollId, customer: MaybeShopper) -> PollOut:
        """One poll with its results; with a shopper token also your vote and offer."""
        return PollOut.model_validate(await polls.view(poll_id, customer))

    @routes.post("/{poll_id}/votes", status_code=201, response_model=VoteOut, responses=REPEAT)
    async def vote(
        request: Request, poll_id: PollId, body: VoteIn, customer: Shopper
    ) -> JSONResponse:
        """Vote once. The same option again answers the same (200); another one is 409."""

        async def produce(key: str) -> tuple[int, Any]:
            new, answer = await polls.vote(poll_id, customer, body.option_id)
            return (201 if new else 200), body_of(VoteOut, answer)

        scope = f"vote:{customer}"
        return await idempotent(request, ctx.idempotency, scope, body.model_dump(), produce)

    @routes.get(
        "/{poll_id}/events",
        responses={200: {"content": {"text/event-stream": {}}}},
        response_class=StreamingResponse,
    )
    async def events(poll_id: PollId) -> StreamingResponse:
        """``event: results`` now and on every change; ends when the poll closes."""
        poll = await polls.poll(poll_id)  # 404 before the stream starts
        return StreamingResponse(
            _follow(polls, poll.poll_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return routes


async def _follow(polls: PollService, poll_id: str) -> AsyncIterator[str]:
    deadline = time.monotonic() + STREAM_MAX_S
    async with polls.live.watching(poll_id) as watch:
        seen = watch.version
        sent: str | None = None
        while True:
            try:
                snap = await polls.snapshot(await polls.poll(poll_id))
            except Unavailable:  # both stores away: say nothing new, keep the stream
                snap = None
            if snap is not None:
                data = json.dumps(snap)
                if data != sent:
                    sent = data
                    yield f"event: results\ndata: {data}\n\n"
                if snap["status"] == CLOSED:
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            version = await polls.live.wait(watch, seen, min(KEEPALIVE_S, left))
            if version == seen:
                yield ": keep-alive\n\n"
            seen = version
            await asyncio.sleep(0)
