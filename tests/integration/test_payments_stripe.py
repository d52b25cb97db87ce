"""Checkout paying through the real stripe SDK against two localstripe servers (in-process
HTTP apps, real PostgreSQL, Redis and shard core): paid, declined, failover mid-surge with no
lost or duplicated charge, and a crash between charge and commit recovered by the worker."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from matchday.payments.gateway import ChargeRequest, ChargeResult, PaymentGateway, RefundResult
from matchday.settings import Settings
from matchday.shop import models as st
from matchday.shop.payments_worker import PaymentsWorker
from tests.conftest import database_of_its_own
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
    with database_of_its_own(settings, "stripe") as own:
        yield own


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    with two_accounts() as both:
        yield both


@pytest.fixture
async def ps(settings: Settings, accounts: tuple[LocalStripe, LocalStripe]):
    async with open_pay_stack(settings, *accounts) as s:
        yield s


def worker_of(ps: PayStack) -> PaymentsWorker:
    checkout = ps.stack.ctx.checkout
    assert checkout is not None
    return PaymentsWorker(
        ps.stack.ctx.repo, ps.payments, checkout, ps.router.gateways,
        base_s=0.1, max_s=0.5, stray_after_s=0.0,
    )  # fmt: skip


async def test_a_checkout_is_paid_through_stripe_and_every_attempt_is_recorded(
    ps: PayStack,
) -> None:
    (sku,) = await ps.stack.product(stock=5, price=4500)
    auth, cart = await filled_cart(ps.stack, sku, 2)
    r = await pay(ps.stack, auth, cart, "pm_card_visa")
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["status"], order["gateway"]) == ("paid", "stripe-primary")
    assert await ps.stack.stock(sku) == (5, 0, 2)
    intent = ps.primary.client().v1.payment_intents.retrieve(order["payment_ref"])
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 9000, "eur")
    assert intent.metadata["matchday_key"] == f"{order['order_id']}:1"
    assert charges(ps, order["order_id"]) == Counter({"succeeded": 1})
    attempts = await ps.payments.attempts_of(order["order_id"])
    assert [(a.gateway, a.intent_id, a.status) for a in attempts] == [
        ("stripe-primary", order["payment_ref"], "succeeded")
    ]
    assert await ps.payments.queued(order["order_id"]) is None  # settled: out of the queue
    events = await ps.stack.ctx.repo.order_events(order["order_id"])
    assert events[-1]["status"] == "paid" and events[-1]["detail"]["message"]


async def test_a_retried_checkout_retrieves_the_intent_instead_of_charging_again(
    ps: PayStack,
) -> None:
    (sku,) = await ps.stack.product(stock=5)
    auth, cart = await filled_cart(ps.stack, sku)
    first = (await pay(ps.stack, auth, cart, "pm_card_visa", key="same")).json()
    await ps.stack.ctx.redis.flushdb()  # the HTTP replay record is gone; localstripe has no keys
    again = (await pay(ps.stack, auth, cart, "pm_card_visa", key="same")).json()
    assert again["payment_ref"] == first["payment_ref"]
    assert charges(ps, first["order_id"]) == Counter({"succeeded": 1})


async def test_a_declined_card_releases_the_stock_and_never_fails_over(ps: PayStack) -> None:
    (sku,) = await ps.stack.product(stock=3)
    auth, cart = await filled_cart(ps.stack, sku, 3)
    order = (await pay(ps.stack, auth, cart, "pm_card_chargeCustomerFail")).json()
    assert order["status"] == "payment_failed"
    assert order["failure"]["code"] == "card_declined"
    assert await ps.stack.stock(sku) == (3, 0, 0)
    assert ps.backup.by_order().get(order["order_id"]) is None  # the backup was never asked
    assert ps.router.counters[("stripe-primary", "local", "declined")] >= 1
    events = await ps.stack.ctx.repo.order_events(order["order_id"])
    assert "another" in events[-1]["detail"]["message"]  # try another card


async def test_a_crash_between_charge_and_commit_is_recovered_by_the_worker(
    ps: PayStack,
) -> None:
    class CrashAfterCharge:
        name = "crashing"

        def __init__(self, inner: PaymentGateway) -> None:
            self.inner = inner

        async def charge(self, req: ChargeRequest) -> ChargeResult:
            await self.inner.charge(req)
            raise RuntimeError("process died after the charge")

        async def refund(self, ref: str, amount: int, key: str) -> RefundResult:
            return await self.inner.refund(ref, amount, key)

    checkout = ps.stack.ctx.checkout
    assert checkout is not None
    (sku,) = await ps.stack.product(stock=4)
    auth, cart = await filled_cart(ps.stack, sku, 2)
    checkout.gateway = CrashAfterCharge(ps.router)
    try:
        with pytest.raises(RuntimeError):  # the in-process transport re-raises after the 500
            await pay(ps.stack, auth, cart, "pm_card_visa", key="crash")
    finally:
        checkout.gateway = ps.router
    order = (await ps.stack.orders.get("/", headers=auth)).json()["orders"][0]
    assert order["status"] == "pending_payment"
    assert await ps.stack.stock(sku) == (4, 2, 0)  # charged, not committed: still held
    assert await ps.payments.queued(order["order_id"]) is not None  # written before the charge
    # The intent id was recorded; make the worker do it the hard way, by looking it up.
    async with ps.payments.pool.connection() as conn:
        await conn.execute(
            "UPDATE payment_attempts SET intent_id = NULL, status = 'started' WHERE order_id = %s",
            (order["order_id"],),
        )
    await worker_of(ps).run_once(at=time.time() + 3600)
    settled = await ps.stack.ctx.repo.order(order["order_id"])
    assert settled is not None and settled.status == st.PAID
    assert await ps.stack.stock(sku) == (4, 0, 2)
    assert charges(ps, order["order_id"]) == Counter({"succeeded": 1})


async def test_the_primary_going_down_mid_surge_fails_over_with_no_lost_or_double_charge(
    settings: Settings,
) -> None:
    with two_accounts() as (primary, backup):
        async with open_pay_stack(settings, primary, backup, stripe_timeout_s=1.0) as ps:
            n = 12
            (sku,) = await ps.stack.product(stock=n)
            carts = [await filled_cart(ps.stack, sku) for _ in range(n)]

            async def buy(i: int) -> dict[str, object]:
                auth, cart = carts[i]
                if i == 4:
                    primary.pause()  # mid-surge: requests in flight and after get no answer
                r = await pay(ps.stack, auth, cart, "pm_card_visa", key=f"surge-{i}")
                assert r.status_code == 201, r.text
                body: dict[str, object] = r.json()
                return body

            first = [await buy(i) for i in range(4)]
            rest = await asyncio.gather(*(buy(i) for i in range(4, n)))
            orders = first + list(rest)
            assert ps.router.breakers["stripe-primary"].state == "open"
            assert ps.router.counters[("stripe-primary", "local", "failover")] >= 1
            primary.resume()  # it answers again, and processes what it had queued
            await asyncio.sleep(0.5)
            worker = worker_of(ps)
            for _ in range(5):
                await worker.run_once(at=time.time() + 3600)
                await asyncio.sleep(0.2)
            for o in orders:
                final = await ps.stack.ctx.repo.order(str(o["order_id"]))
                assert final is not None and final.status == st.PAID, final
                seen = charges(ps, final.order_id)
                assert seen["succeeded"] == 1, (final.order_id, seen)  # never twice
                assert set(seen) <= {"succeeded", "canceled"}  # strays voided
            assert await ps.stack.stock(sku) == (n, 0, n)  # nothing lost, nothing oversold
            finals = [await ps.stack.ctx.repo.order(str(o["order_id"])) for o in orders]
            by_gateway = Counter(f.gateway for f in finals if f is not None)
            # Calls that timed out were authorised once the primary woke: each was cancelled.
            late = sum(c["canceled"] for c in primary.by_order().values())
            assert worker.counters["voided"] == late
            assert by_gateway["stripe-backup"] >= 1 and by_gateway["stripe-primary"] >= 4
