"""What one checkout, and one settle by the payments worker, cost the shop's and the payments'
storage in PostgreSQL round trips, statements and transactions (issues 12 and 16).

Real PostgreSQL, Redis and shard core (tests/integration/shop_stack.py); the checkout's
ShopRepository and PaymentsRepository run over a pool whose connections libpq traces
(tests/integration/wire_count.py). The catalogue's price lookup and the inventory engine use
the stack's own pools and are not counted here. The budgets are the counts measured after
issue 16 (docs/performance.md, "Checkout round trips"): a change that adds a round trip to
the hot path fails here and says so.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from matchday.domain.errors import Unavailable
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult, TestGateway
from matchday.settings import Settings
from matchday.shop.checkout import CheckoutService
from matchday.shop.models import PAID
from matchday.shop.payments_worker import PaymentsWorker
from matchday.storage.payments_repo import PaymentsRepository
from matchday.storage.shop_repo import ShopRepository
from tests.conftest import database_of_its_own
from tests.integration.shop_stack import Stack, open_stack
from tests.integration.wire_count import Cost, Wire, traced_pool

pytestmark = pytest.mark.integration

# Per order of one line, paid at the first try (after issue 16; see docs/performance.md).
CHECKOUT_ROUND_TRIPS = 8
CHECKOUT_TRANSACTIONS = 7
SETTLE_ROUND_TRIPS = 9


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Iterator[Settings]:
    """A database of this module's own: the worker's round claims every due order in it."""
    with database_of_its_own(settings, "trips") as own:
        yield own


class DownOnce:
    """The test gateway, out of reach for the first charge: the order is left to the worker."""

    name = "test"

    def __init__(self, inner: TestGateway) -> None:
        self.inner = inner
        self.down = True

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        if self.down:
            self.down = False
            raise Unavailable("test gateway outage")
        return await self.inner.charge(req)

    async def refund(self, ref: str, amount: int, key: str) -> RefundResult:
        return await self.inner.refund(ref, amount, key)


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[Stack, Wire, Any]]:
    wire = Wire()
    pool = traced_pool(settings.database_url, wire)
    await pool.open(wait=True)
    try:
        async with open_stack(settings) as stack:
            yield stack, wire, pool
    finally:
        await pool.close()
        wire.close()


def checkout_over(stack: Stack, pool: Any, gateway: Any) -> CheckoutService:
    s = stack.ctx.settings
    return CheckoutService(
        ShopRepository(pool),
        stack.ctx.stock,
        stack.ctx.catalog,
        gateway,
        stack.ctx.events,
        payment_hold_s=s.payment_hold_s,
        payments=PaymentsRepository(pool),
        settle_grace_s=s.payment_settle_grace_s,
        clock=stack.ctx.checkout.clock,
    )


async def held_cart(stack: Stack) -> tuple[str, str]:
    (sku,) = await stack.product(stock=5)
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert r.status_code == 201, r.text
    header = await stack.ctx.repo.cart_header(cart)
    assert header is not None
    return header.customer_id, cart


async def test_one_checkout_costs_its_budget_of_round_trips(counted: Any) -> None:
    stack, wire, pool = counted
    checkout = checkout_over(stack, pool, stack.gateway)
    customer, cart = await held_cart(stack)
    wire.count()  # from here on
    order = await checkout.checkout(customer, cart, "pm_card_visa", "trips-1")
    cost = wire.count()
    print(f"\ncheckout: {cost}; {' '.join(cost.commands)}")
    assert order.status == PAID
    assert cost.round_trips <= CHECKOUT_ROUND_TRIPS, cost
    assert cost.transactions <= CHECKOUT_TRANSACTIONS, cost
    # A retry of the same checkout reads the order and changes nothing.
    again = await checkout.checkout(customer, cart, "pm_card_visa", "trips-1")
    retry = wire.count()
    print(f"retried checkout: {retry}")
    assert again == order
    assert len(stack.gateway.charges) == 1


async def test_one_settle_by_the_worker_costs_its_budget_of_round_trips(counted: Any) -> None:
    stack, wire, pool = counted
    gateway = DownOnce(stack.gateway)
    checkout = checkout_over(stack, pool, gateway)
    customer, cart = await held_cart(stack)
    pending = await checkout.checkout(customer, cart, "pm_card_visa", "trips-2")
    assert pending.status == "payment_pending"
    worker = PaymentsWorker(
        ShopRepository(pool), PaymentsRepository(pool), checkout, {}, stray_after_s=0.0
    )
    wire.count()
    # Past the settle grace: the worker finds the order due and settles it.
    counts = await worker.run_once(at=time.time() + 2 * stack.ctx.settings.payment_settle_grace_s)
    cost: Cost = wire.count()
    print(f"\nworker round settling one order: {cost}; {' '.join(cost.commands)}")
    assert counts.get("settled_paid") == 1, counts
    settled = await stack.ctx.repo.order(pending.order_id)
    assert settled is not None and settled.status == PAID
    assert await PaymentsRepository(stack.ctx.pool).queued(pending.order_id) is None
    assert cost.round_trips <= SETTLE_ROUND_TRIPS, cost
