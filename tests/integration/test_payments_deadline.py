"""An order's payment deadline and its holds, end to end (issue 13, items 6 and 7): HTTP
through the in-process apps, real PostgreSQL, Redis and shard core, the stripe SDK against
localstripe, and the payments worker.

- An order whose gateway stays down ends at its deadline as ``payment_timeout``: shown to
  the shopper (order API, status stream) and to operators (the worker's counts, the overdue
  gauge's query); its units go back on sale.
- A charge that lands after the deadline is never kept: an authorisation is cancelled, an
  automatic capture refunded, and both are logged in ``suspicious_activity``.
- A payment that goes through after the order's hold ended is committed on a new hold when
  units remain, and refunded in full (``refunded``, ``sold_out_refunded``) when none do:
  never sold without a hold, never oversold.

The deadline is moved into the past in PostgreSQL rather than waited for (the unit tests
drive it with a manual clock: tests/unit/test_payments_deadline.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from actors.payments_worker import deadline_sampler
from matchday.metrics import ORDERS_UNPAID, MemoryMetrics
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult
from matchday.settings import Settings
from matchday.shop import models as st
from matchday.shop.models import Order
from matchday.shop.payments_worker import PaymentsWorker
from matchday.storage.payments_watch import PaymentWatch
from tests.conftest import database_of_its_own
from tests.integration.shop_stack import Stack, open_stack
from tests.integration.test_payments_support import (
    LocalStripe,
    PayStack,
    charges,
    filled_cart,
    open_pay_stack,
    pay,
    two_accounts,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Iterator[Settings]:
    """A database of this module's own: a payments worker's round claims every due order in
    its database, and must not meet other modules' orders (or call a gated gateway for them:
    the full suite once hung here that way)."""
    with database_of_its_own(settings, "deadline") as own:
        yield own


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    with two_accounts() as both:  # every test that freezes one resumes it in a finally
        yield both


def worker_for(stack: Stack, payments: Any, gateways: Any = None) -> PaymentsWorker:
    checkout = stack.ctx.checkout
    assert checkout is not None
    return PaymentsWorker(
        stack.ctx.repo, payments, checkout, gateways or {},
        base_s=0.1, max_s=0.5, stray_after_s=0.0,
    )  # fmt: skip


async def past_deadline(stack: Stack, order_id: str) -> None:
    """Time passes: the order's payment deadline is a second ago."""
    async with stack.ctx.pool.connection() as conn:
        await conn.execute(
            "UPDATE orders SET pay_by = now() - interval '1 s' WHERE order_id = %s", (order_id,)
        )


async def order_of_cart(stack: Stack, cart_id: str) -> Order:
    async with stack.ctx.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT order_id FROM orders WHERE cart_id = %s", (cart_id,))
        ).fetchone()
    assert row is not None
    order = await stack.ctx.repo.order(row[0])
    assert order is not None
    return order


def intent_for(server: LocalStripe, order_id: str) -> Any:
    (pi,) = [
        p for p in server.intents() if p.to_dict()["metadata"].get("matchday_order") == order_id
    ]
    return pi


class Gated:
    """The router, with each charge held at a gate until the test opens it."""

    name = "gated"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.charging = asyncio.Event()
        self.gate = asyncio.Event()

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        self.charging.set()
        await self.gate.wait()
        result: ChargeResult = await self.inner.charge(req)
        return result

    async def refund(self, ref: str, amount: int, key: str) -> RefundResult:
        result: RefundResult = await self.inner.refund(ref, amount, key)
        return result


async def test_an_order_whose_gateway_stays_down_ends_as_payment_timeout_at_its_deadline(
    settings: Settings,
) -> None:
    async with open_stack(settings) as stack:
        (sku,) = await stack.product(stock=3)
        auth, cart = await filled_cart(stack, sku, 2)
        order = (await pay(stack, auth, cart, "pm_card_unavailable")).json()
        assert order["status"] == "payment_pending"
        assert order["pay_by"] == pytest.approx(time.time() + settings.payment_hold_s, abs=30)
        payments = stack.ctx.checkout.payments  # type: ignore[union-attr]
        worker = worker_for(stack, payments)
        await worker.run_once(at=time.time() + 3600)  # a retry before the deadline: pending
        assert (await stack.ctx.repo.order(order["order_id"])).status == st.AMBIGUOUS  # type: ignore[union-attr]
        assert await stack.stock(sku) == (3, 2, 0)  # holds checked and kept
        await past_deadline(stack, order["order_id"])
        watch = PaymentWatch(stack.ctx.pool)
        assert await watch.overdue(0.0, settings.payment_hold_s) >= 1  # the alert's gauge
        await worker.run_once(at=time.time() + 3600)
        assert worker.counters["payment_timeout"] == 1
        gauges = MemoryMetrics()  # what the worker actor exports for the alerts
        await deadline_sampler(watch, settings.payment_hold_s, gauges)()
        assert gauges.gauges[(ORDERS_UNPAID, (("code", "payment_timeout"),))] >= 1
        assert await stack.stock(sku) == (3, 0, 0)  # back on sale
        shown = (await stack.orders.get(f"/{order['order_id']}", headers=auth)).json()
        assert shown["status"] == "payment_failed"
        assert shown["failure"]["code"] == "payment_timeout"
        assert "Nothing was charged" in shown["failure"]["message"]
        events = await stack.ctx.repo.order_events(order["order_id"])
        assert [e["status"] for e in events][-1] == "payment_failed"
        assert events[-1]["detail"]["message"] == shown["failure"]["message"]
        assert await payments.queued(order["order_id"]) is None
        view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
        assert view["status"] == "open"
        # A retried checkout with the same key (its HTTP record gone) finds the order ended.
        await stack.ctx.redis.flushdb()
        again = (await pay(stack, auth, cart, "pm_card_unavailable")).json()
        assert again["order_id"] == order["order_id"] and again["status"] == "payment_failed"


@pytest.mark.parametrize("capture", ["manual", "automatic"])
async def test_charges_that_land_after_the_deadline_are_voided_and_logged(
    settings: Settings, accounts: tuple[LocalStripe, LocalStripe], capture: str
) -> None:
    primary, backup = accounts
    async with open_pay_stack(
        settings, primary, backup, stripe_timeout_s=1.0, stripe_capture_method=capture
    ) as ps:
        (sku,) = await ps.stack.product(stock=2)
        auth, cart = await filled_cart(ps.stack, sku)
        primary.pause()
        backup.pause()
        try:  # both accounts take the request and never answer
            order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
            assert order["status"] == "payment_pending"
            await past_deadline(ps.stack, order["order_id"])
            worker = worker_for(ps.stack, ps.payments, ps.router.gateways)
            await worker.run_once(at=time.time() + 3600)
        finally:
            primary.resume()
            backup.resume()
        ended = await ps.stack.ctx.repo.order(order["order_id"])
        assert ended is not None and ended.failure_code == "payment_timeout"
        assert await ps.stack.stock(sku) == (2, 0, 0)
        # They wake and process what they had queued: a late payment on each account.
        await asyncio.sleep(1.0)
        for _ in range(3):
            await worker.run_once()
        oid = order["order_id"]
        seen = charges(ps, oid)
        kinds = Counter(k for k, _ in await ps.payments.suspicious_of(oid))
        if capture == "manual":
            assert seen == Counter({"canceled": 2}), seen  # authorised late, never captured
            assert kinds == Counter({"late_authorisation_cancelled": 2})
        else:
            assert seen == Counter({"succeeded": 2}), seen  # charged late: both refunded
            for server in (primary, backup):
                pi = intent_for(server, oid)
                refunds = server.client().v1.refunds.list(params={"payment_intent": pi.id})
                assert sum(r.amount for r in refunds.data) == pi.amount
            assert kinds == Counter({"late_charge_refunded": 2})
        assert await ps.payments.captured(oid) is None


@pytest.mark.parametrize("capture", ["manual", "automatic"])
async def test_a_charge_in_flight_when_the_deadline_passes_is_voided_when_it_answers(
    settings: Settings, accounts: tuple[LocalStripe, LocalStripe], capture: str
) -> None:
    async with open_pay_stack(settings, *accounts, stripe_capture_method=capture) as ps:
        checkout = ps.stack.ctx.checkout
        assert checkout is not None
        (sku,) = await ps.stack.product(stock=2)
        auth, cart = await filled_cart(ps.stack, sku)
        gated = Gated(ps.router)
        checkout.gateway = gated  # type: ignore[assignment]
        try:
            paying = asyncio.create_task(pay(ps.stack, auth, cart, "pm_card_visa"))
            await asyncio.wait_for(gated.charging.wait(), 30)
            oid = (await order_of_cart(ps.stack, cart)).order_id
            await past_deadline(ps.stack, oid)
            await worker_for(ps.stack, ps.payments).run_once(at=time.time() + 3600)
            gated.gate.set()  # the gateway answers now: it authorised (or charged) the card
            answered = (await paying).json()
        finally:
            checkout.gateway = ps.router
        assert (answered["status"], answered["failure"]["code"]) == (
            "payment_failed", "payment_timeout",
        )  # fmt: skip
        seen = charges(ps, oid)
        kinds = [k for k, _ in await ps.payments.suspicious_of(oid)]
        if capture == "manual":
            assert seen == Counter({"canceled": 1})
            assert kinds == ["late_authorisation_cancelled"]
        else:
            assert seen == Counter({"succeeded": 1})
            assert kinds == ["late_charge_refunded"]
            pi = intent_for(ps.primary, oid)
            refunds = ps.primary.client().v1.refunds.list(params={"payment_intent": pi.id})
            assert [r.amount for r in refunds.data] == [pi.amount]
        assert await ps.stack.stock(sku) == (2, 0, 0)


async def paid_after_release(
    ps: PayStack, sku: str, qty: int, meanwhile: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a cart of ``qty`` out while ``meanwhile(order_id, reservation_id)`` ends its
    hold under it; then the gateway answers: the card was charged."""
    checkout = ps.stack.ctx.checkout
    assert checkout is not None
    auth, cart = await filled_cart(ps.stack, sku, qty)
    gated = Gated(ps.router)
    checkout.gateway = gated  # type: ignore[assignment]
    try:
        paying = asyncio.create_task(pay(ps.stack, auth, cart, "pm_card_visa"))
        await asyncio.wait_for(gated.charging.wait(), 30)
        order = await order_of_cart(ps.stack, cart)
        await meanwhile(order.order_id, order.lines[0].reservation_id)
        gated.gate.set()
        answered: dict[str, Any] = (await paying).json()
    finally:
        checkout.gateway = ps.router
    return answered, auth


async def test_a_payment_after_its_hold_ended_is_refunded_in_full_when_none_are_left(
    settings: Settings, accounts: tuple[LocalStripe, LocalStripe]
) -> None:
    async with open_pay_stack(settings, *accounts) as ps:
        (sku,) = await ps.stack.product(stock=2, price=4000)
        rival = await ps.stack.session()

        async def counted_and_taken(order_id: str, reservation_id: str) -> None:
            # A supplier count finds one unit: the newest holds (this order's) are revoked.
            await ps.stack.ctx.stock.set_on_hand("count:1", sku, 1)  # type: ignore[union-attr]
            rival_cart = await ps.stack.cart(rival)
            r = await ps.stack.shop.post(
                f"/carts/{rival_cart}/items", json={"sku": sku, "qty": 1}, headers=rival
            )
            assert r.status_code == 201, r.text  # the last unit, held by someone else

        order, auth = await paid_after_release(ps, sku, 2, counted_and_taken)
        assert (order["status"], order["failure"]["code"]) == ("refunded", "sold_out_refunded")
        assert "refunded it in full" in order["failure"]["message"]
        pi = ps.primary.client().v1.payment_intents.retrieve(order["payment_ref"])
        refunds = ps.primary.client().v1.refunds.list(params={"payment_intent": pi.id})
        assert pi.status == "succeeded" and [r.amount for r in refunds.data] == [8000]
        assert await ps.stack.stock(sku) == (1, 1, 0)  # sold nothing, oversold nothing
        kinds = [k for k, _ in await ps.payments.suspicious_of(order["order_id"])]
        assert kinds == ["sold_out_refunded"]
        shown = (await ps.stack.orders.get(f"/{order['order_id']}", headers=auth)).json()
        assert shown == order


async def test_a_payment_after_its_hold_ended_is_sold_on_a_new_hold_when_units_remain(
    settings: Settings, accounts: tuple[LocalStripe, LocalStripe]
) -> None:
    async with open_pay_stack(settings, *accounts) as ps:
        (sku,) = await ps.stack.product(stock=5)

        async def released(order_id: str, reservation_id: str) -> None:
            stock = ps.stack.ctx.stock
            assert stock is not None
            await stock.release("ops:1", sku, reservation_id)  # e.g. an operator's release

        order, _ = await paid_after_release(ps, sku, 2, released)
        assert order["status"] == "paid" and order["failure"] is None
        assert charges(ps, order["order_id"]) == Counter({"succeeded": 1})
        assert await ps.stack.stock(sku) == (5, 0, 2)
        stored = await ps.stack.ctx.repo.order(order["order_id"])
        assert stored is not None
        async with ps.stack.ctx.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT status, order_id FROM reservations WHERE reservation_id = %s",
                    (stored.lines[0].reservation_id,),
                )
            ).fetchall()
        assert rows == [("committed", order["order_id"])]  # the new hold, sold to the order
