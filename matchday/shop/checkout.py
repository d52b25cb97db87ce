"""Checkout: a cart's holds become an order, paid, then committed; or released.

The order of steps is what keeps both promises, never oversell and never double-charge:

1. The order is written first (pending), under an id derived from the customer's
   idempotency key, so a retried checkout finds the same order and resumes it.
   The cart goes to checkout with it: its lines can no longer change (409).
2. The holds are extended to cover the payment, so they cannot expire mid-charge.
3. The gateway is asked to charge under the key ``<order>:<attempt>``; nothing (no
   transaction, no lock) is held meanwhile.
4. Success commits every hold (reserved becomes sold) and marks the order paid. A decline
   releases the holds. No answer (outage, timeout) leaves the order ``payment_pending`` with
   its holds in place: it is settled later by asking again under the same key, never guessed,
   until its payment deadline; then it fails as ``payment_timeout`` (``settle.py``).

Every step is idempotent by a request id derived from the order, so running :meth:`resume`
twice, or in two processes, moves the order once.

Before the charge the order is put in the payments worker's queue (``payment_queue``, due
after a grace period) and taken out once it settles, so a crash anywhere between the charge
and the commit leaves work the worker finds (ADR 0008). Velocity rules may hold a new order
for review (status ``review``) before any charge; an operator approves or rejects it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from matchday.domain.clock import Clock
from matchday.domain.concurrent import all_of
from matchday.domain.errors import Conflict, InvalidInput, MatchdayError, NotFound
from matchday.domain.ids import check_key, derived_id
from matchday.payments.fraud import FraudRules
from matchday.payments.gateway import PaymentGateway, check_token
from matchday.polls.models import OfferInvalid
from matchday.shop import models as st
from matchday.shop.holds import OrderHolds
from matchday.shop.models import Order, OrderLine
from matchday.shop.ports import OrderEvents, OrderStore, PaymentLedger, Prices, Stock
from matchday.shop.settle import OrderPayments, lost_message, told

log = logging.getLogger(__name__)


class Offers(Protocol):
    """Prices a poll's offer code (matchday.polls.offers.OfferBook); refuses a bad one with
    ``offer_invalid``. Its single use is claimed with the order (OrderStore.create_order)."""

    async def discount(
        self, customer_id: str, code: str, lines: Sequence[OrderLine], now: float
    ) -> int: ...


class CheckoutService(OrderPayments):
    def __init__(
        self,
        repo: OrderStore,
        stock: Stock,
        prices: Prices,
        gateway: PaymentGateway,
        events: OrderEvents,
        *,
        payment_hold_s: float,
        payments: PaymentLedger,
        clock: Clock,
        fraud: FraudRules | None = None,
        settle_grace_s: float = 60.0,
        offers: Offers | None = None,
    ) -> None:
        self.repo = repo
        self.stock = stock
        self.holds = OrderHolds(stock, repo)
        self.prices = prices
        self.gateway = gateway
        self.events = events
        self.payment_hold_s = payment_hold_s
        self.payments = payments
        self.fraud = fraud
        self.settle_grace_s = settle_grace_s
        self.offers = offers
        self.clock = clock

    async def checkout(
        self,
        customer_id: str,
        cart_id: str,
        payment_token: str,
        key: str,
        client_ip: str | None = None,
        offer_code: str | None = None,
    ) -> Order:
        check_token(payment_token)
        order_id = derived_id("o", customer_id, check_key(key))
        existing = await self.repo.order(order_id)
        if existing is not None:
            return await self.resume(existing)
        order = await self._new_order(order_id, customer_id, cart_id, payment_token, offer_code)
        # Steps that wait on different servers overlap (each is a few ms; the shard's extend
        # ~12 ms over Ray): the card's fingerprint with the order's insert, then the order's
        # first event, its screening and its holds' extension. The extension is the one a
        # charge and a review both start with, for the same time.
        (created, fresh), fingerprint = await all_of(
            self.repo.create_order(order, key), self._fingerprint(payment_token)
        )
        if not fresh:
            return await self.resume(created)
        _, flagged, (held, lost) = await all_of(
            self.events.publish(created.order_id, created.status, told(created.status, {})),
            self._screen(created, fingerprint, client_ip),
            self.holds.secure(created, self._hold_ttl(created)),
        )
        if flagged:
            await self._hold_for_review(held, lost)
            return await self._reload(created)
        return await self._charge_held(held, lost, st.UNSETTLED)

    async def quote(
        self, customer_id: str, cart_id: str, offer_code: str | None = None
    ) -> dict[str, Any]:
        """What placing an order for this cart would charge now, the offer's discount
        included, under the same rules as :meth:`checkout`; claims and creates nothing."""
        order = await self._new_order("quote", customer_id, cart_id, "", offer_code)
        return {
            "cart_id": cart_id,
            "currency": order.currency,
            "total_cents": order.total_cents,
            "discount_cents": order.discount_cents,
            "charged_cents": order.charged_cents,
            "offer_code": order.offer_code,
            "lines": [
                {
                    "sku": ln.sku,
                    "qty": ln.qty,
                    "unit_price_cents": ln.unit_price_cents,
                    "title": ln.title,
                }
                for ln in order.lines
            ],
        }

    async def order(self, customer_id: str, order_id: str) -> Order:
        order = await self.repo.order(order_id)
        if order is None or order.customer_id != customer_id:
            raise NotFound("order", order_id)
        return order

    async def decide_review(self, order_id: str, approve: bool) -> Order:
        """An operator's decision on an order held for review: pay it now, or cancel it."""
        order = await self.repo.order(order_id)
        if order is None:
            raise NotFound("order", order_id)
        if order.status != st.REVIEW:
            raise Conflict(f"order {order_id} is {order.status}, not under review")
        if approve:
            detail = told(st.PENDING, {"review": "approved"})
            if await self.repo.update_order(
                order_id, st.PENDING, from_statuses=frozenset({st.REVIEW}), detail=detail
            ):
                await self.events.publish(order_id, st.PENDING, detail)
            return await self.resume(await self._reload(order))
        await self.holds.release(order)
        detail = told(st.CANCELLED, {"review": "rejected"})
        if await self.repo.update_order(
            order_id,
            st.CANCELLED,
            from_statuses=frozenset({st.REVIEW}),
            detail=detail,
            failure_code="review_rejected",
            failure_message="cancelled after review",
        ):
            await self.events.publish(order_id, st.CANCELLED, detail)
        return await self._reload(order)

    async def refund(self, order_id: str, amount_cents: int | None, key: str) -> Order:
        """Give back ``amount_cents`` (all that is left when None) of a paid order.

        ``key`` makes it idempotent: the same key refunds once, whatever the retries."""
        order = await self.repo.order(order_id)
        if order is None:
            raise NotFound("order", order_id)
        if order.status != st.PAID or not order.payment_ref:
            raise Conflict(f"order {order_id} is {order.status}: only paid orders are refunded")
        left = order.charged_cents - await self.payments.refunded_cents(order.payment_ref)
        amount = left if amount_cents is None else amount_cents
        if amount <= 0 or amount > left:
            raise InvalidInput("amount_cents", f"between 1 and {left} (what is left to refund)")
        refund_key = f"refund:{order_id}:{check_key(key)}"
        result = await self.gateway.refund(order.payment_ref, amount, refund_key)
        await self.payments.record_refund(
            refund_key,
            result.gateway,
            order.payment_ref,
            result.amount_cents,
            "succeeded",
            result.refund_ref,
        )
        full = await self.payments.refunded_cents(order.payment_ref) >= order.charged_cents
        status = st.REFUNDED if full else st.PAID
        detail = told(status, {"refunded_cents": result.amount_cents, "refund": result.refund_ref})
        if await self.repo.update_order(
            order_id, status, from_statuses=frozenset({st.PAID}), detail=detail
        ):
            await self.events.publish(order_id, status, detail)
        return await self._reload(order)

    async def payment_story(self, order_id: str) -> dict[str, Any]:
        """An order's payment as operators see it (the admin API)."""
        order = await self.repo.order(order_id)
        if order is None:
            raise NotFound("order", order_id)
        queued = await self.payments.queued(order_id)
        captured = await self.payments.captured(order_id)
        return {
            "order": order.to_dict(),
            "deadline": self.deadline(order) if order.attempts else None,
            "attempts": [
                {
                    "attempt": a.attempt,
                    "gateway": a.gateway,
                    "intent": a.intent_id,
                    "status": a.status,
                    "error": a.error,
                    "risk_level": a.risk_level,
                }
                for a in await self.payments.attempts_of(order_id)
            ],
            "queue": {"tries": queued[0], "next_at": queued[1]} if queued else None,
            "capture": {"gateway": captured[0], "intent": captured[1]} if captured else None,
            "suspicious": [
                {"kind": kind, "detail": detail}
                for kind, detail in await self.payments.suspicious_of(order_id)
            ],
        }

    async def _fingerprint(self, payment_token: str) -> str | None:
        """The card's fingerprint for the velocity rules, if they run and the gateway has one."""
        ask = getattr(self.gateway, "fingerprint", None)
        if self.fraud is None or ask is None:
            return None
        try:
            fingerprint: str | None = await ask(payment_token)
        except MatchdayError:
            return None  # the rules still count the customer and the address
        return fingerprint

    async def _screen(self, order: Order, fingerprint: str | None, client_ip: str | None) -> bool:
        """Does a velocity rule hold the new order for review?"""
        if self.fraud is None:
            return False
        reasons = await self.fraud.assess(order.order_id, order.customer_id, fingerprint, client_ip)
        return bool(reasons)

    async def _hold_for_review(self, order: Order, lost: list[OrderLine]) -> None:
        """``order`` with its holds secured (they last through a review as through a payment;
        an approval checks them again) waits for an operator, or fails if one was lost."""
        if lost and await self._close_unpaid(order, "hold_lost", lost_message(lost)):
            return
        moved = await self.repo.update_order(
            order.order_id,
            st.REVIEW,
            from_statuses=frozenset({st.PENDING}),
            detail=told(st.REVIEW, {}),  # the reasons go to the suspicious log, not the customer
        )
        if moved:
            await self.events.publish(order.order_id, st.REVIEW, told(st.REVIEW, {}))

    # -- steps ---------------------------------------------------------------------------------

    async def _new_order(
        self,
        order_id: str,
        customer_id: str,
        cart_id: str,
        payment_token: str,
        offer_code: str | None = None,
    ) -> Order:
        cart = await self.repo.cart(cart_id)
        if cart is None or cart.customer_id != customer_id:
            raise NotFound("cart", cart_id)
        if cart.status != "open":
            raise Conflict(f"cart {cart_id} is already checked out")
        now = self.clock.now()
        held = [line for line in cart.held if line.expires_at > now]
        if not held:
            raise Conflict("the cart holds nothing: add items again (holds expire)")
        prices = await self.prices.price_of(sorted({line.sku for line in held}))
        missing = sorted({line.sku for line in held} - set(prices))
        if missing:
            raise Conflict(f"no longer sold: {', '.join(missing)}; remove them to check out")
        currencies = {prices[line.sku].currency for line in held}
        if len(currencies) != 1:
            raise Conflict("the cart mixes currencies")
        lines = tuple(
            OrderLine(
                reservation_id=line.reservation_id,
                sku=line.sku,
                qty=line.qty,
                unit_price_cents=prices[line.sku].price_cents,
                title=prices[line.sku].title,
            )
            for line in held
        )
        discount = 0
        if offer_code:
            if self.offers is None:
                raise OfferInvalid("offers are not enabled here")
            discount = await self.offers.discount(customer_id, offer_code, lines, now)
        return Order(
            order_id=order_id,
            cart_id=cart_id,
            customer_id=customer_id,
            status=st.PENDING,
            total_cents=sum(ln.qty * ln.unit_price_cents for ln in lines),
            currency=currencies.pop(),
            payment_token=payment_token,
            attempts=0,
            gateway=None,
            payment_ref=None,
            failure_code=None,
            failure_message=None,
            created_at=now,
            updated_at=now,
            lines=lines,
            discount_cents=discount,
            offer_code=offer_code or None,
        )
