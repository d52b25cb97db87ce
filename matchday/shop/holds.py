"""An order's holds while it is paid: extended to its deadline, held again if lost, committed.

A hold can end under an order that is still being paid: a supplier count revokes it, an
operator releases it, it outlives its extension. The order never charges, or sells, units
it does not hold (ADR 0008, issue 13):

- before every charge (a retry's too), every hold is extended (a fresh request id each time,
  so the engine really checks it); a hold that is gone is **held again**: a new reservation
  of the same units for the same cart and customer, if they are still available, which then
  replaces the old one in the order's line;
- a payment that went through is committed hold by hold; one that ended meanwhile is held
  again the same way, then committed;
- what cannot be held again is reported to checkout, which fails the order (nothing was
  charged) or refunds it (something was).

Retryable engine errors propagate: the order stays as it is and is driven again later.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from matchday.domain.concurrent import all_of
from matchday.domain.errors import MatchdayError, ReservationClosed, UnknownReservation
from matchday.shop.models import Order, OrderLine
from matchday.shop.ports import HoldRecords, Stock

log = logging.getLogger(__name__)

# Holds outlive the payment deadline by this much, so a charge that began just before the
# deadline can still be committed: it has up to three gateway timeouts to answer (30 s at
# the default stripe_timeout_s of 10 s) and the commit takes milliseconds.
HOLD_MARGIN_S = 120.0


def _committed(exc: MatchdayError) -> bool:
    """Committed by an earlier run of this order (only this order can commit its holds)."""
    return isinstance(exc, ReservationClosed) and exc.status == "committed"


class OrderHolds:
    def __init__(self, stock: Stock, repo: HoldRecords) -> None:
        self.stock = stock
        self.repo = repo

    async def secure(self, order: Order, ttl_s: float) -> tuple[Order, list[OrderLine]]:
        """Every hold extended by ``ttl_s``, or held again; (the order with its lines as they
        are now held, the lines that could not be held). The lines are checked at once: their
        shards' calls overlap, and lines on one shard share its batch."""
        check = uuid.uuid4().hex[:12]  # a new id per check: the engine must look, not replay
        done = await all_of(*(self._secure(order, line, ttl_s, check) for line in order.lines))
        lines = [line for line, held in done if held]
        return replace(order, lines=tuple(lines)), [line for line, held in done if not held]

    async def commit(self, order: Order) -> list[OrderLine]:
        """Sell every hold of a paid order, the lines at once; the lines that could not be
        sold (their hold gone between :meth:`secure` and now, and no units left to hold
        again)."""
        done = await all_of(*(self._sell(order, line) for line in order.lines))
        return [line for line, sold in zip(order.lines, done, strict=True) if not sold]

    async def release(self, order: Order) -> None:
        for line in order.lines:
            try:
                await self.stock.release(
                    f"rel:{order.order_id}:{line.reservation_id}", line.sku, line.reservation_id
                )
            except MatchdayError as exc:
                if exc.retryable:
                    raise
                # Already expired or released: the units are back either way.

    async def _secure(
        self, order: Order, line: OrderLine, ttl_s: float, check: str
    ) -> tuple[OrderLine, bool]:
        try:
            await self.stock.extend(
                f"chk:{order.order_id}:{line.reservation_id}:{check}",
                line.sku,
                line.reservation_id,
                ttl_s,
            )
            return line, True
        except MatchdayError as exc:
            if exc.retryable:
                raise
            if await self._sold_to_this_order(order, line, exc):
                return line, True
        again = await self._hold_again(order, line, ttl_s)
        return (again, True) if again else (line, False)

    async def _sell(self, order: Order, line: OrderLine) -> bool:
        if await self._commit(order, line):
            return True
        again = await self._hold_again(order, line, HOLD_MARGIN_S)
        return again is not None and await self._commit(order, again)

    async def _commit(self, order: Order, line: OrderLine) -> bool:
        try:
            await self.stock.commit(
                f"com:{order.order_id}:{line.reservation_id}",
                line.sku,
                line.reservation_id,
                order.order_id,
            )
        except MatchdayError as exc:
            if exc.retryable:
                raise
            return await self._sold_to_this_order(order, line, exc)
        return True

    async def _sold_to_this_order(self, order: Order, line: OrderLine, exc: MatchdayError) -> bool:
        """Did an earlier run of this order commit ``line``'s hold? The engine says so while it
        remembers the hold; after a shard restart it may not (its memory of closed holds is
        not recovered, and it answers unknown_reservation), so storage is asked. Holding
        again a unit this order already bought would sell it twice."""
        if _committed(exc):
            return True
        if not isinstance(exc, (ReservationClosed, UnknownReservation)):
            return False
        state = await self.repo.reservation_state(line.reservation_id)
        return state == ("committed", order.order_id)

    async def _hold_again(self, order: Order, line: OrderLine, ttl_s: float) -> OrderLine | None:
        """A new hold of ``line``'s units, if they are still available; it replaces the old
        one in the order. The request id is the old hold's: a retry holds once.

        The hold is the order's, not the cart's: the cart closed with the order, and the
        engine refuses new holds on a closed cart (its fence, ADR 0017)."""
        try:
            view = await self.stock.reserve(
                f"rh:{order.order_id}:{line.reservation_id}",
                line.sku,
                line.qty,
                order.order_id,
                order.customer_id,
                ttl_s,
            )
        except MatchdayError as exc:
            if exc.retryable:
                raise
            log.warning("order %s: %s no longer held, none left: %s", order.order_id, line.sku, exc)
            return None
        if view.reservation_id != line.reservation_id:
            await self.repo.replace_line(order.order_id, line.reservation_id, view.reservation_id)
        log.warning("order %s: %s held again as %s", order.order_id, line.sku, view.reservation_id)
        return replace(line, reservation_id=view.reservation_id)
