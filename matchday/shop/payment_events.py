"""What a (verified, first-delivered) Stripe event does to an order.

Events are hints, never the truth: they arrive late, twice and out of order. An event about
an order still unsettled makes checkout ask the gateway again under the attempt's key, and
the *intent's current state* settles the order, so a stale ``payment_failed`` arriving after
``succeeded`` finds the order paid and changes nothing. Settled orders never move backwards;
a success for an order we already failed, cancelled or paid through another intent is
released (an authorisation cancelled, a capture refunded) and logged as suspicious.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from matchday.payments.ports import WebhookRecords
from matchday.shop import models as st
from matchday.shop.checkout import CheckoutService
from matchday.shop.ports import Orders

log = logging.getLogger(__name__)

ORDER_FIELD = "matchday_order"
_INTENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
}


class StripeEvents:
    def __init__(
        self,
        repo: Orders,
        payments: WebhookRecords,
        checkout: CheckoutService,
        gateways: Mapping[str, Any],
    ) -> None:
        self.repo = repo
        self.payments = payments
        self.checkout = checkout
        self.gateways = gateways

    async def handle(self, account: str, type_: str, obj: dict[str, Any]) -> str:
        """Apply one event; answers what it did (for the response and the tests)."""
        if type_ in _INTENT_EVENTS:
            return await self._intent(type_, obj)
        if type_ == "charge.refunded":
            return await self._refunded(obj)
        if type_.startswith("charge.dispute."):
            return await self._dispute(account, obj)
        return "ignored"

    async def _order_of(self, intent_id: str, metadata: dict[str, Any]) -> str | None:
        order_id = metadata.get(ORDER_FIELD)
        if isinstance(order_id, str) and order_id:
            return order_id
        attempt = await self.payments.by_intent(intent_id)
        return None if attempt is None else attempt.order_id

    async def _intent(self, type_: str, obj: dict[str, Any]) -> str:
        intent_id = str(obj.get("id", ""))
        order_id = await self._order_of(intent_id, obj.get("metadata") or {})
        order = await self.repo.order(order_id) if order_id else None
        if order is None:
            return "unknown_order"
        if order.status in st.UNSETTLED or order.status == st.REQUIRES_ACTION:
            after = await self.checkout.resume(order, with_action=True)
            return f"order_{after.status}"
        succeeded = type_ == "payment_intent.succeeded"
        if not succeeded or order.payment_ref == intent_id:
            return "unchanged"  # a settled order never moves backwards
        # Money taken for an order we failed, cancelled or paid another way: give it back.
        attempt = await self.payments.by_intent(intent_id)
        released = 0
        if attempt is not None:
            release = getattr(self.gateways.get(attempt.gateway), "release_stray", None)
            if release is not None:
                released = int(await release(attempt))
        await self.payments.suspicious(
            "late_success",
            order.order_id,
            order.customer_id,
            {"intent": intent_id, "order_status": order.status, "released": released},
        )
        return "released" if released else "flagged"

    async def _refunded(self, obj: dict[str, Any]) -> str:
        intent_id = obj.get("payment_intent")
        if not isinstance(intent_id, str):
            return "ignored"
        order_id = await self._order_of(intent_id, obj.get("metadata") or {})
        order = await self.repo.order(order_id) if order_id else None
        if order is None or order.status != st.PAID or order.payment_ref != intent_id:
            return "unchanged"
        if int(obj.get("amount_refunded") or 0) < order.charged_cents:
            return "partial"
        detail = {"refunded_cents": int(obj.get("amount_refunded") or 0), "source": "gateway"}
        moved = await self.repo.update_order(
            order.order_id, st.REFUNDED, from_statuses=frozenset({st.PAID}), detail=detail
        )
        if moved:
            await self.checkout.events.publish(
                order.order_id, st.REFUNDED, {**detail, "message": st.customer_message(st.REFUNDED)}
            )
        return "order_refunded" if moved else "unchanged"

    async def _dispute(self, account: str, obj: dict[str, Any]) -> str:
        intent_id = obj.get("payment_intent")
        intent = intent_id if isinstance(intent_id, str) else None
        order_id = await self._order_of(intent, {}) if intent else None
        await self.payments.dispute(
            str(obj.get("id")),
            account,
            charge_id=obj.get("charge") if isinstance(obj.get("charge"), str) else None,
            intent_id=intent,
            order_id=order_id,
            amount_cents=int(obj["amount"]) if obj.get("amount") is not None else None,
            reason=obj.get("reason"),
            status=obj.get("status"),
        )
        await self.payments.suspicious(
            "dispute",
            order_id,
            None,
            {"dispute": obj.get("id"), "reason": obj.get("reason"), "status": obj.get("status")},
        )
        return "dispute_logged"
