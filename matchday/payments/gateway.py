"""The payment step of checkout, as an interface.

Checkout never talks to a payment provider directly: it asks a :class:`PaymentGateway` to
charge an order under an idempotency key derived from the order and the attempt, so a retry
of the same attempt can never charge twice. A gateway answers with a settled outcome
(succeeded, declined, requires action) or raises :class:`Unavailable` when the outcome is
unknown (outage, timeout): the order then stays pending until it is resolved, never
released or committed on a guess.

:class:`TestGateway` is the deterministic gateway of the run command and the tests, keyed by
the payment-method token the way Stripe's test tokens are; Stripe is in
:mod:`matchday.payments.stripe_gateway`, several gateways behind :mod:`matchday.payments.router`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from matchday.domain.errors import Conflict, InvalidInput, Unavailable

ChargeStatus = Literal["succeeded", "declined", "requires_action"]

# Payment-method tokens only (Stripe's pm_/tok_ ids and our test ones): anything else,
# a card number above all, is refused before it reaches a log or a table.
TOKEN_RE = re.compile(r"(pm|tok)_[A-Za-z0-9_]{1,64}")


def check_token(token: object) -> str:
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise InvalidInput(
            "payment_token", "must be a payment-method token such as pm_card_visa, never card data"
        )
    return token


class GatewayTimeout(Unavailable):
    """No answer within the stated bound: an outage that opens the gateway's breaker at once.

    Its code is ``unavailable``, so across a Serve handle it arrives as :class:`Unavailable`;
    only the router, in the gateway's own process, needs the difference."""

    @classmethod
    def after(cls, gateway: str, seconds: float) -> GatewayTimeout:
        return cls(f"{gateway}: no answer within {seconds:g} s")


class OrderClosed(Conflict):
    """The order ended without a payment (its deadline passed, its holds were lost): what
    the gateway found for it was voided, never captured. Not an outage: no failover.
    Across a Serve handle it arrives as :class:`Conflict` (its code)."""

    @classmethod
    def voided(cls, order_id: str) -> OrderClosed:
        return cls(f"order {order_id} ended before this payment, which was voided")


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    order_id: str
    attempt: int
    amount_cents: int
    currency: str
    payment_token: str
    customer_id: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.order_id}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    gateway: str
    payment_ref: str
    code: str = ""
    message: str = ""
    risk_level: str | None = None  # the gateway's own fraud verdict (Stripe: outcome.risk_level)


@dataclass(frozen=True, slots=True)
class RefundResult:
    gateway: str
    refund_ref: str
    amount_cents: int


class PaymentGateway(Protocol):
    name: str

    async def charge(self, req: ChargeRequest) -> ChargeResult: ...

    async def refund(
        self, payment_ref: str, amount_cents: int, idempotency_key: str
    ) -> RefundResult: ...


class Fingerprints(Protocol):
    """A gateway that can name the card behind a token (velocity rules per card)."""

    async def fingerprint(self, payment_token: str) -> str | None: ...


class TestGateway:
    """Answers by token; remembers every idempotency key, so a retry never charges twice.

    ``pm_card_visa`` (or any other token) succeeds, ``pm_card_chargeDeclined`` is declined,
    ``pm_card_authenticationRequired`` needs action, ``pm_card_unavailable`` is an outage.
    """

    __test__ = False  # not a pytest class, despite the name
    name = "test"

    def __init__(self) -> None:
        self.charges: dict[str, ChargeResult] = {}
        self.captured: dict[str, int] = {}
        self.refunds: dict[str, RefundResult] = {}

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        check_token(req.payment_token)
        seen = self.charges.get(req.idempotency_key)
        if seen is not None:
            return seen
        method = req.payment_token
        if method == "pm_card_unavailable":
            raise Unavailable("test gateway outage")
        ref = f"pi_test_{req.order_id}_{req.attempt}"
        if method == "pm_card_chargeDeclined":
            result = ChargeResult("declined", self.name, ref, "card_declined", "card declined")
        elif method == "pm_card_authenticationRequired":
            result = ChargeResult(
                "requires_action", self.name, ref, "authentication_required", "3-D Secure needed"
            )
        else:
            result = ChargeResult("succeeded", self.name, ref)
            self.captured[ref] = req.amount_cents
        self.charges[req.idempotency_key] = result
        return result

    async def fingerprint(self, payment_token: str) -> str | None:
        # Test tokens name a behaviour, not a card: every shopper of the run command and the
        # load tests pays with pm_card_visa, which must not look like one card used 10,000 times.
        return None

    async def refund(
        self, payment_ref: str, amount_cents: int, idempotency_key: str
    ) -> RefundResult:
        seen = self.refunds.get(idempotency_key)
        if seen is not None:
            return seen
        if self.captured.get(payment_ref, 0) < amount_cents:
            raise InvalidInput("amount_cents", "more than was captured")
        self.captured[payment_ref] -= amount_cents
        result = RefundResult(self.name, f"re_test_{idempotency_key}", amount_cents)
        self.refunds[idempotency_key] = result
        return result
