"""Several gateways as one: a primary and backups, a circuit breaker each, failover on outage.

The router asks gateways in order: first those that already hold a record of this attempt
(so an ambiguous call is resolved where it was made), then the rest by priority. A settled
answer (succeeded, declined, requires action) ends the search: a decline is the card's
answer, and asking another account would only charge a card its bank refused. An outage or
a timeout (:class:`Unavailable`) counts against that gateway's breaker and moves on to the
next. A timed-out call may still have authorised on the first gateway: the capture claim in
PostgreSQL (``payment_captures``) lets only one authorisation per order be captured, and the
worker cancels the other (ADR 0008).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Unavailable
from matchday.payments.gateway import ChargeRequest, ChargeResult, PaymentGateway, RefundResult

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Closed: calls pass, consecutive failures are counted. ``failures`` in a row open it:
    calls are refused for ``reset_s``. Then half-open: one trial call at a time; its success
    closes the breaker, its failure opens it again for another ``reset_s``."""

    failures: int = 5
    reset_s: float = 30.0
    clock: Clock = field(default_factory=SystemClock)
    state: BreakerState = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock.now() - self.opened_at < self.reset_s:
                return False
            self.state = "half_open"
            self.trial_in_flight = False
        if self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def success(self) -> None:
        self.state = "closed"
        self.consecutive = 0
        self.trial_in_flight = False

    def failure(self) -> None:
        self.consecutive += 1
        self.trial_in_flight = False
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.state = "open"
            self.opened_at = self.clock.now()


# Which gateways already hold a record of an attempt: (order, attempt) -> gateway names.
AttemptLookup = Callable[[str, int], Awaitable[Sequence[str]]]
# Which gateway made a payment: intent id -> gateway name.
PaymentLookup = Callable[[str], Awaitable[str | None]]


class PaymentRouter:
    """A :class:`PaymentGateway` over ``gateways`` (primary first)."""

    name = "router"

    def __init__(
        self,
        gateways: Sequence[PaymentGateway],
        *,
        region: str = "local",
        breakers: Sequence[CircuitBreaker] | None = None,
        attempted_on: AttemptLookup | None = None,
        made_by: PaymentLookup | None = None,
    ) -> None:
        if not gateways:
            raise ValueError("a router needs at least one gateway")
        self.gateways = {g.name: g for g in gateways}
        self.order = [g.name for g in gateways]
        self.breakers = dict(
            zip(self.order, breakers or [CircuitBreaker() for _ in gateways], strict=True)
        )
        self.region = region
        self.attempted_on = attempted_on
        self.made_by = made_by
        # (gateway, region, outcome) -> count; outcome: succeeded, declined, requires_action,
        # unavailable, skipped (breaker open), failover.
        self.counters: Counter[tuple[str, str, str]] = Counter()

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        recorded = (
            list(await self.attempted_on(req.order_id, req.attempt)) if self.attempted_on else []
        )
        names = [n for n in recorded if n in self.gateways]
        names += [n for n in self.order if n not in names]
        reasons: list[str] = []
        for i, name in enumerate(names):
            breaker = self.breakers[name]
            if not breaker.allow():
                self._count(name, "skipped")
                reasons.append(f"{name}: circuit open")
                continue
            try:
                result = await self.gateways[name].charge(req)
            except Unavailable as exc:
                breaker.failure()
                self._count(name, "unavailable")
                reasons.append(f"{name}: {exc.reason}")
                if i + 1 < len(names):
                    self._count(name, "failover")
                    log.warning("order %s: %s unavailable, failing over", req.order_id, name)
                continue
            breaker.success()
            self._count(name, result.status)
            return result
        raise Unavailable("; ".join(reasons) or "no payment gateway")

    async def refund(
        self, payment_ref: str, amount_cents: int, idempotency_key: str
    ) -> RefundResult:
        name = await self.made_by(payment_ref) if self.made_by else None
        if name is None:
            if len(self.order) != 1:
                raise Unavailable(f"no record of which gateway made {payment_ref}")
            name = self.order[0]
        return await self.gateways[name].refund(payment_ref, amount_cents, idempotency_key)

    async def fingerprint(self, payment_token: str) -> str | None:
        for name in self.order:
            ask = getattr(self.gateways[name], "fingerprint", None)
            if ask is None or not self.breakers[name].allow():
                continue
            try:
                fp = await ask(payment_token)
                self.breakers[name].success()
                return fp if fp is None else str(fp)
            except Unavailable:
                self.breakers[name].failure()
        return None

    def gateway(self, name: str) -> PaymentGateway | None:
        return self.gateways.get(name)

    def stats(self) -> dict[str, object]:
        """Counters and breaker states, for metrics and the status command."""
        return {
            "counters": {"/".join(k): v for k, v in sorted(self.counters.items())},
            "breakers": {n: b.state for n, b in self.breakers.items()},
        }

    def _count(self, name: str, outcome: str) -> None:
        self.counters[(name, self.region, outcome)] += 1
