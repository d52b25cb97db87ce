"""What the payments feature needs from storage, as protocols (PaymentsRepository implements
them all; in-memory fakes in ``tests/fakes.py``), and the attempt record they pass around.

Each protocol names only what one module calls, so a fake implements only what a test
drives: the Stripe gateway (:class:`GatewayRecords`), the router's lookups
(:class:`RouterRecords`), the velocity rules (:class:`SignalStore`), the worker's queue
(:class:`PaymentQueue`) and the webhooks (:class:`WebhookRecords`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Attempt:
    """One charge attempt at one gateway, as recorded (``payment_attempts``)."""

    order_id: str
    attempt: int
    gateway: str
    intent_id: str | None
    status: str
    error: str | None
    risk_level: str | None
    fingerprint: str | None


class Suspicions(Protocol):
    async def suspicious(
        self, kind: str, order_id: str | None, customer_id: str | None, detail: dict[str, Any]
    ) -> None: ...


class Queue(Protocol):
    """The retry queue of orders in flight (ADR 0008)."""

    async def schedule(
        self,
        order_id: str,
        after_s: float,
        error: str | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None: ...

    async def done(self, order_id: str) -> None: ...


class Captures(Protocol):
    async def claim_capture(
        self, order_id: str, gateway: str, intent_id: str
    ) -> tuple[str, str] | None: ...

    async def captured(self, order_id: str) -> tuple[str, str] | None: ...


class Refunds(Protocol):
    async def record_refund(
        self,
        key: str,
        gateway: str,
        intent_id: str,
        amount_cents: int,
        status: str,
        refund_id: str | None = None,
    ) -> None: ...


class AttemptLookup(Protocol):
    async def by_intent(self, intent_id: str) -> Attempt | None: ...


class GatewayRecords(Suspicions, Captures, Refunds, Protocol):
    """What StripeGateway records and looks up (stripe_gateway.py)."""

    async def attempt(self, order_id: str, attempt: int, gateway: str) -> Attempt | None: ...

    async def record(
        self,
        order_id: str,
        attempt: int,
        gateway: str,
        status: str,
        *,
        intent_id: str | None = None,
        error: str | None = None,
        risk_level: str | None = None,
        fingerprint: str | None = None,
    ) -> None: ...

    async def refund_row(self, key: str) -> tuple[str, str, str | None, int, str] | None: ...


class RouterRecords(GatewayRecords, AttemptLookup, Protocol):
    """The gateways' records plus the router's lookups (factory.py)."""

    async def attempts_of(self, order_id: str) -> list[Attempt]: ...


class SignalStore(Suspicions, Protocol):
    """The velocity rules' signals (fraud.py)."""

    async def add_signal(
        self, order_id: str, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> None: ...

    async def velocity(
        self, window_s: float, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> dict[str, int]: ...


class PaymentQueue(Queue, Protocol):
    """The worker's queue and its sweep of stray attempts (worker.py)."""

    async def enqueue_stale(self, older_than_s: float, limit: int = 500) -> int: ...

    async def claim_due(
        self, limit: int, lease_s: float, *, at: float | None = None
    ) -> list[tuple[str, int]]: ...

    async def open_attempts(self, older_than_s: float, limit: int = 100) -> list[Attempt]: ...


class WebhookRecords(Suspicions, AttemptLookup, Protocol):
    """What webhook deliveries record (events.py, and the route that de-duplicates them)."""

    async def first_delivery(
        self, event_id: str, account: str, type_: str, object_id: str | None
    ) -> bool: ...

    async def forget_delivery(self, event_id: str) -> None: ...

    async def dispute(
        self,
        dispute_id: str,
        account: str,
        *,
        charge_id: str | None,
        intent_id: str | None,
        order_id: str | None,
        amount_cents: int | None,
        reason: str | None,
        status: str | None,
    ) -> None: ...
