"""The payment gateway as a deployment, called by checkout through a handle.

Which gateway comes from settings (ADR 0008): the deterministic test gateway (the default
when no Stripe key is configured, so `make run` works offline; it keeps its idempotency
memory in its one replica), or the router over the configured Stripe accounts, whose state
lives in PostgreSQL and at Stripe, so any number of replicas may run it.

Errors cross the handle as records, not exceptions, so checkout sees the same typed error
(``Unavailable``: outcome unknown) it would see in-process, not a wrapped RayTaskError.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from actors.metrics import GatewayCounters, counted, sample_every
from actors.payments_handle import DEPLOYMENT
from matchday import bootstrap
from matchday.domain.errors import MatchdayError, error_to_record
from matchday.payments.gateway import ChargeRequest, TestGateway
from serve import presets
from serve.common import settings_of


@serve.deployment(name=DEPLOYMENT, **presets.PAYMENTS)
class Payments:
    async def __init__(self, settings: dict[str, Any] | None = None) -> None:  # type: ignore[misc]
        # The one process that keeps the test gateway's memory: it builds that gateway itself.
        self.parts = await bootstrap.open_gateway(
            settings_of(settings or {}),
            test_gateway=TestGateway,
            pool_size=4,
            pool_name="matchday-payments",
        )
        self.gateway: Any = counted(self.parts.gateway)
        self._sampler = sample_every(GatewayCounters(self.gateway).sample)

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

    async def fingerprint(self, payment_token: str) -> str | None:
        ask = getattr(self.gateway, "fingerprint", None)
        try:
            return None if ask is None else await ask(payment_token)
        except MatchdayError:
            return None

    async def stats(self) -> dict[str, Any]:
        """Per gateway and region: successes, declines, outages, failovers; breaker states."""
        stats = getattr(self.gateway, "stats", None)
        return {"gateway": self.gateway.name, **(stats() if stats else {})}

    async def __del__(self) -> None:
        await self.parts.close()
