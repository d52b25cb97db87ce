"""SkuLedger: the stock of one SKU, mutated one call at a time by its only owner.

Pure: no I/O, no clock of its own (``now`` is passed in), no Ray. A mutation arrives as its
wire tuple (``matchday.inventory.wire``) and is answered with a wire outcome; a refusal is an
error outcome, not an exception, and changes nothing. What a success changed goes into the
batch's :class:`Changes`: one journal entry per change, the reservations to insert or
update, the customer totals to write. Events are not built here: the outbox relay derives
them from the journal entries (``matchday.inventory.journal.events_of``).

Counters follow DESIGN.md: ``on_hand`` counts every unit ever put up for sale (sold ones
included), so ``available = on_hand - reserved - sold`` and ``sold <= on_hand`` always.
"""

from __future__ import annotations

from collections.abc import Mapping

from matchday.domain.errors import (
    InvalidInput,
    InvariantViolation,
    LimitExceeded,
    OutOfStock,
    ReservationClosed,
    ReservationExpired,
    UnknownReservation,
)
from matchday.inventory import allocation
from matchday.inventory.allocation import ChannelStock
from matchday.inventory.changes import (
    R_CART,
    R_CHANNEL,
    R_CUSTOMER,
    R_EXPIRES,
    R_ID,
    R_QTY,
    R_STATUS,
    SHOP_HOLD,
    Changes,
    Reservation,
)
from matchday.inventory.commands import StockView
from matchday.inventory.wire import (
    ADJUST,
    ADJUST_LIMITS,
    COMMIT,
    EXPIRE,
    EXTEND,
    RELEASE,
    RESERVATION,
    RESERVE,
    RESIZE,
    RESTOCK,
    REVOKE,
    SET_ON_HAND,
    STOCK,
    WireMutation,
    WireOutcome,
    refusal,
)

# How many closed reservations a ledger remembers, so that a late release or commit of one
# gets "already committed" instead of "unknown". Older ones answer UnknownReservation.
CLOSED_MEMORY = 256


class SkuLedger:
    __slots__ = (
        "_closed",
        "channels",
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
        # Units each customer holds or has bought, kept only while a per-customer limit
        # applies: a SKU sold to a million fans keeps no million-entry total (ADR 0017).
        self.customer_units: dict[str, int] | None = {} if per_customer_limit is not None else None
        self._closed: dict[str, str] | None = None
        # Per marketplace channel: its holds, sales and allocation. None until a channel
        # touches the SKU: the shop's SKUs carry nothing for it (ADR 0028).
        self.channels: dict[str, ChannelStock] | None = None

    # -- reading -------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.sold

    def stock_wire(self, revoked: tuple[str, ...] = ()) -> WireOutcome:
        return (
            STOCK,
            self.sku,
            self.on_hand,
            self.reserved,
            self.sold,
            self.on_hand - self.reserved - self.sold,
            self.per_customer_limit,
            self.low_stock_threshold,
            self.low_stock_order_cap,
            revoked,
        )

    def stock(self, revoked: tuple[str, ...] = ()) -> StockView:
        return StockView(*self.stock_wire(revoked)[1:])

    def next_deadline(self, reservation_id: str) -> float | None:
        r = self.held.get(reservation_id)
        return None if r is None else r[R_EXPIRES]

    # -- recovery ------------------------------------------------------------------------

    def load_reservation(self, r: Reservation) -> None:
        """Put back a held reservation read from storage (counters already include it)."""
        self.held[r[R_ID]] = r

    def load_customer_units(self, customer_id: str, units: int) -> None:
        if self.customer_units is not None:
            self.customer_units[customer_id] = units

    # -- channels (ADR 0028): matchday/inventory/allocation.py --------------------------------

    load_channel = allocation.load_channel
    reserve_channel = allocation.reserve_channel
    allocate = allocation.allocate
    channel_view = allocation.channel_view
    _channel_moved = allocation.channel_moved

    # -- mutations: each takes its wire tuple, answers a wire outcome ----------------------

    def reserve(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        qty = m[3]
        before = self.on_hand - self.reserved - self.sold
        if self.low_stock_threshold is not None or self.per_customer_limit is not None:
            refused = self._refusal(qty, qty, m[5], before)
            if refused is not None:
                return refused
        elif qty > before:
            return refusal(OutOfStock, self.sku, qty, max(before, 0))
        rid = ch.new_id(m[1])
        r = (RESERVATION, rid, self.sku, qty, m[4], m[5], now + m[6], "held", None)
        self.held[rid] = r
        self.reserved += qty
        if self.customer_units is not None:
            self._add_units(ch, m[5], qty)
        ch.created[rid] = r
        ch.carts.add(m[4])
        ch.touched[self.sku] = self
        ch.entries.append((RESERVE, m[1], self.sku, rid, qty, before, before - qty, r[R_EXPIRES]))
        return r

    def release(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        r = self.held.get(m[3])
        if r is None:
            return self._missing(m[3])
        return self._close(ch, RELEASE, m[1], r, "released")

    def expire(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome | None:
        """Expire if due; ``None`` when the reservation is gone or was extended meanwhile."""
        r = self.held.get(m[3])
        if r is None or r[R_EXPIRES] > now:
            return None
        return self._close(ch, EXPIRE, m[1], r, "expired")

    def commit(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        r = self.held.get(m[3])
        if r is None:
            return self._missing(m[3])
        if r[R_EXPIRES] <= now:
            # Its timer may not have fired yet; the stock is no longer promised to this cart.
            # A refusal changes nothing: the timer's own Expire releases it.
            return refusal(ReservationExpired, r[R_ID])
        before = self.on_hand - self.reserved - self.sold
        del self.held[r[R_ID]]
        self.reserved -= r[R_QTY]
        self.sold += r[R_QTY]
        if len(r) == SHOP_HOLD:
            r = (*r[:R_STATUS], "committed", m[4])
        else:
            r = (*r[:R_STATUS], "committed", m[4], r[R_CHANNEL])
            self._channel_moved(ch, r, -r[R_QTY], r[R_QTY])
        self._remember_closed(r)
        self._log(ch, COMMIT, m[1], r, before)
        return r

    def extend(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        r = self.held.get(m[3])
        if r is None:
            return self._missing(m[3])
        if r[R_EXPIRES] <= now:
            return refusal(ReservationExpired, r[R_ID])
        if r[R_EXPIRES] >= now + m[4]:
            # Already lasts long enough: the answer is the check that it is still held, which
            # is what a checkout asks before each charge, and it costs no write (ADR 0008).
            return r
        r = self.held[r[R_ID]] = (*r[:R_EXPIRES], now + m[4], *r[R_STATUS:])
        self._log(ch, EXTEND, m[1], r, self.on_hand - self.reserved - self.sold)
        return r

    def resize(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        r = self.held.get(m[3])
        if r is None:
            return self._missing(m[3])
        if r[R_EXPIRES] <= now:
            return refusal(ReservationExpired, r[R_ID])
        if len(r) != SHOP_HOLD:
            return refusal(InvalidInput, "reservation_id", "a channel's hold is not resized")
        qty = m[4]
        delta = qty - r[R_QTY]
        before = self.on_hand - self.reserved - self.sold
        if delta > 0:
            refused = self._refusal(qty, delta, r[R_CUSTOMER], before)
            if refused is not None:
                return refused
            ch.carts.add(r[R_CART])
        r = self.held[r[R_ID]] = (*r[:R_QTY], qty, *r[R_CART:])
        self.reserved += delta
        if self.customer_units is not None:
            self._add_units(ch, r[R_CUSTOMER], delta)
        self._log(ch, RESIZE, m[1], r, before)
        return r

    def restock(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        before = self.on_hand - self.reserved - self.sold
        self.on_hand += m[3]
        self._log_stock(ch, RESTOCK, m[1], m[3], before)
        return self.stock_wire()

    def set_on_hand(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        """Make ``units`` the unsold stock, revoking the newest holds that no longer fit.

        Never overselling wins over honouring a cart: when a count finds fewer units than
        carts hold, the most recent reservations are revoked (ADR 0003).
        """
        return self._count(ch, SET_ON_HAND, m[1], m[3], m[3])

    def adjust(self, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
        """Change the units present and unsold by ``delta`` (not below 0), against this
        ledger's own count: atomic, where reading the count and then setting it would lose
        a sale or a restock made in between. Holds are reconciled as by a count."""
        units = max(0, self.on_hand - self.sold + m[3])
        return self._count(ch, ADJUST, m[1], m[3], units)

    def _count(self, ch: Changes, kind: int, request_id: str, qty: int, units: int) -> WireOutcome:
        revoked: list[str] = []
        for r in reversed(list(self.held.values())):
            if self.reserved <= units:
                break
            self._close(ch, REVOKE, request_id, r, "revoked")
            revoked.append(r[R_ID])
        before = self.on_hand - self.reserved - self.sold
        self.on_hand = self.sold + units
        self._log_stock(ch, kind, request_id, qty, before)
        return self.stock_wire(tuple(revoked))

    def adjust_limits(
        self,
        ch: Changes,
        m: WireMutation,
        now: float,
        bought: Mapping[str, int] | None = None,
    ) -> WireOutcome:
        """Replace all three limits; ``None`` removes one.

        Setting a per-customer limit on a SKU that had none starts its customer totals from
        the units held now plus ``bought`` (units each customer bought, from storage): the
        caller must pass it then. Units held or bought before a limit count once it is.
        """
        pcl, lst, cap = m[3], m[4], m[5]
        if cap is not None and lst is None:
            return refusal(
                InvariantViolation, self.sku, "a low-stock order cap needs a low-stock threshold"
            )
        if pcl is None and self.customer_units is not None:
            self.customer_units = None
            ch.reset.add(self.sku)  # stored totals go stale from now on: drop them
        elif pcl is not None and self.customer_units is None:
            assert bought is not None, "a new per-customer limit needs the units bought"
            units = dict(bought)
            for r in self.held.values():
                units[r[R_CUSTOMER]] = units.get(r[R_CUSTOMER], 0) + r[R_QTY]
            self.customer_units = {c: u for c, u in units.items() if u}
            ch.reset.add(self.sku)
            ch.customers.update((self.sku, c) for c in self.customer_units)
        self.per_customer_limit, self.low_stock_threshold, self.low_stock_order_cap = pcl, lst, cap
        self._log_stock(ch, ADJUST_LIMITS, m[1], None, self.on_hand - self.reserved - self.sold)
        return self.stock_wire()

    def needs_bought(self, m: WireMutation) -> bool:
        """Whether ``adjust_limits(m)`` starts a per-customer limit (see there)."""
        return m[0] == ADJUST_LIMITS and m[3] is not None and self.customer_units is None

    # -- internals ------------------------------------------------------------------------

    def _refusal(
        self, order_qty: int, extra: int, customer_id: str, available: int
    ) -> WireOutcome | None:
        """Refuse ``extra`` more units for a line of ``order_qty`` units, or say nothing."""
        if (
            self.low_stock_order_cap is not None
            and self.low_stock_threshold is not None
            and available <= self.low_stock_threshold
            and order_qty > self.low_stock_order_cap
        ):
            cap = self.low_stock_order_cap
            return refusal(LimitExceeded, self.sku, cap, order_qty, 0, "low-stock per-order")
        if self.per_customer_limit is not None and self.customer_units is not None:
            held = self.customer_units.get(customer_id, 0)
            if held + extra > self.per_customer_limit:
                return refusal(
                    LimitExceeded, self.sku, self.per_customer_limit, extra, held, "per-customer"
                )
        if extra > available:
            return refusal(OutOfStock, self.sku, extra, max(available, 0))
        return None

    def _missing(self, reservation_id: str) -> WireOutcome:
        status = None if self._closed is None else self._closed.get(reservation_id)
        if status is not None:
            return refusal(ReservationClosed, reservation_id, status)
        return refusal(UnknownReservation, reservation_id)

    def _close(
        self, ch: Changes, kind: int, request_id: str, r: Reservation, status: str
    ) -> WireOutcome:
        before = self.on_hand - self.reserved - self.sold
        del self.held[r[R_ID]]
        self.reserved -= r[R_QTY]
        if self.customer_units is not None:
            self._add_units(ch, r[R_CUSTOMER], -r[R_QTY])
        if len(r) == SHOP_HOLD:
            r = (*r[:R_STATUS], status, None)
        else:
            r = (*r[:R_STATUS], status, None, r[R_CHANNEL])
            self._channel_moved(ch, r, -r[R_QTY], 0)
        self._remember_closed(r)
        self._log(ch, kind, request_id, r, before)
        return r

    def _log(self, ch: Changes, kind: int, request_id: str, r: Reservation, before: int) -> None:
        ch._mark(r)
        ch.touched[self.sku] = self
        after = self.on_hand - self.reserved - self.sold
        ch.entries.append(
            (kind, request_id, self.sku, r[R_ID], r[R_QTY], before, after, r[R_EXPIRES])
        )

    def _log_stock(
        self,
        ch: Changes,
        kind: int,
        request_id: str,
        qty: int | None,
        before: int,
        ref: str | None = None,
    ) -> None:
        ch.touched[self.sku] = self
        ch.entries.append(
            (
                kind,
                request_id,
                self.sku,
                ref,
                qty,
                before,
                self.on_hand - self.reserved - self.sold,
                None,
                self.on_hand,
                self.sold,
                self.per_customer_limit,
                self.low_stock_threshold,
                self.low_stock_order_cap,
            )
        )

    def _remember_closed(self, r: Reservation) -> None:
        closed = self._closed
        if closed is None:
            closed = self._closed = {}
        closed[r[R_ID]] = r[R_STATUS]
        if len(closed) > CLOSED_MEMORY:
            del closed[next(iter(closed))]

    def _add_units(self, ch: Changes, customer_id: str, delta: int) -> None:
        units_by = self.customer_units
        assert units_by is not None
        units = units_by.get(customer_id, 0) + delta
        if units:
            units_by[customer_id] = units
        else:
            units_by.pop(customer_id, None)
        ch.customers.add((self.sku, customer_id))
