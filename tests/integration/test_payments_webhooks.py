"""Stripe webhooks, signed as Stripe signs them, against orders paid through localstripe:
verified, de-duplicated, out of order, never moving an order backwards."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stripe

from matchday.domain.errors import Unavailable
from matchday.payments.gateway import ChargeRequest, ChargeResult, PaymentGateway, RefundResult
from matchday.settings import Settings
from matchday.shop import models as st
from matchday.shop.payment_events import StripeEvents
from matchday.web import webhooks_api
from tests.integration.test_payments_support import (
    LocalStripe,
    PayStack,
    filled_cart,
    open_pay_stack,
    pay,
    two_accounts,
)

pytestmark = pytest.mark.integration

SECRETS = {"primary": "whsec_primary_test_secret", "backup": "whsec_backup_test_secret"}


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    with two_accounts() as both:
        yield both


@pytest.fixture
async def ps(settings: Settings, accounts: tuple[LocalStripe, LocalStripe]):
    async with open_pay_stack(settings, *accounts) as s:
        yield s


@pytest.fixture
async def hooks(ps: PayStack) -> AsyncIterator[httpx.AsyncClient]:
    ctx = ps.stack.ctx
    assert ctx.checkout is not None
    events = StripeEvents(ctx.repo, ps.payments, ctx.checkout, ps.router.gateways)
    app = webhooks_api.build(ctx, secrets=SECRETS, events=events)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, root_path="/api/webhooks"),
        base_url="http://shop.test/api/webhooks",
    ) as client:
        yield client


def signed(payload: str, secret: str, at: int | None = None) -> dict[str, str]:
    """The Stripe-Signature header construct_event expects (the SDK's own HMAC)."""
    t = at if at is not None else int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{payload}", secret)
    return {"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"}


async def send(
    hooks: httpx.AsyncClient, event_id: str, type_: str, obj: dict[str, Any],
    account: str = "primary", at: int | None = None,
) -> httpx.Response:  # fmt: skip
    payload = json.dumps(
        {"id": event_id, "object": "event", "type": type_, "data": {"object": obj}}
    )
    return await hooks.post(
        f"/stripe/{account}", content=payload, headers=signed(payload, SECRETS[account], at)
    )


class AnswerLost:
    """The gateway processed the charge, but its answer never came back (a timeout)."""

    name = "lossy"

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        await self.inner.charge(req)
        raise Unavailable("read timeout")

    async def refund(self, ref: str, amount: int, key: str) -> RefundResult:
        return await self.inner.refund(ref, amount, key)


async def ambiguous_order(ps: PayStack, sku: str) -> tuple[dict[str, str], str]:
    checkout = ps.stack.ctx.checkout
    assert checkout is not None
    auth, cart = await filled_cart(ps.stack, sku)
    checkout.gateway = AnswerLost(ps.router)
    try:
        order = (await pay(ps.stack, auth, cart, "pm_card_visa", key="lost")).json()
    finally:
        checkout.gateway = ps.router
    assert order["status"] == "payment_pending"
    return auth, order["order_id"]


def intent_of(server: LocalStripe, order_id: str) -> dict[str, Any]:
    (pi,) = [p for p in server.intents() if p.metadata.to_dict().get("matchday_order") == order_id]
    return dict(pi.to_dict())


async def test_a_webhook_settles_an_ambiguous_order_and_replays_or_reordering_change_nothing(
    ps: PayStack, hooks: httpx.AsyncClient
) -> None:
    (sku,) = await ps.stack.product(stock=3)
    _, order_id = await ambiguous_order(ps, sku)
    intent = intent_of(ps.primary, order_id)
    assert intent["status"] == "succeeded"  # charged; we never heard back
    # Out of order: a stale failure event arrives first. The intent's real state decides.
    stale = {**intent, "status": "requires_payment_method"}
    r = await send(hooks, "evt_fail_1", "payment_intent.payment_failed", stale)
    assert r.status_code == 200 and r.json()["outcome"] == "order_paid", r.text
    r = await send(hooks, "evt_ok_1", "payment_intent.succeeded", intent)
    assert r.json()["outcome"] == "unchanged"
    for event_id, type_, obj in [
        ("evt_ok_1", "payment_intent.succeeded", intent),
        ("evt_fail_1", "payment_intent.payment_failed", stale),
    ]:
        r = await send(hooks, event_id, type_, obj)
        assert r.status_code == 200 and r.json()["duplicate"] is True
    r = await send(hooks, "evt_fail_2", "payment_intent.payment_failed", stale)
    assert r.json()["outcome"] == "unchanged"  # a paid order never moves backwards
    order = await ps.stack.ctx.repo.order(order_id)
    assert order is not None and order.status == st.PAID
    history = [e["status"] for e in await ps.stack.ctx.repo.order_events(order_id)]
    assert history == ["pending_payment", "payment_pending", "paid"]
    assert ps.primary.by_order()[order_id] == Counter({"succeeded": 1})
    assert await ps.stack.stock(sku) == (3, 0, 1)


async def test_a_bad_or_stale_signature_is_refused_and_changes_nothing(
    ps: PayStack, hooks: httpx.AsyncClient
) -> None:
    (sku,) = await ps.stack.product(stock=3)
    _, order_id = await ambiguous_order(ps, sku)
    intent = intent_of(ps.primary, order_id)
    payload = json.dumps({"id": "evt_x", "type": "payment_intent.succeeded",
                          "data": {"object": intent}})  # fmt: skip
    forged = signed(payload, "whsec_not_the_secret")
    r = await hooks.post("/stripe/primary", content=payload, headers=forged)
    assert r.status_code == 400 and r.json()["code"] == "invalid_signature"
    r = await send(hooks, "evt_old", "payment_intent.succeeded", intent, at=int(time.time()) - 900)
    assert r.status_code == 400
    r = await send(hooks, "evt_wrong_acct", "payment_intent.succeeded", intent, account="backup")
    assert r.status_code == 200  # a valid event from the other account is still applied
    assert (await hooks.post("/stripe/nobody", content="{}")).status_code == 404
    order = await ps.stack.ctx.repo.order(order_id)
    assert order is not None and order.status in (st.AMBIGUOUS, st.PAID)


async def test_a_late_success_for_a_failed_order_is_refunded_and_flagged(
    ps: PayStack, hooks: httpx.AsyncClient
) -> None:
    (sku,) = await ps.stack.product(stock=3)
    auth, cart = await filled_cart(ps.stack, sku)
    failed = (await pay(ps.stack, auth, cart, "pm_card_chargeCustomerFail")).json()
    order_id = failed["order_id"]
    # The gateway charged this order's key after all (a request it processed late).
    stray = ps.primary.client().v1.payment_intents.create(
        params={"amount": 100, "currency": "eur", "payment_method": "pm_card_visa",
                "confirm": True, "metadata": {"matchday_order": order_id,
                                              "matchday_key": f"{order_id}:1"}},
    )  # fmt: skip
    await ps.payments.record(order_id, 1, "stripe-primary", "started", intent_id=stray.id)
    r = await send(hooks, "evt_late", "payment_intent.succeeded", stray.to_dict())
    assert r.json()["outcome"] == "released", r.text
    refunds = ps.primary.client().v1.refunds.list(params={"payment_intent": stray.id})
    assert [x.amount for x in refunds.data] == [100]
    kinds = [k for k, _ in await ps.payments.suspicious_of(order_id)]
    # A charge for an order that ended without one (not a second capture beside its own).
    assert "late_success" in kinds and "late_charge_refunded" in kinds
    order = await ps.stack.ctx.repo.order(order_id)
    assert order is not None and order.status == st.FAILED  # still failed: never forwards


async def test_disputes_are_logged_and_a_full_refund_at_the_gateway_marks_the_order(
    ps: PayStack, hooks: httpx.AsyncClient
) -> None:
    (sku,) = await ps.stack.product(stock=3, price=2500)
    auth, cart = await filled_cart(ps.stack, sku)
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    ref = order["payment_ref"]
    dispute = {"id": "dp_test_1", "object": "dispute", "charge": "ch_1", "payment_intent": ref,
               "amount": 2500, "reason": "fraudulent", "status": "needs_response"}  # fmt: skip
    r = await send(hooks, "evt_dp", "charge.dispute.created", dispute)
    assert r.json()["outcome"] == "dispute_logged"
    async with ps.payments.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT order_id, reason FROM disputes WHERE dispute_id = 'dp_test_1'"
            )
        ).fetchone()
    assert row == (order["order_id"], "fraudulent")
    charge = {"id": "ch_1", "object": "charge", "payment_intent": ref, "amount_refunded": 2500}
    r = await send(hooks, "evt_rf", "charge.refunded", charge)
    assert r.json()["outcome"] == "order_refunded"
    final = await ps.stack.ctx.repo.order(order["order_id"])
    assert final is not None and final.status == st.REFUNDED


async def test_a_full_refund_of_a_discounted_order_marks_it_refunded(
    ps: PayStack, hooks: httpx.AsyncClient
) -> None:
    """Full means all that was charged (total - an offer's discount), not the lines' sum."""
    (sku,) = await ps.stack.product(stock=3, price=2500)
    auth, cart = await filled_cart(ps.stack, sku)
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    async with ps.payments.pool.connection() as conn:
        await conn.execute(
            "UPDATE orders SET discount_cents = 500 WHERE order_id = %s", (order["order_id"],)
        )
    charge = {"id": "ch_2", "object": "charge", "payment_intent": order["payment_ref"]}
    r = await send(hooks, "evt_rf_part", "charge.refunded", {**charge, "amount_refunded": 1999})
    assert r.json()["outcome"] == "partial"
    r = await send(hooks, "evt_rf_full", "charge.refunded", {**charge, "amount_refunded": 2000})
    assert r.json()["outcome"] == "order_refunded"
    final = await ps.stack.ctx.repo.order(order["order_id"])
    assert final is not None and final.status == st.REFUNDED
