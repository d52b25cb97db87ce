"""Every path of the checkout state machine, in memory (tests/unit/checkout_harness.py):
create the order, charge, then paid, declined, ambiguous, waiting on the bank, or out of time;
holds committed or released; one order and one charge per Idempotency-Key whatever the
retries; an add racing the checkout; units gone when the payment lands (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from matchday.domain.errors import CartClosed, Conflict, InvalidInput, NotFound, OutOfStock
from matchday.polls.models import OfferInvalid
from matchday.shop import models as st
from tests.unit.checkout_harness import HOLD_TTL_S, OFFER, PAY_WITHIN_S, PRICE, Shop


async def test_a_paid_checkout_sells_the_held_units_and_closes_the_cart() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 2), ("B", 1))
    order = await shop.pay(cart)
    assert order.status == st.PAID and order.payment_ref
    assert order.total_cents == 3 * PRICE and order.currency == "EUR"
    assert sorted((ln.sku, ln.qty) for ln in order.lines) == [("A", 2), ("B", 1)]
    assert shop.units("A") == (5, 0, 2) and shop.units("B") == (5, 0, 1)
    assert shop.gateway.calls == [f"{order.order_id}:1"]
    assert shop.store.statuses(order.order_id) == [st.PENDING, st.PAID]
    assert [s for _, s, _ in shop.events.published] == [st.PENDING, st.PAID]
    header = await shop.store.cart_header(cart)
    assert header is not None and (header.status, header.order_id) == (
        "checked_out",
        order.order_id,
    )
    assert shop.payments.queue == {}  # settled: nothing left for the worker
    with pytest.raises(CartClosed):  # the engine's fence: a checked-out cart takes nothing
        await shop.add(cart, "A")


async def test_a_retry_under_the_same_key_returns_the_same_order_and_charges_once() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    first = await shop.pay(cart, key="same")
    again = await shop.pay(cart, key="same")
    assert again == first and shop.gateway.charged == 1
    assert shop.gateway.calls == [f"{first.order_id}:1"]  # settled: not even asked again
    with pytest.raises(Conflict, match="already checked out"):
        await shop.pay(cart, key="other")
    assert shop.units("A") == (5, 0, 1)


async def test_two_checkouts_of_one_cart_under_two_keys_make_one_order() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    # The second checkout reads the cart open, then finds the first order made meanwhile.
    shop.prices.before = lambda: shop.pay(cart, key="k1")
    with pytest.raises(Conflict, match="already being checked out"):
        await shop.pay(cart, key="k2")
    assert shop.gateway.charged == 1 and shop.units("A") == (5, 0, 1)


async def test_a_declined_card_releases_the_units_and_gives_the_cart_back() -> None:
    shop = Shop("declined")
    cart = await shop.cart(("A", 3))
    order = await shop.pay(cart)
    assert (order.status, order.failure_code) == (st.FAILED, "card_declined")
    assert shop.units("A") == (5, 0, 0)
    view = await shop.store.cart(cart)
    assert view is not None and (view.status, view.order_id, view.held) == ("open", None, [])
    assert shop.payments.queue == {}
    shop.gateway.answer = "succeeded"  # the same cart, held again, paid another way
    await shop.add(cart, "A", 2)
    again = await shop.pay(cart, key="k2")
    assert again.status == st.PAID and [ln.qty for ln in again.lines] == [2]
    assert shop.units("A") == (5, 0, 2)


async def test_a_gateway_outage_keeps_the_holds_and_a_retry_under_the_key_pays_once() -> None:
    shop = Shop("down")
    cart = await shop.cart(("A", 1))
    order = await shop.pay(cart)
    assert order.status == st.AMBIGUOUS and order.pay_by == shop.clock.now() + PAY_WITHIN_S
    assert shop.units("A") == (5, 1, 0)  # not released on a guess: it may have charged
    assert order.order_id in shop.payments.queue  # the worker will find it
    assert shop.store.statuses(order.order_id) == [st.PENDING, st.AMBIGUOUS]
    shop.gateway.answer = "succeeded"
    paid = await shop.pay(cart)  # the client retries with the same Idempotency-Key
    assert paid.order_id == order.order_id and paid.status == st.PAID
    assert shop.gateway.calls == [f"{order.order_id}:1"] * 2  # one attempt, asked twice
    assert shop.gateway.charged == 1 and shop.units("A") == (5, 0, 1)


async def test_an_ambiguous_charge_that_went_through_is_found_by_the_worker_not_repeated() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    shop.gateway.lose_answer = True  # charged, but the answer never came back
    order = await shop.pay(cart)
    assert order.status == st.AMBIGUOUS and shop.units("A") == (5, 1, 0)
    shop.clock.advance(120)  # past the grace period: the queue row is due
    counters = await shop.worker_round()
    done = shop.now(order)
    assert done.status == st.PAID and counters["settled_paid"] == 1
    assert shop.gateway.charged == 1 and len(set(shop.gateway.calls)) == 1
    assert shop.units("A") == (5, 0, 1) and shop.payments.queue == {}


async def test_a_card_needing_3d_secure_waits_then_a_webhook_settles_it() -> None:
    shop = Shop("requires_action")
    cart = await shop.cart(("A", 1))
    order = await shop.pay(cart)
    assert (order.status, order.failure_code) == (st.REQUIRES_ACTION, "authentication_required")
    assert shop.units("A") == (5, 1, 0)
    next_at, _ = shop.payments.queue[order.order_id]
    assert next_at == pytest.approx(order.pay_by)  # looked at again at its deadline
    again = await shop.pay(cart)  # a retry does not ask the bank again
    assert again.status == st.REQUIRES_ACTION and len(shop.gateway.calls) == 1
    result = shop.gateway.confirm(f"{order.order_id}:1")  # the customer's bank said yes
    obj = {"id": result.payment_ref, "metadata": {"matchday_order": order.order_id}}
    said = await shop.webhooks.handle("acct", "payment_intent.succeeded", obj)
    assert said == "order_paid" and shop.units("A") == (5, 0, 1)
    assert await shop.webhooks.handle("acct", "payment_intent.succeeded", obj) == "unchanged"


async def test_an_order_still_unpaid_at_its_deadline_fails_and_frees_its_units() -> None:
    shop = Shop("down")
    cart = await shop.cart(("A", 2))
    order = await shop.pay(cart)
    for _ in range(3):  # the worker retries while the gateway stays down
        shop.clock.advance(PAY_WITHIN_S / 4)
        await shop.worker_round()
        assert shop.now(order).status == st.AMBIGUOUS and shop.units("A") == (5, 2, 0)
    shop.clock.advance(PAY_WITHIN_S / 4)
    await shop.worker_round()
    done = shop.now(order)
    assert (done.status, done.failure_code) == (st.FAILED, "payment_timeout")
    assert "Nothing was charged" in str(done.failure_message)
    assert shop.units("A") == (5, 0, 0) and shop.payments.queue == {}
    header = await shop.store.cart_header(cart)
    assert header is not None and header.status == "open"
    calls = len(shop.gateway.calls)
    shop.gateway.answer = "succeeded"
    assert (await shop.pay(cart)).status == st.FAILED  # the same key: ended, not charged
    assert len(shop.gateway.calls) == calls


async def test_a_payment_landing_after_its_hold_ended_is_sold_on_a_new_hold() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 2))
    paying, order, gate = await shop.paying(cart)
    old = order.lines[0].reservation_id
    await shop.stock.release("operator-1", "A", old)  # ended under the order mid-charge
    gate.set()
    done = await paying
    assert done.status == st.PAID and shop.units("A") == (5, 0, 2)
    new = done.lines[0].reservation_id
    assert new != old  # held again, the order's line now names the new hold
    assert shop.engine.reservations[new].cart_id == order.order_id  # the order's, not the cart's
    assert shop.gateway.charged == 1 and shop.gateway.refunds == {}


async def test_a_payment_landing_when_its_units_sold_out_is_refunded_in_full() -> None:
    shop = Shop(on_hand=2)
    cart = await shop.cart(("A", 2))
    paying, order, gate = await shop.paying(cart)
    await shop.stock.release("operator-1", "A", order.lines[0].reservation_id)
    other = await shop.cart(("A", 1), customer="someone-else")  # and a unit is taken
    gate.set()
    done = await paying
    assert (done.status, done.failure_code) == (st.REFUNDED, "sold_out_refunded")
    assert [(r.amount_cents) for r in shop.gateway.refunds.values()] == [2 * PRICE]
    assert "sold_out_refunded" in shop.payments.kinds(order.order_id)
    assert shop.units("A") == (2, 1, 0)  # nothing sold that was not held; the other holds 1
    header = await shop.store.cart_header(cart)
    assert header is not None and header.status == "open"  # the shopper may try again
    assert other != cart


async def test_an_add_landing_while_the_checkout_reads_the_cart_makes_it_refuse() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    shop.prices.before = lambda: shop.add(cart, "B")  # after the cart was read
    with pytest.raises(Conflict, match="added to the cart during checkout"):
        await shop.pay(cart)
    assert shop.gateway.calls == [] and shop.store.orders == {}
    header = await shop.store.cart_header(cart)
    assert header is not None and header.status == "open"  # refused whole: nothing changed
    order = await shop.pay(cart, key="k2")  # looked at again, it pays for both
    assert order.status == st.PAID and sorted(ln.sku for ln in order.lines) == ["A", "B"]


async def test_a_line_released_while_the_checkout_reads_the_cart_makes_it_refuse() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1), ("B", 1))
    view = await shop.store.cart(cart)
    assert view is not None
    b = next(ln.reservation_id for ln in view.lines if ln.sku == "B")
    shop.prices.before = lambda: shop.stock.release("rm-1", "B", b)
    with pytest.raises(Conflict, match="changed while it was being checked out"):
        await shop.pay(cart)
    assert shop.gateway.calls == []


async def test_an_add_after_the_order_was_made_is_refused_by_the_engine() -> None:
    shop = Shop("down")
    cart = await shop.cart(("A", 1))
    await shop.pay(cart)
    with pytest.raises(CartClosed, match="checked out"):
        await shop.add(cart, "A")
    assert shop.units("A") == (5, 1, 0)


async def test_a_hold_lost_before_a_retry_charge_fails_the_order_uncharged() -> None:
    shop = Shop("down", on_hand=1)
    cart = await shop.cart(("A", 1))
    order = await shop.pay(cart)
    await shop.stock.release("operator-1", "A", order.lines[0].reservation_id)
    await shop.cart(("A", 1), customer="someone-else")
    shop.gateway.answer = "succeeded"
    done = await shop.pay(cart)
    assert (done.status, done.failure_code) == (st.FAILED, "hold_lost")
    assert len(shop.gateway.calls) == 1  # no second charge for units not held


async def test_what_cannot_be_checked_out_is_refused_before_any_charge() -> None:
    shop = Shop()
    empty = await shop.cart()
    with pytest.raises(Conflict, match="holds nothing"):
        await shop.pay(empty)
    with pytest.raises(NotFound):
        await shop.checkout.checkout("stranger", empty, "pm_card_visa", "k1")
    cart = await shop.cart(("A", 1))
    with pytest.raises(InvalidInput):
        await shop.pay(cart, token="4242424242424242")
    with pytest.raises(InvalidInput):
        await shop.pay(cart, key="not a key!")
    del shop.prices.prices["A"]
    with pytest.raises(Conflict, match="no longer sold"):
        await shop.pay(cart)
    assert shop.gateway.calls == [] and shop.store.orders == {}


async def test_an_offer_is_claimed_with_its_order_and_given_back_when_it_fails() -> None:
    shop = Shop("declined")
    cart = await shop.cart(("A", 1))
    quote = await shop.checkout.quote("cust", cart, OFFER)
    assert (quote["discount_cents"], quote["charged_cents"]) == (500, PRICE - 500)
    failed = await shop.pay(cart, offer_code=OFFER)
    assert failed.status == st.FAILED and shop.store.offers == {}  # given back
    shop.gateway.answer = "succeeded"
    await shop.add(cart, "A")
    paid = await shop.pay(cart, key="k2", offer_code=OFFER)
    assert paid.status == st.PAID and paid.charged_cents == PRICE - 500
    assert shop.store.offers == {OFFER: paid.order_id}
    other = await shop.cart(("B", 1))
    with pytest.raises(OfferInvalid, match="already used"):
        await shop.pay(other, key="k3", offer_code=OFFER)
    with pytest.raises(OfferInvalid):
        await shop.pay(other, key="k4", offer_code="nonsense")


async def test_an_order_over_the_velocity_limit_waits_for_review_before_any_charge() -> None:
    shop = Shop()
    shop.with_fraud_rules(per_customer=1)
    assert (await shop.pay(await shop.cart(("A", 1)))).status == st.PAID
    held = await shop.pay(await shop.cart(("A", 1)), key="k2")
    rejected = await shop.pay(await shop.cart(("B", 1)), key="k3")
    assert held.status == rejected.status == st.REVIEW and len(shop.gateway.calls) == 1
    assert "velocity_hold" in shop.payments.kinds(held.order_id)
    assert shop.units("A") == (5, 1, 1)  # its holds last through the review
    approved = await shop.checkout.decide_review(held.order_id, approve=True)
    assert approved.status == st.PAID and shop.units("A") == (5, 0, 2)
    cancelled = await shop.checkout.decide_review(rejected.order_id, approve=False)
    assert (cancelled.status, cancelled.failure_code) == (st.CANCELLED, "review_rejected")
    assert shop.units("B") == (5, 0, 0)
    with pytest.raises(Conflict):
        await shop.checkout.decide_review(rejected.order_id, approve=True)


async def test_refunds_are_partial_or_full_idempotent_by_key_and_bounded() -> None:
    shop = Shop()
    order = await shop.pay(await shop.cart(("A", 2)))
    part = await shop.checkout.refund(order.order_id, 1000, "r1")
    assert part.status == st.PAID
    assert (await shop.checkout.refund(order.order_id, 1000, "r1")).status == st.PAID
    assert len(shop.gateway.refunds) == 1  # the same key refunds once
    with pytest.raises(InvalidInput):
        await shop.checkout.refund(order.order_id, 2 * PRICE, "r2")  # more than is left
    full = await shop.checkout.refund(order.order_id, None, "r3")
    assert full.status == st.REFUNDED
    story = await shop.checkout.payment_story(order.order_id)
    assert story["order"]["status"] == st.REFUNDED and story["queue"] is None
    with pytest.raises(Conflict):
        await shop.checkout.refund(order.order_id, None, "r4")


async def test_the_stock_never_oversells_when_checkouts_race_for_the_last_units() -> None:
    shop = Shop(on_hand=3)
    carts = []
    for n in range(5):
        with contextlib.suppress(OutOfStock):  # the last two find none left to hold
            carts.append(await shop.cart(("A", 1), customer=f"cust{n}"))
    assert len(carts) == 3
    orders = await asyncio.gather(
        *(shop.checkout.checkout(f"cust{n}", c, "pm_card_visa", "k1") for n, c in enumerate(carts))
    )
    assert [o.status for o in orders] == [st.PAID] * 3 and shop.units("A") == (3, 0, 3)


async def test_a_charge_answering_after_the_deadline_ended_the_order_is_refunded() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    paying, order, gate = await shop.paying(cart)
    shop.clock.advance(PAY_WITHIN_S + 1)  # the charge hangs past the deadline
    await shop.worker_round()  # the worker ends the order there
    assert shop.now(order).failure_code == "payment_timeout" and shop.units("A") == (5, 0, 0)
    gate.set()  # then the gateway answers: it charged
    late = await paying
    assert (late.status, late.failure_code) == (st.FAILED, "payment_timeout")
    assert [r.amount_cents for r in shop.gateway.refunds.values()] == [PRICE]
    assert "late_charge_refunded" in shop.payments.kinds(order.order_id)
    assert shop.units("A") == (5, 0, 0)  # nothing sold


async def test_a_card_still_waiting_on_its_bank_at_the_deadline_is_ended_by_the_worker() -> None:
    shop = Shop("requires_action")
    order = await shop.pay(await shop.cart(("A", 1)))
    await shop.worker_round()  # not due before its deadline
    assert shop.now(order).status == st.REQUIRES_ACTION and shop.units("A") == (5, 1, 0)
    shop.clock.advance(PAY_WITHIN_S + 1)
    await shop.worker_round()
    done = shop.now(order)
    assert (done.status, done.failure_code) == (st.FAILED, "payment_timeout")
    assert shop.units("A") == (5, 0, 0) and shop.payments.queue == {}


async def test_holds_past_their_expiry_by_the_checkouts_clock_are_not_checked_out() -> None:
    shop = Shop()
    cart = await shop.cart(("A", 1))
    shop.clock.advance(HOLD_TTL_S + 1)  # the injected clock, not the wall clock, says when
    with pytest.raises(Conflict, match="the cart holds nothing"):
        await shop.pay(cart)
    assert shop.store.orders == {} and shop.gateway.calls == []


async def test_the_workers_next_look_is_never_past_the_deadline_by_the_checkouts_clock() -> None:
    shop = Shop("down")
    cart = await shop.cart(("A", 1))
    order = await shop.pay(cart)
    assert order.pay_by is not None
    shop.clock.advance(PAY_WITHIN_S - 0.5)  # half a second left: less than any backoff
    counters = await shop.worker_round()
    assert counters["retried"] == 1 and shop.now(order).status == st.AMBIGUOUS
    next_at, _ = shop.payments.queue[order.order_id]
    assert next_at == pytest.approx(order.pay_by, abs=0.01)


async def test_a_new_orders_steps_that_wait_on_different_servers_overlap() -> None:
    """The card's fingerprint is asked while the order is inserted; then the order's first
    event, its screening and its holds' extension wait at once. Each step below waits for
    another to have started, which steps taken one after another never let happen."""
    shop = Shop()
    shop.with_fraud_rules(per_customer=10)
    started: dict[str, asyncio.Event] = {}

    def after(name: str, partner: str, step: Any) -> Any:
        started[name] = asyncio.Event()

        async def waits(*args: Any, **kwargs: Any) -> Any:
            started[name].set()
            await started[partner].wait()
            return await step(*args, **kwargs)

        return waits

    async def fingerprint(token: str) -> str:
        return f"fp-{token}"

    fraud = shop.checkout.fraud
    assert fraud is not None
    shop.store.create_order = after("insert", "fingerprint", shop.store.create_order)  # type: ignore[method-assign]
    shop.gateway.fingerprint = after("fingerprint", "insert", fingerprint)  # type: ignore[attr-defined]
    shop.events.publish = after("event", "extend", shop.events.publish)  # type: ignore[method-assign]
    fraud.assess = after("screen", "event", fraud.assess)  # type: ignore[method-assign]
    shop.stock.extend = after("extend", "screen", shop.stock.extend)  # type: ignore[method-assign]
    cart = await shop.cart(("A", 1))
    async with asyncio.timeout(5):
        order = await shop.pay(cart)
    assert order.status == st.PAID and shop.units("A") == (5, 0, 1)
    assert [s for _, s, _ in shop.events.published] == [st.PENDING, st.PAID]
    assert all(event.is_set() for event in started.values())


async def test_an_orders_lines_are_checked_and_sold_at_once() -> None:
    """Each line's extend, then each line's commit, waits for the other line's to have
    started: lines taken one after another (a shard round trip each) never let that happen."""
    shop = Shop()
    cart = await shop.cart(("A", 1), ("B", 2))

    def together(step: Any) -> Any:
        started: set[str] = set()
        both = asyncio.Event()

        async def waits(request_id: str, sku: str, *args: Any) -> Any:
            started.add(sku)
            if len(started) == 2:
                both.set()
            await both.wait()
            return await step(request_id, sku, *args)

        return waits

    shop.stock.extend = together(shop.stock.extend)  # type: ignore[method-assign]
    shop.stock.commit = together(shop.stock.commit)  # type: ignore[method-assign]
    async with asyncio.timeout(5):
        order = await shop.pay(cart)
    assert order.status == st.PAID
    assert shop.units("A") == (5, 0, 1) and shop.units("B") == (5, 0, 2)
