"""What carts and checkout need from the rest of matchday, as protocols (fakes in
``tests/fakes.py``): the inventory engine, prices, order events, and storage.

Storage implements the store protocols (ShopRepository: :class:`CartStore`,
:class:`OrderStore`, :class:`OrderHistory`, together :class:`ShopStore`;
PaymentsRepository: :class:`PaymentLedger`); the shop never imports it. Each protocol
names only what its module calls.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from matchday.domain.prices import PriceInfo
from matchday.inventory.commands import ReservationView
from matchday.payments.ports import Attempt, Captures, Queue, Refunds, Suspicions
from matchday.shop.models import Cart, Order


class Stock(Protocol):
    """The inventory engine as seen by the shop; InventoryClient implements it."""

    async def reserve(
        self, request_id: str, sku: str, qty: int, cart_id: str, customer_id: str, ttl_s: float
    ) -> ReservationView: ...

    async def release(self, request_id: str, sku: str, reservation_id: str) -> ReservationView: ...

    async def resize(
        self, request_id: str, sku: str, reservation_id: str, qty: int
    ) -> ReservationView: ...

    async def extend(
        self, request_id: str, sku: str, reservation_id: str, ttl_s: float
    ) -> ReservationView: ...

    async def commit(
        self, request_id: str, sku: str, reservation_id: str, order_id: str
    ) -> ReservationView: ...


class Prices(Protocol):
    async def price_of(self, skus: list[str]) -> dict[str, PriceInfo]: ...


class OrderEvents(Protocol):
    async def publish(self, order_id: str, status: str, detail: dict[str, Any]) -> None: ...


class CartStore(Protocol):
    """Carts as CartService reads and edits them (carts.py)."""

    async def create_cart(self, cart_id: str, customer_id: str) -> Cart: ...

    async def cart_header(self, cart_id: str) -> Cart | None: ...

    async def cart(self, cart_id: str) -> Cart | None: ...

    def cart_for_edit(
        self, cart_id: str
    ) -> AbstractAsyncContextManager[tuple[Cart, str | None] | None]:
        """The cart with its lines and its order's status, locked against a checkout of it
        until the block ends (ShopRepository.cart_for_edit says how)."""
        ...


class Orders(Protocol):
    """Reading an order and moving it between statuses (also the payments worker's and the
    webhooks' view of orders)."""

    async def order(self, order_id: str) -> Order | None: ...

    async def update_order(
        self,
        order_id: str,
        status: str,
        *,
        from_statuses: frozenset[str],
        detail: dict[str, Any] | None = None,
        reopen_cart: bool = False,
        unless_captured: bool = False,
        close_cart: bool = False,
        dequeue: bool = False,
        **fields: Any,
    ) -> bool:
        """Move to ``status`` only from one of ``from_statuses`` (exactly one of two racing
        callers wins); ``unless_captured``: not if a payment was claimed for capture. A
        failed or cancelled order (or ``reopen_cart``) gives its cart and its offer back.
        With the move, whether or not it happens: ``close_cart`` (the cart stays checked out
        with the order), ``dequeue`` (out of the payments worker's queue, Queue.done)."""
        ...


class HoldRecords(Protocol):
    """What an order's holds need to know and change in storage (holds.py)."""

    async def reservation_state(self, reservation_id: str) -> tuple[str, str | None] | None: ...

    async def replace_line(self, order_id: str, old: str, new: str) -> None: ...


class OrderStore(Orders, HoldRecords, Protocol):
    """Orders as checkout creates and settles them (checkout.py, settle.py)."""

    async def cart(self, cart_id: str) -> Cart | None: ...

    async def create_order(self, order: Order, idempotency_key: str) -> tuple[Order, bool]:
        """(the order, True), the cart closed with it and its offer claimed; (the first
        order, False) when the key was used before. Conflict when the cart changed or is
        being checked out, or already has an active order; OfferInvalid when the offer
        was used."""
        ...


class OrderHistory(Protocol):
    """A customer's orders and an order's events, as the orders API reads them."""

    async def orders_of(self, customer_id: str, limit: int, before: float | None) -> list[Order]:
        """Newest first, created before ``before`` (epoch s) when given."""
        ...

    async def order_events(self, order_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """The order's status changes after ``after_seq``, oldest first."""
        ...


class ShopStore(CartStore, OrderStore, OrderHistory, Protocol):
    """All of the shop's records (ShopRepository): what an HTTP process's context holds."""


class PaymentLedger(Suspicions, Queue, Captures, Refunds, Protocol):
    """The payments records checkout keeps and reads (checkout.py, settle.py)."""

    async def start_attempt(self, order_id: str, pay_within_s: float, queue_after_s: float) -> int:
        """Count the order's first charge attempt (it sets ``pay_by``, the deadline) and queue
        the order (Queue.schedule, only if absent) at once; the attempt number."""
        ...

    async def refunded_cents(self, intent_id: str) -> int: ...

    async def queued(self, order_id: str) -> tuple[int, float] | None: ...

    async def attempts_of(self, order_id: str) -> list[Attempt]: ...

    async def suspicious_of(self, order_id: str) -> list[tuple[str, dict[str, Any]]]: ...
