"""A whole checkout in memory: the real CheckoutService, PaymentsWorker and StripeEvents, the
real InventoryClient over a real ShardCore, and fakes of storage and the gateway
(``tests/fakes.py``). No PostgreSQL, Redis or Ray; one manual clock for all of it."""

from __future__ import annotations

import asyncio
import itertools
import time

from matchday.domain.prices import PriceInfo
from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import WireMutation, WireOutcome
from matchday.payments.fraud import FraudRules, VelocityLimits
from matchday.shop.checkout import CheckoutService
from matchday.shop.models import Order
from matchday.shop.payment_events import StripeEvents
from matchday.shop.payments_worker import PaymentsWorker
from tests.fakes import (
    FakeGateway,
    FakeOffers,
    FakePaymentsStore,
    FakePrices,
    FakeShardRepository,
    FakeShopStore,
    ManualClock,
    RecordingEvents,
)

HOLD_TTL_S = 900.0  # a cart's hold (settings.default_ttl_s)
PAY_WITHIN_S = 600.0  # settings.payment_hold_s
PRICE = 2500
OFFER = "offer-1"


class Shop:
    """One customer's view of a shop selling ``skus`` (on_hand units each)."""

    def __init__(self, answer: str = "succeeded", on_hand: int = 5, skus: str = "AB") -> None:
        # The engine's clock; checkout reads wall time for a cart's holds, so start at it.
        self.clock = ManualClock(time.time())
        self.engine = FakeShardRepository()
        for sku in skus:
            self.engine.add_sku(sku, on_hand)
        self.core = ShardCore(0, Router(1), self.engine, clock=self.clock)
        self.stock = InventoryClient(self._send, Router(1), linger_s=0.0)
        self.store = FakeShopStore(self.engine, self.clock)
        self.payments = FakePaymentsStore(self.store)
        self.gateway = FakeGateway(answer, self.payments.attempts)
        self.events = RecordingEvents()
        self.prices = FakePrices({s: PriceInfo(PRICE, "EUR", s, None, None) for s in skus})
        self.checkout = CheckoutService(
            self.store,
            self.stock,
            self.prices,
            self.gateway,
            self.events,
            payment_hold_s=PAY_WITHIN_S,
            payments=self.payments,
            offers=FakeOffers(OFFER, 500),
            clock=self.clock,
        )
        self.worker = PaymentsWorker(self.store, self.payments, self.checkout, {})
        self.webhooks = StripeEvents(self.store, self.payments, self.checkout, {})
        self._ids = itertools.count(1)

    async def _send(self, shard_id: int, batch: list[WireMutation]) -> list[WireOutcome]:
        await asyncio.sleep(0)  # an actor hop
        return await self.core.apply_wire(list(batch))

    def with_fraud_rules(self, per_customer: int) -> None:
        self.checkout.fraud = FraudRules(self.payments, VelocityLimits(per_customer=per_customer))

    async def cart(self, *lines: tuple[str, int], customer: str = "cust") -> str:
        """A cart of ``customer`` holding ``lines`` (as CartService.add holds them)."""
        cart = await self.store.create_cart(f"c{next(self._ids)}", customer)
        for sku, qty in lines:
            await self.add(cart.cart_id, sku, qty, customer)
        return cart.cart_id

    async def add(self, cart_id: str, sku: str, qty: int = 1, customer: str = "cust") -> str:
        view = await self.stock.reserve(
            f"add:{cart_id}:{next(self._ids)}", sku, qty, cart_id, customer, HOLD_TTL_S
        )
        return view.reservation_id

    async def pay(
        self, cart_id: str, key: str = "k1", token: str = "pm_card_visa", **kw: str
    ) -> Order:
        return await self.checkout.checkout("cust", cart_id, token, key, **kw)

    async def paying(self, cart_id: str) -> tuple[asyncio.Task[Order], Order, asyncio.Event]:
        """A checkout whose charge is in flight, held until the test sets the gate: (the
        checkout's task, its order as created, the gate)."""
        gate = self.gateway.gate = asyncio.Event()
        task = asyncio.create_task(self.pay(cart_id))
        while not self.gateway.calls:
            await asyncio.sleep(0)
        (order,) = self.store.orders.values()
        return task, order, gate

    def units(self, sku: str) -> tuple[int, int, int]:
        """(on hand, reserved, sold), as the engine wrote them."""
        row = self.engine.skus[sku]
        return row.on_hand, row.reserved, row.sold

    def now(self, order: Order) -> Order:
        return self.store.orders[order.order_id]

    async def worker_round(self) -> dict[str, int]:
        return await self.worker.run_once(at=self.clock.now())
