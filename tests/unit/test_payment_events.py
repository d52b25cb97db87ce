"""What a (verified, first-delivered) gateway event does to an order (shop/payment_events.py),
in memory (tests/unit/checkout_harness.py). Events are hints: the gateway's answer under
the attempt's key settles an order; a settled order never moves backwards."""

from __future__ import annotations

from typing import Any

from matchday.shop import models as st
from tests.unit.checkout_harness import OFFER, PRICE, Shop


def intent(ref: str, order_id: str | None = None) -> dict[str, Any]:
    return {"id": ref, "metadata": {"matchday_order": order_id} if order_id else {}}


async def test_an_event_of_any_kind_settles_an_ambiguous_order_by_asking_the_gateway() -> None:
    shop = Shop()
    shop.gateway.lose_answer = True  # charged; the answer never came back
    order = await shop.pay(await shop.cart(("A", 1)))
    assert order.status == st.AMBIGUOUS
    stale = intent("pi_any", order.order_id)  # a stale failure arrives first
    said = await shop.webhooks.handle("acct", "payment_intent.payment_failed", stale)
    assert said == "order_paid" and shop.units("A") == (5, 0, 1)
    paid = shop.now(order)
    ok = intent(str(paid.payment_ref), order.order_id)
    assert await shop.webhooks.handle("acct", "payment_intent.succeeded", ok) == "unchanged"
    assert await shop.webhooks.handle("acct", "payment_intent.payment_failed", ok) == "unchanged"
    assert shop.store.statuses(order.order_id) == [st.PENDING, st.AMBIGUOUS, st.PAID]
    assert shop.gateway.charged == 1


async def test_a_success_for_an_order_that_failed_is_flagged_and_leaves_it_failed() -> None:
    shop = Shop("declined")
    order = await shop.pay(await shop.cart(("A", 1)))
    said = await shop.webhooks.handle(
        "acct", "payment_intent.succeeded", intent("pi_stray", order.order_id)
    )
    # No gateway here can release it (no release_stray): flagged for an operator.
    assert said == "flagged" and "late_success" in shop.payments.kinds(order.order_id)
    assert shop.now(order).status == st.FAILED


async def test_events_about_no_order_of_ours_change_nothing() -> None:
    shop = Shop()
    assert await shop.webhooks.handle("acct", "payment_intent.succeeded", intent("pi_x")) == (
        "unknown_order"
    )
    assert await shop.webhooks.handle("acct", "customer.created", {}) == "ignored"
    assert await shop.webhooks.handle("acct", "charge.refunded", {"id": "ch"}) == "ignored"


async def test_a_dispute_is_logged_against_its_order() -> None:
    shop = Shop()
    order = await shop.pay(await shop.cart(("A", 1)))
    dispute = {
        "id": "dp_1",
        "payment_intent": order.payment_ref,
        "amount": PRICE,
        "reason": "fraudulent",
        "status": "needs_response",
    }
    assert await shop.webhooks.handle("acct", "charge.dispute.created", dispute) == (
        "dispute_logged"
    )
    assert shop.payments.disputes == {"dp_1": order.order_id}
    assert "dispute" in shop.payments.kinds(order.order_id)


async def test_a_refund_at_the_gateway_marks_the_order_only_when_all_it_charged_is_back() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    order = await shop.pay(cart, offer_code=OFFER)  # charged PRICE - 500
    charge = {
        "id": "ch_1",
        "payment_intent": order.payment_ref,
        "metadata": {"matchday_order": order.order_id},
    }
    part = {**charge, "amount_refunded": order.charged_cents - 1}
    assert await shop.webhooks.handle("acct", "charge.refunded", part) == "partial"
    full = {**charge, "amount_refunded": order.charged_cents}
    assert await shop.webhooks.handle("acct", "charge.refunded", full) == "order_refunded"
    assert shop.now(order).status == st.REFUNDED
    assert await shop.webhooks.handle("acct", "charge.refunded", full) == "unchanged"
