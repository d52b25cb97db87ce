"""What a ledger's mutations leave behind: the layout of a reservation tuple and of a
journal entry, and :class:`Changes`, what one batch changed (ADR 0017)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from matchday.inventory.commands import ReservationView

if TYPE_CHECKING:
    from matchday.inventory.ledger import SkuLedger

# A journal entry: (kind, request_id, sku, reservation_id, qty, available_before,
# available_after, expires_at) for a reservation, plus (on_hand, sold, per_customer_limit,
# low_stock_threshold, low_stock_order_cap) for a stock change. See records.BatchWrite.
Entry = tuple[Any, ...]


# A held reservation is its own answer: the wire tuple (RESERVATION, reservation_id, sku,
# qty, cart_id, customer_id, expires_at, status, order_id), replaced whenever it changes; a
# channel's has one more element, the channel (ADR 0028): a shop hold carries nothing extra.
# A tuple of atoms is not tracked by the cyclic GC, so a shard holding 100k reservations
# gives the collector nothing to walk (ADR 0017: a Reservation object per hold cost the
# shard full collections of hundreds of ms).
Reservation = tuple[Any, ...]
R_ID, R_SKU, R_QTY, R_CART, R_CUSTOMER, R_EXPIRES, R_STATUS, R_ORDER, R_CHANNEL = range(1, 10)
SHOP_HOLD = R_CHANNEL  # the length of a shop hold's tuple


def reservation_view(r: Reservation) -> ReservationView:
    return ReservationView(*r[1:])


class Changes:
    """What one batch changed, filled by the ledgers as they apply it, for one write."""

    __slots__ = (
        "carts",
        "changed",
        "channels",
        "created",
        "customers",
        "entries",
        "new_id",
        "reset",
        "touched",
    )

    def __init__(self, new_id: Callable[[str], str]) -> None:
        # A new hold's id, from its request id (ids.reservation_id).
        self.new_id = new_id
        self.entries: list[Entry] = []
        self.touched: dict[str, SkuLedger] = {}  # whose counters to write
        self.created: dict[str, Reservation] = {}  # to insert, in their final state
        self.changed: dict[str, Reservation] = {}  # existing ones to update
        self.customers: set[tuple[str, str]] = set()  # (sku, customer) totals to write
        self.reset: set[str] = set()  # SKUs whose stored customer totals are void
        self.carts: set[str] = set()  # carts that take more units: must still be open
        self.channels: set[str] = set()  # SKUs whose channel counts to write

    def _mark(self, r: Reservation) -> None:
        rid = r[R_ID]
        if rid in self.created:
            self.created[rid] = r
        else:
            self.changed[rid] = r
