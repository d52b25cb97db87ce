"""Checkout: a cart's holds become an order, paid, then committed; or released.

The order of steps is what keeps both promises, never oversell and never double-charge:

1. The order is written first (pending), under an id derived from the customer's
   idempotency key, so a retried checkout finds the same order and resumes it.
2. The holds are extended to cover the payment, so they cannot expire mid-charge.
3. The gateway is asked to charge under the key ``<order>:<attempt>``; nothing (no
   transaction, no lock) is held meanwhile.
4. Success commits every hold (reserved becomes sold) and marks the order paid. A decline
   releases the holds. No answer (outage, timeout) leaves the order ``payment_pending`` with
   its holds in place: it is settled later by asking again under the same key, never guessed.

Every step is idempotent by a request id derived from the order, so running :meth:`resume`
twice, or in two processes, moves the order once.

Before the charge the order is put in the payments worker's queue (``payment_queue``, due
after a grace period) and taken out once it settles, so a crash anywhere between the charge
and the commit leaves work the worker finds (ADR 0008). Velocity rules may hold a new order
for review (status ``review``) before any charge; an operator approves or rejects it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg

from matchday.domain.errors import (
    Conflict,
    InvalidInput,
    MatchdayError,
    NotFound,
    ReservationClosed,
    Unavailable,
)
from matchday.payments.fraud import FraudRules
from matchday.payments.gateway import ChargeRequest, PaymentGateway, check_token
from matchday.polls.models import OfferInvalid
from matchday.shop import models as st
from matchday.shop.carts import check_key, derived_id
from matchday.shop.models import Order, OrderLine
from matchday.shop.ports import OrderEvents, Prices, Stock
from matchday.storage.payments_repo import PaymentsRepository
from matchday.storage.shop_repo import ShopRepository

log = logging.getLogger(__name__)


class Offers(Protocol):
    """Prices a poll's offer code (matchday.polls.offers.OfferBook); refuses a bad one with
    ``offer_invalid``. Its single use is claimed with the order (ShopRepository)."""

    async def discount(
        self, customer_id: str, code: str, lines: Sequence[OrderLine], now: float
    ) -> int: ...


class CheckoutService:
    def __init__(
        self,
        repo: ShopRepository,
        stock: Stock,
        prices: Prices,
        gateway: PaymentGateway,
        events: OrderEvents,
        *,
        payment_hold_s: float,
        payments: PaymentsRepository | None = None,
        fraud: FraudRules | None = None,
        settle_grace_s: float = 60.0,
        offers: Offers | None = None,
    ) -> None:
        self.repo = repo
        self.stock = stock
        self.prices = prices
        self.gateway = gateway
        self.events = events
        self.payment_hold_s = payment_hold_s
        self.payments = payments if payments is not None else PaymentsRepository(repo.pool)
        self.fraud = fraud
        self.settle_grace_s = settle_grace_s
        self.offers = offers

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
        try:
            created, fresh = await self.repo.create_order(order, key)
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"cart {cart_id} is already being checked out") from None
        if fresh:
            await self._publish(created, {})
            if await self._held_for_review(created, client_ip):
                return await self._reload(created)
        return await self.resume(created)

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
                {"sku": ln.sku, "qty": ln.qty, "unit_price_cents": ln.unit_price_cents,
                 "title": ln.title}
                for ln in order.lines
            ],
        }  # fmt: skip

    async def order(self, customer_id: str, order_id: str) -> Order:
        order = await self.repo.order(order_id)
        if order is None or order.customer_id != customer_id:
            raise NotFound("order", order_id)
        return order

    async def resume(self, order: Order, *, with_action: bool = False) -> Order:
        """Drive an unsettled order as far as it can go now; settled ones come back as they are.

        ``with_action`` also asks again for an order waiting on the customer's bank (a webhook
        saying the payment went through, or failed)."""
        movable = st.UNSETTLED | ({st.REQUIRES_ACTION} if with_action else set())
        if order.status not in movable:
            return order
        if not await self._extend_holds(order):
            return await self._reload(order)
        req = ChargeRequest(
            order.order_id, max(order.attempts, 1), order.charged_cents, order.currency,
            order.payment_token, order.customer_id,
        )  # fmt: skip
        if order.attempts == 0:
            await self.repo.bump_attempt(order.order_id)
        # Before the charge: if this process dies anywhere after it, the worker finds the order.
        await self.payments.schedule(order.order_id, self.settle_grace_s, only_if_absent=True)
        try:
            result = await self.gateway.charge(req)
        except MatchdayError as exc:
            if not exc.retryable:
                raise
            await self._move(order, st.AMBIGUOUS, {"reason": "gateway_unavailable"})
            return await self._reload(order)
        if result.risk_level in ("elevated", "highest"):
            await self.payments.suspicious(
                "gateway_risk", order.order_id, order.customer_id,
                {"risk_level": result.risk_level, "gateway": result.gateway},
            )  # fmt: skip
        if result.status == "declined":
            await self._release_all(order)
            await self._move(
                order, st.FAILED, {"code": result.code},
                gateway=result.gateway, payment_ref=result.payment_ref,
                failure_code=result.code, failure_message=result.message,
            )  # fmt: skip
            await self.payments.done(order.order_id)
            return await self._reload(order)
        if result.status == "requires_action":
            await self._move(
                order, st.REQUIRES_ACTION, {"code": result.code},
                gateway=result.gateway, payment_ref=result.payment_ref,
                failure_code=result.code, failure_message=result.message,
            )  # fmt: skip
            await self.payments.done(order.order_id)  # the bank's answer arrives by webhook
            return await self._reload(order)
        return await self._fulfil(order, result.gateway, result.payment_ref)

    async def decide_review(self, order_id: str, approve: bool) -> Order:
        """An operator's decision on an order held for review: pay it now, or cancel it."""
        order = await self.repo.order(order_id)
        if order is None:
            raise NotFound("order", order_id)
        if order.status != st.REVIEW:
            raise Conflict(f"order {order_id} is {order.status}, not under review")
        if approve:
            detail = _told(st.PENDING, {"review": "approved"})
            if await self.repo.update_order(
                order_id, st.PENDING, from_statuses=frozenset({st.REVIEW}), detail=detail
            ):
                await self.events.publish(order_id, st.PENDING, detail)
            return await self.resume(await self._reload(order))
        await self._release_all(order)
        detail = _told(st.CANCELLED, {"review": "rejected"})
        if await self.repo.update_order(
            order_id, st.CANCELLED, from_statuses=frozenset({st.REVIEW}), detail=detail,
            failure_code="review_rejected", failure_message="cancelled after review",
        ):  # fmt: skip
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
            refund_key, result.gateway, order.payment_ref, result.amount_cents, "succeeded",
            result.refund_ref,
        )  # fmt: skip
        full = await self.payments.refunded_cents(order.payment_ref) >= order.charged_cents
        status = st.REFUNDED if full else st.PAID
        detail = _told(status, {"refunded_cents": result.amount_cents, "refund": result.refund_ref})
        if await self.repo.update_order(
            order_id, status, from_statuses=frozenset({st.PAID}), detail=detail
        ):
            await self.events.publish(order_id, status, detail)
        return await self._reload(order)

    async def _held_for_review(self, order: Order, client_ip: str | None) -> bool:
        if self.fraud is None:
            return False
        ask = getattr(self.gateway, "fingerprint", None)
        fingerprint: str | None = None
        if ask is not None:
            try:
                fingerprint = await ask(order.payment_token)
            except MatchdayError:
                fingerprint = None  # the rules still count the customer and the address
        reasons = await self.fraud.assess(order.order_id, order.customer_id, fingerprint, client_ip)
        if not reasons:
            return False
        if not await self._extend_holds(order):
            return True
        moved = await self.repo.update_order(
            order.order_id, st.REVIEW, from_statuses=frozenset({st.PENDING}),
            detail=_told(st.REVIEW, {}),  # the reasons go to the suspicious log, not the customer
        )  # fmt: skip
        if moved:
            await self.events.publish(order.order_id, st.REVIEW, _told(st.REVIEW, {}))
        return True

    # -- steps ---------------------------------------------------------------------------------

    async def _new_order(
        self, order_id: str, customer_id: str, cart_id: str, payment_token: str,
        offer_code: str | None = None,
    ) -> Order:  # fmt: skip
        cart = await self.repo.cart(cart_id)
        if cart is None or cart.customer_id != customer_id:
            raise NotFound("cart", cart_id)
        if cart.status != "open":
            raise Conflict(f"cart {cart_id} is already checked out")
        now = time.time()
        held = [line for line in cart.held if line.expires_at > now]
        if not held:
            raise Conflict("the cart holds nothing: add items again (holds expire)")
        prices = await self.prices.price_of(sorted({line.sku for line in held}))
        missing = sorted({line.sku for line in held} - set(prices))
        if missing:
            raise Conflict(f"no longer sold: {', '.join(missing)}; remove them to check out")
        currencies = {prices[line.sku][1] for line in held}
        if len(currencies) != 1:
            raise Conflict("the cart mixes currencies")
        lines = tuple(
            OrderLine(
                line.reservation_id, line.sku, line.qty, prices[line.sku][0],
                _title(prices[line.sku]),
            )
            for line in held
        )  # fmt: skip
        discount = 0
        if offer_code:
            if self.offers is None:
                raise OfferInvalid("offers are not enabled here")
            discount = await self.offers.discount(customer_id, offer_code, lines, now)
        return Order(
            order_id, cart_id, customer_id, st.PENDING,
            sum(ln.qty * ln.unit_price_cents for ln in lines), currencies.pop(), payment_token,
            0, None, None, None, None, now, now, lines, discount, offer_code or None,
        )  # fmt: skip

    async def _extend_holds(self, order: Order) -> bool:
        """Cover the payment with the holds; fail the order if any of them is already gone."""
        if order.status != st.PENDING:
            return True  # an ambiguous charge may have succeeded: keep the holds as they are
        for line in order.lines:
            try:
                await self.stock.extend(
                    f"ext:{order.order_id}:{line.reservation_id}", line.sku,
                    line.reservation_id, self.payment_hold_s,
                )  # fmt: skip
            except MatchdayError as exc:
                if exc.retryable:
                    raise
                await self._release_all(order)
                await self._move(
                    order, st.FAILED, {"code": exc.code, "sku": line.sku},
                    failure_code="hold_lost", failure_message=f"{line.sku}: {exc.message}",
                )  # fmt: skip
                return False
        return True

    async def _fulfil(self, order: Order, gateway: str, payment_ref: str) -> Order:
        for line in order.lines:
            try:
                await self.stock.commit(
                    f"com:{order.order_id}:{line.reservation_id}", line.sku,
                    line.reservation_id, order.order_id,
                )  # fmt: skip
            except MatchdayError as exc:
                if exc.retryable:  # paid but not yet committed: settled by a later resume
                    await self._move(
                        order, st.AMBIGUOUS, {"reason": exc.message},
                        gateway=gateway, payment_ref=payment_ref,
                    )  # fmt: skip
                    return await self._reload(order)
                # Committed by an earlier run of this order whose answer outlived the engine's
                # lookup window: only this order can commit this cart's holds.
                if isinstance(exc, ReservationClosed) and exc.status == "committed":
                    continue
                await self._refund_unfulfillable(order, gateway, payment_ref, line.sku, exc)
                return await self._reload(order)
        await self._move(order, st.PAID, {}, gateway=gateway, payment_ref=payment_ref)
        await self.repo.set_cart_status(order.cart_id, "checked_out", order.order_id)
        await self.payments.done(order.order_id)
        return await self._reload(order)

    async def _refund_unfulfillable(
        self, order: Order, gateway: str, payment_ref: str, sku: str, exc: MatchdayError
    ) -> None:
        """Charged, but a hold was lost: give the money back rather than sell without stock."""
        log.error("order %s paid but %s could not be committed: %s", order.order_id, sku, exc)
        await self._release_all(order)
        await self.gateway.refund(payment_ref, order.charged_cents, f"refund:{order.order_id}")
        await self._move(
            order, st.CANCELLED, {"code": "fulfilment_failed", "sku": sku},
            gateway=gateway, payment_ref=payment_ref,
            failure_code="fulfilment_failed", failure_message=f"{sku}: {exc.message}; refunded",
        )  # fmt: skip
        await self.payments.done(order.order_id)

    async def _release_all(self, order: Order) -> None:
        for line in order.lines:
            try:
                await self.stock.release(
                    f"rel:{order.order_id}:{line.reservation_id}", line.sku, line.reservation_id
                )
            except MatchdayError as exc:
                if exc.retryable:
                    raise
                # Already expired or released: the units are back either way.

    async def _move(self, order: Order, status: str, detail: dict[str, Any], **fields: Any) -> None:
        moved = await self.repo.update_order(
            order.order_id, status, from_statuses=st.UNSETTLED | {st.REQUIRES_ACTION},
            detail=_told(status, detail), **fields,
        )  # fmt: skip
        if moved:
            await self.events.publish(order.order_id, status, _told(status, detail))

    async def _publish(self, order: Order, detail: dict[str, Any]) -> None:
        await self.events.publish(order.order_id, order.status, _told(order.status, detail))

    async def _reload(self, order: Order) -> Order:
        fresh = await self.repo.order(order.order_id)
        if fresh is None:
            raise Unavailable(f"order {order.order_id} vanished")
        return fresh


def _told(status: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The event's detail with what the customer is told at this status."""
    message = st.customer_message(status)
    return {**detail, "message": message} if message and "message" not in detail else detail


def _title(info: tuple[int, str, str, str | None, str | None]) -> str:
    _, _, name, size, colour = info
    return " / ".join(part for part in (name, colour, size) if part)
