"""Checkout's payment gateway seen through the Payments Serve deployment's handle.

A client of a named deployment, as actors/client.py is of the shard actors: the orders, admin
and webhooks apps and the payments-worker actor use it to reach the one replica that keeps
the test gateway's memory (or the Stripe router). Errors cross the handle as records, not
exceptions, so callers see the same typed error they would see in-process.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from matchday.domain.errors import error_from_record
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult

DEPLOYMENT = "Payments"
APP = "orders"  # the application that deploys it (serve_config.yaml)


class HandleGateway:
    """A :class:`PaymentGateway` that forwards to the Payments deployment."""

    name = "payments"

    def __init__(self, handle: Any, *, fingerprints: bool = True) -> None:
        self.handle = handle
        # Whether the deployment's gateway can name a card. The test gateway never can
        # (its tokens name a behaviour): asking it cost every checkout a handle call for a
        # None (issue 16).
        self.fingerprints = fingerprints

    @classmethod
    def deployed(cls) -> HandleGateway:
        """The Payments deployment of the running orders app (for other apps and actors)."""
        return cls(serve.get_deployment_handle(DEPLOYMENT, app_name=APP))

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        kind, value = await self.handle.charge.remote(req)
        if kind == "error":
            raise error_from_record(value)
        assert isinstance(value, ChargeResult)
        return value

    async def refund(
        self, payment_ref: str, amount_cents: int, idempotency_key: str
    ) -> RefundResult:
        kind, value = await self.handle.refund.remote(payment_ref, amount_cents, idempotency_key)
        if kind == "error":
            raise error_from_record(value)
        assert isinstance(value, RefundResult)
        return value

    async def fingerprint(self, payment_token: str) -> str | None:
        if not self.fingerprints:
            return None
        value = await self.handle.fingerprint.remote(payment_token)
        return None if value is None else str(value)
