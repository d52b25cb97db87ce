"""The payment gateway as a deployment, called by checkout through a handle.

Errors cross the handle as records, not exceptions, so checkout sees the same typed error
(``Unavailable``: outcome unknown) it would see in-process, not a wrapped RayTaskError.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from matchday.domain.errors import MatchdayError, error_from_record, error_to_record
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult, TestGateway
from serve import presets


@serve.deployment(name="Payments", **presets.PAYMENTS)
class Payments:
    def __init__(self) -> None:
        self.gateway = TestGateway()

    async def charge(self, req: ChargeRequest) -> tuple[str, Any]:
        try:
            return "ok", await self.gateway.charge(req)
        except MatchdayError as exc:
            return "error", error_to_record(exc)

    async def refund(self, payment_ref: str, amount_cents: int, key: str) -> tuple[str, Any]:
        try:
            return "ok", await self.gateway.refund(payment_ref, amount_cents, key)
        except MatchdayError as exc:
            return "error", error_to_record(exc)


class HandleGateway:
    """A :class:`PaymentGateway` that forwards to the Payments deployment."""

    name = "payments"

    def __init__(self, handle: Any) -> None:
        self.handle = handle

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
