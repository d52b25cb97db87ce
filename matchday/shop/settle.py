"""Driving an order's payment to an end: charge, fulfil, or close it; checkout's engine room.

:class:`CheckoutService` (``checkout.py``) creates orders and takes operators' decisions;
this base class moves an order in flight as far as it can go now, and is what the payments
worker and the webhooks call (``resume``). What it promises (ADR 0008, issue 13):

- **A deadline.** An order's first charge starts it: ``pay_by = now + payment_hold_s``, the
  time its holds are extended by (plus :data:`HOLD_MARGIN_S`). Past it, an order still in
  flight fails as ``payment_timeout``, its holds released, unless a payment of it was already
  claimed for capture (then that payment goes through). The claim and the deadline lock the
  same order row, so an order failed at its deadline is never captured: an authorisation that
  turns up later is cancelled, a charge refunded, both logged as suspicious.
- **Never a charge for units that are not held.** Before every charge (a retry included)
  each hold is extended to the deadline, or held again if it ended and its units are still
  there; if one cannot be, the order fails as ``hold_lost`` without a new charge.
- **Never a sale without a hold.** A payment that went through is committed hold by hold; a
  hold that ended meanwhile is held again if its units are still there. What cannot be held
  is refunded: in full (``refunded``, ``sold_out_refunded``) when nothing was sold, else the
  unsold lines' share (``paid``, ``partly_refunded``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from matchday.domain.clock import Clock
from matchday.domain.errors import Conflict, MatchdayError, Unavailable
from matchday.payments.gateway import ChargeRequest, ChargeResult, PaymentGateway
from matchday.shop import models as st
from matchday.shop.holds import HOLD_MARGIN_S, OrderHolds
from matchday.shop.models import Order, OrderLine
from matchday.shop.ports import OrderEvents, OrderStore, PaymentLedger

log = logging.getLogger(__name__)


class OrderPayments:
    repo: OrderStore
    gateway: PaymentGateway
    events: OrderEvents
    payments: PaymentLedger
    holds: OrderHolds
    payment_hold_s: float
    settle_grace_s: float
    clock: Clock

    def deadline(self, order: Order) -> float:
        """When the order's payment must be confirmed by (epoch s)."""
        return order.pay_by or order.created_at + self.payment_hold_s

    async def resume(self, order: Order, *, with_action: bool = False) -> Order:
        """Drive an unsettled order as far as it can go now; settled ones come back as they are.

        ``with_action`` also asks again for an order waiting on the customer's bank (a webhook
        saying the payment went through, or failed; the worker at its deadline)."""
        movable = st.UNSETTLED | ({st.REQUIRES_ACTION} if with_action else set())
        if order.status not in movable:
            return order
        if order.attempts and self.clock.now() >= self.deadline(order):
            closed = await self._close_unpaid(order, "payment_timeout", self._timeout_message())
            return await self._after_close(order, closed, movable)
        order, lost = await self.holds.secure(order, self._hold_ttl(order))
        return await self._charge_held(order, lost, movable)

    # -- steps ---------------------------------------------------------------------------------

    async def _charge_held(
        self, order: Order, lost: list[OrderLine], movable: frozenset[str]
    ) -> Order:
        """After :meth:`OrderHolds.secure`: charge the order, or fail it as hold_lost."""
        if not lost:
            return await self._charge(order)
        closed = await self._close_unpaid(order, "hold_lost", lost_message(lost))
        return await self._after_close(order, closed, movable)

    async def _after_close(self, order: Order, closed: bool, movable: frozenset[str]) -> Order:
        if closed:
            return await self._reload(order)
        # A payment of it was claimed first (or it ended otherwise meanwhile): a payment that
        # went through is asked for again, never made anew, and settled.
        fresh = await self._reload(order)
        return await self._charge(fresh) if fresh.status in movable else fresh

    async def _charge(self, order: Order) -> Order:
        # Before the charge: if this process dies anywhere after it, the worker finds the order.
        if order.attempts == 0:  # the first starts the deadline; one statement queues it too
            attempts = await self.payments.start_attempt(
                order.order_id, self.payment_hold_s, self.settle_grace_s
            )
            order = replace(order, attempts=attempts)
        else:
            await self.payments.schedule(order.order_id, self.settle_grace_s, only_if_absent=True)
        req = ChargeRequest(
            order.order_id,
            order.attempts,
            order.charged_cents,
            order.currency,
            order.payment_token,
            order.customer_id,
        )
        try:
            result = await self.gateway.charge(req)
        except Conflict:  # the order ended meanwhile (its deadline): what was found was voided
            fresh = await self._reload(order)
            if fresh.status in st.TERMINAL:
                return fresh
            raise
        except MatchdayError as exc:
            if not exc.retryable:
                raise
            await self._move(order, st.AMBIGUOUS, {"reason": "gateway_unavailable"})
            return await self._reload(order)
        return await self._settle(order, result)

    async def _settle(self, order: Order, result: ChargeResult) -> Order:
        if result.risk_level in ("elevated", "highest"):
            await self.payments.suspicious(
                "gateway_risk",
                order.order_id,
                order.customer_id,
                {"risk_level": result.risk_level, "gateway": result.gateway},
            )
        if result.status == "succeeded":
            return await self._fulfil(order, result.gateway, result.payment_ref)
        fields: dict[str, Any] = {
            "gateway": result.gateway,
            "payment_ref": result.payment_ref,
            "failure_code": result.code,
            "failure_message": result.message,
        }
        if result.status == "declined":
            await self.holds.release(order)
            await self._move(order, st.FAILED, {"code": result.code}, dequeue=True, **fields)
        else:  # requires_action: the bank's answer comes by webhook; the worker looks at the
            # order again at its deadline, and ends it there if it is still waiting.
            if order.status != st.REQUIRES_ACTION:
                await self._move(order, st.REQUIRES_ACTION, {"code": result.code}, **fields)
            left = self.deadline(await self._reload(order)) - self.clock.now()
            await self.payments.schedule(order.order_id, max(0.0, left))  # the deadline
        return await self._reload(order)

    async def _fulfil(self, order: Order, gateway: str, payment_ref: str) -> Order:
        claim = await self.payments.claim_capture(order.order_id, gateway, payment_ref)
        if claim is None:  # the order ended, or its deadline passed: this one came too late
            fresh = await self._give_back(order, gateway, payment_ref, "late_charge_refunded")
            if fresh.status in st.PAYABLE and await self._close_unpaid(
                fresh, "payment_timeout", self._timeout_message()
            ):  # past its deadline, not yet failed by the worker: now, not at its next round
                return await self._reload(fresh)
            return fresh
        if claim != (gateway, payment_ref):
            raise Unavailable(f"order {order.order_id} is being paid by {claim[0]} {claim[1]}")
        try:
            # The holds were checked and extended just before the charge; one that ended
            # during it (a count revoked it) is held again here, or refunded.
            unsold = await self.holds.commit(order)
        except MatchdayError as exc:
            if not exc.retryable:
                raise
            # Paid but not yet committed: settled by a later resume (the payment is found).
            await self._move(
                order,
                st.AMBIGUOUS,
                {"reason": exc.message},
                gateway=gateway,
                payment_ref=payment_ref,
            )
            return await self._reload(order)
        if unsold:
            sold_none = len(unsold) == len(order.lines)
            return await self._refund_unsold(order, gateway, payment_ref, unsold, sold_none)
        await self._move(
            order,
            st.PAID,
            {},
            close_cart=True,
            dequeue=True,
            gateway=gateway,
            payment_ref=payment_ref,
        )
        return await self._reload(order)

    async def _close_unpaid(self, order: Order, code: str, message: str) -> bool:
        """Fail an order in flight that no payment was claimed for, and release its holds;
        False when one was claimed (or the order ended otherwise meanwhile)."""
        detail = {"code": code, "message": message}
        moved = await self.repo.update_order(
            order.order_id,
            st.FAILED,
            from_statuses=st.PAYABLE,
            detail=detail,
            unless_captured=True,
            failure_code=code,
            failure_message=message,
        )
        if not moved:
            return False
        log.warning("order %s (%s) failed: %s", order.order_id, order.status, code)
        await self.events.publish(order.order_id, st.FAILED, detail)
        await self.holds.release(await self._reload(order))
        await self.payments.done(order.order_id)
        return True

    async def _refund_unsold(
        self, order: Order, gateway: str, payment_ref: str, unsold: list[OrderLine], full: bool
    ) -> Order:
        """Paid, but units could no longer be held: give their money back, never sell them."""
        amount = order.charged_cents if full else _share(order, unsold)
        refund = await self._give_back(order, gateway, payment_ref, "sold_out_refunded", amount)
        skus = ", ".join(sorted({ln.sku for ln in unsold}))
        if full:
            await self.holds.release(refund)  # those held again, if some were
            code, status = "sold_out_refunded", st.REFUNDED
            message = (
                "Your payment went through after your items' reservation had ended, and they"
                f" have sold out since ({skus}): we refunded it in full."
            )
        else:
            code, status = "partly_refunded", st.PAID
            message = (
                f"Some items sold out before your payment went through ({skus}): we refunded"
                " their share; the rest is yours."
            )
        await self._move(
            order,
            status,
            {"code": code, "message": message, "refunded_cents": amount},
            gateway=gateway,
            payment_ref=payment_ref,
            failure_code=code,
            failure_message=message,
            reopen_cart=full,
            close_cart=not full,
            dequeue=True,
        )
        return await self._reload(order)

    async def _give_back(
        self, order: Order, gateway: str, payment_ref: str, kind: str, amount: int | None = None
    ) -> Order:
        """Refund ``amount`` (all of it when None) of a payment the order cannot keep; logged."""
        amount = order.charged_cents if amount is None else amount
        key = f"{kind}:{order.order_id}"
        result = await self.gateway.refund(payment_ref, amount, key)
        await self.payments.record_refund(
            key, result.gateway, payment_ref, result.amount_cents, "succeeded", result.refund_ref
        )
        await self.payments.suspicious(
            kind,
            order.order_id,
            order.customer_id,
            {
                "gateway": gateway,
                "intent": payment_ref,
                "amount": amount,
                "order_status": order.status,
            },
        )
        return await self._reload(order)

    async def _move(
        self,
        order: Order,
        status: str,
        detail: dict[str, Any],
        *,
        reopen_cart: bool = False,
        close_cart: bool = False,
        dequeue: bool = False,
        **fields: Any,
    ) -> None:
        """``close_cart``: the cart stays checked out with the order; ``dequeue``: out of the
        payments worker's queue; both in the move's statement, whether or not it moved."""
        moved = await self.repo.update_order(
            order.order_id,
            status,
            from_statuses=st.PAYABLE,
            detail=told(status, detail),
            reopen_cart=reopen_cart,
            close_cart=close_cart,
            dequeue=dequeue,
            **fields,
        )
        if moved:
            await self.events.publish(order.order_id, status, told(status, detail))

    async def _reload(self, order: Order) -> Order:
        fresh = await self.repo.order(order.order_id)
        if fresh is None:
            raise Unavailable(f"order {order.order_id} vanished")
        return fresh

    def _hold_ttl(self, order: Order) -> float:
        """Holds last to the deadline (a first charge: the whole hold) and a margin past it."""
        until = order.pay_by or self.clock.now() + self.payment_hold_s
        return max(0.0, until - self.clock.now()) + HOLD_MARGIN_S

    def _timeout_message(self) -> str:
        return (
            f"Your payment was not confirmed within {self.payment_hold_s / 60:g} minutes, so"
            " the order was cancelled and your items released. Nothing was charged: a"
            " pending amount on your card is released automatically. You can order again."
        )


def told(status: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The event's detail with what the customer is told at this status."""
    message = st.customer_message(status)
    return {**detail, "message": message} if message and "message" not in detail else detail


def lost_message(lost: list[OrderLine]) -> str:
    skus = ", ".join(sorted({ln.sku for ln in lost}))
    return (
        f"Some items were no longer reserved for you and have sold out since ({skus}), so"
        " nothing was charged. Hold what is left again to order."
    )


def _share(order: Order, lines: list[OrderLine]) -> int:
    """What ``lines`` cost the customer: their price less their part of the discount."""
    gross = sum(ln.qty * ln.unit_price_cents for ln in lines)
    if not order.total_cents:
        return 0
    return gross - order.discount_cents * gross // order.total_cents
