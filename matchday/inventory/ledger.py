"""SkuLedger: the stock of one SKU, mutated one call at a time by its only owner.

Pure: no I/O, no clock of its own (``now`` is passed in), no Ray. The owning shard applies
mutations in order, persists what :meth:`SkuLedger.drain_dirty` reports, and publishes the
events each call returns.

Counters follow DESIGN.md: ``on_hand`` counts every unit ever put up for sale (sold ones
included), so ``available = on_hand - reserved - sold`` and ``sold <= on_hand`` always.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from matchday.domain.errors import (
    InvariantViolation,
    LimitExceeded,
    OutOfStock,
    ReservationClosed,
    ReservationExpired,
    UnknownReservation,
)
from matchday.inventory.commands import (
    AdjustLimits,
    Commit,
    Expire,
    Extend,
    Release,
    ReservationView,
    Reserve,
    Resize,
    Restock,
    SetOnHand,
    StockView,
)

Event = dict[str, Any]

# How many closed reservations a ledger remembers, so that a late release or commit of one
# gets "already committed" instead of "unknown". Older ones answer UnknownReservation.
CLOSED_MEMORY = 256


@dataclass(slots=True)
class Reservation:
    reservation_id: str
    sku: str
    qty: int
    cart_id: str
    customer_id: str
    expires_at: float
    created_at: float
    status: str = "held"
    order_id: str | None = None

    def view(self) -> ReservationView:
        return ReservationView(
            self.reservation_id,
            self.sku,
            self.qty,
            self.cart_id,
            self.customer_id,
            self.expires_at,
            self.status,
            self.order_id,
        )


class SkuLedger:
    __slots__ = (
        "_closed",
        "_dirty_customers",
        "_dirty_reservations",
        "customer_units",
        "held",
        "low_stock_order_cap",
        "low_stock_threshold",
        "on_hand",
        "per_customer_limit",
        "reserved",
        "sku",
        "sold",
    )

    def __init__(
        self,
        sku: str,
        on_hand: int = 0,
        reserved: int = 0,
        sold: int = 0,
        per_customer_limit: int | None = None,
        low_stock_threshold: int | None = None,
        low_stock_order_cap: int | None = None,
    ) -> None:
        self.sku = sku
        self.on_hand = on_hand
        self.reserved = reserved
        self.sold = sold
        self.per_customer_limit = per_customer_limit
        self.low_stock_threshold = low_stock_threshold
        self.low_stock_order_cap = low_stock_order_cap
        # Insertion order is creation order: set_on_hand revokes the newest first.
        self.held: dict[str, Reservation] = {}
        # Units each customer holds or has bought; only what per_customer_limit needs.
        self.customer_units: dict[str, int] = {}
        self._closed: OrderedDict[str, str] = OrderedDict()
        self._dirty_reservations: dict[str, Reservation] = {}
        self._dirty_customers: set[str] = set()

    # -- reading -------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.sold

    def stock(self, revoked: tuple[str, ...] = ()) -> StockView:
        return StockView(
            self.sku,
            self.on_hand,
            self.reserved,
            self.sold,
            self.available,
            self.per_customer_limit,
            self.low_stock_threshold,
            self.low_stock_order_cap,
            revoked,
        )

    def next_deadline(self, reservation_id: str) -> float | None:
        r = self.held.get(reservation_id)
        return None if r is None else r.expires_at

    # -- recovery ------------------------------------------------------------------------

    def load_reservation(self, r: Reservation) -> None:
        """Put back a held reservation read from storage (counters already include it)."""
        self.held[r.reservation_id] = r

    def load_customer_units(self, customer_id: str, units: int) -> None:
        self.customer_units[customer_id] = units

    # -- mutations -----------------------------------------------------------------------

    def reserve(
        self, m: Reserve, reservation_id: str, now: float
    ) -> tuple[ReservationView, list[Event]]:
        available = self.available
        self._check_limits(m.qty, m.qty, m.customer_id, available)
        r = Reservation(
            reservation_id, self.sku, m.qty, m.cart_id, m.customer_id, now + m.ttl_s, now
        )
        self.held[reservation_id] = r
        self.reserved += m.qty
        self._add_customer_units(m.customer_id, m.qty)
        self._dirty_reservations[reservation_id] = r
        events = [self._event("reserved", r)]
        self._threshold_events(available, events)
        return r.view(), events

    def release(self, m: Release, now: float) -> tuple[ReservationView, list[Event]]:
        r = self._held_or_raise(m.reservation_id)
        return self._close_with_events(r, "released")

    def expire(self, m: Expire, now: float) -> tuple[ReservationView, list[Event]] | None:
        """Expire if due; ``None`` when the reservation is gone or was extended meanwhile."""
        r = self.held.get(m.reservation_id)
        if r is None or r.expires_at > now:
            return None
        return self._close_with_events(r, "expired")

    def commit(self, m: Commit, now: float) -> tuple[ReservationView, list[Event]]:
        r = self._held_or_raise(m.reservation_id)
        if r.expires_at <= now:
            # Its timer may not have fired yet; the stock is no longer promised to this cart.
            # An error changes nothing: the timer's own Expire releases it.
            raise ReservationExpired(r.reservation_id)
        available = self.available
        del self.held[r.reservation_id]
        self.reserved -= r.qty
        self.sold += r.qty
        r.status = "committed"
        r.order_id = m.order_id
        self._remember_closed(r)
        events = [self._event("committed", r)]
        self._threshold_events(available, events)
        return r.view(), events

    def extend(self, m: Extend, now: float) -> tuple[ReservationView, list[Event]]:
        r = self._held_or_raise(m.reservation_id)
        if r.expires_at <= now:
            raise ReservationExpired(r.reservation_id)
        r.expires_at = now + m.ttl_s
        self._dirty_reservations[r.reservation_id] = r
        return r.view(), [self._event("extended", r)]

    def resize(self, m: Resize, now: float) -> tuple[ReservationView, list[Event]]:
        r = self._held_or_raise(m.reservation_id)
        if r.expires_at <= now:
            raise ReservationExpired(r.reservation_id)
        delta = m.qty - r.qty
        available = self.available
        if delta > 0:
            self._check_limits(m.qty, delta, r.customer_id, available)
        r.qty = m.qty
        self.reserved += delta
        self._add_customer_units(r.customer_id, delta)
        self._dirty_reservations[r.reservation_id] = r
        events = [self._event("resized", r)]
        self._threshold_events(available, events)
        return r.view(), events

    def restock(self, m: Restock, now: float) -> tuple[StockView, list[Event]]:
        available = self.available
        self.on_hand += m.qty
        events = [self._stock_event("restocked", qty=m.qty)]
        self._threshold_events(available, events)
        return self.stock(), events

    def set_on_hand(self, m: SetOnHand, now: float) -> tuple[StockView, list[Event]]:
        """Make ``units`` the unsold stock, revoking the newest holds that no longer fit.

        Never overselling wins over honouring a cart: when a count finds fewer units than
        carts hold, the most recent reservations are revoked (ADR 0003).
        """
        available = self.available
        revoked: list[Reservation] = []
        for r in reversed(list(self.held.values())):
            if self.reserved <= m.units:
                break
            self._close(r, "revoked")
            revoked.append(r)
        self.on_hand = self.sold + m.units
        # Events are built once the count is set, so each carries the availability that
        # actually results, never an intermediate figure.
        events = [self._event("revoked", r) for r in revoked]
        events.append(self._stock_event("stock_set", units=m.units))
        self._threshold_events(available, events)
        return self.stock(tuple(r.reservation_id for r in revoked)), events

    def adjust_limits(self, m: AdjustLimits, now: float) -> tuple[StockView, list[Event]]:
        if m.low_stock_order_cap is not None and m.low_stock_threshold is None:
            raise InvariantViolation(self.sku, "a low-stock order cap needs a low-stock threshold")
        self.per_customer_limit = m.per_customer_limit
        self.low_stock_threshold = m.low_stock_threshold
        self.low_stock_order_cap = m.low_stock_order_cap
        return self.stock(), [self._stock_event("limits_changed")]

    # -- persistence hand-off ----------------------------------------------------------------

    def drain_dirty(self) -> tuple[list[Reservation], list[tuple[str, int]]]:
        """Reservations and customer totals changed since the last call, to be persisted."""
        reservations = list(self._dirty_reservations.values())
        customers = [(c, self.customer_units.get(c, 0)) for c in self._dirty_customers]
        self._dirty_reservations.clear()
        self._dirty_customers.clear()
        return reservations, customers

    # -- internals ------------------------------------------------------------------------

    def _check_limits(self, order_qty: int, extra: int, customer_id: str, available: int) -> None:
        """Refuse ``extra`` more units for a line of ``order_qty`` units, or say nothing."""
        if (
            self.low_stock_order_cap is not None
            and self.low_stock_threshold is not None
            and available <= self.low_stock_threshold
            and order_qty > self.low_stock_order_cap
        ):
            raise LimitExceeded(
                self.sku, self.low_stock_order_cap, order_qty, 0, "low-stock per-order"
            )
        if self.per_customer_limit is not None:
            held = self.customer_units.get(customer_id, 0)
            if held + extra > self.per_customer_limit:
                raise LimitExceeded(self.sku, self.per_customer_limit, extra, held, "per-customer")
        if extra > available:
            raise OutOfStock(self.sku, extra, max(available, 0))

    def _held_or_raise(self, reservation_id: str) -> Reservation:
        r = self.held.get(reservation_id)
        if r is not None:
            return r
        status = self._closed.get(reservation_id)
        if status is not None:
            raise ReservationClosed(reservation_id, status)
        raise UnknownReservation(reservation_id)

    def _close(self, r: Reservation, status: str) -> ReservationView:
        del self.held[r.reservation_id]
        self.reserved -= r.qty
        self._add_customer_units(r.customer_id, -r.qty)
        r.status = status
        self._remember_closed(r)
        return r.view()

    def _close_with_events(
        self, r: Reservation, status: str
    ) -> tuple[ReservationView, list[Event]]:
        available = self.available
        view = self._close(r, status)
        events = [self._event(status, r)]
        self._threshold_events(available, events)
        return view, events

    def _remember_closed(self, r: Reservation) -> None:
        self._dirty_reservations[r.reservation_id] = r
        self._closed[r.reservation_id] = r.status
        if len(self._closed) > CLOSED_MEMORY:
            self._closed.popitem(last=False)

    def _add_customer_units(self, customer_id: str, delta: int) -> None:
        units = self.customer_units.get(customer_id, 0) + delta
        if units:
            self.customer_units[customer_id] = units
        else:
            self.customer_units.pop(customer_id, None)
        self._dirty_customers.add(customer_id)

    def _threshold_events(self, before: int, events: list[Event]) -> None:
        after = self.available
        t = self.low_stock_threshold
        if t is not None and after <= t < before:
            events.append(self._stock_event("low_stock", threshold=t))
        if after == 0 < before:
            events.append(self._stock_event("sold_out"))
        if before == 0 < after:
            events.append(self._stock_event("back_in_stock"))

    def _event(self, kind: str, r: Reservation) -> Event:
        return {
            "type": kind,
            "sku": self.sku,
            "reservation_id": r.reservation_id,
            "cart_id": r.cart_id,
            "qty": r.qty,
            "available": self.available,
        }

    def _stock_event(self, kind: str, **extra: Any) -> Event:
        return {"type": kind, "sku": self.sku, "available": self.available, **extra}
