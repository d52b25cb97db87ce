"""Supplier pushes over HTTP (mounted at /api/suppliers).

``POST /{supplier}/stock``: a JSON message of stock levels or deltas, signed with the
supplier's own secret (``X-Matchday-Timestamp``, ``X-Matchday-Signature``; see
matchday/suppliers/signing.py). 200 with each line's outcome; the same message id again
gets the same answer (``Idempotent-Replayed: true``). Every refusal is a 4xx in matchday's
JSON error shape and applies nothing: 401 a bad signature or timestamp, 403 a deactivated
supplier, 404 an unknown one, 409 a message id reused for another body, 413 a body over the
limit, 415 not JSON, 422 a malformed message (every problem listed in ``errors``).
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from matchday.suppliers.model import SUPPLIER_ID_RE, FeedRejected
from matchday.suppliers.push import PushService
from matchday.web.base import include, make_app, router
from matchday.web.context import ShopContext
from matchday.web.errors import error_response
from matchday.web.schemas import ErrorBody

SupplierPath = Annotated[str, Path(max_length=32, pattern=f"^{SUPPLIER_ID_RE.pattern}$")]
PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Bad signature, or timestamp outside the window"},
    403: {"model": ErrorBody, "description": "The supplier is deactivated"},
    404: {"model": ErrorBody, "description": "No such supplier"},
    409: {"model": ErrorBody, "description": "Message id already used for another body"},
    413: {"model": ErrorBody, "description": "Body over the limit"},
    415: {"model": ErrorBody, "description": "Body is not application/json"},
    422: {"model": ErrorBody, "description": "Malformed message: nothing applied"},
}


class LineOut(BaseModel):
    line: int
    supplier_sku: str
    sku: str | None = None
    kind: str
    qty: int
    status: str
    reason: str | None = None
    message: str | None = None
    before: int | None = None
    after: int | None = None
    drift: int | None = None
    revoked: list[str] = []


class PushOut(BaseModel):
    supplier_id: str
    message_id: str
    as_of: float
    applied: int
    unchanged: int
    rejected: int
    lines: list[LineOut]


def build(ctx: ShopContext, push: PushService) -> FastAPI:
    app = make_app(
        "matchday suppliers",
        "Signed stock pushes from suppliers: verified, idempotent by message id, applied "
        "through the inventory engine. See ADR 0025 for the signature and message format.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
    )
    include(app, push_router(ctx, push))
    return app


def push_router(ctx: ShopContext, push: PushService) -> APIRouter:
    """``POST /{supplier}/stock``: a supplier's signed push of levels or deltas."""
    routes = router(tags=["suppliers"])

    @routes.post("/{supplier}/stock", response_model=PushOut, responses=PUSH_RESPONSES)
    async def push_stock(
        request: Request,
        supplier: SupplierPath,
        x_matchday_timestamp: Annotated[str | None, Header(max_length=32)] = None,
        x_matchday_signature: Annotated[str | None, Header(max_length=512)] = None,
    ) -> Any:
        """Stock levels (``level``) or changes (``delta``) of the supplier's SKUs."""
        await ctx.limiter.check(f"supplier:{supplier}")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return error_response(415, "unsupported_media_type", "send application/json")
        body = await request.body()
        try:
            answer = await push.receive(supplier, body, x_matchday_timestamp, x_matchday_signature)
        except FeedRejected as exc:
            return error_response(422, exc.code, exc.message, errors=exc.records())
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        return JSONResponse(answer.body, headers=headers)

    return routes
