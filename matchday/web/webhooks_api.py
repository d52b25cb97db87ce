"""Payment-provider webhooks over HTTP (mounted at /api/webhooks).

``POST /stripe/{account}`` (``primary`` or ``backup``: each Stripe account signs with its
own secret). The signature is verified with ``stripe.Webhook.construct_event`` on the raw
body; the event id is recorded in PostgreSQL first, so a redelivery is answered 200 and
changes nothing; :class:`matchday.shop.payment_events.StripeEvents` applies it. A handling
failure forgets the id and answers 503, so the provider delivers it again.
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

import logging
from collections.abc import Mapping
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, FastAPI, Header, Path, Request
from pydantic import BaseModel

from matchday.domain.errors import MatchdayError, NotFound, Unavailable
from matchday.shop.payment_events import StripeEvents
from matchday.web.base import include, make_app, router
from matchday.web.context import ShopContext
from matchday.web.errors import error_response
from matchday.web.schemas import ErrorBody

log = logging.getLogger(__name__)

Account = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]
# Stripe's own default: an event signed longer ago than this is refused (replayed capture).
TOLERANCE_S = 300
STRIPE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad signature or payload"},
    404: {"model": ErrorBody, "description": "No such account"},
}


class Received(BaseModel):
    received: bool
    duplicate: bool = False
    outcome: str | None = None


def build(ctx: ShopContext, *, secrets: Mapping[str, str], events: StripeEvents | None) -> FastAPI:
    """``secrets``: account name -> webhook signing secret (accounts without one are 404)."""
    app = make_app(
        "matchday webhooks",
        "Signed payment-provider events: verified, de-duplicated, applied idempotently.",
        ready=ctx.ready,
        max_body_bytes=ctx.settings.max_body_bytes,
    )
    configured = {name: secret for name, secret in secrets.items() if secret}
    include(app, stripe_router(configured, events))
    return app


def stripe_router(configured: Mapping[str, str], events: StripeEvents | None) -> APIRouter:
    """``POST /stripe/{account}``: one signed event of one of the shop's Stripe accounts."""
    routes = router(tags=["webhooks"])

    @routes.post("/stripe/{account}", response_model=Received, responses=STRIPE_RESPONSES)
    async def stripe_event(
        request: Request,
        account: Account,
        stripe_signature: Annotated[str | None, Header(max_length=2048)] = None,
    ) -> Any:
        secret = configured.get(account)
        if secret is None or events is None:
            raise NotFound("webhook account", account)
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(
                payload, stripe_signature or "", secret, tolerance=TOLERANCE_S
            )
        except (ValueError, stripe.SignatureVerificationError):
            return error_response(400, "invalid_signature", "signature or payload not valid")
        return await _apply(account, event.to_dict(), events)

    return routes


async def _apply(account: str, body: dict[str, Any], events: StripeEvents) -> Any:
    """Apply a verified event once: a redelivery is answered as a duplicate, and a failure
    forgets the event id so that the provider's next delivery applies it."""
    obj: dict[str, Any] = (body.get("data") or {}).get("object") or {}
    event_id, type_ = str(body.get("id", "")), str(body.get("type", ""))
    if not event_id:
        return error_response(400, "invalid_event", "the event has no id")
    payments = events.payments
    if not await payments.first_delivery(event_id, account, type_, obj.get("id")):
        return Received(received=True, duplicate=True)
    try:
        outcome = await events.handle(account, type_, obj)
    except MatchdayError as exc:
        await payments.forget_delivery(event_id)
        if exc.retryable:
            raise
        raise Unavailable(f"event {event_id} not applied: {exc.code}") from None
    except Exception:
        await payments.forget_delivery(event_id)
        raise
    log.info("stripe event %s %s on %s: %s", event_id, type_, account, outcome)
    return Received(received=True, outcome=outcome)
