"""Admin routes for polls (included by the admin app): create, list, close; every change
audited and idempotent by ``Idempotency-Key`` through the admin gate.

- ``POST /polls`` a poll (``PollIn``): 201 with the poll; the same key creates it once.
- ``GET /polls`` the newest polls, open and closed, with their results.
- ``POST /polls/{poll_id}/close`` closes it: votes are refused from then on and live
  results streams end.
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from matchday.polls.models import POLL_ID_RE, PollIn
from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.base import body_of
from matchday.web.base import router as api_router
from matchday.web.context import ShopContext
from matchday.web.polls_api import PollOut, PollsOut
from matchday.web.schemas import ErrorBody

PollPath = Annotated[str, Path(min_length=6, max_length=42, pattern=POLL_ID_RE.pattern)]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid admin session"},
    404: {"model": ErrorBody, "description": "No such poll"},
}


def router(gate: AdminGate, ctx: ShopContext) -> APIRouter:
    """Polls: create, list, close."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Creator = Annotated[AdminCall, Depends(gate.require("poll.create"))]
    Closer = Annotated[AdminCall, Depends(gate.require("poll.close"))]
    polls = api_router(responses=RESPONSES, tags=["polls"])

    @polls.post("/polls", status_code=201, response_model=PollOut)
    async def create_poll(request: Request, body: PollIn, call: Creator) -> JSONResponse:
        """Create a poll (with an optional offer for its voters)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 201, body_of(PollOut, await ctx.polls.create(body, rid, call.who.key_id))

        return await gate.run(request, call, body.model_dump(), produce, target=body.placement)

    @polls.get("/polls", response_model=PollsOut)
    async def list_polls(call: Reader, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> PollsOut:
        """The newest polls, open and closed, with their results."""
        return PollsOut.model_validate({"polls": await ctx.polls.recent(limit)})

    @polls.post("/polls/{poll_id}/close", response_model=PollOut)
    async def close_poll(request: Request, poll_id: PollPath, call: Closer) -> JSONResponse:
        """Close a poll now. Closing a closed poll answers the same."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, body_of(PollOut, await ctx.polls.close(poll_id))

        return await gate.run(request, call, {}, produce)

    return polls
