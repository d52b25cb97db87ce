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

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Unavailable
from matchday.payments.gateway import (
    ChargeRequest,
    ChargeResult,
    GatewayTimeout,
    PaymentGateway,
    RefundResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Closed: calls pass, consecutive failures are counted. ``failures`` in a row open it:
    calls are refused for ``reset_s``. Then half-open: one trial call at a time; its success
    closes the breaker, its failure opens it again for another ``reset_s``.

    A timeout may open it at once (``trip``; the router does so while another gateway can take
    the charge): a hung gateway costs every caller the whole timeout, so waiting for
    ``failures`` of them would stall that many checkouts (issue 13: a frozen Stripe stalled
    checkouts for 23 s). ``generation`` counts openings; a call
    reports back with the generation it started under, and an answer from before the last
    opening is ignored, so a late success can never close a breaker its own outage opened.
    """

    failures: int = 5
    reset_s: float = 30.0
    clock: Clock = field(default_factory=SystemClock)
    state: BreakerState = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    generation: int = 0

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

    def success(self, generation: int | None = None) -> None:
        if self._stale(generation):
            return
        self.state = "closed"
        self.consecutive = 0
        self.trial_in_flight = False

    def failure(self, generation: int | None = None, *, trip: bool = False) -> None:
        if self._stale(generation):
            return
        self.consecutive += 1
        self.trial_in_flight = False
        if trip or self.state == "half_open" or self.consecutive >= self.failures:
            self.state = "open"
            self.opened_at = self.clock.now()
            self.generation += 1

    def _stale(self, generation: int | None) -> bool:
        """An answer to a call that began before the breaker last opened says nothing now."""
        return generation is not None and generation != self.generation


# Which gateways already hold a record of an attempt: (order, attempt) -> gateway names.
AttemptLookup = Callable[[str, int], Awaitable[Sequence[str]]]
# Which gateway made a payment: intent id -> gateway name.
PaymentLookup = Callable[[str], Awaitable[str | None]]


class PaymentRouter:
    """A :class:`PaymentGateway` over ``gateways`` (primary first).

    ``call_timeout_s`` bounds each gateway's whole answer (its SDK calls, their wait for a
    thread, its own bookkeeping): past it the gateway counts as down, its breaker opens and
    the charge moves on to the next one. A gateway keeps its own bound per SDK call too, for
    the calls that do not come through here (refunds, the worker's sweep)."""

    name = "router"

    def __init__(
        self,
        gateways: Sequence[PaymentGateway],
        *,
        region: str = "local",
        breakers: Sequence[CircuitBreaker] | None = None,
        attempted_on: AttemptLookup | None = None,
        made_by: PaymentLookup | None = None,
        call_timeout_s: float | None = None,
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
        self.call_timeout_s = call_timeout_s
        # (gateway, region, outcome) -> count; outcome: succeeded, declined, requires_action,
        # unavailable (timeouts included), skipped (breaker open), failover.
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
                result = await self._bounded(name, self.gateways[name].charge(req))
            except Unavailable as exc:
                self._count(name, "unavailable")
                reasons.append(f"{name}: {exc.reason}")
                if i + 1 < len(names):
                    self._count(name, "failover")
                    log.warning("order %s: %s unavailable, failing over", req.order_id, name)
                continue
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
                fp = await self._bounded(name, ask(payment_token))
                return fp if fp is None else str(fp)
            except Unavailable:
                continue
        return None

    def gateway(self, name: str) -> PaymentGateway | None:
        return self.gateways.get(name)

    def stats(self) -> dict[str, object]:
        """Counters and breaker states, for metrics and the status command."""
        return {
            "counters": {"/".join(k): v for k, v in sorted(self.counters.items())},
            "breakers": {n: b.state for n, b in self.breakers.items()},
        }

    async def _bounded(self, name: str, call: Awaitable[T]) -> T:
        """``call``'s answer within ``call_timeout_s``, its breaker told either way.

        The breaker's generation is read as the call starts: if the breaker opens while the
        call runs (other callers timed out), this call's answer is not allowed to close it."""
        breaker = self.breakers[name]
        generation = breaker.generation
        try:
            if self.call_timeout_s is None:
                answer = await call
            else:
                answer = await asyncio.wait_for(call, self.call_timeout_s)
        except TimeoutError:
            breaker.failure(generation, trip=self._can_fail_over(name))
            raise GatewayTimeout.after(name, self.call_timeout_s or 0.0) from None
        except Unavailable as exc:  # a timeout inside the gateway opens it at once too
            timed_out = isinstance(exc, GatewayTimeout)
            breaker.failure(generation, trip=timed_out and self._can_fail_over(name))
            raise
        except BaseException:
            # Neither an outage nor an answer (a refused request, a cancelled caller): the
            # breaker stays as it is, and a trial slot this call held is given back.
            breaker.trial_in_flight = False
            raise
        breaker.success(generation)
        return answer

    def _can_fail_over(self, name: str) -> bool:
        """Whether another gateway's breaker is closed. A timeout opens a breaker at once only
        then: on the last gateway standing, one slow answer would otherwise turn a degraded
        payment path into none for ``reset_s``, so there it counts like any other failure."""
        return any(b.state == "closed" for n, b in self.breakers.items() if n != name)

    def _count(self, name: str, outcome: str) -> None:
        self.counters[(name, self.region, outcome)] += 1
